"""Confidence as a probability: :func:`calibrated`.

Two features describe a pixel's highest, confident focus peak itself: its prominence, how far
the pixel stands out of its background, and the peak's height over the base in noise stds.
A third describes its neighbourhood: the share of the pixels of the 5 x 5 square around it
that keep a depth too (:func:`depth_density`; an isolated depth is more often wrong, on data
of every generator measured). A logistic model of all of them gives the probability that the
pixel's depth (as :class:`~livefocus.depth.StackResult` gives it, smoothed) lies within half
the depth of field of the truth; it was fitted on simulated stacks (:mod:`livefocus.sim`, 12
stacks of both contrasts, varied density, brightness and plane step;
``python -m tests.support.calibrate`` refits it). Validation on the independent generators is
in the README's reliability plot.

The depth smoothing weighs each depth by :func:`peak_weight`, the logistic model of the peak's
own features alone (fitted the same way before the neighbourhood feature was added), so that
the depth map does not depend on the depths around it twice.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "CALIBRATION",
    "DENSITY_SIZE",
    "PEAK_WEIGHTS",
    "calibrated",
    "depth_density",
    "features",
    "peak_features",
    "peak_weight",
]

#: Logistic weights of the confidence: bias, logit(prominence), log1p(support),
#: log1p(height / noise), depth density.
CALIBRATION: tuple[float, float, float, float, float] = (0.1183, 0.5686, 0.1114, -1.1956, 6.63)
#: Logistic weights of the smoothing weight: bias, logit(prominence), log1p(support),
#: log1p(height / noise).
PEAK_WEIGHTS: tuple[float, float, float, float] = (1.2494, 1.4478, 1.9269, -2.582)
#: Side of the square of :func:`depth_density`.
DENSITY_SIZE = 5


def peak_features(prominence: np.ndarray, support: np.ndarray, height: np.ndarray) -> np.ndarray:
    """float32 (4, ...) design matrix of the peak's own features (a row of ones first)."""
    p = np.clip(prominence, np.float32(0.01), np.float32(0.99))
    return np.stack(
        [
            np.ones_like(p),
            np.log(p / (1 - p)),
            np.log1p(np.maximum(support, 0)),
            np.log1p(np.maximum(height, 0)),
        ]
    ).astype(np.float32)


def features(own: np.ndarray, density: np.ndarray) -> np.ndarray:
    """float32 (5, ...) design matrix of the confidence: the peak's own features
    (:func:`peak_features`) and the depth density."""
    return np.concatenate([own, np.asarray(density, np.float32)[None]]).astype(np.float32)


def depth_density(has_depth: np.ndarray) -> np.ndarray:
    """float32 (Y, X): the share of the :data:`DENSITY_SIZE` square around each pixel (the
    frame mirrored at its edges) whose pixels have a depth."""
    return np.asarray(
        ndimage.uniform_filter(np.asarray(has_depth, np.float32), DENSITY_SIZE, mode="reflect"),
        dtype=np.float32,
    )


def _logistic(x: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    w = np.asarray(weights, np.float32).reshape(len(weights), *([1] * (x.ndim - 1)))
    z = (w * x).sum(axis=0)
    return np.asarray(1 / (1 + np.exp(-np.clip(z, -30, 30))), dtype=np.float32)


def peak_weight(own: np.ndarray, prominence: np.ndarray) -> np.ndarray:
    """float32 weight of each peak's depth in the smoothing, from its own features
    (:func:`peak_features`); 0 where the curve is flat (``prominence`` 0)."""
    p = _logistic(own, PEAK_WEIGHTS)
    return np.where(prominence > 0, p, np.float32(0)).astype(np.float32)


def calibrated(own: np.ndarray, prominence: np.ndarray, density: np.ndarray) -> np.ndarray:
    """float32 probability that each peak's depth is right, from its own features
    (:func:`peak_features`, computed once for this and :func:`peak_weight`) and the depth
    density; 0 where the curve is flat (``prominence`` 0)."""
    p = _logistic(features(own, density), CALIBRATION)
    return np.where(prominence > 0, p, np.float32(0)).astype(np.float32)
