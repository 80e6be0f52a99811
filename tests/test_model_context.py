"""Models of several planes: the current plane and the planes before it as input channels.

Training, the model folder, the engines (torch and ONNX Runtime agree), self-calibration and
the streaming pipeline, which feeds each plane the planes before it in its stack (causal: a
plane's mask is ready when the plane arrives and never depends on later planes).
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import livefocus.model as lm
from livefocus.depth import ReconstructSettings
from livefocus.model.data import context_windows, model_input
from livefocus.stream.pipeline import Pipeline
from livefocus.stream.types import FrameResult

torch.set_num_threads(2)

PLANES = 3


@pytest.fixture(scope="session")
def tiny_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny local model of 3 planes, trained for a few seconds."""
    out = tmp_path_factory.mktemp("models") / "tiny_context"
    lm.train(out, n_train=2, n_val=1, shape=(6, 128, 128), epochs=2, progress=False,
             context=PLANES, architecture={"global_context": False})  # fmt: skip
    return out


def _stack(n: int = 6, size: int = 96, seed: int = 0) -> np.ndarray:
    from livefocus.sim import simulate_stack

    return simulate_stack((n, size, size), seed=seed, contrast="fluorescence").raw


def test_windows_hold_the_planes_before_each_plane() -> None:
    stack = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 2), np.float32)
    windows = context_windows(stack, 3)
    assert windows[:, :, 0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3]]
    assert np.array_equal(context_windows(stack, 1)[:, 0], stack)
    x = model_input(_stack(5) * 7 + 100, 3)  # one z-score per window: gain and offset vanish
    assert x.shape == (5, 3, 96, 96)
    np.testing.assert_allclose(x, model_input(_stack(5), 3), atol=1e-4)
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\) windows"):
        model_input(np.zeros((2, 2, 8, 8)), 3)
    with pytest.raises(ValueError, match="context must be from 1"):
        model_input(np.zeros((2, 8, 8)), 0)


def test_context_model_folder_records_its_planes(tiny_context: Path) -> None:
    cfg = json.loads((tiny_context / "config.json").read_text())
    assert cfg["context"] == PLANES and cfg["architecture"]["in_channels"] == PLANES
    assert cfg["normalisation"] == "joint_zscore"
    assert cfg["training"]["recipe"]["context"] == PLANES
    assert lm.load(tiny_context).context == PLANES
    with pytest.raises(ValueError, match="in_channels"):
        lm.train(tiny_context.parent / "x", n_train=1, n_val=1, shape=(4, 64, 64), epochs=1,
                 context=2, architecture={"in_channels": 3}, progress=False)  # fmt: skip


def test_single_frame_folders_without_context_still_load(tmp_path: Path) -> None:
    """Folders written before models took previous planes have no "context" key."""
    old = tmp_path / "old"
    shutil.copytree(lm.load("depth-sim").path or "", old)
    cfg = json.loads((old / "config.json").read_text())
    cfg.pop("context", None)
    (old / "config.json").write_text(json.dumps(cfg))
    model = lm.load(old)
    assert model.context == 1 and lm.engine(model, "onnxruntime").context == 1
    frame = _stack(2)[0]
    assert lm.engine(model, "onnxruntime").predict(frame).shape == frame.shape
    cfg["context"] = 3  # a config that contradicts its weights is refused
    (old / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="context 3 does not match"):
        lm.load(old)


def test_onnx_runtime_equals_torch_on_a_context_model(tiny_context: Path) -> None:
    stack = _stack(6)
    p_torch = lm.engine(tiny_context, "torch").predict(stack)
    ort = lm.engine(tiny_context, "onnxruntime")
    p_ort = ort.predict(stack)
    assert p_ort.shape == stack.shape and p_ort.dtype == np.float32
    np.testing.assert_allclose(p_ort, p_torch, atol=1e-4)
    np.testing.assert_allclose(lm.predict_probabilities(lm.load(tiny_context), stack), p_torch,
                               atol=1e-4)  # fmt: skip
    # explicit windows give the same as the stack; a frame alone is its own context
    windows = context_windows(stack, PLANES)
    np.testing.assert_allclose(ort.predict(windows), p_ort, atol=1e-6)
    np.testing.assert_allclose(ort.predict(stack[0]), p_ort[0], atol=1e-6)
    # the planes matter: the same plane after other planes gets other probabilities
    assert np.abs(ort.predict(stack[[5, 0, 3]])[2] - p_ort[3]).max() > 1e-3


def test_context_model_tiles_like_a_single_pass(tiny_context: Path) -> None:
    stack = _stack(3, size=200, seed=2)
    whole = lm.engine(tiny_context, "onnxruntime").predict(stack)
    tiled = lm.engine(tiny_context, "onnxruntime", tile=128, overlap=32).predict(stack)
    assert np.abs(tiled - whole).max() < 0.05 and np.abs(tiled - whole).mean() < 0.005


def _stream(engine: Any, *stacks: np.ndarray) -> list[list[np.ndarray]]:
    """Each plane's model mask as the pipeline gives it when the plane arrives (one time
    point per stack)."""
    masks: dict[tuple[int, int], np.ndarray] = {}
    lock = threading.Lock()

    def collect(result: FrameResult) -> None:
        with lock:
            masks[result.index["t"], result.index["z"]] = result.mask

    nz = len(stacks[0])
    pipeline = Pipeline(
        ReconstructSettings.for_frame(stacks[0].shape[1:]),
        n_planes=nz,
        mask_modes=("model", "depth"),
        engine=engine,
        on_result=collect,
    ).start()
    for t, stack in enumerate(stacks):
        for z, frame in enumerate(stack):
            pipeline.submit(frame, {"t": t, "z": z}, float(z))
    metrics = pipeline.close(timeout=60)
    assert metrics.frames_out == nz * len(stacks) and pipeline.faults == 0
    return [[masks[t, z] for z in range(nz)] for t in range(len(stacks))]


