"""Tests of the online stack reconstruction (livefocus.stream.reconstruct) on the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from support.feed import feed
from support.report_accuracy import PEAKS_ONLY

from livefocus.depth import (
    PlaneUpdate,
    ReconstructSettings,
    StackReconstructor,
    StackResult,
    reconstruct,
)
from livefocus.sim import SimulatedStack, mask_scores, simulate_stack

SHAPE = (15, 192, 192)
Z_STEP = 2.0
# Synthetic focus maps come with frames that carry no signal of their own: PEAKS_ONLY tests
# the peak rule alone.


@cache
def _sim(contrast: str, seed: int) -> SimulatedStack:
    return simulate_stack(SHAPE, seed=seed, contrast=contrast, z_step=Z_STEP)


@cache
def _offline(contrast: str, seed: int) -> StackResult:
    return reconstruct(_sim(contrast, seed).raw, z_step=Z_STEP)


def _stream(
    raw: np.ndarray, z_um: np.ndarray | None = None, *, z_step: float = Z_STEP
) -> tuple[StackResult, list[PlaneUpdate], dict[int, np.ndarray], list[list[int]]]:
    rec = StackReconstructor((raw.shape[1], raw.shape[2]), z_step=z_step)
    finals: dict[int, np.ndarray] = {}
    keys: list[list[int]] = []
    updates = []
    for k, frame in enumerate(raw):
        up = rec.add(frame, None if z_um is None else float(z_um[k]))
        assert up.index == k == rec.n - 1
        assert not set(up.final) & set(finals), "a final mask was delivered twice"
        finals.update(up.final)
        keys.append(sorted(up.final))
        updates.append(up)
        # the current state is readable after every plane
        assert rec.depth.shape == rec.all_in_focus.shape == rec.confidence.shape == raw.shape[1:]
        assert rec.curve.shape == (k + 1,)
    result, rest = rec.finish()
    assert not set(rest) & set(finals), "a final mask was delivered twice"
    finals.update(rest)
    keys.append(sorted(rest))
    return result, updates, finals, keys


def _same(a: StackResult, b: StackResult) -> None:
    for name in ("focus", "mask_otsu", "mask_depth", "depth", "all_in_focus", "confidence", "z_um"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name
    assert a.meta == b.meta


# -- online == offline ----------------------------------------------------------------------
@pytest.mark.parametrize("contrast", ["brightfield", "fluorescence"])
def test_online_equals_offline_and_every_plane_final_once(contrast: str) -> None:
    sim = _sim(contrast, 0)
    offline = _offline(contrast, 0)
    result, updates, finals, keys = _stream(sim.raw, z_step=Z_STEP)
    _same(result, offline)
    nz = sim.raw.shape[0]
    assert sorted(finals) == list(range(nz))
    for k in range(nz):
        assert finals[k].dtype == bool and np.array_equal(finals[k], offline.mask_depth[k])
    # uniform step, default depth of field: plane k is final after plane k + R + 1
    r = ReconstructSettings().peak_radius
    for m, got in enumerate(keys[:-1]):
        assert got == ([m - r - 1] if m - r - 1 >= 0 else [])
    assert keys[-1] == list(range(nz - r - 1, nz))
    for up in updates:
        assert up.focus.dtype == np.float32 and up.mask_otsu.dtype == bool
        assert up.mask_depth.dtype == bool
        assert np.array_equal(up.focus, offline.focus[up.index])
    # types and the contract of StackResult
    assert offline.focus.dtype == np.float32 and offline.focus.shape == sim.raw.shape
    assert offline.mask_depth.dtype == bool and offline.mask_otsu.dtype == bool
    assert offline.depth.dtype == offline.all_in_focus.dtype == np.float32
    assert offline.confidence.min() >= 0 and offline.confidence.max() <= 1
    assert np.array_equal(offline.z_um, sim.z_um)
    json.dumps(offline.meta)


def test_irregular_positions_deliver_every_plane_once() -> None:
    sim = _sim("brightfield", 1)
    rng = np.random.default_rng(0)
    z_um = 50.0 + np.cumsum(rng.uniform(1.0, 3.0, sim.raw.shape[0]))
    result, _, finals, _ = _stream(sim.raw, z_um, z_step=Z_STEP)
    assert sorted(finals) == list(range(sim.raw.shape[0]))
    for k, m in finals.items():
        assert np.array_equal(m, result.mask_depth[k])
    np.testing.assert_allclose(result.z_um, z_um - z_um[0])
    _same(result, reconstruct(sim.raw, z_um=z_um, z_step=Z_STEP))


def test_reversed_stack_gives_mirrored_masks() -> None:
    sim = _sim("fluorescence", 1)
    fwd = _offline("fluorescence", 1)
    rev = reconstruct(sim.raw[::-1], z_um=sim.z_um[::-1], z_step=Z_STEP)
    assert mask_scores(rev.mask_depth[::-1], fwd.mask_depth)["iou"] > 0.99
    # depth is measured from the lowest plane either way, so the two depth maps agree
    both = np.isfinite(fwd.depth) & np.isfinite(rev.depth)
    np.testing.assert_allclose(rev.depth[both], fwd.depth[both], atol=1e-3)


# -- against the simulator's truth ----------------------------------------------------------
@pytest.mark.parametrize("contrast", ["brightfield", "fluorescence"])
@pytest.mark.parametrize("seed", [0, 1])
def test_depth_masks_match_truth(contrast: str, seed: int) -> None:
    """Thresholds from the measurements in the README (Reconstruction; with a margin).

    On 15 x 192 x 192 stacks (seeds 0-4, both contrasts) the depth masks reach IoU 0.66-0.75
    against the exact truth and the stack-scope Otsu labels of the same maps 0.31-0.40 (at
    least 0.25 less); the mean depth error is 0.17-0.24 planes (argmax: 0.37-0.47); 79-88 % of
    the object pixels get a confident depth (object support leaves weakly textured interiors
    out), 95-98 % of the confident depths lie on objects.
    """
    sim = _sim(contrast, seed)
    res = _offline(contrast, seed)
    iou_depth = mask_scores(res.mask_depth, sim.mask)["iou"]
    iou_otsu = mask_scores(res.mask_otsu, sim.mask)["iou"]
    assert iou_depth >= 0.6
    assert iou_depth >= iou_otsu + 0.2
    # depth error in planes, over the confidently placed object pixels
    has = np.isfinite(sim.depth) & np.isfinite(res.depth)
    assert has.sum() >= 0.7 * np.isfinite(sim.depth).sum()
    err = np.abs(res.depth - sim.depth)[has] / Z_STEP
    argmax = np.argmax(res.focus, axis=0) * Z_STEP
    err_argmax = np.abs(argmax - sim.depth)[has] / Z_STEP
    assert err.mean() < 0.7
    assert err.mean() < err_argmax.mean() - 0.05  # the parabola beats the argmax
    # confident depths are mostly where objects are
    conf = np.isfinite(res.depth)
    assert np.isfinite(sim.depth)[conf].mean() > 0.9


def test_all_in_focus_is_closer_to_truth_than_any_plane() -> None:
    sim = _sim("brightfield", 0)
    res = _offline("brightfield", 0)
    truth = sim.all_in_focus
    err = float(np.mean(np.abs(res.all_in_focus - truth)))
    per_plane = [float(np.mean(np.abs(p.astype(np.float32) - truth))) for p in sim.raw]
    assert err < min(per_plane)


# -- exact synthetic cases -----------------------------------------------------------------
def _parabola_stack(depth: np.ndarray, z: np.ndarray, kind: str = "parabola") -> np.ndarray:
    dz = z[:, None, None] - depth[None]
    if kind == "parabola":
        return np.maximum(1.0, 100.0 - 20.0 * dz**2).astype(np.float32)
    return (100.0 * np.exp(-(dz**2) / 2.0)).astype(np.float32)


@pytest.mark.parametrize("refine", ["parabola", "gaussian"])
def test_exact_curves_give_exact_depth_and_masks(refine: str) -> None:
    z = np.arange(13, dtype=np.float64)
    rng = np.random.default_rng(3)
    truth = rng.uniform(4.5, 8.5, (24, 20)).astype(np.float32)
    maps = _parabola_stack(truth, z, refine)
    frames = rng.integers(0, 100, (13, 24, 20)).astype(np.uint16)
    settings = ReconstructSettings(refine=refine, depth_of_field=2.0, **PEAKS_ONLY)
    rec = StackReconstructor((24, 20), z_step=1.0, settings=settings)
    res, finals = feed(rec, frames, maps)
    np.testing.assert_allclose(res.depth, truth, atol=2e-3)
    assert (res.confidence > 0).all()  # calibrated: without support, not a high probability
    expected = np.abs(truth[None] - z[:, None, None]) <= 1.0
    near_edge = np.abs(np.abs(truth[None] - z[:, None, None]) - 1.0) < 1e-3
    assert np.array_equal(res.mask_depth[~near_edge], expected[~near_edge])
    assert all(np.array_equal(finals[k], res.mask_depth[k]) for k in range(13))
    # the all-in-focus image interpolates linearly between the two planes around the peak
    lo = np.floor(truth).astype(int)
    t = truth - lo
    yy, xx = np.indices(truth.shape)
    expect = (1 - t) * frames[lo, yy, xx] + t * frames[lo + 1, yy, xx]
    np.testing.assert_allclose(res.all_in_focus, expect, rtol=1e-3, atol=0.05)


def test_refine_none_gives_the_argmax_plane() -> None:
    z = np.arange(9, dtype=np.float64) * 2.0
    truth = np.full((8, 8), 7.3, np.float32)
    maps = _parabola_stack(truth / 2.0, z / 2.0)
    res = reconstruct(np.ones((9, 8, 8)), z_step=2.0, refine="none", window=4, strides=(2,))
    assert np.isnan(res.depth).all()  # flat frames
    rec = StackReconstructor(
        (8, 8), z_step=2.0, settings=ReconstructSettings(refine="none", **PEAKS_ONLY)
    )
    for k in range(9):
        rec.add(np.ones((8, 8)), focus=maps[k])
    out, _ = rec.finish()
    assert np.all(out.depth == 8.0)


def test_flat_stack_has_zero_confidence_and_empty_masks() -> None:
    frames = np.full((7, 64, 64), 1000, np.uint16)
    res = reconstruct(frames, z_step=1.0)
    assert np.all(res.confidence == 0)
    assert np.isnan(res.depth).all()
    assert not res.mask_depth.any()
    assert not res.mask_otsu.any()
    np.testing.assert_array_equal(res.all_in_focus, 1000.0)
    # a constant non-zero focus map too
    rec = StackReconstructor((16, 16), z_step=1.0)
    for _ in range(5):
        up = rec.add(np.zeros((16, 16)), focus=np.full((16, 16), 5.0))
        assert not up.mask_depth.any()
    out, _ = rec.finish()
    assert np.all(out.confidence == 0) and not out.mask_depth.any()


def test_peaks_at_the_stack_edges() -> None:
    """A peak on the first or last plane counts when a parabola through the three edge planes
    puts it within half the depth of field of that plane; a curve still rising steeply at the
    edge (a structure beyond the stack) does not count."""
    z = np.arange(9, dtype=np.float64)
    # columns: peak at -0.4 (just below plane 0), at 8.3 (just above the last plane),
    # at -3 (beyond the stack) and at 4 (inside)
    truth = np.array([[-0.4, 8.3, -3.0, 4.0]], np.float32)
    maps = (200.0 - 20.0 * (z[:, None, None] - truth[None]) ** 2).astype(np.float32)
    maps = np.maximum(maps, 1.0)
    settings = ReconstructSettings(depth_of_field=2.0, **PEAKS_ONLY)
    rec = StackReconstructor((1, 4), settings=settings)
    finals: dict[int, np.ndarray] = {}
    for k in range(9):
        up = rec.add(np.zeros((1, 4)), focus=maps[k])
        finals.update(up.final)
        if k == 4:  # the newest plane is judged as if the stack ended there
            assert up.mask_depth[0].tolist() == [False, False, False, True]
    res, rest = rec.finish()
    finals.update(rest)
    # the peaks just beyond the edge planes are in focus there, and their depth is put on them
    np.testing.assert_allclose(res.depth[0, [0, 1, 3]], [0.0, 8.0, 4.0], atol=1e-3)
    assert np.isnan(res.depth[0, 2]) and res.confidence[0, 2] == 0
    assert (res.confidence[0, [0, 1, 3]] > 0).all()
    expected = np.abs(truth[None] - z[:, None, None]) <= 1.0
    np.testing.assert_array_equal(res.mask_depth, expected)
    assert all(np.array_equal(finals[k], res.mask_depth[k]) for k in range(9))
    assert not res.mask_depth[:, 0, 2].any()


def test_two_peaks_at_one_pixel_are_both_in_focus() -> None:
    z = np.arange(15, dtype=np.float64)
    a = _parabola_stack(np.full((4, 4), 3.0, np.float32), z)
    b = _parabola_stack(np.full((4, 4), 11.0, np.float32), z)
    maps = np.maximum(a, b)
    rec = StackReconstructor((4, 4), settings=ReconstructSettings(depth_of_field=1.0, **PEAKS_ONLY))
    for k in range(15):
        rec.add(np.zeros((4, 4)), focus=maps[k])
    res, _ = rec.finish()
    planes = [k for k in range(15) if res.mask_depth[k].all()]
    assert planes == [3, 11]
    assert not res.mask_depth[[k for k in range(15) if k not in planes]].any()


# -- settings -------------------------------------------------------------------------------
def test_settings_defaults_and_json() -> None:
    s = ReconstructSettings()
    assert (s.measure, s.window, s.strides, s.paint, s.refine) == (
        "std",
        6,
        (3,),
        "mean",
        "parabola",
    )
    assert (s.min_confidence, s.peak_radius, s.depth_of_field) == (0.15, 6, None)
    assert (s.min_support, s.noise_floor, s.support_peak, s.smooth_radius) == (5.0, 0.5, 0.85, 3)
    assert (s.smooth_passes, s.guide_radius, s.guide_eps) == (1, 7, 1.0)
    assert (s.outlier_tolerance, s.outlier_size, s.support_close) == (1.0, 15, 3)
    assert (s.ambiguous_peak, s.support_large) == (0.7, 33)
    d = s.as_dict()
    assert json.loads(json.dumps(d)) == d
    big = ReconstructSettings.for_frame((2048, 2048))
    assert big.window == 12 and big.strides == (6,)
    assert ReconstructSettings.for_frame((512, 512), min_confidence=0.2).min_confidence == 0.2
    rec = StackReconstructor((32, 32), z_step=0.5)
    assert rec.depth_of_field == 1.0


# -- bad input ------------------------------------------------------------------------------
def test_bad_input_names_the_parameter() -> None:
    rec = StackReconstructor((32, 32), z_step=1.0)
    with pytest.raises(ValueError, match="frame must have shape"):
        rec.add(np.zeros((32, 31)))
    with pytest.raises(ValueError, match="frame must be a 2-D"):
        rec.add(np.zeros((2, 32, 32)))
    bad = np.zeros((32, 32))
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="frame contains NaN"):
        rec.add(bad)
    with pytest.raises(ValueError, match="focus must have shape"):
        rec.add(np.zeros((32, 32)), focus=np.zeros((8, 8)))
    with pytest.raises(ValueError, match="focus contains NaN"):
        rec.add(np.zeros((32, 32)), focus=bad)
    with pytest.raises(ValueError, match="z_um must be a finite"):
        rec.add(np.zeros((32, 32)), float("nan"))
    rec.add(np.zeros((32, 32)), 1.0)
    rec.add(np.zeros((32, 32)), 2.0)
    with pytest.raises(ValueError, match="z_um must be strictly monotonic"):
        rec.add(np.zeros((32, 32)), 1.5)
    with pytest.raises(ValueError, match="z_um must be strictly monotonic"):
        rec.add(np.zeros((32, 32)), 2.0)
    assert rec.n == 2
    rec.finish()
    with pytest.raises(RuntimeError, match="finish"):
        rec.add(np.zeros((32, 32)))
    for z_step in (0, -1.0, float("nan"), float("inf"), "2"):
        with pytest.raises(ValueError, match="z_step must be a positive number"):
            StackReconstructor((32, 32), z_step=z_step)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="refine must be one of"):
        ReconstructSettings(refine="cubic")
    with pytest.raises(ValueError, match="measure must be one of"):
        ReconstructSettings(measure="sharpness")
    with pytest.raises(ValueError, match="paint must be"):
        ReconstructSettings(paint="max")
    with pytest.raises(ValueError, match="min_confidence must be"):
        ReconstructSettings(min_confidence=1.5)
    with pytest.raises(ValueError, match="depth_of_field must be a positive"):
        ReconstructSettings(depth_of_field=0.0)
    with pytest.raises(ValueError, match="window must be a positive int"):
        ReconstructSettings(window=0)
    with pytest.raises(ValueError, match="peak_radius must be a positive int"):
        ReconstructSettings(peak_radius=0)
    with pytest.raises(ValueError, match="unknown setting"):
        ReconstructSettings.for_frame((64, 64), windw=8)
    with pytest.raises(ValueError, match="shape must be"):
        StackReconstructor((0, 32))
    with pytest.raises(ValueError, match="the stack has no planes"):
        StackReconstructor((32, 32)).finish()
    with pytest.raises(ValueError, match="z_um must hold one position per plane"):
        reconstruct(np.zeros((3, 32, 32)), z_um=[0.0, 1.0])
    with pytest.raises(ValueError, match="stack contains NaN"):
        reconstruct(np.full((3, 32, 32), np.nan))
    with pytest.raises(ValueError, match="measure must be one of"):
        reconstruct(np.zeros((3, 32, 32)), measure="nope")


def test_depth_is_above_the_lowest_plane_and_within_the_stack() -> None:
    """Up or down, depth is µm above the lowest plane, never outside the stack's span."""
    sim = simulate_stack((11, 96, 96), seed=5, z_step=2.0)
    up = reconstruct(sim.raw, z_step=2.0)
    down = reconstruct(sim.raw[::-1], z_um=[20.0 - 2.0 * k for k in range(11)])
    for result in (up, down):
        finite = result.depth[np.isfinite(result.depth)]
        assert finite.size and finite.min() >= 0 and finite.max() <= 20.0
        assert result.z_um.min() == 0 and result.z_um.max() == 20.0
    np.testing.assert_array_equal(down.z_um, up.z_um[::-1])
    both = np.isfinite(up.depth) & np.isfinite(down.depth)
    assert np.median(np.abs(up.depth[both] - down.depth[both])) < 0.5


