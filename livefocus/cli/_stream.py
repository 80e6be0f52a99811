"""``livefocus demo``, ``replay`` and ``acquire``: online segmentation during acquisition.

The options the three commands share are declared once (the ``Annotated`` aliases below) and
travel as one :class:`StreamOptions`.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from livefocus._output import check_file_output, check_output
from livefocus._vocab import MEASURES
from livefocus.cli._app import app
from livefocus.cli._focus import CHANNEL_HELP, POSITION_HELP, TIME_POINT_HELP, _check_step

NoPreview = Annotated[bool, typer.Option("--no-preview", help="Never open the preview window.")]
Screenshot = Annotated[
    Path | None, typer.Option(help="Save a PNG of the preview window at the end of the run.")
]
DeviceOpt = Annotated[str, typer.Option(help="Focus kernels on 'cpu' (numpy) or 'gpu' (CuPy).")]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        help="U-Net for 'model' masks: a shipped name, a folder, or none "
        "(default: none; depth with --calibrate)."
    ),
]
MaskOpt = Annotated[
    str | None, typer.Option(help="Primary mask: depth, otsu or model (default: model if --model).")
]
MeasureOpt = Annotated[
    str,
    typer.Option(
        help=f"Focus measure: {', '.join(MEASURES)}; several joined by '+' (std+tenengrad) "
        "are fused (geometric mean)."
    ),
]
WindowOpt = Annotated[
    int | None, typer.Option(help="Window size in pixels (default: chosen for the frame size).")
]
StridesOpt = Annotated[
    str | None, typer.Option(help="Comma-separated strides (default: chosen for the window).")
]
PaintOpt = Annotated[
    str | None, typer.Option(help="'sum' (the paper) or 'mean' (default: the reconstruction's).")
]
DofOpt = Annotated[float | None, typer.Option(help="Depth of field in µm (default: 2 z steps).")]
MinProbabilityOpt = Annotated[
    float | None,
    typer.Option(
        help="Least calibrated probability a depth needs to stay in the depth map "
        "(default 0.7; 0 keeps every confident peak's depth: denser maps of thin filaments)."
    ),
]
MinAreaOpt = Annotated[
    int | None,
    typer.Option(
        help="Least size in pixels of a region of a plane's final depth mask (default 10; 0 "
        "keeps every speck: isolated sub-resolution beads)."
    ),
]
GainOpt = Annotated[
    float | None,
    typer.Option(help="Camera gain in ADU per photoelectron (camera model; needs --read-noise)."),
]
OffsetOpt = Annotated[
    float | None,
    typer.Option(help="Camera offset (dark level) in ADU (camera model; needs --read-noise)."),
]
ReadNoiseOpt = Annotated[
    float | None,
    typer.Option(
        help="Camera read noise in electrons rms: the noise that focus peaks and object "
        "support are judged against then comes from this camera model (with --gain, default "
        "1, and --offset, default 0) instead of being estimated from each frame (demo: parts "
        "not given come from its simulated camera)."
    ),
]
QueueOpt = Annotated[int, typer.Option("--queue-size", help="Bound of the frame queue.")]
PolicyOpt = Annotated[
    str, typer.Option(help="Full queue: 'block' (the camera waits, nothing lost) or 'drop'.")
]
TimeoutOpt = Annotated[
    float,
    typer.Option(help="Seconds one frame may take to process; beyond, the run stops cleanly."),
]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace an existing --out that livefocus wrote.")]
CalibrateOpt = Annotated[
    Path | None,
    typer.Option(
        help="Self-calibrate the U-Net (--model, default depth) on the first stack's rule masks "
        "in the background; write the model folder here and use it for the following stacks."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
FollowOpt = Annotated[
    bool,
    typer.Option(
        "--follow-drift",
        help="Follow the focus in a time lapse: from the third stack on, move each stack's "
        "planes by the specimen's measured axial drift.",
    ),
]
FollowXYOpt = Annotated[
    bool,
    typer.Option(
        "--follow-xy",
        help="With --follow-drift: follow laterally too, moving the XY stage by the specimen's "
        "measured lateral drift (the image's axes taken as the stage's unless the pixel "
        "configuration has an affine transform).",
    ),
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-planes",
        help="Skip planes in a time lapse: from the second stack on, acquire only the planes "
        "near those where the stack before found anything in focus.",
    ),
]
SkipMarginOpt = Annotated[
    int,
    typer.Option(help="With --skip-planes: planes kept beyond the lowest and highest in focus."),
]
SkipFullEveryOpt = Annotated[
    int,
    typer.Option(help="With --skip-planes: every Nth stack (t a multiple of N) is whole."),
]


@dataclass(frozen=True)
class StreamOptions:
    """The options of ``demo``, ``replay`` and ``acquire`` that go to the pipeline."""

    no_preview: bool = False
    screenshot: Path | None = None
    device: str = "cpu"
    model: str | None = None
    mask: str | None = None
    measure: str = "std"
    window: int | None = None
    strides: str | None = None
    paint: str | None = None
    dof: float | None = None
    min_probability: float | None = None
    min_area: int | None = None
    gain: float | None = None
    offset: float | None = None
    read_noise: float | None = None
    queue_size: int = 8
    policy: str = "block"
    frame_timeout: float = 60.0
    calibrate: Path | None = None
    follow_drift: bool = False
    follow_xy: bool = False
    skip_planes: bool = False
    skip_margin: int = 2
    skip_full_every: int = 10
    overwrite: bool = False
    as_json: bool = False

    @classmethod
    def pick(cls, values: dict[str, Any]) -> StreamOptions:
        """The options among a command's arguments (``locals()``)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    @property
    def model_name(self) -> str | None:
        """The U-Net to load: None for none; ``depth`` when ``--calibrate`` names no model."""
        if self.model is None:
            return "depth" if self.calibrate is not None else None
        if self.model.lower() in ("", "none"):
            if self.calibrate is not None:
                raise ValueError(
                    "--calibrate fine-tunes a U-Net, and --model none names none: "
                    "pass --model NAME|DIR, or leave --model out for depth"
                )
            return None
        return self.model

    def settings(self, shape: tuple[int, int]) -> Any:
        """Reconstruction settings for frames of ``shape``."""
        from livefocus.cli._focus import _parse_strides
        from livefocus.depth import ReconstructSettings

        first, *fused = self.measure.split("+")
        if "+" in self.measure and "" in (first, *fused):
            raise ValueError(f"measure {self.measure!r}: a measure name is missing around '+'")
        overrides: dict[str, Any] = {"measure": first, "fuse": tuple(fused)}
        if self.window is not None:
            overrides["window"] = self.window
        if self.strides is not None:
            overrides["strides"] = _parse_strides(self.strides)
        if self.paint is not None:
            overrides["paint"] = self.paint
        if self.dof is not None:
            _check_step(self.dof, "--dof")
            overrides["depth_of_field"] = self.dof
        if self.min_probability is not None:
            overrides["min_probability"] = self.min_probability
        if self.min_area is not None:
            overrides["min_area"] = self.min_area
        overrides.update(self.camera_model())
        try:
            return ReconstructSettings.for_frame(shape, **overrides)
        except ValueError as exc:
            if str(exc).startswith("fuse"):  # the measures after '+' of --measure
                why = str(exc).removeprefix("fuse: ")
                raise ValueError(f"measure {self.measure!r}: {why}") from None
            raise

    def camera_model(self) -> dict[str, float]:
        """``gain``, ``offset`` and ``read_noise`` (ADU) of the settings; empty without
        ``--read-noise`` (the noise is then estimated from each frame)."""
        if self.read_noise is None:
            for name, value in (("gain", self.gain), ("offset", self.offset)):
                if value is not None:
                    raise ValueError(
                        f"--{name} is part of a camera model, which needs --read-noise too "
                        "(electrons rms)"
                    )
            return {}
        gain = 1.0 if self.gain is None else float(self.gain)
        offset = 0.0 if self.offset is None else float(self.offset)
        noise = float(self.read_noise)
        if not math.isfinite(gain) or gain <= 0:
            raise ValueError(f"--gain must be a positive number of ADU per electron, got {gain!r}")
        if not math.isfinite(offset):
            raise ValueError(f"--offset must be a finite number of ADU, got {offset!r}")
        if not math.isfinite(noise) or noise < 0:
            raise ValueError(
                f"--read-noise must be a non-negative number of electrons, got {noise!r}"
            )
        if not math.isfinite(noise * gain):
            raise ValueError(
                f"--read-noise ({noise:g} e-) times --gain ({gain:g} ADU/e-) is beyond a float"
            )
        # the settings take the read noise in ADU, as the frames are
        return {"gain": gain, "offset": offset, "read_noise": noise * gain}


