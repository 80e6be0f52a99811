"""Small pyqtgraph building blocks of the preview: image panels, colour tables, levels."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore

from livefocus.preview._sizes import FRAME_MAX_SIDE

__all__ = [
    "OVERLAY_RGB",
    "curve_panel",
    "image_item",
    "image_panel",
    "lookup_table",
    "robust_levels",
    "set_image",
]

#: Longest side of an image as drawn (larger frames are subsampled by a stride first).
DISPLAY_MAX = FRAME_MAX_SIDE
#: Let pyqtgraph average images down to the screen resolution (smoother, slower).
AUTO_DOWNSAMPLE = True
#: Colour of the in-focus overlay on the frame (magenta: unlike any grey or the colour maps).
OVERLAY_RGB = (255, 0, 255)


def lookup_table(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table of a pyqtgraph colour map (e.g. "inferno", "viridis")."""
    table: np.ndarray = pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=False)
    return table


def overlay_table(rgb: tuple[int, int, int] = OVERLAY_RGB) -> np.ndarray:
    """Two-entry RGBA table: 0 transparent, 1 opaque ``rgb`` (for a bool mask as uint8)."""
    return np.array([[0, 0, 0, 0], [*rgb, 255]], dtype=np.uint8)


def robust_levels(image: Any, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Display levels from percentiles of a subsample of the finite values (never empty)."""
    arr = np.asarray(image)
    if arr.ndim >= 2:
        step = max(1, int(np.sqrt(arr.shape[-1] * arr.shape[-2] / 65536)))
        arr = arr[..., ::step, ::step]
    values = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr.ravel()
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


def set_image(item: Any, image: Any, *, max_side: int = DISPLAY_MAX, **options: Any) -> None:
    """Show ``image`` in ``item`` in full-frame pixel coordinates, subsampled by a stride to at
    most ``max_side`` pixels a side (cheap: a view, no averaging)."""
    arr = np.asarray(image)
    ny, nx = arr.shape[-2:]
    step = max(1, math.ceil(max(ny, nx) / max_side))
    item.setImage(arr[::step, ::step], rect=QtCore.QRectF(0, 0, nx, ny), **options)


def image_item(**options: Any) -> Any:
    """An ImageItem indexed ``[row, column]`` that subsamples itself when zoomed out."""
    return pg.ImageItem(axisOrder="row-major", autoDownsample=AUTO_DOWNSAMPLE, **options)


def image_panel(title: str, *, image: bool = True, axes: bool = False) -> tuple[Any, Any]:
    """A PlotWidget showing an image (Y down, square pixels) and its ImageItem."""
    widget = pg.PlotWidget(title=title)
    plot = widget.getPlotItem()
    plot.setMenuEnabled(False)
    plot.invertY(True)
    if not axes:
        plot.hideAxis("left")
        plot.hideAxis("bottom")
    item = None
    if image:
        plot.setAspectLocked(True)
        item = image_item()
        plot.addItem(item)
    widget.setMinimumSize(QtCore.QSize(120, 80))
    return widget, item


def curve_panel(title: str) -> tuple[Any, Any, Any]:
    """A PlotWidget for the axial focus curve, its line and a marker of the current plane."""
    widget = pg.PlotWidget(title=title)
    plot = widget.getPlotItem()
    plot.setMenuEnabled(False)
    plot.setLabel("bottom", "z", units="µm")
    plot.setLabel("left", "mean focus score")
    plot.showGrid(x=True, y=True, alpha=0.25)
    line = plot.plot(
        [],
        [],
        pen=pg.mkPen("#4fc3f7", width=2),
        symbol="o",
        symbolSize=5,
        symbolBrush="#4fc3f7",
        symbolPen=None,
    )
    marker = pg.ScatterPlotItem(size=12, brush=pg.mkBrush(*OVERLAY_RGB), pen=pg.mkPen("w"))
    plot.addItem(marker)
    widget.setMinimumSize(QtCore.QSize(120, 80))
    return widget, line, marker