def test_skipping_tentative_peaks_changes_no_final_mask() -> None:
    """``add(tentative=False)`` (headless streaming) gives the same final masks and maps."""
    sim = simulate_stack((11, 96, 96), seed=6, z_step=2.0)
    out = {}
    for tentative in (True, False):
        rec = StackReconstructor((96, 96), z_step=2.0)
        finals: dict[int, np.ndarray] = {}
        provisional = []
        for frame in sim.raw:
            update = rec.add(frame, tentative=tentative)
            finals.update(update.final)
            provisional.append(update.mask_depth)
        result, rest = rec.finish()
        finals.update(rest)
        out[tentative] = (result, finals, provisional)
    (full, f_full, p_full), (lean, f_lean, p_lean) = out[True], out[False]
    np.testing.assert_array_equal(full.mask_depth, lean.mask_depth)
    np.testing.assert_array_equal(full.depth, lean.depth)
    assert all(np.array_equal(f_full[k], f_lean[k]) for k in range(11))
    # the lean provisional masks hold only decided peaks: a subset of the final masks
    assert all(not (p & ~full.mask_depth[k]).any() for k, p in enumerate(p_lean))
    assert sum(int(p.sum()) for p in p_full) >= sum(int(p.sum()) for p in p_lean)


def _depth_sum(raw: np.ndarray) -> float:
    return float(np.nansum(reconstruct(raw, z_step=Z_STEP).depth))


