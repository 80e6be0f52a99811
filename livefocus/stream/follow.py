"""Focus following: each stack's Z plan moved by the specimen's measured axial drift.

In a time lapse the specimen (or the focus) drifts in z; a fixed Z plan then loses it off one
end of the stack. :class:`FocusFollower` wraps the sequence's events and, before each new
stack of a position, moves its planes by where the specimen is expected to be: the drifts the
pipeline measured between the stacks so far (:func:`livefocus.depth.stack_drift`, after each
stack), extrapolated by the last one (a steady drift is followed without lag). It is a plain
event iterable, so pymmcore-plus runs it as it runs a sequence (``core.mda.run(events)``).

- Stacks 0 and 1 of a position run at the plan's own Z (one stack gives no drift; the first
  drift is known after stack 1).
- Before stack ``t >= 2`` it waits, at most ``wait_s``, for the drift of stack ``t - 1``
  (the pipeline measures it once that stack is finished); a drift that does not come in time,
  or was not measured (too few common pixels), is taken as the extrapolation.
- The offset stays within the focus stage's travel where the stage states it, and within
  ``max_offset_um`` of the plan.

The channels of a position share its offset (the median of their measured drifts).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["FocusFollower"]

#: Seconds to poll for a drift while waiting for it.
_POLL_S = 0.01


class FocusFollower:
    """Move each stack's Z plan to follow the specimen's axial drift.

    Parameters
    ----------
    drift : callable
        Gives the drift entries measured so far (dicts with ``p``, ``t``, ``z_um``), as
        :attr:`livefocus.stream.Pipeline.drift` holds them.
    wait_s : float
        Longest wait, before a stack, for the previous stack's drift.
    max_offset_um : float
        Largest move of a stack from the plan, µm.
    limits : (float, float), optional
        The focus stage's travel (µm): a moved plane stays within it.
    cancelled : callable, optional
        True once the run is cancelled: a wait ends at once.
    on_offset : callable, optional
        Called with each stack's entry of :attr:`offsets` once it is decided.
    """

    def __init__(
        self,
        drift: Callable[[], list[dict[str, Any]]],
        *,
        wait_s: float = 5.0,
        max_offset_um: float = 50.0,
        limits: tuple[float, float] | None = None,
        cancelled: Callable[[], bool] | None = None,
        on_offset: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if not (math.isfinite(wait_s) and wait_s >= 0):
            raise ValueError(f"wait_s must be a non-negative number of seconds, got {wait_s!r}")
        if not (math.isfinite(max_offset_um) and max_offset_um >= 0):
            raise ValueError(f"max_offset_um must be a non-negative number, got {max_offset_um!r}")
        self._drift = drift
        self.wait_s = float(wait_s)
        self.max_offset_um = float(max_offset_um)
        self.limits = limits
        self._cancelled = cancelled or (lambda: False)
        self._on_offset = on_offset
        #: One entry per stack moved: ``p``, ``t``, ``offset_um`` (the move from the plan),
        #: ``measured`` (whether the previous stack's drift was there in time), ``waited_s``.
        self.offsets: list[dict[str, Any]] = []
        self._position: dict[int, list[float]] = {}  # p -> specimen z (µm) at stacks 0, 1, ...
        self._decided: dict[tuple[int, int], float] = {}  # (p, t) -> its offset

    def events(self, sequence: Iterable[Any]) -> Iterator[Any]:
        """The events of ``sequence``, each stack's Z positions moved by its offset (lazily:
        one stack's events are held at a time, to know its Z range before it starts)."""
        for key, stack in _stacks(sequence):
            if key not in self._decided:
                zs = [float(e.z_pos) for e in stack if e.z_pos is not None]
                self._decided[key] = self._decide(key, zs)
            offset = self._decided[key]
            for event in stack:
                if event.z_pos is None or offset == 0.0:
                    yield event
                else:
                    yield event.model_copy(update={"z_pos": float(event.z_pos) + offset})

    def _decide(self, key: tuple[int, int], zs: list[float]) -> float:
        """Stack ``key``'s offset, within the stage's travel; recorded from stack 2 on."""
        p, t = key
        if t < 2 or not zs:
            if t == 0:
                self._position[p] = [0.0]
            return 0.0
        started = time.perf_counter()
        measured = self._wait_for(p, t - 1)
        waited = time.perf_counter() - started
        wanted = self._predict(p, t)
        offset = max(-self.max_offset_um, min(self.max_offset_um, wanted))
        if self.limits is not None:
            lo, hi = self.limits
            offset = max(lo - min(zs), min(hi - max(zs), offset))
        entry = {
            "p": p,
            "t": t,
            "offset_um": offset,
            "predicted_um": wanted,
            "measured": measured,
            "waited_s": round(waited, 3),
        }
        self.offsets.append(entry)
        if self._on_offset is not None:
            self._on_offset(dict(entry))
        return offset

    # -- one stack's offset ---------------------------------------------------------------
    def _predict(self, p: int, t: int) -> float:
        """Where the specimen of position ``p`` is expected at stack ``t >= 2`` (µm from
        stack 0): the measured moves so far, and the last one once more."""
        history = self._position.setdefault(p, [0.0])
        while len(history) < t:  # the specimen at every stack up to t - 1
            move = self._measured_move(p, len(history))
            if move is None:  # not measured: the same move as the last one
                move = history[-1] - history[-2] if len(history) >= 2 else 0.0
            history.append(history[-1] + move)
        return history[t - 1] + (history[t - 1] - history[t - 2])

    def _measured_move(self, p: int, t: int) -> float | None:
        """The specimen's z move from stack ``t - 1`` to ``t`` of position ``p`` (median over
        its channels), None when not measured."""
        moves = [
            float(d["z_um"])
            for d in self._drift()
            if d.get("p") == p and d.get("t") == t and d.get("z_um") is not None
        ]
        return statistics.median(moves) if moves else None

    def _wait_for(self, p: int, t: int) -> bool:
        """Wait (bounded) until the drift of stack ``t`` of position ``p`` is known."""
        deadline = time.perf_counter() + self.wait_s
        while True:
            if any(d.get("p") == p and d.get("t") == t for d in self._drift()):
                return self._measured_move(p, t) is not None
            if self._cancelled() or time.perf_counter() >= deadline:
                return False
            time.sleep(_POLL_S)


def _stacks(sequence: Iterable[Any]) -> Iterator[tuple[tuple[int, int], list[Any]]]:
    """The runs of consecutive events of one stack: ((p, t), events)."""
    key: tuple[int, int] | None = None
    stack: list[Any] = []
    for event in sequence:
        this = _stack_key(event)
        if this != key and stack:
            assert key is not None
            yield key, stack
            stack = []
        key = this
        stack.append(event)
    if stack:
        assert key is not None
        yield key, stack


def _stack_key(event: Any) -> tuple[int, int]:
    """(p, t) of an event: the stack it belongs to (its channels share the offset)."""
    return int(event.index.get("p", 0)), int(event.index.get("t", 0))
