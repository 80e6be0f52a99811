"""Fast, exact sliding-window focus maps.

The paper's scheme costs O(H * W * window**2 / stride**2) per stride. Here it costs O(H * W)
per slice plus O(number of windows) per stride, whatever the window size:

1. **Window scores from integral images.** Each measure (except entropy) is a sum of
   per-pixel terms over the window, or a variance of such terms. Integral images (summed-area
   tables) of the terms are built once per slice and shared by every stride; each window's sum
   is then four look-ups. For integer images with ``|value| <= 65535`` the terms and their
   integral images are int64, so every window sum is exact and the variance is formed with an
   exact integer shift (see :func:`_variance_from_sums`): a uint16 image of 60000 +- 1 gives the
   right std. Float images are computed in float64 after subtracting the slice mean.
   Entropy uses integral *histograms* evaluated only on each stride's window corners.
2. **Painting on the breakpoint grid.** A stride's map is constant between window edges, so it
   is painted with a 2-D difference array on the grid of all window edges of all strides
   (never larger than the image), the maximum over strides is taken on that grid, and only the
   result is expanded to full resolution.

Results equal :func:`livefocus.focus.reference.focus_map_reference` to about 1e-12 relative.
The same code runs on numpy or CuPy arrays (CuPy in, CuPy out).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from livefocus._xp import array_namespace
from livefocus.focus._scale import unit_scale, unscale
from livefocus.focus._validate import (
    check_image,
    check_measure,
    check_positive_int,
    check_stack,
    check_strides,
)
from livefocus.focus.measures import entropy_bins
from livefocus.focus.reference import PAPER_STRIDES, PAPER_WINDOW, check_paint

__all__ = ["focus_map", "focus_maps", "window_scores"]

#: Integer images up to this magnitude (16-bit) and size use exact int64 integral images.
_INT_MAX = 65535
_INT_MAX_PIXELS = 1 << 24

#: (rows, cols) of the pixel neighbourhood each measure's per-pixel term reads.
_FOOTPRINT = {
    "brenner": (1, 3),
    "tenengrad": (3, 3),
    "laplacian": (3, 3),
    "smd": (2, 2),
    "smd2": (2, 2),
    "vollath": (1, 3),
    "std": (1, 1),
    "variance": (1, 1),
}

Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Any]


def _cumsum_2d_into(terms: Any, out: Any, xp: Any) -> None:
    """``out[...] = terms`` summed cumulatively along axes 0 and 1 (in place on numpy)."""
    if xp is np:
        np.cumsum(terms, axis=0, out=out)
        np.cumsum(out, axis=1, out=out)
    else:  # CuPy: no strided ``out=`` views
        out[...] = xp.cumsum(xp.cumsum(terms, axis=0), axis=1)


#: Integer sums below this are exact in float64.
_EXACT_FLOAT = 2**53


def _integral(terms: Any, xp: Any) -> Any:
    """Summed-area table with a leading row and column of zeros.

    Integer terms on the CPU whose total magnitude float64 holds exactly go through OpenCV's
    ``integral`` (about twice as fast as two ``cumsum`` passes), and give the same int64 table
    as :func:`_integral_reference`, bit for bit (tested).
    """
    if xp is np and terms.dtype == np.int64 and terms.ndim == 2 and terms.size:
        if max(float(terms.max()), -float(terms.min())) * terms.size < _EXACT_FLOAT:
            import cv2

            table = cv2.integral(terms.astype(np.float64), sdepth=cv2.CV_64F)
            return table.astype(np.int64)
    return _integral_reference(terms, xp)


def _integral_reference(terms: Any, xp: Any) -> Any:
    """Summed-area table by two cumulative sums (the referee, and the path for the rest)."""
    out = xp.zeros((terms.shape[0] + 1, terms.shape[1] + 1), dtype=terms.dtype)
    _cumsum_2d_into(terms, out[1:, 1:], xp)
    return out


def _box(table: Any, r0: Any, r1: Any, c0: Any, c1: Any, xp: Any) -> Any:
    """Sums over the rectangles [r0, r1) x [c0, c1) for all row and column pairs."""
    return (
        table[xp.ix_(r1, c1)]
        - table[xp.ix_(r0, c1)]
        - table[xp.ix_(r1, c0)]
        + table[xp.ix_(r0, c0)]
    )


def _variance_from_sums(s1: Any, s2: Any, n: Any, exact: bool, xp: Any) -> Any:
    """Population variance from sum, sum of squares and count (0 where n == 0).

    With exact integer sums, shift by q = floor(s1 / n): sum((x - q)**2) = s2 - n q**2 - 2 q r
    with r = s1 - n q in [0, n) is an exact int64, and var = (that - r**2 / n) / n has no
    catastrophic cancellation however large the mean is.
    """
    safe_n = xp.maximum(n, 1)
    if exact:
        q = s1 // safe_n
        r = s1 - q * safe_n
        shifted = s2 - safe_n * q * q - 2 * q * r
        var = (shifted.astype(xp.float64) - (r * r) / safe_n) / safe_n
    else:
        mean = s1 / safe_n
        var = s2 / safe_n - mean * mean
    return xp.where(n > 0, xp.maximum(var, 0.0), 0.0)


def _terms(img: Any, measure: str, xp: Any) -> Any:
    """Per-anchor terms of the sum-type measures (anchor = top-left pixel of the footprint)."""
    p = img
    if measure == "brenner":
        d = p[:, 2:] - p[:, :-2]
        return d * d
    if measure == "tenengrad":
        gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (
            p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2]
        )
        gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (
            p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:]
        )
        return gx * gx + gy * gy
    if measure == "laplacian":
        return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]
    if measure in ("smd", "smd2"):
        dy = xp.abs(p[:-1, :-1] - p[1:, :-1])
        dx = xp.abs(p[:-1, :-1] - p[:-1, 1:])
        return dy + dx if measure == "smd" else dy * dx
    if measure == "vollath":
        return p[:, :-2] * (p[:, 1:-1] - p[:, 2:])
    return p  # std, variance


def _anchor_range(
    start: np.ndarray, stop: np.ndarray, k: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Anchors of a k-pixel footprint inside [start, stop) of an axis of ``length`` pixels.

    A window narrower than the footprint gets an empty range (clipped to the valid anchors).
    """
    first = np.minimum(start, length - k + 1)
    return first, np.maximum(first, stop - k + 1)


