"""Faults injected into real runs (real cores, real stores, real ONNX Runtime): no captured
frame is lost, every run ends with a status, memory stays bounded."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import useq
from support.cli import run_cli, start_cli

from livefocus.depth import ReconstructSettings
from livefocus.stream import MDAHandler, Pipeline, StoreWriter, open_store, stream
from livefocus.stream.store import PLANE_RAW

N_PLANES = 9


def z_stack(**kw: Any) -> useq.MDASequence:
    return useq.MDASequence(z_plan=useq.ZRangeAround(range=16, step=2), axis_order="tpcz", **kw)


def _written(path: Path) -> np.ndarray:
    return np.asarray(open_store(path).array("planes")[:]) > 0


def test_handler_in_a_plain_mda_run(tmp_path: Path, demo: Any) -> None:
    """``core.mda.run(sequence, output=[MDAHandler(...)])`` next to pymmcore-plus's own writer."""
    out = tmp_path / "h.ome.zarr"
    handler = MDAHandler(out=out)
    demo.mda.run(z_stack(), output=[handler, str(tmp_path / "pmm.ome.zarr")])
    report = handler.report
    assert report is not None and report.ok, report
    assert report.metrics.frames_out == N_PLANES and _written(out).all()
    store = open_store(out)
    assert store.meta["status"] == "complete"
    np.testing.assert_array_equal(store.array("raw")[0, 0].shape, (N_PLANES, 64, 64))
    assert (tmp_path / "pmm.ome.zarr").exists()  # pymmcore-plus's writer ran beside it


