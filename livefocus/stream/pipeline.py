"""The processing pipeline: bounded queue -> focus / mask / reconstruction worker -> writer.

Frames come in on the acquisition thread through :meth:`Pipeline.submit`, which only puts them
in a bounded queue. Under the default policy ``"block"`` a full queue makes the acquisition
wait (the time is counted as ``blocked``) and no frame is lost; under ``"drop"`` a frame that
finds the queue full is counted as lost and skipped. A processing thread computes each frame's
focus map (numpy or CuPy), its masks (U-Net engine, Otsu, depth) and updates the stack's
reconstruction; a writer thread, behind a second bounded queue, puts it all in the store and
hands the latest result to an optional callback (the preview), so that disk and display never
stall the focus kernels.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from livefocus.depth import ReconstructSettings, StackReconstructor, plane_focus
from livefocus.focus._validate import check_positive_number
from livefocus.stream.store import StoreWriter
from livefocus.stream.types import FrameResult, Metrics

__all__ = ["POLICIES", "Pipeline"]

POLICIES = ("block", "drop")
_STOP = object()


@dataclass
class _Frame:
    image: np.ndarray
    index: tuple[int, int, int, int]  # p, t, c, z
    z_um: float | None
    ready: float  # perf_counter when the frame reached the pipeline


@dataclass
class _Stack:
    recon: StackReconstructor
    planes: list[int] = field(default_factory=list)  # z index of each plane added, in order
    z0: float | None = None


class _Tracker:
    """Counters and latencies, shared by the threads under one lock (bounded history)."""

    def __init__(self, queue_size: int) -> None:
        self.lock = threading.Lock()
        self.queue_size = queue_size
        self.frames_in = self.frames_out = self.frames_lost = 0
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
        last plane arrives.
    z_step : float
        Plane spacing in µm, used when a frame has no Z position.
    pixel_size : float
        µm per pixel, handed on in each :class:`FrameResult` (for the preview's true scale).
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
        Called on the writer thread with each :class:`FrameResult` (keep it cheap).
    """

    def __init__(
        self,
        settings: ReconstructSettings,
        *,
        n_planes: int,
        z_step: float = 1.0,
        pixel_size: float = 1.0,
        store: StoreWriter | None = None,
        mask_modes: tuple[str, ...] = ("depth", "otsu"),
        engine: Any = None,
        device: str = "cpu",
        queue_size: int = 8,
        policy: str = "block",
        on_result: Callable[[FrameResult], None] | None = None,
    ) -> None:
        if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 1:
            raise ValueError(f"queue_size must be a positive integer, got {queue_size!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        if "model" in mask_modes and engine is None:
            raise ValueError("mask mode 'model' needs a U-Net engine (--model NAME)")
        if not isinstance(n_planes, int) or n_planes < 1:
            raise ValueError(f"n_planes must be a positive integer, got {n_planes!r}")
        if device == "gpu":
            from livefocus._xp import require

            self._cupy: Any = require("cupy")
        self.settings = settings
        self.n_planes = n_planes
        self.z_step = float(z_step)
        self.pixel_size = check_positive_number(pixel_size, "pixel_size", "µm")
        self.store = store
        self.mask_modes = mask_modes
        self.engine = engine
        self.device = device
        self.policy = policy
        self.on_result = on_result
        self._frames: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._writes: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._track = _Tracker(queue_size)
        self._stacks: dict[tuple[int, int, int], _Stack] = {}
        self.error: BaseException | None = None
        self._failed = threading.Event()
        self._threads = [
            threading.Thread(target=self._guard, args=(self._process,), name="lf-process"),
            threading.Thread(target=self._guard, args=(self._write,), name="lf-write"),
        ]
        self._started = self._closed = False

    # -- acquisition side -----------------------------------------------------------------
    def start(self) -> Pipeline:
        """Start the processing and writer threads."""
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()
        return self

    @property
    def failed(self) -> bool:
        """True once a processing or writing error stopped the pipeline (see :attr:`error`)."""
        return self._failed.is_set()

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
        key = tuple(int(index.get(a, 0)) for a in "ptcz")
        item = _Frame(image, (key[0], key[1], key[2], key[3]), z_um, now)
        with self._track.lock:
            self._track.frames_in += 1
            if self._track.start is None:
                self._track.start = now
        if self._failed.is_set():
            return  # the worker stopped; the acquisition is being cancelled
        try:
            self._frames.put_nowait(item)
            return
        except queue.Full:
            if self.policy == "drop":
                with self._track.lock:
                    self._track.frames_lost += 1
                return
        while not self._failed.is_set():
            try:
                self._frames.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        with self._track.lock:
            self._track.blocked += time.perf_counter() - now

    def metrics(self) -> Metrics:
        """Current figures."""
        return self._track.snapshot(self._frames.qsize())

    def close(self, timeout: float | None = None) -> Metrics:
        """Process what is queued, finish open stacks, stop the threads; return the metrics.

        Raises the first processing or writing error, after stopping the threads.
        """
        if not self._closed:
            self._closed = True
            if self._started:
                self._put(self._frames, _STOP)
                for thread in self._threads:
                    thread.join(timeout)
        if self.error is not None:
            raise RuntimeError(f"processing failed: {self.error}") from self.error
        return self.metrics()

    # -- worker side ----------------------------------------------------------------------
    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._failed.is_set() and q is self._writes:
                    return

    def _guard(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # recorded; close() raises it
            if self.error is None:
                self.error = exc
            self._failed.set()
            self._drain()
            try:  # wake the writer, which may be waiting for work that will not come
                self._writes.put_nowait(_STOP)
            except queue.Full:
                pass

    def _drain(self) -> None:
        for q in (self._frames, self._writes):
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass

    def _focus(self, image: np.ndarray) -> np.ndarray:
        frame = self._cupy.asarray(image) if self.device == "gpu" else image
        return plane_focus(frame, self.settings)

    def _process(self) -> None:
        while True:
            item = self._frames.get()
            if item is _STOP:
                for key in list(self._stacks):
                    self._finish(key)
                self._put(self._writes, _STOP)
                return
            if self._failed.is_set():
                continue
            self._process_frame(item)

    def _process_frame(self, item: _Frame) -> None:
        p, t, c, z = item.index
        key = (p, t, c)
        image = np.asarray(item.image)
        stack = self._stacks.get(key)
        if stack is None:
            recon = StackReconstructor(
                image.shape, z_step=self.z_step, settings=self.settings, n_planes=self.n_planes
            )
            stack = self._stacks[key] = _Stack(recon)
        z_abs = item.z_um if item.z_um is not None else z * self.z_step
        if stack.z0 is None:
            stack.z0 = z_abs
        focus = self._focus(image)
        update = stack.recon.add(image, z_abs - stack.z0, focus=focus)
        stack.planes.append(z)
        masks: dict[str, np.ndarray] = {"depth": update.mask_depth, "otsu": update.mask_otsu}
        if self.engine is not None:
            probability = self.engine.predict(image[None])[0]
            masks["model"] = probability >= self.engine.threshold
        finals = {(p, t, c, stack.planes[k]): {"depth": m} for k, m in update.final.items()}
        result = None
        if self.on_result is not None:
            primary = masks[self.mask_modes[0]]
            if self.mask_modes[0] == "depth" and update.index in update.final:
                primary = update.final[update.index]
            result = FrameResult(
                index={"p": p, "t": t, "c": c, "z": z},
                z_um=float(z_abs - stack.z0),
                frame=image,
                focus=update.focus,
                mask=primary,
                depth=stack.recon.depth,
                all_in_focus=stack.recon.all_in_focus,
                confidence=stack.recon.confidence,
                curve=stack.recon.curve,
                metrics=Metrics(),  # filled in by the writer, once the frame is written
                mask_mode=self.mask_modes[0],
                measure=self.settings.measure,
                threshold=self._rule(update.otsu_threshold, stack.recon.depth_of_field),
                pixel_size=self.pixel_size,
            )
        self._put(self._writes, ("plane", item, update.focus, masks, finals, result))
        if len(stack.planes) >= self.n_planes or z == self.n_planes - 1:
            self._finish(key)

    def _rule(self, otsu: float, depth_of_field: float) -> str:
        """The primary mask's rule in words (for the preview)."""
        mode = self.mask_modes[0]
        if mode == "otsu":
            return f"focus > Otsu {otsu:.4g} (per slice)"
        if mode == "model":
            return f"U-Net p > {self.engine.threshold:.2g}"
        confidence = self.settings.min_confidence
        return f"peak confidence > {confidence:.2g}, |depth - z| <= {depth_of_field / 2:.3g} µm"

    def _finish(self, key: tuple[int, int, int]) -> None:
        stack = self._stacks.pop(key)
        result, _ = stack.recon.finish()  # every plane's final mask is in result.mask_depth
        p, t, c = key
        masks: dict[str, np.ndarray] = {}
        plane_finals: dict[tuple[int, int, int, int], dict[str, np.ndarray]] = {}
        if stack.planes == list(range(self.n_planes)):  # whole stack at once
            masks = {"otsu": result.mask_otsu, "depth": result.mask_depth}
        else:  # planes missing (dropped frames): write the final masks plane by plane
            plane_finals = {
                (p, t, c, z): {"depth": result.mask_depth[k], "otsu": result.mask_otsu[k]}
                for k, z in enumerate(stack.planes)
            }
        self._put(self._writes, ("stack", key, result, masks, plane_finals, stack.planes))

    def _write(self) -> None:
        while True:
            job = self._writes.get()
            if job is _STOP:
                return
            if self._failed.is_set():
                continue
            if job[0] == "plane":
                _, item, focus, masks, finals, result = job
                if self.store is not None:
                    self.store.write_plane(item.index, raw=item.image, focus=focus, masks=masks)
                    for index, final in finals.items():
                        self.store.write_final(index, final)
                done = time.perf_counter()
                with self._track.lock:
                    self._track.frames_out += 1
                    self._track.last = done
                    self._track.latencies.append(done - item.ready)
                if result is not None and self.on_result is not None:
                    self.on_result(replace(result, metrics=self.metrics()))
            else:
                _, key, stack_result, masks, plane_finals, planes = job
                if self.store is not None:
                    for index, final in plane_finals.items():
                        self.store.write_final(index, final)
                    maps = {
                        "depth": stack_result.depth,
                        "all_in_focus": stack_result.all_in_focus,
                        "confidence": stack_result.confidence,
                    }
                    self.store.write_stack(key, maps=maps, masks=masks, planes=planes)
                    self.store.update_meta(metrics=self.metrics().as_dict())  # while running
