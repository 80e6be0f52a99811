"""The processing pipeline: bounded queue -> focus / mask / reconstruction worker -> writer.

Frames come in on the acquisition thread through :meth:`Pipeline.submit`, which only puts them
in a bounded queue. Under the default policy ``"block"`` a full queue makes the acquisition
wait (the time is counted as ``blocked``) and no frame is lost; under ``"drop"`` a frame that
finds the queue full is counted as lost and skipped. A processing thread computes each frame's
focus map (numpy or CuPy), its masks (U-Net engine, Otsu, depth) and updates the stack's
reconstruction; a writer thread, behind a second bounded queue, puts it all in the store and
hands the latest result to an optional callback (the preview), so that disk and display never
stall the focus kernels. A finished Z-stack's end-of-stack work (its last peaks, the depth
checks and smoothing, the stack's Otsu threshold: about as much as 12 planes at 512²) runs on
a third thread while the processing thread goes on with the next stack's planes; one more
finished stack may wait for it (:data:`FINISHING`), beyond which the processing thread waits.

Faults never cost a captured frame that can still be written:

- an error while processing a frame (a U-Net engine that raises, say) is logged and counted in
  :attr:`Pipeline.faults`; the frame is still written, with whatever was computed before the
  error (at least the raw frame), and the next frames are processed as usual;
- an error of the ``on_result`` callback (the preview) is logged, never fatal;
- a frame whose processing takes longer than ``frame_timeout`` seconds (a stalled engine)
  makes the pipeline *stalled*: ``on_stall`` is called (the MDA handler cancels the
  acquisition), and this frame and every queued one are written raw, without masks;
- an error of the store (a full disk, a folder that became read-only) stops the writing: the
  frames not written are counted as lost, and :attr:`Pipeline.error` says why.

The threads exchange typed messages (:class:`_PlaneWrite`, :class:`_StackWrite`,
:class:`_RawWrite`); each Z-stack's plane positions are recorded once, here
(:meth:`Pipeline.z_positions`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from livefocus._vocab import DEVICES, POLICIES, Device, MaskMode, Policy, check_choice
from livefocus.depth import (
    ReconstructSettings,
    StackReconstructor,
    StackResult,
    ZPeakFinaliser,
    ZPeaks,
    plane_focus,
    stack_drift,
    warm_up,
)
from livefocus.focus._validate import check_positive_int, check_positive_number
from livefocus.stream.store import StoreWriter
from livefocus.stream.types import FrameResult, Metrics

__all__ = ["POLICIES", "Pipeline"]

log = logging.getLogger("livefocus.stream")

Key = tuple[int, int, int]  # p, t, c: one Z-stack
Index = tuple[int, int, int, int]  # p, t, c, z: one plane


@dataclass(frozen=True, eq=False)
class _Frame:
    image: np.ndarray
    index: Index
    z_um: float  # stage Z in µm (z * z_step when the event had none)
    ready: float  # perf_counter when the frame reached the pipeline


@dataclass(frozen=True, eq=False)
class _PlaneWrite:
    """A processed frame: raw, focus map and masks (provisional), and masks now final."""

    frame: _Frame
    focus: np.ndarray | None
    masks: dict[str, np.ndarray]
    finals: dict[Index, dict[str, np.ndarray]]
    result: FrameResult | None


@dataclass(frozen=True, eq=False)
class _RawWrite:
    """A frame written without processing (after a stall)."""

    frame: _Frame


@dataclass(frozen=True, eq=False)
class _StackWrite:
    """A finished Z-stack: its maps and final masks."""

    key: Key
    result: StackResult
    masks: dict[str, np.ndarray]
    plane_finals: dict[Index, dict[str, np.ndarray]]
    planes: list[int]
    depth_shift: float = 0.0  # µm added to the depth: above the plan's lowest plane


class _Stop:
    """End of the work (one per queue)."""


_STOP = _Stop()


@dataclass(frozen=True)
class _EndStacks:
    """Finish the open stacks of position ``p`` and time point ``t`` once the frames queued
    before this are processed (:meth:`Pipeline.end_stacks`)."""

    p: int
    t: int


#: Seconds between two rebuilds of a stack's depth / all-in-focus / confidence for the preview.
MAP_INTERVAL_S = 0.25
#: Rebuilds of the preview maps are at least this many times their own cost apart (at 4 the
#: demo with its preview ran at 12 frames/s against 15-17 with no maps, on a loaded machine).
MAP_COST_RATIO = 10.0
_Job = _PlaneWrite | _RawWrite | _StackWrite | _Stop

#: Finished Z-stacks that may wait while another one's end-of-stack work runs (memory: one
#: stack's maps each); beyond, the processing thread waits, and the frame queue's policy applies.
FINISHING = 1


@dataclass
class _Stack:
    recon: StackReconstructor
    planes: list[int] = field(default_factory=list)  # z index of each plane added, in order
    z: list[float] = field(default_factory=list)  # stage Z of each plane added, in order
    maps: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # for the preview
    maps_at: float = 0.0
    # the latest frames of this stack, for an engine that takes previous planes as input
    recent: deque[np.ndarray] = field(default_factory=deque)
    # the final model masks of an engine with a z-peak rule, plane by plane
    peaks: ZPeakFinaliser | None = None
    # stage Z of the plan's first plane for this stack (the planes' z are relative to it)
    z0: float | None = None
    # still open when the run ended: its last planned plane never came
    cut_short: bool = False


def _context(engine: Any) -> int:
    """Planes per input of a U-Net engine (1: the frame alone)."""
    return int(getattr(engine, "context", 1))


def _z_peaks(engine: Any) -> ZPeaks | None:
    """The z-peak rule of a U-Net engine (None: its threshold alone); a bad rule in its
    model's config raises ValueError."""
    rule = getattr(engine, "z_peaks", None)
    if rule is None:
        rule = getattr(getattr(engine, "model", None), "z_peaks", None)
    return rule if isinstance(rule, ZPeaks) else None


