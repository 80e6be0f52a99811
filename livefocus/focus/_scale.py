"""Exact power-of-two scaling of float images whose values would overflow (or underflow) the
float64 sums of squares behind the focus measures.

Multiplying by a power of two changes only the exponent of every float, so each sum, product,
square root and rounding of the scaled image is the exact scaled image of the unscaled one:
a measure of degree ``p`` (std: 1, variance: 2, entropy: 0) scores ``2**(p * k)`` times the
scaled image's score. Images inside the safe range are left untouched (bit for bit), and
integer images always are (their largest value, 2**64, is far inside it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from livefocus._vocab import Measure

__all__ = ["DEGREE", "unit_scale", "unscale"]

#: How each measure's score scales with the intensities: score(c * image) = c**p * score(image).
DEGREE: dict[Measure, int] = {
    "brenner": 2,
    "tenengrad": 2,
    "laplacian": 2,
    "smd": 1,
    "smd2": 2,
    "vollath": 2,
    "std": 1,
    "variance": 2,
    "entropy": 0,
    "dwt": 2,
}

#: Largest values up to 2**256 (1e77) keep every sum of squares of a 2**40-pixel image finite,
#: and values down to 2**-256 keep their squares normal floats.
_SAFE_EXPONENT = 256
#: Scores of a unit-scaled image stay below about 2**24 (sums of up to 128 squared unit
#: terms, painted by up to 2**16 windows), so scores beyond 2**1000 are out of reach of
#: float64's 2**1024 only in pathological cases, which :func:`unscale` still catches.
_MAX_SCORE_EXPONENT = 1000


def unit_scale(img: Any, xp: Any, measure: Measure | None = None) -> tuple[Any, int]:
    """``(img * 2**-k, k)``: a float image brought near 1 when its largest magnitude lies
    outside ``2**-256 .. 2**256`` (``k = 0`` and ``img`` itself otherwise).

    With ``measure``, an image whose scores would certainly overflow float64 (the variance
    of values beyond about 1e150, the std of values beyond about 1e301) is refused at once,
    before any work, with a ValueError naming ``image``."""
    if not np.issubdtype(img.dtype, np.floating) or img.dtype.itemsize < 8:
        return img, 0  # float32 and narrower cannot leave the safe range
    peak = xp.maximum(xp.abs(img.max()), xp.abs(img.min()))
    if peak == 0:
        return img, 0
    k = int(xp.frexp(peak)[1])
    if -_SAFE_EXPONENT <= k <= _SAFE_EXPONENT:
        return img, 0
    if measure is not None and DEGREE[measure] * k > _MAX_SCORE_EXPONENT:
        raise ValueError(_overflow(measure, k))
    return xp.ldexp(img, -k), k


def _overflow(measure: Measure, k: int) -> str:
    return (
        f"image values up to about 2**{k} make {measure} scores beyond the float64 range; "
        "scale the image down (or use measure='std')"
    )


def unscale(scores: Any, measure: Measure, k: int, xp: Any) -> Any:
    """Scores of the scaled image mapped back onto the original image's scale.

    Raises
    ------
    ValueError
        The original image's scores exceed the float64 range (e.g. the variance of values
        near 1e300).
    """
    power = DEGREE[measure] * k
    if power == 0:
        return scores
    with np.errstate(over="ignore", under="ignore"):
        out = xp.ldexp(scores, power)
    if not bool(xp.isfinite(out).all()):
        raise ValueError(_overflow(measure, k))
    return out
