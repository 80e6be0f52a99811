"""Self-calibration (``livefocus calibrate``, :func:`livefocus.model.calibrate`): a loadable
model folder, never worse than the base on the held-out tiles, bad input, a store as input and
a re-acquisition of the same specimen."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

import livefocus.model as lm
from livefocus.cli import main
from livefocus.depth import reconstruct
from livefocus.model.calibrate import _cut, _held_out_iou, holdout_tiles
from livefocus.model.data import model_input
from livefocus.sim import Camera, Optics, Specimen, mask_scores

torch.set_num_threads(2)


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``livefocus ARGV`` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def acquire(
    shape: tuple[int, int, int],
    *,
    seed: int,
    contrast: str = "fluorescence",
    z_step: float = 2.0,
    shift: tuple[float, int, int] = (0.0, 0, 0),
    noise_seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A stack of one specimen (``seed``) and its truth, its planes shifted by ``shift`` (µm
    in Z, px in Y and X) and fresh camera noise (``noise_seed``): a re-acquisition."""
    nz, ny, nx = shape
    pad = 16
    optics = Optics()
    half = (nz - 1) * z_step / 2
    spec = Specimen(
        (ny + pad, nx + pad),
        seed=seed,
        contrast=contrast,
        z_center=half,
        object_range=half - optics.depth_of_field_um / 2,
        optics=optics,
    )
    rng = np.random.default_rng([noise_seed, 5])
    dz, dy, dx = shift
    crop = (slice(dy, dy + ny), slice(dx, dx + nx))
    zs = np.arange(nz) * z_step + dz
    raw = np.stack([spec.snap(float(z), Camera(), rng)[crop] for z in zs])
    mask = np.stack([spec.truth_mask(float(z))[crop] for z in zs])
    return raw, mask


@cache
def _specimen() -> tuple[np.ndarray, np.ndarray]:
    return acquire((12, 128, 128), seed=3)


def test_holdout_tiles_split_the_frame() -> None:
    side, train, held = holdout_tiles((20, 256, 256), 8)
    assert side == 128 and len(held) == 1 and len(train) == 3
    assert not set(train) & set(held)
    side, train, held = holdout_tiles((5, 1024, 700), 8, seed=1)
    assert side == 128 and len(held) == (8 * 5) // 4 and not set(train) & set(held)
    with pytest.raises(ValueError, match="too small to calibrate"):
        holdout_tiles((5, 20, 20), 8)


def test_calibrate_writes_a_loadable_model_never_worse_than_the_base(tmp_path: Path) -> None:
    raw, _ = _specimen()
    out = tmp_path / "mine"
    metrics = lm.calibrate(raw, model="depth", out=out, z_step=2.0, seconds=6)
    model = lm.load(out)
    cal = model.config["calibration"]
    assert cal["from"] == "depth" and cal["labels"].endswith(".mask_depth")
    assert cal["stack"]["kind"] == "array" and cal["stack_shape"] == [12, 128, 128]
    assert model.config["labels"]["kind"] == "depth"
    assert json.loads((out / "metrics.json").read_text())["history"][0]["step"] == 0
    # recompute both scores on the held-out tiles from what was written

    labels = reconstruct(raw, z_step=2.0).mask_depth
    side, _, held = holdout_tiles(raw.shape, 8)
    # the net's input as calibration makes it (each plane with those before it, if it takes them)
    x = _cut(model_input(raw, lm.load("depth").context), held, side)
    y = _cut(labels, held, side)
    # scored as the model gives its masks: `depth`'s z-peak rule on each tile's planes
    shipped = lm.load("depth")
    assert shipped.z_peaks is not None and model.z_peaks == shipped.z_peaks
    rule = (shipped.threshold, shipped.z_peaks, len(raw))
    base = _held_out_iou(shipped.net, x, y, *rule)
    mine = _held_out_iou(model.net, x, y, *rule)
    assert base == pytest.approx(metrics["base_held_out_iou"], abs=1e-9)
    assert mine >= base
    assert metrics["seconds"] <= 6 + 5  # the budget, plus one step, one score and the folder
    probs = lm.engine(out, "onnxruntime").predict(raw[:2])
    assert probs.shape == (2, 128, 128)


def test_no_step_in_the_budget_keeps_the_base(tmp_path: Path) -> None:
    raw, _ = _specimen()
    labels = reconstruct(raw, z_step=2.0).mask_depth
    out = lm.calibrate_on(raw, labels, model="depth", out=tmp_path / "m", seconds=1e-3)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["calibration"]["metrics"]["kept"] == "base"
    assert cfg["calibration"]["metrics"]["steps"] == 0
    assert cfg["weights_sha256"] == lm.load("depth").config["weights_sha256"]


def test_calibrate_on_bad_input_writes_nothing(tmp_path: Path) -> None:
    raw, _ = _specimen()
    out = tmp_path / "m"
    with pytest.raises(ValueError, match="masks must have the stack's shape"):
        lm.calibrate_on(raw, np.zeros((3, 4, 4), bool), out=out)
    with pytest.raises(ValueError, match="seconds must be a positive number"):
        lm.calibrate_on(raw, raw > 0, out=out, seconds=0)
    with pytest.raises(ValueError, match="raw must be a"):
        lm.calibrate_on(raw[0], raw[0] > 0, out=out)
    with pytest.raises(ValueError, match="masks must be finite"):
        lm.calibrate_on(raw, np.full(raw.shape, np.nan), out=out)
    # empty masks would teach the net that nothing is in focus
    with pytest.raises(ValueError, match="masks mark no in-focus pixel"):
        lm.calibrate_on(raw, np.zeros(raw.shape, bool), out=out)
    with pytest.raises(ValueError, match="the rule's masks mark no in-focus pixel"):
        lm.calibrate(np.full((4, 64, 64), 100, np.uint16), out=out)
    assert not out.exists()