def _execute(
    core: Any,
    sequence: Any,
    options: StreamOptions,
    *,
    title: str,
    out: Path | None,
    meta: dict[str, Any],
    fps: float | None = None,
) -> Any:
    """Stream ``sequence`` on ``core`` with the preview when asked and possible, else headless."""
    from livefocus.stream import MDAHandler, stream
    from livefocus.stream.skip import check_skip

    shape = (int(core.getImageHeight()), int(core.getImageWidth()))
    options.settings(shape)  # bad options: one line, before a window opens or a store is made
    _ = options.model_name  # likewise: --model none with --calibrate
    check_skip(options.skip_margin, options.skip_full_every)  # with or without --skip-planes
    runs: list[MDAHandler] = []

    def job(on_result: Callable[[Any], None] | None) -> Any:
        with _summarised():
            return _job(on_result)

    def _job(on_result: Callable[[Any], None] | None) -> Any:
        return stream(
            core,
            sequence,
            out=out,
            settings=options.settings(shape),
            mask=options.mask,  # type: ignore[arg-type]  # checked by the handler
            model=options.model_name,
            device=options.device,  # type: ignore[arg-type]
            queue_size=options.queue_size,
            policy=options.policy,  # type: ignore[arg-type]
            on_result=on_result,
            overwrite=options.overwrite,
            fps=fps,
            meta=meta,
            frame_timeout=options.frame_timeout,
            calibrate=options.calibrate,
            handler=runs.append,
            follow_drift=options.follow_drift,
            follow_xy=options.follow_xy,
            skip_planes=options.skip_planes,
            skip_margin=options.skip_margin,
            skip_full_every=options.skip_full_every,
        )

    preview = not options.no_preview
    if options.screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        preview = True
    if preview:
        from livefocus.preview import display_available, run_with_preview

        if display_available():
            keep_open = (
                options.screenshot is None and os.environ.get("QT_QPA_PLATFORM") != "offscreen"
            )

            def interrupt() -> None:  # Ctrl-C in the GUI: the one cancel path
                for run in runs:
                    run.cancel_acquisition()

            return run_with_preview(
                job,
                title=title,
                screenshot=options.screenshot,
                keep_open=keep_open,
                on_interrupt=interrupt,
            )
    return job(None)


