"""Run a pymmcore-plus MDA through the pipeline into an OME-Zarr store: :func:`stream`."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from livefocus.depth import ReconstructSettings
from livefocus.stream.pipeline import Pipeline
from livefocus.stream.store import StoreWriter
from livefocus.stream.types import FrameResult, Metrics

__all__ = ["MASK_MODES", "StreamReport", "sequence_layout", "stream", "z_sequence"]

MASK_MODES = ("depth", "otsu", "model")

# pymmcore-plus routes MDA signals through Qt when a QApplication exists before the core; the
# pipeline wants them on the acquisition thread (cheap hand-off to the bounded queue).
os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")


@dataclass
class StreamReport:
    """What a streaming run did.

    Attributes
    ----------
    path : Path or None
        The store.
    metrics : Metrics
        Final pipeline figures.
    status : str
        ``complete``, ``interrupted`` or ``error: ...``.
    expected : int
        Frames the sequence asked for.
    z_positions : dict
        Stage Z (µm) of each received plane by (p, t, c) stack, in arrival order.
    mask_modes : tuple of str
        Modes computed, primary first.
    settings : ReconstructSettings
    """

    path: Path | None
    metrics: Metrics
    status: str
    expected: int
    z_positions: dict[tuple[int, int, int], list[float]] = field(default_factory=dict)
    mask_modes: tuple[str, ...] = ()
    settings: ReconstructSettings | None = None

    @property
    def ok(self) -> bool:
        """True when every frame was acquired, processed and written."""
        m = self.metrics
        return self.status == "complete" and m.frames_out == self.expected


def sequence_layout(sequence: Any) -> tuple[int, int, int, int, float]:
    """(positions, time points, channels, planes, z step in µm) of a useq sequence.

    Raises
    ------
    ValueError
        When the sequence has no Z plan, or axes livefocus does not stream (grid).
    """
    sizes = {k: int(v) for k, v in sequence.sizes.items() if v}
    if sizes.get("z", 0) < 1 or sequence.z_plan is None:
        raise ValueError(
            "sequence has no Z plan: livefocus needs Z-stacks (e.g. --z-range 40 --step 2)"
        )
    unknown = set(sizes) - set("ptcz")
    if unknown:
        raise ValueError(f"sequence axes {sorted(unknown)} are not supported (use p, t, c, z)")
    positions = [float(v) for v in sequence.z_plan]
    steps = np.diff(positions)
    step = float(np.median(np.abs(steps))) if steps.size else 1.0
    return sizes.get("p", 1), sizes.get("t", 1), sizes.get("c", 1), sizes["z"], step or 1.0


def z_sequence(
    z_plan: dict[str, Any],
    *,
    time_points: int = 1,
    interval: float = 0.0,
    positions: Sequence[tuple[float, float, float | None]] | None = None,
    channels: Sequence[str] | None = None,
    channel_group: str = "Channel",
) -> Any:
    """A useq ``MDASequence`` of Z-stacks (axis order t, p, c, z: each stack is contiguous).

    Parameters
    ----------
    z_plan : dict
        A useq Z plan, e.g. ``{"range": 40, "step": 2}`` (around the current focus) or
        ``{"absolute": [0, 1, 2]}``.
    time_points, interval : int, float
        Number of stacks in time and the seconds between them.
    positions : sequence of (x, y, z or None), optional
        Stage positions in µm.
    channels : sequence of str, optional
        Presets of ``channel_group``.
    """
    import useq

    spec: dict[str, Any] = {"z_plan": z_plan, "axis_order": "tpcz"}
    if time_points > 1:
        spec["time_plan"] = {"interval": interval, "loops": time_points}
    if positions:
        spec["stage_positions"] = [{"x": x, "y": y, "z": z} for x, y, z in positions]
    if channels:
        spec["channels"] = [{"group": channel_group, "config": c} for c in channels]
    return useq.MDASequence.model_validate(spec)


def _version() -> str:
    from importlib.metadata import version

    return version("livefocus")


def _frame_dtype(core: Any) -> np.dtype[Any]:
    depth = int(core.getBytesPerPixel())
    return np.dtype({1: np.uint8, 2: np.uint16}.get(depth, np.uint32))


class _SnapErrors(logging.Handler):
    """Collects the camera errors that pymmcore-plus's engine logs instead of raising."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "snap" in text.lower() or "image" in text.lower() or record.levelno >= logging.ERROR:
            self.messages.append(text)