def _sum_scorer(img: Any, measure: str, exact: bool, xp: Any) -> Scorer:
    ky, kx = _FOOTPRINT[measure]
    if img.shape[0] < ky or img.shape[1] < kx:
        return lambda ys, ye, xs, xe: xp.zeros((len(ys), len(xs)))
    terms = _terms(img, measure, xp)
    moment = measure in ("std", "variance", "laplacian")
    if moment and not exact:
        terms = terms - terms.mean()
    table1 = _integral(terms, xp)
    table2 = _integral(terms * terms, xp) if moment else None

    def score(ys: np.ndarray, ye: np.ndarray, xs: np.ndarray, xe: np.ndarray) -> Any:
        r0, r1 = _anchor_range(ys, ye, ky, img.shape[0])
        c0, c1 = _anchor_range(xs, xe, kx, img.shape[1])
        n = xp.asarray(np.outer(r1 - r0, c1 - c0))
        r0, r1, c0, c1 = (xp.asarray(a) for a in (r0, r1, c0, c1))
        s1 = _box(table1, r0, r1, c0, c1, xp)
        if table2 is not None:
            var = _variance_from_sums(s1, _box(table2, r0, r1, c0, c1, xp), n, exact, xp)
            return xp.sqrt(var) if measure == "std" else var
        return xp.where(n > 0, s1 / xp.maximum(n, 1), 0.0)

    return score


def _dwt_scorer(img: Any, xp: Any) -> Scorer:
    height, width = img.shape
    if height < 2 or width < 2:
        return lambda ys, ye, xs, xe: xp.zeros((len(ys), len(xs)))
    a, b, c, d = img[:-1, :-1], img[:-1, 1:], img[1:, :-1], img[1:, 1:]
    # Four times the Haar detail energy of the 2x2 block anchored at each pixel (an integer
    # for integer images); a window uses the anchors on its own parity lattice.
    total = a + b + c + d
    terms = 4 * (a * a + b * b + c * c + d * d) - total * total
    tables = {(py, px): _integral(terms[py::2, px::2], xp) for py in (0, 1) for px in (0, 1)}

    def score(ys: np.ndarray, ye: np.ndarray, xs: np.ndarray, xe: np.ndarray) -> Any:
        h2, w2 = (ye - ys) // 2, (xe - xs) // 2
        n = xp.asarray(np.outer(h2, w2))
        out = xp.zeros((len(ys), len(xs)))
        for (py, px), table in tables.items():
            rows, cols = ys % 2 == py, xs % 2 == px
            if not rows.any() or not cols.any():
                continue
            r0, c0 = ys[rows] // 2, xs[cols] // 2
            r1, c1 = r0 + h2[rows], c0 + w2[cols]
            sums = _box(table, xp.asarray(r0), xp.asarray(r1), xp.asarray(c0), xp.asarray(c1), xp)
            out[xp.ix_(xp.asarray(np.flatnonzero(rows)), xp.asarray(np.flatnonzero(cols)))] = sums
        return xp.where(n > 0, out / (4 * xp.maximum(n, 1)), 0.0)

    return score


