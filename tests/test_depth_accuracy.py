"""Depth masks on data the defaults were not tuned to: an independent generator, pure camera
noise, a rendered surface and hand-marked background of a real stack; calibration; the fast
paths against their references."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as hst
from support.feed import feed
from support.render_scene import render_stack
from support.report_accuracy import (
    BEFORE,
    background_fp,
    expected_calibration_error,
    reliability,
    reliability_in_focus,
    rendered_rows,
    roughness,
    scores,
    variance_argmax,
)

from livefocus.depth import (
    ReconstructSettings,
    StackReconstructor,
    StackResult,
    plane_focus,
    plane_support,
    reconstruct,
)
from livefocus.depth._holes import (
    closed,
    closed_reference,
    enclosed,
    enclosed_reference,
    fill_holes,
    fill_holes_reference,
)
from livefocus.depth._outliers import consistent, consistent_reference
from livefocus.depth._peaks import rival_peak, rival_peak_reference
from livefocus.depth._regions import grown, grown_reference
from livefocus.depth._signal import noise_sigma, noise_sigma_reference
from livefocus.depth._smooth import (
    guided_smooth,
    guided_smooth_reference,
    median9,
    smooth_depth,
    smooth_depth_reference,
)
from livefocus.depth._specks import without_specks, without_specks_reference
from livefocus.focus import focus_map
from livefocus.focus.measures import NOISE_SCALE
from livefocus.sim import mask_scores, simulate_stack
from livefocus.sim.volume import Phantom, noise_stack, phantom_stack, surface_stack

DATA = Path(__file__).parent / "data"
CONTRASTS = ("brightfield", "fluorescence")


@cache
def _phantom(contrast: str, seed: int) -> tuple[Phantom, StackResult]:
    ph = phantom_stack((20, 160, 160), seed=seed, contrast=contrast)
    return ph, reconstruct(ph.raw, z_step=1.0)


@pytest.mark.parametrize("contrast", ["brightfield", "fluorescence"])
def test_independent_phantom_background_and_depth(contrast: str) -> None:
    ph, res = _phantom(contrast, 7)
    sc = scores(res, ph.mask, ph.depth, 1.0)
    before = scores(reconstruct(ph.raw, z_step=1.0, **BEFORE), ph.mask, ph.depth, 1.0)
    assert sc["bg_fp"] <= 0.02, sc  # 0.4-1.0 % measured here, 0.5-0.8 % at 256² (README)
    assert sc["bg_fp"] < 0.5 * before["bg_fp"], (sc, before)
    assert sc["precision"] > before["precision"] + 0.1, (sc, before)
    assert sc["iou"] >= before["iou"] + 0.08, (sc, before)  # +0.16 / +0.26 measured here
    assert sc["mae"] <= 0.3, sc


@pytest.mark.parametrize("contrast", ["brightfield", "fluorescence"])
def test_specks_removed_raise_precision_on_the_independent_phantom(contrast: str) -> None:
    # measured here: IoU 0.553 -> 0.564 / 0.511 -> 0.563, precision 0.875 -> 0.912 /
    # 0.744 -> 0.863, recall within 0.004
    ph, res = _phantom(contrast, 7)
    sc = scores(res, ph.mask, ph.depth, 1.0)
    kept = scores(reconstruct(ph.raw, z_step=1.0, min_area=0), ph.mask, ph.depth, 1.0)
    assert sc["precision"] >= kept["precision"] + 0.02, (sc, kept)
    assert sc["iou"] >= kept["iou"] + 0.005, (sc, kept)
    assert sc["recall"] >= kept["recall"] - 0.02, (sc, kept)


@pytest.mark.parametrize("contrast", ["brightfield", "fluorescence"])
def test_third_generator_levels_hold(contrast: str) -> None:
    """`tests/support/phantom_points` (written after every choice of the rule): the levels
    measured on 2026-12-01 (IoU 0.184 / 0.163, background 15 / 18 %, against 0.168 / 0.132 and
    57 / 82 % before issue 12). The issue's targets are not met here; this guards what is."""
    from support.phantom_points import points_stack

    pt = points_stack((20, 128, 128), seed=7, contrast=contrast)
    sc = scores(reconstruct(pt.raw, z_step=1.0), pt.mask, pt.depth, 1.0)
    before = scores(reconstruct(pt.raw, z_step=1.0, **BEFORE), pt.mask, pt.depth, 1.0)
    assert sc["iou"] >= max(0.14, before["iou"]), (sc, before)
    assert sc["bg_fp"] <= min(0.25, 0.4 * before["bg_fp"]), (sc, before)


@pytest.mark.parametrize("contrast", ["brightfield", "fluorescence"])
def test_pure_camera_noise_marks_almost_nothing(contrast: str) -> None:
    noise = noise_stack((20, 128, 128), seed=3, contrast=contrast)
    res = reconstruct(noise.raw, z_step=1.0)
    assert res.mask_depth.mean() <= 0.01
    assert np.isfinite(res.depth).mean() <= 0.01


