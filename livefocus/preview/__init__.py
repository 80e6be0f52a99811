"""Live preview of a running acquisition, and a browser for finished stores (Qt, pyqtgraph).

- :class:`PreviewWindow`: frame with the in-focus mask overlaid, focus-score map, depth map,
  all-in-focus image, XZ/YZ sections of the in-focus volume and the axial focus curve, with
  the pipeline's figures in the status bar. ``submit`` is thread-safe and keeps the latest
  result only; a timer in the GUI thread draws it.
- :func:`run_with_preview`: run an acquisition job in a background thread with the window.
- :func:`view_store`: browse a finished store (``livefocus view``).
- :func:`display_available`: whether a window can be shown here.

Qt is imported on first use of anything but :func:`display_available`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from livefocus.preview._display import display_available

if TYPE_CHECKING:
    from livefocus.preview._run import run_with_preview
    from livefocus.preview._viewer import StoreBrowser, view_store
    from livefocus.preview._window import PreviewWindow

__all__ = [
    "PreviewWindow",
    "StoreBrowser",
    "display_available",
    "run_with_preview",
    "view_store",
]

_LAZY = {
    "PreviewWindow": "livefocus.preview._window",
    "run_with_preview": "livefocus.preview._run",
    "StoreBrowser": "livefocus.preview._viewer",
    "view_store": "livefocus.preview._viewer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'livefocus.preview' has no attribute {name!r}")