def stream(
    core: Any,
    sequence: Any,
    *,
    out: str | Path | None,
    settings: ReconstructSettings | None = None,
    mask: str | None = None,
    model: str | None = None,
    device: str = "cpu",
    queue_size: int = 8,
    policy: str = "block",
    on_result: Callable[[FrameResult], None] | None = None,
    overwrite: bool = False,
    fps: float | None = None,
    meta: dict[str, Any] | None = None,
) -> StreamReport:
    """Acquire ``sequence`` on ``core`` and segment every frame online into a store.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded pymmcore-plus core (create it before any QApplication, or set
        ``PYMM_SIGNALS_BACKEND=psygnal``).
    sequence : useq.MDASequence
        Must have a Z plan; may have time points, positions and channels.
    out : str or Path or None
        OME-Zarr store to write (None: process without writing).
    settings : ReconstructSettings, optional
        Default: :meth:`ReconstructSettings.for_frame` for the camera's frame size.
    mask : {"depth", "otsu", "model"}, optional
        Primary mask mode (array ``mask``); default ``model`` with a model, else ``depth``.
    model : str, optional
        U-Net name or folder for the ``model`` masks (None: no U-Net).
    device : {"cpu", "gpu"}
        Focus kernels on numpy or CuPy.
    queue_size : int
        Bound of the frame queue.
    policy : {"block", "drop"}
        Full-queue policy (``block`` loses nothing).
    on_result : callable, optional
        Receives each :class:`FrameResult` (e.g. the preview's ``submit``).
    overwrite : bool
        Replace an existing store.
    fps : float, optional
        Pace the acquisition to at most this many frames per second (replay).
    meta : dict, optional
        Extra JSON for the store's metadata.

    Returns
    -------
    StreamReport
        Camera errors and interruptions do not raise: the store keeps every plane written
        and ``status`` says what happened.
    """
    npos, nt, nc, nz, z_step = sequence_layout(sequence)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    height, width = int(core.getImageHeight()), int(core.getImageWidth())
    settings = settings or ReconstructSettings.for_frame((height, width))
    primary = mask or ("model" if model else "depth")
    if primary not in MASK_MODES:
        raise ValueError(f"mask must be one of {MASK_MODES}, got {primary!r}")
    modes = (primary, *[m for m in ("depth", "otsu") if m != primary])
    if model and "model" not in modes:
        modes = (*modes, "model")
    engine = None
    model_meta: dict[str, Any] | None = None
    if "model" in modes:
        if not model:
            raise ValueError("mask 'model' needs --model NAME")
        from livefocus.model import engine as make_engine

        engine = make_engine(model, backend="auto" if device == "gpu" else "onnxruntime")
        config = engine.model.config
        model_meta = {
            "name": str(model),
            "config_name": engine.model.name,
            "format": config.get("format"),
            "version": str(config.get("weights_sha256", ""))[:12],  # the weights' checksum
            "weights_sha256": config.get("weights_sha256"),
            "backend": engine.backend,
        }
    pixel = float(core.getPixelSizeUm() or 1.0)
    pipeline = Pipeline(
        settings,
        n_planes=nz,
        z_step=z_step,
        pixel_size=pixel,
        mask_modes=modes,
        engine=engine,
        device=device,
        queue_size=queue_size,
        policy=policy,
        on_result=on_result,
    )
    store = None
    if out is not None:
        store = StoreWriter(
            out,
            shape=(npos, nt, nc, nz, height, width),
            dtype=_frame_dtype(core),
            z_step=z_step,
            pixel_size=pixel,
            mask_modes=modes,
            overwrite=overwrite,
            meta={
                "version": _version(),
                "settings": settings.as_dict(),
                "model": model_meta,
                "device": device,
                "sequence": sequence.model_dump(mode="json", exclude_unset=True),
                "otsu": "per slice online; per stack (scope='stack') once the stack is final",
                "depth_masks": "provisional online; final once known (planes == 2)",
                **(meta or {}),
            },
        )
    pipeline.store = store  # created last: bad options above leave nothing on disk
    pipeline.start()
    z_positions: dict[tuple[int, int, int], list[float]] = {}

    def on_frame(image: np.ndarray, event: Any, _meta: Any) -> None:
        if pipeline.failed:
            core.mda.cancel()
            return
        index = event.index
        key = (int(index.get("p", 0)), int(index.get("t", 0)), int(index.get("c", 0)))
        z_positions.setdefault(key, []).append(
            float(event.z_pos) if event.z_pos is not None else float("nan")
        )
        pipeline.submit(image, index, event.z_pos)

    events: Iterable[Any] = sequence
    if fps is not None:
        events = [e.model_copy(update={"min_start_time": i / fps}) for i, e in enumerate(sequence)]
    errors = _SnapErrors()
    log = logging.getLogger("pymmcore-plus")
    log.addHandler(errors)
    previous_hook = threading.excepthook

    def thread_error(args: Any) -> None:
        # a camera that fails during a hardware sequence raises in pymmcore-plus's own thread
        if type(args.thread).__name__ == "AcquisitionThread":
            errors.messages.append(f"{args.exc_type.__name__}: {args.exc_value}")
        else:
            previous_hook(args)

    threading.excepthook = thread_error
    status = "complete"
    cancelled = threading.Event()  # core.mda.cancel() from elsewhere, e.g. Ctrl-C in a GUI

    def on_cancel(*_: Any) -> None:
        cancelled.set()

    core.mda.events.frameReady.connect(on_frame)
    core.mda.events.sequenceCanceled.connect(on_cancel)
    try:
        with _ctrl_c_cancels(core):
            core.mda.run(events)
        if cancelled.is_set():
            status = "interrupted"
    except KeyboardInterrupt:  # a second Ctrl-C
        core.mda.cancel()
        status = "interrupted"
    except Exception as exc:
        status = f"error: acquisition failed: {exc}"
    finally:
        core.mda.events.frameReady.disconnect(on_frame)
        core.mda.events.sequenceCanceled.disconnect(on_cancel)
        log.removeHandler(errors)
        threading.excepthook = previous_hook
    try:
        metrics = pipeline.close()
    except RuntimeError as exc:
        status = f"error: {exc}"
        metrics = pipeline.metrics()
    expected = npos * nt * nc * nz
    if status == "complete" and metrics.frames_in < expected:
        detail = f" ({errors.messages[-1]})" if errors.messages else ""
        status = f"error: camera delivered {metrics.frames_in} of {expected} frames{detail}"
    if store is not None:
        store.close(
            status,
            metrics=metrics.as_dict(),
            z_um=_stack_z(z_positions, nz, z_step),
            finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
    return StreamReport(
        path=store.path if store is not None else None,
        metrics=metrics,
        status=status,
        expected=expected,
        z_positions=z_positions,
        mask_modes=modes,
        settings=settings,
    )


@contextmanager
def _ctrl_c_cancels(core: Any) -> Iterator[None]:
    """On the main thread, make Ctrl-C cancel the MDA cleanly (a second one interrupts).

    A KeyboardInterrupt raised at an arbitrary point of the acquisition loop could leave
    pymmcore-plus or the queues in a half-done state; cancelling lets the runner stop between
    events, and the pipeline then finishes what it has.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()
        core.mda.cancel()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stack_z(
    z_positions: dict[tuple[int, int, int], list[float]], nz: int, step: float
) -> list[float]:
    """Plane positions (µm from the first plane) of the first complete stack."""
    for zs in z_positions.values():
        if len(zs) == nz and all(np.isfinite(zs)):
            return [float(z - zs[0]) for z in zs]
    return [float(k * step) for k in range(nz)]
