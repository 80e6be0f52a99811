"""The live preview window and the store browser (Qt offscreen, pytest-qt)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from livefocus import focus_map, weak_labels
from livefocus.preview import display_available
from livefocus.preview._state import PreviewState
from livefocus.sim import simulate_stack
from livefocus.stream.types import FrameResult, Metrics

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

SHAPE = (8, 128, 128)


def _results(
    seed: int = 1, *, t: int = 0, shape: tuple[int, int, int] = SHAPE
) -> list[FrameResult]:
    """What a pipeline hands the preview for one simulated stack, plane by plane."""
    stack = simulate_stack(shape, seed=seed)
    maps: list[np.ndarray] = []
    out = []
    for z, frame in enumerate(stack.raw):
        focus = focus_map(frame, "std", window=32, strides=(8, 16)).astype(np.float32)
        maps.append(focus)
        so_far = np.stack(maps)
        best = so_far.argmax(axis=0)
        peak = so_far.max(axis=0)
        confidence = ((peak - so_far.min(axis=0)) / peak).astype(np.float32)
        depth = stack.z_um[best].astype(np.float32)
        depth[confidence < 0.2] = np.nan
        aif = np.take_along_axis(stack.raw[: z + 1], best[None], 0)[0].astype(np.float32)
        metrics = Metrics(
            frames_in=z + 1,
            frames_out=z + 1,
            fps=12.5,
            queue_depth=1,
            queue_size=64,
            latency_p50=0.012,
            latency_p99=0.040,
            blocked=0.25,
            elapsed=(z + 1) / 12.5,
        )
        out.append(
            FrameResult(
                index={"t": t, "p": 0, "c": 0, "z": z},
                z_um=float(stack.z_um[z]),
                frame=frame,
                focus=focus,
                mask=weak_labels(focus),
                depth=depth,
                all_in_focus=aif,
                confidence=confidence,
                curve=so_far.mean(axis=(1, 2)).astype(np.float64),
                metrics=metrics,
                mask_mode="otsu",
                measure="std",
            )
        )
    return out


@pytest.fixture(scope="module")
def results() -> list[FrameResult]:
    return _results()


def _magenta_fraction(image: Any) -> float:
    """Share of pixels of a QImage that are tinted by the magenta overlay."""
    from PyQt6 import QtGui

    img = image.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    bgra = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)
    b, g, r = (bgra[..., i].astype(int) for i in range(3))
    return float(((r - g > 60) & (b - g > 60) & (abs(r - b) < 60)).mean())


def _close_previews() -> None:
    """Close every visible preview window, as a user would."""
    from PyQt6 import QtWidgets

    from livefocus.preview import PreviewWindow

    for widget in QtWidgets.QApplication.topLevelWidgets():
        if isinstance(widget, PreviewWindow) and widget.isVisible():
            widget.close()


# ---- state (no Qt) ------------------------------------------------------------------------------
def test_state_accumulates_resets_and_closes(results: list[FrameResult]) -> None:
    state = PreviewState()
    for r in results[:5]:
        state.submit(r)
    snap = state.snapshot()
    assert snap.result is results[4] and snap.volume is not None
    assert sorted(snap.volume.planes) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(
        snap.volume.planes[2], results[2].frame.astype(np.float32) * results[2].mask
    )
    assert snap.volume.xz(64.0).shape == (5, 128)
    assert snap.volume.yz(None).shape == (5, 128)
    state.submit(results[0])  # z back to 0: a new stack
    assert sorted(state.snapshot().volume.planes) == [0]  # type: ignore[union-attr]
    state.submit(results[1])
    later = _results(t=1, shape=(2, 64, 64))[1]  # next time point, z 1
    state.submit(later)
    assert sorted(state.snapshot().volume.planes) == [1]  # type: ignore[union-attr]
    state.close()
    state.submit(results[3])
    assert state.snapshot().result is later and state.closed


def test_state_subsamples_large_frames(results: list[FrameResult]) -> None:
    state = PreviewState(max_side=50)
    state.submit(results[0])
    vol = state.snapshot().volume
    assert vol is not None and vol.factor == 3 and vol.planes[0].shape == (43, 43)
    assert vol.xz(127.0).shape == (1, 43)


def test_display_available(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    if sys.platform.startswith("linux"):
        assert not display_available()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert display_available()


def test_preview_import_is_lazy() -> None:
    code = (
        "import sys, livefocus.preview as p; p.display_available(); "
        "print('pyqtgraph' in sys.modules or 'PyQt6.QtWidgets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- window -------------------------------------------------------------------------------------
def test_window_draws_every_panel(qtbot: Any, results: list[FrameResult]) -> None:
    from livefocus.preview import PreviewWindow

    window = PreviewWindow(title="test", refresh_hz=50)
    qtbot.addWidget(window)
    window.show()
    for r in results:
        window.submit(r)
    window.refresh()
    assert window._frame.image.shape == (128, 128)
    assert window._overlay.image.sum() == results[-1].mask.sum()
    assert window._focus.image is not None and window._aif.image is not None
    lo, hi = window._depth_bar.levels()
    assert lo <= 0.0 and hi >= 14.0
    assert window._xz.image.shape == (8, 128) and window._yz.image.shape == (128, 8)
    x, y = window._curve.getData()
    np.testing.assert_allclose(x, np.arange(8) * 2.0)
    np.testing.assert_allclose(y, results[-1].curve)
    status = window.status_label.text()
    for text in ("12.5 frames/s", "queue 1/64", "p50 12 ms", "p99 40 ms", "lost 0", "0.25 s"):
        assert text in status
    assert window.measure_label.text() == "measure: std"
    assert window.mask_label.text() == "mask: otsu"
    last = results[-1]
    with np.errstate(invalid="ignore"):  # NaN where a column has no in-focus pixel
        expected = (last.frame * last.mask).sum(axis=0) / last.mask.sum(axis=0)
    np.testing.assert_allclose(window._xz.image[-1], expected, rtol=1e-5)
    window.sections_box.setChecked(True)  # sections through the cross (row 64, column 64)
    np.testing.assert_array_equal(window._xz.image[-1], last.frame[64] * last.mask[64])
    np.testing.assert_array_equal(window._yz.image[:, -1], last.frame[:, 64] * last.mask[:, 64])
    window.set_summary("done: 8 frames")
    window.refresh()
    assert window.summary_label.text() == "done: 8 frames"
    bad = FrameResult(**{**results[0].__dict__, "mask": np.zeros((3, 3), bool)})
    window.submit(bad)  # logged and skipped, never raised into the acquisition
    window.close()
    assert window.is_closed
    window.submit(results[0])  # a no-op now
    assert window._state.snapshot().result is results[-1]


def test_draw_interval_follows_the_guis_cost() -> None:
    from livefocus.preview._window import DRAW_SHARE, MAX_INTERVAL_MS, draw_interval_ms

    assert draw_interval_ms(0.0, 50) == 50
    assert draw_interval_ms(0.04, 50) == round(40 / DRAW_SHARE)  # 40 ms of drawing
    assert draw_interval_ms(0.001, 50) == 50  # cheap draws: the refresh rate
    assert draw_interval_ms(100.0, 50) == MAX_INTERVAL_MS
    assert draw_interval_ms(float("nan"), 50) == 50
    assert draw_interval_ms(-1.0, 50) == 50


def test_a_busy_gui_thread_draws_less_often(qtbot: Any, results: list[FrameResult]) -> None:
    """The timer's period follows the GUI thread's CPU between two ticks (real Qt timer,
    real thread CPU clock): 60 ms of work stretches it to 300 ms, an idle period brings the
    refresh rate back."""
    from livefocus.preview import PreviewWindow
    from livefocus.preview._window import DRAW_SHARE

    window = PreviewWindow(title="test", refresh_hz=50)
    qtbot.addWidget(window)
    window.submit(results[0])
    window._tick()  # draws
    time.sleep(0.05)
    window._tick()  # nothing new to draw, and little CPU used since the last tick
    assert window.draw_interval_ms == 20
    start = time.thread_time()
    while time.thread_time() - start < 0.06:  # the GUI thread busy, as a slow draw
        sum(range(1000))
    window._tick()
    assert window.draw_interval_ms >= round(60 / DRAW_SHARE)
    time.sleep(0.05)  # idle: no CPU used
    window._tick()
    assert window.draw_interval_ms == 20
    window.close()


def test_a_curve_without_finite_points_draws_quietly(
    qtbot: Any, results: list[FrameResult]
) -> None:
    """A store's unwritten planes read NaN focus: the curve keeps its finite points only, and
    repainting warns nothing (pyqtgraph's bounds of an all-NaN curve warned at every paint)."""
    import dataclasses
    import warnings

    from livefocus.preview import PreviewWindow

    window = PreviewWindow(title="test", refresh_hz=50)
    qtbot.addWidget(window)
    window.show()
    curve = np.asarray(results[-1].curve, np.float64).copy()
    for nans, kept in ((np.arange(curve.size), 0), (np.array([1, 2]), curve.size - 2)):
        bad = curve.copy()
        bad[nans] = np.nan
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            window.submit(dataclasses.replace(results[-1], curve=bad))
            window.refresh()
            window.grab()
        assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], caught
        x, y = window._curve.getData()
        assert (0 if x is None else len(x)) == kept and (y is None or np.isfinite(y).all())


