"""A pixel's own signal and the camera's noise: :func:`plane_support`, :func:`noise_sigma`.

The focus map scores windows, so a background pixel next to an object inherits the object's
focus peak. The *support* map scores how far each pixel itself stands out of its local
background (a top-hat), so a pixel is only in focus where the specimen itself is. The *noise*
of a plane is estimated from the frame alone, robustly (or from a camera model), so that a
focus peak can be asked to stand clear of what the camera's noise gives.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from livefocus._jit import kernel
from livefocus._morph import closing, max_filter, mean3, opening
from livefocus.depth._settings import ReconstructSettings

__all__ = [
    "median_abs_residual",
    "median_abs_residual_reference",
    "noise_sigma",
    "noise_sigma_reference",
    "plane_support",
    "polarity",
    "rounding_variance",
]

#: A top-hat must hold this many times the other's total to set the frame's polarity.
_POLAR = 2.0

#: Fewer residuals than this (frames under 5 x 5) give no noise estimate of their own.
_MIN_RESIDUALS = 9
#: Median of |N(0, 1)|: turns a median absolute value into a standard deviation.
_MAD_TO_STD = 1.0 / 0.6744897501960817
#: float32's machine epsilon: the relative rounding of a float frame's values.
_EPS32 = float(np.finfo(np.float32).eps)
#: The least noise std a frame gets (a frame of zeros), so that support stays finite.
_MIN_SIGMA = 1e-30
#: The residual ``x - mean of its 4 neighbours`` has ``sqrt(1 + 4/16)`` times the noise's std.
_RESIDUAL_GAIN = math.sqrt(1.25)


def plane_support(frame: np.ndarray, settings: ReconstructSettings, sigma: float) -> np.ndarray:
    """float32 (Y, X): how far each pixel stands out of its local background, in noise stds.

    The top-hat of ``settings.support_size`` pixels of the frame (first smoothed over
    ``settings.support_smooth`` pixels when that is more than 1), that is the frame less its
    grey opening (bright structure smaller than the size), or its black top-hat (the grey
    closing less the frame: dark structure), is divided by ``sigma``
    (the noise std of one pixel). Which one is :func:`polarity` of the frame, counting what
    stands more than ``settings.min_support`` noise stds out, each pixel up to as much again
    (``polarity="auto"``); both (their maximum) where it has no clear polarity, as a textured
    surface. Flat background next to an object scores about 0 even when a focus window there
    sees the object's edge.
    """
    img = np.asarray(frame, dtype=np.float32)
    if settings.support_smooth > 1:
        img = ndimage.uniform_filter(img, settings.support_smooth, mode="nearest")
    size = settings.support_size
    bright = img - opening(img, size)  # OpenCV, bit for bit scipy's grey_opening
    dark = closing(img, size) - img
    which: str = settings.polarity
    if which == "auto":
        # the vote counts what stands out more than the support threshold: below it, noise
        # and faint texture, which have both signs alike, would always call it "both"; and a
        # pixel's excess counts up to the threshold itself, so a few saturated pixels do not
        # decide the frame
        floor = np.float32(settings.min_support * sigma)
        which = polarity(np.clip(bright - floor, 0, floor), np.clip(dark - floor, 0, floor))
    out = {"bright": bright, "dark": dark}.get(which)
    if out is None:
        out = np.maximum(bright, dark)
    elif settings.polarity == "auto" and settings.support_large > size:
        # objects on a plain field (the frame voted one way): a larger top-hat keeps the
        # interiors of objects wider than the small one (it would let a textured specimen's
        # halos in, so frames of both signs keep the small one alone)
        large = settings.support_large
        wide = img - opening(img, large) if which == "bright" else closing(img, large) - img
        out = np.maximum(out, wide)
    if settings.support_edge > 0:
        # an object's edge lies where its contrast falls to a fraction of the local peak
        # contrast: the pixels beyond, lit only by the blur of the edge, are background
        peak = max_filter(mean3(out), 7)
        out = np.where(out >= np.float32(settings.support_edge) * peak, out, np.float32(0))
    return np.asarray(out / np.float32(sigma), dtype=np.float32)


def polarity(bright: np.ndarray, dark: np.ndarray) -> str:
    """``"bright"``, ``"dark"`` or ``"both"``: which of two top-hats holds at least twice the
    other's total (emitters on a dark field, absorbers on a bright one, or neither)."""
    sb, sd = float(bright.sum(dtype=np.float64)), float(dark.sum(dtype=np.float64))
    if sb > _POLAR * sd:
        return "bright"
    if sd > _POLAR * sb:
        return "dark"
    return "both"


