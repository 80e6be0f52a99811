"""Depths that disagree with their neighbourhood: :func:`consistent` (OpenCV) and its referee.

A pixel's focus peak can be a ghost (a defocused neighbour's ring, a stripe of the camera)
several planes from the surface around it. Such depths are few (about 3 % of a rendered
surface's pixels) but carry about half of its roughness, and a confident depth on background is
often one. A depth far from the median of its neighbourhood is therefore dropped.

The median is taken over a square of depths in which pixels without a depth hold their nearest
depth (so a thin structure surrounded by background keeps its own), with the depths quantised
to 255 levels over their range; a square of at least 7 x 7 then has an O(1) histogram median in
OpenCV. A range of more than 127 tolerances, where a level would exceed half the tolerance,
takes scipy's float median instead (exact, some 20 times slower). For a straight step, the side
a pixel lies on holds at least half of its square, so the median stays on that side and edges
are kept; a structure narrower than half the square at another depth than all around it (a
ridge, a plateau's corner) is dropped with the ghosts.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["consistent", "consistent_reference"]

#: Quantisation levels of the depth range (OpenCV's large median needs 8-bit input).
_LEVELS = 254


def _prepare(
    depth: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """Depths filled from the nearest depth, quantised to 255 levels over their range (uint8;
    float64 unquantised, step 0, where a level would exceed half the tolerance); the finite
    mask, origin and step."""
    fin = np.isfinite(depth)
    if not fin.any():
        return None
    _, (iy, ix) = ndimage.distance_transform_edt(~fin, return_indices=True)
    filled = depth[iy, ix].astype(np.float64)
    lo, hi = float(filled.min()), float(filled.max())
    step = (hi - lo) / _LEVELS if hi > lo else 1.0
    if step > tolerance / 2:
        return filled, fin, 0.0, 0.0
    q = np.rint((filled - lo) / step).astype(np.uint8)
    return q, fin, lo, step


def _keep(
    depth: np.ndarray, med: np.ndarray, fin: np.ndarray, lo: float, step: float, tolerance: float
) -> np.ndarray:
    centre = lo + med.astype(np.float64) * step if step else med
    return np.asarray(fin & (np.abs(depth - centre) <= tolerance + step / 2))


def consistent(depth: np.ndarray, *, tolerance: float, size: int = 15) -> np.ndarray:
    """bool (Y, X): pixels whose depth lies within ``tolerance`` of their neighbourhood's median.

    Parameters
    ----------
    depth : ndarray
        float32 (Y, X) depths, NaN where none (those are never kept).
    tolerance : float
        Largest distance (the depth's unit) from the median of the ``size`` square (plus half
        a quantisation level, at most a quarter of the tolerance).
    size : int
        Side of the square, odd.

    Returns
    -------
    ndarray
        Same as :func:`consistent_reference`.
    """
    import cv2

    prep = _prepare(depth, tolerance)
    if prep is None:
        return np.zeros(depth.shape, bool)
    q, fin, lo, step = prep
    if size < 7 or size % 2 == 0 or not step:
        return consistent_reference(depth, tolerance=tolerance, size=size)
    med = cv2.medianBlur(q, size)
    return _keep(depth, med, fin, lo, step, tolerance)


def consistent_reference(depth: np.ndarray, *, tolerance: float, size: int = 15) -> np.ndarray:
    """scipy's median filter of the same quantised, filled depths (the referee in the tests,
    and the path for depth ranges of more than 254 half tolerances)."""
    prep = _prepare(depth, tolerance)
    if prep is None:
        return np.zeros(depth.shape, bool)
    q, fin, lo, step = prep
    med = ndimage.median_filter(q, size, mode="nearest")
    return _keep(depth, med, fin, lo, step, tolerance)
