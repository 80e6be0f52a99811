"""Run a pymmcore-plus MDA through an :class:`MDAHandler` into a store: :func:`stream`."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from livefocus._signals import on_stop
from livefocus._vocab import MASK_MODES, Device, MaskMode, Policy
from livefocus.depth import ReconstructSettings
from livefocus.stream._events import StackPlanner, planned
from livefocus.stream.follow import FocusFollower
from livefocus.stream.handler import DEFAULT_FRAME_TIMEOUT_S, MDAHandler, StreamReport
from livefocus.stream.sequence import sequence_layout, z_sequence
from livefocus.stream.skip import PlaneSkipper, check_skip
from livefocus.stream.types import FrameResult

__all__ = ["MASK_MODES", "MIN_FPS", "StreamReport", "sequence_layout", "stream", "z_sequence"]

#: The slowest camera pace a run takes (``fps``): a frame every 1000 s. Slower is a mistake
#: (``--fps 1e-9`` never ended), and a time lapse's waits go in its sequence instead.
MIN_FPS = 1e-3


def _frame_dtype(core: Any) -> np.dtype[Any]:
    depth = int(core.getBytesPerPixel())
    return np.dtype({1: np.uint8, 2: np.uint16}.get(depth, np.uint32))


def stream(
    core: Any,
    sequence: Any,
    *,
    out: str | Path | None,
    settings: ReconstructSettings | None = None,
    mask: MaskMode | None = None,
    model: str | None = None,
    device: Device = "cpu",
    queue_size: int = 8,
    policy: Policy = "block",
    on_result: Callable[[FrameResult], None] | None = None,
    overwrite: bool = False,
    fps: float | None = None,
    meta: dict[str, Any] | None = None,
    frame_timeout: float = DEFAULT_FRAME_TIMEOUT_S,
    calibrate: str | Path | None = None,
    calibrate_seconds: float = 60.0,
    handler: Callable[[MDAHandler], None] | None = None,
    follow_drift: bool = False,
    follow_wait_s: float = 10.0,
    follow_xy: bool = False,
    skip_planes: bool = False,
    skip_margin: int = 2,
    skip_full_every: int = 10,
) -> StreamReport:
    """Acquire ``sequence`` on ``core`` and segment every frame online into a store.

    A thin wrapper over :class:`MDAHandler`: it checks everything before the acquisition
    starts, connects the handler on the acquisition thread (so that the ``block`` policy holds
    the camera back), makes Ctrl-C cancel the MDA cleanly, and returns the report.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded pymmcore-plus core.
    sequence : useq.MDASequence
        Must have a Z plan; may have time points, positions and channels.
    out : str or Path or None
        OME-Zarr store to write (None: process without writing).
    settings, mask, model, device, queue_size, policy, on_result, overwrite, meta, frame_timeout
    calibrate, calibrate_seconds
        As for :class:`MDAHandler`.
    fps : float, optional
        Pace the acquisition to at most this many frames per second (replay).
    handler : callable, optional
        Called with the :class:`MDAHandler` before the acquisition starts (a preview uses
        it to cancel the run with :meth:`MDAHandler.cancel_acquisition`).
    follow_drift : bool
        Follow the focus: from the third time point on, each stack's Z plan moves by the
        specimen's measured axial drift, extrapolated
        (:class:`~livefocus.stream.follow.FocusFollower`; the report's and the store's
        ``focus_offsets`` say by how much). Needs at least 3 time points, and the time axis
        before the channel axis in the axis order.
    follow_wait_s : float
        With ``follow_drift`` or ``skip_planes``: the longest wait before a stack for the
        previous stack's drift or masks, beyond the stack's scheduled start.
    follow_xy : bool
        With ``follow_drift``: follow laterally too, moving the XY stage by the specimen's
        measured lateral drift (each stack's X/Y from the third on; the report's
        ``focus_offsets`` get ``x_offset_um`` and ``y_offset_um``). Needs an XY stage and the
        camera's pixel size; the image's axes are taken as the stage's unless the pixel
        configuration has an affine transform, which is then used.
    skip_planes : bool
        Skip planes: from each position's second stack on, acquire only the planes from
        ``skip_margin`` planes below to ``skip_margin`` above those where the previous
        stack's depth masks hold a pixel; every ``skip_full_every``-th stack is whole
        (:class:`~livefocus.stream.skip.PlaneSkipper`; the report's and the store's
        ``plane_skips`` say which planes each stack acquired). Needs at least 2 time points,
        and the time axis before the channel axis in the axis order.

    Returns
    -------
    StreamReport
        Camera errors, processing faults, store failures and interruptions do not raise: the
        store keeps every frame it could write and ``status`` says what happened.
    """
    layout = sequence_layout(sequence)  # a bad sequence fails here, before any set-up
    sequence = _around_focus(core, sequence)
    if follow_drift:
        _check_order(sequence, layout.time_points, "follow_drift", 3, _FIRST_DRIFT)
    to_stage = _to_stage(core) if follow_xy else None
    if follow_xy and not follow_drift:
        raise ValueError("follow_xy follows the drift laterally too: pass follow_drift=True")
    if skip_planes:
        _check_order(sequence, layout.time_points, "skip_planes", 2, "the first stack is whole")
        check_skip(skip_margin, skip_full_every)
    if (follow_drift or skip_planes) and not (math.isfinite(follow_wait_s) and follow_wait_s >= 0):
        raise ValueError(
            f"follow_wait_s must be a non-negative number of seconds, got {follow_wait_s!r}"
        )
    _check_channels(core, sequence)
    _check_travel(core, sequence)
    _check_xy_travel(core, sequence)
    if fps is not None and not (math.isfinite(fps) and fps >= MIN_FPS):
        raise ValueError(
            f"fps must be a number of frames per second of at least {MIN_FPS:g} (a frame every "
            f"{1 / MIN_FPS:g} s), got {fps!r}"
        )
    run = MDAHandler(
        out,
        settings=settings,
        mask=mask,
        model=model,
        device=device,
        queue_size=queue_size,
        policy=policy,
        on_result=on_result,
        overwrite=overwrite,
        meta=meta,
        frame_timeout=frame_timeout,
        core=core,
        calibrate=calibrate,
        calibrate_seconds=calibrate_seconds,
    )
    pixel = float(core.getPixelSizeUm() or 0.0) or None
    shape = (int(core.getImageHeight()), int(core.getImageWidth()))
    events: Iterable[Any] = sequence
    if fps is not None:
        events = [e.model_copy(update={"min_start_time": i / fps}) for i, e in enumerate(sequence)]
    # a stack may still be one hardware-triggered sequence (the engine looks one event ahead:
    # given one stack at a time, it cannot take the next before this one is done)
    combine = getattr(getattr(core.mda, "engine", None), "event_iterator", None)

    def cancelled() -> bool:
        return run.interrupted or _mda_cancelled(core)

    planners: list[StackPlanner] = []
    if skip_planes:  # first: it picks the plan's planes, which the follower then moves
        planners.append(
            PlaneSkipper(
                run.stacks_since,
                margin=skip_margin,
                full_every=skip_full_every,
                wait_s=follow_wait_s,
                cancelled=cancelled,
                on_skip=run.note_plane_skip,
                end_stacks=run.end_stacks,
            )
        )
    if follow_drift:
        planners.append(
            FocusFollower(
                run.drift_since,
                wait_s=follow_wait_s,
                limits=_travel(core),
                cancelled=cancelled,
                on_offset=run.note_focus_offset,
                end_stacks=run.end_stacks,
                to_stage=to_stage,
                xy_origin=lambda: _xy(core),
                xy_limits=_xy_travel(core),
            )
        )
    if planners:
        events = planned(events, planners, combine)
    error: str | None = None
    # from the store's creation on (a Ctrl-C then only stops the run: the store is whole and
    # says it was interrupted), also while the queued frames are written
    with _ctrl_c_cancels(run):
        run.prepare(sequence, shape=shape, dtype=_frame_dtype(core), pixel_size=pixel)
        if handler is not None:
            handler(run)
        try:
            if not run.interrupted:  # a Ctrl-C before the first frame: none is acquired
                with _connected(core, run), _camera_thread_errors(run), _paced(core, fps):
                    core.mda.run(events)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        return run.finish(error)


@contextmanager
def _paced(core: Any, fps: float | None) -> Iterator[None]:
    """With ``fps``, frames one event at a time: a hardware-triggered sequence (which the
    engine makes of a Z stack on a sequenceable stage) would ignore the events' start times."""
    engine = getattr(core.mda, "engine", None)
    if fps is None or engine is None or not hasattr(engine, "use_hardware_sequencing"):
        yield
        return
    before = engine.use_hardware_sequencing
    engine.use_hardware_sequencing = False
    try:
        yield
    finally:
        engine.use_hardware_sequencing = before


