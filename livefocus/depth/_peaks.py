"""Per-pixel kernels of focus peaks: the vertex of a parabola through three samples."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fit_vertex"]


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
