"""U-Net surrogate: network, losses, tiling, training, export, engines, registry, bad input."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import livefocus.model as lm
from livefocus.model.data import Pairs
from livefocus.model.engines import TensorRTCache, pick_backend, tensorrt_key
from livefocus.model.losses import bce_loss, combined_loss, dice_loss, focal_loss, iou_score
from livefocus.model.tiling import predict_tiled, tile_starts
from livefocus.model.train import _fit

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for a few seconds (shared by the tests that need weights)."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    lm.train(out, n_train=2, n_val=1, shape=(6, 128, 128), epochs=4, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like ``tiny`` without global context: a purely local net, whose tiles are seamless."""
    out = tmp_path_factory.mktemp("models") / "tiny_local"
    lm.train(out, n_train=2, n_val=1, shape=(6, 128, 128), epochs=4, progress=False,
             architecture={"global_context": False})  # fmt: skip
    return out


def _frames(n: int = 3, size: int = 128, seed: int = 0) -> np.ndarray:
    from livefocus.sim import simulate_stack

    return simulate_stack((max(2, n), size, size), seed=seed).raw[:n]


def test_forward_shapes_and_paper_config() -> None:
    net = lm.UNet(lm.UNetConfig(depth=2, base=4)).eval()
    assert net(torch.zeros(3, 1, 32, 48)).shape == (3, 1, 32, 48)
    ctx = lm.UNet(lm.UNetConfig(depth=2, base=4, global_context=True)).eval()
    assert ctx(torch.zeros(3, 1, 32, 48)).shape == (3, 1, 32, 48) and ctx.context is not None
    paper = lm.unet_paper()
    assert paper.config.depth == 3 and paper.config.base == 64
    assert len(paper.down) == 3 and len(paper.up) == 3
    assert isinstance(paper.up[0], torch.nn.ConvTranspose2d)
    with pytest.raises(ValueError, match="depth must be a positive int"):
        lm.UNetConfig(depth=0)


def test_losses_sanity() -> None:
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4, :] = 1
    good, bad = (target * 2 - 1) * 10, (1 - 2 * target) * 10
    for loss in (bce_loss, focal_loss, dice_loss, combined_loss):
        assert float(loss(good, target)) < 0.05 < float(loss(bad, target))
    assert iou_score(good, target) == 1.0 and iou_score(bad, target) == 0.0
    assert iou_score(-good.abs(), torch.zeros_like(target)) == 1.0


def test_tile_starts_cover() -> None:
    for size in (100, 512, 513, 1100, 2048):
        starts = tile_starts(size, 256, 64)
        assert (starts[0] == 0 and min(starts[-1] + 256, size) == size) or size <= 256
        assert all(b - a <= 256 - 64 for a, b in itertools.pairwise(starts))


def test_tiled_equals_single_pass(tiny_local: Path) -> None:
    model = lm.load(tiny_local)
    frame = np.tile(_frames(1, 256)[0], (3, 3))[:700, :600]
    x = lm.model_input(frame)[0]

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.sigmoid(model.net(torch.from_numpy(batch)[:, None]))[:, 0].numpy()

    single = predict_tiled(run, x, tile=1024, overlap=64)
    tiled = predict_tiled(run, x, tile=256, overlap=64)
    assert np.abs(single - tiled).max() < 0.02
    assert np.mean((single > 0.5) == (tiled > 0.5)) > 0.999
    # the seams (tile borders at 192, 384, ...) in particular
    seams = np.abs(single - tiled)[:, 180:200]
    assert seams.max() < 0.02