#: Drift lines the summary prints at most (``--json`` gives them all).
_DRIFT_LINES = 5


def _drift_text(entry: dict[str, Any]) -> str:
    """One stack's measured drift in words."""
    z = "z not measured" if entry["z_um"] is None else f"z {entry['z_um']:+.2f} µm"
    if entry["x_um"] is None:  # no pixel size from the camera
        x, y = f"{entry['x_px']:+.1f} px", f"{entry['y_px']:+.1f} px"
    else:
        x, y = f"{entry['x_um']:+.2f} µm", f"{entry['y_um']:+.2f} µm"
    from livefocus.stream.follow import MIN_MATCH, MIN_SHARED

    match, overlap = entry.get("match"), entry.get("overlap")
    seen = ""
    if match is None or match < MIN_MATCH:
        why = "no common structure" if match is None else f"images match {match:.2f}"
        seen = f" ({why}: lateral shift not trusted)"
    elif overlap is not None and overlap < MIN_SHARED:
        seen = f" (images share {overlap:.0%} of the field: lateral shift not trusted)"
    return f"t {entry['since_t']} -> {entry['t']}: x {x}, y {y}, {z}{seen}"


def _follow_text(entry: dict[str, Any]) -> str:
    """One stack's move to follow the focus in words."""
    how = "" if entry["measured"] else " (extrapolated: no drift measured in time)"
    xy = ""
    if "x_offset_um" in entry:
        xy = f", stage moved x {entry['x_offset_um']:+.2f} µm, y {entry['y_offset_um']:+.2f} µm"
    held = entry.get("limited") or []
    if held:
        how += f" (held back by {', '.join(held)})"
    return f"t {entry['t']}: planes moved {entry['offset_um']:+.2f} µm{xy}{how}"


def _skip_text(entry: dict[str, Any]) -> str:
    """One stack's planes acquired, when planes are skipped, in words."""
    return (
        f"t {entry['t']}: planes {entry['first']}-{entry['last']} acquired, "
        f"{entry['skipped']} frame{'' if entry['skipped'] == 1 else 's'} skipped ({entry['why']})"
    )


def _echo_some(
    label: str, entries: list[dict[str, Any]], text: Callable[[dict[str, Any]], str]
) -> None:
    """The first ``_DRIFT_LINES`` entries, one line each, and how many more ``--json`` has;
    with several positions each line names its own (p 0 too), else none does."""
    several = any(entry.get("p") for entry in entries)
    for entry in entries[:_DRIFT_LINES]:
        where = f"p {entry['p']} " if several else ""
        typer.echo(f"{label:<8} {where}{text(entry)}")
    if len(entries) > _DRIFT_LINES:
        typer.echo(f"{label:<8} ... {len(entries) - _DRIFT_LINES} more (--json)")