def _entropy_scorer(img: Any, xp: Any) -> Scorer:
    bins = entropy_bins(img)
    nbins = int(bins.max()) + 1
    height, width = img.shape

    def score(ys: np.ndarray, ye: np.ndarray, xs: np.ndarray, xe: np.ndarray) -> Any:
        # Integral histogram evaluated only on this stride's window edges.
        by = np.unique(np.concatenate([ys, ye, [0, height]]))
        bx = np.unique(np.concatenate([xs, xe, [0, width]]))
        ncy, ncx = len(by) - 1, len(bx) - 1
        row_key = xp.asarray(np.repeat(np.arange(ncy) * (ncx * nbins), np.diff(by)))
        col_key = xp.asarray(np.repeat(np.arange(ncx) * nbins, np.diff(bx)))
        key = bins + row_key[:, None] + col_key[None, :]
        counts = xp.bincount(key.ravel(), minlength=ncy * ncx * nbins).astype(xp.int32)
        table = xp.zeros((ncy + 1, ncx + 1, nbins), dtype=xp.int32)
        _cumsum_2d_into(counts.reshape(ncy, ncx, nbins), table[1:, 1:], xp)
        r0, r1 = (xp.asarray(np.searchsorted(by, v)) for v in (ys, ye))
        c0, c1 = (xp.asarray(np.searchsorted(bx, v)) for v in (xs, xe))
        window_counts = _box(table, r0, r1, c0, c1, xp)
        n = np.outer(ye - ys, xe - xs)
        # c log2 c for every possible count: a window's entropy is (n log2 n - sum c log2 c) / n
        # by table look-ups instead of logarithms, and one grey level gives exactly 0.
        c = np.arange(int(n.max()) + 1, dtype=np.float64)
        clog2c = xp.asarray(c * np.log2(np.maximum(c, 1)))
        n = xp.asarray(n)
        return (clog2c[n] - clog2c[window_counts].sum(axis=-1)) / n

    return score


def _use_exact_integers(img: Any, xp: Any) -> bool:
    """Whether the image holds only whole numbers small enough for exact int64 sums.

    Float images of whole numbers (camera counts saved as float) take the exact path too.
    """
    if img.size > _INT_MAX_PIXELS or max(abs(float(img.min())), abs(float(img.max()))) > _INT_MAX:
        return False
    if np.issubdtype(img.dtype, np.integer):
        return True
    return bool((img == xp.round(img)).all())


def _scorer(img: Any, measure: str, xp: Any) -> Scorer:
    if measure == "entropy":
        return _entropy_scorer(img, xp)
    exact = _use_exact_integers(img, xp)
    prepared = img.astype(xp.int64 if exact else xp.float64)
    if measure == "dwt":
        return _dwt_scorer(prepared, xp)
    return _sum_scorer(prepared, measure, exact, xp)


def _window_grid(length: int, stride: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, length, stride)
    return starts, np.minimum(starts + window, length)


def window_scores(
    image: Any, measure: str = "std", *, window: int = PAPER_WINDOW, stride: int = 8
) -> Any:
    """Score of every window of one stride, shape (ceil(H / stride), ceil(W / stride)).

    Element ``[i, j]`` scores the window whose top-left corner is ``(i * stride, j * stride)``.
    """
    img = check_image(image)
    xp = array_namespace(img)
    measure = check_measure(measure)
    # beyond the image's size, a larger window or stride changes nothing (and would overflow)
    largest = max(img.shape)
    window = min(check_positive_int(window, "window"), largest)
    stride = min(check_positive_int(stride, "stride"), largest)
    img, k = unit_scale(img, xp, measure)
    ys, ye = _window_grid(img.shape[0], stride, window)
    xs, xe = _window_grid(img.shape[1], stride, window)
    return unscale(_scorer(img, measure, xp)(ys, ye, xs, xe), measure, k, xp)


