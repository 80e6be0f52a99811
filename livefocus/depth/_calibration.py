"""Confidence as a probability: :func:`calibrated`.

The features of a pixel's highest, confident focus peak (its prominence, how far the pixel
itself stands out of its background, and the peak's height over the base in noise stds) are
mapped to the probability that the pixel's depth (as :class:`~livefocus.depth.StackResult`
gives it, smoothed) is within half the depth of field of the truth, by a logistic model
fitted on simulated stacks (:mod:`livefocus.sim`, 12 stacks of both contrasts, varied density,
brightness and plane step;
``python -m tests.support.calibrate`` refits it). Validation on an independent generator is in
the README's reliability plot.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CALIBRATION", "calibrated", "features"]

#: Logistic weights: bias, logit(prominence), log1p(support), log1p(height / noise).
CALIBRATION: tuple[float, float, float, float] = (1.2494, 1.4478, 1.9269, -2.582)


def features(prominence: np.ndarray, support: np.ndarray, height: np.ndarray) -> np.ndarray:
    """float32 (4, ...) design matrix of the logistic model (a row of ones first)."""
    p = np.clip(prominence, np.float32(0.01), np.float32(0.99))
    return np.stack(
        [
            np.ones_like(p),
            np.log(p / (1 - p)),
            np.log1p(np.maximum(support, 0)),
            np.log1p(np.maximum(height, 0)),
        ]
    ).astype(np.float32)


def calibrated(prominence: np.ndarray, support: np.ndarray, height: np.ndarray) -> np.ndarray:
    """float32 probability that each peak's depth is right; 0 where the curve is flat."""
    x = features(prominence, support, height)
    w = np.asarray(CALIBRATION, np.float32).reshape(4, *([1] * (x.ndim - 1)))
    z = (w * x).sum(axis=0)
    p = 1 / (1 + np.exp(-np.clip(z, -30, 30)))
    return np.where(prominence > 0, p, np.float32(0)).astype(np.float32)
