"""Edge-aware regularisation of a depth map: :func:`smooth_depth`, :func:`guided_smooth`."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "guided_smooth",
    "guided_smooth_reference",
    "median9",
    "smooth_depth",
    "smooth_depth_reference",
]


def _shifts(a: np.ndarray, radius: int, fill: float) -> np.ndarray:
    """(n, Y, X): ``a`` shifted by every offset of the (2r+1)² square, ``fill`` outside."""
    p = np.pad(a, radius, constant_values=fill)
    ny, nx = a.shape
    n = 2 * radius + 1
    return np.stack([p[dy : dy + ny, dx : dx + nx] for dy in range(n) for dx in range(n)])


#: Compare-exchange pairs of a median-of-9 sorting network (Paeth; Devillard's opt_med9).
_MEDIAN9 = (
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8),
    (0, 3), (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
)  # fmt: skip


def median9(values: np.ndarray) -> np.ndarray:
    """Median over axis 0 of nine arrays, by a sorting network (19 min/max pairs)."""
    p = list(values)
    for i, j in _MEDIAN9:
        p[i], p[j] = np.minimum(p[i], p[j]), np.maximum(p[i], p[j])
    return np.asarray(p[4])


#: Pixels of the row blocks :func:`smooth_depth` works through: its chain of per-offset
#: operations then runs in cache (2.4x at 2048², the same float32 operations in the same order).
BLOCK_PIXELS = 65536


def smooth_depth(
    depth: np.ndarray,
    weight: np.ndarray,
    *,
    tolerance: float,
    radius: int = 2,
    block: int = BLOCK_PIXELS,
) -> np.ndarray:
    """Confidence-weighted, edge-aware smoothing of ``depth`` (NaN: no depth, kept NaN).

    Each pixel's depth becomes the mean of the depths in its (2 ``radius`` + 1)² square,
    weighted by their ``weight`` (confidence) and by ``exp(-(d - m)² / 2 tolerance²)``, where
    ``m`` is the median of the pixel's 3 x 3 neighbourhood (a neighbour without a depth
    counts as the pixel's own). The median anchors the range
    weights (an outlier gets its neighbours' consensus, not its own value), and the range
    weights keep a step in depth sharp: depths across the step weigh nothing.

    Parameters
    ----------
    depth, weight : ndarray
        float32 (Y, X) depths (NaN where none) and their non-negative weights.
    tolerance : float
        Depth difference (same unit as ``depth``) at which a neighbour's weight has fallen to
        ``exp(-1/2)``.
    radius : int
        Half size of the averaging square.
    block : int
        Pixels per block of rows worked through at a time (speed only: the result is the same
        for any block).
    """
    valid = np.isfinite(depth)
    if not valid.any():
        return depth.copy()
    d = np.where(valid, depth, np.float32(np.nan)).astype(np.float32)
    med = median9(np.where(np.isnan(n9 := _shifts(d, 1, np.nan)), d[None], n9))
    ny, nx = d.shape
    # a square wider than the frame holds nothing more (its rest weighs an exact 0): the same
    # result, at a cost bounded by the frame (radius 1000 on 64² took 50 s)
    radius = min(int(radius), max(ny, nx) - 1)
    pd = np.pad(np.nan_to_num(d), radius)
    pw = np.pad(np.where(valid, weight, 0).astype(np.float32), radius)
    k = np.float32(-0.5 / tolerance**2)
    n = 2 * radius + 1
    out = np.empty((ny, nx), np.float32)
    rows = max(1, int(block) // max(nx, 1))
    for y0 in range(0, ny, rows):  # blocks of rows, each offset in place: memory O(Y * X)
        h = min(rows, ny - y0)
        m = med[y0 : y0 + h]
        total = np.zeros((h, nx), np.float32)
        acc = np.zeros((h, nx), np.float32)
        w = np.empty((h, nx), np.float32)
        for dy in range(n):
            for dx in range(n):
                v = pd[y0 + dy : y0 + dy + h, dx : dx + nx]
                np.subtract(v, m, out=w)
                np.square(w, out=w)
                np.multiply(w, k, out=w)
                np.exp(w, out=w)
                np.multiply(w, pw[y0 + dy : y0 + dy + h, dx : dx + nx], out=w)
                total += w
                np.multiply(w, v, out=w)
                acc += w
        out[y0 : y0 + h] = np.where(total > 0, acc / np.where(total > 0, total, 1), m)
    return np.where(valid, out, np.float32(np.nan)).astype(np.float32)


def smooth_depth_reference(
    depth: np.ndarray, weight: np.ndarray, *, tolerance: float, radius: int = 2
) -> np.ndarray:
    """Pixel-by-pixel loop version of :func:`smooth_depth` (for tests)."""
    ny, nx = depth.shape
    out = np.full((ny, nx), np.nan, np.float64)
    for y in range(ny):
        for x in range(nx):
            if not np.isfinite(depth[y, x]):
                continue
            near = [
                depth[yy, xx]
                if 0 <= yy < ny and 0 <= xx < nx and np.isfinite(depth[yy, xx])
                else depth[y, x]
                for yy in range(y - 1, y + 2)
                for xx in range(x - 1, x + 2)
            ]
            m = float(np.median(near))
            num = den = 0.0
            for yy in range(max(0, y - radius), min(ny, y + radius + 1)):
                for xx in range(max(0, x - radius), min(nx, x + radius + 1)):
                    v = depth[yy, xx]
                    if not np.isfinite(v):
                        continue
                    w = float(weight[yy, xx]) * np.exp(-0.5 * ((v - m) / tolerance) ** 2)
                    num += w * v
                    den += w
            out[y, x] = num / den if den > 0 else m
    return out.astype(np.float32)


def _weighted_box(values: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:
    """Weighted mean over each ``size`` square (weights outside the frame are 0)."""
    num = ndimage.uniform_filter(values * weight, size, mode="constant")
    den = ndimage.uniform_filter(weight, size, mode="constant")
    return np.asarray(num / np.where(den > 1e-12, den, np.float32(1)))


def guided_smooth(depth: np.ndarray, weight: np.ndarray, *, radius: int, eps: float) -> np.ndarray:
    """Self-guided filter (He et al.) of ``depth``, weighted by ``weight``; NaN stays NaN.

    In each (2 ``radius`` + 1)² square the depth is fitted as ``a * d + b`` with
    ``a = var / (var + eps)`` (weighted mean and variance of the square's depths): where the
    depths vary less than ``sqrt(eps)`` the result is their mean (smooth), across a step
    (variance far above ``eps``) the pixel keeps its own depth. Box filters make it O(Y * X)
    whatever the radius.
    """
    valid = np.isfinite(depth)
    if not valid.any():
        return depth.copy()
    # centred on the mean depth, so that float32 keeps the variance precise
    centre = np.float32(np.mean(depth[valid], dtype=np.float64))
    x = np.where(valid, depth - centre, 0).astype(np.float32)
    w = np.where(valid, weight, 0).astype(np.float32)
    size = 2 * radius + 1
    mean = _weighted_box(x, w, size)
    var = np.maximum(_weighted_box(x * x, w, size) - mean * mean, 0)
    a = var / (var + eps)
    b = mean - a * mean
    has = (w > 0).astype(np.float32)
    out = _weighted_box(a, has, size) * x + _weighted_box(b, has, size) + centre
    return np.where(valid, out, np.nan).astype(np.float32)


def guided_smooth_reference(
    depth: np.ndarray, weight: np.ndarray, *, radius: int, eps: float
) -> np.ndarray:
    """Window-by-window loop version of :func:`guided_smooth` (for tests)."""
    ny, nx = depth.shape
    valid = np.isfinite(depth)
    w = np.where(valid, weight, 0).astype(np.float64)
    d = np.where(valid, depth, 0).astype(np.float64)
    a = np.zeros((ny, nx))
    b = np.zeros((ny, nx))
    for y in range(ny):
        for x in range(nx):
            sl = (
                slice(max(0, y - radius), y + radius + 1),
                slice(max(0, x - radius), x + radius + 1),
            )
            ws, ds = w[sl], d[sl]
            tot = ws.sum()
            m = (ws * ds).sum() / tot if tot > 1e-12 else 0.0
            v = max((ws * ds * ds).sum() / tot - m * m, 0.0) if tot > 1e-12 else 0.0
            a[y, x] = v / (v + eps)
            b[y, x] = m - a[y, x] * m
    out = np.full((ny, nx), np.nan)
    for y in range(ny):
        for x in range(nx):
            if not valid[y, x]:
                continue
            sl = (
                slice(max(0, y - radius), y + radius + 1),
                slice(max(0, x - radius), x + radius + 1),
            )
            has = valid[sl]
            out[y, x] = a[sl][has].mean() * d[y, x] + b[sl][has].mean()
    return out.astype(np.float32)
