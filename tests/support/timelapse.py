"""Time-lapse useq sequences for the tests of the stack planners (following, skipping)."""

from __future__ import annotations

from typing import Any

import useq

__all__ = ["INTERVAL", "timelapse"]

#: Seconds between the stacks of the planners' unit tests: far beyond the tests' own time,
#: so that each stack's start is its schedule and a wait ends when its measurement comes.
INTERVAL = 100.0


def timelapse(plan: Any, loops: int, interval: float = INTERVAL, **kwargs: Any) -> useq.MDASequence:
    """``loops`` stacks of the Z plan ``plan``, ``interval`` s apart (axis order ``tpcz``
    unless given)."""
    return useq.MDASequence(
        z_plan=plan,
        time_plan=useq.TIntervalLoops(interval=interval, loops=loops),
        axis_order=kwargs.pop("axis_order", "tpcz"),
        **kwargs,
    )