@pytest.mark.skipif(
    "fork" not in __import__("multiprocessing").get_all_start_methods(), reason="no fork here"
)
def test_focus_helper_thread_survives_fork() -> None:
    # add() computes the focus map on a helper thread; a process forked after that (a
    # multiprocessing pool) must start its own helper, or its first add() waits forever
    import multiprocessing
    import warnings

    raw = _sim("brightfield", 0).raw[:8, :64, :64]
    here = _depth_sum(raw)  # the helper thread runs in this process now
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads may deadlock: the case here
        warnings.simplefilter("ignore", DeprecationWarning)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            there = pool.map_async(_depth_sum, [raw, raw]).get(timeout=120)
    assert there == [here, here]


def test_focus_given_or_computed_gives_the_same_stack() -> None:
    from livefocus.depth import plane_focus

    raw = _sim("fluorescence", 1).raw
    settings = ReconstructSettings.for_frame(raw.shape[1:])
    results = []
    for given in (False, True):
        rec = StackReconstructor(raw.shape[1:], z_step=Z_STEP, settings=settings)
        maps = np.stack([plane_focus(frame, settings) for frame in raw]) if given else None
        results.append(feed(rec, raw, maps))
    (a, fa), (b, fb) = results
    assert np.array_equal(a.focus, b.focus) and np.array_equal(a.mask_depth, b.mask_depth)
    assert np.array_equal(a.depth, b.depth, equal_nan=True)
    assert all(np.array_equal(fa[k], fb[k]) for k in fa) and fa.keys() == fb.keys()


def test_reconstruction_still_runs_once_the_interpreter_shuts_down(tmp_path: Path) -> None:
    # the helper threads take no work after interpreter shutdown began (a non-daemon thread
    # still running, an atexit handler): add() then computes the focus map itself
    script = tmp_path / "late.py"
    script.write_text(
        "import atexit, threading\n"
        "import numpy as np\n"
        "from livefocus.depth import reconstruct\n"
        "raw = np.random.default_rng(0).integers(0, 4000, (6, 32, 32)).astype(np.uint16)\n"
        "def late():\n"
        "    reconstruct(raw, z_step=1.0)\n"
        "    print('atexit ok', flush=True)\n"
        "atexit.register(late)\n"
        "def worker():\n"
        "    import time\n"
        "    time.sleep(0.5)\n"
        "    reconstruct(raw, z_step=1.0)\n"
        "    print('thread ok', flush=True)\n"
        "threading.Thread(target=worker).start()\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "thread ok" in out.stdout and "atexit ok" in out.stdout, (out.stdout, out.stderr)
