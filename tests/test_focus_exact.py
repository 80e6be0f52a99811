"""The fast sliding-window path against the literal reference (the referee)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import livefocus as lf
from livefocus.focus import window_score, window_scores


def assert_exact(fast: np.ndarray, ref: np.ndarray, rtol: float = 1e-9, scale: float = 0.0) -> None:
    """Per-pixel relative agreement, with a tiny absolute floor for pixels whose reference is
    0: 1e-12 of the largest reference value or of ``scale``, the size of the terms that were
    summed (a map can cancel to exactly 0 where its window scores do not)."""
    floor = 1e-12 * max(float(np.abs(ref).max()), scale, 1e-300)
    np.testing.assert_allclose(fast, ref, rtol=rtol, atol=floor)


int_images = st.one_of(
    hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=29)),
    hnp.arrays(
        np.uint16,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=29),
        elements=st.integers(0, 65535),
    ),
    hnp.arrays(
        np.int16,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=29),
        elements=st.integers(-3000, 3000),
    ),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    image=int_images,
    measure=st.sampled_from(lf.MEASURES),
    window=st.integers(1, 40),
    strides=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    paint=st.sampled_from(["sum", "mean"]),
)
def test_fast_equals_reference_on_integer_images(
    image: np.ndarray, measure: str, window: int, strides: list[int], paint: str
) -> None:
    fast = lf.focus_map(image, measure, window=window, strides=strides, paint=paint)
    ref = lf.focus_map_reference(image, measure, window=window, strides=strides, paint=paint)
    assert fast.dtype == np.float64 and fast.shape == image.shape
    # products of two intensities (Vollath, Brenner, ...) set the size of the summed terms
    assert_exact(fast, ref, scale=float(np.abs(image.astype(np.float64)).max()) ** 2)


@settings(max_examples=100, deadline=None)
@given(
    image=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24),
        elements=st.floats(-1000, 1000, allow_nan=False, allow_infinity=False),
    ),
    measure=st.sampled_from(lf.MEASURES),
    window=st.integers(1, 30),
    strides=st.lists(st.integers(1, 30), min_size=1, max_size=3),
)
def test_fast_matches_reference_on_float_images(
    image: np.ndarray, measure: str, window: int, strides: list[int]
) -> None:
    """Fractional floats go through float64 integral images, whose rounding grows with the
    image's size N and range R: sums of squares are good to about eps * N * R**2, and std (a
    square root) near zero variance to about sqrt(eps * N) * R. Integer-valued images are
    exact (tested above); entropy bins are exact for floats too.
    """
    fast = lf.focus_map(image, measure, window=window, strides=strides)
    ref = lf.focus_map_reference(image, measure, window=window, strides=strides)
    covering = sum((-(-window // s)) ** 2 for s in strides)
    data_range = float(np.ptp(image)) + 1.0
    rounding = 1e-14 * image.size
    per_window = {
        "std": np.sqrt(rounding) * data_range,
        "smd": rounding * data_range * 2,
        "entropy": 1e-12,
    }.get(measure, rounding * 64 * data_range**2)
    np.testing.assert_allclose(fast, ref, rtol=1e-9, atol=per_window * covering)


@pytest.mark.parametrize("measure", lf.MEASURES)
@pytest.mark.parametrize(
    ("shape", "window", "strides"),
    [
        ((53, 47), 16, (5, 7, 9)),  # sizes not divisible by any stride
        ((20, 30), 64, (8, 10)),  # window larger than the image
        ((40, 40), 4, (9, 13)),  # strides larger than the window: uncovered pixels score 0
        ((1, 1), 128, lf.PAPER_STRIDES),  # one pixel
        ((1, 37), 8, (3,)),  # one row
    ],
)
def test_edge_geometries(
    measure: str, shape: tuple[int, int], window: int, strides: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(sum(shape) + window)
    image = rng.integers(0, 4096, shape).astype(np.uint16)
    for paint in ("sum", "mean"):
        assert_exact(
            lf.focus_map(image, measure, window=window, strides=strides, paint=paint),
            lf.focus_map_reference(image, measure, window=window, strides=strides, paint=paint),
        )


def test_uncovered_pixels_score_zero() -> None:
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    m = lf.focus_map(image, "std", window=2, strides=(5,))
    assert m[2:5, :].max() == 0 and m[0:2, 0:2].min() > 0


def test_paper_settings_on_a_real_slice(data_dir) -> None:  # type: ignore[no-untyped-def]
    import tifffile

    diatom = tifffile.imread(data_dir / "diatom_mfusionj_3z.tif")[0]
    for measure in ("std", "tenengrad", "entropy"):
        fast = lf.focus_map(diatom, measure, window=128, strides=(16, 24, 36))
        ref = lf.focus_map_reference(diatom, measure, window=128, strides=(16, 24, 36))
        assert_exact(fast, ref)


def test_std_of_a_bright_flat_uint16_image_is_exact() -> None:
    """60000 +- 1: naive sum-of-squares in float64 would lose the variance entirely."""
    rng = np.random.default_rng(3)
    image = (60000 + rng.integers(-1, 2, (96, 96))).astype(np.uint16)
    scores = window_scores(image, "std", window=32, stride=16)
    for i, y in enumerate(range(0, 96, 16)):
        for j, x in enumerate(range(0, 96, 16)):
            crop = image[y : y + 32, x : x + 32].astype(np.float64)
            assert scores[i, j] == pytest.approx(crop.std(), rel=1e-12)
    assert 0.7 < scores.mean() < 0.9  # the std of {-1, 0, 1} uniform is 0.816
    as_float = lf.focus_map(image.astype(np.float64), "std", window=32, strides=16)
    assert_exact(as_float, lf.focus_map_reference(image, "std", window=32, strides=16))


def test_float_images_of_whole_numbers_take_the_exact_path() -> None:
    rng = np.random.default_rng(4)
    image = (30000 + rng.integers(0, 3, (40, 40))).astype(np.float32)
    assert_exact(
        lf.focus_map(image, "variance", window=8, strides=(4,)),
        lf.focus_map_reference(image, "variance", window=8, strides=(4,)),
    )


def test_paint_sum_is_the_papers_scheme_by_hand() -> None:
    """Two strides on a 4x4 image, window 2: check the painted sums pixel by pixel."""
    image = np.array([[0, 2, 0, 0], [2, 0, 0, 0], [0, 0, 5, 5], [0, 0, 5, 5]], dtype=np.uint8)
    m = lf.focus_map(image, "std", window=2, strides=(2,))
    np.testing.assert_allclose(m, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    m1 = lf.focus_map(image, "std", window=2, strides=(1,))
    # Pixel (1, 1) is covered by the windows at (0,0), (0,1), (1,0), (1,1).
    expected = sum(window_score(image[y : y + 2, x : x + 2], "std") for y in (0, 1) for x in (0, 1))
    assert m1[1, 1] == pytest.approx(expected)
    assert np.all(lf.focus_map(image, "std", window=2, strides=(1, 2)) >= m1 - 1e-12)


def test_mean_paint_removes_border_bias() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (64, 64)).astype(np.uint8)
    summed = lf.focus_map(image, "std", window=16, strides=(4,), paint="sum")
    mean = lf.focus_map(image, "std", window=16, strides=(4,), paint="mean")
    # Uniform noise: with "sum" the top-left corner gets 1 window, the centre 16.
    assert summed[0, 0] < summed[32, 32] / 8
    assert mean[0, 0] == pytest.approx(mean[32, 32], rel=0.25)


def test_focus_maps_threads_equal_single_slices() -> None:
    rng = np.random.default_rng(6)
    stack = rng.integers(0, 1000, (5, 40, 50)).astype(np.uint16)
    maps = lf.focus_maps(stack, "tenengrad", window=16, strides=(4, 8), workers=2)
    for z in range(5):
        np.testing.assert_array_equal(
            maps[z], lf.focus_map(stack[z], "tenengrad", window=16, strides=(4, 8))
        )


@given(
    hnp.arrays(
        np.int64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
        elements=st.integers(-(2**40), 2**40),
    ),
    st.sampled_from([1, 2**10, 2**30]),
)
@settings(max_examples=60, deadline=None)
def test_opencv_integral_equals_the_cumsum_referee(terms: np.ndarray, scale: int) -> None:
    """The OpenCV summed-area table is taken only where float64 sums are exact, and is then
    the same int64 table as two cumsum passes (large terms fall back to those)."""
    from livefocus.focus.sliding import _integral, _integral_reference

    values = terms // scale
    fast, slow = _integral(values, np), _integral_reference(values, np)
    assert fast.dtype == slow.dtype == np.int64
    assert np.array_equal(fast, slow)