def _failure(report: Any) -> str:
    """One line for stderr on a run that did not store every frame it asked for."""
    m = report.metrics
    stored = f"{m.frames_out} of {report.expected} frames stored"
    if report.status == "interrupted":
        return f"interrupted: the run was stopped ({stored})"
    if report.status == "complete":  # every frame came, some were dropped (--policy drop)
        return f"error: {stored}, {m.frames_lost} lost (--policy drop)"
    return f"error: {report.status.removeprefix('error: ')} ({stored})"


def _summary(report: Any, extra: dict[str, Any], as_json: bool) -> None:
    m = report.metrics
    data = {
        "store": str(report.path) if report.path else None,
        "status": report.status,
        "frames": {"expected": report.expected, "in": m.frames_in, "out": m.frames_out},
        "fps": round(m.fps, 1),
        "latency_ms": {"p50": round(m.latency_p50 * 1e3, 1), "p99": round(m.latency_p99 * 1e3, 1)},
        "lost": m.frames_lost,
        "blocked_s": round(m.blocked, 3),
        "masks": list(report.mask_modes),
        **extra,
    }
    if report.calibration is not None:
        data["calibration"] = report.calibration
        data["engine_switches"] = report.engine_switches
    if report.drift:
        data["drift"] = report.drift
    if report.focus_offsets:
        data["focus_offsets"] = report.focus_offsets
    if report.plane_skips:
        data["plane_skips"] = report.plane_skips
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(f"store    {data['store']}  ({report.status})")
        typer.echo(
            f"frames   {m.frames_out}/{report.expected} written, {m.frames_lost} lost, "
            f"{m.fps:.1f} frames/s, latency p50 {m.latency_p50 * 1e3:.1f} ms "
            f"p99 {m.latency_p99 * 1e3:.1f} ms, acquisition blocked {m.blocked:.2f} s"
        )
        if report.calibration is not None:
            cal = report.calibration
            after = report.engine_switches[0]["after_frames"] if report.engine_switches else None
            if after is None:
                when = "no switch during the run"
            elif after >= m.frames_in:  # ready only as the run ended: no frame used it
                when = f"ready after the last frame ({after}): no frame used it"
            else:
                when = f"engine switched after {after} frames"
            text = (
                cal.get("error")
                or cal.get("not_run")
                or f"{cal['model']} in {cal['seconds']:.1f} s, {when}"
            )
            typer.echo(f"calibration  {text}")
        _echo_some("drift", report.drift, _drift_text)
        _echo_some("follow", report.focus_offsets, _follow_text)
        _echo_some("skip", report.plane_skips, _skip_text)
        if "noise" in extra:
            typer.echo(f"noise    {extra['noise']}")
        if "iou_vs_truth" in extra and not extra["iou_vs_truth"] and m.frames_lost:
            typer.echo(f"IoU vs truth  not scored: {m.frames_lost} frames lost")
        for name, scores in extra.get("iou_vs_truth", {}).items():
            # a precision of 1 at an IoU of 0 is that of an empty mask (0/0, scored as 1)
            empty = scores["iou"] == 0 and scores["precision"] == 1
            precision = "n/a: nothing marked" if empty else f"{scores['precision']:.3f}"
            typer.echo(
                f"IoU vs truth  {name:<6} {scores['iou']:.3f}  "
                f"(precision {precision}, recall {scores['recall']:.3f})"
            )
        for name, ious in extra.get("iou_by_stack", {}).items():
            typer.echo(f"IoU by stack  {name:<6} " + " ".join(f"{v:.3f}" for v in ious))
    if not report.ok:  # the run's outcome on stderr too, where a script looks for it
        typer.secho(_failure(report), fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


def _parse_drift(text: str | None) -> tuple[float, float, float] | None:
    """``--drift 'x,y,z'``: three speeds in µm/s (None: no drift)."""
    if text is None:
        return None
    from livefocus.devices._specimen import MAX_DRIFT_UM_PER_S as most

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) and abs(v) <= most for v in values):
        raise ValueError(
            f"--drift must be three speeds 'x,y,z' in µm/s within ±{most:g}, got {text!r}"
        )
    return (values[0], values[1], values[2])


def _noise(options: StreamOptions) -> str:
    """Where the noise that peaks and support are judged against comes from, in words."""
    if options.read_noise is None:
        return "estimated from each frame"
    model = options.camera_model()
    return (
        f"camera model: gain {model['gain']:g} ADU/e-, offset {model['offset']:g} ADU, "
        f"read noise {options.read_noise:g} e-"
    )


