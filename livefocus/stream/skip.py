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
  found there), when the previous stack's masks hold no pixel, and when they are not known in
  time: before each stack it waits for them, until the later of ``wait_s`` from now and the
  stack's own start time (its ``min_start_time``).
- The kept planes are one run of the plan's planes (its indices ``first`` .. ``last``); the
  channels of a stack keep the same ones.
- A specimen that moves by up to ``margin`` planes a stack stays inside: the masks of the
  stack then reach the kept range's edge and the next stack's range moves with them.
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
        ``since`` on (dicts with ``p``, ``t``, ``c`` and ``in_focus``: the plan's plane
        indices where the stack's depth masks hold a pixel), as
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
        self._on_skip = on_skip
        self._combine = combine or iter
        #: One entry per stack from each position's second on: ``p``, ``t``, ``first`` and
        #: ``last`` (the plan's plane indices acquired), ``skipped`` (frames of the plan not
        #: acquired, over all channels), ``why`` (in words).
        self.skips: list[dict[str, Any]] = []
        self._channels: dict[tuple[int, int], int] = {}  # (p, t) -> channels in the stack
        self._schedule = Schedule()

    def events(self, sequence: Iterable[Any]) -> Iterator[Any]:
        """The events of ``sequence`` without the planes skipped (lazily: one stack's events
        are held at a time)."""
        for key, stack in stacks(sequence):
            yield from self._combine(self.plan(key, stack))

    def plan(self, key: tuple[int, int], stack: list[Any]) -> list[Any]:
        """The events of stack ``key`` (``stack``) to acquire, waiting for the previous
        stack's masks; recorded from each position's second stack on."""
        self._schedule.begin(stack[0])
        p, t = key
        self._channels[key] = len({int(e.index.get("c", 0)) for e in stack})
        planes = sorted({int(e.index.get("z", 0)) for e in stack})
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
        ):
            why = "whole: the previous stack's masks were not known in time"
        else:
            entries = self._found.by_stack[(p, t - 1)]
            found = sorted({int(z) for d in entries for z in d["in_focus"]})
            if not found:
                why = "whole: nothing was in focus in the previous stack"
            else:
                first = max(first, found[0] - self.margin)
                last = min(last, found[-1] + self.margin)
                why = f"in focus on planes {found[0]}-{found[-1]} of the previous stack"
        kept = [e for e in stack if first <= int(e.index.get("z", 0)) <= last]
        entry = {
            "p": p,
            "t": t,
            "first": first,
            "last": last,
            "skipped": len(stack) - len(kept),
            "why": why,
        }
        self.skips.append(entry)
        if self._on_skip is not None:
            self._on_skip(dict(entry))
        return kept


def check_skip(margin: int, full_every: int) -> None:
    """Refuse bounds of plane skipping that mean nothing (one line naming the parameter)."""
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise ValueError(f"skip_margin must be a whole number of planes >= 0, got {margin!r}")
    if isinstance(full_every, bool) or not isinstance(full_every, int) or full_every < 2:
        raise ValueError(
            f"skip_full_every must be a whole number of stacks >= 2, got {full_every!r}"
        )
