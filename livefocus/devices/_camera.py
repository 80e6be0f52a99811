"""What the specimen and replay cameras share: :class:`LinkedCamera`."""

from __future__ import annotations

import math

import numpy as np
from pymmcore_plus.experimental.unicore import SimpleCameraDevice

from livefocus.devices._link import Linked, linked

__all__ = ["REFERENCE_EXPOSURE_MS", "LinkedCamera"]

#: Exposure (ms) at which the specimen camera gives the specimen's nominal brightness.
REFERENCE_EXPOSURE_MS = 10.0


class LinkedCamera(Linked, SimpleCameraDevice):
    """Shared part of the two cameras: exposure, link, size, uint16 frames, Z look-up."""

    role = "camera"

    def __init__(self) -> None:
        super().__init__()
        self._exposure = REFERENCE_EXPOSURE_MS
        self._register_link()

    def get_exposure(self) -> float:
        """Exposure in ms."""
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        """Set the exposure in ms (frames are computed, not waited for)."""
        value = float(exposure)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"exposure must be a positive number of ms, got {exposure!r}")
        self._exposure = value

    def dtype(self) -> np.dtype[np.uint16]:
        """Frames are uint16."""
        return np.dtype(np.uint16)

    def prefetch(self, z_positions: tuple[float, ...]) -> None:
        """Prepare the frames of a Z sequence ahead of time (nothing to do by default)."""

    def field_xy(self) -> tuple[float, float]:
        """Where the linked XY stage has moved the field of view (µm; (0, 0) without one)."""
        stage = linked("xystage", self._link)
        return (0.0, 0.0) if stage is None else stage.field_offset_um()

    def stage_z(self) -> float:
        """Z (µm) of the linked stage for the next frame (a trigger under a sequence)."""
        stage = linked("stage", self._link)
        if stage is None:
            raise RuntimeError(
                f"camera {self.get_label()!r} has no simulated Z stage with Link={self._link!r}; "
                "load livefocus.devices.SimZStage with the same Link"
            )
        return float(stage.trigger())
