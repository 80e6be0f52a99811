"""The focus map of one plane as the reconstruction scores it: :func:`plane_focus`."""

from __future__ import annotations

from typing import Any

import numpy as np

from livefocus._xp import to_numpy
from livefocus.depth._settings import ReconstructSettings
from livefocus.focus.sliding import focus_map

__all__ = ["plane_focus"]


def plane_focus(frame: Any, settings: ReconstructSettings) -> np.ndarray:
    """float32 (Y, X) host focus map of ``frame`` (numpy or CuPy) under ``settings``.

    This is the map :meth:`StackReconstructor.add` computes when it is given none; the
    pipeline calls it on the GPU (a CuPy frame) and hands the result to ``add(focus=...)``.
    """
    s = settings
    fmap = focus_map(frame, s.measure, window=s.window, strides=s.strides, paint=s.paint)
    return np.asarray(to_numpy(fmap), dtype=np.float32)