def _texture_task(n: int, seed: int) -> Pairs:
    """Slices whose label is where they are textured (sharp) rather than flat (blurred)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    x = np.empty((n, 64, 64), np.float32)
    y = np.empty((n, 64, 64), bool)
    for i in range(n):
        cy, cx = rng.integers(16, 48, 2).tolist()
        r = int(rng.integers(8, 20))
        y[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        x[i] = np.where(y[i], rng.normal(size=(64, 64)), 0.1 * rng.normal(size=(64, 64)))
    return Pairs(x=x, y=y, truth=y, stack=np.zeros(n, int))


def test_tiny_training_improves_iou() -> None:
    train_pairs, val_pairs = _texture_task(32, 0), _texture_task(8, 1)
    net = lm.UNet(lm.UNetConfig(depth=2, base=4))
    fit = _fit(net, train_pairs, val_pairs, epochs=8, batch_size=8, lr=1e-2, crop=64,
               patience=8, seed=0, progress=False, desc="test")  # fmt: skip
    history = fit["history"]
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert fit["best_val_iou"] > 0.8 > history[0]["val_iou"]


def test_train_writes_metrics_and_is_seeded(tmp_path: Path) -> None:
    small = {"n_train": 2, "n_val": 1, "shape": (6, 64, 64), "batch_size": 4, "crop": 64}
    first = lm.train(tmp_path / "a", epochs=2, progress=False, **small)
    again = lm.train(tmp_path / "b", epochs=2, progress=False, **small)
    assert again["history"] == first["history"]  # the same losses and IoUs
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["val_iou_vs_weak"] == first["val_iou_vs_weak"]
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["training"]["recipe"]["crop"] == 64 and cfg["labels"]["window"] == 32


def test_depth_labels_are_the_reconstruction_masks() -> None:
    from livefocus.depth import reconstruct
    from livefocus.model.data import label_stack, pairs_from_simulation
    from livefocus.sim import simulate_stack

    sim = simulate_stack((10, 64, 64), seed=4, z_step=1.5)
    labels = label_stack(sim.raw, labels="depth", z_step=1.5)
    assert np.array_equal(labels, reconstruct(sim.raw, z_step=1.5).mask_depth)
    assert labels.any() and not labels.all()
    pairs = pairs_from_simulation(1, shape=(10, 64, 64), seed=4, labels="depth")
    ref = simulate_stack((10, 64, 64), seed=4)
    assert np.array_equal(pairs.y, reconstruct(ref.raw, z_step=ref.meta["z_step"]).mask_depth)
    with pytest.raises(ValueError, match="labels must be 'otsu' or 'depth'"):
        label_stack(sim.raw, labels="edges")


def test_augmented_slices_carry_their_own_weak_labels() -> None:
    from livefocus.model.data import dihedral, label_stack, pairs_from_simulation
    from livefocus.model.train import _batch
    from livefocus.sim import simulate_stack

    sim = simulate_stack((4, 64, 96), seed=2)
    pairs = pairs_from_simulation(1, shape=(4, 64, 96), seed=2, augment=True)
    assert pairs.y_dihedral is not None and np.array_equal(pairs.y_dihedral[0], pairs.y)
    assert np.array_equal(dihedral(dihedral(sim.raw, 1), 3), sim.raw)
    flipped = label_stack(np.ascontiguousarray(dihedral(sim.raw, 4)))
    # windows start at the top-left corner: the labels of a flipped slice are not the flipped
    # labels, so augmentation must relabel
    assert not np.array_equal(flipped, dihedral(pairs.y, 4))
    for k in (1, 4, 7):
        x, y = pairs.augmented(2, k)
        assert x.shape == y.shape == dihedral(sim.raw[2], k).shape
        assert np.array_equal(y, label_stack(np.ascontiguousarray(dihedral(sim.raw, k)))[2])
    # a batch: crops of whole transformed slices; truth-only pairs transform their targets
    x, y = _batch(pairs, np.array([0, 1, 2, 3]), 48, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 48, 48) and y.dtype == bool
    truth = pairs_from_simulation(1, shape=(4, 64, 96), seed=2, target="truth")
    assert truth.y_dihedral is None
    assert np.array_equal(truth.augmented(1, 5)[1], dihedral(truth.y[1], 5))
    with pytest.raises(ValueError, match=r"k must be in 0\.\.7"):
        dihedral(sim.raw, 8)


def test_user_stacks_of_any_size_are_tiled_after_labelling(tmp_path: Path) -> None:
    from livefocus.model.data import dihedral, label_stack, pairs_from_files
    from livefocus.sim import simulate_stack

    raw = simulate_stack((3, 80, 100), seed=5).raw
    small = simulate_stack((2, 64, 64), seed=6).raw
    np.save(tmp_path / "a.npy", raw)
    np.save(tmp_path / "b.npy", small)
    pairs = pairs_from_files([tmp_path / "a.npy", tmp_path / "b.npy"], augment=True)
    # different sizes: cut into tiles of the smallest (64 x 64); a: 2 x 2 tiles, flush with
    # the bottom and right edges
    assert pairs.x.shape == (3 * 4 + 2, 64, 64) and pairs.stack.tolist() == [0] * 12 + [1] * 2
    whole = label_stack(raw)
    np.testing.assert_array_equal(pairs.y[3], whole[0, 16:80, 36:100])  # labelled whole
    k = 5
    x, y = pairs.augmented(3, k)
    np.testing.assert_array_equal(x, dihedral(pairs.x[3], k))
    # the labels of the transformed whole slice, at the transformed tile's place
    flipped = label_stack(np.ascontiguousarray(dihedral(raw, k)))[0]
    where = dihedral(np.arange(80 * 100).reshape(80, 100), k)
    tile_ids = dihedral(np.arange(80 * 100).reshape(80, 100)[16:80, 36:100], k)
    rows, cols = np.nonzero(np.isin(where, tile_ids))
    region = flipped[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    np.testing.assert_array_equal(y, region)
    with pytest.raises(ValueError, match="smaller than the training frames"):
        pairs.tiles((96, 96))


def test_onnx_agrees_with_torch(tiny: Path, tmp_path: Path) -> None:
    path = lm.export_onnx(tiny, tmp_path / "m.onnx")
    assert path.stat().st_size > 0
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["frame_multiple"] == str(lm.load(tiny).net.config.multiple)
    frames = _frames(3, 192, seed=4)
    p_torch = lm.engine(tiny, "torch").predict(frames)
    p_ort = lm.engine(tiny, "onnxruntime").predict(frames)
    assert p_torch.dtype == np.float32 and p_torch.shape == frames.shape
    assert np.abs(p_torch - p_ort).max() <= 1e-3
    a, b = p_torch > 0.5, p_ort > 0.5
    assert np.count_nonzero(a & b) / max(1, np.count_nonzero(a | b)) >= 0.99


def test_damaged_onnx_cache_is_rebuilt(tiny: Path) -> None:
    first = lm.engine(tiny, "onnxruntime")
    first.onnx_path.write_bytes(b"garbage")
    again = lm.engine(tiny, "onnxruntime")
    frame = _frames(1, 64)
    assert np.array_equal(first.predict(frame), again.predict(frame))


def test_engine_contract_any_size(tiny: Path) -> None:
    eng = lm.engine(tiny, "onnxruntime", tile=128, overlap=32)
    frame = _frames(1, 128)[0]
    big = np.tile(frame, (2, 3))[:250, :300].astype(np.float64)
    assert eng.predict(big).shape == (250, 300)
    assert eng.predict(frame[:70, :90]).shape == (70, 90)
    assert eng.predict_mask(np.stack([frame, frame])).dtype == bool


def test_auto_backend_on_this_machine() -> None:
    assert pick_backend() == ("torch" if torch.cuda.is_available() else "onnxruntime")


def test_default_model_ships_and_loads() -> None:
    model = lm.load("default")
    assert "default" in lm.available()
    cfg = model.config
    assert cfg["architecture"] == model.net.config.to_dict()
    assert cfg["normalisation"] == "per_slice_zscore"
    assert cfg["training"]["seed"] == 0 and "labels" in cfg and "metrics" in cfg
    assert cfg["labels"]["kind"] == "otsu" and cfg["architecture"]["global_context"]
    assert lm.load("depth").config["labels"]["kind"] == "depth"
    assert lm.load("depth").config["training"]["recipe"]["data"] == "randomised"
    assert lm.load("depth-sim").config["labels"]["kind"] == "depth"
    for name in ("default", "finetuned", "depth", "depth-sim"):
        folder = Path(lm.__file__).parent / "weights" / name
        assert sum(f.stat().st_size for f in folder.iterdir()) <= 5 * 2**20
    probs = lm.engine("default", "onnxruntime").predict(_frames(2, 128))
    assert probs.shape == (2, 128, 128) and 0 <= probs.min() and probs.max() <= 1


def test_shipped_models_meet_their_targets_on_a_held_out_stack() -> None:
    """One held-out test stack (seed 1000): `default` follows the Otsu weak labels (target
    0.90), `finetuned` beats the weak labels against exact truth."""
    rows = {r["model"]: r for r in lm.evaluate(["default", "finetuned"], n_stacks=1)}
    assert rows["default"]["iou_vs_weak"] >= 0.90
    assert rows["finetuned"]["iou_vs_truth"] > rows["finetuned"]["weak_vs_truth"]


@pytest.mark.parametrize("contrast", ["brightfield", "fluorescence"])
def test_shipped_depth_holds_on_an_unseen_generator(contrast: str) -> None:
    """The third generator (`tests/support/phantom_points`, never trained, validated or
    selected on): the shipped `depth` (both training generators, 3 planes in, z-peak final
    masks) reaches the rule there and `depth-sim` does not (measured on 2026-12-01: 0.209 and
    0.180 against the rule's 0.184 and 0.163; `depth-sim` 0.009 and 0.017). On the volume
    generator's stacks (a generator it was trained on, other optics and seeds) it is above
    the rule (0.616 and 0.457 against 0.483 and 0.359). The README's target (>= 0.55 on an
    unseen generator) is not met on this one; this guards what was reached."""
    from support.phantom_points import points_stack
    from support.phantom_widefield import widefield_stack

    from livefocus.depth import reconstruct
    from livefocus.sim import mask_scores
    from livefocus.sim.volume import phantom_stack

    for ph, floor, ahead in (
        (points_stack((20, 128, 128), seed=7, contrast=contrast), 0.12, 0.1),
        (phantom_stack((20, 128, 128), seed=7, contrast=contrast), 0.38, 0.1),
        # the fourth generator, written blind: 0.119 / 0.294 against the rule's 0.096 / 0.231
        # and depth-sim's 0.038 / 0.151 (2026-12-01 night)
        (widefield_stack((20, 128, 128), seed=7, contrast=contrast), 0.08, 0.05),
    ):
        iou = {
            name: mask_scores(lm.engine(name, "onnxruntime").predict_mask(ph.raw), ph.mask)["iou"]
            for name in ("depth", "depth-sim")
        }
        rule = mask_scores(reconstruct(ph.raw, z_step=1.0).mask_depth, ph.mask)["iou"]
        assert iou["depth"] >= max(floor, rule - 0.05), (iou, rule)
        assert iou["depth"] >= iou["depth-sim"] + ahead, iou


@pytest.mark.parametrize("contrast", ["brightfield", "fluorescence"])
def test_shipped_depth_is_within_reach_of_the_rule_on_sim(contrast: str) -> None:
    """Leaning z-peak masks (a peak paints its higher neighbour's side): on held-out `sim`
    the shipped `depth` scored 0.701 / 0.745 against the rule's 0.671 / 0.691 here (masks
    painted on both sides of each peak: 0.563 / 0.643)."""
    from livefocus.depth import peak_masks, reconstruct
    from livefocus.sim import mask_scores, simulate_stack

    st = simulate_stack((20, 128, 128), seed=7, contrast=contrast)
    eng = lm.engine("depth", "onnxruntime")
    assert eng.z_peaks is not None and eng.z_peaks.lean
    iou = mask_scores(eng.predict_mask(st.raw), st.mask)["iou"]
    rule = mask_scores(reconstruct(st.raw, z_step=float(st.meta["z_step"])).mask_depth, st.mask)
    assert iou >= rule["iou"] - 0.05, (iou, rule)
    both = peak_masks(eng.predict(st.raw), dataclasses.replace(eng.z_peaks, lean=False))
    assert iou >= mask_scores(both, st.mask)["iou"] + 0.05  # 0.10 / 0.14 measured here


def test_bad_model_folders(tiny: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    (broken / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        lm.load(broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg.pop("weights_sha256")
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"cannot read weights\.pt"):
        lm.load(broken)
    shutil.copy(tiny / "weights.pt", broken / "weights.pt")
    cfg["architecture"]["base"] = 16
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not match the weights"):
        lm.load(broken)
    (broken / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"weights file weights\.pt is missing"):
        lm.load(broken)
    with pytest.raises(FileNotFoundError, match="model 'nope' is neither"):
        lm.load("nope")


def test_bad_frames(tiny: Path) -> None:
    eng = lm.engine(tiny, "onnxruntime")
    frames = _frames(2, 64).astype(np.float32)
    frames[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values \(frames \[1\]\)"):
        eng.predict(frames)
    with pytest.raises(ValueError, match="must be \\(H, W\\) or \\(N, H, W\\)"):
        eng.predict(np.zeros((1, 2, 64, 64)))
    with pytest.raises(ValueError, match="integer or float array"):
        eng.predict(np.zeros((64, 64), complex))
    with pytest.raises(ValueError, match="backend must be one of"):
        lm.engine(tiny, "cuda")


def test_tensorrt_cache_key_and_missing_extra(tiny: Path, tmp_path: Path) -> None:
    cache = TensorRTCache(tmp_path / "trt")
    key = tensorrt_key(
        gpu="NVIDIA H100", tensorrt="10.3", precision="fp16", shape=(8, 1, 256, 256), weights="abc"
    )
    assert cache.lookup(key) is None
    path = cache.store(key, b"engine")
    assert cache.lookup(key) == path
    for change in (
        {"gpu": "NVIDIA A100"},
        {"tensorrt": "10.4"},
        {"precision": "fp32"},
        {"shape": (4, 1, 256, 256)},
    ):
        assert (
            cache.lookup(
                tensorrt_key(
                    **{
                        **dict(
                            gpu="NVIDIA H100",
                            tensorrt="10.3",
                            precision="fp16",
                            shape=(8, 1, 256, 256),
                            weights="abc",
                        ),
                        **change,
                    }
                )
            )
            is None
        )  # another GPU/version/precision/shape: rebuild
    # a key file that says another GPU (e.g. a cache copied between machines) is not reused
    _, key_file = cache.paths(key)
    key_file.write_text(json.dumps({**key, "gpu": "other"}))
    assert cache.lookup(key) is None
    with pytest.raises(ValueError, match="precision must be one of"):
        tensorrt_key(gpu="x", tensorrt="1", precision="int8", shape=(1,), weights="")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"livefocus\[tensorrt\]"):
            lm.engine(tiny, "tensorrt")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_torch_agrees_with_cpu(tiny: Path) -> None:
    frames = _frames(4, 256)
    gpu = lm.engine(tiny, "torch").predict(frames)
    cpu = lm.engine(tiny, "onnxruntime").predict(frames)
    assert np.abs(gpu - cpu).max() <= 1e-3
    half = lm.engine(tiny, "torch", precision="fp16").predict(frames)
    assert np.mean((half > 0.5) == (cpu > 0.5)) > 0.99
