"""Focus following: each stack's Z plan moved by the specimen's measured axial drift.

In a time lapse the specimen (or the focus) drifts in z; a fixed Z plan then loses it off one
end of the stack. :class:`FocusFollower` wraps the sequence's events and, before each new
stack of a position, moves its planes to where the specimen is expected: its positions so far
(the drifts the pipeline measured between stacks, :func:`livefocus.depth.stack_drift`),
extrapolated in time at the speed of the last two (a steady drift is followed without lag).
It is a plain event iterator, so pymmcore-plus runs it as it runs a sequence
(``core.mda.run(events)``).

- Stacks 0 and 1 of a position run at the plan's own Z (one stack gives no drift; the first
  drift is known once stack 1 is analysed).
- Before stack ``t >= 2`` it waits for the drift of stack ``t - 1`` from every channel of that
  stack, until the later of ``wait_s`` from now and the stack's own start time (its
  ``min_start_time``: the acquisition would wait for it anyway). A drift that does not come in
  time is not lost: the positions are rebuilt from all the drifts measured, at every stack.
- A move between stacks ``since_t`` and ``t`` counts as such (a stack without a drift leaves a
  gap, which the next drift spans).
- The offset stays within the focus stage's travel where the stage states it, and within
  ``max_offset_um`` of the plan. The channels of a stack share its offset (the median of their
  drifts).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from livefocus.stream._events import Schedule, StackEntries, stacks

__all__ = ["FocusFollower"]


class FocusFollower:
    """Move each stack's Z plan to follow the specimen's axial drift.

    Parameters
    ----------
    drift : callable
        ``drift(since)`` gives the drift entries measured so far from index ``since`` on
        (dicts with ``p``, ``t``, ``c``, ``since_t``, ``z_um``), as
        :meth:`livefocus.stream.Pipeline.drift_since` does; the entries only grow.
    wait_s : float
        Longest wait before a stack for the previous stack's drift, beyond the stack's start.
    max_offset_um : float
        Largest move of a stack from the plan, µm.
    limits : (float, float), optional
        The focus stage's travel (µm): a moved plane stays within it.
    cancelled : callable, optional
        True once the run is cancelled: a wait ends at once.
    on_offset : callable, optional
        Called with each stack's entry of :attr:`offsets` once it is decided.
    combine : callable, optional
        Applied to each stack's moved events before they are given out, e.g. the MDA engine's
        ``event_iterator``, which merges a stack into a hardware-triggered sequence (it looks
        one event ahead, so it may only see one stack at a time).
    """

    def __init__(
        self,
        drift: Callable[[int], Sequence[dict[str, Any]]],
        *,
        wait_s: float = 10.0,
        max_offset_um: float = 50.0,
        limits: tuple[float, float] | None = None,
        cancelled: Callable[[], bool] | None = None,
        on_offset: Callable[[dict[str, Any]], None] | None = None,
        combine: Callable[[list[Any]], Iterable[Any]] | None = None,
    ) -> None:
        if not (math.isfinite(wait_s) and wait_s >= 0):
            raise ValueError(f"wait_s must be a non-negative number of seconds, got {wait_s!r}")
        if not (math.isfinite(max_offset_um) and max_offset_um >= 0):
            raise ValueError(f"max_offset_um must be a non-negative number, got {max_offset_um!r}")
        self._drifts = StackEntries(drift)
        self.wait_s = float(wait_s)
        self.max_offset_um = float(max_offset_um)
        self.limits = limits
        self._cancelled = cancelled or (lambda: False)
        self._on_offset = on_offset
        self._combine = combine or iter
        #: One entry per stack moved (from its third on): ``p``, ``t``, ``offset_um`` (the
        #: planes' move from the plan), ``predicted_um`` (before the bounds), ``measured``
        #: (whether the previous stack's drift was there in time), ``waited_s``.
        self.offsets: list[dict[str, Any]] = []
        self._moves = self._drifts.by_stack  # (p, t) -> its drift entries, one per channel
        self._starts: dict[tuple[int, int], float] = {}  # (p, t) -> when the stack started
        self._channels: dict[tuple[int, int], int] = {}  # (p, t) -> channels in the stack
        self._decided: dict[tuple[int, int], float] = {}  # (p, t) -> its offset
        self._schedule = Schedule()

    def events(self, sequence: Iterable[Any]) -> Iterator[Any]:
        """The events of ``sequence``, each stack's Z positions moved by its offset (lazily:
        one stack's events are held at a time, to know its Z range before it starts)."""
        for key, stack in stacks(sequence):
            yield from self._combine(self.plan(key, stack))

    def plan(self, key: tuple[int, int], stack: list[Any]) -> list[Any]:
        """Stack ``key``'s events (``stack``), moved by its offset; the offset is decided
        when the stack comes first (waiting for the previous stack's drift)."""
        self._schedule.begin(stack[0])
        if key not in self._decided:
            self._decided[key] = self._decide(key, stack)
        offset = self._decided[key]
        moved = [
            e
            if e.z_pos is None or offset == 0.0
            else e.model_copy(update={"z_pos": float(e.z_pos) + offset})
            for e in stack
        ]
        self._starts.setdefault(key, self._schedule.expected_start(stack[0]))
        return moved

    # -- one stack's offset ---------------------------------------------------------------
    def _decide(self, key: tuple[int, int], stack: list[Any]) -> float:
        """Stack ``key``'s offset, within the bounds; recorded from stack 2 on."""
        p, t = key
        self._channels[key] = len({int(e.index.get("c", 0)) for e in stack})
        zs = [float(e.z_pos) for e in stack if e.z_pos is not None]
        if t < 2 or not zs:
            return 0.0
        started = time.perf_counter()
        start = self._schedule.expected_start(stack[0])
        came = self._drifts.wait_for(
            (p, t - 1), self._channels.get((p, t - 1), 1), self.wait_s, start, self._cancelled
        )
        measured = came and any(d.get("z_um") is not None for d in self._moves[(p, t - 1)])
        waited = time.perf_counter() - started
        wanted = self._predict(p, self._schedule.expected_start(stack[0]))
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

    def _positions(self, p: int) -> dict[int, float]:
        """The specimen's z (µm from stack 0) at each stack of position ``p`` that a chain of
        drifts reaches; a stack whose drift was not measured (too few common pixels) is put
        where the speed before it leads."""
        where = {0: 0.0}
        for (q, t), entries in sorted(self._moves.items()):
            since = entries[0].get("since_t")
            if q != p or since not in where:
                continue
            moves = [float(d["z_um"]) for d in entries if d.get("z_um") is not None]
            if moves:
                where[t] = where[since] + statistics.median(moves)
            elif (p, t) in self._starts:
                where[t] = self._extrapolate(p, where, self._starts[(p, t)])
        return where

    def _predict(self, p: int, at: float) -> float:
        """Where the specimen of position ``p`` is expected at time ``at`` (µm from stack 0)."""
        return self._extrapolate(p, self._positions(p), at)

    def _extrapolate(self, p: int, where: dict[int, float], at: float) -> float:
        """The last position in ``where``, moved on to time ``at`` at the speed between the
        last two."""
        known = sorted(where)
        last = known[-1]
        if len(known) < 2:
            return where[last]
        before = known[-2]
        t_last, t_before = self._starts.get((p, last)), self._starts.get((p, before))
        if t_last is None or t_before is None or t_last <= t_before:
            return where[last]
        speed = (where[last] - where[before]) / (t_last - t_before)
        return where[last] + speed * (at - t_last)
