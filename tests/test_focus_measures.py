"""Each measure's per-window formula, weak labels and axial curves (incl. real stacks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

import livefocus as lf
from livefocus.focus import entropy_bins, otsu_threshold, window_score


def test_measure_names_are_the_contract() -> None:
    assert lf.MEASURES == (
        "brenner",
        "tenengrad",
        "laplacian",
        "smd",
        "smd2",
        "vollath",
        "std",
        "variance",
        "entropy",
        "dwt",
    )
    assert lf.PAPER_STRIDES == tuple(range(8, 37, 2)) and len(lf.PAPER_STRIDES) == 15
    assert lf.PAPER_WINDOW == 128


def test_formulas_by_hand() -> None:
    row = np.array([[0, 1, 3]])
    assert window_score(row, "brenner") == 9.0  # (3 - 0)**2, one term
    assert window_score(row, "vollath") == 0 * 1 - 0 * 3
    assert window_score(np.array([[1, 2, 4]]), "vollath") == 1 * 2 - 1 * 4
    block = np.array([[1, 3], [2, 7]])
    assert window_score(block, "smd") == abs(1 - 2) + abs(1 - 3)
    assert window_score(block, "smd2") == abs(1 - 2) * abs(1 - 3)
    assert window_score(block, "std") == pytest.approx(np.std([1, 3, 2, 7]))
    assert window_score(block, "variance") == pytest.approx(np.var([1, 3, 2, 7]))
    # Haar detail energy of one 2x2 block = block energy - LL**2, LL = sum / 2.
    assert window_score(block, "dwt") == pytest.approx(1 + 9 + 4 + 49 - (13 / 2) ** 2)
    ramp = np.tile(np.arange(3.0), (3, 1))  # d/dx = 1 everywhere: Sobel Gx = 2 * 4 = 8
    assert window_score(ramp, "tenengrad") == 64.0
    assert window_score(ramp, "laplacian") == 0.0  # a single Laplacian value has no spread
    spot = np.zeros((4, 3))
    spot[1, 1] = 1  # Laplacians at (1, 1) = -4 and (2, 1) = 1: variance 6.25
    assert window_score(spot, "laplacian") == pytest.approx(6.25)
    assert window_score(np.array([[0, 1], [2, 3]], dtype=np.uint8), "entropy") == 2.0
    assert window_score(np.array([[5, 5]], dtype=np.uint8), "entropy") == 0.0


def test_too_small_windows_score_zero() -> None:
    for measure in ("brenner", "tenengrad", "laplacian", "vollath", "dwt"):
        assert window_score(np.ones((1, 1)), measure) == 0.0


def test_entropy_bins() -> None:
    eight_bit = np.array([[3, 200], [255, 3]], dtype=np.uint8)
    np.testing.assert_array_equal(entropy_bins(eight_bit), [[0, 197], [252, 0]])
    wide = np.array([[0, 1000], [60000, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(entropy_bins(wide), [[0, 3], [234, 255]])
    assert entropy_bins(np.full((2, 2), 7.5)).max() == 0


@pytest.mark.parametrize("measure", lf.MEASURES)
def test_sharp_beats_blurred(measure: str) -> None:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    sharp = rng.integers(500, 4500, (64, 64)).astype(np.float64)
    blurred = gaussian_filter(sharp, 2)
    stack = np.stack([blurred, sharp]).round().astype(np.uint16)
    curve = lf.axial_curve(stack, measure, normalize=False)
    assert curve[1] > curve[0], (measure, curve)


def test_otsu_matches_scikit_image() -> None:
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(10, 2, 5000), rng.normal(30, 4, 2000)])
    assert otsu_threshold(values) == pytest.approx(threshold_otsu(values), rel=1e-9)
    assert otsu_threshold(np.full(10, 3.0)) == 3.0


def test_otsu_of_many_float32_values_is_that_of_their_float64_copy() -> None:
    """Large float32 inputs are histogrammed block by block (no float64 copy of them all):
    the threshold equals the general path's, and scikit-image's, NaN and inf left out."""
    from skimage.filters import threshold_otsu

    from livefocus.focus import labels

    rng = np.random.default_rng(3)
    values = rng.gamma(2.0, 3.0, labels._BLOCK * 2 + 12345).astype(np.float32)
    values[:3] = [np.nan, np.inf, -np.inf]
    flat = values.astype(np.float64)
    flat = flat[np.isfinite(flat)]
    assert otsu_threshold(values) == labels._otsu(flat, 256, np)
    assert otsu_threshold(values) == pytest.approx(threshold_otsu(flat), rel=1e-9)
    assert otsu_threshold(np.full(labels._BLOCK + 1, 2.5, np.float32)) == 2.5
    with pytest.raises(ValueError, match="finite"):
        otsu_threshold(np.full(labels._BLOCK + 1, np.nan, np.float32))


def test_weak_labels_scopes() -> None:
    rng = np.random.default_rng(2)
    maps = rng.random((3, 20, 20))
    maps[1] += 10  # one bright slice
    per_slice = lf.weak_labels(maps)
    per_stack = lf.weak_labels(maps, scope="stack")
    assert per_slice.dtype == bool and per_slice.shape == maps.shape
    assert all(0.2 < m.mean() < 0.8 for m in per_slice)
    assert per_stack[1].all() and not per_stack[0].any() and not per_stack[2].any()
    with pytest.raises(ValueError, match="scope"):
        lf.weak_labels(maps, scope="planet")
    with pytest.raises(ValueError, match="method"):
        lf.weak_labels(maps, method="li")


def test_axial_curve_normalised() -> None:
    stack = np.stack([np.full((8, 8), 5), np.eye(8) * 9, np.eye(8) * 3]).astype(np.uint8)
    curve = lf.axial_curve(stack, "std")
    assert curve.shape == (3,) and curve.min() == 0.0 and curve.max() == 1.0
    assert np.argmax(curve) == 1
    np.testing.assert_array_equal(lf.axial_curve(np.ones((3, 4, 4)), "std"), 0.0)


def test_pseudoscorpion_curve_finds_the_sharp_legs(data_dir: Path) -> None:
    """Hand-focused sweep: sharp around slices 2-5, blurred at 9-10, sharp again at 12."""
    stack = tifffile.imread(data_dir / "pseudoscorpion_zstack_4x.tif")
    curve = lf.axial_curve(stack, "std")
    assert 2 <= int(np.argmax(curve)) <= 5
    assert int(np.argmin(curve)) in (9, 10)
    assert curve[12] > curve[10] + 0.5 and curve[12] > curve[13]


def test_yeast_phase_objects_fool_contrast_measures(data_dir: Path) -> None:
    """Transparent cells: variance peaks at an outermost slice in every field (the files'
    documented pitfall); the least-contrast slice, not the argmax, is near focus."""
    fields = tifffile.imread(data_dir / "yeast_brightfield_5z.tif")
    for field in fields:
        curve = lf.axial_curve(field, "std")
        assert int(np.argmax(curve)) in (0, 4)
    assert [int(np.argmin(lf.axial_curve(f, "std"))) for f in fields[:4]] == [2, 1, 2, 2]


def test_deepfocus_mask_region_scores_high(data_dir: Path) -> None:
    """Zebrafish head: the repository's weak-label mask sits on high local std."""
    image = np.load(data_dir / "deepfocus_slice_uint8.npy")
    mask = np.load(data_dir / "deepfocus_mask_uint8.npy").astype(bool)
    focus = lf.focus_map(image, "std", window=16, strides=(4, 8), paint="mean")
    assert focus[mask].mean() > 2 * focus[~mask].mean()
    assert lf.weak_labels(focus)[mask].mean() > 0.9


def test_diatom_scale_bar_is_sharp_in_every_slice(data_dir: Path) -> None:
    stack = tifffile.imread(data_dir / "diatom_mfusionj_3z.tif")
    maps = lf.focus_maps(stack, "std", window=16, strides=(4, 8), paint="mean")
    labels = lf.weak_labels(maps)
    bar = labels[:, 60:170, 296:303]
    assert all(b.mean() > 0.5 for b in bar)
    assert int(np.argmax(lf.axial_curve(stack, "std"))) == 0