def test_true_z_scale(qtbot: Any, results: list[FrameResult]) -> None:
    """XZ/YZ at true scale: as many µm per screen pixel along z as along x (y), ticks in µm,
    and the frame's zoom untouched; unchecked, z is stretched to the panel again."""
    from dataclasses import replace

    from livefocus.preview import PreviewWindow

    window = PreviewWindow(title="test", refresh_hz=50)
    qtbot.addWidget(window)
    window.show()
    for r in results:
        window.submit(replace(r, pixel_size=0.25))
    window.refresh()
    frame_vb = window.frame_view.getPlotItem().getViewBox()
    before = frame_vb.viewRange()
    assert window._xz.mapRectToParent(window._xz.boundingRect()).height() == 16.0  # 8 x 2 µm
    window.true_scale_box.setChecked(True)
    window.refresh()
    assert frame_vb.viewRange() == before
    box = window._xz.mapRectToParent(window._xz.boundingRect())
    assert box.height() == 16.0 / 0.25 and box.width() == 128  # z in frame pixels
    assert window.xz_view.getPlotItem().getAxis("left").scale == 0.25  # ticks in µm
    for view, z_axis in ((window.xz_view, 1), (window.yz_view, 0)):
        vb = view.getPlotItem().getViewBox()
        (x0, x1), (y0, y1) = vb.viewRange()
        per_px = ((x1 - x0) / vb.width(), (y1 - y0) / vb.height())
        assert per_px[z_axis] == pytest.approx(per_px[1 - z_axis], rel=1e-6)
    window.true_scale_box.setChecked(False)
    window.refresh()
    assert window._xz.mapRectToParent(window._xz.boundingRect()).height() == 16.0
    assert window.yz_view.getPlotItem().getAxis("bottom").scale == 1.0
    window.close()


