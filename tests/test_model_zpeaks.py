"""A stack's final model masks: the planes around each pixel's peaks in z of the probability.

The fast rule against its loop referee, plane by plane (online) against the whole stack
(offline), the engine and model folder, and the streaming pipeline writing the final masks
into a real store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hst

import livefocus.model as lm
from livefocus.depth import ReconstructSettings
from livefocus.depth._zpeaks import ZPeakFinaliser, ZPeaks, peak_masks, peak_masks_reference
from livefocus.stream import StoreWriter, open_store
from livefocus.stream.pipeline import Pipeline

torch.set_num_threads(2)

rules = hst.builds(
    ZPeaks,
    threshold=hst.sampled_from([0.0, 0.2, 0.3, 0.5]),
    radius=hst.integers(1, 4),
    paint=hst.integers(0, 2),
    floor=hst.sampled_from([0.0, 0.1, 0.15]),
    lean=hst.booleans(),
)


def _probs(seed: int, shape: tuple[int, int, int], levels: int) -> np.ndarray:
    """Random probabilities on a few levels, so that ties (plateaus in z) are common."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, levels, shape) / levels).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    seed=hst.integers(0, 2**16),
    nz=hst.integers(1, 12),
    levels=hst.sampled_from([3, 10, 1000]),
    rule=rules,
)
def test_peak_masks_equal_their_referee(seed: int, nz: int, levels: int, rule: ZPeaks) -> None:
    p = _probs(seed, (nz, 5, 4), levels)
    np.testing.assert_array_equal(peak_masks(p, rule), peak_masks_reference(p, rule))


@settings(max_examples=40, deadline=None)
@given(seed=hst.integers(0, 2**16), nz=hst.integers(1, 14), rule=rules)
def test_plane_by_plane_equals_the_whole_stack(seed: int, nz: int, rule: ZPeaks) -> None:
    """Each plane's final mask comes once, `lag` planes after it (the rest at the end), and
    equals the whole stack's; a plane's final mask never depends on planes beyond its lag."""
    p = _probs(seed, (nz, 6, 5), 8)
    whole = peak_masks(p, rule)
    fin = ZPeakFinaliser(rule)
    got: dict[int, np.ndarray] = {}
    for k, plane in enumerate(p):
        ready = fin.add(plane)
        assert sorted(ready) == ([k - rule.lag] if k >= rule.lag else [])
        got.update(ready)
        np.testing.assert_array_equal(fin.provisional(), peak_masks(p[: k + 1], rule)[-1])
    got.update(fin.finish())
    assert sorted(got) == list(range(nz))
    for k in range(nz):
        np.testing.assert_array_equal(got[k], whole[k])
        # the stack cut right after plane k + lag gives plane k the same final mask
        np.testing.assert_array_equal(peak_masks(p[: k + rule.lag + 1], rule)[k], whole[k])


@settings(max_examples=40, deadline=None)
@given(
    seed=hst.integers(0, 2**16),
    nz=hst.integers(2, 14),
    rule=rules,
    data=hst.data(),
)
def test_planes_without_a_probability_are_never_peaks(
    seed: int, nz: int, rule: ZPeaks, data: hst.DataObject
) -> None:
    """Skipped planes (a dropped frame) and planes added without a probability (a failed
    prediction) count as -inf: the others get the masks of the stack on its real z grid."""
    p = _probs(seed, (nz, 4, 4), 6)
    missing = data.draw(hst.sets(hst.integers(0, nz - 1), max_size=nz - 1))
    skipped = data.draw(hst.sets(hst.sampled_from(sorted(missing)), max_size=len(missing))
                        if missing else hst.just(set()))  # fmt: skip
    grid = p.copy()
    grid[sorted(missing)] = -np.inf
    whole = peak_masks(grid, rule)
    fin = ZPeakFinaliser(rule)
    got: dict[int, np.ndarray] = {}
    for k in range(nz):
        if k in skipped:
            continue
        got.update(fin.add(None if k in missing else p[k], k))
    got.update(fin.finish())
    assert sorted(got) == [k for k in range(nz) if k not in missing]
    for k, m in got.items():
        np.testing.assert_array_equal(m, whole[k])
    with pytest.raises(ValueError, match="must increase"):
        fin.add(p[0], 0)