class _Feed:
    """The handler's per-frame side: ``stream`` prepares and finishes the run itself."""

    def __init__(self, run: MDAHandler) -> None:
        self.frameReady = run.frameReady
        self.sequenceCanceled = run.sequenceCanceled


#: Why focus following needs a third time point.
_FIRST_DRIFT = "the first drift is known once the second stack is analysed"


def _check_order(sequence: Any, time_points: int, name: str, least: int, why: str) -> None:
    """Refuse a stack planner (``name``) on a sequence with under ``least`` time points, or
    whose channels each run their own time lapse."""
    if time_points < least:
        raise ValueError(f"{name} needs at least {least} time points ({why}), got {time_points}")
    order = "".join(getattr(sequence, "axis_order", "") or "")
    if getattr(sequence, "channels", ()) and "c" in order and order.index("c") < order.index("t"):
        raise ValueError(
            f"{name} needs the time axis before the channel axis (axis order {order!r}: "
            "each channel's time lapse would run on its own)"
        )


def _to_stage(core: Any) -> Any:
    """µm of XY stage per image pixel (2 x 2) for following laterally: the pixel
    configuration's affine transform when it has one, else the pixel size on the diagonal
    (the camera's axes taken as the stage's); refuses a core without an XY stage or a pixel
    size."""
    if not str(core.getXYStageDevice() or ""):
        raise ValueError("follow_xy needs an XY stage: the configuration sets none")
    pixel = float(core.getPixelSizeUm() or 0.0)
    if not (math.isfinite(pixel) and pixel > 0):
        raise ValueError("follow_xy needs the camera's pixel size: the configuration sets none")
    a = [float(v) for v in core.getPixelSizeAffine()]
    if len(a) != 6 or a == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]:  # none set (the core's default)
        return [[pixel, 0.0], [0.0, pixel]]
    det = a[0] * a[4] - a[1] * a[3]
    if not (math.isfinite(det) and abs(det) > 1e-12):
        raise ValueError(
            f"follow_xy: the pixel configuration's affine transform {tuple(a)} is not invertible"
        )
    return [[a[0], a[1]], [a[3], a[4]]]