def test_submit_from_worker_thread(qtbot: Any, results: list[FrameResult]) -> None:
    from livefocus.preview import PreviewWindow

    window = PreviewWindow(refresh_hz=50)
    qtbot.addWidget(window)
    window.show()

    def feed() -> None:
        for r in results:
            window.submit(r)
            time.sleep(0.01)

    worker = threading.Thread(target=feed)
    worker.start()
    qtbot.waitUntil(lambda: "z 7" in window.index_label.text(), timeout=5000)
    worker.join()
    assert window._xz.image.shape == (8, 128)


def test_screenshot_shows_overlay(qapp: Any, tmp_path: Path, results: list[FrameResult]) -> None:
    from PyQt6 import QtGui

    from livefocus.preview import run_with_preview

    png = tmp_path / "preview.png"

    def job(submit: Callable[[FrameResult], None]) -> int:
        for r in results:
            submit(r)
        return len(results)

    assert run_with_preview(job, screenshot=png) == 8
    image = QtGui.QImage(str(png))
    assert not image.isNull() and image.width() > 600
    gray = image.convertToFormat(QtGui.QImage.Format.Format_Grayscale8)
    ptr = gray.constBits()
    ptr.setsize(gray.sizeInBytes())
    assert np.frombuffer(ptr, np.uint8).std() > 20  # not blank
    assert _magenta_fraction(image) > 0.01  # the in-focus overlay


def test_overlay_opacity(qtbot: Any, results: list[FrameResult]) -> None:
    from livefocus.preview import PreviewWindow

    window = PreviewWindow()
    qtbot.addWidget(window)
    window.show()
    window.submit(results[4])
    window.refresh()
    assert results[4].mask.mean() > 0.05
    assert _magenta_fraction(window.frame_view.grab().toImage()) > 0.02
    window.opacity_slider.setValue(0)
    assert _magenta_fraction(window.frame_view.grab().toImage()) < 0.001


