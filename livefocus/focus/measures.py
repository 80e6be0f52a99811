"""The paper's focus measures, written as plain per-window formulas.

Every measure turns one window ``P`` (a 2-D crop of the slice, in float64) into one number.
Pixel differences and filters are taken *inside* the window only ("valid" stencils): a term is
counted when all the pixels it reads lie in the window, so a window's score never depends on
pixels outside it. Gradient-type scores are means over the window's terms rather than sums, so
that the truncated windows at the right and bottom borders (which the paper keeps) score on the
same scale as full windows; for full windows this is the paper's sum divided by a constant.
A window too small to hold a single term scores 0.

=========  ==================================================================================
measure    per-window score
=========  ==================================================================================
brenner    mean of (P[y, x+2] - P[y, x])**2 (Brenner's gradient, horizontal, no threshold)
tenengrad  mean of Gx**2 + Gy**2 with the 3x3 Sobel kernels (Tenengrad, no threshold)
laplacian  population variance of the 4-neighbour Laplacian L = P[y±1, x] + P[y, x±1] - 4 P[y, x]
smd        mean of |P[y, x] - P[y+1, x]| + |P[y, x] - P[y, x+1]| (sum-modulus-difference)
smd2       mean of |P[y, x] - P[y+1, x]| * |P[y, x] - P[y, x+1]|
vollath    mean of P[y, x] P[y, x+1] - P[y, x] P[y, x+2] (Vollath's F4, horizontal)
std        population standard deviation of the window's pixels (the paper's best measure)
variance   population variance of the window's pixels
entropy    Shannon entropy (bits) of the window's grey-level histogram, -sum p log2 p
dwt        mean energy of the detail sub-bands (LH + HL + HH) of a one-level orthonormal 2-D
           Haar transform, per 2x2 block; blocks start at the window's top-left corner and an
           odd last row or column is left out
=========  ==================================================================================

Entropy binning (:func:`entropy_bins`): an integer image whose range (max - min) is below 256
(all 8-bit data) gets one bin per grey level; any other image gets 256 equal bins spanning the
slice's [min, max]. The bins are fixed per slice, so all windows of a slice share them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from livefocus._vocab import MEASURES, Measure
from livefocus.focus._scale import unit_scale, unscale
from livefocus.focus._validate import check_image, check_measure

__all__ = [
    "ENTROPY_BINS",
    "MEASURES",
    "MIN_WINDOW",
    "NOISE_SCALE",
    "entropy_bins",
    "window_score",
]

#: Number of histogram bins of the entropy measure for data with more than 256 grey levels.
ENTROPY_BINS = 256

#: The smallest window (pixels per side) in which a measure can score above 0: its stencil,
#: and one more pixel for the measures that are a variance of their terms.
MIN_WINDOW: dict[str, int] = {
    "brenner": 3,
    "tenengrad": 3,
    "laplacian": 4,
    "smd": 2,
    "smd2": 2,
    "vollath": 3,
    "std": 2,
    "variance": 2,
    "entropy": 2,
    "dwt": 2,
}

#: ``(p, c)``: the measure scores white noise of standard deviation ``s`` about ``c * s**p``
#: (checked by a test), so ``(score / c) ** (1 / p)`` is in the image's intensity units, as
#: ``std`` is. The measures without such a law (vollath, smd2, entropy) are left out.
NOISE_SCALE: dict[str, tuple[int, float]] = {
    "std": (1, 1.0),
    "variance": (2, 1.0),
    "brenner": (2, 2.0),
    "tenengrad": (2, 24.0),
    "laplacian": (2, 20.0),
    "smd": (1, 4.0 / np.sqrt(np.pi)),
    "dwt": (2, 3.0),
}


def entropy_bins(image: Any) -> Any:
    """Histogram bin index (int64, 0..255) of every pixel, as used by the entropy measure."""
    from livefocus._xp import array_namespace

    image = check_image(image)
    xp = array_namespace(image)
    image, _ = unit_scale(image, xp)  # the bins do not change; (max - min) stays finite
    lo = image.min()
    hi = image.max()
    if np.issubdtype(image.dtype, np.integer) and int(hi) - int(lo) < ENTROPY_BINS:
        return image.astype(xp.int64) - int(lo)
    span = float(hi) - float(lo)
    if span == 0.0:
        return xp.zeros(image.shape, dtype=xp.int64)
    scaled = (image.astype(xp.float64) - float(lo)) * (ENTROPY_BINS / span)
    return xp.minimum(scaled.astype(xp.int64), ENTROPY_BINS - 1)


def _mean(terms: np.ndarray) -> float:
    return float(terms.mean()) if terms.size else 0.0


def _sobel(p: np.ndarray) -> np.ndarray:
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.asarray(gx * gx + gy * gy)


def _laplacian(p: np.ndarray) -> np.ndarray:
    return np.asarray(p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1])


def _haar_detail_energy(p: np.ndarray) -> np.ndarray:
    h, w = (p.shape[0] // 2) * 2, (p.shape[1] // 2) * 2
    a, b = p[0:h:2, 0:w:2], p[0:h:2, 1:w:2]
    c, d = p[1:h:2, 0:w:2], p[1:h:2, 1:w:2]
    # Parseval: detail energy = block energy - LL**2, with LL = (a + b + c + d) / 2.
    return np.asarray(a * a + b * b + c * c + d * d - (a + b + c + d) ** 2 / 4)


def _entropy(bins: np.ndarray) -> float:
    counts = np.bincount(bins.ravel())
    p = counts[counts > 0] / bins.size
    return float(-(p * np.log2(p)).sum())


def window_score(window: Any, measure: str = "std", *, bins: Any = None) -> float:
    """Score one window with one measure (the reference formula).

    Parameters
    ----------
    window : array_like
        2-D crop of a slice (any integer or float dtype; computed in float64).
    measure : str
        One of :data:`MEASURES`.
    bins : array_like, optional
        For ``entropy`` only: the crop of :func:`entropy_bins` of the *whole slice*.
        When omitted, the bins are computed from the window itself.

    Examples
    --------
    >>> window_score(np.array([[0, 2], [2, 0]]), "std")
    1.0
    """
    p = check_image(window, "window")
    measure = check_measure(measure)
    if measure == "entropy" and bins is not None:
        bins = np.asarray(bins)
        if bins.shape != p.shape or not np.issubdtype(bins.dtype, np.integer) or bins.min() < 0:
            raise ValueError(
                f"bins must be the window's crop of entropy_bins (non-negative ints of shape "
                f"{p.shape}), got dtype {bins.dtype} and shape {bins.shape}"
            )
    return score_window(p, measure, bins)


def score_window(window: np.ndarray, measure: Measure, bins: np.ndarray | None) -> float:
    """:func:`window_score` of a checked window (the reference's inner loop: no checks)."""
    if measure == "entropy":
        return _entropy(bins if bins is not None else entropy_bins(window))
    p, k = unit_scale(np.asarray(window, dtype=np.float64), np, measure)
    return float(unscale(np.float64(_score(p, measure)), measure, k, np))


def _score(p: np.ndarray, measure: str) -> float:
    if measure == "std":
        return float(p.std())
    if measure == "variance":
        return float(p.var())
    if measure == "brenner":
        return _mean((p[:, 2:] - p[:, :-2]) ** 2)
    if measure == "tenengrad":
        return _mean(_sobel(p))
    if measure == "laplacian":
        lap = _laplacian(p)
        return float(lap.var()) if lap.size else 0.0
    if measure in ("smd", "smd2"):
        dy = np.abs(p[:-1, :-1] - p[1:, :-1])
        dx = np.abs(p[:-1, :-1] - p[:-1, 1:])
        return _mean(dy + dx if measure == "smd" else dy * dx)
    if measure == "vollath":
        return _mean(p[:, :-2] * p[:, 1:-1] - p[:, :-2] * p[:, 2:])
    return _mean(_haar_detail_energy(p))  # dwt
