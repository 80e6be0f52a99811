"""Feed a stack to a :class:`~livefocus.depth.StackReconstructor` plane by plane."""

from __future__ import annotations

import numpy as np

from livefocus.depth import StackReconstructor, StackResult


def feed(
    rec: StackReconstructor, frames: np.ndarray, maps: np.ndarray | None = None
) -> tuple[StackResult, dict[int, np.ndarray]]:
    """Add every frame (with its focus map, when ``maps`` is given), finish the stack, and
    return its result and every plane's final mask as ``add`` and ``finish`` delivered it."""
    finals: dict[int, np.ndarray] = {}
    for k, frame in enumerate(frames):
        finals.update(rec.add(frame, focus=None if maps is None else maps[k]).final)
    res, rest = rec.finish()
    finals.update(rest)
    return res, finals
