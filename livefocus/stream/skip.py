"""Skipping planes: each stack of a time lapse acquires only the planes near where the stack
before it found anything in focus.

A Z plan has to span wherever the specimen might be, so most planes of a time lapse often
show nothing in focus, and each costs light (bleaching, phototoxicity) and time.
:class:`PlaneSkipper` wraps the sequence's events and, before each stack of a position from
the second on, keeps only the planes from ``margin`` planes below the lowest plane where the
previous stack's depth masks hold a pixel to ``margin`` planes above the highest (the planes
of every channel of that stack together). It is a plain event iterator, as
:class:`~livefocus.stream.follow.FocusFollower` is, and the two combine: the follower moves a
stack's planes, the skipper chooses among them by their index in the plan, which following
keeps on the specimen.

- A stack is acquired whole when it is the first of its position, every ``full_every``-th
  stack (``t % full_every == 0``: structure that came into focus beyond the kept planes is
  found there), when the previous stack's masks hold no pixel, when it lost frames (a plane
  dropped would read as out of focus), and when its masks are not known in time: before each
  stack it waits for them, until the later of ``wait_s`` from now and the stack's own start
  time (its ``min_start_time``).
- The kept planes are one run of the plan's planes (its indices ``first`` .. ``last``); the
  channels of a stack keep the same ones.
- A specimen that moves by less than ``margin`` planes a stack stays inside: the next
  stack's range moves with its masks. When the masks reach the plane next to a trimmed edge
  of the kept range (the nearest the rule can judge: an edge plane has no plane beyond it),
  the specimen may go on beyond it, and the next stack keeps that side whole, to the plan's
  end. ``margin`` is at least 1 for the same reason.
- A wait cancelled with the run leaves the stack as planned and unrecorded: it is never
  acquired. Before a wait, ``end_stacks`` asks the pipeline to finish the previous stack at
  once, so that a dropped last frame does not hold it open until the next stack's frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from livefocus.stream._events import Schedule, StackEntries, stacks

__all__ = ["PlaneSkipper"]


class PlaneSkipper:
    """Acquire, from each position's second stack on, only the planes near the focus found.

    Parameters
    ----------
    stacks : callable
        ``stacks(since)`` gives the stack entries the pipeline finished so far from index
        ``since`` on (dicts with ``p``, ``t``, ``c``, ``planes``: the plan's plane indices
        processed, and ``in_focus``: those where the stack's depth masks hold a pixel), as
        :meth:`livefocus.stream.Pipeline.stacks_since` does; the entries only grow.
    margin : int
        Planes kept beyond the lowest and the highest plane in focus.
    full_every : int
        Every ``full_every``-th stack of a position (``t % full_every == 0``) is whole.
    wait_s : float
        Longest wait before a stack for the previous stack's masks, beyond the stack's start.
    cancelled : callable, optional
        True once the run is cancelled: a wait ends at once.
    on_skip : callable, optional
        Called with each stack's entry of :attr:`skips` once it is decided.
    end_stacks : callable, optional
        ``end_stacks(p, t)`` asks the pipeline to finish stack ``t`` of position ``p`` now
        (:meth:`livefocus.stream.Pipeline.end_stacks`): its last planned plane may never
        come (a dropped frame); called before a wait for its masks.
    combine : callable, optional
        Applied to each stack's kept events before they are given out (the MDA engine's
        ``event_iterator``; see :class:`~livefocus.stream.follow.FocusFollower`).
    """

    def __init__(
        self,
        stacks: Callable[[int], Sequence[dict[str, Any]]],
        *,
        margin: int = 2,
        full_every: int = 10,
        wait_s: float = 10.0,
        cancelled: Callable[[], bool] | None = None,
        on_skip: Callable[[dict[str, Any]], None] | None = None,
        end_stacks: Callable[[int, int], None] | None = None,
        combine: Callable[[list[Any]], Iterable[Any]] | None = None,
    ) -> None:
        check_skip(margin, full_every)
        if not (math.isfinite(wait_s) and wait_s >= 0):
            raise ValueError(f"wait_s must be a non-negative number of seconds, got {wait_s!r}")
        self._found = StackEntries(stacks)
        self.margin = int(margin)
        self.full_every = int(full_every)
        self.wait_s = float(wait_s)
        self._cancelled = cancelled or (lambda: False)
        self._end_stacks = end_stacks
        self._on_skip = on_skip
        self._combine = combine or iter
        #: One entry per stack from each position's second on: ``p``, ``t``, ``first`` and
        #: ``last`` (the plan's plane indices acquired), ``skipped`` (frames of the plan not
        #: acquired, over all channels), ``why`` (in words).
        self.skips: list[dict[str, Any]] = []
        self._channels: dict[tuple[int, int], int] = {}  # (p, t) -> channels in the stack
        self._kept: dict[tuple[int, int], tuple[int, int]] = {}  # (p, t) -> planes kept
        self._schedule = Schedule()

    def events(self, sequence: Iterable[Any]) -> Iterator[Any]:
        """The events of ``sequence`` without the planes skipped (lazily: one stack's events
        are held at a time)."""
        for key, stack in stacks(sequence):
            yield from self._combine(self.plan(key, stack))

    def plan(self, key: tuple[int, int], stack: list[Any]) -> list[Any]:
        """The events of stack ``key`` (``stack``) to acquire, waiting for the previous
        stack's masks; recorded from each position's second stack on (not when the run is
        cancelled during the wait: the stack is then never acquired)."""
        self._schedule.begin(stack[0])
        p, t = key
        self._channels[key] = len({int(e.index.get("c", 0)) for e in stack})
        planes = sorted({int(e.index.get("z", 0)) for e in stack})
        self._kept[key] = (planes[0], planes[-1])
        if t == 0:
            return stack
        first, last, why = planes[0], planes[-1], ""
        if t % self.full_every == 0:
            why = f"whole: t is a multiple of {self.full_every}"
        elif not self._found.wait_for(
            (p, t - 1),
            self._channels.get((p, t - 1), 1),
            self.wait_s,
            self._schedule.expected_start(stack[0]),
            self._cancelled,
            self._end_stacks,
        ):
            if self._cancelled():
                return stack  # the acquisition ends: nothing to decide or record
            why = "whole: the previous stack's masks were not known in time"
        else:
            first, last, why = self._range(key, planes)
        self._kept[key] = (first, last)
        kept = [e for e in stack if first <= int(e.index.get("z", 0)) <= last]
        skipped = len(stack) - len(kept)
        entry = {"p": p, "t": t, "first": first, "last": last, "skipped": skipped, "why": why}
        self.skips.append(entry)
        if self._on_skip is not None:
            self._on_skip(dict(entry))
        return kept

    def _range(self, key: tuple[int, int], planes: list[int]) -> tuple[int, int, str]:
        """The plan's planes ``first`` .. ``last`` stack ``key`` keeps, and why, from the
        masks of the stack before it (which are known)."""
        p, t = key
        entries = self._found.by_stack[(p, t - 1)]
        below, above = self._kept.get((p, t - 1), (planes[0], planes[-1]))
        wanted = set(range(below, above + 1))
        if any(not wanted <= {int(z) for z in d.get("planes", wanted)} for d in entries):
            # a plane it lost (dropped) would read as out of focus and narrow the range
            return planes[0], planes[-1], "whole: the previous stack lost frames"
        found = sorted({int(z) for d in entries for z in d["in_focus"]})
        if not found:
            return planes[0], planes[-1], "whole: nothing was in focus in the previous stack"
        first = max(planes[0], found[0] - self.margin)
        last = min(planes[-1], found[-1] + self.margin)
        why = f"in focus on planes {found[0]}-{found[-1]} of the previous stack"
        # the focus reached the plane next to a trimmed edge of the previous stack (the
        # nearest to it that the rule judges: an edge plane has no plane beyond it), so the
        # specimen may go on beyond the planes kept: that side is acquired whole
        edges: list[str] = []
        if below > planes[0] and found[0] <= below + 1:
            first = planes[0]
            edges.append("lowest")
        if above < planes[-1] and found[-1] >= above - 1:
            last = planes[-1]
            edges.append("highest")
        if edges:
            why += f", next to its {' and '.join(edges)} kept plane: widened to the plan's end"
        return first, last, why


def check_skip(margin: int, full_every: int) -> None:
    """Refuse bounds of plane skipping that mean nothing (one line naming the parameter)."""
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 1:
        raise ValueError(
            "skip_margin must be a whole number of planes >= 1 (the rule needs a plane beyond "
            f"each peak), got {margin!r}"
        )
    if isinstance(full_every, bool) or not isinstance(full_every, int) or full_every < 2:
        raise ValueError(
            f"skip_full_every must be a whole number of stacks >= 2, got {full_every!r}"
        )
