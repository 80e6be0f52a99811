"""What the event planners (:mod:`~livefocus.stream.follow`, :mod:`~livefocus.stream.skip`)
share: a sequence cut into its stacks, the stacks' schedule, and a bounded wait for what the
pipeline measures of a stack."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

__all__ = [
    "Schedule",
    "StackEntries",
    "StackPlanner",
    "planned",
    "stack_key",
    "stacks",
    "wait_until",
]

#: Seconds between two looks at what the pipeline measured while waiting for it.
POLL_S = 0.01


def start_time(event: Any) -> float:
    """An event's scheduled start (s after the sequence's start; 0 when none)."""
    return float(getattr(event, "min_start_time", None) or 0.0)


def stack_key(event: Any) -> tuple[int, int]:
    """(p, t) of an event: the stack it belongs to (its channels share the stack's plan)."""
    return int(event.index.get("p", 0)), int(event.index.get("t", 0))


def stacks(sequence: Iterable[Any]) -> Iterator[tuple[tuple[int, int], list[Any]]]:
    """The runs of consecutive events of one stack: ((p, t), events)."""
    key: tuple[int, int] | None = None
    stack: list[Any] = []
    for event in sequence:
        this = stack_key(event)
        if this != key and stack:
            assert key is not None
            yield key, stack
            stack = []
        key = this
        stack.append(event)
    if stack:
        assert key is not None
        yield key, stack


class StackPlanner(Protocol):
    """Plans a stack before it is acquired (:class:`~livefocus.stream.follow.FocusFollower`,
    :class:`~livefocus.stream.skip.PlaneSkipper`)."""

    def plan(self, key: tuple[int, int], stack: list[Any]) -> list[Any]:
        """Stack ``key``'s events to acquire, from its events ``stack``."""
        ...


def planned(
    sequence: Iterable[Any],
    planners: Sequence[StackPlanner],
    combine: Callable[[list[Any]], Iterable[Any]] | None = None,
) -> Iterator[Any]:
    r"""The events of ``sequence``, each stack planned by each of ``planners`` in turn, then
    ``combine``\ d (the MDA engine's ``event_iterator``).

    The planners meet one stack at a time, and each plans it when the acquisition asks for
    its first event: chained as event iterators instead, the outer one would take the next
    stack's first event from the inner one, whose wait for this stack's measurements would
    then come before this stack was acquired.
    """
    for key, stack in stacks(sequence):
        for planner in planners:
            stack = planner.plan(key, stack)
        yield from (combine or iter)(stack)


class Schedule:
    """When the stacks of a sequence start, on the ``perf_counter`` clock."""

    def __init__(self) -> None:
        self._t0: float | None = None  # when the sequence started

    def begin(self, first: Any) -> None:
        """Note the sequence's start at its first stack (``first``: that stack's first event)."""
        if self._t0 is None:
            self._t0 = time.perf_counter() - start_time(first)

    def expected_start(self, first: Any) -> float:
        """When a stack whose first event is ``first`` starts: now, or its scheduled time."""
        now = time.perf_counter()
        return now if self._t0 is None else max(now, self._t0 + start_time(first))


def wait_until(
    done: Callable[[], bool], wait_s: float, start: float, cancelled: Callable[[], bool]
) -> bool:
    """Wait until ``done()``, at most until the later of ``wait_s`` from now and ``start``
    (a ``perf_counter`` time), or until ``cancelled()``; whether it was done."""
    deadline = max(time.perf_counter() + wait_s, start)
    while True:
        if done():
            return True
        if cancelled() or time.perf_counter() >= deadline:
            return False
        time.sleep(POLL_S)


class StackEntries:
    """What the pipeline measured of each stack (``read(since)``: its entries from index
    ``since`` on, dicts with ``p`` and ``t``, one per channel; they only grow), by stack."""

    def __init__(self, read: Callable[[int], Sequence[dict[str, Any]]]) -> None:
        self._read = read
        self._seen = 0  # entries read so far
        #: (p, t) -> the stack's entries, one per channel.
        self.by_stack: dict[tuple[int, int], list[dict[str, Any]]] = {}

    def update(self) -> None:
        """Take in the entries measured since the last look."""
        new = self._read(self._seen)
        self._seen += len(new)
        for d in new:
            self.by_stack.setdefault((int(d.get("p", 0)), int(d["t"])), []).append(d)

    def wait_for(
        self,
        key: tuple[int, int],
        channels: int,
        wait_s: float,
        start: float,
        cancelled: Callable[[], bool],
        end: Callable[[int, int], None] | None = None,
    ) -> bool:
        """Wait until stack ``key`` has an entry for each of its ``channels``, at most until
        the later of ``wait_s`` from now and ``start``; whether all came. ``end(p, t)``, when
        given, is called first if they are not there yet: it asks the pipeline to finish that
        stack now (its last planned frame may never come)."""

        def came() -> bool:
            self.update()
            return len(self.by_stack.get(key, ())) >= channels

        if not came() and end is not None:
            end(*key)
        return wait_until(came, wait_s, start, cancelled)