def test_pipeline_feeds_each_plane_the_planes_before_it(tiny_context: Path) -> None:
    stack = _stack(5)
    tiny = lm.load(tiny_context)
    # a threshold at the median probability, so that the masks compared are half full
    median = float(np.median(lm.engine(tiny, "onnxruntime").predict(stack)))
    model = lm.Model(tiny.net, {**tiny.config, "threshold": median}, tiny.path)
    engine = lm.engine(model, "onnxruntime")
    (streamed,) = _stream(engine, stack)
    offline = engine.predict(stack) >= engine.threshold
    for k in range(len(stack)):
        np.testing.assert_array_equal(streamed[k], offline[k])
    assert 0.3 < np.mean(offline) < 0.7
    # causal: changing the planes after plane 2 leaves the masks of planes 0-2 as they were
    other = stack.copy()
    other[3:] = _stack(5, seed=7)[3:]
    (again,) = _stream(engine, other)
    for k in range(3):
        np.testing.assert_array_equal(again[k], streamed[k])
    assert any(not np.array_equal(again[k], streamed[k]) for k in (3, 4))
    # each stack starts afresh: the second time point's masks are those of the stack alone
    first, second = _stream(engine, other, stack)
    for k in range(len(stack)):
        np.testing.assert_array_equal(first[k], again[k])
        np.testing.assert_array_equal(second[k], streamed[k])


def test_calibrate_on_keeps_the_planes(tiny_context: Path, tmp_path: Path) -> None:
    from livefocus.depth import reconstruct

    raw = _stack(6, size=128, seed=3)
    masks = reconstruct(raw, z_step=2.0).mask_depth
    out = lm.calibrate_on(raw, masks, model=tiny_context, out=tmp_path / "mine", seconds=4)
    model = lm.load(out)
    assert model.context == PLANES
    assert lm.engine(model, "onnxruntime").predict(raw).shape == raw.shape


def test_cli_trains_a_context_model_with_a_real_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--context 2`` with a 229 x 305 real stack: its windows are cut into tiles as well."""
    from livefocus.cli import main

    stack = Path(__file__).parent / "data" / "diatom_mfusionj_3z.tif"
    out = tmp_path / "m"
    with pytest.raises(SystemExit) as done:
        main(["train", "--out", str(out), "--n-train", "1", "--epochs", "1", "--context", "2",
              "--no-progress", "--shape", "6", "64", "64", "--stack", str(stack)])  # fmt: skip
    assert done.value.code in (0, None)
    model = lm.load(out)
    assert model.context == 2 and model.config["training"]["data"]["n_slices"] == 6 + 3 * 20
    with pytest.raises(SystemExit) as done:
        main(["train", "--out", str(tmp_path / "n"), "--context", "0", "--no-progress"])
    assert done.value.code == 2 and "context must be from 1" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


def test_training_batches_read_either_way_and_show_planes_alone() -> None:
    from livefocus.model.randomise import pairs_from_randomised, random_stack
    from livefocus.model.train import _batch

    pairs = pairs_from_randomised(1, shape=(4, 64, 64), augment=True, context=PLANES)
    raw = random_stack((4, 64, 64), 0).raw
    assert pairs.x_reversed is not None
    # read the other way, plane 1 comes after planes 3 and 2
    np.testing.assert_allclose(pairs.x_reversed[1], model_input(raw[None, [3, 2, 1]], 3)[0],
                               atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(pairs.x[1], model_input(raw[None, [0, 0, 1]], 3)[0], atol=1e-5)
    rng = np.random.default_rng(0)
    x, y = _batch(pairs, np.arange(4), 32, rng, alone=1.0)
    assert x.shape == (4, PLANES, 32, 32) and y.shape == (4, 32, 32)
    assert all(np.array_equal(w[0], w[-1]) for w in x)  # every window is its plane alone
    x, _ = _batch(pairs, np.array([1, 2, 1, 2]), 32, rng, alone=0.0)
    assert not any(np.array_equal(w[0], w[-1]) for w in x)  # middle planes: never alone


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_torch_agrees_with_cpu_on_a_context_model(tiny_context: Path) -> None:
    """The CUDA torch engine takes the same causal windows as ONNX Runtime on the CPU."""
    stack = _stack(5, 128)
    gpu = lm.engine(tiny_context, "torch").predict(stack)
    cpu = lm.engine(tiny_context, "onnxruntime").predict(stack)
    assert gpu.shape == cpu.shape == stack.shape
    assert np.abs(gpu - cpu).max() <= 1e-3


@pytest.mark.parametrize("context", [1, PLANES])
def test_batches_of_non_square_frames_crop_the_turned_slices(context: int) -> None:
    """A quarter turn swaps a slice's sides: crops as long as the short side still fit."""
    from livefocus.model.data import Pairs
    from livefocus.model.train import _batch

    frames = np.random.default_rng(3).random((4, 64, 32)).astype(np.float32)
    x = frames if context == 1 else np.stack([model_input(frames, context)[i] for i in range(4)])
    pairs = Pairs(x, frames > 0.5, None, np.zeros(4, int))
    for seed in range(20):
        xb, yb = _batch(pairs, np.arange(4), 32, np.random.default_rng(seed))
        assert xb.shape[-2:] == yb.shape[-2:] == (32, 32)
