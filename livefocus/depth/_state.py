"""Each pixel's focus-curve state, updated with a new plane in one pass (O(Y * X)).

The state a :class:`~livefocus.depth.StackReconstructor` keeps per pixel: its highest score so
far (``fmax``) and that plane (``arg``, ``zarg``), the lowest score before and after it, its
support there and at most, and the scores and frame values on the planes either side of the
peak. :func:`update_curves` is a numba kernel (:mod:`livefocus._jit`): about 20 elementwise
numpy passes fused into one. :func:`update_curves_reference` is its numpy referee.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from livefocus._jit import kernel

__all__ = ["CURVE_FIELDS", "update_curves", "update_curves_reference"]

#: The state arrays, in the order both functions take them (flat float32; ``arg`` intp).
CURVE_FIELDS = (
    "fmax",
    "arg",
    "runmin",
    "s_at",
    "s_max",
    "leftmin",
    "rightmin",
    "fm",
    "fp",
    "raw_at",
    "raw_m",
    "raw_p",
    "off_inner",
    "zarg",
)


def update_curves(
    f: np.ndarray,
    support: np.ndarray,
    pixels: np.ndarray,
    prev: np.ndarray,
    before: np.ndarray,
    k: int,
    zrel: float,
    state: tuple[np.ndarray, ...],
    after: np.ndarray,
) -> np.ndarray:
    """Update ``state`` (the flat arrays of :data:`CURVE_FIELDS`) in place with plane ``k``.

    ``f``, ``support`` and ``pixels`` are plane ``k``'s flat focus map, support and frame;
    ``prev`` and ``before`` the previous plane's frame and focus map (any arrays of the same
    size when ``k == 0``); ``zrel`` plane ``k``'s position in µm above the first plane. Returns
    the pixels whose highest score stays on plane ``k - 1`` (their peaks now have both
    neighbours), in ascending order, as a view of ``after`` (an intp buffer of the size).
    """
    args: tuple[Any, ...] = (f, support, pixels, prev, before, k, np.float32(zrel), *state, after)
    count: int = _update(*args)
    return after[:count]


@kernel
def _update(
    f: Any,
    support: Any,
    pixels: Any,
    prev: Any,
    before: Any,
    k: int,
    zrel: Any,
    fmax: Any,
    arg: Any,
    runmin: Any,
    s_at: Any,
    s_max: Any,
    leftmin: Any,
    rightmin: Any,
    fm: Any,
    fp: Any,
    raw_at: Any,
    raw_m: Any,
    raw_p: Any,
    off_inner: Any,
    zarg: Any,
    after: Any,
) -> int:
    count = 0
    for i in range(f.size):
        v = f[i]
        new = v > fmax[i]
        if v < runmin[i]:
            runmin[i] = v
        if support[i] > s_max[i]:
            s_max[i] = support[i]
        if v < rightmin[i]:
            rightmin[i] = v
        if new:
            s_at[i] = support[i]
            leftmin[i] = runmin[i]
            rightmin[i] = v
            if k > 0:
                fm[i] = before[i]
                raw_m[i] = prev[i]
            raw_at[i] = pixels[i]
            fp[i] = -np.inf
            off_inner[i] = 0.0
            zarg[i] = zrel
            arg[i] = k
            fmax[i] = v
        elif k > 0 and arg[i] == k - 1:
            fp[i] = v
            raw_p[i] = pixels[i]
            after[count] = i
            count += 1
    return count


def update_curves_reference(
    f: np.ndarray,
    support: np.ndarray,
    pixels: np.ndarray,
    prev: np.ndarray,
    before: np.ndarray,
    k: int,
    zrel: float,
    state: tuple[np.ndarray, ...],
) -> np.ndarray:
    """:func:`update_curves` in numpy passes (the referee); returns the same pixels."""
    fmax, arg, runmin, s_at, s_max, leftmin, rightmin = state[:7]
    fm, fp, raw_at, raw_m, raw_p, off_inner, zarg = state[7:]
    new = f > fmax
    np.minimum(runmin, f, out=runmin)
    np.copyto(s_at, support, where=new)
    np.maximum(s_max, support, out=s_max)
    np.copyto(leftmin, runmin, where=new)
    np.minimum(rightmin, f, out=rightmin)
    np.copyto(rightmin, f, where=new)
    after = np.zeros(f.shape, bool)
    if k > 0:
        after = (arg == k - 1) & ~new
        np.copyto(fp, f, where=after)
        np.copyto(raw_p, pixels, where=after)
        np.copyto(fm, before, where=new)
        np.copyto(raw_m, prev, where=new)
    np.copyto(raw_at, pixels, where=new)
    np.copyto(fp, np.float32(-np.inf), where=new)
    np.copyto(off_inner, np.float32(0), where=new)
    np.copyto(zarg, np.float32(zrel), where=new)
    arg[new] = k
    np.maximum(fmax, f, out=fmax)
    return np.flatnonzero(after)