def test_engine_that_raises_once_keeps_every_frame(tmp_path: Path, demo: Any) -> None:
    calls = {"n": 0}

    def arm(run: MDAHandler) -> None:
        real = run.engine.predict

        def flaky(frames: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 5:
                raise RuntimeError("injected engine failure")
            return real(frames)

        run.engine.predict = flaky

    out = tmp_path / "e.ome.zarr"
    report = stream(demo, z_stack(), out=out, model="default", handler=arm)
    assert report.metrics.frames_out == N_PLANES and report.metrics.frames_lost == 0
    assert report.faults == 1 and "injected engine failure" in report.status
    assert _written(out).all()
    store = open_store(out)
    assert store.meta["status"] == report.status
    assert np.asarray(store.array("raw")[0, 0]).std(axis=(1, 2)).min() > 0  # all raw kept


def test_callback_error_is_not_fatal(tmp_path: Path, demo: Any) -> None:
    def broken(result: Any) -> None:
        raise ValueError("the preview fell over")

    out = tmp_path / "c.ome.zarr"
    report = stream(demo, z_stack(), out=out, on_result=broken)
    assert report.ok, report.status
    assert _written(out).all()


def test_stalled_engine_is_cut_off_and_frames_kept_raw(tmp_path: Path, demo: Any) -> None:
    release = threading.Event()

    def arm(run: MDAHandler) -> None:
        real = run.engine.predict
        calls = {"n": 0}

        def stuck(frames: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 3:
                release.wait(30)  # a driver that never answers
            return real(frames)

        run.engine.predict = stuck

    out = tmp_path / "s.ome.zarr"
    start = time.monotonic()
    report = stream(
        demo, z_stack(), out=out, model="default", handler=arm, frame_timeout=1.0, queue_size=2
    )
    elapsed = time.monotonic() - start
    release.set()
    assert elapsed < 15, elapsed
    assert report.status.startswith("error: processing stalled"), report.status
    m = report.metrics
    assert m.frames_out + m.frames_lost == m.frames_in and m.frames_lost == 0
    planes = np.asarray(open_store(out).array("planes")[0, 0])
    assert (planes[:2] > 0).all()  # processed before the stall
    assert (planes[2 : m.frames_in] == PLANE_RAW).all()  # the stuck frame and the rest, raw
    assert open_store(out).meta["status"] == report.status


def _pipeline_threads_left(seconds: float) -> list[str]:
    """Wait up to ``seconds`` for the pipeline threads (``lf-*``) to end; those left."""
    deadline = time.monotonic() + seconds
    while True:
        left = [th.name for th in threading.enumerate() if th.name.startswith("lf-")]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def test_a_stall_while_a_stack_is_finished_writes_that_stack_and_ends_every_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finishing thread holds stack t=0 when a frame of t=1 stalls: t=0 still gets its
    final masks, the writer stops only after it, and no pipeline thread is left running."""
    from livefocus.depth import StackReconstructor
    from livefocus.stream.store import PLANE_FINAL

    real_finish = StackReconstructor.finish

    def slow_finish(self: StackReconstructor) -> Any:
        time.sleep(1.0)  # the finisher is busy when the stall comes
        return real_finish(self)

    monkeypatch.setattr(StackReconstructor, "finish", slow_finish)
    release = threading.Event()

    class Stuck:
        threshold, context, calls = 0.5, 1, 0

        def predict(self, frames: Any) -> np.ndarray:
            self.calls += 1
            if self.calls == 8:  # plane 1 of the second stack
                release.wait(3.0)
            return np.full((1, 64, 64), 0.7, np.float32)

    n_t, n_z = 3, 6
    store = StoreWriter(
        tmp_path / "s.ome.zarr", shape=(1, n_t, 1, n_z, 64, 64), dtype=np.uint16, z_step=2.0,
        mask_modes=("model", "depth", "otsu"),
    )  # fmt: skip
    pipeline = Pipeline(
        ReconstructSettings.for_frame((64, 64)), n_planes=n_z, store=store,
        mask_modes=("model", "depth", "otsu"), engine=Stuck(), frame_timeout=0.3,
    ).start()  # fmt: skip
    frame = np.random.default_rng(0).integers(0, 4000, (64, 64), dtype=np.uint16)
    for t in range(n_t):
        for z in range(n_z):
            pipeline.submit(frame, {"t": t, "z": z}, 2.0 * z)
    m = pipeline.close(timeout=20)
    release.set()
    assert pipeline.stalled
    assert m.frames_in == m.frames_out + m.frames_lost == n_t * n_z
    planes = np.asarray(open_store(tmp_path / "s.ome.zarr").array("planes")[:, 0])  # (t, z)
    assert (planes[0] == PLANE_FINAL).all(), planes  # finished before the stall: written
    assert (planes[1, 1:] == PLANE_RAW).all() and (planes[2] == PLANE_RAW).all(), planes
    assert not _pipeline_threads_left(10)


class _FailingStore(StoreWriter):
    """A real store whose disk 'fills up' at the n-th plane (fault injection)."""

    fail_at = 4

    def write_plane(self, index: Any, **kw: Any) -> None:
        if index[3] >= self.fail_at:
            raise OSError(28, "No space left on device")
        super().write_plane(index, **kw)


def test_a_close_that_times_out_counts_each_frame_once(tmp_path: Path) -> None:
    """close(timeout) expiring while the processor is busy counts the frames not yet written
    as lost; those it still writes afterwards count as written again, never as both."""
    release = threading.Event()

    class Slow:
        threshold, context = 0.5, 1

        def predict(self, frames: Any) -> np.ndarray:
            release.wait(5.0)  # busy until the test lets it go
            return np.full((1, 64, 64), 0.7, np.float32)

    store = StoreWriter(
        tmp_path / "c.ome.zarr", shape=(1, 1, 1, N_PLANES, 64, 64), dtype=np.uint16, z_step=2.0,
        mask_modes=("model", "depth"),
    )  # fmt: skip
    pipeline = Pipeline(
        ReconstructSettings.for_frame((64, 64)), n_planes=N_PLANES, store=store,
        mask_modes=("model", "depth"), engine=Slow(),
    ).start()  # fmt: skip
    frame = np.random.default_rng(2).integers(0, 4000, (64, 64), dtype=np.uint16)
    for z in range(N_PLANES):
        pipeline.submit(frame, {"z": z}, 2.0 * z)
    m = pipeline.close(timeout=0.2)
    assert m.frames_in == N_PLANES and m.frames_out + m.frames_lost == N_PLANES
    assert m.frames_lost > 0  # given up on at close
    release.set()
    _pipeline_threads_left(30)
    later = pipeline.metrics()
    written = int((np.asarray(open_store(tmp_path / "c.ome.zarr").array("planes")[:]) > 0).sum())
    assert later.frames_out == written == N_PLANES, (later, written)
    assert later.frames_lost == 0


def test_close_returns_at_its_timeout_with_a_full_queue() -> None:
    """A hung engine and a full frame queue: close(timeout) still returns in time, and once
    the engine frees up every thread ends and each frame is counted once."""
    release = threading.Event()

    class Hung:
        threshold, context = 0.5, 1

        def predict(self, frames: Any) -> np.ndarray:
            release.wait(20.0)
            return np.full((1, 64, 64), 0.7, np.float32)

    pipeline = Pipeline(
        ReconstructSettings.for_frame((64, 64)), n_planes=N_PLANES, queue_size=2,
        mask_modes=("model", "depth"), engine=Hung(),
    ).start()  # fmt: skip
    frame = np.random.default_rng(3).integers(0, 4000, (64, 64), dtype=np.uint16)
    for z in range(3):  # one in the processor, two filling the queue
        pipeline.submit(frame, {"z": z}, 2.0 * z)
    deadline = time.monotonic() + 10
    while pipeline._frames.qsize() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    m = pipeline.close(timeout=0.5)
    assert time.monotonic() - t0 < 3.0
    assert m.frames_in == 3 and m.frames_out + m.frames_lost == 3 and m.frames_lost > 0
    release.set()
    assert not _pipeline_threads_left(30)
    later = pipeline.metrics()
    assert later.frames_out == 3 and later.frames_lost == 0


def test_store_failure_is_reported_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _FailingStore(
        tmp_path / "f.ome.zarr", shape=(1, 1, 1, N_PLANES, 64, 64), dtype=np.uint16, z_step=2.0,
        pixel_size=0.5, mask_modes=("depth", "otsu"),
    )  # fmt: skip
    pipeline = Pipeline(ReconstructSettings.for_frame((64, 64)), n_planes=N_PLANES, store=store)
    pipeline.start()
    rng = np.random.default_rng(0)
    for z in range(N_PLANES):
        pipeline.submit(rng.integers(0, 4000, (64, 64), dtype=np.uint16), {"z": z}, z * 2.0)
    m = pipeline.close(timeout=30)
    assert isinstance(pipeline.error, OSError)
    assert m.frames_out == 4 and m.frames_out + m.frames_lost == N_PLANES
    # a store that fails with an OSError (a full disk) is one line in the log, no traceback
    failed = [r for r in caplog.records if "writing to the store failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is None


def test_a_frame_that_does_not_fit_the_store_is_lost_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A camera whose ROI changed mid-run: its odd frames are counted lost (one warning), the
    others are written and the run goes on."""
    store = StoreWriter(
        tmp_path / "roi.ome.zarr", shape=(1, 1, 1, N_PLANES, 64, 64), dtype=np.uint16,
        z_step=2.0, mask_modes=("depth",),
    )  # fmt: skip
    pipeline = Pipeline(ReconstructSettings.for_frame((64, 64)), n_planes=N_PLANES, store=store)
    pipeline.start()
    rng = np.random.default_rng(0)
    for z in range(N_PLANES):
        shape = (64, 80) if z in (3, 4) else (64, 64)
        pipeline.submit(rng.integers(0, 4000, shape, dtype=np.uint16), {"z": z}, z * 2.0)
    m = pipeline.close(timeout=30)
    assert pipeline.error is None and not pipeline.failed
    assert m.frames_lost == 2 and m.frames_out == N_PLANES - 2
    warned = [r for r in caplog.records if "do not fit the store" in r.getMessage()]
    assert len(warned) == 1
    assert pipeline.wrong_shape is not None and "(64, 80)" in pipeline.wrong_shape
    np.testing.assert_array_equal(_written(store.path)[0, 0], [z not in (3, 4) for z in range(9)])


def test_frames_of_another_camera_make_the_run_an_error(tmp_path: Path) -> None:
    """A configuration that names no camera: Micro-Manager picks its demo camera (512²) as the
    core's, the store is made at its size, and the 64² frames of the Python camera are all
    lost. The status says why (until 2026-12-03 it was 'complete', and the CLI blamed a
    --policy drop that was not set)."""
    from livefocus.devices import demo_cfg_text

    text = demo_cfg_text(shape=(64, 64)).replace("#py Property,Core,Camera,Camera\n", "")
    config = tmp_path / "nocam.cfg"
    config.write_text(text)
    out = tmp_path / "b.ome.zarr"
    argv = ["acquire", "--config", str(config), "--z-range", "4", "--step", "2", "--no-preview"]
    run = run_cli(*argv, "--out", str(out))
    if run.returncode == 0:
        pytest.skip("this pymmcore-plus picks the Python camera itself")
    line = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1 and "do not fit the store" in line, run.stderr
    assert "--policy drop" not in run.stderr
    status = open_store(out).meta["status"]
    assert status.startswith("error: frames of shape (64, 64)"), status


def test_store_errors_that_are_not_io_stay_what_they_are(tmp_path: Path) -> None:
    """tensorstore raises ValueError for I/O failures and for bad arguments alike: only the
    former become OSError (a full disk), a mask of the wrong shape stays a ValueError."""
    store = StoreWriter(tmp_path / "s.ome.zarr", shape=(1, 1, 1, 2, 32, 32), mask_modes=("depth",))
    frame = np.zeros((32, 32), np.uint16)
    with pytest.raises(ValueError, match="raw must be a"):
        store.write_plane((0, 0, 0, 0), raw=np.zeros((32, 40), np.uint16))
    with pytest.raises(ValueError) as info:
        store.write_plane(
            (0, 0, 0, 0), raw=frame, focus=frame.astype(np.float32),
            masks={"depth": np.zeros((16, 16), bool)},
        )  # fmt: skip
    assert not isinstance(info.value, OSError)
    store.write_plane((0, 0, 0, 1), raw=frame.astype(np.int32) + 7)  # cast as zarr-python does
    assert int(open_store(store.path).array("raw")[0, 0, 1, 0, 0]) == 7


def test_drop_policy_keeps_open_stacks_bounded() -> None:
    """A stack whose last plane was dropped is closed by the next time point's first frame."""
    pipeline = Pipeline(
        # a queue that holds every frame: only the plane left out of each stack is missing
        # (with 64, a slow machine dropped frames that the submissions outran)
        ReconstructSettings.for_frame((64, 64)),
        n_planes=5,
        policy="drop",
        queue_size=128,
    ).start()
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 4000, (64, 64), dtype=np.uint16)
    most = 0
    for t in range(30):
        for z in range(4):  # the last plane (z = 4) of every stack is "dropped"
            pipeline.submit(frame, {"t": t, "z": z}, float(z))
        time.sleep(0.01)
        most = max(most, len(pipeline._stacks))
    m = pipeline.close(timeout=30)
    assert m.frames_out == 120 and most <= 2
    assert not pipeline._stacks


def test_ctrl_c_after_the_camera_finished_writes_everything(tmp_path: Path, demo: Any) -> None:
    """Ctrl-C while queued frames are still being processed: they are all written."""
    seen = threading.Event()

    def slow(result: Any) -> None:
        time.sleep(0.05)
        if result.index["z"] == 0:
            seen.set()

    def press() -> None:
        seen.wait(30)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press)
    presser.start()
    out = tmp_path / "k.ome.zarr"
    report = stream(demo, z_stack(), out=out, on_result=slow, queue_size=64)
    presser.join()
    assert report.metrics.frames_out == N_PLANES and report.metrics.frames_lost == 0
    assert report.status in ("complete", "interrupted")
    assert _written(out).all() and open_store(out).meta["status"] == report.status


