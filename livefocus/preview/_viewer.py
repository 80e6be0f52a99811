"""Browse a finished livefocus store in the preview window (``livefocus view``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PyQt6 import QtCore, QtWidgets

from livefocus.preview._display import ensure_app
from livefocus.preview._run import save_screenshot, wait_closed
from livefocus.preview._state import StackVolume, downsample_factor
from livefocus.preview._window import PreviewWindow
from livefocus.stream.types import FrameResult, Metrics

__all__ = ["StoreBrowser", "view_store"]


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


class StoreBrowser:
    """A :class:`PreviewWindow` with sliders over a store's planes, time points, positions
    and channels (those with more than one value), and a choice of mask array.

    Arrays a store does not have (the focus maps of a ``simulate`` store, the depth maps of a
    ``label`` store) are shown empty (NaN).

    Parameters
    ----------
    store : StoreReader
        From :func:`livefocus.stream.store.open_store` (anything with its attributes).
    title : str
        Window title (default: the store's file name).
    """

    def __init__(self, store: Any, *, title: str | None = None) -> None:
        self.store = store
        nt, nc, nz, ny, nx = (int(v) for v in store.shape)
        self.factor = downsample_factor((ny, nx))
        self.meta: dict[str, Any] = dict(getattr(store, "meta", {}) or {})
        name = Path(str(getattr(store, "path", "store"))).name
        self.window = PreviewWindow(title=title or f"livefocus view: {name}")
        self.window.show_metrics = False
        self._volumes: dict[tuple[int, int, int, str], StackVolume] = {}
        self._curves: dict[tuple[int, int, int], np.ndarray] = {}

        self.masks = [m for m in store.mask_names if store.has(m)]
        self.mask_box = QtWidgets.QComboBox()
        self.mask_box.addItems(self.masks)
        self.mask_box.currentIndexChanged.connect(self.update)
        self.sliders: dict[str, QtWidgets.QSlider] = {}
        self._labels: dict[str, QtWidgets.QLabel] = {}
        sizes = {"z": nz, "t": nt, "p": int(store.positions), "c": nc}
        box = QtWidgets.QGroupBox("store")
        layout = QtWidgets.QVBoxLayout(box)
        layout.addWidget(QtWidgets.QLabel("mask array"))
        layout.addWidget(self.mask_box)
        for dim, size in sizes.items():
            if dim not in ("z", "t") and size < 2:
                continue
            slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
            slider.setRange(0, max(size - 1, 0))
            slider.setValue(nz // 2 if dim == "z" else 0)
            slider.valueChanged.connect(self.update)
            label = QtWidgets.QLabel()
            layout.addWidget(label)
            layout.addWidget(slider)
            self.sliders[dim], self._labels[dim] = slider, label
        self.window.controls_layout.insertWidget(0, box)
        status = self.meta.get("status", "")
        pixel = store.pixel_size
        scale = "uncalibrated" if pixel is None else f"{float(pixel):g} µm/px"
        self.window.set_summary(
            f"{name}: {nt} t × {nc} c × {nz} z × {ny} × {nx}, {scale}"
            + (f", {status}" if status else "")
        )
        self.update()

    def _read(self, name: str, p: int, key: tuple[Any, ...]) -> np.ndarray:
        """``store.array(name, p)[key]``, or NaN of that shape if the store lacks ``name``."""
        if self.store.has(name):
            return np.asarray(self.store.array(name, p)[key])
        nt, nc, nz, ny, nx = (int(v) for v in self.store.shape)
        dims = (nt, nc, nz, ny, nx) if name == "focus" else (nt, nc, ny, nx)
        shape = np.broadcast_to(np.float32(0), dims)[key].shape  # a view: no memory
        return np.full(shape, np.nan, np.float32)

    def _value(self, dim: str) -> int:
        slider = self.sliders.get(dim)
        return int(slider.value()) if slider is not None else 0

    def position(self) -> dict[str, int]:
        """The plane shown: ``{"t", "p", "c", "z"}``."""
        return {dim: self._value(dim) for dim in ("t", "p", "c", "z")}

    def _volume(self, p: int, t: int, c: int, mask_name: str) -> StackVolume:
        key = (p, t, c, mask_name)
        if key not in self._volumes:
            f = self.factor
            raw = np.asarray(self.store.array("raw", p)[t, c, :, ::f, ::f], dtype=np.float32)
            if mask_name:
                mask = np.asarray(self.store.array(mask_name, p)[t, c, :, ::f, ::f]) > 0
            else:
                mask = np.ones(raw.shape, bool)
            ny, nx = (int(v) for v in self.store.shape[-2:])
            volume = StackVolume(t=t, factor=f, frame_shape=(ny, nx))
            for z in range(raw.shape[0]):
                volume.add(z, float(self.store.z_um[z]), raw[z] * mask[z], mask[z])
            self._volumes = {key: volume}  # one stack at a time
        return self._volumes[key]

    def _curve(self, p: int, t: int, c: int) -> np.ndarray:
        key = (p, t, c)
        if key not in self._curves:
            f = self.factor
            every = slice(None, None, f)
            focus = np.asarray(
                self._read("focus", p, (t, c, slice(None), every, every)), np.float64
            )
            self._curves[key] = np.array([_finite_mean(plane) for plane in focus])
        return self._curves[key]

    def result(self) -> FrameResult:
        """The shown plane as a :class:`FrameResult` (what the panels draw)."""
        pos = self.position()
        p, t, c, z = pos["p"], pos["t"], pos["c"], pos["z"]
        mask_name = self.mask_box.currentText()
        arr = self.store.array
        modes: dict[str, str] = self.meta.get("masks", {})
        frame = np.asarray(arr("raw", p)[t, c, z])
        mask = (
            np.asarray(arr(mask_name, p)[t, c, z]) > 0 if mask_name else np.ones(frame.shape, bool)
        )
        pixel = self.store.pixel_size
        settings = self.meta.get("settings", {})
        measure = self.meta.get("measure") or (
            settings.get("measure") if isinstance(settings, dict) else None
        )
        fused = settings.get("fuse") if isinstance(settings, dict) else None
        if measure and isinstance(fused, list) and fused:  # a fused run: std+tenengrad
            measure = "+".join([str(measure), *map(str, fused)])
        return FrameResult(
            index=pos,
            z_um=float(self.store.z_um[z]),
            frame=frame,
            focus=self._read("focus", p, (t, c, z)),
            mask=mask,
            depth=self._read("depth", p, (t, c)),
            all_in_focus=self._read("all_in_focus", p, (t, c)),
            confidence=self._read("confidence", p, (t, c)),
            curve=self._curve(p, t, c),
            metrics=Metrics(),
            mask_mode=str(modes.get(mask_name, mask_name.removeprefix("mask_") or "none")),
            measure=str(measure or "?"),
            pixel_size=1.0 if pixel is None else float(pixel),
        )

    def _acquired(self, pos: dict[str, int]) -> bool:
        """Whether the store holds the frame at ``pos`` (its ``planes`` status is not 0)."""
        try:
            status = self.store.array("planes", pos["p"])[pos["t"], pos["c"], pos["z"]]
        except Exception:  # a store without the status array: take it as acquired
            return True
        return int(np.asarray(status)) != 0

    def _why_missing(self, pos: dict[str, int]) -> str:
        """Why the store lacks the frame at ``pos``: skipped by plane skipping (the store's
        ``plane_skips`` left it out of its stack's range), else lost or never reached."""
        for entry in self.meta.get("plane_skips") or []:
            try:
                same = (int(entry["p"]), int(entry["t"])) == (pos["p"], pos["t"])
                outside = not int(entry["first"]) <= pos["z"] <= int(entry["last"])
            except (KeyError, TypeError, ValueError):  # a note of another version
                continue
            if same and outside:
                return "skipped (plane skipping)"
        return "not acquired (lost, or not reached)"

    def update(self, *_: Any) -> None:
        """Read the selected plane and draw it."""
        pos = self.position()
        z_um = self.store.z_um
        for dim, label in self._labels.items():
            size = self.sliders[dim].maximum() + 1
            extra = f" ({float(z_um[pos['z']]):.1f} µm)" if dim == "z" else ""
            if dim == "z" and not self._acquired(pos):
                extra += f": {self._why_missing(pos)}"
            label.setText(f"{dim}: {pos[dim]} / {size - 1}{extra}")
        mask_name = self.mask_box.currentText()
        volume = self._volume(pos["p"], pos["t"], pos["c"], mask_name)
        self.window.show_stack(self.result(), volume)


def view_store(
    path: str | Path, *, screenshot: str | Path | None = None, keep_open: bool = True
) -> None:
    """Browse a finished (or interrupted) livefocus store: sliders over Z and T (and position
    and channel when there are several), the same panels as the live preview.

    Saves a PNG of the window to ``screenshot`` if given; with ``keep_open`` waits until the
    window is closed.
    """
    from livefocus.stream.store import open_store

    store = open_store(path)
    ensure_app()
    browser = StoreBrowser(store)
    window = browser.window
    try:
        window.show()
        if screenshot is not None:
            save_screenshot(window, screenshot)
        if keep_open:
            wait_closed(window)
    finally:
        if not window.is_closed:
            window.close()
        window.deleteLater()
