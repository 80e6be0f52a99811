"""A simulated XY stage that moves the specimen camera's field of view: :class:`SimXYStage`."""

from __future__ import annotations

import math

from pymmcore_plus.experimental.unicore import XYStageDevice

from livefocus.devices._link import Linked

__all__ = ["SimXYStage"]


class SimXYStage(Linked, XYStageDevice):
    """A simulated XY stage (µm) whose position the linked specimen camera images.

    Moving it by +x µm moves the field of view by +x over the specimen, so the specimen
    appears x µm toward lower columns (the camera's axes are the stage's, as in the demo's
    pixel configuration). Properties: ``Link`` (shared with its camera) and ``LimitUm``
    (travel ± this on each axis; a move outside raises ``ValueError``). Moves are exact and
    instantaneous.
    """

    role = "xystage"

    def __init__(self) -> None:
        super().__init__()
        self._x = 0.0
        self._y = 0.0
        self._origin = (0.0, 0.0)
        self._limit = 10_000.0
        self._register_link()
        self.register_property(
            "LimitUm",
            property_type=float,
            getter=SimXYStage._get_limit,
            setter=SimXYStage._set_limit,
        )

    def _get_limit(self) -> float:
        return self._limit

    def _set_limit(self, value: float) -> None:
        limit = float(value)
        if not (math.isfinite(limit) and limit > 0):
            raise ValueError(f"LimitUm must be a positive number of µm, got {value!r}")
        self._limit = limit

    def set_position_um(self, x: float, y: float) -> None:
        """Move to (``x``, ``y``) µm; outside the travel raises ``ValueError``."""
        for name, value in (("x", x), ("y", y)):
            v = float(value)
            if not math.isfinite(v) or abs(v) > self._limit:
                raise ValueError(
                    f"{name} position {value!r} µm is outside the range of stage "
                    f"{self.get_label()!r}: [-{self._limit:g}, {self._limit:g}] µm"
                )
        self._x = float(x) - self._origin[0]
        self._y = float(y) - self._origin[1]

    def get_position_um(self) -> tuple[float, float]:
        """Current (x, y) in µm."""
        return (self._x + self._origin[0], self._y + self._origin[1])

    def home(self) -> None:
        """Move to (0, 0)."""
        self.set_position_um(0.0, 0.0)

    def stop(self) -> None:
        """Nothing to stop: moves are instantaneous."""

    def set_origin_x(self) -> None:
        """Make the current x position 0."""
        self._origin = (-self._x, self._origin[1])

    def set_origin_y(self) -> None:
        """Make the current y position 0."""
        self._origin = (self._origin[0], -self._y)

    def field_offset_um(self) -> tuple[float, float]:
        """Where the field of view lies over the specimen (µm): the stage's raw position,
        whatever its origin."""
        return (self._x, self._y)
