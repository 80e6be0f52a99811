"""Whether a Qt GUI can be shown, and the one QApplication (no Qt import at module level)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PyQt6.QtWidgets import QApplication

__all__ = ["display_available", "ensure_app"]

#: The application created here, kept alive for the life of the process (Qt allows one).
_APP: list[QApplication] = []


def display_available() -> bool:
    """True if a Qt window can be shown here.

    On Linux and other X11/Wayland systems that means ``DISPLAY`` or ``WAYLAND_DISPLAY`` is
    set, or ``QT_QPA_PLATFORM`` names a platform explicitly (``offscreen`` renders without a
    screen, which is enough for screenshots). macOS and Windows always have one.
    """
    platform = os.environ.get("QT_QPA_PLATFORM", "").strip()
    if platform:
        return True
    if sys.platform in ("darwin", "win32", "cygwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def ensure_app() -> QApplication:
    """The running QApplication, created if there is none.

    pymmcore-plus may then route MDA signals through Qt; :func:`livefocus.stream.stream`
    connects its handler with a direct connection, so frames stay on the acquisition thread.
    """
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "livefocus"])
        _APP.append(app)
    assert isinstance(app, QApplication)
    return app
