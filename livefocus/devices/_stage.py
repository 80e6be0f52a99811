"""A simulated Z stage with travel limits and hardware-triggered sequences: :class:`SimZStage`.

The stage is sequenceable: under hardware-triggered Z (``MDAEngine`` with hardware sequencing)
it receives the positions of the Z-stack up front, and each camera frame acts as the trigger
that advances it to the next position, as a camera TTL line would on a real piezo.
"""

from __future__ import annotations

import math
import threading

from pymmcore_plus.experimental.unicore import StageDevice

from livefocus.devices._link import Linked, linked

__all__ = ["SimZStage"]


class SimZStage(Linked, StageDevice):
    role = "stage"

    """A simulated Z stage (µm) with travel limits and hardware-triggered sequences.

    Properties: ``Link`` (shared with its camera), ``LowerLimitUm`` and ``UpperLimitUm``
    (travel; a move outside raises ``ValueError``). Positions are exact: no settling, no
    backlash.
    """

    def __init__(self) -> None:
        super().__init__()
        self._position = 0.0
        self._origin = 0.0
        self._lower = -1000.0
        self._upper = 1000.0
        self._sequence: tuple[float, ...] = ()
        self._seq_index = 0
        self._seq_running = False
        self._lock_seq = threading.Lock()
        self._register_link()
        self.register_property(
            "LowerLimitUm",
            property_type=float,
            getter=SimZStage._get_lower,
            setter=SimZStage._set_lower,
        )
        self.register_property(
            "UpperLimitUm",
            property_type=float,
            getter=SimZStage._get_upper,
            setter=SimZStage._set_upper,
        )

    # properties
    def _get_lower(self) -> float:
        return self._lower

    def _set_lower(self, value: float) -> None:
        self._lower = float(value)

    def _get_upper(self) -> float:
        return self._upper

    def _set_upper(self, value: float) -> None:
        self._upper = float(value)

    # device
    def set_position_um(self, val: float) -> None:
        """Move to ``val`` µm; a position outside the travel limits raises ``ValueError``."""
        z = float(val)
        if not math.isfinite(z) or not (self._lower <= z <= self._upper):
            raise ValueError(
                f"position {val!r} µm is outside the range of stage {self.get_label()!r}: "
                f"[{self._lower:g}, {self._upper:g}] µm"
            )
        self._position = z - self._origin
        self.core.events.stagePositionChanged.emit(self.get_label(), z)

    def get_position_um(self) -> float:
        """Current position in µm."""
        return self._position + self._origin

    def home(self) -> None:
        """Move to 0."""
        self.set_position_um(0.0)

    def stop(self) -> None:
        """Nothing to stop: moves are instantaneous."""

    def set_origin(self) -> None:
        """Make the current position Z = 0."""
        self._origin = -self._position

    def set_adapter_origin_um(self, newZUm: float) -> None:
        """Make the current position Z = ``newZUm``."""
        self._origin = float(newZUm) - self._position

    # hardware-triggered sequences
    def get_sequence_max_length(self) -> int:
        """Longest position sequence the stage accepts."""
        return 100_000

    def send_sequence(self, sequence: tuple[float, ...]) -> None:
        """Load the positions of a triggered Z sequence (checked against the limits)."""
        for z in sequence:
            if not (self._lower <= float(z) <= self._upper):
                raise ValueError(
                    f"sequence position {z!r} µm is outside the range of stage "
                    f"{self.get_label()!r}: [{self._lower:g}, {self._upper:g}] µm"
                )
        with self._lock_seq:
            self._sequence = tuple(float(z) for z in sequence)
        camera = linked("camera", self._link)
        if camera is not None:
            camera.prefetch(self._sequence)

    def start_sequence(self) -> None:
        """Arm the sequence: the next camera frame triggers its first position."""
        with self._lock_seq:
            self._seq_index = 0
            self._seq_running = bool(self._sequence)

    def stop_sequence(self) -> None:
        """Disarm the sequence; the stage stays where the last trigger left it."""
        with self._lock_seq:
            self._seq_running = False

    def trigger(self) -> float:
        """Position for the next frame: a triggered step when a sequence runs, else current."""
        with self._lock_seq:
            if not self._seq_running:
                return self.get_position_um()
            z = self._sequence[self._seq_index % len(self._sequence)]
            self._seq_index += 1
            self._position = z - self._origin
            return z