def noise_sigma(frame: np.ndarray, settings: ReconstructSettings) -> float:
    """Standard deviation (frame units) of the camera noise in ``frame``.

    With a camera model in ``settings`` (``read_noise`` given) it is the shot and read noise at
    the frame's median level: ``sqrt(gain * (median - offset) + read_noise²)``. Without one it
    is estimated from the frame: the median absolute residual of each pixel against the mean of
    its four neighbours, scaled to a std, so that edges and texture (a minority of pixels)
    do not inflate it. Either way the frame's quantisation is added (:func:`rounding_variance`:
    1/12 ADU² for integer frames; float frames, such as normalised ones in [0, 1], only their
    float32 rounding), and the result is at least 1e-30 (a frame of zeros).
    """
    rounding = rounding_variance(frame)
    img = np.asarray(frame, dtype=np.float32)
    s = settings
    if s.read_noise is not None:
        level = max(float(np.median(img)) - s.offset, 0.0)
        var = s.gain * level + s.read_noise**2
    elif (img.shape[0] - 2) * (img.shape[1] - 2) < _MIN_RESIDUALS:
        # too few pixels for the residuals: the frame's own robust spread (signal included,
        # so the floor errs high)
        var = (float(np.median(np.abs(img - np.median(img)))) * _MAD_TO_STD) ** 2
    else:
        var = (median_abs_residual(img) * _MAD_TO_STD / _RESIDUAL_GAIN) ** 2
    return max(math.sqrt(var + rounding), _MIN_SIGMA)


def median_abs_residual(img: np.ndarray) -> float:
    """Median of ``|x - mean of its 4 neighbours|`` over the interior of float32 ``img`` (at
    least 3 x 3), as :func:`numpy.median` gives it (:func:`median_abs_residual_reference`).

    One numba pass (:mod:`livefocus._jit`) writes the residuals and counts them by the upper
    16 bits of their float32 patterns (which order non-negative floats); the middle one or two
    are then selected among the few values in their bins.
    """
    ny, nx = img.shape
    values = np.empty((ny - 2) * (nx - 2), np.float32)
    counts = np.zeros(1 << 16, np.int64)
    if _abs_residuals(np.ascontiguousarray(img), values, counts):
        return median_abs_residual_reference(img)  # a NaN residual: numpy's NaN rules
    n = values.size
    ranks = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    cum = np.cumsum(counts)
    bits = values.view(np.uint32) >> np.uint32(16)
    picked = []
    for rank in ranks:
        b = int(np.searchsorted(cum, rank, side="right"))  # the bin of the rank-th value
        within = rank - int(cum[b] - counts[b])
        picked.append(np.partition(values[bits == b], within)[within])
    return float(np.mean(np.asarray(picked, np.float32)))


@kernel
def _abs_residuals(img: Any, out: Any, counts: Any) -> bool:
    ny, nx = img.shape
    q = np.float32(0.25)
    i = 0
    nan = False
    for y in range(1, ny - 1):
        for x in range(1, nx - 1):
            s = ((img[y - 1, x] + img[y + 1, x]) + img[y, x - 1]) + img[y, x + 1]
            v = abs(img[y, x] - q * s)
            nan |= v != v
            out[i] = v
            i += 1
    bits = out.view(np.uint32)
    for i in range(bits.size):
        counts[bits[i] >> 16] += 1
    return nan


def median_abs_residual_reference(img: np.ndarray) -> float:
    """The referee of :func:`median_abs_residual`: numpy's arithmetic and median."""
    c = img[1:-1, 1:-1]
    with np.errstate(over="ignore", invalid="ignore"):  # sums beyond float32: inf, as the kernel
        r = c - np.float32(0.25) * (img[:-2, 1:-1] + img[2:, 1:-1] + img[1:-1, :-2] + img[1:-1, 2:])
        return float(np.median(np.abs(r)))


def rounding_variance(frame: np.ndarray) -> float:
    """Variance that quantising ``frame``'s values adds: 1/12 (a unit step) for integer and
    bool frames; for float frames the float32 rounding of the largest magnitude,
    ``(eps * max|x|)² / 12``, so that a frame scaled to [0, 1] is judged as its integer
    original is (its noise, not a step of 1, sets the floor)."""
    arr = np.asarray(frame)
    if arr.dtype.kind in "iub":
        return 1.0 / 12.0
    top = max(abs(float(arr.max())), abs(float(arr.min()))) if arr.size else 0.0
    return (_EPS32 * top) ** 2 / 12.0


def noise_sigma_reference(frame: np.ndarray) -> float:
    """Plain loop version of the data estimate of :func:`noise_sigma` (for tests)."""
    img = np.asarray(frame, dtype=np.float64)
    ny, nx = img.shape
    rounding = rounding_variance(frame)  # a law, not a fast path: shared with noise_sigma
    if (ny - 2) * (nx - 2) < _MIN_RESIDUALS:
        flat = [float(v) for v in img.ravel()]
        mid = float(np.median(flat))
        spread = float(np.median([abs(v - mid) for v in flat])) * _MAD_TO_STD
        return max(math.sqrt(spread * spread + rounding), _MIN_SIGMA)
    res = [
        img[y, x] - 0.25 * (img[y - 1, x] + img[y + 1, x] + img[y, x - 1] + img[y, x + 1])
        for y in range(1, ny - 1)
        for x in range(1, nx - 1)
    ]
    sigma = float(np.median(np.abs(res))) * _MAD_TO_STD / _RESIDUAL_GAIN
    return max(math.sqrt(sigma * sigma + rounding), _MIN_SIGMA)
