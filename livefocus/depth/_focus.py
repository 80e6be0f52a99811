"""The focus map of one plane as the reconstruction scores it: :func:`plane_focus`."""

from __future__ import annotations

from typing import Any

import numpy as np

from livefocus._xp import to_numpy
from livefocus.depth._settings import ReconstructSettings
from livefocus.focus.measures import NOISE_SCALE
from livefocus.focus.sliding import focus_map

__all__ = ["intensity_units", "plane_focus"]

_TINY = 1e-30


def plane_focus(frame: Any, settings: ReconstructSettings) -> np.ndarray:
    """float32 (Y, X) host focus map of ``frame`` (numpy or CuPy) under ``settings``.

    This is the map :meth:`StackReconstructor.add` computes when it is given none; the
    pipeline calls it on the GPU (a CuPy frame) and hands the result to ``add(focus=...)``.
    With ``settings.fuse`` it is the geometric mean of the maps of ``settings.measure`` and the
    fused measures, each first taken to intensity units (:data:`~livefocus.focus.measures.
    NOISE_SCALE`), so the noise floor keeps its meaning and no measure's scale dominates.
    """
    s = settings
    names = (s.measure, *s.fuse)
    with np.errstate(over="ignore"):  # beyond float32: inf, which add() refuses by name
        maps: list[np.ndarray] = [
            np.asarray(
                to_numpy(focus_map(frame, m, window=s.window, strides=s.strides, paint=s.paint)),
                dtype=np.float64 if s.fuse else np.float32,
            )
            for m in names
        ]
    if not s.fuse:
        return maps[0]
    total = np.zeros(maps[0].shape, np.float64)
    for m, fmap in zip(names, maps, strict=True):
        power, scale = NOISE_SCALE[m]
        total += np.log(np.maximum(fmap / scale, _TINY)) / power
    with np.errstate(over="ignore"):
        return np.exp(total / len(names)).astype(np.float32)


def intensity_units(focus: np.ndarray, settings: ReconstructSettings) -> np.ndarray:
    """float32 (Y, X): a plane's focus map (:func:`plane_focus`) in the image's intensity
    units, as ``std`` scores: ``(score / c) ** (1 / p)`` for a measure that scores white noise
    of std ``s`` about ``c * s**p`` (:data:`~livefocus.focus.measures.NOISE_SCALE`).

    The depth rule compares a peak's height with the camera's noise std (its noise floor, the
    calibrated confidence's height feature) and its prominence with ``min_confidence``; in a
    measure's own units (tenengrad's are 24 squared intensities) those thresholds meant
    nothing, and the depth map came out empty. A fused map is in these units already, and so
    is ``std``: both come back as they are. The transform is monotonic, so each pixel's
    highest plane does not change."""
    if settings.fuse or settings.measure not in NOISE_SCALE:
        return focus
    power, scale = NOISE_SCALE[settings.measure]
    if power == 1 and scale == 1.0:
        return focus
    out = np.maximum(np.asarray(focus, np.float32), np.float32(0)) * np.float32(1.0 / scale)
    if power == 2:
        out = np.sqrt(out)
    elif power != 1:
        out = out ** np.float32(1.0 / power)
    return np.asarray(out, dtype=np.float32)
