"""Per-pixel kernels of focus peaks: the vertex of a parabola through three samples, and the
height of a second, separate peak."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fit_vertex", "rival_peak", "rival_peak_reference"]

#: A rival peak must be separated from the highest by a dip below this fraction of itself.
DIP = 0.5


def fit_vertex(
    fm: np.ndarray, f0: np.ndarray, fp: np.ndarray, a: Any, b: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex of the parabola through three samples, and where it is a maximum.

    The samples are at offsets ``a``, 0 and ``b`` (µm; scalars or arrays, ``a != b``, both
    non-zero) with values ``fm``, ``f0``, ``fp``. Returns the vertex's offset (0 where the
    parabola does not open downwards) and the bool mask of where it does.
    """
    if isinstance(a, (int, float)):
        a = np.float32(a)
    if isinstance(b, (int, float)):
        b = np.float32(b)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        dm = fm - f0
        dp = fp - f0
        num = dm * b * b - dp * a * a
        den = np.float32(2.0) * (dm * b - dp * a)
        curv = (dm / a - dp / b) / (a - b)
        ok = (curv < 0) & (den != 0) & np.isfinite(num) & np.isfinite(den)
        off = np.divide(num, den, out=np.zeros_like(f0), where=ok)
    return off, np.asarray(ok)


def rival_peak(focus: np.ndarray, arg: np.ndarray) -> np.ndarray:
    """float32 (Y, X): the highest score of each pixel's curve on a plane separated from its
    highest plane ``arg`` by a dip, as a fraction of the highest score (0: no rival).

    A plane ``k`` is a rival when some plane between ``arg`` and ``k`` (``k`` excluded, ``arg``
    not) scores below :data:`DIP` times plane ``k``: the curve falls and rises again, as it
    does for a mixed pixel at a step in depth or for two layers. One sweep up and one down
    the stack, O(Z * Y * X); the same as :func:`rival_peak_reference`.
    """
    f = np.asarray(focus, np.float32)
    n = f.shape[0]
    peak = np.asarray(arg, np.int32)
    top = np.take_along_axis(f, peak[None].astype(np.intp), 0)[0]
    best = np.zeros(top.shape, np.float32)
    dip = np.float32(DIP)
    half = np.empty(top.shape, np.float32)
    tmp = np.empty(top.shape, np.float32)
    beyond = np.empty(top.shape, bool)
    rival = np.empty(top.shape, bool)
    # (ufuncs with where= are slow in numpy; copyto with where= is not)
    for planes, compare in ((range(n), np.less), (range(n - 1, -1, -1), np.greater)):
        low = np.full(top.shape, np.inf, np.float32)  # lowest score past the peak, this side
        for k in planes:
            compare(peak, k, out=beyond)  # plane k lies past the peak on this side
            fk = f[k]
            np.multiply(fk, dip, out=half)
            np.less(low, half, out=rival)
            rival &= beyond
            np.copyto(best, np.maximum(best, fk, out=tmp), where=rival)
            np.copyto(low, np.minimum(low, fk, out=tmp), where=beyond)
    return np.asarray(np.divide(best, top, out=np.zeros_like(best), where=top > 0))


def rival_peak_reference(focus: np.ndarray, arg: np.ndarray) -> np.ndarray:
    """Pixel-by-pixel loop version of :func:`rival_peak` (for tests)."""
    f = np.asarray(focus, np.float64)
    n, ny, nx = f.shape
    out = np.zeros((ny, nx), np.float32)
    for y in range(ny):
        for x in range(nx):
            a = int(arg[y, x])
            curve, best = f[:, y, x], 0.0
            for k in range(n):
                between = curve[min(a, k) + 1 : k] if k > a else curve[k + 1 : a]
                if k != a and between.size and between.min() < DIP * curve[k]:
                    best = max(best, curve[k])
            out[y, x] = best / curve[a] if curve[a] > 0 else 0.0
    return out