def test_closing_mid_run_lets_the_job_finish(qapp: Any, results: list[FrameResult]) -> None:
    from PyQt6 import QtCore

    from livefocus.preview import run_with_preview

    seen: list[bool] = []
    started = threading.Event()

    def job(submit: Callable[[FrameResult], None]) -> str:
        window = submit.__self__  # type: ignore[attr-defined]
        for i in range(2000):  # goes on after the window closed, up to 20 s in all
            submit(results[i % len(results)])
            seen.append(window.is_closed)
            started.set()
            if seen[-3:] == [True] * 3:
                break
            time.sleep(0.01)
        return "finished"

    # close the window once the job runs (a fixed delay raced the job's start on a busy machine)
    timer = QtCore.QTimer()
    timer.setInterval(10)

    def close_once_started() -> None:
        if started.is_set():
            timer.stop()
            _close_previews()

    timer.timeout.connect(close_once_started)
    timer.start()
    assert run_with_preview(job, title="closing") == "finished"
    assert not seen[0] and seen[-3:] == [True] * 3


def test_job_error_is_reraised(qapp: Any) -> None:
    from livefocus.preview import run_with_preview

    def job(submit: Callable[[FrameResult], None]) -> None:
        raise RuntimeError("camera gone")

    with pytest.raises(RuntimeError, match="camera gone"):
        run_with_preview(job)


# ---- store browser ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory, results: list[FrameResult]) -> Path:
    from livefocus.stream.store import StoreWriter

    path = tmp_path_factory.mktemp("view") / "run.ome.zarr"
    later = _results(seed=2)
    writer = StoreWriter(
        path,
        shape=(1, 2, 1, *SHAPE),
        z_step=2.0,
        pixel_size=0.5,
        mask_modes=("otsu", "depth"),
        meta={"measure": "std"},
    )
    for t, stack in enumerate((results, later)):
        for r in stack:
            masks = {"otsu": r.mask, "depth": ~r.mask}
            writer.write_plane((0, t, 0, r.index["z"]), raw=r.frame, focus=r.focus, masks=masks)
        last = stack[-1]
        maps = {"depth": last.depth, "all_in_focus": last.all_in_focus}
        writer.write_stack((0, t, 0), maps=maps | {"confidence": last.confidence}, masks={})
    writer.close()
    return path


def test_store_browser(qtbot: Any, store_path: Path, results: list[FrameResult]) -> None:
    from livefocus.preview import StoreBrowser
    from livefocus.stream.store import open_store

    browser = StoreBrowser(open_store(store_path))
    window = browser.window
    qtbot.addWidget(window)
    window.show()
    assert set(browser.sliders) == {"z", "t"}
    assert browser.masks == ["mask_otsu", "mask_depth"]
    browser.sliders["z"].setValue(3)
    np.testing.assert_array_equal(window._frame.image, results[3].frame)
    np.testing.assert_array_equal(window._overlay.image, results[3].mask)
    assert window._xz.image.shape == (8, 128)
    assert (
        window.mask_label.text() == "mask: otsu" and window.measure_label.text() == "measure: std"
    )
    assert "z 3" in window.index_label.text()
    x, y = window._curve.getData()
    assert x.size == 8 and np.isfinite(y).all()
    browser.mask_box.setCurrentText("mask_depth")
    np.testing.assert_array_equal(window._overlay.image, ~results[3].mask)
    assert window.mask_label.text() == "mask: depth"
    browser.sliders["t"].setValue(1)
    assert "t 1" in window.index_label.text()
    assert "run.ome.zarr" in window.summary_label.text()


def test_store_browser_positions_and_channels(qtbot: Any, tmp_path: Path) -> None:
    from livefocus.preview import StoreBrowser
    from livefocus.stream.store import StoreWriter, open_store

    path = tmp_path / "multi.ome.zarr"
    writer = StoreWriter(path, shape=(2, 1, 2, 2, 64, 64), mask_modes=("depth",))
    for p in range(2):
        for c in range(2):
            for z in range(2):
                raw = np.full((64, 64), 100 * p + 10 * c + z, np.uint16)
                focus = np.ones((64, 64), np.float32)
                mask = {"depth": np.eye(64, dtype=bool)}
                writer.write_plane((p, 0, c, z), raw=raw, focus=focus, masks=mask)
    writer.close("interrupted")
    browser = StoreBrowser(open_store(path))
    qtbot.addWidget(browser.window)
    assert set(browser.sliders) == {"z", "t", "p", "c"}
    browser.sliders["p"].setValue(1)
    browser.sliders["c"].setValue(1)
    browser.sliders["z"].setValue(1)
    assert browser.result().frame[0, 0] == 111
    assert browser.window._xz.image.shape == (2, 64)
    assert "interrupted" in browser.window.summary_label.text()
    browser.window.refresh()  # depth and all-in-focus were never written: all NaN


