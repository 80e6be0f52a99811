"""Stop signals (``livefocus._signals``): SIGTERM and SIGHUP stop a command as Ctrl-C does,
and a signal the process was told to ignore stays ignored (``nohup``)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from livefocus._signals import last_stop, on_stop, raise_on_stop


def test_sigterm_raises_keyboard_interrupt_and_is_named() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), raise_on_stop():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the handler runs here at the latest
    assert last_stop() == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_an_ignored_signal_stays_ignored() -> None:
    """`nohup livefocus demo ...` must outlive its terminal: SIGHUP is ignored there."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        stops: list[int] = []
        with on_stop(lambda: stops.append(1)):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing happens
            os.kill(os.getpid(), signal.SIGTERM)  # not ignored: the action runs
            time.sleep(0.2)
        assert stops == [1]
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