def _model_finals(
    finals: dict[Index, dict[str, np.ndarray]], key: Key, ready: dict[int, np.ndarray]
) -> None:
    """Add the final model masks of stack ``key``'s planes ``ready`` (z: mask) to ``finals``."""
    for z, mask in ready.items():
        finals.setdefault((*key, z), {})["model"] = mask


def _window(stack: _Stack, image: np.ndarray, context: int) -> np.ndarray:
    """The engine's input for the newest plane: (1, H, W), or (1, context, H, W) of the
    planes before it in this stack and itself, oldest first; the stack's first plane stands
    in for planes before its start (as :func:`livefocus.model.data.context_windows`)."""
    if context == 1:
        return image[None]
    planes = [*list(stack.recent)[max(0, len(stack.recent) - (context - 1)) :], image]
    planes = [planes[0]] * (context - len(planes)) + planes
    return np.stack(planes)[None]


class _Tracker:
    """Counters and latencies, shared by the threads under one lock (bounded history)."""

    def __init__(self, queue_size: int) -> None:
        self.lock = threading.Lock()
        self.queue_size = queue_size
        self.frames_in = self.frames_out = self.frames_lost = 0
        # frames counted as lost by a close() that timed out while they were still in the
        # pipeline: if one is then written (or lost) after all, it is not counted twice
        self.presumed = 0
        self.blocked = 0.0
        self.start: float | None = None
        self.last: float | None = None
        self.latencies: deque[float] = deque(maxlen=20000)

    def snapshot(self, depth: int) -> Metrics:
        with self.lock:
            lat = np.asarray(self.latencies) if self.latencies else np.zeros(1)
            elapsed = (self.last - self.start) if self.start and self.last else 0.0
            fps = (self.frames_out - 1) / elapsed if elapsed > 0 and self.frames_out > 1 else 0.0
            return Metrics(
                frames_in=self.frames_in,
                frames_out=self.frames_out,
                frames_lost=self.frames_lost,
                fps=float(fps),
                queue_depth=depth,
                queue_size=self.queue_size,
                latency_p50=float(np.percentile(lat, 50)),
                latency_p99=float(np.percentile(lat, 99)),
                blocked=self.blocked,
                elapsed=float(elapsed),
            )