def _edges(length: int, grids: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Sorted window edges of all strides along one axis, with 0 and the axis length."""
    return np.unique(np.concatenate([[0, length], *(np.concatenate(g) for g in grids)]))


def _paint(
    values: Any,
    rows: tuple[np.ndarray, np.ndarray],
    cols: tuple[np.ndarray, np.ndarray],
    shape: tuple[int, int],
    xp: Any,
) -> Any:
    """Add each window's value over its cells of the breakpoint grid (2-D difference array).

    ``rows`` and ``cols`` hold each window's first cell and one-past-last cell. Only the
    past-the-end cell can repeat among the stops, and that row/column is discarded.
    """
    ncy, ncx = shape
    (r0, r1), (c0, c1) = rows, cols
    along_x = xp.zeros((values.shape[0], ncx + 1))
    along_x[:, xp.asarray(c0)] = values
    along_x[:, xp.asarray(c1)] -= values
    per_row = xp.cumsum(along_x[:, :ncx], axis=1)
    along_y = xp.zeros((ncy + 1, ncx))
    along_y[xp.asarray(r0)] = per_row
    along_y[xp.asarray(r1)] -= per_row
    return xp.cumsum(along_y[:ncy], axis=0)


def focus_map(
    image: Any,
    measure: str = "std",
    *,
    window: int = PAPER_WINDOW,
    strides: Sequence[int] | int = PAPER_STRIDES,
    paint: str = "sum",
) -> Any:
    """Per-pixel focus-score map of one slice (the paper's sliding-window scheme, fast path).

    Parameters
    ----------
    image : (H, W) array
        Any integer or float image (numpy or CuPy); bool, complex, NaN and inf are refused.
        Float images beyond about 1e77 (or below 1e-77) in magnitude are scaled by an exact
        power of two first, so values near 1e300 score right; scores that float64 cannot
        hold (the variance of such values) are a ValueError.
    measure : str
        One of :data:`livefocus.MEASURES` (see :mod:`livefocus.focus.measures`).
    window : int
        Window size in pixels (the paper: 64, 128 or 256); a window or stride larger than
        the image acts as one of the image's size.
    strides : sequence of int
        Window strides; the map is the per-pixel maximum over them (the paper: 8, 10, ..., 36).
    paint : {"sum", "mean"}
        ``"sum"`` adds each window's score to every pixel it covers, exactly as the paper does;
        pixels near the top and left edges are covered by fewer windows and so score lower
        (the paper's border bias). ``"mean"`` divides each stride's map by the number of windows
        covering each pixel, which removes that bias. Pixels that no window of a stride covers
        (a stride larger than the window) score 0 for that stride in both modes.

    Returns
    -------
    (H, W) float64 array, on the same device as ``image``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = rng.integers(0, 255, (64, 80)).astype(np.uint8)
    >>> m = focus_map(img, "std", window=16, strides=(8, 12))
    >>> m.shape, m.dtype
    ((64, 80), dtype('float64'))
    """
    img = check_image(image)
    xp = array_namespace(img)
    measure = check_measure(measure)
    height, width = img.shape
    # beyond the image's size, a larger window or stride changes nothing (and would overflow)
    largest = max(height, width)
    window = min(check_positive_int(window, "window"), largest)
    strides = tuple(min(s, largest) for s in check_strides(strides))
    paint = check_paint(paint)
    img, k = unit_scale(img, xp, measure)
    score = _scorer(img, measure, xp)

    plans = [(_window_grid(height, s, window), _window_grid(width, s, window)) for s in strides]
    edges_y = _edges(height, [rows for rows, _ in plans])
    edges_x = _edges(width, [cols for _, cols in plans])
    grid = (len(edges_y) - 1, len(edges_x) - 1)

    best = None
    for (ys, ye), (xs, xe) in plans:
        rows = (np.searchsorted(edges_y, ys), np.searchsorted(edges_y, ye))
        cols = (np.searchsorted(edges_x, xs), np.searchsorted(edges_x, xe))
        painted = _paint(score(ys, ye, xs, xe), rows, cols, grid, xp)
        if paint == "mean":
            count = _paint(xp.ones((len(ys), len(xs))), rows, cols, grid, xp)
            painted = xp.where(count > 0, painted / xp.maximum(count, 1), 0.0)
        best = painted if best is None else xp.maximum(best, painted, out=best)
    assert best is not None
    best = unscale(best, measure, k, xp)
    cell_y = xp.asarray(np.repeat(np.arange(grid[0]), np.diff(edges_y)))
    cell_x = xp.asarray(np.repeat(np.arange(grid[1]), np.diff(edges_x)))
    return best[xp.ix_(cell_y, cell_x)]


def focus_maps(
    stack: Any,
    measure: str = "std",
    *,
    window: int = PAPER_WINDOW,
    strides: Sequence[int] | int = PAPER_STRIDES,
    paint: str = "sum",
    workers: int | None = None,
) -> Any:
    """:func:`focus_map` of every slice of a (Z, H, W) stack -> float64 (Z, H, W).

    Slices are processed by ``workers`` threads (default: the number of CPU cores, at most 8;
    numpy releases the GIL in the heavy loops). CuPy stacks are processed in order on the GPU.
    """
    data = check_stack(stack)
    xp = array_namespace(data)
    check_measure(measure)
    check_positive_int(window, "window")
    check_strides(strides)
    check_paint(paint)
    if workers is None:
        workers = 1 if xp is not np else min(8, os.cpu_count() or 1)
    workers = min(check_positive_int(workers, "workers"), data.shape[0])
    out = xp.empty(data.shape, dtype=xp.float64)

    def one(z: int) -> None:
        out[z] = focus_map(data[z], measure, window=window, strides=strides, paint=paint)

    if workers == 1 or data.shape[0] == 1:
        for z in range(data.shape[0]):
            one(z)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, range(data.shape[0])))
    return out
