"""The live preview window: draws the latest :class:`FrameResult` at a fixed rate."""

from __future__ import annotations

import logging
import math
import time
import weakref
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from livefocus.preview._panels import (
    curve_panel,
    image_item,
    image_panel,
    lookup_table,
    overlay_table,
    robust_levels,
    set_image,
)
from livefocus.preview._render import View, VoxelCache, render_volume
from livefocus.preview._sizes import PANEL_MAX_SIDE, VIEW3D_SIDE, VOLUME_MAX_SIDE
from livefocus.preview._state import PreviewState, Snapshot, StackVolume
from livefocus.stream.types import FrameResult, Metrics

__all__ = ["DRAW_SHARE", "PreviewWindow", "draw_interval_ms", "format_metrics"]

log = logging.getLogger(__name__)

#: Longest side drawn of the smaller panels (focus, depth, all-in-focus).
SIDE_MAX = PANEL_MAX_SIDE
#: Most of the wall time the GUI thread may spend drawing (see :func:`draw_interval_ms`).
DRAW_SHARE = 0.2
#: Shortest time between two draws of the 3D view while a stack grows (s).
VIEW3D_INTERVAL_S = 0.5
#: Longest wait between draws (ms), however slow a draw: the window stays live.
MAX_INTERVAL_MS = 2000


def draw_interval_ms(cpu_s: float, base_ms: int, share: float = DRAW_SHARE) -> int:
    """Milliseconds until the next draw after a timer period in which the GUI thread used
    ``cpu_s`` seconds of CPU (drawing, painting, the user's clicks): at least ``base_ms`` (the
    refresh rate), and long enough that drawing takes at most ``share`` of the wall time, up
    to :data:`MAX_INTERVAL_MS`. The GUI thread holds Python's lock while it draws, so a
    window that drew at a fixed 20 Hz whatever a draw cost slowed the pipeline's threads (a
    draw of the 512² demo costs about 40 ms)."""
    wanted = math.ceil(1000.0 * max(cpu_s, 0.0) / share) if math.isfinite(cpu_s) else 0
    return max(base_ms, min(MAX_INTERVAL_MS, wanted))


def format_metrics(m: Metrics) -> str:
    """The pipeline figures as one status-bar line."""
    queue = f"{m.queue_depth}/{m.queue_size}" if m.queue_size else f"{m.queue_depth}"
    return (
        f"{m.fps:.1f} frames/s  ·  queue {queue}  ·  latency p50 {m.latency_p50 * 1e3:.0f} ms"
        f" / p99 {m.latency_p99 * 1e3:.0f} ms  ·  lost {m.frames_lost}  ·  blocked "
        f"{m.blocked:.2f} s  ·  frames {m.frames_out}/{m.frames_in}"
    )


def format_index(result: FrameResult) -> str:
    """Where the frame lies: ``t 0  p 0  c 0  z 3 (6.0 µm)``."""
    idx = result.index
    dims = "  ".join(f"{k} {idx[k]}" for k in ("t", "p", "c") if k in idx)
    return f"{dims}  z {idx.get('z', 0)} ({result.z_um:.1f} µm)".strip()


class _DragImage(pg.ImageItem):  # type: ignore[misc]
    """The 3D view's image: a drag with the left button turns the view (``on_drag(dx, dy)``)."""

    def __init__(self, on_drag: Any) -> None:
        super().__init__(axisOrder="row-major")
        # a weak reference: the item must not keep its window alive (a cycle through Qt
        # objects that Python then frees in any order crashed a later paint)
        self._on_drag = weakref.WeakMethod(on_drag)

    def mouseDragEvent(self, ev: Any) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        delta = ev.screenPos() - ev.lastScreenPos()
        turn = self._on_drag()
        if turn is not None:
            turn(float(delta.x()), float(delta.y()))


