"""Stop signals: Ctrl-C (SIGINT), SIGTERM (``kill``, ``timeout``, a batch scheduler) and SIGHUP
(a closed terminal) all stop livefocus the same way.

Python raises KeyboardInterrupt on SIGINT only; SIGTERM and SIGHUP end the process at once, so
a run stopped by a scheduler left its store marked ``running`` with its last planes
provisional. :func:`raise_on_stop` makes the other two raise KeyboardInterrupt too (the
command-line entry point runs within it), and :func:`on_stop` runs an action instead while an
acquisition loop must not be interrupted at an arbitrary point. :func:`last_stop` names the
signal that came, for the one line the command prints.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "last_stop", "on_stop", "raise_on_stop"]

#: The signals that stop a run cleanly (those this platform has).
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_NAMES = {signal.SIGINT: "Ctrl-C"}
_last: list[str] = []


def _note(signum: int) -> None:
    name = _NAMES.get(signal.Signals(signum), signal.Signals(signum).name)
    _last[:] = [name]


def last_stop() -> str:
    """How the last stop signal is named to the user (``"Ctrl-C"`` when none was noted: a
    KeyboardInterrupt raised by Python itself)."""
    return _last[0] if _last else "Ctrl-C"


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    _note(signum)
    raise KeyboardInterrupt


@contextmanager
def raise_on_stop() -> Iterator[None]:
    """Within it, every stop signal raises KeyboardInterrupt in the main thread, as Ctrl-C
    does (nothing changes outside the main thread, where signals cannot be set); the previous
    handlers come back after."""
    with _handling(_interrupt):
        yield


@contextmanager
def on_stop(action: Callable[[], None]) -> Iterator[None]:
    """Within it, any stop signal runs ``action`` instead of raising (main thread only;
    elsewhere nothing changes); the previous handlers come back after."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        _note(signum)
        action()

    with _handling(handler):
        yield


@contextmanager
def _handling(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in STOP_SIGNALS:
            # a signal the process was told to ignore stays ignored: `nohup livefocus ...`
            # must outlive its terminal (SIGHUP), a background job of a shell script ignores
            # SIGINT
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
