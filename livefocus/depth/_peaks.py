"""Per-pixel kernels of focus peaks: the candidates of a plane and their bases, the vertex of a
parabola through three samples, and the height of a second, separate peak."""

from __future__ import annotations

from typing import Any

import numpy as np

from livefocus._jit import kernel

__all__ = [
    "fit_vertex",
    "peak_candidates",
    "peak_candidates_reference",
    "rival_peak",
    "rival_peak_reference",
]

#: A rival peak must be separated from the highest by a dip below this fraction of itself.
DIP = 0.5


def peak_candidates(
    window: np.ndarray, support: np.ndarray, j: int, one_sided: bool, buffer: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Pixels whose score on row ``j`` of ``window`` is positive and the highest of the window,
    their peaks' bases, and their support on row ``j``, at most, and at most near row ``j``.

    ``window`` and ``support`` are float32 (planes, pixels), C-contiguous; ``buffer`` an intp
    array of at least its pixels. The base is the window's lowest score (``one_sided``), or
    else the higher of the lowest scores on either side of row ``j`` (both sides include it);
    "near" is rows ``j - 1`` to ``j + 1``. Returns the pixels in ascending order (a view of
    ``buffer``) and the four float32 arrays at them; one numba pass (:mod:`livefocus._jit`),
    refereed by :func:`peak_candidates_reference`.
    """
    out = np.empty((4, window.shape[1]), np.float32)
    count = _candidates(window, support, j, one_sided, buffer, out)
    return (buffer[:count], *out[:, :count])


@kernel
def _candidates(window: Any, support: Any, j: int, one_sided: bool, idx: Any, out: Any) -> int:
    m, size = window.shape
    top = window[0].copy()  # the window's highest score, plane by plane (along memory)
    for r in range(1, m):
        row = window[r]
        for i in range(size):
            top[i] = max(top[i], row[i])
    fj = window[j]
    count = 0
    for i in range(size):  # the rest at the few candidates only
        if fj[i] > 0 and fj[i] >= top[i]:
            low = window[0, i]
            for r in range(1, j + 1):
                low = min(low, window[r, i])
            high = window[j, i]
            for r in range(j + 1, m):
                high = min(high, window[r, i])
            most = support[0, i]
            for r in range(1, m):
                most = max(most, support[r, i])
            near = support[max(j - 1, 0), i]
            for r in range(max(j - 1, 0) + 1, min(j + 2, m)):
                near = max(near, support[r, i])
            idx[count] = i
            out[0, count] = min(low, high) if one_sided else max(low, high)
            out[1, count] = support[j, i]
            out[2, count] = most
            out[3, count] = near
            count += 1
    return count


def peak_candidates_reference(
    window: np.ndarray, support: np.ndarray, j: int, one_sided: bool
) -> tuple[np.ndarray, ...]:
    """:func:`peak_candidates` in numpy reductions (the referee)."""
    fj = window[j]
    cand = np.flatnonzero((fj >= window.max(axis=0)) & (fj > 0))
    if one_sided:
        base = window.min(axis=0)
    else:
        base = np.maximum(window[: j + 1].min(axis=0), window[j:].min(axis=0))
    sup = support[:, cand]
    near = sup[max(j - 1, 0) : j + 2].max(axis=0)
    return cand, base[cand], sup[j], sup.max(axis=0), near


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
    f = np.ascontiguousarray(focus, np.float32)
    peak = np.ascontiguousarray(arg, np.intp)
    top = np.take_along_axis(f, peak[None], 0)[0]
    best = np.zeros(top.shape, np.float32)
    _rivals(f.reshape(f.shape[0], -1), peak.reshape(-1), best.reshape(-1))
    return np.asarray(np.divide(best, top, out=np.zeros_like(best), where=top > 0))


@kernel
def _rivals(f: Any, peak: Any, best: Any) -> None:
    """Into ``best``: the highest rival score of each pixel (one sweep up, one down)."""
    n, size = f.shape
    dip = np.float32(DIP)
    low = np.empty(size, np.float32)  # lowest score past the peak, on the sweep's side
    for up in (True, False):
        low[:] = np.inf
        for step in range(n):
            k = step if up else n - 1 - step
            for i in range(size):
                if (peak[i] < k) if up else (peak[i] > k):
                    v = f[k, i]
                    if low[i] < v * dip and v > best[i]:
                        best[i] = v
                    if v < low[i]:
                        low[i] = v


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