def _xy(core: Any) -> tuple[float, float]:
    """The XY stage's position (µm)."""
    x, y = core.getXYPosition()
    return float(x), float(y)


def _mda_cancelled(core: Any) -> bool:
    """Whether the core's MDA was asked to stop (a GUI's stop button: ``core.mda.cancel()``)."""
    status = getattr(core.mda, "status", None)
    if status is None:
        return False
    phase = getattr(getattr(status, "phase", None), "name", "")
    return bool(getattr(status, "cancel_requested", False)) or phase == "FINISHING"


def _travel(core: Any) -> tuple[float, float] | None:
    """The focus stage's travel (µm), where the stage states it."""
    stage = core.getFocusDevice()
    try:
        return float(core.getProperty(stage, "LowerLimitUm")), float(
            core.getProperty(stage, "UpperLimitUm")
        )
    except Exception:  # a stage that does not state its travel
        return None


def _around_focus(core: Any, sequence: Any) -> Any:
    """``sequence`` with a relative Z plan anchored at the focus stage's current position
    wherever a stage position names no Z (or there is none): useq runs such a plan around
    Z = 0, where a microscopist means the current focus."""
    import useq

    stage = core.getFocusDevice()
    if sequence.z_plan is None or not sequence.z_plan.is_relative or not stage:
        return sequence
    positions = list(sequence.stage_positions) or [useq.Position()]
    if all(p.z is not None for p in positions):
        return sequence
    here = float(core.getPosition(stage))
    anchored = [p if p.z is not None else p.model_copy(update={"z": here}) for p in positions]
    return sequence.replace(stage_positions=anchored)