class PreviewWindow(QtWidgets.QMainWindow):
    """Live view of a running acquisition (see the README's *Live preview*).

    :meth:`submit` may be called from any thread: it stores the result (and adds its plane to
    the XZ/YZ volume) under a lock. A timer in the GUI thread draws the latest result
    up to ``refresh_hz`` times a second, and less often when drawing is slow: the GUI thread
    spends at most :data:`DRAW_SHARE` of the time on it (:func:`draw_interval_ms`). Once the
    window is closed, :meth:`submit` does nothing.
    """

    #: Emitted (GUI thread) when the window has been closed.
    closed = QtCore.pyqtSignal()

    def __init__(self, *, title: str = "livefocus", refresh_hz: float = 20.0) -> None:
        super().__init__()
        self.setWindowTitle(title)
        self.resize(1500, 860)
        self._state = PreviewState()
        self._snapshot: Snapshot | None = None
        self._drawn = -1
        self._contrast_set = False
        self._frame_shape: tuple[int, int] | None = None
        self.show_metrics = True

        # panels
        self.frame_view, self._frame = image_panel("frame + in-focus mask")
        self._overlay = image_item()
        self._overlay.setZValue(10)
        self.frame_view.getPlotItem().addItem(self._overlay)
        pen = pg.mkPen("#ffd54f", width=1, style=QtCore.Qt.PenStyle.DashLine)
        self._vline = pg.InfiniteLine(angle=90, movable=True, pen=pen)
        self._hline = pg.InfiniteLine(angle=0, movable=True, pen=pen)
        for line in (self._vline, self._hline):
            line.setZValue(20)
            self.frame_view.getPlotItem().addItem(line)
            line.sigPositionChanged.connect(self._draw_volume)
        self.focus_view, self._focus = image_panel("focus score")
        self._focus.setLookupTable(lookup_table("inferno"))
        self.depth_view, self._depth = image_panel("depth")
        self._depth_bar = pg.ColorBarItem(
            values=(0.0, 1.0),
            colorMap=pg.colormap.get("viridis"),
            label="height (µm)",
            interactive=False,
            width=14,
        )
        self._depth_bar.setImageItem(self._depth, insert_in=self.depth_view.getPlotItem())
        self.aif_view, self._aif = image_panel("all in focus")
        self.xz_view, self._xz = image_panel("XZ (in focus)", axes=True)
        self.yz_view, self._yz = image_panel("YZ", axes=True)
        for view, axis in ((self.xz_view, "left"), (self.yz_view, "bottom")):
            plot = view.getPlotItem()
            plot.setAspectLocked(False)
            plot.setLabel(axis, "z", units="µm")
        self.xz_view.getPlotItem().hideAxis("bottom")
        self.xz_view.getPlotItem().invertY(False)
        self.yz_view.getPlotItem().hideAxis("left")
        self.xz_view.setXLink(self.frame_view)
        self.yz_view.setYLink(self.frame_view)
        self.frame_view.getPlotItem().getViewBox().sigRangeChanged.connect(self._fit_true_scale)
        for view in (self.xz_view, self.yz_view):
            view.getPlotItem().getViewBox().sigResized.connect(self._fit_true_scale)
        self.curve_view, self._curve, self._marker = curve_panel("axial focus curve")
        self.view3d, _ = image_panel("3D (in focus, coloured by height)", image=False)
        self._view3d = _DragImage(self._turn_by)
        plot3d = self.view3d.getPlotItem()
        plot3d.setAspectLocked(True)
        plot3d.addItem(self._view3d)
        plot3d.getViewBox().setMouseEnabled(False, False)  # a drag turns the view instead
        self._voxels = VoxelCache()

        # contrast (frame, all-in-focus and XZ/YZ share the frame's levels)
        self.histogram = pg.HistogramLUTWidget(image=self._frame)
        self.histogram.setMinimumWidth(110)
        self.histogram.item.sigLevelsChanged.connect(self._apply_levels)

        # controls
        self.measure_label = QtWidgets.QLabel("measure: –")
        self.mask_label = QtWidgets.QLabel("mask: –")
        self.index_label = QtWidgets.QLabel("")
        self.opacity_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(45)
        self.opacity_slider.valueChanged.connect(self._set_opacity)
        self._set_opacity(self.opacity_slider.value())
        self.sections_box = QtWidgets.QCheckBox("XZ/YZ: sections at the cross")
        self.sections_box.setToolTip(
            "Checked: XZ/YZ sections of raw × mask through the dashed cross on the frame.\n"
            "Unchecked: mean over the in-focus pixels along Y (XZ) and X (YZ)."
        )
        self.sections_box.toggled.connect(self._sections_toggled)
        self._sections_toggled(False)
        self.true_scale_box = QtWidgets.QCheckBox("XZ/YZ: true z scale")
        self.true_scale_box.setToolTip(
            "Checked: z and x/y in the same µm per screen pixel (the frame's pixel size).\n"
            "Unchecked: the stack's z range stretched to fill the panel."
        )
        self.true_scale_box.toggled.connect(self._true_scale_toggled)
        self.true_scale_box.toggled.connect(self._turned)
        self.azimuth_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.azimuth_slider.setRange(0, 359)
        self.azimuth_slider.setValue(30)
        self.elevation_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.elevation_slider.setRange(0, 90)
        self.elevation_slider.setValue(30)
        for slider in (self.azimuth_slider, self.elevation_slider):
            slider.setToolTip("The 3D view's angle (or drag the view)")
            slider.valueChanged.connect(self._turned)
        # when the 3D view was drawn, and of which stack
        self._drawn_3d: tuple[float, tuple[Any, ...] | None] = (-1.0, None)
        self._pending_3d = False  # a change not drawn yet (the interval held it back)
        auto = QtWidgets.QPushButton("auto contrast")
        auto.clicked.connect(self.auto_contrast)

        controls = QtWidgets.QWidget()
        self.controls_layout = QtWidgets.QVBoxLayout(controls)
        for widget in (self.measure_label, self.mask_label, self.index_label):
            self.controls_layout.addWidget(widget)
        self.controls_layout.addWidget(QtWidgets.QLabel("overlay opacity"))
        self.controls_layout.addWidget(self.opacity_slider)
        self.controls_layout.addWidget(self.sections_box)
        self.controls_layout.addWidget(self.true_scale_box)
        self.controls_layout.addWidget(QtWidgets.QLabel("3D: turn / tilt"))
        self.controls_layout.addWidget(self.azimuth_slider)
        self.controls_layout.addWidget(self.elevation_slider)
        self.controls_layout.addWidget(auto)
        self.controls_layout.addWidget(self.histogram, 1)
        controls.setFixedWidth(210)

        left = QtWidgets.QGridLayout()
        left.addWidget(self.frame_view, 0, 0)
        left.addWidget(self.yz_view, 0, 1)
        left.addWidget(self.xz_view, 1, 0)
        left.setColumnStretch(0, 4)
        left.setColumnStretch(1, 1)
        left.setRowStretch(0, 4)
        left.setRowStretch(1, 1)
        right = QtWidgets.QGridLayout()
        right.addWidget(self.focus_view, 0, 0)
        right.addWidget(self.depth_view, 0, 1)
        right.addWidget(self.aif_view, 1, 0)
        right.addWidget(self.view3d, 1, 1)
        right.addWidget(self.curve_view, 2, 0, 1, 2)
        right.setRowStretch(0, 3)
        right.setRowStretch(1, 3)
        right.setRowStretch(2, 2)
        central = QtWidgets.QWidget()
        main = QtWidgets.QHBoxLayout(central)
        main.addLayout(left, 5)
        main.addLayout(right, 4)
        main.addWidget(controls)
        self.setCentralWidget(central)

        self.status_label = QtWidgets.QLabel("waiting for frames…")
        self.summary_label = QtWidgets.QLabel("")
        status = QtWidgets.QStatusBar()
        status.addWidget(self.status_label, 1)
        status.addPermanentWidget(self.summary_label)
        self.setStatusBar(status)

        self._timer = QtCore.QTimer(self)
        self._base_ms = max(1, round(1000.0 / max(refresh_hz, 0.1)))
        self._timer.setInterval(self._base_ms)
        self._timer.timeout.connect(self._tick)
        self._cpu_mark = time.thread_time()
        self._errors = 0
        self._timer.start()

    # ---- any thread ------------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        """True once the window was closed (then :meth:`submit` is a no-op)."""
        return self._state.closed

    def submit(self, result: FrameResult) -> None:
        """Keep ``result`` as the one to draw next (thread-safe; never touches Qt).

        Never raises: a result the preview cannot use is logged and skipped, so that the
        acquisition goes on.
        """
        try:
            self._state.submit(result)
        except Exception:
            self._errors += 1
            if self._errors == 1:
                log.exception("preview: cannot use a result (index %s)", result.index)

    def set_summary(self, text: str) -> None:
        """Text shown in the status bar (thread-safe), e.g. the run's summary when it ends."""
        self._state.set_summary(text)

    # ---- GUI thread ------------------------------------------------------------------------
    def show_stack(self, result: FrameResult, volume: StackVolume) -> None:
        """Show a plane of a complete stack and draw it now (the store browser)."""
        self._state.show(result, volume)
        self.refresh()

    def refresh(self) -> None:
        """Draw the latest result now if it changed since the last draw (GUI thread)."""
        if self.is_closed:
            return
        snap = self._state.snapshot()
        if snap.version == self._drawn:
            if self._pending_3d and time.perf_counter() - self._drawn_3d[0] >= VIEW3D_INTERVAL_S:
                self._draw_3d(now=True)  # the last change the interval held back
            return
        self._drawn = snap.version
        self._snapshot = snap
        if snap.result is not None:
            self._draw_result(snap.result)
        self._draw_volume()
        if snap.summary is not None:
            self.summary_label.setText(snap.summary)
            if self._pending_3d:  # the run has ended: its last stack, whole
                self._draw_3d(now=True)

    @property
    def draw_interval_ms(self) -> int:
        """The timer's current period (ms): ``1000 / refresh_hz`` or longer (see
        :func:`draw_interval_ms`)."""
        return int(self._timer.interval())

    def _tick(self) -> None:
        # an exception escaping a Qt slot aborts the process (and the acquisition with it)
        try:
            self.refresh()
        except Exception as exc:
            self._errors += 1
            if self._errors == 1:
                log.exception("preview: drawing failed")
            self.status_label.setText(f"preview error: {exc}")
        # the GUI thread's CPU since the last tick: the last draw's painting and this one
        now = time.thread_time()
        interval = draw_interval_ms(now - self._cpu_mark, self._base_ms)
        self._cpu_mark = now
        if interval != self._timer.interval():
            self._timer.setInterval(interval)

    def auto_contrast(self) -> None:
        """Set the display levels from the current frame's percentiles."""
        snap = self._snapshot
        if snap is not None and snap.result is not None:
            self.histogram.item.setLevels(*robust_levels(snap.result.frame))

    def closeEvent(self, event: QtGui.QCloseEvent | None) -> None:
        """Stop drawing and accepting results; the acquisition goes on without the window."""
        self._state.close()
        self._timer.stop()
        super().closeEvent(event)
        self.closed.emit()

    def _draw_result(self, r: FrameResult) -> None:
        frame = np.asarray(r.frame)
        shape = (int(frame.shape[-2]), int(frame.shape[-1]))
        set_image(self._frame, frame, autoLevels=False)
        mask = np.asarray(r.mask, dtype=bool).view(np.uint8)
        set_image(self._overlay, mask, lut=overlay_table(), levels=(0, 1), autoLevels=False)
        if not self._contrast_set:
            self._contrast_set = True
            self.histogram.item.setLevels(*robust_levels(frame))
        if shape != self._frame_shape:
            self._frame_shape = shape
            for line, size in ((self._hline, shape[0]), (self._vline, shape[1])):
                line.setBounds((0, size - 1))
                line.setValue(size // 2)
            self.frame_view.getPlotItem().autoRange(padding=0)
        small = SIDE_MAX
        set_image(self._focus, r.focus, max_side=small, levels=robust_levels(r.focus, 1, 99.9))
        set_image(self._aif, r.all_in_focus, max_side=small, autoLevels=False)
        self._draw_depth(r)
        self._apply_levels()
        self.measure_label.setText(f"measure: {r.measure}")
        rule = f" ({r.threshold})" if r.threshold else ""
        self.mask_label.setText(f"mask: {r.mask_mode}{rule}")
        self.mask_label.setWordWrap(True)
        self.index_label.setText(format_index(r))
        text = format_index(r)
        self.status_label.setText(
            f"{text}  ·  {format_metrics(r.metrics)}" if self.show_metrics else text
        )

    def _draw_depth(self, r: FrameResult) -> None:
        depth = np.asarray(r.depth, dtype=np.float32)
        vol = self._snapshot.volume if self._snapshot else None
        zs = vol.z_positions() if vol is not None else np.zeros(0)
        step = max(1, depth.shape[-1] // VOLUME_MAX_SIDE)
        sample = depth[::step, ::step]
        finite = sample[np.isfinite(sample)]
        lo = min([*zs.tolist(), float(finite.min())] if finite.size else zs.tolist() or [0.0])
        hi = max([*zs.tolist(), float(finite.max())] if finite.size else zs.tolist() or [1.0])
        if not hi > lo:
            hi = lo + 1.0
        set_image(self._depth, depth, max_side=SIDE_MAX, autoLevels=False)
        self._depth_bar.setLevels((lo, hi))

    def _apply_levels(self, *_: Any) -> None:
        levels = self.histogram.item.getLevels()
        for item in (self._aif, self._xz, self._yz):
            item.setLevels(levels)

    def _sections_toggled(self, on: bool) -> None:
        for line in (self._vline, self._hline):
            line.setVisible(on)
        title = "XZ section" if on else "XZ (in-focus mean over Y)"
        self.xz_view.getPlotItem().setTitle(title)
        self.yz_view.getPlotItem().setTitle("YZ" if on else "YZ (mean)")
        self._draw_volume()

    def _apply_z_unit(self, result: FrameResult | None) -> float:
        """µm per z coordinate of the XZ/YZ panels (the pixel size at true scale, else 1), set
        as the scale of their z-axis ticks."""
        unit = 1.0
        if result is not None and self.true_scale_box.isChecked():
            unit = float(result.pixel_size)
        for view, axis in ((self.xz_view, "left"), (self.yz_view, "bottom")):
            view.getPlotItem().getAxis(axis).setScale(unit)
        return unit

    def _true_scale_toggled(self, on: bool) -> None:
        for view, z_axis in ((self.xz_view, 1), (self.yz_view, 0)):
            view.getPlotItem().getViewBox().enableAutoRange(axis=z_axis, enable=not on)
        self._draw_volume()

    def _fit_true_scale(self, *_: Any) -> None:
        """At true z scale, give the z axis of XZ (YZ) as many µm per screen pixel as the
        frame-linked x (y) axis has, centred on the stack. Only the z range is set, so the
        frame's zoom is left as it is."""
        if not self.true_scale_box.isChecked():
            return
        for view, image, z_axis in ((self.xz_view, self._xz, 1), (self.yz_view, self._yz, 0)):
            vb = view.getPlotItem().getViewBox()
            box = image.mapRectToParent(image.boundingRect())
            width, height = float(vb.width()), float(vb.height())
            if not box.isValid() or width <= 0 or height <= 0:
                continue
            (x0, x1), (y0, y1) = vb.viewRange()
            if z_axis == 1:  # XZ: z is vertical
                half = (x1 - x0) / width * height / 2
                vb.setYRange(box.center().y() - half, box.center().y() + half, padding=0)
            else:  # YZ: z is horizontal
                half = (y1 - y0) / height * width / 2
                vb.setXRange(box.center().x() - half, box.center().x() + half, padding=0)

    def _set_opacity(self, value: int) -> None:
        self._overlay.setOpacity(value / 100.0)

    def _draw_volume(self, *_: Any) -> None:
        snap = self._snapshot
        vol = snap.volume if snap is not None else None
        result = snap.result if snap is not None else None
        if vol is not None and vol.planes:
            project = not self.sections_box.isChecked()
            xz = vol.xz(None if project else self._hline.value())
            yz = vol.yz(None if project else self._vline.value())
            zs = vol.z_positions()
            step = float(np.median(np.diff(zs))) if zs.size > 1 else 1.0
            if step < 0:  # a stack acquired downwards: rows from the lowest plane up
                xz, yz, step = xz[::-1], yz[::-1], -step
            step = step or 1.0
            # z in µm, or in frame pixels (µm / pixel size, axis ticks still in µm) at true scale
            unit = self._apply_z_unit(result)
            z0, span = (float(zs.min()) - step / 2) / unit, step * zs.size / unit
            ny, nx = vol.frame_shape
            levels = self.histogram.item.getLevels()
            self._xz.setImage(xz, levels=levels, rect=QtCore.QRectF(0, z0, nx, span))
            self._yz.setImage(yz.T, levels=levels, rect=QtCore.QRectF(z0, 0, span, ny))
            self._fit_true_scale()
        self._draw_3d()
        if result is not None:
            self._draw_curve(result, vol)

    def _turn_by(self, dx: float, dy: float) -> None:
        """Turn the 3D view by a drag of (dx, dy) screen pixels (half a degree each)."""
        azimuth = (self.azimuth_slider.value() - round(dx / 2)) % 360
        elevation = min(90, max(0, self.elevation_slider.value() + round(dy / 2)))
        # set both without their signals, then draw once (not once per slider)
        for slider, value in ((self.azimuth_slider, azimuth), (self.elevation_slider, elevation)):
            blocked = slider.blockSignals(True)
            slider.setValue(value)
            slider.blockSignals(blocked)
        self._turned()

    def _turned(self, *_: Any) -> None:
        self._draw_3d(now=True)

    def _draw_3d(self, *_: Any, now: bool = False) -> None:
        """The current stack's in-focus voxels from the sliders' angle (:mod:`._render`): at
        once when the angle or the stack changes (or ``now``), else at most every
        :data:`VIEW3D_INTERVAL_S` as the stack grows (a draw costs up to some 40 ms)."""
        snap = self._snapshot
        vol = snap.volume if snap is not None else None
        result = snap.result if snap is not None else None
        if vol is None:
            return
        stack = (vol.t, vol.frame_shape, min(vol.planes, default=-1))
        at, last = self._drawn_3d
        clock = time.perf_counter()
        if not now and last == stack and clock - at < VIEW3D_INTERVAL_S:
            self._pending_3d = True  # drawn by a later tick, once the interval has passed
            return
        self._drawn_3d = (clock, stack)
        self._pending_3d = False
        z_per_um = None
        if result is not None and self.true_scale_box.isChecked() and result.pixel_size > 0:
            z_per_um = 1.0 / float(result.pixel_size)
        levels = self.histogram.item.getLevels()
        view = View(
            azimuth=float(self.azimuth_slider.value()),
            elevation=float(self.elevation_slider.value()),
            z_per_um=z_per_um,
            size=VIEW3D_SIDE,
            levels=(float(levels[0]), float(levels[1])),
        )
        image = render_volume(
            vol.planes, vol.z_um, vol.factor, vol.frame_shape, view, cache=self._voxels
        )
        self._view3d.setImage(image, autoLevels=False, levels=(0, 255))

    def _draw_curve(self, r: FrameResult, vol: StackVolume | None) -> None:
        curve = np.asarray(r.curve, dtype=np.float64).ravel()
        z = int(r.index.get("z", 0))
        known = vol.z_um if vol is not None else {}
        if curve.size and all(i in known for i in range(curve.size)):
            x = np.array([known[i] for i in range(curve.size)])
            self.curve_view.getPlotItem().setLabel("bottom", "z", units="µm")
        else:
            x = np.arange(curve.size, dtype=np.float64)
            self.curve_view.getPlotItem().setLabel("bottom", "plane", units="")
        # planes without a focus map (a store's unwritten planes) read NaN: pyqtgraph would
        # warn on every repaint of an all-NaN curve, so only the finite points are drawn
        finite = np.isfinite(curve)
        self._curve.setData(x[finite], curve[finite])
        if 0 <= z < curve.size and finite[z]:
            self._marker.setData([x[z]], [curve[z]])
        else:
            self._marker.setData([], [])
