"""Weak labels: Otsu's threshold on focus-score maps (the paper's in-focus masks)."""

from __future__ import annotations

from typing import Any

import numpy as np

from livefocus._jit import kernel
from livefocus._xp import array_namespace
from livefocus.focus._scale import unit_scale
from livefocus.focus._validate import check_maps, check_positive_int

__all__ = ["otsu_threshold", "weak_labels"]


def otsu_threshold(values: Any, *, nbins: int = 256) -> float:
    """Otsu's threshold of the finite values (histogram of ``nbins`` bins over [min, max]).

    The threshold is the centre of the bin that maximises the between-class variance; pixels
    strictly above it are "in focus". A constant input returns its value (nothing is above it).
    """
    nbins = check_positive_int(nbins, "nbins")
    xp = array_namespace(values)
    if xp is np:
        values = np.asarray(values)
    if np.iscomplexobj(values) or not np.issubdtype(values.dtype, np.number):
        raise TypeError(f"values must be real numbers, got dtype {values.dtype}")
    flat = values.ravel()
    if not (xp is np and flat.dtype == np.float32):
        flat = flat.astype(xp.float64)  # float32 on the CPU: _otsu takes float64 copies by block
    finite = xp.isfinite(flat)
    if not bool(finite.all()):
        flat = flat[finite]
    if flat.size == 0:
        raise ValueError("values must contain at least one finite number")
    # near the float64 limits (max - min) overflows: threshold exactly scaled values instead
    # (float32 values never need it: unit_scale returns them as they are)
    flat, k = unit_scale(flat, xp)
    return float(xp.ldexp(xp.float64(_otsu(flat, nbins, xp)), k))


#: Values histogrammed at a time by the referee (a float64 copy of one block only).
_BLOCK = 1 << 20


def _otsu(flat: Any, nbins: int, xp: Any) -> float:
    """Otsu's threshold of non-empty finite ``flat`` values (float64; float32 on the CPU)."""
    lo, hi = float(flat.min()), float(flat.max())
    if lo == hi:
        return lo
    if xp is not np:
        hist, edges = xp.histogram(flat, bins=nbins, range=(lo, hi))
        return _threshold(hist, edges, xp)
    edges = np.linspace(lo, hi, nbins + 1)
    hist = np.zeros(nbins, np.int64)
    _bin_counts(np.ascontiguousarray(flat), lo, hi, edges, hist)
    return _threshold(hist, edges, np)


@kernel
def _bin_counts(flat: Any, lo: float, hi: float, edges: Any, counts: Any) -> None:
    """Add to ``counts`` the values of ``flat`` (in ``[lo, hi]``) binned on ``edges`` exactly
    as :func:`numpy.histogram` bins them (one pass; referee: :func:`bin_counts_reference`)."""
    n = counts.size
    width = hi - lo
    for i in range(flat.size):
        x = np.float64(flat[i])
        j = int((x - lo) / width * n)
        if j == n:
            j -= 1
        if x < edges[j]:
            j -= 1
        elif j != n - 1 and x >= edges[j + 1]:
            j += 1
        counts[j] += 1


def bin_counts_reference(flat: np.ndarray, nbins: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`numpy.histogram` of ``flat`` over ``[min, max]`` in float64 blocks of
    :data:`_BLOCK` values: the referee of the kernel :func:`_otsu` bins with."""
    lo, hi = float(flat.min()), float(flat.max())
    hist = np.zeros(nbins, np.int64)
    edges = np.linspace(lo, hi, nbins + 1)
    for start in range(0, flat.size, _BLOCK):
        block = flat[start : start + _BLOCK].astype(np.float64, copy=False)
        counts, edges = np.histogram(block, bins=nbins, range=(lo, hi))
        hist += counts
    return hist, edges


def _threshold(hist: Any, edges: Any, xp: Any) -> float:
    """The centre of the bin that maximises the between-class variance of ``hist``."""
    hist = hist.astype(xp.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = xp.cumsum(hist)
    weight_high = xp.cumsum(hist[::-1])[::-1]
    mean_low = xp.cumsum(hist * centres) / xp.maximum(weight_low, 1e-300)
    mean_high = (xp.cumsum((hist * centres)[::-1]) / xp.maximum(weight_high[::-1], 1e-300))[::-1]
    between = weight_low[:-1] * weight_high[1:] * (mean_low[:-1] - mean_high[1:]) ** 2
    return float(centres[int(xp.argmax(between))])


def weak_labels(maps: Any, *, method: str = "otsu", scope: str = "slice") -> Any:
    """In-focus masks from focus-score maps, as the paper's weak labels.

    Parameters
    ----------
    maps : (H, W) or (Z, H, W) array
        Focus-score maps (numpy or CuPy): integer or float, finite (NaN, inf, complex and
        bool maps are refused).
    method : {"otsu"}
        Thresholding method (the paper uses Otsu).
    scope : {"slice", "stack"}
        ``"slice"``: one threshold per slice, as in the paper. ``"stack"``: one threshold for the
        whole stack, so that slices far from focus come out (nearly) empty.

    Returns
    -------
    bool array of the same shape: True where the map is above the threshold.
    """
    if method != "otsu":
        raise ValueError(f"method must be 'otsu', got {method!r}")
    if scope not in ("slice", "stack"):
        raise ValueError(f"scope must be 'slice' or 'stack', got {scope!r}")
    maps = check_maps(maps)
    xp = array_namespace(maps)
    if scope == "stack" or maps.ndim == 2:
        return maps > otsu_threshold(maps)
    return xp.stack([m > otsu_threshold(m) for m in maps])