def test_ctrl_c_once_the_store_exists_and_before_the_first_frame(tmp_path: Path, demo: Any) -> None:
    """Ctrl-C between the store's creation and the acquisition's start (a real SIGINT, sent
    from the callback that runs there): no frame is acquired, and the store is whole and says
    it was interrupted (until 2026-12-02 it stayed "running", or was left half made)."""
    out = tmp_path / "early.ome.zarr"
    report = stream(
        demo, z_stack(), out=out, handler=lambda run: os.kill(os.getpid(), signal.SIGINT)
    )
    assert report.status == "interrupted" and report.metrics.frames_in == 0
    store = open_store(out)
    assert store.meta["status"] == "interrupted" and not _written(out).any()
    assert store.array("raw").shape[-2:] == (64, 64)


@pytest.mark.parametrize("moment", random.Random(7).sample(range(3, 60), 3))
def test_kill_9_at_a_random_moment_leaves_an_intact_store(tmp_path: Path, moment: int) -> None:
    out = tmp_path / "kill.ome.zarr"
    proc = start_cli(
        "demo", "--no-preview", "--size", "96", "--time-points", "20", "-o", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if int(_written(out).sum()) >= moment:
                break
        except (ValueError, KeyError, FileNotFoundError, OSError):
            pass
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    store = open_store(out)
    written = np.asarray(store.array("planes")[:, 0]) > 0
    assert written.sum() >= moment
    raw = store.array("raw")
    for t, z in zip(*np.nonzero(written), strict=True):  # every written plane is whole
        assert np.asarray(raw[t, 0, z]).std() > 0
    assert store.meta["status"] == "running"  # what a reader sees: not complete


def test_calibrate_during_streaming_switches_the_engine(tmp_path: Path) -> None:
    """``calibrate=``: after the first stack, a calibrated U-Net takes over in the background."""
    from livefocus.devices import demo_core
    from livefocus.model import load

    core = demo_core(shape=(128, 128), seed=3, object_range=8.0)
    out, folder = tmp_path / "cal.ome.zarr", tmp_path / "calibrated"
    sequence = z_stack(time_plan=useq.TIntervalLoops(interval=1.0, loops=4))
    report = stream(core, sequence, out=out, calibrate=folder, calibrate_seconds=3.0)
    assert report.ok, report.status
    assert report.calibration is not None and "error" not in report.calibration
    assert load(folder).config["calibration"]["stack"]["kind"].endswith("p=0 t=0 c=0")
    assert report.engine_switches and report.engine_switches[0]["after_frames"] >= N_PLANES
    meta = open_store(out).meta
    assert meta["engine_switches"] == report.engine_switches
    assert "model" in report.mask_modes
    # the switch and the store name the calibrated model by its absolute folder and checksum
    switched = report.engine_switches[0]["model"]
    assert switched["name"] == str(folder.resolve())
    assert switched["weights_sha256"] == load(folder).config["weights_sha256"]
    assert meta["model"]["name"] == switched["name"] and meta["model"]["base"]["name"] == "depth"
    assert Path(load(folder).config["calibration"]["base_path"]).is_absolute()


def test_calibrate_asked_for_with_no_complete_stack_says_it_did_not_run(tmp_path: Path) -> None:
    """A run stopped within its first stack has nothing to calibrate on: the report (and the
    store, and the command's summary line) say so, instead of saying nothing."""
    from livefocus.devices import demo_core

    core = demo_core(shape=(64, 64), seed=3)
    runs: list[Any] = []
    out, folder = tmp_path / "cut.ome.zarr", tmp_path / "calibrated"

    def stop_early(result: Any) -> None:
        if result.index["z"] == 2:
            runs[0].cancel_acquisition()

    report = stream(
        core, z_stack(), out=out, calibrate=folder, calibrate_seconds=3.0, fps=5.0,
        handler=runs.append, on_result=stop_early,
    )  # fmt: skip
    assert report.status == "interrupted" and report.metrics.frames_out < N_PLANES
    assert report.calibration is not None and "no complete stack" in report.calibration["not_run"]
    assert open_store(out).meta["calibration"] == report.calibration
    assert not report.engine_switches and not folder.exists()