@pytest.mark.parametrize("seed", [0, 2])
def test_blind_rendered_scene_depth_beats_the_peers(seed: int) -> None:
    """The thin-lens renderer written blind (tests/support/render_scene.py): on the pixels
    that keep a depth, its error is under the target and under both scipy peers' there
    (24 x 160²: 0.37 / 0.49 against Sobel 0.44 / 0.74 and variance 0.58 / 0.90 measured)."""
    rs = render_stack((24, 160, 160), seed=seed)
    again = render_stack((24, 160, 160), seed=seed)
    assert np.array_equal(rs.raw, again.raw) and np.array_equal(rs.depth, again.depth)
    (_, label, sc), *peers = rendered_rows(rs, seed)
    assert label == "after" and sc["coverage"] > 0.1
    assert sc["mae"] <= 0.6, sc
    for _, name, peer in peers:
        assert sc["mae"] < peer["mae_same_pixels"], (name, sc, peer)
        assert sc["mae"] < 0.5 * peer["mae"], (name, sc, peer)  # over all textured pixels


def test_rendered_surface_depth_and_roughness() -> None:
    surf = surface_stack((44, 128, 128), seed=5)
    res = reconstruct(surf.raw, z_step=1.0)
    before = reconstruct(surf.raw, z_step=1.0, **BEFORE)
    sc, sb = (scores(r, surf.mask, surf.depth, 1.0) for r in (res, before))
    assert sc["mae"] <= 0.6, sc
    assert sc["mae"] < sb["mae"]
    assert roughness(res.depth) < 0.5 * roughness(before.depth)
    assert roughness(res.depth) <= 0.1  # 0.05 measured at 256² (README)
    # the step is not blurred: the pixels near it that keep a depth keep their own side's
    # (0.49 planes measured here; the old rule mixed the two sides, 3.2 planes)
    edge = surf.meta["edge"]
    err = np.abs(res.depth - surf.depth)[edge & np.isfinite(res.depth)]
    err_before = np.abs(before.depth - surf.depth)[edge & np.isfinite(before.depth)]
    assert err.size >= 10 and np.mean(err) <= 1.0 < np.mean(err_before)


def test_sim_figures_do_not_drop() -> None:
    st = simulate_stack((15, 192, 192), seed=1, contrast="fluorescence", z_step=2.0)
    after = scores(reconstruct(st.raw, z_step=2.0), st.mask, st.depth, 2.0)
    before = scores(reconstruct(st.raw, z_step=2.0, **BEFORE), st.mask, st.depth, 2.0)
    assert after["iou"] >= before["iou"]
    assert after["bg_fp"] < 0.5 * before["bg_fp"]
    assert after["mae"] < before["mae"]


def test_mask_counts_support_next_to_the_peak_plane() -> None:
    # the support of the planes either side of a mask's peak counts: IoU 0.756 measured,
    # 0.698 when only the peak plane's support counted (and the support was smoothed)
    st = simulate_stack((15, 192, 192), seed=1, contrast="brightfield", z_step=2.0)
    sc = scores(reconstruct(st.raw, z_step=2.0), st.mask, st.depth, 2.0)
    assert sc["iou"] >= 0.715, sc
    assert sc["bg_fp"] <= 0.06, sc


def test_camera_model_gives_the_noise_instead_of_the_data() -> None:
    st = simulate_stack((12, 128, 128), seed=2, contrast="fluorescence", z_step=2.0)
    camera = {"gain": 1.0, "offset": 100.0, "read_noise": 2.0}  # the simulator's camera
    known = scores(reconstruct(st.raw, z_step=2.0, **camera), st.mask, st.depth, 2.0)
    estimated = scores(reconstruct(st.raw, z_step=2.0), st.mask, st.depth, 2.0)
    assert abs(known["iou"] - estimated["iou"]) < 0.05, (known, estimated)
    assert abs(known["bg_fp"] - estimated["bg_fp"]) < 0.03, (known, estimated)
    # a camera far noisier than the data lets far fewer peaks through
    loud = reconstruct(st.raw, z_step=2.0, gain=1.0, offset=100.0, read_noise=200.0)
    assert (
        np.isfinite(loud.depth).mean()
        < 0.5 * np.isfinite(reconstruct(st.raw, z_step=2.0).depth).mean()
    )


def test_an_isolated_depth_is_less_confident() -> None:
    """The confidence counts the neighbours that keep a depth: the same peak alone in its
    5 x 5 square is less likely right than within a surface (on every generator measured)."""
    from livefocus.depth._calibration import calibrated, depth_density, peak_features

    prom, support, height = (np.full((9, 9), v, np.float32) for v in (0.6, 20.0, 10.0))
    own = peak_features(prom, support, height)
    lone = np.zeros((9, 9), bool)
    lone[4, 4] = True
    dense = calibrated(own, prom, depth_density(np.ones((9, 9), bool)))
    sparse = calibrated(own, prom, depth_density(lone))
    assert sparse[4, 4] < dense[4, 4] - 0.3, (sparse[4, 4], dense[4, 4])
    flat = np.zeros(3, np.float32)
    ones = np.ones(3, np.float32)
    assert calibrated(peak_features(flat, ones, ones), flat, ones).max() == 0