def test_view_store_and_cli(
    qapp: Any, store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PyQt6 import QtCore, QtGui

    from livefocus.cli import main
    from livefocus.preview import view_store

    png = tmp_path / "view.png"
    view_store(store_path, screenshot=png, keep_open=False)
    assert not QtGui.QImage(str(png)).isNull()
    with pytest.raises(FileNotFoundError):
        view_store(tmp_path / "missing.ome.zarr", keep_open=False)
    QtCore.QTimer.singleShot(200, _close_previews)
    started = time.monotonic()
    view_store(store_path)  # keep_open: returns once the user closes the window
    assert 0.15 < time.monotonic() - started < 5
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    png2 = tmp_path / "cli.png"
    with pytest.raises(SystemExit) as done:  # no display, but a screenshot: offscreen
        main(["view", str(store_path), "--screenshot", str(png2)])
    assert done.value.code == 0
    assert QtGui.QImage(str(png2)).width() > 600
    if sys.platform.startswith("linux"):
        monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
        with pytest.raises(SystemExit) as failed:  # no display and nothing to save
            main(["view", str(store_path)])
        assert failed.value.code == 2


@pytest.mark.parametrize("demo", [{"shape": (128, 128)}], indirect=True)
def test_preview_of_a_real_stream(qapp: Any, tmp_path: Path, demo: Any) -> None:
    """The pipeline's own FrameResults, from a simulated microscope, into the window."""
    useq = pytest.importorskip("useq")
    from livefocus.preview import run_with_preview
    from livefocus.stream import stream

    core = demo
    sequence = useq.MDASequence(z_plan={"range": 12, "step": 2})
    seen: list[FrameResult] = []

    def job(submit: Callable[[FrameResult], None]) -> Any:
        def on_result(result: FrameResult) -> None:
            seen.append(result)
            submit(result)

        return stream(core, sequence, out=tmp_path / "run.ome.zarr", on_result=on_result)

    png = tmp_path / "stream.png"
    report = run_with_preview(job, screenshot=png)
    assert report.status == "complete" and len(seen) == 7
    assert seen[-1].index["z"] == 6 and seen[-1].curve.size == 7
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("demo", [{"shape": (128, 128)}], indirect=True)
def test_closing_mid_stream_leaves_a_complete_store(qapp: Any, tmp_path: Path, demo: Any) -> None:
    import threading

    from PyQt6 import QtCore

    from livefocus.preview import run_with_preview
    from livefocus.stream import open_store, stream, z_sequence
    from livefocus.stream.store import PLANE_FINAL

    core = demo
    third_frame = threading.Event()
    closed_at: list[int] = []

    def job(submit: Callable[[FrameResult], None]) -> Any:
        window = submit.__self__  # type: ignore[attr-defined]

        def on_result(result: FrameResult) -> None:
            if window.is_closed and not closed_at:
                closed_at.append(result.index["z"])
            if result.index["z"] == 2:
                third_frame.set()
            submit(result)
            time.sleep(0.03)  # slower than the GUI's poll below, so the close lands mid-run

        return stream(
            core,
            z_sequence({"range": 24, "step": 2}),
            out=tmp_path / "c.ome.zarr",
            on_result=on_result,
        )

    poll = QtCore.QTimer()  # the user closes the window once the third frame is shown
    poll.timeout.connect(lambda: third_frame.is_set() and _close_previews())
    poll.start(5)
    report = run_with_preview(job, title="close mid-run")
    poll.stop()
    assert closed_at and 2 < closed_at[0] < 12  # the window closed while frames came in
    assert report.ok and report.metrics.frames_lost == 0
    store = open_store(tmp_path / "c.ome.zarr")
    assert store.meta["status"] == "complete"
    assert (store.array("planes")[:] == PLANE_FINAL).all()
