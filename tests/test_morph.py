"""The OpenCV morphology equals scipy's, bit for bit (hypothesis over shapes, sizes, values)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from livefocus import _morph

PAIRS = [
    (_morph.max_filter, _morph.max_filter_reference),
    (_morph.opening, _morph.opening_reference),
    (_morph.closing, _morph.closing_reference),
]


@settings(max_examples=60, deadline=None)
@given(
    ny=st.integers(1, 40),
    nx=st.integers(1, 40),
    size=st.integers(1, 25),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1.0, 1e-20, 1e20, 4095.0]),
)
def test_fast_morphology_equals_scipy(ny: int, nx: int, size: int, seed: int, scale: float) -> None:
    img = (np.random.default_rng(seed).standard_normal((ny, nx)) * scale).astype(np.float32)
    for fast, reference in PAIRS:
        np.testing.assert_array_equal(fast(img, size), reference(img, size))


def test_other_dtypes_take_the_reference() -> None:
    img = np.arange(100, dtype=np.float64).reshape(10, 10)
    np.testing.assert_array_equal(_morph.opening(img, 3), _morph.opening_reference(img, 3))