def _check_plan(z_range: float, step: float) -> None:
    """A Z plan's --step and --z-range in µm, before anything is made (1e-300 or 1e300 would
    end in a traceback deep in the sequence)."""
    _check_step(step, "--step")
    if not (math.isfinite(z_range) and 0 < z_range <= 1e6):
        raise ValueError(
            f"--z-range must be a positive number of µm, at most 1e+06, got {z_range!r}"
        )
    if step > z_range:  # one plane: no focus curve, nothing to reconstruct
        raise ValueError(
            f"--step ({step:g} µm) is larger than --z-range ({z_range:g} µm): the stack would "
            "have a single plane"
        )


def _refuse_existing(out: Path, options: StreamOptions, inputs: list[Path] | None = None) -> None:
    """Refuse, before any work, an existing --out without --overwrite, and a --screenshot
    that is an input (the stack, --model's or --calibrate's folder), lies inside one or
    inside --out, or is a file livefocus did not write."""
    # the store's checks (an input, what livefocus did not write, an existing store without
    # --overwrite, a missing or read-only folder), before a window opens
    folders = [Path(p) for p in (options.model, options.calibrate) if p and Path(p).is_dir()]
    check_output(
        out,
        overwrite=options.overwrite,
        inputs=[*(inputs or []), *folders],
        name="--out",
        kind="store",
    )
    if options.screenshot is not None:
        made = [out, *([options.calibrate] if options.calibrate is not None else [])]
        check_file_output(
            options.screenshot,
            name="--screenshot",
            inputs=[*(inputs or []), *folders],
            within=made,
            suffixes=[".png"],
        )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Store.")] = Path(
        "livefocus-demo.ome.zarr"
    ),
    size: Annotated[int, typer.Option(help="Camera frame size (pixels, square).")] = 512,
    z_range: Annotated[
        float, typer.Option(help="Z-stack range in µm, centred on the specimen.")
    ] = 40.0,
    step: Annotated[float, typer.Option(help="Z step in µm.")] = 2.0,
    time_points: Annotated[int, typer.Option(help="Number of Z-stacks (time points).")] = 1,
    contrast: Annotated[str, typer.Option(help="'brightfield' or 'fluorescence'.")] = "brightfield",
    seed: Annotated[int, typer.Option(help="Specimen seed.")] = 0,
    no_preview: NoPreview = False,
    screenshot: Screenshot = None,
    device: DeviceOpt = "cpu",
    model: ModelOpt = None,
    mask: MaskOpt = None,
    measure: MeasureOpt = "std",
    window: WindowOpt = None,
    strides: StridesOpt = None,
    paint: PaintOpt = None,
    gain: GainOpt = None,
    offset: OffsetOpt = None,
    read_noise: ReadNoiseOpt = None,
    estimate_noise: Annotated[
        bool,
        typer.Option(
            "--estimate-noise",
            help="Estimate the noise from each frame instead of the simulated camera's model.",
        ),
    ] = False,
    queue_size: QueueOpt = 8,
    policy: PolicyOpt = "block",
    frame_timeout: TimeoutOpt = 60.0,
    calibrate: CalibrateOpt = None,
    drift: Annotated[
        str | None,
        typer.Option(
            help="Make the specimen drift at 'x,y,z' µm/s (e.g. '0.5,0,1': +z upwards); the "
            "summary and the store give the drift measured from each stack to the next."
        ),
    ] = None,
    follow_drift: FollowOpt = False,
    follow_xy: FollowXYOpt = False,
    skip_planes: SkipOpt = False,
    skip_margin: SkipMarginOpt = 2,
    skip_full_every: SkipFullEveryOpt = 10,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Segment a simulated specimen on Micro-Manager's demo config: no hardware, no download.

    Writes the store, shows the preview when a display is present, and prints frames, frames/s,
    latency, frames lost and the IoU of each mask mode against the simulator's exact truth.
    """
    import numpy as np

    from livefocus.devices import demo_camera, demo_core, demo_truth
    from livefocus.devices._specimen import MAX_SENSOR_PX
    from livefocus.sim import MIN_FIELD_PX, mask_scores
    from livefocus.stream import open_store, z_sequence

    options = StreamOptions.pick(locals())
    _check_plan(z_range, step)
    speeds = _parse_drift(drift)
    if size < MIN_FIELD_PX:
        raise ValueError(f"size must be at least {MIN_FIELD_PX} pixels, got {size}")
    if size > MAX_SENSOR_PX:
        raise ValueError(
            f"size must be at most {MAX_SENSOR_PX} pixels (the simulated camera), got {size}"
        )
    _refuse_existing(out, options)
    sequence = z_sequence({"range": z_range, "step": step}, time_points=time_points)
    parts = {"--gain": gain, "--offset": offset, "--read-noise": read_noise}
    given = [name for name, value in parts.items() if value is not None]
    if estimate_noise and given:
        raise ValueError(f"--estimate-noise excludes a camera model ({', '.join(given)})")
    core = demo_core(seed=seed, contrast=contrast, shape=(size, size))
    if speeds is not None:
        label = demo_camera(core).get_label()
        for axis, speed in zip("XYZ", speeds, strict=True):
            core.setProperty(label, f"Drift{axis}UmPerS", speed)
    if not estimate_noise:
        # the simulated camera's own model (the demo knows it exactly); parts given replace it
        cam = demo_camera(core).camera_model
        options = replace(
            options,
            gain=cam.gain if gain is None else gain,
            offset=cam.offset if offset is None else offset,
            read_noise=cam.read_noise if read_noise is None else read_noise,
        )
    report = _execute(
        core,
        sequence,
        options,
        title="livefocus demo",
        out=out,
        meta={"source": "demo", "seed": seed, "contrast": contrast},
    )
    scores: dict[str, dict[str, float]] = {}
    by_stack: dict[str, list[float]] = {}  # the depth-mask IoU of each time point, by mode
    scored = speeds is None  # the truth of a drifting specimen changes during the stack
    if (
        scored
        and report.path is not None
        and report.status == "complete"
        and not report.metrics.frames_lost
    ):
        reader = open_store(report.path)
        zs = next(iter(report.z_positions.values()))
        truth = demo_truth(core, zs)
        for mode in report.mask_modes:
            found = np.asarray(reader.array(f"mask_{mode}")[0, 0]).astype(bool)
            scores[mode] = {k: round(v, 4) for k, v in mask_scores(found, truth).items()}
            if time_points > 1:  # the same specimen in every stack: each is scored
                by_stack[mode] = [
                    round(mask_scores(np.asarray(masks[0]).astype(bool), truth)["iou"], 4)
                    for masks in _stacks(reader.array(f"mask_{mode}"))
                ]
    extra: dict[str, Any] = {"noise": _noise(options), "iou_vs_truth": scores}
    if by_stack:
        extra["iou_by_stack"] = by_stack
    _summary(report, extra, as_json)


def _stacks(array: Any) -> Iterator[Any]:
    """The time points of a (T, C, Z, Y, X) store array, one at a time."""
    for t in range(array.shape[0]):
        yield array[t]


@app.command()
def replay(
    stack: Annotated[Path, typer.Argument(help="TIFF, .npy or (OME-)Zarr stack (Z, Y, X).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output OME-Zarr store.")] = None,
    fps: Annotated[
        float | None, typer.Option(help="Frames per second (default: as fast as possible).")
    ] = None,
    z_step: Annotated[
        float | None, typer.Option(help="Plane spacing in µm (default: from the file).")
    ] = None,
    pixel_size: Annotated[
        float | None,
        typer.Option(help="Pixel size in µm (default: from the file, else uncalibrated)."),
    ] = None,
    no_preview: NoPreview = False,
    screenshot: Screenshot = None,
    device: DeviceOpt = "cpu",
    model: ModelOpt = None,
    mask: MaskOpt = None,
    measure: MeasureOpt = "std",
    window: WindowOpt = None,
    strides: StridesOpt = None,
    paint: PaintOpt = None,
    dof: DofOpt = None,
    min_probability: MinProbabilityOpt = None,
    min_area: MinAreaOpt = None,
    gain: GainOpt = None,
    offset: OffsetOpt = None,
    read_noise: ReadNoiseOpt = None,
    queue_size: QueueOpt = 8,
    policy: PolicyOpt = "block",
    frame_timeout: TimeoutOpt = 60.0,
    calibrate: CalibrateOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    time_point: Annotated[int | None, typer.Option("--time-point", help=TIME_POINT_HELP)] = None,
    channel: Annotated[int | None, typer.Option("--channel", help=CHANNEL_HELP)] = None,
    position: Annotated[int | None, typer.Option("--position", help=POSITION_HELP)] = None,
) -> None:
    """Replay a saved stack as a live feed through the same pipeline.

    Also the way to segment a saved stack offline with the streaming masks. Default --out:
    STACK-live.ome.zarr in the current folder.
    """
    from livefocus.devices import replay_camera, replay_core
    from livefocus.stream import z_sequence

    options = StreamOptions.pick(locals())
    options.camera_model()  # bad values: one line before the stack is read
    _check_step(z_step, "--z-step")
    _check_step(pixel_size, "--pixel-size")
    target = out if out is not None else Path(f"{stack.name.split('.')[0]}-live.ome.zarr")
    _refuse_existing(target, options, [stack])
    core = replay_core(
        stack,
        z_step=z_step,
        pixel_size=pixel_size,
        time_point=time_point,
        channel=channel,
        position=position,
    )
    camera = replay_camera(core)
    step = float(camera.z_step)
    sequence = z_sequence({"absolute": [k * step for k in range(int(camera.frames.shape[0]))]})
    report = _execute(
        core,
        sequence,
        options,
        title="livefocus replay",
        out=target,
        fps=fps,
        meta={"source": "replay", "stack": str(stack)},
    )
    _summary(report, {"noise": _noise(options)}, as_json)


#: Farthest stage coordinate (µm) that ``--positions`` takes: 1 m, beyond any microscope stage.
_MAX_STAGE_UM = 1e6


def _positions(text: str | None) -> list[tuple[float, float, float | None]] | None:
    if not text:
        return None
    result: list[tuple[float, float, float | None]] = []
    parts = text.split(";")
    for part in parts:
        try:
            if not part.strip():
                raise ValueError
            values = [float(v) for v in part.split(",")]
        except ValueError:
            raise ValueError(
                f"--positions must be 'x,y[,z];x,y[,z]...' in µm, got {text!r}"
            ) from None
        if len(values) not in (2, 3) or not all(math.isfinite(v) for v in values):
            raise ValueError(
                f"--positions must be 'x,y[,z];x,y[,z]...' in µm (finite numbers), got {text!r}"
            )
        if any(abs(v) > _MAX_STAGE_UM for v in values):
            raise ValueError(
                f"--positions must lie within ±{_MAX_STAGE_UM:g} µm (1 m) of the origin, "
                f"got {text!r}"
            )
        result.append((values[0], values[1], values[2] if len(values) == 3 else None))
    return result


class _Failures(logging.Handler):
    """Collects the device failures pymmcore-plus logs (and only logs) while a configuration
    loads: a Python device whose initialisation raised."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        why = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            why = f"{why}: {record.exc_info[1]}"
        self.messages.append(" ".join(why.split()))


