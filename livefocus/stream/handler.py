"""The pipeline as a pymmcore-plus output handler: :class:`MDAHandler`.

pymmcore-plus calls an output handler's ``sequenceStarted(sequence, meta)``, ``frameReady(image,
event, meta)`` and ``sequenceFinished(sequence)`` (and ``sequenceCanceled``), so::

    core.mda.run(sequence, output=[MDAHandler(out="run.ome.zarr")])

segments and writes live next to pymmcore-plus's own writers, from a script, pymmcore-widgets'
MDA widget or :func:`livefocus.stream.stream` (a thin wrapper over this class).

Passed as ``output=``, pymmcore-plus hands the frames to handlers on a relay thread, behind its
own queue, so the pipeline's ``block`` policy cannot hold the camera back there;
:func:`~livefocus.stream.stream` connects the handler on the acquisition thread instead, where
``block`` makes the camera wait and memory stays bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from livefocus._output import check_output
from livefocus._vocab import DEVICES, MASK_MODES, POLICIES, Device, MaskMode, Policy, check_choice
from livefocus.depth import ReconstructSettings
from livefocus.focus._validate import check_memory, check_positive_int, check_positive_number
from livefocus.stream.pipeline import Pipeline
from livefocus.stream.sequence import SequenceLayout, sequence_layout
from livefocus.stream.store import StoreWriter
from livefocus.stream.types import FrameResult, Metrics

__all__ = ["DEFAULT_FRAME_TIMEOUT_S", "MDAHandler", "StreamReport"]

#: Seconds one frame may take in the pipeline before the run counts as stalled.
DEFAULT_FRAME_TIMEOUT_S = 60.0


@dataclass
class StreamReport:
    """What a streaming run did.

    Attributes
    ----------
    path : Path or None
        The store.
    metrics : Metrics
        Final pipeline figures (``frames_lost`` counts every captured frame not stored).
    status : str
        ``complete``, ``interrupted`` or ``error: ...`` (as the store records it).
    expected : int
        Frames the sequence asked for.
    z_positions : dict
        Stage Z (µm) of each processed plane by (p, t, c) stack, in arrival order.
    mask_modes : tuple of str
        Modes computed, primary first.
    settings : ReconstructSettings
    faults : int
        Frames whose processing raised; they are stored raw (see ``status``).
    engine_switches : list of dict
        When the U-Net engine was replaced by a calibrated one (``calibrate=``): frames
        taken before the switch, time, the model folder.
    calibration : dict or None
        What the self-calibration did, when asked for: its metrics, its ``error``, or why it
        did not run (``not_run``: no stack was complete).
    drift : list of dict
        The specimen's move from each stack to the next of its position and channel
        (:func:`livefocus.depth.stack_drift`: ``p``, ``t``, ``c``, ``since_t``, ``x_px``,
        ``y_px``, ``x_um``, ``y_um``, ``z_um``, ``response``, ``pixels``); the store's
        ``livefocus`` attribute holds the same list as ``drift``.
    focus_offsets : list of dict
        With focus following (``stream(follow_drift=True)``): each moved stack's ``p``, ``t``,
        ``offset_um`` (its planes' move from the plan), ``predicted_um``, ``measured``,
        ``waited_s`` (:class:`livefocus.stream.follow.FocusFollower`); also in the store as
        ``focus_offsets``.
    plane_skips : list of dict
        With plane skipping (``stream(skip_planes=True)``): each stack's ``p``, ``t``,
        ``first`` and ``last`` (the plan's plane indices acquired), ``skipped`` (frames of the
        plan not acquired), ``why`` (:class:`livefocus.stream.skip.PlaneSkipper`); also in
        the store as ``plane_skips``. ``expected`` leaves the skipped frames out.
    """

    path: Path | None
    metrics: Metrics
    status: str
    expected: int
    z_positions: dict[tuple[int, int, int], list[float]] = field(default_factory=dict)
    mask_modes: tuple[str, ...] = ()
    settings: ReconstructSettings | None = None
    faults: int = 0
    engine_switches: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    drift: list[dict[str, Any]] = field(default_factory=list)
    focus_offsets: list[dict[str, Any]] = field(default_factory=list)
    plane_skips: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every frame was acquired, processed and written."""
        return self.status == "complete" and self.metrics.frames_out == self.expected


#: The starts of pymmcore-plus's warnings of an event's setting it could not make; its engine
#: then acquires the frame anyway, elsewhere or otherwise than asked.
_FAILED_SETTINGS = ("Failed to set XY position", "Failed to set channel", "Failed to set exposure")


class _CameraErrors(logging.Handler):
    """Collects the camera errors, and the stage moves that failed, that pymmcore-plus's
    engine logs instead of raising (after a failed move it acquires where the stage stood)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.failed_moves: list[str] = []
        #: Errors raised where the frames are made (the camera's sequence thread): the cause,
        #: where pymmcore-plus's engine logs only how many frames it missed.
        self.causes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith(_FAILED_SETTINGS):
            self.failed_moves.append(text)
        elif "snap" in text.lower() or "image" in text.lower() or record.levelno >= logging.ERROR:
            self.messages.append(text)


def _version() -> str:
    from importlib.metadata import version

    return version("livefocus")


def _stack_z(
    z_positions: dict[tuple[int, int, int], list[float]], nz: int, step: float
) -> list[float]:
    """Plane positions (µm above the lowest plane) of the first complete stack."""
    for zs in z_positions.values():
        if len(zs) == nz and all(np.isfinite(zs)):
            return [float(z - min(zs)) for z in zs]
    return [float(k * step) for k in range(nz)]


def _stage_xy(layout: SequenceLayout) -> list[tuple[float, float]] | None:
    """Stage X, Y of every position, when the sequence gives them all."""
    if not layout.stage_xy or any(xy is None for xy in layout.stage_xy):
        return None
    return [xy for xy in layout.stage_xy if xy is not None]


def _check_pipeline_memory(
    layout: SequenceLayout, shape: tuple[int, int], dtype: Any, queue_size: int
) -> None:
    """Refuse a run whose pipeline would not fit in memory (before anything is written).

    The reconstruction of an open stack keeps its float32 focus maps and masks (5 bytes a voxel)
    and about 25 float32 (Y, X) maps; at most one stack per channel is open; the two queues hold
    up to ``queue_size`` frames each, with their maps and masks. The run may use 80 % of what
    is available.
    """
    height, width = shape
    pixels = height * width
    per_stack = layout.planes * pixels * 5 + 25 * pixels * 4
    queued = 2 * queue_size * pixels * (np.dtype(dtype).itemsize + 4 + 3)
    need = layout.channels * per_stack + queued
    check_memory(need, "shape", (layout.planes, height, width), fraction=0.8)


class MDAHandler:
    """Segment every frame of a pymmcore-plus MDA online and write a livefocus store.

    Parameters
    ----------
    out : str or Path or None
        OME-Zarr store to write (None: process without writing).
    settings : ReconstructSettings, optional
        Default: :meth:`ReconstructSettings.for_frame` for the camera's frame size.
    mask : {"depth", "otsu", "model"}, optional
        Primary mask mode (array ``mask``); default ``model`` with a model, else ``depth``.
    model : str, optional
        U-Net name or folder for the ``model`` masks (None: no U-Net). Loaded here, so that a
        bad name fails before any acquisition.
    device : {"cpu", "gpu"}
        Focus kernels on numpy or CuPy.
    queue_size : int
        Bound of the frame queue.
    policy : {"block", "drop"}
        Full-queue policy (``block`` loses nothing).
    on_result : callable, optional
        Receives each :class:`FrameResult` (e.g. the preview's ``submit``); its errors are
        logged, never fatal.
    overwrite : bool
        Replace an existing store that livefocus wrote.
    meta : dict, optional
        Extra JSON for the store's metadata.
    frame_timeout : float
        Seconds one frame may take in the pipeline; beyond, the run is cancelled (when the
        handler knows the core) and the remaining frames are stored raw.
    core : CMMCorePlus, optional
        The core running the MDA: needed to cancel it on a stall or a store failure.
    calibrate : str or Path, optional
        Self-calibration: after the first complete Z-stack, fine-tune the U-Net (``model``,
        default ``depth``) on that stack's final rule masks in a background thread
        (:func:`livefocus.model.calibrate_on`), write the model folder here, and segment the
        following frames with it. The acquisition never waits for it; the report and the
        store record when the engine switched. Needs ``out`` (the stack is read back from
        the store).
    calibrate_seconds : float
        Wall-clock budget of the calibration.

    Examples
    --------
    >>> from livefocus.devices import demo_core
    >>> import useq
    >>> core = demo_core(shape=(64, 64))
    >>> handler = MDAHandler(out=None)
    >>> core.mda.run(useq.MDASequence(z_plan={"range": 4, "step": 2}), output=[handler])
    >>> handler.report.status, handler.report.metrics.frames_out
    ('complete', 3)
    """

    def __init__(
        self,
        out: str | Path | None = None,
        *,
        settings: ReconstructSettings | None = None,
        mask: MaskMode | None = None,
        model: str | None = None,
        device: Device = "cpu",
        queue_size: int = 8,
        policy: Policy = "block",
        on_result: Callable[[FrameResult], None] | None = None,
        overwrite: bool = False,
        meta: dict[str, Any] | None = None,
        frame_timeout: float = DEFAULT_FRAME_TIMEOUT_S,
        core: Any = None,
        calibrate: str | Path | None = None,
        calibrate_seconds: float = 60.0,
    ) -> None:
        # a model folder is an input: neither the store nor the calibrated model may replace it;
        # so are the replayed stack and the configuration the run names in its meta
        read_paths = [Path(model).expanduser()] if model and Path(model).is_dir() else []
        read_paths += [
            Path(str(v)) for k, v in (meta or {}).items() if k in ("stack", "config") and v
        ]
        if calibrate is not None:
            if out is None:
                raise ValueError("calibrate needs out: the first stack is read back from the store")
            model = model or "depth"
            check_output(
                calibrate,
                overwrite=overwrite,
                name="calibrate",
                inputs=[out, *read_paths],
                within=[out],
                kind="model",
            )
            check_positive_number(calibrate_seconds, "calibrate_seconds", "s")
        if settings is not None and not isinstance(settings, ReconstructSettings):
            raise ValueError(f"settings must be a ReconstructSettings, got {type(settings)!r}")
        primary = check_choice(mask or ("model" if model else "depth"), "mask", MASK_MODES)
        modes: tuple[MaskMode, ...] = (primary, *[m for m in ("depth", "otsu") if m != primary])
        if model and "model" not in modes:
            modes = (*modes, "model")
        if "model" in modes and not model:
            raise ValueError("mask 'model' needs a U-Net: pass model=NAME too")
        self.device: Device = check_choice(device, "device", DEVICES)
        self.policy: Policy = check_choice(policy, "policy", POLICIES)
        self.queue_size = check_positive_int(queue_size, "queue_size")
        self.frame_timeout = check_positive_number(frame_timeout, "frame_timeout", "s")
        self.out = Path(out).expanduser() if out is not None else None
        self._inputs = [*read_paths, *([Path(calibrate)] if calibrate is not None else [])]
        if self.out is not None:
            check_output(self.out, overwrite=overwrite, inputs=self._inputs, kind="store")
        self.settings = settings
        self.mask_modes = modes
        self.on_result = on_result
        self.overwrite = overwrite
        self.meta = dict(meta or {})
        self.core = core
        self.model_name = model
        self.calibrate = Path(calibrate).expanduser() if calibrate is not None else None
        self.calibrate_seconds = float(calibrate_seconds)
        self._calibration: threading.Thread | None = None
        #: The stacks moved to follow the focus (:meth:`note_focus_offset`).
        self.focus_offsets: list[dict[str, Any]] = []
        #: Each stack's planes acquired when planes are skipped (:meth:`note_plane_skip`).
        self.plane_skips: list[dict[str, Any]] = []
        self._calibration_result: dict[str, Any] | None = None
        self.engine: Any = None
        self.model_meta: dict[str, Any] | None = None
        if model:
            self._load_engine(model)
        #: What the run did; set when the sequence finishes.
        self.report: StreamReport | None = None
        self.pipeline: Pipeline | None = None
        self.store: StoreWriter | None = None
        self.layout: SequenceLayout | None = None
        self._sequence: Any = None
        self._interrupted = threading.Event()
        self._errors = _CameraErrors()
        self._lock = threading.Lock()

    def _load_engine(self, model: str) -> None:
        from livefocus.model import engine as make_engine

        backend = "auto" if self.device == "gpu" else "onnxruntime"
        self.engine = make_engine(model, backend=backend)
        self.model_meta = _model_meta(self.engine, model)

    # -- set-up ---------------------------------------------------------------------------
    def prepare(
        self,
        sequence: Any,
        *,
        shape: tuple[int, int],
        dtype: Any,
        pixel_size: float | None,
    ) -> None:
        """Create the pipeline and the store for ``sequence`` (before the acquisition starts).

        :func:`~livefocus.stream.stream` calls this before running the MDA, so that a bad
        sequence or output fails before anything is acquired; as an output handler, the
        handler calls it from ``sequenceStarted`` (or from the first frame when the
        sequence's metadata does not tell the frame size).
        """
        with self._lock:
            if self.pipeline is not None:
                return
            layout = sequence_layout(sequence)
            height, width = (int(v) for v in shape)
            _check_pipeline_memory(layout, (height, width), dtype, self.queue_size)
            settings = self.settings or ReconstructSettings.for_frame((height, width))
            self.settings = settings
            pixel = float(pixel_size) if pixel_size else None
            pipeline = Pipeline(
                settings,
                n_planes=layout.planes,
                z_step=layout.z_step,
                pixel_size=pixel,
                mask_modes=self.mask_modes,
                engine=self.engine,
                device=self.device,
                queue_size=self.queue_size,
                policy=self.policy,
                on_result=self.on_result,
                frame_timeout=self.frame_timeout,
                on_stall=self.cancel_acquisition,
                on_stack=self._stack_done if self.calibrate is not None else None,
                plan_um=layout.plan_um,
            )
            if self.out is not None:
                self.store = StoreWriter(
                    self.out,
                    shape=(
                        layout.positions,
                        layout.time_points,
                        layout.channels,
                        layout.planes,
                        height,
                        width,
                    ),
                    dtype=np.dtype(dtype),
                    z_step=layout.z_step,
                    pixel_size=float(pixel_size) if pixel_size else None,
                    mask_modes=self.mask_modes,
                    overwrite=self.overwrite,
                    inputs=self._inputs,
                    channels=layout.channel_names or None,
                    interval_s=layout.interval or None,
                    stage_positions=_stage_xy(layout),
                    meta={
                        "version": _version(),
                        "settings": settings.as_dict(),
                        "model": self.model_meta,
                        "device": self.device,
                        "sequence": sequence.model_dump(mode="json", exclude_unset=True),
                        "otsu": "per slice online; per stack (scope='stack') once final",
                        "depth_masks": "provisional online; final once known (planes == 2)",
                        **self.meta,
                    },
                )
            pipeline.store = self.store
            self.layout = layout
            self._sequence = sequence
            self.pipeline = pipeline.start()
            logging.getLogger("pymmcore-plus").addHandler(self._errors)

    # -- pymmcore-plus handler protocol ---------------------------------------------------
    def sequenceStarted(self, sequence: Any, meta: Any = None) -> None:
        """Create the pipeline and store from the sequence and its summary metadata."""
        self.report = None
        infos: Any = (meta or {}).get("image_infos") or ()
        if len(infos) == 1:  # one camera: its frame size is known now
            info = infos[0]
            ny, nx = info.get("plane_shape") or (info["height"], info["width"])
            self.prepare(
                sequence,
                shape=(int(ny), int(nx)),
                dtype=info.get("dtype", "uint16"),
                pixel_size=info.get("pixel_size_um"),
            )
        else:
            self._sequence = sequence

    def frameReady(self, image: np.ndarray, event: Any, meta: Any = None) -> None:
        """Hand the frame to the pipeline (cheap; may block under the ``block`` policy)."""
        if self.pipeline is None:
            pixel = (meta or {}).get("pixel_size_um") if isinstance(meta, dict) else None
            self.prepare(self._sequence, shape=image.shape[:2], dtype=image.dtype, pixel_size=pixel)
        assert self.pipeline is not None
        self.pipeline.submit(image, event.index, event.z_pos)
        if self.pipeline.failed or self.pipeline.stalled:
            self.cancel_acquisition()

    def sequenceCanceled(self, sequence: Any = None) -> None:
        """The MDA was cancelled (Ctrl-C, a GUI's stop button, a stall): status ``interrupted``."""
        self._interrupted.set()

    def sequenceFinished(self, sequence: Any = None) -> None:
        """Write what is queued, finish the stacks, close the store with its status."""
        self.finish()

    # -- control --------------------------------------------------------------------------
    @property
    def interrupted(self) -> bool:
        """Whether the run was cancelled (Ctrl-C, the preview, a stalled pipeline)."""
        return self._interrupted.is_set()

    def cancel_acquisition(self) -> None:
        """Stop the acquisition between events (when the core is known); frames already
        captured are still written."""
        self._interrupted.set()
        if self.core is not None:
            self.core.mda.cancel()

    def _stack_done(self, key: tuple[int, int, int], result: Any) -> None:
        """After the first complete stack: start the calibration (writer thread; cheap)."""
        layout = self.layout
        if (
            self._calibration is not None
            or layout is None
            or result.mask_depth.shape[0] < layout.planes
        ):
            return
        self._calibration = threading.Thread(
            target=self._calibrate, args=(key, result.mask_depth), name="lf-calibrate", daemon=True
        )
        self._calibration.start()

    def _calibrate(self, key: tuple[int, int, int], masks: np.ndarray) -> None:
        from livefocus.model import calibrate_on
        from livefocus.model import engine as make_engine
        from livefocus.stream.store import open_store

        assert self.calibrate is not None and self.out is not None and self.layout is not None
        p, t, c = key
        started = time.perf_counter()
        try:
            raw = np.asarray(open_store(self.out).array("raw", p)[t, c])
            folder = calibrate_on(
                raw,
                masks,
                model=self.model_name or "depth",
                out=self.calibrate,
                seconds=self.calibrate_seconds,
                z_step=self.layout.z_step,
                overwrite=self.overwrite,
                source=f"{self.out} stack p={p} t={t} c={c}",
            )
            backend = "auto" if self.device == "gpu" else "onnxruntime"
            engine = make_engine(folder, backend=backend)
            assert self.pipeline is not None
            meta = _model_meta(engine, Path(folder).resolve())
            self.pipeline.set_engine(engine, note=meta["name"], model=meta)
            if self.store is not None:  # the masks from here on are the calibrated model's
                try:
                    self.store.update_meta(
                        model={**meta, "base": self.model_meta},
                        engine_switches=list(self.pipeline.engine_switches),
                    )
                except Exception as exc:  # the switch happened: the writer reports the store
                    logging.getLogger("livefocus.stream").error("recording the switch: %s", exc)
            self._calibration_result = {
                "model": meta["name"],
                "stack": {"p": p, "t": t, "c": c},
                "seconds": round(time.perf_counter() - started, 2),
                "metrics": engine.model.config.get("calibration"),
            }
        except Exception as exc:  # the run goes on with the base engine
            logging.getLogger("livefocus.stream").error("calibration failed: %s", exc)
            self._calibration_result = {"error": f"{type(exc).__name__}: {exc}"}

    def drift_since(self, start: int = 0) -> list[dict[str, Any]]:
        """The drifts measured so far from index ``start`` on (:meth:`Pipeline.drift_since`;
        none before the first frame)."""
        pipeline = self.pipeline
        return [] if pipeline is None else pipeline.drift_since(start)

    def stacks_since(self, start: int = 0) -> list[dict[str, Any]]:
        """The stacks finished so far from index ``start`` on (:meth:`Pipeline.stacks_since`;
        none before the first frame)."""
        pipeline = self.pipeline
        return [] if pipeline is None else pipeline.stacks_since(start)

    def end_stacks(self, p: int, t: int) -> None:
        """Ask the pipeline to finish stack ``t`` of position ``p`` once its queued frames are
        processed (:meth:`Pipeline.end_stacks`; nothing before the first frame)."""
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.end_stacks(p, t)

    def note_focus_offset(self, entry: dict[str, Any]) -> None:
        """Record a stack moved to follow the focus (the store's ``focus_offsets`` too)."""
        self._note("focus_offsets", self.focus_offsets, entry)

    def note_plane_skip(self, entry: dict[str, Any]) -> None:
        """Record which planes of a stack are acquired (the store's ``plane_skips`` too); the
        frames skipped are no longer expected, and the stack is finished at its last plane
        acquired (call before that stack's first frame)."""
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.end_stack_at(int(entry["p"]), int(entry["t"]), int(entry["last"]))
        self._note("plane_skips", self.plane_skips, entry)

    def _note(self, name: str, entries: list[dict[str, Any]], entry: dict[str, Any]) -> None:
        entries.append(dict(entry))
        if self.store is not None:
            try:
                self.store.update_meta(**{name: list(entries)})
            except Exception as exc:  # the writer reports a failed store; this is a note
                logging.getLogger("livefocus.stream").error("recording %s: %s", name, exc)

    def expected_frames(self) -> int:
        """Frames the sequence asks for, less those skipped (:meth:`note_plane_skip`)."""
        planned = self.layout.frames if self.layout is not None else 0
        return planned - sum(int(e["skipped"]) for e in self.plane_skips)

    def note_error(self, message: str) -> None:
        """Record an acquisition error seen outside the handler, such as the camera's sequence
        thread dying: it becomes the status's reason when frames are missing."""
        self._errors.causes.append(message)

    def finish(self, error: str | None = None) -> StreamReport:
        """Close the run (idempotent): drain the pipeline, record the status, give the report.

        Parameters
        ----------
        error : str, optional
            An acquisition error that ended the run (``status`` becomes ``error: ...``).
        """
        with self._lock:
            if self.report is not None:
                return self.report
            pipeline, layout = self.pipeline, self.layout
            logging.getLogger("pymmcore-plus").removeHandler(self._errors)
            if pipeline is None or layout is None:  # no frame ever arrived
                expected = sequence_layout(self._sequence).frames if self._sequence else 0
                status = f"error: {error}" if error else "error: no frame was acquired"
                self.report = StreamReport(None, Metrics(), status, expected)
                return self.report
            metrics = pipeline.close()
            if self._calibration is not None:  # bounded by its budget: its folder is whole
                self._calibration.join(self.calibrate_seconds + 120)
            elif self.calibrate is not None:  # asked for, but no stack was ever complete
                self._calibration_result = {
                    "not_run": "no complete stack to calibrate on: the base engine throughout"
                }
            status = self._status(pipeline, metrics, layout, error)
            extra: dict[str, Any] = {}
            if self.calibrate is not None:
                extra = {
                    "calibration": self._calibration_result,
                    "engine_switches": pipeline.engine_switches,
                }
            if self.store is not None:
                try:
                    self.store.close(
                        status,
                        **extra,
                        metrics=metrics.as_dict(),
                        drift=list(pipeline.drift),
                        **({"focus_offsets": self.focus_offsets} if self.focus_offsets else {}),
                        **({"plane_skips": self.plane_skips} if self.plane_skips else {}),
                        z_um=_stack_z(pipeline.z_positions(), layout.planes, layout.z_step),
                        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    )
                except Exception as exc:  # the store is gone: the status says so already
                    logging.getLogger("livefocus.stream").error("closing the store: %s", exc)
            self.report = StreamReport(
                path=self.store.path if self.store is not None else None,
                metrics=metrics,
                status=status,
                expected=self.expected_frames(),
                z_positions=pipeline.z_positions(),
                mask_modes=self.mask_modes,
                settings=self.settings,
                faults=pipeline.faults,
                engine_switches=list(pipeline.engine_switches),
                calibration=self._calibration_result,
                drift=list(pipeline.drift),
                focus_offsets=list(self.focus_offsets),
                plane_skips=list(self.plane_skips),
            )
            return self.report

    def _status(
        self, pipeline: Pipeline, metrics: Metrics, layout: SequenceLayout, error: str | None
    ) -> str:
        stored = metrics.frames_out
        if pipeline.error is not None:
            return (
                f"error: writing the store failed after {stored} frames ({pipeline.error}); "
                f"{metrics.frames_lost} captured frames are not stored"
            )
        if pipeline.stalled:
            return (
                f"error: processing stalled (a frame took more than {self.frame_timeout:g} s); "
                "the frames from then on are stored raw, without masks"
            )
        if error:
            return f"error: acquisition failed: {error}"
        if pipeline.wrong_shape is not None:
            return f"error: {pipeline.wrong_shape}; {pipeline.wrong_shape_lost} frames counted lost"
        if pipeline.faults:
            return (
                f"error: processing failed on {pipeline.faults} frames ({pipeline.first_fault});"
                " they are stored raw"
            )
        failed = self._errors.failed_moves
        if failed:
            return (
                f"error: {len(failed)} event setting(s) failed (a stage move, channel or "
                f"exposure); those frames were taken as the hardware stood ({failed[0]})"
            )
        expected = self.expected_frames()
        if metrics.frames_in < expected:
            if self._interrupted.is_set():
                return "interrupted"
            messages = self._errors.causes[:1] or self._errors.messages[-1:]
            detail = f" ({messages[0]})" if messages else ""
            return f"error: camera delivered {metrics.frames_in} of {expected} frames{detail}"
        return "complete"  # every frame was captured (a late Ctrl-C only hurried the writing)


def _model_meta(engine: Any, name: str | Path) -> dict[str, Any]:
    """What the store records of the U-Net an engine runs (``name``: as given, or a folder)."""
    config = engine.model.config
    return {
        "name": str(name),
        "config_name": engine.model.name,
        "format": config.get("format"),
        "version": str(config.get("weights_sha256", ""))[:12],  # the weights' checksum
        "weights_sha256": config.get("weights_sha256"),
        "backend": engine.backend,
    }
