"""The numba kernels equal their numpy referees, bit for bit (hypothesis over shapes and values).

Each kernel (:mod:`livefocus._jit`) fuses numpy passes or repeats a library's arithmetic; the
referee is the numpy (or scipy) code it replaced, kept in the package.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from livefocus import _morph
from livefocus.depth import StackReconstructor
from livefocus.depth._peaks import peak_candidates, peak_candidates_reference
from livefocus.depth._signal import median_abs_residual, median_abs_residual_reference
from livefocus.depth._state import CURVE_FIELDS, update_curves, update_curves_reference
from livefocus.focus import labels

SCALES = [1.0, 1e-20, 1e20, 4095.0]


def _values(
    rng: np.random.Generator, shape: tuple[int, ...], kind: int, scale: float
) -> np.ndarray:
    """Continuous, rounded (many ties), or mostly zero values."""
    v = rng.gamma(2.0, 1.0, shape) * scale
    if kind == 1:
        v = np.round(v / scale * 4) * scale
    elif kind == 2:
        v = np.where(rng.random(shape) < 0.7, 0.0, v)
    return np.asarray(v)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(2, 3000),
    seed=st.integers(0, 2**31 - 1),
    kind=st.integers(0, 2),
    scale=st.sampled_from(SCALES),
    double=st.booleans(),
    nbins=st.sampled_from([1, 2, 7, 256]),
)
def test_bin_counts_equal_numpy_histogram(
    n: int, seed: int, kind: int, scale: float, double: bool, nbins: int
) -> None:
    rng = np.random.default_rng(seed)
    flat = _values(rng, (n,), kind, scale).astype(np.float64 if double else np.float32)
    lo, hi = float(flat.min()), float(flat.max())
    if lo == hi:
        return
    counts = np.zeros(nbins, np.int64)
    edges = np.linspace(lo, hi, nbins + 1)
    labels._bin_counts(flat, lo, hi, edges, counts)
    expected, expected_edges = labels.bin_counts_reference(flat, nbins)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(edges, expected_edges)


@settings(max_examples=80, deadline=None)
@given(
    ny=st.integers(3, 40),
    nx=st.integers(3, 40),
    seed=st.integers(0, 2**31 - 1),
    kind=st.integers(0, 2),
    scale=st.sampled_from(SCALES),
)
def test_median_abs_residual_equals_numpy_median(
    ny: int, nx: int, seed: int, kind: int, scale: float
) -> None:
    img = _values(np.random.default_rng(seed), (ny, nx), kind, scale).astype(np.float32)
    assert median_abs_residual(img) == median_abs_residual_reference(img)


def test_median_abs_residual_keeps_numpys_nan() -> None:
    img = np.full((5, 5), np.float32(3e38))  # the neighbours' sum overflows: inf - inf
    img[2, 2] = np.inf
    assert np.isnan(median_abs_residual(img)) and np.isnan(median_abs_residual_reference(img))


@settings(max_examples=60, deadline=None)
@given(
    ny=st.integers(1, 40),
    nx=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
    kind=st.integers(0, 2),
    scale=st.sampled_from(SCALES),
)
def test_mean3_equals_scipy(ny: int, nx: int, seed: int, kind: int, scale: float) -> None:
    img = _values(np.random.default_rng(seed), (ny, nx), kind, scale).astype(np.float32)
    np.testing.assert_array_equal(_morph.mean3(img), _morph.mean3_reference(img))


@settings(max_examples=80, deadline=None)
@given(
    m=st.integers(1, 9),
    size=st.integers(1, 400),
    seed=st.integers(0, 2**31 - 1),
    kind=st.integers(0, 2),
    one_sided=st.booleans(),
    data=st.data(),
)
def test_peak_candidates_equal_numpy(
    m: int, size: int, seed: int, kind: int, one_sided: bool, data: st.DataObject
) -> None:
    rng = np.random.default_rng(seed)
    window = _values(rng, (m, size), kind, 1.0).astype(np.float32)
    support = _values(rng, (m, size), kind, 2.0).astype(np.float32)
    j = data.draw(st.integers(0, m - 1))
    got = peak_candidates(window, support, j, one_sided, np.empty(size, np.intp))
    expected = peak_candidates_reference(window, support, j, one_sided)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def _state(size: int) -> tuple[np.ndarray, ...]:
    start = {"fmax": -np.inf, "runmin": np.inf, "leftmin": np.inf, "rightmin": np.inf}
    start |= {"fm": -np.inf, "fp": -np.inf}
    return tuple(
        np.zeros(size, np.intp)
        if name == "arg"
        else np.full(size, start.get(name, 0.0), np.float32)
        for name in CURVE_FIELDS
    )


@settings(max_examples=60, deadline=None)
@given(
    planes=st.integers(1, 8),
    size=st.integers(1, 300),
    seed=st.integers(0, 2**31 - 1),
    kind=st.integers(0, 2),
)
def test_update_curves_equals_numpy(planes: int, size: int, seed: int, kind: int) -> None:
    rng = np.random.default_rng(seed)
    focus = _values(rng, (planes, size), kind, 1.0).astype(np.float32)
    support = _values(rng, (planes, size), kind, 3.0).astype(np.float32)
    frames = rng.normal(100, 5, (planes, size)).astype(np.float32)
    fast, slow = _state(size), _state(size)
    after = np.empty(size, np.intp)
    for k in range(planes):
        prev = frames[k - 1] if k else frames[k]
        before = focus[k - 1] if k else focus[k]
        args = (focus[k], support[k], frames[k], prev, before, k, 0.5 * k)
        got = update_curves(*args, fast, after)
        expected = update_curves_reference(*args, slow)
        np.testing.assert_array_equal(got, expected)
        for name, a, b in zip(CURVE_FIELDS, fast, slow, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_kernels_run_as_plain_python_too() -> None:
    """``.py_func`` is the same code uncompiled: it gives what the kernel gives."""
    rng = np.random.default_rng(3)
    img = rng.normal(10, 2, (7, 6)).astype(np.float32)
    out = np.empty_like(img)
    _morph._mean3.py_func(img, out)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(out, _morph.mean3(img))
    window, support = rng.random((2, 5, 50)).astype(np.float32)
    idx, out = np.empty(50, np.intp), np.empty((4, 50), np.float32)
    count = peak_candidates.__globals__["_candidates"].py_func(window, support, 2, False, idx, out)
    got = peak_candidates(window, support, 2, False, np.empty(50, np.intp))
    np.testing.assert_array_equal(idx[:count], got[0])
    np.testing.assert_array_equal(out[:, :count], np.stack(got[1:]))


def test_a_stack_through_the_kernels_matches_its_planes_read_back() -> None:
    """The reconstructor's per-pixel state after a stack equals the referee's, plane by plane
    (the kernels as the reconstructor calls them: flat views of its (Y, X) arrays)."""
    rng = np.random.default_rng(0)
    stack = rng.poisson(50, (6, 24, 20)).astype(np.uint16)
    rec = StackReconstructor((24, 20), z_step=1.0)
    slow = _state(24 * 20)
    prev = np.zeros(24 * 20, np.float32)
    for k, frame in enumerate(stack):
        rec.add(frame)
        pixels = frame.astype(np.float32).reshape(-1)
        before = rec._focus[k - 1].reshape(-1) if k else rec._focus[k].reshape(-1)
        update_curves_reference(
            rec._focus[k].reshape(-1), rec._support[k].reshape(-1), pixels, prev, before,
            k, float(k), slow,
        )  # fmt: skip
        prev = pixels
    for name, expected in zip(CURVE_FIELDS, slow, strict=True):
        if name == "off_inner":  # refined afterwards, at the peaks that got both neighbours
            continue
        np.testing.assert_array_equal(getattr(rec, "_" + name).reshape(-1), expected, name)