def test_a_peak_paints_its_neighbours_and_the_way_up_is_dropped() -> None:
    rule = ZPeaks(threshold=0.3, radius=2, paint=1, floor=0.15, lean=False)
    col = np.array([0.4, 0.6, 0.8, 0.9, 0.5, 0.1, 0.1, 0.2, 0.35, 0.2], np.float32)
    got = peak_masks(col[:, None, None], rule)[:, 0, 0]
    # the plain threshold (0.3) would also mark planes 0 and 1, on the way up to the peak
    assert got.tolist() == [False, False, True, True, True, False, False, True, True, True]
    # leaning: the peak at 3 paints 2 (its higher neighbour, 0.8 > 0.5), not 4; the peak at 8
    # has equal neighbours (0.2, 0.2) and paints both
    leaning = peak_masks(col[:, None, None], ZPeaks(0.3, 2, 1, 0.15, lean=True))[:, 0, 0]
    assert leaning.tolist() == [False, False, True, True, False, False, False, True, True, True]
    # a peak on the first plane paints the plane after it, one on the last the plane before
    # it (beyond the stack counts as -inf)
    edge = np.array([0.9, 0.2, 0.1, 0.1], np.float32)[:, None, None]
    assert peak_masks(edge, ZPeaks(0.3, 2, 1, 0.15))[:, 0, 0].tolist() == [True, True, False,
                                                                           False]  # fmt: skip
    last = np.array([0.1, 0.15, 0.2, 0.9], np.float32)[:, None, None]
    assert peak_masks(last, ZPeaks(0.3, 2, 1, 0.1))[:, 0, 0].tolist() == [False, False, True,
                                                                          True]  # fmt: skip
    # paint 2: the planes 1 away on both sides, the planes 2 away on the higher side only
    wide = np.array([0.15, 0.3, 0.6, 0.9, 0.7, 0.3, 0.15], np.float32)[:, None, None]
    for lean, want in ((True, [0, 0, 1, 1, 1, 1, 0]), (False, [0, 1, 1, 1, 1, 1, 0])):
        got = peak_masks(wide, ZPeaks(0.2, 2, 2, 0.1, lean=lean))[:, 0, 0]
        assert got.astype(int).tolist() == want, lean


def test_nan_counts_as_no_probability_everywhere() -> None:
    """A NaN plane is never a peak nor the highest, in the fast rule, its referee and the
    finaliser alike (scipy's maximum filter and numpy's maximum treat NaN differently)."""
    p = np.array([0.5, np.nan, 0.3, 0.9, 0.3], np.float32)[:, None, None]
    rule = ZPeaks(0.2, 2, 1, 0.1)
    fast = peak_masks(p, rule)
    np.testing.assert_array_equal(fast, peak_masks_reference(p, rule))
    fin = ZPeakFinaliser(rule)
    got: dict[int, np.ndarray] = {}
    for plane in p:
        got.update(fin.add(plane))
    got.update(fin.finish())
    np.testing.assert_array_equal(np.stack([got[k] for k in range(5)]), fast)
    assert fast[:, 0, 0].tolist() == [True, False, True, True, True]
    single = peak_masks(np.array([[[0.2, 0.4]]], np.float32), rule)
    assert single.tolist() == [[[False, True]]]  # a plane alone: its probability > threshold


