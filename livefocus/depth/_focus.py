"""The focus map of one plane as the reconstruction scores it: :func:`plane_focus`."""

from __future__ import annotations

from typing import Any

import numpy as np

from livefocus._xp import to_numpy
from livefocus.depth._settings import ReconstructSettings
from livefocus.focus.measures import NOISE_SCALE
from livefocus.focus.sliding import focus_map

__all__ = ["plane_focus"]

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