#: pymmcore-plus's warnings that the run's summary says in its own words (a Ctrl-C; a camera
#: that stopped early, with the reason it stopped): not echoed on the terminal too.
_SUMMARISED = ("MDA Canceled", "Unexpected number of images returned from sequence")


class _NotSummarised(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_SUMMARISED)


@contextmanager
def _summarised() -> Iterator[None]:
    """While a run streams, pymmcore-plus's terminal log leaves out :data:`_SUMMARISED` (its
    log file keeps them)."""
    drop = _NotSummarised()
    streams = _terminal_handlers()
    for h in streams:
        h.addFilter(drop)
    try:
        yield
    finally:
        for h in streams:
            h.removeFilter(drop)


def _terminal_handlers() -> list[logging.Handler]:
    """pymmcore-plus's handlers that print on the terminal (not its log file)."""
    return [
        h
        for h in logging.getLogger("pymmcore-plus").handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


@contextmanager
def _quiet_log() -> Iterator[list[str]]:
    """pymmcore-plus prints no traceback on the terminal meanwhile (its log file keeps its
    own); yields the device failures it logged, so that they are reported in one line."""
    failures = _Failures()
    # the Python devices' manager logs under the module name, the core under "pymmcore-plus"
    modules = logging.getLogger("pymmcore_plus")
    streams = _terminal_handlers()
    levels = [h.level for h in streams]
    propagate = modules.propagate
    modules.addHandler(failures)
    modules.propagate = False
    for h in streams:
        h.setLevel(logging.CRITICAL + 1)
    try:
        yield failures.messages
    finally:
        modules.removeHandler(failures)
        modules.propagate = propagate
        for h, level in zip(streams, levels, strict=True):
            h.setLevel(level)


def _load_config(config: Path) -> Any:
    import mm_test_adapters
    from pymmcore_plus import find_micromanager

    from livefocus.devices import config_folder, fit_travel_to_replay, new_core

    if not config.is_file():
        raise FileNotFoundError(f"--config {str(config)!r} is not a file")
    core = new_core()
    paths = [p for p in [find_micromanager()] if p] + [mm_test_adapters.device_adapter_path()]
    core.setDeviceAdapterSearchPaths([str(p) for p in paths])
    error = ""
    failed: list[str] = []
    try:
        with config_folder(config.resolve().parent), _quiet_log() as failed:
            core.loadSystemConfiguration(str(config))
    except Exception as exc:
        why = " ".join(str(exc).split())  # Micro-Manager's messages span lines: one line
        error = f"--config {str(config)!r} does not load: {why}"
    if not error and failed:  # a Python device that failed is only logged by pymmcore-plus
        error = f"--config {str(config)!r} does not load: {failed[0]}"
    if not error and not core.getCameraDevice():
        error = f"--config {str(config)!r} sets no camera (Core,Camera)"
    if not error and not core.getFocusDevice():
        error = f"--config {str(config)!r} sets no focus stage (Core,Focus) for Z"
    if not error:
        try:
            fit_travel_to_replay(core)  # a Z plan beyond a replayed stack: refused up front
        except Exception as exc:  # the stage refusing the narrowed travel
            error = " ".join(str(exc).split())
    if error:
        # Destroy the core now, outside the except block (whose exception refers to it):
        # a core whose configuration failed to load and that lives until interpreter exit
        # aborts the process there about half the time ("FATAL: exception not rethrown").
        del core
        gc.collect()
        raise ValueError(error)
    return core


@app.command()
def acquire(
    config: Annotated[Path, typer.Option("--config", help="Micro-Manager configuration (.cfg).")],
    z_range: Annotated[float, typer.Option(help="Z-stack range in µm around the current focus.")],
    step: Annotated[float, typer.Option(help="Z step in µm.")],
    positions: Annotated[
        str | None, typer.Option(help="Stage positions 'x,y[,z];x,y[,z]' (µm).")
    ] = None,
    time_points: Annotated[int, typer.Option(help="Number of time points.")] = 1,
    interval: Annotated[float, typer.Option(help="Seconds between time points.")] = 0.0,
    channel_group: Annotated[str, typer.Option(help="Config group of --channels.")] = "Channel",
    channels: Annotated[str | None, typer.Option(help="Comma-separated channel presets.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Store.")] = Path("livefocus.ome.zarr"),
    no_preview: NoPreview = False,
    screenshot: Screenshot = None,
    device: DeviceOpt = "cpu",
    model: ModelOpt = None,
    mask: MaskOpt = None,
    measure: MeasureOpt = "std",
    window: WindowOpt = None,
    strides: StridesOpt = None,
    paint: PaintOpt = None,
    dof: DofOpt = None,
    min_probability: MinProbabilityOpt = None,
    min_area: MinAreaOpt = None,
    gain: GainOpt = None,
    offset: OffsetOpt = None,
    read_noise: ReadNoiseOpt = None,
    queue_size: QueueOpt = 8,
    policy: PolicyOpt = "block",
    frame_timeout: TimeoutOpt = 60.0,
    calibrate: CalibrateOpt = None,
    follow_drift: FollowOpt = False,
    follow_xy: FollowXYOpt = False,
    skip_planes: SkipOpt = False,
    skip_margin: SkipMarginOpt = 2,
    skip_full_every: SkipFullEveryOpt = 10,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Acquire Z-stacks on a real microscope and segment every frame as it arrives."""
    from livefocus.stream import z_sequence

    options = StreamOptions.pick(locals())
    options.camera_model()  # bad values: one line before the configuration is loaded
    _check_plan(z_range, step)
    _refuse_existing(out, options, [config])
    sequence = z_sequence(
        {"range": z_range, "step": step},
        time_points=time_points,
        interval=interval,
        positions=_positions(positions),
        channels=[c.strip() for c in channels.split(",") if c.strip()] if channels else None,
        channel_group=channel_group,
    )
    core = _load_config(config)
    sequence = _without_xy(core, sequence)
    try:
        report = _execute(
            core,
            sequence,
            options,
            title="livefocus acquire",
            out=out,
            meta={"source": "acquire", "config": str(config)},
        )
    finally:
        _unload(core)
    _summary(report, {"noise": _noise(options)}, as_json)


def _without_xy(core: Any, sequence: Any) -> Any:
    """``sequence`` for a configuration without an XY stage: its positions keep their z only
    (pymmcore-plus would warn, at every stack, that it cannot set the XY position), and a
    note says so when they gave an x or y."""
    positions = sequence.stage_positions
    if not positions or core.getXYStageDevice():
        return sequence
    if any(p.x is not None or p.y is not None for p in positions):
        typer.echo(
            "note: the configuration has no XY stage: the positions' x, y are not used", err=True
        )
    kept = tuple(p.model_copy(update={"x": None, "y": None}) for p in positions)
    return sequence.model_copy(update={"stage_positions": kept})


def _unload(core: Any) -> None:
    """Shut the microscope's devices down now, while Python runs. Left to interpreter exit, a
    device still busy (a stage told to move far beyond its travel, whose wait timed out) calls
    back into a finalising Python and aborts the process ("FATAL: exception not rethrown",
    exit 134) after the store is complete."""
    try:
        core.unloadAllDevices()
    except Exception as exc:  # the run's status already says what went wrong
        logging.getLogger("livefocus").warning("the devices did not unload: %s", exc)