def test_bad_rules_are_refused() -> None:
    for bad, match in (
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "x"}, "threshold"),
        ({"floor": -0.1}, "floor"),
        ({"radius": 0}, "radius"),
        ({"paint": -1}, "paint"),
    ):
        with pytest.raises(ValueError, match=match):
            ZPeaks(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown keys"):
        ZPeaks.from_config({"z_peaks": {"radius": 2, "width": 3}})
    assert ZPeaks.from_config({"threshold": 0.4}) is None
    rule = ZPeaks.from_config({"threshold": 0.4, "z_peaks": {"radius": 3, "paint": 0}})
    assert rule == ZPeaks(threshold=0.4, radius=3, paint=0, lean=False)  # written before "lean"
    with pytest.raises(ValueError, match="lean"):
        ZPeaks(lean="yes")  # type: ignore[arg-type]
    shipped = ZPeaks(threshold=0.2)
    assert ZPeaks.from_config({"threshold": 0.2, "z_peaks": shipped.as_config()}) == shipped
    with pytest.raises(ValueError, match="add one first"):
        ZPeakFinaliser(ZPeaks()).provisional()


@pytest.fixture(scope="module")
def peaked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 3-plane model folder with a z-peak rule, its threshold at the median."""
    out = tmp_path_factory.mktemp("models") / "tiny_peaks"
    lm.train(out, n_train=2, n_val=1, shape=(6, 96, 96), epochs=1, progress=False,
             context=3, architecture={"global_context": False})  # fmt: skip
    stack = _stack()
    median = float(np.median(lm.engine(out, "onnxruntime").predict(stack)))
    cfg = json.loads((out / "config.json").read_text())
    cfg["threshold"] = median
    cfg["z_peaks"] = {"radius": 2, "paint": 1, "floor": 0.8 * median, "lean": True}
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def _stack(nz: int = 8) -> np.ndarray:
    from livefocus.sim import simulate_stack

    return simulate_stack((nz, 96, 96), seed=4, contrast="brightfield").raw


def test_engine_masks_of_a_stack_are_its_peaks(peaked: Path) -> None:
    model = lm.load(peaked)
    assert model.z_peaks is not None and model.z_peaks.threshold == model.threshold
    eng = lm.engine(model, "onnxruntime")
    stack = _stack()
    probs = eng.predict(stack)
    masks = eng.predict_mask(stack)
    np.testing.assert_array_equal(masks, peak_masks(probs, model.z_peaks))
    assert (masks != (probs > model.threshold)).any()  # not the plain threshold
    np.testing.assert_array_equal(eng.predict_mask(stack[3]), eng.predict(stack[3]) > eng.threshold)
    # a folder without the key keeps its plain threshold
    plain = lm.Model(model.net, {k: v for k, v in model.config.items() if k != "z_peaks"}, None)
    np.testing.assert_array_equal(lm.engine(plain, "onnxruntime").predict_mask(stack),
                                  probs > model.threshold)  # fmt: skip


def test_a_folder_with_a_bad_rule_does_not_load(peaked: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(peaked, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["z_peaks"] = {"radius": 0}
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config\.json: z_peaks radius"):
        lm.load(bad)


def test_streamed_store_holds_the_stacks_final_model_masks(peaked: Path, tmp_path: Path) -> None:
    """Online, each plane is written with its provisional mask and made final `lag` planes
    later (the last ones at the stack's end): the store ends with the whole-stack masks."""
    eng = lm.engine(peaked, "onnxruntime")
    stacks = [_stack(), _stack()[::-1].copy()]
    nz = len(stacks[0])
    store = StoreWriter(
        tmp_path / "m.ome.zarr", shape=(1, 2, 1, nz, 96, 96), dtype=stacks[0].dtype, z_step=1.0,
        mask_modes=("model", "depth"),
    )  # fmt: skip
    pipeline = Pipeline(
        ReconstructSettings.for_frame((96, 96)), n_planes=nz, store=store,
        mask_modes=("model", "depth"), engine=eng,
    ).start()  # fmt: skip
    for t, stack in enumerate(stacks):
        for z, frame in enumerate(stack):
            pipeline.submit(frame, {"t": t, "z": z}, float(z))
    m = pipeline.close(timeout=60)
    store.close()
    assert m.frames_out == 2 * nz and pipeline.faults == 0
    reader = open_store(tmp_path / "m.ome.zarr")
    written = np.asarray(reader.array("mask_model")[:, 0]).astype(bool)
    for t, stack in enumerate(stacks):
        expected = eng.predict_mask(stack)
        np.testing.assert_array_equal(written[t], expected)
        assert (expected != (eng.predict(stack) > eng.threshold)).any()  # not the threshold


class _Failing:
    """A real engine whose prediction of one plane raises (fault injection)."""

    def __init__(self, engine: lm.Engine, fail_at: int) -> None:
        self.engine, self.fail_at, self.calls = engine, fail_at, 0
        self.model, self.threshold = engine.model, engine.threshold
        self.context, self.z_peaks = engine.context, engine.z_peaks

    def predict(self, frames: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_at + 1:
            raise RuntimeError("injected")
        return self.engine.predict(frames)


def _run(engine: object, stack: np.ndarray, path: Path, planes: list[int],
         switch: tuple[int, object] | None = None) -> tuple[np.ndarray, Pipeline]:  # fmt: skip
    import time

    nz = len(stack)
    store = StoreWriter(path, shape=(1, 1, 1, nz, 96, 96), dtype=stack.dtype, z_step=1.0,
                        mask_modes=("model", "depth"))  # fmt: skip
    pipeline = Pipeline(ReconstructSettings.for_frame((96, 96)), n_planes=nz, store=store,
                        mask_modes=("model", "depth"), engine=engine).start()  # fmt: skip
    for z in planes:
        if switch is not None and z == switch[0]:
            deadline = time.monotonic() + 30
            while pipeline.metrics().frames_out < z and time.monotonic() < deadline:
                time.sleep(0.01)
            pipeline.set_engine(switch[1])
        pipeline.submit(stack[z], {"z": z}, float(z))
    pipeline.close(timeout=60)
    store.close()
    masks = np.asarray(open_store(path).array("mask_model")[0, 0]).astype(bool)
    return masks, pipeline


def test_a_failed_or_missing_plane_leaves_its_neighbours_their_masks(
    peaked: Path, tmp_path: Path
) -> None:
    """The plane without a probability is -inf on the stack's real z grid: it is never a
    peak and never the highest, so the planes around it keep the masks they have there."""
    eng = lm.engine(peaked, "onnxruntime")
    rule = eng.z_peaks
    assert rule is not None
    stack = _stack()
    probs = eng.predict(stack)
    kept = [0, 1, 2, 4, 5, 6, 7]
    # a failed plane was still acquired (the planes after it see it); a missing one was not
    failed_grid = probs.copy()
    missing_grid = np.full_like(probs, -np.inf)
    missing_grid[kept] = eng.predict(stack[kept])
    failed_grid[3] = -np.inf
    failed, pipeline = _run(_Failing(eng, 3), stack, tmp_path / "f.ome.zarr", list(range(8)))
    assert pipeline.faults == 1
    missing, _ = _run(eng, stack, tmp_path / "m.ome.zarr", kept)
    for got, grid in ((failed, failed_grid), (missing, missing_grid)):
        expected = peak_masks(grid, rule)
        assert not got[3].any()
        for k in kept:
            np.testing.assert_array_equal(got[k], expected[k])
        # the shift this guards against: the planes as neighbours in the order they came
        assert (expected[kept] != peak_masks(grid[kept], rule)).any()


def test_switching_engines_mid_stack_applies_each_ones_rule(peaked: Path, tmp_path: Path) -> None:
    """Planes before the switch end under the first engine's z-peak rule as if the stack
    ended there; the planes after it get the second engine's own masks (a plain threshold)."""
    eng = lm.engine(peaked, "onnxruntime")
    plain_model = lm.Model(eng.model.net, {k: v for k, v in eng.model.config.items()
                                          if k != "z_peaks"}, None)  # fmt: skip
    plain = lm.engine(plain_model, "onnxruntime")
    stack = _stack()
    got, pipeline = _run(eng, stack, tmp_path / "s.ome.zarr", list(range(8)), switch=(4, plain))
    assert pipeline.faults == 0 and len(pipeline.engine_switches) == 1
    assert eng.z_peaks is not None
    before = peak_masks(eng.predict(stack[:4]), eng.z_peaks)
    np.testing.assert_array_equal(got[:4], before)
    # the plain engine sees each plane with the planes before it, as streamed
    np.testing.assert_array_equal(got[4:], plain.predict(stack)[4:] >= plain.threshold)
    bad = lm.Model(eng.model.net, {**eng.model.config, "z_peaks": {"radius": 0}}, None)
    with pytest.raises(ValueError, match="radius"):
        lm.engine(bad, "onnxruntime")