class Pipeline:
    """Focus maps, masks and reconstruction of frames as they arrive, written to a store.

    Parameters
    ----------
    settings : ReconstructSettings
        Focus measure, window, strides, depth of field and mask rules.
    n_planes : int
        Planes per Z-stack: a stack is finished (final masks, depth, all-in-focus) when its
        last plane arrives, or when a frame of a later time point or another position does.
    z_step : float
        Plane spacing in µm, used when a frame has no Z position.
    pixel_size : float or None
        µm per pixel, handed on in each :class:`FrameResult` (for the preview's true scale);
        None: not known (1 is handed on, and the drift is given in pixels only).
    store : StoreWriter, optional
        Where to write (nothing is written without one).
    mask_modes : tuple of str
        Modes computed, primary first: ``"depth"``, ``"otsu"``, ``"model"`` (needs ``engine``).
    engine : livefocus.model.Engine, optional
        U-Net engine for the ``model`` masks.
    device : {"cpu", "gpu"}
        Where the focus kernels run (``"gpu"`` needs CuPy).
    queue_size : int
        Bound of the frame queue (and of the writer's queue).
    policy : {"block", "drop"}
        What a full queue does to the acquisition.
    on_result : callable, optional
        Called on the writer thread with each :class:`FrameResult` (keep it cheap; its errors
        are logged, not raised).
    frame_timeout : float, optional
        Seconds one frame may take to process before the pipeline counts as stalled (None:
        no deadline).
    on_stall : callable, optional
        Called once, from the watchdog thread, when the pipeline stalls.
    on_stack : callable, optional
        Called on the writer thread with ``(key, StackResult)`` once a Z-stack is written
        (the handler starts a calibration from it); its errors are logged, not raised.
    plan_um : sequence of float
        Each plane's Z relative to the plan's first plane (µm), by plane index
        (:attr:`~livefocus.stream.sequence.SequenceLayout.plan_um`); each stack's depth is
        relative to the stage Z of its plan's first plane, also when that plane was skipped.
        Empty: ``z * z_step``.
    """

    def __init__(
        self,
        settings: ReconstructSettings,
        *,
        n_planes: int,
        z_step: float = 1.0,
        pixel_size: float | None = 1.0,
        store: StoreWriter | None = None,
        mask_modes: tuple[MaskMode, ...] = ("depth", "otsu"),
        engine: Any = None,
        device: Device = "cpu",
        queue_size: int = 8,
        policy: Policy = "block",
        on_result: Callable[[FrameResult], None] | None = None,
        frame_timeout: float | None = None,
        on_stall: Callable[[], None] | None = None,
        on_stack: Callable[[Key, StackResult], None] | None = None,
        plan_um: Sequence[float] = (),
    ) -> None:
        queue_size = check_positive_int(queue_size, "queue_size")
        self.policy: Policy = check_choice(policy, "policy", POLICIES)
        self.device: Device = check_choice(device, "device", DEVICES)
        if "model" in mask_modes and engine is None:
            raise ValueError("mask mode 'model' needs a U-Net engine (model=NAME)")
        _z_peaks(engine)  # a bad z-peak rule is refused here, not frame by frame
        self.n_planes = check_positive_int(n_planes, "n_planes")
        if frame_timeout is not None:
            frame_timeout = check_positive_number(frame_timeout, "frame_timeout", "s")
        if self.device == "gpu":
            from livefocus._xp import require

            try:
                self._cupy: Any = require("cupy")
            except ImportError as exc:  # the message names the parameter and the install
                raise ImportError(f"device 'gpu': {exc}") from exc
        self.settings = settings
        self.z_step = check_positive_number(z_step, "z_step", "µm")
        #: Each plane's Z relative to the plan's first plane (µm; empty: ``z * z_step``): a
        #: stack's depth is relative to that plane's stage Z, also when it was not acquired.
        self.plan_um = tuple(float(v) for v in plan_um)
        #: Whether the pixel size is known (else the drift has no lateral µm).
        self.pixel_size_known = pixel_size is not None
        self.pixel_size = (
            1.0 if pixel_size is None else check_positive_number(pixel_size, "pixel_size", "µm")
        )
        self.store = store
        #: Why frames were counted lost for not fitting the store (None: none was).
        self.wrong_shape: str | None = None
        #: How many frames were lost for not fitting the store.
        self.wrong_shape_lost = 0
        self.mask_modes = mask_modes
        self.engine = engine
        self.on_result = on_result
        self.frame_timeout = frame_timeout
        self.on_stall = on_stall
        self.on_stack = on_stack
        #: When the U-Net engine was replaced (:meth:`set_engine`): frame count, time, note.
        self.engine_switches: list[dict[str, Any]] = []
        #: The specimen's move from each stack to the next of its position and channel
        #: (:func:`~livefocus.depth.stack_drift`), one dict per stack after the first.
        self.drift: list[dict[str, Any]] = []
        #: Each finished stack's ``p``, ``t``, ``c``, ``planes`` (the plan's indices of the
        #: planes acquired) and ``in_focus`` (those where its final depth masks hold a pixel).
        self.stacks: list[dict[str, Any]] = []
        # p -> (t, the plan's index of the last plane its stack t acquires), when planes are
        # skipped (:meth:`end_stack_at`); one entry a position
        self._last_planes: dict[int, tuple[int, int]] = {}
        # (p, c) -> (t, all-in-focus, depth, lowest stage Z) of its latest finished stack
        self._last_stack: dict[tuple[int, int], tuple[int, np.ndarray, np.ndarray, float]] = {}
        #: The error that stopped the writing (None while writing works).
        self.error: BaseException | None = None
        #: Frames whose processing raised (written anyway), with the first error's text.
        self.faults = 0
        self.first_fault = ""
        #: Whether a frame took longer than ``frame_timeout`` (the rest was written raw).
        self.stalled = False
        self._frames: queue.Queue[_Frame | _Stop | _EndStacks] = queue.Queue(maxsize=queue_size)
        self._writes: queue.Queue[_Job] = queue.Queue(maxsize=queue_size)
        self._track = _Tracker(queue_size)
        self._stacks: dict[Key, _Stack] = {}
        self._finishing: queue.Queue[tuple[Key, _Stack] | _Stop] = queue.Queue(maxsize=FINISHING)
        self._map_cost = 0.0  # seconds the last rebuild of the preview maps took
        self._z: dict[Key, list[float]] = {}
        self._z_lock = threading.Lock()
        self._busy: tuple[_Frame, float] | None = None  # frame in processing, since when
        self._busy_lock = threading.Lock()
        self._write_failed = threading.Event()
        self._stall = threading.Event()
        self._done = threading.Event()
        self._threads = [
            threading.Thread(target=self._process, name="lf-process", daemon=True),
            threading.Thread(target=self._finisher, name="lf-finish", daemon=True),
            threading.Thread(target=self._write, name="lf-write", daemon=True),
        ]
        if frame_timeout is not None:
            self._threads.append(
                threading.Thread(target=self._watch, name="lf-watchdog", daemon=True)
            )
        self._started = self._closed = False

    # -- acquisition side -----------------------------------------------------------------
    def start(self) -> Pipeline:
        """Compile the reconstruction's kernels (:func:`~livefocus.depth.warm_up`), then start
        the processing and writer threads (and the watchdog)."""
        if not self._started:
            warm_up()
            self._started = True
            for thread in self._threads:
                thread.start()
        return self

    @property
    def failed(self) -> bool:
        """True once the store failed (nothing more can be written; see :attr:`error`)."""
        return self._write_failed.is_set()

    def submit(self, image: np.ndarray, index: Mapping[str, int], z_um: float | None) -> None:
        """Hand over one frame (call from the acquisition thread; cheap, may block).

        Parameters
        ----------
        image : ndarray
            (Y, X) frame.
        index : mapping
            MDA index; ``p``, ``t``, ``c`` default to 0, ``z`` is required.
        z_um : float or None
            Stage Z of the frame in µm (None: ``z * z_step``).
        """
        if self._closed:
            raise RuntimeError("pipeline is closed")
        if "z" not in index:
            raise ValueError(f"frame index must have a 'z' axis, got {dict(index)}")
        now = time.perf_counter()
        p, t, c, z = (int(index.get(a, 0)) for a in "ptcz")
        z_abs = float(z_um) if z_um is not None else z * self.z_step
        item = _Frame(image, (p, t, c, z), z_abs, now)
        with self._track.lock:
            self._track.frames_in += 1
            if self._track.start is None:
                self._track.start = now
        if self._write_failed.is_set():
            self._lose(1)  # the store is gone; the acquisition is being cancelled
            return
        shape = getattr(image, "shape", None)
        fits = getattr(self.store, "shape", None)
        if fits is not None and shape != tuple(fits[4:]):
            # a frame the store cannot hold (the camera's ROI or binning changed): lost alone
            if self.wrong_shape is None:
                self.wrong_shape = (
                    f"frames of shape {shape} do not fit the store's {tuple(fits[4:])} (the "
                    "camera's size, ROI or binning changed, or another camera delivered them)"
                )
                log.warning("%s: counted lost", self.wrong_shape)
            self.wrong_shape_lost += 1
            self._lose(1)
            return
        try:
            self._frames.put_nowait(item)
            return
        except queue.Full:
            if self.policy == "drop":
                self._lose(1)
                return
        while True:
            try:
                self._frames.put(item, timeout=0.1)
                break
            except queue.Full:
                if self._write_failed.is_set():
                    self._lose(1)
                    break
        with self._track.lock:
            self._track.blocked += time.perf_counter() - now

    def set_engine(self, engine: Any, note: str = "", model: dict[str, Any] | None = None) -> None:
        """Use ``engine`` for the ``model`` masks from the next frame on (any thread).

        The switch is recorded in :attr:`engine_switches` with the number of frames taken so
        far (frames after it were segmented by the new engine), ``note`` and, when given, what
        ``model`` says of the new engine's U-Net (its folder, weights checksum, backend).
        """
        if "model" not in self.mask_modes:
            raise ValueError("set_engine: this pipeline computes no 'model' masks")
        _z_peaks(engine)  # a bad z-peak rule is refused here, not frame by frame
        with self._track.lock:
            taken = self._track.frames_in
        self.engine = engine  # one reference swap: the processing thread reads it per frame
        switch = {"after_frames": taken, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "note": note}
        if model is not None:
            switch["model"] = dict(model)
        self.engine_switches.append(switch)

    def metrics(self) -> Metrics:
        """Current figures."""
        return self._track.snapshot(self._frames.qsize())

    def drift_since(self, start: int = 0) -> list[dict[str, Any]]:
        """The entries of :attr:`drift` from index ``start`` on (any thread)."""
        with self._z_lock:
            return list(self.drift[start:])

    def end_stacks(self, p: int, t: int) -> None:
        """Finish the stacks of position ``p`` and time point ``t`` once the frames queued so
        far are processed, also when their last planned plane never comes (dropped, or not
        acquired): a planner waiting for what the pipeline measures of them calls this
        (acquisition thread; waits while the frame queue is full)."""
        if self._closed or not self._started:
            return
        self._put_frame(_EndStacks(int(p), int(t)), time.monotonic() + 1.0)

    def _depth_shift(self, stack: _Stack) -> float:
        """µm from the plan's lowest plane to the lowest plane the stack acquired: the
        reconstruction's depth is above the latter, the store's and the preview's above the
        former (0 for a whole stack; a trimmed one's depth stays comparable)."""
        if stack.z0 is None or not stack.z or not self.plan_um:
            return 0.0  # no plan known: the depth stays above the lowest plane acquired
        plan_low = stack.z0 + min(self.plan_um)
        return float(min(stack.z) - plan_low)

    def _plan_offset(self, z: int) -> float:
        """Plane ``z``'s Z relative to the plan's first plane (µm)."""
        if 0 <= z < len(self.plan_um):
            return float(self.plan_um[z])
        return z * self.z_step

    def end_stack_at(self, p: int, t: int, last: int) -> None:
        """Stack ``t`` of position ``p`` ends at plane ``last`` of the plan (planes skipped):
        it is finished once that plane is in (call before its frames come)."""
        with self._z_lock:
            self._last_planes[int(p)] = (int(t), int(last))

    def _last_plane(self, p: int, t: int) -> int:
        """The plan's index of the last plane that stack ``t`` of position ``p`` acquires."""
        with self._z_lock:
            noted = self._last_planes.get(p)
        return noted[1] if noted is not None and noted[0] == t else self.n_planes - 1

    def stacks_since(self, start: int = 0) -> list[dict[str, Any]]:
        """The entries of :attr:`stacks` from index ``start`` on (any thread)."""
        with self._z_lock:
            return list(self.stacks[start:])

    def z_positions(self) -> dict[Key, list[float]]:
        """Stage Z (µm) of each processed plane by (p, t, c) stack, in arrival order."""
        with self._z_lock:
            return {k: list(v) for k, v in self._z.items()}

    def close(self, timeout: float | None = None) -> Metrics:
        """Write what is queued, finish open stacks, stop the threads; return the metrics.

        Never raises for a fault of processing or writing: :attr:`error`, :attr:`faults` and
        :attr:`stalled` say what happened, and frames that could not be written are counted
        as lost. If ``timeout`` expires while the threads still run, the frames not yet
        written count as lost in the figures returned; any the threads still write after that
        count as written again in later :meth:`metrics`, so ``frames_out + frames_lost`` stays
        ``frames_in`` and each frame is counted once.
        """
        if not self._closed:
            self._closed = True
            if self._started:
                deadline = None if timeout is None else time.monotonic() + timeout
                if not self._put_frame(_STOP, deadline):
                    # the queue stayed full (a hung engine): keep trying on a helper thread,
                    # so that the threads still end once it frees up
                    threading.Thread(
                        target=self._put_frame, args=(_STOP,), name="lf-close", daemon=True
                    ).start()
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._done.wait(left)
                if not self._done.is_set():
                    log.error("pipeline did not finish within %s s", timeout)
        with self._track.lock:
            t = self._track
            unaccounted = t.frames_in - t.frames_out - t.frames_lost
            if unaccounted > 0 and not self._done.is_set():
                # the threads still run: what they write or lose later settles these
                t.frames_lost += unaccounted
                t.presumed += unaccounted
                unaccounted = 0
        if self._write_failed.is_set() or self.stalled:
            self._lose(unaccounted)
        return self.metrics()

    # -- shared helpers -------------------------------------------------------------------
    def _lose(self, n: int) -> None:
        if n > 0:
            with self._track.lock:
                settled = min(n, self._track.presumed)  # counted already by close()
                self._track.presumed -= settled
                self._track.frames_lost += n - settled

    def _put_frame(self, item: _Frame | _Stop | _EndStacks, deadline: float | None = None) -> bool:
        """Queue ``item`` (waiting while the queue is full); False if ``deadline``
        (``time.monotonic()``) passed first."""
        while True:
            try:
                self._frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self._stall.is_set() or self._write_failed.is_set():
                    self._drain_frames()
                if deadline is not None and time.monotonic() >= deadline:
                    return False

    def _put_write(self, job: _Job) -> None:
        while not self._write_failed.is_set():
            try:
                self._writes.put(job, timeout=0.1)
                return
            except queue.Full:
                continue

    def _drain_frames(self) -> None:
        """After a stall, send every queued frame to the writer raw (the processor is stuck)."""
        while True:
            try:
                item = self._frames.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Stop):
                # through the finisher: a stack it holds is written before the writer stops
                self._finishing.put(_STOP)
                return
            if isinstance(item, _EndStacks):
                continue  # nothing is processed any more
            self._put_write(_RawWrite(item))

    # -- watchdog -------------------------------------------------------------------------
    def _watch(self) -> None:
        assert self.frame_timeout is not None
        while not self._done.wait(min(0.1, self.frame_timeout / 4)):
            with self._busy_lock:
                busy = self._busy
                if busy is None or time.perf_counter() - busy[1] <= self.frame_timeout:
                    continue
                self.stalled = True
                self._stall.set()  # under the lock: the processor will not write this frame
            log.error(
                "processing of frame %s took more than %g s: writing the rest raw",
                busy[0].index,
                self.frame_timeout,
            )
            self._put_write(_RawWrite(busy[0]))
            if self.on_stall is not None:
                try:
                    self.on_stall()
                except Exception as exc:
                    log.error("on_stall callback failed: %s", exc, exc_info=exc)
            while not self._done.wait(0.05):
                self._drain_frames()
            return

    # -- worker side ----------------------------------------------------------------------
    def _focus(self, image: np.ndarray) -> np.ndarray:
        frame = self._cupy.asarray(image) if self.device == "gpu" else image
        return plane_focus(frame, self.settings)

    def _process(self) -> None:
        while True:
            item = self._frames.get()
            if self._stall.is_set():
                return  # the watchdog writes the rest raw (this thread was stuck)
            if isinstance(item, _Stop):
                if not self._write_failed.is_set():
                    for key in list(self._stacks):
                        self._stacks[key].cut_short = True
                        self._finish(key)
                self._finishing.put(_STOP)  # the finisher ends the writer once done
                return
            if isinstance(item, _EndStacks):
                if not self._write_failed.is_set():
                    for key in [k for k in self._stacks if k[:2] == (item.p, item.t)]:
                        self._finish(key)
                continue
            if self._write_failed.is_set():
                continue  # nothing can be written: close() counts these frames as lost
            with self._busy_lock:
                self._busy = (item, time.perf_counter())
            job = self._process_frame(item)
            with self._busy_lock:
                self._busy = None
                if self._stall.is_set():
                    return  # the watchdog wrote this frame raw already
            self._put_write(job)
            p, t, c, z = item.index
            stack = self._stacks.get((p, t, c))
            if stack is not None and (
                len(stack.planes) >= self.n_planes or z == self._last_plane(p, t)
            ):
                self._finish((p, t, c))

    def _fault(self, item: _Frame, exc: BaseException) -> None:
        self._fault_text(f"processing frame {item.index}", exc)

    def _fault_text(self, what: str, exc: BaseException) -> None:
        """Count a fault (from the processing or the finishing thread) and log it."""
        with self._track.lock:
            self.faults += 1
            self.first_fault = self.first_fault or f"{type(exc).__name__}: {exc}"
        log.error("%s failed: %s", what, exc, exc_info=exc)

    def _open_stack(self, item: _Frame, shape: tuple[int, ...], engine: Any) -> _Stack:
        p, t, c, _ = item.index
        key = (p, t, c)
        # stacks are contiguous in t and p (sequence_layout checks the axis order): a frame of a
        # later time point or another position closes the open stacks, so that a stack whose
        # last plane was dropped does not stay open (memory stays bounded under "drop")
        for other in [k for k in self._stacks if k != key and (k[0], k[1]) != (p, t)]:
            self._finish(other)
        stack = self._stacks.get(key)
        if stack is None:
            recon = StackReconstructor(
                (int(shape[0]), int(shape[1])),
                z_step=self.z_step,
                settings=self.settings,
                n_planes=self.n_planes,
            )
            # only the planes the engine takes are kept: memory stays bounded
            keep = max(_context(engine) - 1, 0) if engine is not None else 0
            stack = self._stacks[key] = _Stack(recon, recent=deque(maxlen=keep))
        return stack

    def _model_mask(
        self,
        stack: _Stack,
        item: _Frame,
        engine: Any,
        probability: np.ndarray | None,
        finals: dict[Index, dict[str, np.ndarray]],
    ) -> np.ndarray | None:
        """The plane's provisional model mask (its final one for an engine without a z-peak
        rule), and into ``finals`` the final masks its arrival completes. ``probability``
        None: the prediction failed (the plane then counts as one without a probability, so
        that its neighbours keep their own). An engine switched with another rule mid-stack
        ends the old rule's planes there, as if the stack ended, and starts the new one."""
        p, t, c, z = item.index
        rule = _z_peaks(engine)
        if rule != (None if stack.peaks is None else stack.peaks.rule):
            if stack.peaks is not None:
                _model_finals(finals, (p, t, c), stack.peaks.finish())
            stack.peaks = None if rule is None else ZPeakFinaliser(rule)
        if stack.peaks is None:
            return None if probability is None else probability >= engine.threshold
        # provisional now; final once the planes its peak test needs are in
        _model_finals(finals, (p, t, c), stack.peaks.add(probability, z))
        return None if probability is None else stack.peaks.provisional()

    def _process_frame(self, item: _Frame) -> _PlaneWrite:
        p, t, c, z = item.index
        image = np.asarray(item.image)
        focus: np.ndarray | None = None
        masks: dict[str, np.ndarray] = {}
        finals: dict[Index, dict[str, np.ndarray]] = {}
        result = None
        engine = self.engine  # read once: set_engine may swap it meanwhile
        stack: _Stack | None = None
        predicted = False
        given: np.ndarray | None = None
        try:
            stack = self._open_stack(item, image.shape, engine)
            if stack.z0 is None:  # the plan's first plane, also when it was not acquired
                stack.z0 = item.z_um - self._plan_offset(z)
            z0 = stack.z0
            # on the CPU the reconstructor computes the focus map itself, on a second core
            given = self._focus(image) if self.device == "gpu" else None
            # the provisional depth mask of the newest plane judges undecided peaks too only
            # when a preview shows it: headless, the plane's mask is written when final
            update = stack.recon.add(
                image, item.z_um - z0, focus=given, tentative=self.on_result is not None
            )
            focus = update.focus
            stack.planes.append(z)
            stack.z.append(item.z_um)
            with self._z_lock:
                self._z.setdefault((p, t, c), []).append(item.z_um)
            masks = {"depth": update.mask_depth, "otsu": update.mask_otsu}
            finals = {(p, t, c, stack.planes[k]): {"depth": m} for k, m in update.final.items()}
            if engine is not None:
                # causal: the planes before this one in its stack, never those after it
                window = _window(stack, image, _context(engine))
                stack.recent.append(image.copy())  # the caller may reuse its buffer
                probability = engine.predict(window)[0]
                predicted = True
                model = self._model_mask(stack, item, engine, probability, finals)
                if model is not None:
                    masks["model"] = model
            if self.on_result is not None:
                primary = masks[self.mask_modes[0]]
                if self.mask_modes[0] == "depth" and update.index in update.final:
                    primary = update.final[update.index]
                depth, all_in_focus, confidence = self._maps(stack, p, t, z)
                result = FrameResult(
                    index={"p": p, "t": t, "c": c, "z": z},
                    z_um=float(item.z_um - z0),
                    frame=image,
                    focus=update.focus,
                    mask=primary,
                    depth=depth,
                    all_in_focus=all_in_focus,
                    confidence=confidence,
                    curve=stack.recon.curve,
                    metrics=Metrics(),  # filled in by the writer, once the frame is written
                    mask_mode=self.mask_modes[0],
                    measure="+".join((self.settings.measure, *self.settings.fuse)),
                    threshold=self._rule(update.otsu_threshold, stack.recon.depth_of_field),
                    pixel_size=self.pixel_size,
                )
        except Exception as exc:  # the frame is written with what was computed
            self._fault(item, exc)
            if focus is None and given is not None:
                focus = given  # the reconstruction failed after the map (GPU)
            elif focus is None:
                try:  # on the CPU the map is the reconstruction's: the plane still gets it
                    focus = self._focus(image)
                except Exception:
                    pass  # the frame is written raw (the fault is recorded)
            if stack is not None and engine is not None and not predicted:
                try:  # the plane has no probability: its neighbours keep their own masks
                    self._model_mask(stack, item, engine, None, finals)
                except Exception as again:
                    self._fault(item, again)
        return _PlaneWrite(item, focus, masks, finals, result)

    def _maps(
        self, stack: _Stack, p: int, t: int, z: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stack's current depth, all-in-focus and confidence maps, for the preview.

        Building them costs more than a plane (the depth map is checked and smoothed), so they
        are rebuilt at most every :data:`MAP_INTERVAL_S` seconds (or :data:`MAP_COST_RATIO`
        times the last rebuild's cost, if longer), and at each stack's last plane; between two
        rebuilds the preview shows the latest.
        """
        now = time.perf_counter()
        last = stack.maps
        # the interval grows with what a rebuild costs, so rebuilds take at most a tenth of
        # the processing thread's time, besides each stack's last plane (at 512² they cost
        # 0.1-0.2 s: depth checks, smoothing)
        interval = max(MAP_INTERVAL_S, MAP_COST_RATIO * self._map_cost)
        if last is None or now - stack.maps_at >= interval or z == self._last_plane(p, t):
            recon = stack.recon
            shift = np.float32(self._depth_shift(stack))
            last = stack.maps = (recon.depth + shift, recon.all_in_focus, recon.confidence)
            stack.maps_at = now
            self._map_cost = time.perf_counter() - now
        return last

    def _rule(self, otsu: float, depth_of_field: float) -> str:
        """The primary mask's rule in words (for the preview)."""
        mode = self.mask_modes[0]
        if mode == "otsu":
            return f"focus > Otsu {otsu:.4g} (per slice)"
        if mode == "model":
            rule = _z_peaks(self.engine)
            if rule is not None:
                side = ", toward its higher neighbour" if rule.lean and rule.paint else ""
                return (
                    f"U-Net p > {rule.threshold:.2g}: within {rule.paint} plane(s) of a peak in z "
                    f"(the highest within {rule.radius}){side}"
                )
            return f"U-Net p > {self.engine.threshold:.2g}"
        confidence = self.settings.min_confidence
        return f"peak confidence > {confidence:.2g}, |depth - z| <= {depth_of_field / 2:.3g} µm"

    def _finish(self, key: Key) -> None:
        """Hand a stack to the finisher thread (waits while it is busy with another)."""
        stack = self._stacks.pop(key)
        if stack.planes:
            self._finishing.put((key, stack))

    def _finisher(self) -> None:
        while True:
            item = self._finishing.get()
            if isinstance(item, _Stop):
                self._put_write(_STOP)
                return
            if self._write_failed.is_set():
                continue
            try:
                self._finish_stack(*item)
            except Exception as exc:  # never leave the processing thread waiting
                self._fault_text(f"finishing stack {item[0]}", exc)

    def _finish_stack(self, key: Key, stack: _Stack) -> None:
        """A stack's end-of-stack work (its faults are counted by :meth:`_finisher`)."""
        result, rest = stack.recon.finish()  # every plane's final mask is in result.mask_depth
        p, t, c = key
        in_focus = [z for k, z in enumerate(stack.planes) if result.mask_depth[k].any()]
        with self._z_lock:
            self.stacks.append(
                {"p": p, "t": t, "c": c, "planes": list(stack.planes), "in_focus": in_focus}
            )
        masks: dict[str, np.ndarray] = {}
        plane_finals: dict[Index, dict[str, np.ndarray]] = {}
        if stack.planes == list(range(self.n_planes)):  # whole stack at once
            # the stack's Otsu masks; of the depth masks only those that become final now (the
            # others went to the store as each became final, equal to result.mask_depth's)
            masks = {"otsu": result.mask_otsu}
            plane_finals = {(p, t, c, z): {"depth": mask} for z, mask in rest.items()}
        else:  # planes missing (dropped frames): write the final masks plane by plane
            plane_finals = {
                (p, t, c, z): {"depth": result.mask_depth[k], "otsu": result.mask_otsu[k]}
                for k, z in enumerate(stack.planes)
            }
        if stack.peaks is not None:  # the model's last planes become final now
            _model_finals(plane_finals, key, stack.peaks.finish())
        try:
            self._drift(key, stack, result)
        except Exception as exc:  # a measurement, never a reason to lose the stack
            self._fault_text(f"drift of stack {key}", exc)
        self._put_write(
            _StackWrite(key, result, masks, plane_finals, stack.planes, self._depth_shift(stack))
        )

    def _drift(self, key: Key, stack: _Stack, result: StackResult) -> None:
        """Measure how far the specimen moved since the previous stack of the position and
        channel, and keep this stack's maps for the next one. A stack cut short (still open
        when the run ended: interrupted, or the camera stopped, before its last planned plane)
        is neither measured nor kept: its depths lie within the planes it has, and would read
        as a drift. (A stack the plane skipper trimmed ends at its last planned plane.)"""
        p, t, c = key
        if stack.cut_short:
            return
        low = float(min(stack.z))  # the reconstruction's depth is above its lowest plane
        previous = self._last_stack.get((p, c))
        self._last_stack[(p, c)] = (t, result.all_in_focus, result.depth, low)
        if previous is None:
            return
        t0, aif, depth, low0 = previous
        moved = stack_drift(aif, depth, result.all_in_focus, result.depth, z_offset_um=low - low0)
        entry: dict[str, Any] = {"p": p, "t": t, "c": c, "since_t": t0, **moved.as_dict()}
        known = self.pixel_size_known
        entry["x_um"] = moved.x_px * self.pixel_size if known else None
        entry["y_um"] = moved.y_px * self.pixel_size if known else None
        with self._z_lock:
            self.drift.append(entry)

    def _write(self) -> None:
        try:
            while True:
                job = self._writes.get()
                if isinstance(job, _Stop):
                    return
                try:
                    self._write_job(job)
                except Exception as exc:  # the store failed: nothing more can be written
                    self.error = exc
                    self._write_failed.set()
                    # a full disk or a vanished folder is one line; anything else, a bug, is
                    # logged with its traceback
                    trace = None if isinstance(exc, OSError) else exc
                    log.error("writing to the store failed: %s", exc, exc_info=trace)
                    return
        finally:
            self._done.set()

    def _write_job(self, job: _PlaneWrite | _RawWrite | _StackWrite) -> None:
        store = self.store
        if isinstance(job, _StackWrite):
            if store is not None:
                for index, final in job.plane_finals.items():
                    store.write_final(index, final)
                maps = {
                    "depth": job.result.depth + np.float32(job.depth_shift)
                    if job.depth_shift
                    else job.result.depth,
                    "all_in_focus": job.result.all_in_focus,
                    "confidence": job.result.confidence,
                }
                store.write_stack(job.key, maps=maps, masks=job.masks, planes=job.planes)
                with self._z_lock:
                    drift = list(self.drift)
                # while running
                store.update_meta(metrics=self.metrics().as_dict(), drift=drift)
            if self.on_stack is not None:
                try:
                    self.on_stack(job.key, job.result)
                except Exception as exc:
                    log.error("on_stack callback failed: %s", exc, exc_info=exc)
            return
        frame = job.frame
        if store is not None:
            if isinstance(job, _RawWrite):
                store.write_plane(frame.index, raw=frame.image)
            else:
                store.write_plane(frame.index, raw=frame.image, focus=job.focus, masks=job.masks)
                for index, final in job.finals.items():
                    store.write_final(index, final)
        done = time.perf_counter()
        with self._track.lock:
            self._track.frames_out += 1
            if self._track.presumed:  # close() gave up on it, but it reached the store
                self._track.presumed -= 1
                self._track.frames_lost -= 1
            self._track.last = done
            self._track.latencies.append(done - frame.ready)
        if isinstance(job, _PlaneWrite) and job.result is not None and self.on_result:
            try:
                self.on_result(replace(job.result, metrics=self.metrics()))
            except Exception as exc:  # a display error must not cost frames
                log.error("on_result callback failed: %s", exc, exc_info=exc)