def _check_travel(core: Any, sequence: Any) -> None:
    """Refuse a Z plan beyond the focus stage's travel, where the stage states it (the
    ``LowerLimitUm`` and ``UpperLimitUm`` of the simulated stage), before the store exists:
    the run would fail at its first move, after ``overwrite`` removed the old store."""
    travel = _travel(core)
    if travel is None:  # a stage that does not state its travel: it judges each move itself
        return
    (lo, hi), stage = travel, core.getFocusDevice()
    offsets = [float(v) for v in sequence.z_plan]
    # a relative plan runs around each position's Z, as useq gives it (0 where none)
    bases = [0.0]
    if sequence.z_plan.is_relative:
        bases = [0.0 if p.z is None else float(p.z) for p in sequence.stage_positions] or [0.0]
    zs = [b + o for b in bases for o in offsets]
    if min(zs) < lo or max(zs) > hi:
        # around each position's z, or the focus it was given where it had none: said, as
        # either can be the cause
        around = ", ".join(f"{b:g}" for b in sorted(set(bases)))
        raise ValueError(
            f"z_range reaches {min(zs):g} to {max(zs):g} µm around Z = {around} µm (the "
            "positions' z, or the current focus), beyond the travel of focus stage "
            f"{stage!r} ({lo:g} to {hi:g} µm)"
        )


def _xy_travel(core: Any) -> tuple[float, float] | None:
    """The XY stage's travel on each axis (µm) where it states it (the simulated stage's
    ``LimitUm``), else None."""
    stage = str(core.getXYStageDevice() or "")
    if not stage or not core.hasProperty(stage, "LimitUm"):
        return None
    limit = float(core.getProperty(stage, "LimitUm"))
    return (-limit, limit)


def _check_xy_travel(core: Any, sequence: Any) -> None:
    """Refuse stage positions beyond the XY stage's travel, where it states it, before the
    store exists."""
    travel = _xy_travel(core)
    if travel is None:
        return
    stage, limit = str(core.getXYStageDevice()), travel[1]
    for p in sequence.stage_positions:
        for value in (p.x, p.y):
            if value is not None and abs(float(value)) > limit:
                raise ValueError(
                    f"positions: ({p.x}, {p.y}) µm lies beyond the travel of XY stage "
                    f"{stage!r} (±{limit:g} µm)"
                )


def _check_channels(core: Any, sequence: Any) -> None:
    """Every channel of ``sequence`` is a preset of ``core`` (checked before the store exists)."""
    for channel in sequence.channels:
        group, config = str(channel.group), str(channel.config)
        if group not in core.getAvailableConfigGroups():
            raise ValueError(
                f"channels: the core has no configuration group {group!r} (groups: "
                f"{', '.join(core.getAvailableConfigGroups()) or 'none'})"
            )
        if config not in core.getAvailableConfigs(group):
            raise ValueError(
                f"channels: group {group!r} has no preset {config!r} (presets: "
                f"{', '.join(core.getAvailableConfigs(group)) or 'none'})"
            )


@contextmanager
def _connected(core: Any, run: MDAHandler) -> Iterator[None]:
    """Connect ``run`` to the core's MDA signals, called on the emitting (acquisition) thread.

    pymmcore-plus's public ``mda_listeners_connected`` either relays to another thread or uses
    Qt's default connection (which, for a Qt signal backend, queues to the GUI thread); the
    direct connection keeps the hand-off on the acquisition thread whatever the backend, so
    nothing needs ``PYMM_SIGNALS_BACKEND``.
    """
    from pymmcore_plus._util import listeners_connected

    with listeners_connected(core.mda.events, _Feed(run), qt_connection_type="DirectConnection"):
        yield


@contextmanager
def _camera_thread_errors(run: MDAHandler) -> Iterator[None]:
    """Record errors raised in pymmcore-plus's own acquisition thread (hardware sequences)."""
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if type(args.thread).__name__ == "AcquisitionThread":
            run.note_error(f"{args.exc_type.__name__}: {args.exc_value}")
        else:
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


@contextmanager
def _ctrl_c_cancels(run: MDAHandler) -> Iterator[None]:
    """On the main thread, make Ctrl-C (and SIGTERM, SIGHUP: :mod:`livefocus._signals`) cancel
    the MDA cleanly, once or many times.

    A KeyboardInterrupt raised at an arbitrary point of the acquisition loop could leave
    pymmcore-plus or the queues in a half-done state; cancelling lets the runner stop between
    events, and the handler then writes every frame already captured.
    """
    with on_stop(run.cancel_acquisition):
        yield
