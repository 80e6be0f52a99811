"""The useq sequences livefocus streams: :func:`z_sequence` builds one, :func:`sequence_layout`
checks one and says its shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from livefocus.focus._validate import check_in_range, check_positive_number

__all__ = ["MAX_PLANES", "MAX_TIME_POINTS", "SequenceLayout", "sequence_layout", "z_sequence"]

#: Most planes of one Z-stack that :func:`z_sequence` builds.
MAX_PLANES = 10_000
#: Longest interval between time points (s) that :func:`z_sequence` takes (about 30 years).
MAX_INTERVAL_S = 1e9
#: Most time points that :func:`z_sequence` takes (a year of one stack a minute is 525,600).
MAX_TIME_POINTS = 1_000_000


@dataclass(frozen=True)
class SequenceLayout:
    """The shape of a Z-stack sequence.

    Attributes
    ----------
    positions, time_points, channels, planes : int
        Sizes of the p, t, c and z axes (1 where absent).
    z_step : float
        Median plane spacing in µm (1.0 for a single plane).
    interval : float or None
        Seconds between time points (None without a time plan).
    channel_names : tuple of str
        Channel presets, in order (empty without channels).
    stage_xy : tuple of (float, float) or None
        Stage X, Y (µm) of each position, None where a position gives none.
    plan_um : tuple of float
        Each plane's Z relative to the plan's first plane (µm), by plane index.
    """

    positions: int
    time_points: int
    channels: int
    planes: int
    z_step: float
    interval: float | None = None
    channel_names: tuple[str, ...] = ()
    stage_xy: tuple[tuple[float, float] | None, ...] = ()
    plan_um: tuple[float, ...] = ()

    @property
    def frames(self) -> int:
        """Frames the sequence asks for."""
        return self.positions * self.time_points * self.channels * self.planes


def sequence_layout(sequence: Any) -> SequenceLayout:
    """Check a useq sequence for streaming and give its layout.

    Raises
    ------
    ValueError
        When the sequence has no Z plan, axes livefocus does not stream (grid), or an axis
        order that interleaves positions or time points within a Z-stack (each stack must be
        acquired in one go: ``z`` after ``p`` and ``t``).
    """
    sizes = {k: int(v) for k, v in sequence.sizes.items() if v}
    if sizes.get("z", 0) < 1 or sequence.z_plan is None:
        raise ValueError("sequence has no Z plan: livefocus needs Z-stacks (a z_plan)")
    unknown = set(sizes) - set("ptcz")
    if unknown:
        raise ValueError(f"sequence axes {sorted(unknown)} are not supported (use p, t, c, z)")
    order = "".join(a for a in sequence.axis_order if sizes.get(a, 0) > 1 or a == "z")
    for outer in "pt":
        if outer in order and order.index(outer) > order.index("z"):
            raise ValueError(
                f"sequence axis_order {''.join(sequence.axis_order)!r} puts {outer!r} inside "
                "the Z-stacks; livefocus needs each stack in one go (z after p and t, e.g. "
                "'tpcz')"
            )
    positions = [float(v) for v in sequence.z_plan]
    steps = np.diff(positions)
    step = float(np.median(np.abs(steps))) if steps.size else 1.0
    interval = None
    if sequence.time_plan is not None:
        gap: Any = getattr(sequence.time_plan, "interval", None)  # a timedelta, when given
        interval = float(gap.total_seconds()) if gap is not None else 0.0
    names = tuple(str(c.config) for c in sequence.channels)
    stage_xy = tuple(
        None if pos.x is None or pos.y is None else (float(pos.x), float(pos.y))
        for pos in sequence.stage_positions
    )
    return SequenceLayout(
        positions=sizes.get("p", 1),
        time_points=sizes.get("t", 1),
        channels=sizes.get("c", 1),
        planes=sizes["z"],
        z_step=step or 1.0,
        interval=interval,
        channel_names=names,
        stage_xy=stage_xy,
        plan_um=tuple(z - positions[0] for z in positions),
    )


def z_sequence(
    z_plan: dict[str, Any],
    *,
    time_points: int = 1,
    interval: float = 0.0,
    positions: Sequence[tuple[float, float, float | None]] | None = None,
    channels: Sequence[str] | None = None,
    channel_group: str = "Channel",
) -> Any:
    """A useq ``MDASequence`` of Z-stacks (axis order t, p, c, z: each stack is contiguous).

    Parameters
    ----------
    z_plan : dict
        A useq Z plan, e.g. ``{"range": 40, "step": 2}`` (around the current focus) or
        ``{"absolute": [0, 1, 2]}``. ``range`` and ``step`` must be positive.
    time_points, interval : int, float
        Number of stacks in time (at least 1) and the seconds between them (not negative).
    positions : sequence of (x, y, z or None), optional
        Stage positions in µm.
    channels : sequence of str, optional
        Presets of ``channel_group``.

    Raises
    ------
    ValueError
        Naming the parameter (``range``, ``step``, ``time_points``, ``interval``, ...).
    """
    import pydantic
    import useq

    for name in ("range", "step"):
        if name in z_plan:
            check_positive_number(z_plan[name], name, "µm")
    if "range" in z_plan and "step" in z_plan:
        planes = float(z_plan["range"]) / float(z_plan["step"]) + 1
        if planes > MAX_PLANES:
            raise ValueError(
                f"step {z_plan['step']!r} µm over the range of {z_plan['range']!r} µm makes "
                f"{planes:.3g} planes; a Z-stack has at most {MAX_PLANES}"
            )
    if isinstance(time_points, bool) or not isinstance(time_points, (int, np.integer)):
        raise ValueError(f"time_points must be an integer, got {time_points!r}")
    if not 1 <= time_points <= MAX_TIME_POINTS:
        raise ValueError(f"time_points must be from 1 to {MAX_TIME_POINTS:,}, got {time_points}")
    check_in_range(interval, "interval", 0.0, MAX_INTERVAL_S, "s")
    if channels is not None and any(not str(c).strip() for c in channels):
        raise ValueError(f"channels must be non-empty names, got {list(channels)!r}")
    spec: dict[str, Any] = {"z_plan": z_plan, "axis_order": "tpcz"}
    if time_points > 1:
        spec["time_plan"] = {"interval": interval, "loops": int(time_points)}
    if positions:
        spec["stage_positions"] = [{"x": x, "y": y, "z": z} for x, y, z in positions]
    if channels:
        spec["channels"] = [{"group": channel_group, "config": c} for c in channels]
    try:
        return useq.MDASequence.model_validate(spec)
    except pydantic.ValidationError as exc:  # useq's models are pydantic's; its report in one line
        raise ValueError(f"z_plan {z_plan!r} is not a valid Z plan: {exc}") from None