def test_confidence_calibration_on_sim_and_on_the_independent_phantom() -> None:
    st = simulate_stack((15, 192, 192), seed=4, contrast="brightfield", z_step=2.0)
    sim_rel = reliability([(reconstruct(st.raw, z_step=2.0), st.depth, 2.0)])
    assert expected_calibration_error(sim_rel) <= 0.06  # fitted on sim (other seeds)
    results = [(_phantom(c, 7)[1], _phantom(c, 7)[0].depth, 1.0) for c in CONTRASTS]
    rel = reliability(results)
    # it does not transfer well: 0.20 measured at 256² (README); bound it, do not hide it
    assert expected_calibration_error(rel) <= 0.35
    used = rel["count"] > 200
    assert np.all(np.diff(rel["right"][used]) > -0.1)  # more confident, more often right


def test_reliability_in_focus_counts_a_thick_objects_sharp_face() -> None:
    # a slab 6 planes thick whose upper face is the only texture: its depth is the face's,
    # 2.5 planes from the truth's column centre, and in focus in the truth's masks
    z = np.arange(12, dtype=np.float64)
    curve = 1 + 50 * np.exp(-((z - 8) ** 2) / 2)
    maps = np.ones((12, 8, 8), np.float32) * curve[:, None, None].astype(np.float32)
    settings_ = ReconstructSettings(min_support=0.0, noise_floor=0.0, min_probability=0.0)
    rec = StackReconstructor((8, 8), z_step=1.0, settings=settings_)
    for k in range(12):
        rec.add(np.zeros((8, 8), np.uint16), focus=maps[k])
    res, _ = rec.finish()
    mask = np.zeros((12, 8, 8), bool)
    mask[3:9] = True  # the slab, planes 3-8, in focus on each
    centre = np.full((8, 8), 5.5, np.float32)
    assert reliability([(res, centre, 1.0)])["right"].sum() == 0
    rel = reliability_in_focus([(res, mask)])
    assert rel["count"].sum() == 64 and rel["right"][rel["count"] > 0].min() == 1.0
    mask[6:] = False  # the face is not in the truth: no longer right
    assert reliability_in_focus([(res, mask)])["right"].sum() == 0


def test_real_stack_marked_background_gets_no_depth() -> None:
    marks = json.loads((DATA / "pseudoscorpion_background.json").read_text())
    stack = tifffile.imread(DATA / marks["file"])
    after = background_fp(reconstruct(stack, z_step=1.0), marks["regions"])
    before = background_fp(reconstruct(stack, z_step=1.0, **BEFORE), marks["regions"])
    assert after <= 0.02, after
    assert before > 0.2  # the peak rule alone gave the flat background a depth


def test_real_camera_bracket_of_a_circuit_board_is_smooth_and_ordered() -> None:
    """focus-stack's circuit-board bracket (tests/data/LICENSES.md): the board, the switch's
    body and its button are flat surfaces at three heights; the depth map keeps them apart
    (edges kept) and is smooth by the issue's measure, where the peak rule alone and a 7 x 7
    variance argmax are not."""
    stack = tifffile.imread(DATA / "pcb_focus_4x.tif")
    assert stack.shape == (10, 320, 448)
    res = reconstruct(stack, z_step=1.0)
    depth = res.depth
    button = float(np.nanmedian(depth[148:218, 198:268]))
    body = float(np.nanmedian(depth[98:138, 148:328]))
    board = float(np.nanmedian(depth[0:68, 348:448]))
    assert button - body > 1.5 and body - board > 1.0, (button, body, board)
    assert roughness(depth) <= 0.06  # 0.017 measured (README; 0.028 with every depth kept)
    assert np.isfinite(depth).mean() > 0.2
    before = reconstruct(stack, z_step=1.0, **BEFORE)
    assert roughness(before.depth) > 0.2  # 0.40: the peak rule alone is rough here
    assert roughness(variance_argmax(stack)) > 0.3  # 0.63


def test_noise_sigma_matches_reference_and_camera_model() -> None:
    rng = np.random.default_rng(0)
    frame = (100 + rng.normal(0, 3.0, (40, 50))).round()
    s = ReconstructSettings()
    assert noise_sigma(frame, s) == pytest.approx(noise_sigma_reference(frame), rel=1e-4)
    assert noise_sigma(frame, s) == pytest.approx(3.0, rel=0.1)
    cam = ReconstructSettings(gain=2.0, offset=100.0, read_noise=1.5)
    level = np.full((8, 8), 150, np.uint16)  # integer frames: their rounding, 1/12 ADU²
    assert noise_sigma(level, cam) == pytest.approx(np.sqrt(2.0 * 50 + 1.5**2 + 1 / 12))
    # float frames: only their float32 rounding
    assert noise_sigma(level.astype(np.float32), cam) == pytest.approx(np.sqrt(2.0 * 50 + 1.5**2))


def test_a_normalised_float_stack_is_judged_as_its_integer_original() -> None:
    """A stack divided by its camera's range ([0, 1] floats) gets the masks of the integer
    stack: the quantisation step of 1 that integer frames add to the noise is not added to
    float frames (it would dwarf their noise and leave them without any mask)."""
    st = simulate_stack((12, 128, 128), seed=2, z_step=2.0)
    expected = reconstruct(st.raw, z_step=2.0)
    assert expected.mask_depth.mean() > 0.02
    for scale in (1 / 4095, 1 / 65535, 1000.0):
        got = reconstruct((st.raw * scale).astype(np.float32), z_step=2.0)
        assert mask_scores(got.mask_depth, expected.mask_depth)["iou"] > 0.98, scale
    frame = (st.raw[6] / 4095).astype(np.float32)
    assert noise_sigma(frame, ReconstructSettings()) == pytest.approx(
        noise_sigma_reference(frame), rel=1e-4
    )
    zeros = reconstruct(np.zeros((5, 32, 32), np.float32), z_step=1.0)
    assert not np.isfinite(zeros.depth).any() and not zeros.mask_depth.any()


