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
- Laterally too, when given ``to_stage`` (the stage's µm per image pixel, a 2 x 2 matrix: the
  pixel size on the diagonal when the camera's axes are the stage's, else the pixel
  configuration's affine transform): each stack's X/Y is moved as its Z is, from the lateral
  drifts the pipeline measured (``x_px``, ``y_px``: the specimen's shift in the image, to
  which the stage's own move between the two stacks is added back), within
  ``max_lateral_um`` of the plan and within the XY stage's travel where it states it. A shift
  counts only where the two stacks' images match where they overlap (``match`` of at least
  :data:`MIN_MATCH`, over at least :data:`MIN_SHARED` of the field).
- Each entry of :attr:`FocusFollower.offsets` names the bounds that held its move back
  (``limited``).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from livefocus.stream._events import Schedule, StackEntries, stacks

__all__ = ["MIN_MATCH", "MIN_SHARED", "FocusFollower"]

#: Least ``match`` (the correlation of the two stacks' all-in-focus images where they overlap,
#: :class:`livefocus.depth.Drift`) for a lateral shift to count.
MIN_MATCH = 0.5
#: Least ``overlap`` (the share of the field the two images have in common for the shift)
#: for it to count: on a small overlap unrelated smooth images correlate by chance.
MIN_SHARED = 0.25


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
    end_stacks : callable, optional
        ``end_stacks(p, t)`` asks the pipeline to finish stack ``t`` of position ``p`` now
        (:meth:`livefocus.stream.Pipeline.end_stacks`): called before a wait for its drift.
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
        end_stacks: Callable[[int, int], None] | None = None,
        combine: Callable[[list[Any]], Iterable[Any]] | None = None,
        to_stage: Any = None,
        xy_origin: Callable[[], tuple[float, float]] | None = None,
        max_lateral_um: float = 100.0,
        xy_limits: tuple[float, float] | None = None,
    ) -> None:
        if not (math.isfinite(wait_s) and wait_s >= 0):
            raise ValueError(f"wait_s must be a non-negative number of seconds, got {wait_s!r}")
        if not (math.isfinite(max_offset_um) and max_offset_um >= 0):
            raise ValueError(f"max_offset_um must be a non-negative number, got {max_offset_um!r}")
        if not (math.isfinite(max_lateral_um) and max_lateral_um >= 0):
            raise ValueError(
                f"max_lateral_um must be a non-negative number, got {max_lateral_um!r}"
            )
        self._drifts = StackEntries(drift)
        self.wait_s = float(wait_s)
        self.max_offset_um = float(max_offset_um)
        self.max_lateral_um = float(max_lateral_um)
        self.limits = limits
        #: The XY stage's travel (µm, the same on both axes) where it states it.
        self.xy_limits = xy_limits
        #: µm of stage per pixel of image shift (2 x 2), None: z only.
        self.to_stage = None if to_stage is None else _matrix(to_stage)
        self._xy_origin = xy_origin or (lambda: (0.0, 0.0))
        self._home: tuple[float, float] | None = None  # the stage's XY at the first stack
        self._cancelled = cancelled or (lambda: False)
        self._end_stacks = end_stacks
        self._on_offset = on_offset
        self._combine = combine or iter
        #: One entry per stack moved (from its third on): ``p``, ``t``, ``offset_um`` (the
        #: planes' move from the plan), ``predicted_um`` (before the bounds), ``measured``
        #: (whether the previous stack's drift was there in time), ``waited_s``, ``limited``
        #: (the bounds that held the move back: ``"max_offset_um"``, ``"z travel"``,
        #: ``"max_lateral_um"``, ``"xy travel"``); following laterally also ``x_offset_um`` and
        #: ``y_offset_um``.
        self.offsets: list[dict[str, Any]] = []
        self._moves = self._drifts.by_stack  # (p, t) -> its drift entries, one per channel
        self._starts: dict[tuple[int, int], float] = {}  # (p, t) -> when the stack started
        self._channels: dict[tuple[int, int], int] = {}  # (p, t) -> channels in the stack
        # (p, t) -> its offset (x, y, z µm; x and y 0 unless following laterally)
        self._decided: dict[tuple[int, int], np.ndarray] = {}
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
        if self.to_stage is not None and self._home is None:
            self._home = self._xy_origin()  # where events without an X/Y stay
        if key not in self._decided:
            self._decided[key] = self._decide(key, stack)
        ox, oy, oz = (float(v) for v in self._decided[key])
        moved = [self._moved(e, ox, oy, oz) for e in stack]
        self._starts.setdefault(key, self._schedule.expected_start(stack[0]))
        return moved

    def _moved(self, event: Any, ox: float, oy: float, oz: float) -> Any:
        """``event`` moved by the offset (x, y only when following laterally)."""
        update: dict[str, float] = {}
        if event.z_pos is not None and oz != 0.0:
            update["z_pos"] = float(event.z_pos) + oz
        if self.to_stage is not None and (ox != 0.0 or oy != 0.0):
            home = self._home or (0.0, 0.0)
            x = home[0] if event.x_pos is None else float(event.x_pos)
            y = home[1] if event.y_pos is None else float(event.y_pos)
            update["x_pos"], update["y_pos"] = x + ox, y + oy
        return event.model_copy(update=update) if update else event

    # -- one stack's offset ---------------------------------------------------------------
    def _decide(self, key: tuple[int, int], stack: list[Any]) -> np.ndarray:
        """Stack ``key``'s offset (x, y, z µm), within the bounds; recorded from stack 2 on."""
        p, t = key
        self._channels[key] = len({int(e.index.get("c", 0)) for e in stack})
        zs = [float(e.z_pos) for e in stack if e.z_pos is not None]
        if t < 2 or not zs:
            return np.zeros(3)
        started = time.perf_counter()
        start = self._schedule.expected_start(stack[0])
        came = self._drifts.wait_for(
            (p, t - 1),
            self._channels.get((p, t - 1), 1),
            self.wait_s,
            start,
            self._cancelled,
            self._end_stacks,
        )
        measured = came and any(d.get("z_um") is not None for d in self._moves[(p, t - 1)])
        waited = time.perf_counter() - started
        wanted = self._predict(p, self._schedule.expected_start(stack[0]))
        limited: list[str] = []
        offset = max(-self.max_offset_um, min(self.max_offset_um, float(wanted[2])))
        if offset != float(wanted[2]):
            limited.append("max_offset_um")
        if self.limits is not None:
            lo, hi = self.limits
            bounded = max(lo - min(zs), min(hi - max(zs), offset))
            if bounded != offset:
                limited.append("z travel")
            offset = bounded
        lateral = np.clip(wanted[:2], -self.max_lateral_um, self.max_lateral_um)
        if self.to_stage is not None and not np.array_equal(lateral, wanted[:2]):
            limited.append("max_lateral_um")
        if self.to_stage is None:
            lateral = np.zeros(2)
        elif self.xy_limits is not None:  # the stack's X/Y stays within the travel
            home = self._home or (0.0, 0.0)
            first = stack[0]
            base = np.array(
                [
                    home[0] if first.x_pos is None else float(first.x_pos),
                    home[1] if first.y_pos is None else float(first.y_pos),
                ]
            )
            bounded_xy = np.clip(base + lateral, *self.xy_limits) - base
            if not np.allclose(bounded_xy, lateral, rtol=0, atol=1e-9):
                limited.append("xy travel")
            lateral = bounded_xy
        entry: dict[str, Any] = {
            "p": p,
            "t": t,
            "offset_um": offset,
            "predicted_um": float(wanted[2]),
            "measured": measured,
            "waited_s": round(waited, 3),
            "limited": limited,
        }
        if self.to_stage is not None:
            entry["x_offset_um"], entry["y_offset_um"] = float(lateral[0]), float(lateral[1])
        self.offsets.append(entry)
        if self._on_offset is not None:
            self._on_offset(dict(entry))
        return np.array([lateral[0], lateral[1], offset])

    def _positions(self, p: int) -> dict[int, np.ndarray]:
        """The specimen's (x, y, z) (µm from stack 0, stage coordinates) at each stack of
        position ``p`` that a chain of drifts reaches; a stack whose axial drift was not
        measured (too few common pixels) is put where the speed before it leads. Laterally,
        the image shift measured between two stacks plus the stage's own move between them
        (x, y stay 0 unless following laterally)."""
        where = {0: np.zeros(3)}
        for (q, t), entries in sorted(self._moves.items()):
            since = entries[0].get("since_t")
            if q != p or since not in where:
                continue
            moves = [float(d["z_um"]) for d in entries if d.get("z_um") is not None]
            if moves:
                here = where[since].copy()
                here[2] += statistics.median(moves)
            elif (p, t) in self._starts:
                here = self._extrapolate(p, where, self._starts[(p, t)])
            else:
                continue
            # a lateral shift counts only from stacks that share enough in-focus pixels for
            # an axial drift (z_um) and whose images match where they overlap: without them
            # the correlation sees noise (or a move beyond the field), and the track stays
            # where it was extrapolated
            trusted = [d for d in entries if d.get("z_um") is not None and _matches(d)]
            if self.to_stage is not None and trusted:
                entries = trusted
                shift = np.array(
                    [
                        statistics.median(float(d["x_px"]) for d in entries),
                        statistics.median(float(d["y_px"]) for d in entries),
                    ]
                )
                stage = self._decided.get((p, t), np.zeros(3)) - self._decided.get(
                    (p, int(since)), np.zeros(3)
                )
                here[:2] = where[since][:2] + self.to_stage @ shift + stage[:2]
            where[t] = here
        return where

    def _predict(self, p: int, at: float) -> np.ndarray:
        """Where the specimen of position ``p`` is expected at time ``at`` (x, y, z µm from
        stack 0)."""
        return self._extrapolate(p, self._positions(p), at)

    def _extrapolate(self, p: int, where: dict[int, np.ndarray], at: float) -> np.ndarray:
        """The last position in ``where``, moved on to time ``at`` at the speed between the
        last two."""
        known = sorted(where)
        last = known[-1]
        if len(known) < 2:
            return where[last].copy()
        before = known[-2]
        t_last, t_before = self._starts.get((p, last)), self._starts.get((p, before))
        if t_last is None or t_before is None or t_last <= t_before:
            return where[last].copy()
        speed = (where[last] - where[before]) / (t_last - t_before)
        moved: np.ndarray = where[last] + speed * (at - t_last)
        return moved


def _matches(entry: dict[str, Any]) -> bool:
    """Whether a drift entry's images match well enough, over enough of the field, for its
    lateral shift (an entry without ``match`` or ``overlap`` counts; one whose match is None,
    no structure to compare, does not)."""
    match, overlap = entry.get("match", 1.0), entry.get("overlap", 1.0)
    if match is None or overlap is None:
        return False
    return bool(float(match) >= MIN_MATCH and float(overlap) >= MIN_SHARED)


def _matrix(to_stage: Any) -> np.ndarray:
    """``to_stage`` as a finite, invertible 2 x 2 matrix (µm of stage per image pixel)."""
    m = np.asarray(to_stage, dtype=np.float64)
    if m.shape != (2, 2) or not np.isfinite(m).all() or abs(float(np.linalg.det(m))) < 1e-12:
        raise ValueError(
            f"to_stage must be an invertible 2 x 2 matrix of µm per pixel, got {to_stage!r}"
        )
    return m