def test_reacquisition_of_the_calibrated_specimen(tmp_path: Path) -> None:
    """Calibrated on one stack, scored on the same specimen re-acquired (planes 1 µm higher,
    frame moved 16 px, fresh noise) against the exact truth: not below the base model (what
    the held-out tiles guarantee on the stack itself carries over). The 0.65 target needs the
    full budget at 256 px: tests/support/report_calibration.py measures it (README)."""
    raw, _ = acquire((12, 128, 128), seed=3)
    again, truth = acquire((12, 128, 128), seed=3, shift=(1.0, 16, 16), noise_seed=9)
    out = tmp_path / "mine"
    lm.calibrate(raw, out=out, z_step=2.0, seconds=6)
    mine = mask_scores(lm.engine(out, "onnxruntime").predict_mask(again), truth)["iou"]
    base = mask_scores(lm.engine("depth", "onnxruntime").predict_mask(again), truth)["iou"]
    assert mine >= base - 0.02, (mine, base)


def test_cli_calibrate_a_store_and_use_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "run.ome.zarr"
    code, _, err = cli([
        "demo", "--out", str(store), "--size", "96", "--z-range", "16", "--step", "2",
        "--time-points", "2", "--no-preview",
    ], capsys)  # fmt: skip
    assert code == 0, err
    out = tmp_path / "mine"
    code, text, err = cli([
        "calibrate", str(store), "--out", str(out), "--seconds", "5", "--json",
        str(tmp_path / "m.json"),
    ], capsys)  # fmt: skip
    assert code == 0, err
    assert "kept" in text and "held-out IoU" in text
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["calibration"]["stack"]["kind"] == "time point 0, channel 0, position 0 of the store"
    assert cfg["calibration"]["z_step"] == 2.0
    assert f"{store}: calibrated on time point 0, channel 0, position 0 of the store" in text
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["kept"] in ("base", "calibrated")
    # run inside this long-lived process, the budget counts from the command, not the process
    assert metrics["steps"] > 0 and metrics["seconds"] <= 5.5, metrics
    code, text, err = cli([
        "demo", "--out", str(tmp_path / "again.ome.zarr"), "--size", "96", "--z-range", "16",
        "--step", "2", "--no-preview", "--model", str(out),
    ], capsys)  # fmt: skip
    assert code == 0, err
    assert "model" in text
    # the second time point is chosen; one that is not there is one line, nothing written
    code, text, err = cli([
        "calibrate", str(store), "--out", str(tmp_path / "t1"), "--seconds", "3",
        "--time-point", "1",
    ], capsys)  # fmt: skip
    assert code == 0, err
    assert "time point 1, channel 0, position 0 of the store" in text
    for flag, value, message in (
        ("--time-point", "2", "--time-point: time_point must be below 2"),
        ("--channel", "1", "--channel: channel must be below 1"),
        ("--position", "-1", "--position: position must be a non-negative int"),
    ):
        code, _, err = cli([
            "calibrate", str(store), "--out", str(tmp_path / "bad"), flag, value,
        ], capsys)  # fmt: skip
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()


def test_calibrate_takes_no_store_choice_for_a_file_or_an_array(tmp_path: Path) -> None:
    raw, _ = acquire((6, 64, 64), seed=1)
    path = tmp_path / "s.npy"
    np.save(path, raw)
    with pytest.raises(ValueError, match=r"time_point: stack .* is a file of one stack"):
        lm.calibrate(path, out=tmp_path / "a", time_point=0, seconds=3)
    with pytest.raises(ValueError, match="channel: only a store's stacks are chosen"):
        lm.calibrate(raw, out=tmp_path / "b", channel=0, seconds=3)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.tif"], "does not exist"),
        (["STACK", "--seconds", "0"], "--seconds: seconds must be a positive number"),
        (["STACK", "--model", "nope"], "--model: model 'nope' is neither"),
        (["STACK", "--z-step", "-1"], "--z-step: z_step must be a positive number"),
        (["FLAT"], "at least 2 planes, got 1 plane of"),
        (["STACK", "--out", "STACK"], "would overwrite the input"),
        (["STACK", "--out", "USER"], "did not write"),
        (["STACK", "--json", "NODIR/m.json"], "--json"),
    ],
)
def test_cli_bad_input_exit_2_nothing_written(
    tmp_path: Path,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = tmp_path / "stack.npy"
    np.save(stack, _specimen()[0][:4, :64, :64])
    flat = tmp_path / "flat.npy"
    np.save(flat, _specimen()[0][0, :64, :64])
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    subs = {
        "STACK": str(stack),
        "FLAT": str(flat),
        "USER": str(user),
        "NODIR": str(tmp_path / "no"),
    }
    argv = [subs.get(a, a) if not a.startswith("NODIR") else a.replace("NODIR", subs["NODIR"])
            for a in args]  # fmt: skip
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["calibrate", *argv], capsys)
    assert code == 2, err
    assert message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (user / "notes.txt").read_text() == "mine" and len(list(user.iterdir())) == 1