def test_smooth_depth_matches_reference_and_keeps_steps() -> None:
    rng = np.random.default_rng(1)
    depth = np.where(np.arange(24)[None, :] < 12, 2.0, 8.0) + rng.normal(0, 0.2, (20, 24))
    depth = depth.astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    weight = rng.uniform(0.2, 1.0, depth.shape).astype(np.float32)
    fast = smooth_depth(depth, weight, tolerance=1.0, radius=2)
    ref = smooth_depth_reference(depth, weight, tolerance=1.0, radius=2)
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-4)
    # blocks of rows (any size, down to one row; a frame of one block) change nothing
    for block in (1, 24 * 3, 24 * 7, 10**6):
        blocked = smooth_depth(depth, weight, tolerance=1.0, radius=2, block=block)
        np.testing.assert_array_equal(blocked, fast)
    assert np.array_equal(np.isnan(fast), np.isnan(depth))
    fin = np.isfinite(fast)
    assert np.nanmax(np.abs(fast - np.where(np.arange(24)[None, :] < 12, 2.0, 8.0))[fin]) < 1.0
    assert np.nanstd(fast[:, :10]) < np.nanstd(depth[:, :10])


def test_guided_smooth_matches_reference_and_keeps_steps() -> None:
    rng = np.random.default_rng(4)
    step = np.where(np.arange(30)[None, :] < 15, 3.0, 9.0)
    depth = (step + rng.normal(0, 0.2, (24, 30))).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    weight = rng.uniform(0.2, 1.0, depth.shape).astype(np.float32)
    fast = guided_smooth(depth, weight, radius=3, eps=0.25)
    ref = guided_smooth_reference(depth, weight, radius=3, eps=0.25)
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-4)
    assert np.array_equal(np.isnan(fast), np.isnan(depth))
    err, err_in = np.abs(fast - step), np.abs(depth - step)
    assert np.nanmax(err) < 1.0  # the step stays where it is
    assert np.nanmean(err[:, :10]) < 0.6 * np.nanmean(err_in[:, :10])  # flat parts smoothed


@given(
    hst.integers(1, 40),
    hst.integers(1, 40),
    hst.sampled_from([1, 3, 5, 7]),
    hst.floats(0.05, 0.95),
    hst.integers(0, 2**31 - 1),
)
@settings(max_examples=60, deadline=None)
def test_enclosed_matches_reference(ny: int, nx: int, size: int, density: float, seed: int) -> None:
    mask = np.random.default_rng(seed).random((ny, nx)) < density
    assert np.array_equal(enclosed(mask, size), enclosed_reference(mask, size))


