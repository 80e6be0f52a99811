"""Run an acquisition job in a background thread while the preview window shows its results."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from PyQt6 import QtCore, QtWidgets

from livefocus._output import WRITER
from livefocus._signals import on_stop
from livefocus.preview._display import ensure_app
from livefocus.preview._window import PreviewWindow
from livefocus.stream.types import FrameResult

__all__ = ["run_with_preview", "save_screenshot", "wait_closed"]

T = TypeVar("T")

#: How long (s) the GUI thread waits on the job between two rounds of Qt events.
_POLL_S = 0.01


def save_screenshot(window: QtWidgets.QWidget, path: str | Path) -> Path:
    """Render ``window`` (as it is now) to a PNG file."""
    app = ensure_app()
    for _ in range(3):  # let layouts and deferred repaints settle
        app.processEvents()
    path = Path(path).expanduser()
    image = window.grab().toImage()
    image.setText("Software", WRITER)  # livefocus's own: a later screenshot may replace it
    if not image.save(str(path), "PNG"):
        raise OSError(f"screenshot: cannot write {str(path)!r}")
    return path


@contextmanager
def _on_sigint(action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` on Ctrl+C, SIGTERM or SIGHUP (main thread only) instead of raising
    inside a Qt slot."""
    with on_stop(action):
        yield


def _pump(app: QtWidgets.QApplication) -> None:
    app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)


def wait_closed(window: PreviewWindow) -> None:
    """Process Qt events until the user closes ``window`` (Ctrl+C closes it too)."""
    app = ensure_app()
    stop = threading.Event()
    with _on_sigint(stop.set):
        while not window.is_closed and window.isVisible() and not stop.is_set():
            _pump(app)
            stop.wait(0.02)
    if not window.is_closed:
        window.close()


def _finished_summary(window: PreviewWindow) -> str:
    result = window._state.snapshot().result
    if result is None:
        return "finished (no frames)"
    m = result.metrics
    return (
        f"finished: {m.frames_out} frames, {m.fps:.1f} frames/s, lost {m.frames_lost}, "
        f"blocked {m.blocked:.2f} s"
    )


def run_with_preview(
    job: Callable[[Callable[[FrameResult], None]], T],
    *,
    title: str = "livefocus",
    screenshot: str | Path | None = None,
    keep_open: bool = False,
    summary: Callable[[T], str] | None = None,
    on_interrupt: Callable[[], None] | None = None,
) -> T:
    """Run ``job(submit)`` in a background thread with a live preview window; return its result.

    The QApplication is created if there is none. ``job`` gets the
    window's thread-safe :meth:`PreviewWindow.submit` to call once per processed frame. Qt
    events are processed until the job ends; then the window is drawn once more, saved to
    ``screenshot`` (PNG) if given, and kept open until the user closes it if ``keep_open``.
    Closing the window mid-run lets the job finish headless. An exception of the job is
    re-raised here. Ctrl+C calls ``on_interrupt`` (which should make the job end, e.g. cancel
    the acquisition) and the window keeps drawing until the job has written what it has;
    without ``on_interrupt`` it raises KeyboardInterrupt here (the job thread is a daemon).

    Parameters
    ----------
    summary : callable, optional
        Text for the status bar from the job's result (default: frames, rate, losses).
    on_interrupt : callable, optional
        Called on the GUI thread at each Ctrl+C.
    """
    app = ensure_app()
    window = PreviewWindow(title=title)
    window.show()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = job(window.submit)
        except BaseException as exc:  # handed to the GUI thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="livefocus-job", daemon=True)
    interrupted = threading.Event()
    try:
        with _on_sigint(interrupted.set):
            thread.start()
            while thread.is_alive():
                _pump(app)
                thread.join(_POLL_S)
                if interrupted.is_set():
                    if on_interrupt is None:
                        raise KeyboardInterrupt
                    interrupted.clear()
                    on_interrupt()
        if "error" in outcome:
            raise outcome["error"]
        result: T = outcome["result"]
        text = summary(result) if summary is not None else _finished_summary(window)
        window.set_summary(text)
        window.refresh()
        if screenshot is not None:
            save_screenshot(window, screenshot)
        if keep_open:
            wait_closed(window)
        return result
    finally:
        if not window.is_closed:
            window.close()
        window.deleteLater()