@given(
    hst.integers(1, 40),
    hst.integers(1, 40),
    hst.sampled_from([1, 3, 5, 7]),
    hst.sampled_from([0, 1, 4, 30, 144, 10_000]),
    hst.floats(0.05, 0.95),
    hst.integers(0, 2**31 - 1),
)
@settings(max_examples=80, deadline=None)
def test_closed_matches_reference_and_keeps_subsets(
    ny: int, nx: int, size: int, max_hole: int, density: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((ny, nx)) < density
    got = closed(mask, size, max_hole)
    assert np.array_equal(got, closed_reference(mask, size, max_hole))
    assert not (mask & ~got).any()  # it only adds
    part = mask & (rng.random((ny, nx)) < 0.7)  # a subset gives a subset (provisional masks)
    assert not (closed(part, size, max_hole) & ~got).any()


def test_closed_fills_an_objects_interior_not_the_space_between_objects() -> None:
    cell = np.zeros((40, 60), bool)
    cell[5:20, 5:20] = True
    cell[9:16, 9:16] = False  # 49 px of interior with no focus peak
    cell[5:20, 30:45] = True
    cell[5:20, 36:38] = False  # a 2 px cut through the second object
    got = closed(cell, 5, 144)
    assert got[9:16, 9:16].all() and got[5:20, 36:38].all()
    assert not got[5:20, 21:29].any()  # 10 px between the objects stay apart
    assert not closed(cell, 5, 30)[12, 12]  # a hole above max_hole stays
    assert closed(cell, 1, 49)[12, 12] and not closed(cell, 1, 48)[12, 12]
    ring = np.zeros((60, 60), bool)
    ring[10:50, 10:50] = True
    ring[14:46, 14:46] = False  # a hollow shell's section: 1024 px inside
    assert not closed(ring, 5, 144)[30, 30]
    assert np.array_equal(closed(cell, 1, 0), cell)


def test_enclosed_bridges_speckle_gaps_only() -> None:
    ring = np.zeros((30, 30), bool)
    ring[5:25:2, 5] = ring[5:25:2, 24] = ring[5, 5:25:2] = ring[24, 5:25:2] = True  # dotted
    assert not fill_holes(ring)[15, 15]  # a dotted ring encloses nothing
    assert enclosed(ring, 3)[15, 15] and not enclosed(ring, 3)[2, 2]
    apart = np.zeros((9, 20), bool)
    apart[:, 2:6] = apart[:, 9:13] = True  # objects 3 pixels apart stay apart
    assert not enclosed(apart, 3)[4, 7]


@given(
    hst.integers(1, 30),
    hst.integers(1, 30),
    hst.integers(0, 12),
    hst.floats(0.05, 0.8),
    hst.integers(0, 2**31 - 1),
)
@settings(max_examples=60, deadline=None)
def test_without_specks_matches_reference_and_skimage(
    ny: int, nx: int, area: int, density: float, seed: int
) -> None:
    from skimage.morphology import remove_small_objects

    mask = np.random.default_rng(seed).random((ny, nx)) < density
    fast = without_specks(mask, area)
    assert np.array_equal(fast, without_specks_reference(mask, area))
    if area > 1:  # scikit-image's, 8-connected (since 0.26 "max_size": the largest removed)
        import inspect

        if "max_size" in inspect.signature(remove_small_objects).parameters:
            theirs = remove_small_objects(mask, max_size=area - 1, connectivity=2)
        else:
            theirs = remove_small_objects(mask, min_size=area, connectivity=2)
        assert np.array_equal(fast, theirs)


def test_without_specks_matches_reference_with_many_specks() -> None:
    # a noisy mask holds thousands of specks: the path that relabels the whole frame
    rng = np.random.default_rng(11)
    for density in (0.08, 0.3):
        mask = rng.random((160, 200)) < density
        for area in (2, 10):
            assert np.array_equal(without_specks(mask, area), without_specks_reference(mask, area))
    view = (rng.random((60, 80)) < 0.3)[::2, 1::2]  # not contiguous
    assert np.array_equal(without_specks(view, 5), without_specks_reference(view, 5))


def test_specks_leave_the_final_masks_only() -> None:
    # a speck of 9 pixels (3 x 3) goes, one of 10 stays (a 3 x 3 with a diagonal neighbour:
    # 8-connected), on the plane that is in focus; the depth map keeps both
    z = np.arange(9, dtype=np.float64)
    curve = (1 + 50 * np.exp(-((z - 4) ** 2) / 2)).astype(np.float32)
    maps = np.ones((9, 20, 30), np.float32)
    maps[:, 5:8, 5:8] = curve[:, None, None]
    maps[:, 5:8, 15:18] = curve[:, None, None]
    maps[:, 8, 18] = curve
    frames = np.zeros((9, 20, 30), np.uint16)
    for area, kept in ((10, (False, True)), (0, (True, True))):
        settings_ = ReconstructSettings(
            min_support=0.0, noise_floor=0.0, min_probability=0.0, min_area=area
        )
        rec = StackReconstructor((20, 30), z_step=1.0, settings=settings_)
        res, finals = feed(rec, frames, maps)
        assert (res.mask_depth[4, 6, 6], res.mask_depth[4, 6, 16]) == kept
        assert all(np.array_equal(finals[k], res.mask_depth[k]) for k in range(9))
        assert np.isfinite(res.depth[6, 6]) and np.isfinite(res.depth[6, 16])


@given(
    hst.integers(1, 30),
    hst.integers(1, 30),
    hst.floats(0.05, 0.6),
    hst.floats(0.05, 0.6),
    hst.floats(0.0, 1.0),
    hst.integers(0, 12),
    hst.integers(0, 2**31 - 1),
)
@settings(max_examples=80, deadline=None)
def test_grown_matches_reference(
    ny: int, nx: int, density: float, cdensity: float, share: float, least: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((ny, nx)) < density
    candidates = rng.random((ny, nx)) < cdensity
    fast = grown(mask, candidates, share, least)
    assert np.array_equal(fast, grown_reference(mask, candidates, share, least))
    assert not (mask & ~fast).any() and not (fast & ~mask & ~candidates).any()


def test_grown_joins_whole_regions_by_their_share() -> None:
    mask = np.zeros((12, 30), bool)
    mask[2:10, 2:5] = True  # 24 pixels of a 24 + 40 region (share 0.375)
    mask[2:10, 20:22] = True  # 16 pixels of a 16 + 48 region (share 0.25)
    candidates = np.zeros_like(mask)
    candidates[2:10, 5:10] = candidates[2:10, 22:28] = True
    candidates[0, 0] = True  # touches nothing of the mask
    out = grown(mask, candidates, 0.3, 10)
    assert out[2:10, 2:10].all() and not out[2:10, 22:28].any() and not out[0, 0]
    assert grown(mask, candidates, 0.25, 10)[2:10, 22:28].all()
    assert not grown(mask, candidates, 0.3, 25)[2:10, 5:10].any()  # too few held pixels
    view = np.ascontiguousarray(mask)[::2, ::2]
    assert np.array_equal(
        grown(view, candidates[::2, ::2], 0.3, 2),
        grown_reference(view, candidates[::2, ::2], 0.3, 2),
    )


def test_growth_fills_an_objects_flat_part_on_its_plane_only() -> None:
    """A bright square whose left half is textured (a focus peak on plane 4) and whose right
    half is flat (a focus curve without a peak): with growth the flat half joins the mask of
    plane 4, as one object, and nowhere else; a flat square with no peak at all stays out."""
    z = np.arange(9, dtype=np.float64)
    curve = (1 + 50 * np.exp(-((z - 4) ** 2) / 2)).astype(np.float32)
    maps = np.ones((9, 48, 96), np.float32)
    maps[:, 16:32, 16:24] = curve[:, None, None]  # the textured half: peaks on plane 4
    frames = np.full((9, 48, 96), 100, np.uint16)
    frames[:, 16:32, 16:32] = 300  # the object, flat in the frame
    frames[:, 16:32, 60:76] = 300  # an object without any peak
    camera = {"read_noise": 2.0, "gain": 1.0, "offset": 0.0}
    got = {}
    for share in (0.0, 0.3):
        settings_ = ReconstructSettings(grow_share=share, **camera)
        rec = StackReconstructor((48, 96), z_step=1.0, settings=settings_)
        res, finals = feed(rec, frames, maps)
        assert all(np.array_equal(finals[k], res.mask_depth[k]) for k in range(9))
        got[share] = res.mask_depth
    assert got[0.0][4, 16:32, 16:24].all() and not got[0.0][4, 16:32, 24:32].any()
    assert got[0.3][4, 16:32, 16:32].all()  # the flat half joined on plane 4
    assert not (got[0.3][:, :, 48:]).any()  # no peak anywhere: never grown
    extra = got[0.3] & ~got[0.0]
    assert extra.any() and not (extra & ~got[0.0].any(axis=(1, 2))[:, None, None]).any()


@pytest.mark.parametrize("contrast", ["brightfield", "fluorescence"])
def test_growth_raises_recall_on_the_independent_phantom(contrast: str) -> None:
    ph, res = _phantom(contrast, 7)
    sc = scores(res, ph.mask, ph.depth, 1.0)
    flat = scores(reconstruct(ph.raw, z_step=1.0, grow_share=0.0), ph.mask, ph.depth, 1.0)
    assert sc["recall"] >= flat["recall"] + 0.01, (sc, flat)
    assert sc["iou"] >= flat["iou"] + 0.005, (sc, flat)
    assert sc["precision"] >= flat["precision"] - 0.03, (sc, flat)


def test_fill_holes_matches_reference() -> None:
    rng = np.random.default_rng(5)
    for shape, density in (((64, 80), 0.5), ((64, 80), 0.7), ((1, 9), 0.5), ((7, 1), 0.3)):
        mask = rng.random(shape) < density
        fast = fill_holes(mask)
        assert np.array_equal(fast, fill_holes_reference(mask)), (shape, density)
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[3:6, 3:6] = False
    assert fill_holes(ring)[4, 4] and not fill_holes(ring)[0, 0]


@given(
    hst.integers(7, 40),
    hst.integers(7, 40),
    hst.sampled_from([7, 9, 15]),
    hst.floats(0.0, 0.8),
    hst.integers(0, 2**31 - 1),
)
@settings(max_examples=40, deadline=None)
def test_consistent_matches_reference(ny: int, nx: int, size: int, holes: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    depth = rng.normal(5.0, 2.0, (ny, nx)).astype(np.float32)
    depth[rng.random((ny, nx)) < holes] = np.nan
    assert np.array_equal(
        consistent(depth, tolerance=1.0, size=size),
        consistent_reference(depth, tolerance=1.0, size=size),
    )


def test_consistent_drops_ghosts_and_keeps_steps_and_thin_lines() -> None:
    depth = np.full((40, 40), 3.0, np.float32)
    depth[:, 20:] = 9.0  # a step of 6
    depth[10, 5] = 8.0  # a ghost peak on the low side
    depth[30:33, 30:33] = 2.0  # a small blob of ghosts on the high side
    depth[:, 0] = np.nan
    keep = consistent(depth, tolerance=1.0)
    assert not keep[10, 5] and not keep[30:33, 30:33].any()
    assert keep[:, 1:20].sum() == 40 * 19 - 1 and keep[:, 20:].sum() == 40 * 20 - 9
    assert not keep[:, 0].any()
    line = np.full((40, 40), np.nan, np.float32)
    line[:, 12:14] = 17.0  # a filament in empty background keeps its own depth
    line[5, 30] = 1.0
    assert consistent(line, tolerance=1.0)[:, 12:14].all()
    assert not consistent(np.full((9, 9), np.nan, np.float32), tolerance=1.0).any()
    # a depth range of 400 planes (past 127 tolerances: scipy's float median) still drops a
    # ghost 1.5 planes off, however far the farthest depth lies
    deep = np.zeros((40, 40), np.float32)
    deep[20, 20], deep[0, 0] = 1.5, 399.0
    assert not consistent(deep, tolerance=1.0)[20, 20]
    assert np.array_equal(
        consistent(deep, tolerance=1.0), consistent_reference(deep, tolerance=1.0)
    )


def test_too_small_windows_and_float32_overflow_are_refused() -> None:
    with pytest.raises(ValueError, match="window must be at least 4 for measure 'laplacian'"):
        ReconstructSettings(window=3, fuse=("laplacian",))
    with pytest.raises(ValueError, match="window must be at least 2"):
        ReconstructSettings(window=1)
    huge = np.full((3, 16, 16), 1e38) * (1 + np.arange(16))[None, None, :]
    with pytest.raises(ValueError, match="beyond float32"):
        reconstruct(huge, z_step=1.0)
    big = np.full((3, 16, 16), 1e30) * (1 + np.arange(16))[None, None, :]
    with pytest.raises(ValueError, match="exceeds float32"):
        reconstruct(big, z_step=1.0, measure="variance")


def test_tiny_frames_of_noise_get_no_confident_depth() -> None:
    noise = np.random.default_rng(5).normal(100.0, 5.0, (9, 3, 3))
    assert np.isfinite(reconstruct(noise, z_step=1.0).depth).mean() <= 0.2
    assert noise_sigma(noise[0], ReconstructSettings()) == pytest.approx(
        noise_sigma_reference(noise[0]), rel=1e-5
    )  # float32 against float64


@pytest.mark.parametrize("measure", sorted(NOISE_SCALE))
def test_noise_scale_is_each_measures_law(measure: str) -> None:
    power, scale = NOISE_SCALE[measure]
    rng = np.random.default_rng(4)
    for sigma in (2.0, 9.0):
        noise = rng.normal(500.0, sigma, (192, 192))
        got = np.asarray(focus_map(noise, measure, window=6, strides=(3,), paint="mean")).mean()
        assert got == pytest.approx(scale * sigma**power, rel=0.06)


def test_fused_focus_is_the_geometric_mean_in_intensity_units() -> None:
    frame = simulate_stack((3, 64, 64), seed=2).raw[1]
    s = ReconstructSettings(fuse=("tenengrad", "smd"))
    maps = [
        np.asarray(focus_map(frame, m, window=6, strides=(3,), paint="mean"), np.float64)
        for m in ("std", "tenengrad", "smd")
    ]
    expect = (maps[0] * np.sqrt(maps[1] / 24.0) * maps[2] / (4.0 / np.sqrt(np.pi))) ** (1 / 3)
    np.testing.assert_allclose(plane_focus(frame, s), expect, rtol=1e-5)
    assert plane_focus(frame, ReconstructSettings()).dtype == np.float32
    # the noise floor keeps its meaning: pure noise stays unmarked with a fused measure
    noise = noise_stack((12, 96, 96), seed=3, contrast="fluorescence")
    res = reconstruct(noise.raw, z_step=1.0, fuse=("tenengrad",))
    assert res.mask_depth.mean() <= 0.01 and res.meta["fuse"] == ["tenengrad"]


@given(
    hst.integers(1, 12),
    hst.integers(0, 2**31 - 1),
    hst.sampled_from([0.0, 1.0, 1e4]),
)
@settings(max_examples=60, deadline=None)
def test_rival_peak_matches_reference(n: int, seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    focus = (rng.random((n, 5, 6)) * scale).astype(np.float32)
    arg = np.argmax(focus, axis=0)
    np.testing.assert_allclose(
        rival_peak(focus, arg), rival_peak_reference(focus, arg), rtol=1e-6, atol=0
    )


def test_two_layers_of_equal_focus_get_no_depth_but_both_masks() -> None:
    z = np.arange(16, dtype=np.float64)
    one = 1 + 50 * np.exp(-((z - 4) ** 2) / 2)
    two = one + 50 * np.exp(-((z - 11) ** 2) / 2)  # a second layer as sharp as the first
    maps = np.ones((16, 8, 8), np.float32) * one[:, None, None]
    maps[:, :, 4:] = two[:, None, None]
    rival = rival_peak(maps, np.argmax(maps, axis=0))
    assert (rival[:, :4] == 0).all() and np.allclose(rival[:, 4:], 1.0, atol=1e-3)
    frames = np.zeros((16, 8, 8), np.uint16)
    for kw, has in (({}, False), ({"ambiguous_peak": 0.0}, True)):
        # frames of zeros carry no support: their calibrated probability means nothing here
        settings_ = ReconstructSettings(min_support=0.0, noise_floor=0.0, min_probability=0.0, **kw)
        rec = StackReconstructor((8, 8), z_step=1.0, settings=settings_)
        for k in range(16):
            rec.add(frames[k], focus=maps[k])
        res, _ = rec.finish()
        assert np.isfinite(res.depth[:, :4]).all()
        assert (
            np.isfinite(res.depth[:, 4:]).all() == has and (res.confidence[:, 4:] > 0).all() == has
        )
        assert res.mask_depth[4, :, 4:].all() and res.mask_depth[11, :, 4:].all()


def test_a_few_saturated_pixels_change_depths_only_near_them() -> None:
    """The polarity vote counts pixels: a saturated streak does not flip a whole frame."""
    raw = simulate_stack((12, 128, 128), seed=1).raw.copy()
    clean = reconstruct(raw, z_step=2.0)
    raw[6, 60, 40:55] = np.iinfo(raw.dtype).max
    hit = reconstruct(raw, z_step=2.0)
    far = np.ones((128, 128), bool)
    far[40:81, 20:75] = False
    assert np.array_equal(np.isfinite(clean.depth)[far], np.isfinite(hit.depth)[far])
    both = np.isfinite(clean.depth) & np.isfinite(hit.depth) & far
    assert np.abs(clean.depth - hit.depth)[both].max() < 0.01
    assert np.array_equal(clean.mask_depth[:, far], hit.mask_depth[:, far])


def test_a_wide_object_on_a_plain_field_keeps_its_interior_support() -> None:
    yy, xx = np.mgrid[0:96, 0:96]
    frame = 100.0 + 60.0 * (((yy - 48) ** 2 + (xx - 48) ** 2) < 20**2)  # a 40 px bright disk
    frame += np.random.default_rng(1).normal(0, 2.0, frame.shape)
    sigma = noise_sigma(frame, ReconstructSettings())
    wide = plane_support(frame, ReconstructSettings(), sigma)
    small = plane_support(frame, ReconstructSettings(support_large=0), sigma)
    assert wide[48, 48] > 20 and small[48, 48] < 5  # the 17 px top-hat sees no interior
    assert wide[5, 5] < 5 and small[5, 5] < 5  # the field stays unsupported


def test_median_network_is_the_median() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(size=(9, 30, 40)).astype(np.float32)
    values[:, 0, 0] = 1.0  # ties
    assert np.array_equal(median9(values), np.median(values, axis=0))


@pytest.mark.parametrize("measure", ["tenengrad", "brenner", "variance", "smd", "dwt"])
def test_every_measure_with_a_noise_law_gives_a_depth_map(measure: str) -> None:
    """The rule judges each measure's maps in intensity units (``intensity_units``): in
    tenengrad's own units, its calibrated confidence rated every depth below the least
    probability, and the depth map was empty (brenner kept 1 pixel of 4096)."""
    stack = simulate_stack((12, 96, 96), seed=1, contrast="fluorescence", z_step=2.0)
    plain = reconstruct(stack.raw, z_step=2.0)
    other = reconstruct(stack.raw, z_step=2.0, measure=measure)
    kept = np.isfinite(other.depth)
    assert kept.mean() > 0.6 * np.isfinite(plain.depth).mean()
    on_objects = kept & np.isfinite(stack.depth)
    assert np.abs(other.depth - stack.depth)[on_objects].mean() < 0.5 * 2.0  # planes of 2 µm
    score = mask_scores(other.mask_depth, stack.mask)["iou"]
    assert score > mask_scores(plain.mask_depth, stack.mask)["iou"] - 0.08
    # the pipeline hands add() the measure's own map (plane_focus, on a GPU): the same result
    settings = ReconstructSettings(measure=measure)
    maps = np.stack([plane_focus(frame, settings) for frame in stack.raw])
    rec = StackReconstructor(stack.raw.shape[1:], z_step=2.0, settings=settings)
    given, _ = feed(rec, stack.raw, maps)
    assert np.array_equal(given.depth, other.depth, equal_nan=True)
    assert np.array_equal(given.mask_depth, other.mask_depth)


def test_measures_without_a_noise_law_are_refused_for_depth() -> None:
    """Entropy's depth masks were empty and vollath's depth map was: the noise floor and the
    confidence compare peaks with the camera's noise, which they have no law for."""
    for measure in ("entropy", "vollath", "smd2"):
        with pytest.raises(ValueError, match=f"measure '{measure}' has no noise law"):
            ReconstructSettings(measure=measure)


def test_bad_new_settings_name_the_parameter() -> None:
    for name, value in (
        ("min_support", -1.0),
        ("noise_floor", float("nan")),
        ("polarity", "up"),
        ("smooth_radius", -1),
        ("read_noise", -2.0),
        ("outlier_tolerance", -1.0),
        ("fuse", "tenengrad"),
        ("support_close", 4),
        ("ambiguous_peak", 1.5),
        ("support_large", -1),
        ("ambiguous_peak", -0.1),
        ("support_close", 0),
        ("fuse", ("vollath",)),
        ("fuse", ("tenengrad", "tenengrad")),
        ("fuse", ("sharpness",)),
        ("outlier_size", 4),
        ("outlier_size", 1),
    ):
        with pytest.raises(ValueError, match=name):
            ReconstructSettings(**{name: value})


def test_a_smoothing_square_wider_than_the_frame_costs_the_frame_only() -> None:
    """smooth_radius=1000 on 64² took 50 s: a square wider than the frame holds nothing
    more, so it is the frame's widest, and the result is the same to the bit."""
    rng = np.random.default_rng(3)
    depth = rng.normal(5, 1, (24, 32)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = np.nan
    weight = rng.random(depth.shape).astype(np.float32)
    wide = smooth_depth(depth, weight, tolerance=1.0, radius=1000)
    assert np.array_equal(
        wide, smooth_depth(depth, weight, tolerance=1.0, radius=31), equal_nan=True
    )
    # the referee's loops stop at the frame's edges by themselves: radius 1000 as it is
    ref = smooth_depth_reference(depth, weight, tolerance=1.0, radius=1000)
    np.testing.assert_allclose(wide, ref, rtol=1e-4, atol=1e-4)
    assert np.array_equal(np.isnan(wide), np.isnan(ref))
