"""``livefocus demo``, ``replay`` and ``acquire``: online segmentation during acquisition."""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from livefocus.cli._app import app
from livefocus.focus import MEASURES

_OUT = typer.Option(None, "--out", "-o", help="Output OME-Zarr store.")
_NO_PREVIEW = typer.Option(False, "--no-preview", help="Never open the preview window.")
_DEVICE = typer.Option("cpu", help="Focus kernels on 'cpu' (numpy) or 'gpu' (CuPy).")
_MODEL = typer.Option("none", help="U-Net for 'model' masks: a shipped name, a folder, or none.")
_MEASURE = typer.Option("std", help=f"Focus measure: {', '.join(MEASURES)}.")
_WINDOW = typer.Option(None, help="Window size in pixels (default: chosen for the frame size).")
_STRIDES = typer.Option(None, help="Comma-separated strides (default: chosen for the window).")
_PAINT = typer.Option(None, help="'sum' (the paper) or 'mean' (default: the reconstruction's).")
_MASK = typer.Option(None, help="Primary mask: depth, otsu or model (default: model if --model).")
_QUEUE = typer.Option(8, "--queue-size", help="Bound of the frame queue.")
_OVERWRITE = typer.Option(False, help="Replace an existing --out.")
_JSON = typer.Option(False, "--json", help="Print the summary as JSON.")
_SCREENSHOT = typer.Option(None, help="Save a PNG of the preview window at the end of the run.")


def _settings(
    shape: tuple[int, int],
    measure: str,
    window: int | None,
    strides: str | None,
    paint: str | None,
    dof: float | None = None,
) -> Any:
    from livefocus.cli._focus import _parse_strides
    from livefocus.depth import ReconstructSettings

    overrides: dict[str, Any] = {"measure": measure}
    if window is not None:
        overrides["window"] = window
    if strides is not None:
        overrides["strides"] = _parse_strides(strides)
    if paint is not None:
        overrides["paint"] = paint
    if dof is not None:
        overrides["depth_of_field"] = dof
    return ReconstructSettings.for_frame(shape, **overrides)


def _execute(
    core: Any,
    sequence: Any,
    *,
    title: str,
    preview: bool,
    screenshot: Path | None,
    model: str,
    **options: Any,
) -> Any:
    """Stream ``sequence`` on ``core`` with the preview when asked and possible, else headless.

    ``options`` go to :func:`livefocus.stream.stream` (out, settings, mask, device, ...).
    """
    from livefocus.stream import stream

    done: dict[str, Any] = {}

    def job(on_result: Callable[[Any], None] | None) -> Any:
        done["report"] = stream(
            core, sequence, model=_model_name(model), on_result=on_result, **options
        )
        return done["report"]

    if screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        preview = True
    if preview:
        from livefocus.preview import display_available, run_with_preview

        if display_available():
            keep_open = screenshot is None and os.environ.get("QT_QPA_PLATFORM") != "offscreen"
            try:
                return run_with_preview(
                    job, title=title, screenshot=screenshot, keep_open=keep_open
                )
            except KeyboardInterrupt:  # Ctrl-C in the GUI: stop the acquisition cleanly
                core.mda.cancel()
                deadline = time.monotonic() + 60
                while "report" not in done and time.monotonic() < deadline:
                    time.sleep(0.05)
                if "report" not in done:
                    raise
                return done["report"]
    return job(None)


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
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(f"store    {data['store']}  ({report.status})")
        typer.echo(
            f"frames   {m.frames_out}/{report.expected} written, {m.frames_lost} lost, "
            f"{m.fps:.1f} frames/s, latency p50 {m.latency_p50 * 1e3:.1f} ms "
            f"p99 {m.latency_p99 * 1e3:.1f} ms, acquisition blocked {m.blocked:.2f} s"
        )
        for name, scores in extra.get("iou_vs_truth", {}).items():
            typer.echo(
                f"IoU vs truth  {name:<6} {scores['iou']:.3f}  "
                f"(precision {scores['precision']:.3f}, recall {scores['recall']:.3f})"
            )
    if not report.ok:
        raise typer.Exit(1)


def _model_name(model: str) -> str | None:
    return None if model.lower() in ("", "none") else model


@app.command()
def demo(
    out: Path = typer.Option(Path("livefocus-demo.ome.zarr"), "--out", "-o", help="Store."),
    size: int = typer.Option(512, help="Camera frame size (pixels, square)."),
    z_range: float = typer.Option(40.0, help="Z-stack range in µm, centred on the specimen."),
    step: float = typer.Option(2.0, help="Z step in µm."),
    time_points: int = typer.Option(1, help="Number of Z-stacks (time points)."),
    contrast: str = typer.Option("brightfield", help="'brightfield' or 'fluorescence'."),
    seed: int = typer.Option(0, help="Specimen seed."),
    no_preview: bool = _NO_PREVIEW,
    screenshot: Path | None = _SCREENSHOT,
    device: str = _DEVICE,
    model: str = _MODEL,
    mask: str | None = _MASK,
    measure: str = _MEASURE,
    window: int | None = _WINDOW,
    strides: str | None = _STRIDES,
    paint: str | None = _PAINT,
    queue_size: int = _QUEUE,
    overwrite: bool = _OVERWRITE,
    as_json: bool = _JSON,
) -> None:
    """Segment a simulated specimen on Micro-Manager's demo config: no hardware, no download.

    Writes the store, shows the preview when a display is present, and prints frames, frames/s,
    latency, frames lost and the IoU of each mask mode against the simulator's exact truth.
    """
    import numpy as np

    from livefocus.devices import demo_core, demo_truth
    from livefocus.sim import mask_scores
    from livefocus.stream import open_store, z_sequence

    if out.exists() and not overwrite:
        raise ValueError(f"--out {str(out)!r} exists; pass --overwrite to replace it")
    core = demo_core(seed=seed, contrast=contrast, shape=(size, size))
    sequence = z_sequence({"range": z_range, "step": step}, time_points=time_points)
    settings = _settings((size, size), measure, window, strides, paint)

    report = _execute(
        core,
        sequence,
        title="livefocus demo",
        preview=not no_preview,
        screenshot=screenshot,
        out=out,
        settings=settings,
        mask=mask,
        model=model,
        device=device,
        queue_size=queue_size,
        overwrite=overwrite,
        meta={"source": "demo", "seed": seed, "contrast": contrast},
    )
    scores: dict[str, dict[str, float]] = {}
    if report.path is not None and report.status == "complete":
        reader = open_store(report.path)
        zs = next(iter(report.z_positions.values()))
        truth = demo_truth(core, zs)
        for mode in report.mask_modes:
            found = np.asarray(reader.array(f"mask_{mode}")[0, 0]).astype(bool)
            scores[mode] = {k: round(v, 4) for k, v in mask_scores(found, truth).items()}
    _summary(report, {"iou_vs_truth": scores}, as_json)


@app.command()
def replay(
    stack: Path = typer.Argument(..., help="TIFF, .npy or (OME-)Zarr stack (Z, Y, X)."),
    out: Path | None = _OUT,
    fps: float | None = typer.Option(
        None, help="Frames per second (default: as fast as possible)."
    ),
    z_step: float | None = typer.Option(None, help="Plane spacing in µm (default: from the file)."),
    no_preview: bool = _NO_PREVIEW,
    screenshot: Path | None = _SCREENSHOT,
    device: str = _DEVICE,
    model: str = _MODEL,
    mask: str | None = _MASK,
    measure: str = _MEASURE,
    window: int | None = _WINDOW,
    strides: str | None = _STRIDES,
    paint: str | None = _PAINT,
    queue_size: int = _QUEUE,
    overwrite: bool = _OVERWRITE,
    as_json: bool = _JSON,
) -> None:
    """Replay a saved stack as a live feed through the same pipeline.

    Also the way to segment a saved stack offline with the streaming masks. Default --out:
    STACK-live.ome.zarr in the current folder.
    """
    from livefocus.devices import replay_camera, replay_core
    from livefocus.stream import z_sequence

    target = out if out is not None else Path(f"{stack.name.split('.')[0]}-live.ome.zarr")
    if target.exists() and not overwrite:
        raise ValueError(f"--out {str(target)!r} exists; pass --overwrite to replace it")
    core = replay_core(stack, z_step=z_step)
    camera = replay_camera(core)
    nz = int(camera.frames.shape[0])
    step = float(camera.z_step)
    sequence = z_sequence({"absolute": [k * step for k in range(nz)]})
    shape = (int(core.getImageHeight()), int(core.getImageWidth()))
    settings = _settings(shape, measure, window, strides, paint)

    report = _execute(
        core,
        sequence,
        title="livefocus replay",
        preview=not no_preview,
        screenshot=screenshot,
        out=target,
        settings=settings,
        mask=mask,
        model=model,
        device=device,
        queue_size=queue_size,
        overwrite=overwrite,
        fps=fps,
        meta={"source": "replay", "stack": str(stack)},
    )
    _summary(report, {}, as_json)


def _positions(text: str | None) -> list[tuple[float, float, float | None]] | None:
    if not text:
        return None
    result: list[tuple[float, float, float | None]] = []
    for part in (p for p in text.split(";") if p.strip()):
        try:
            values = [float(v) for v in part.split(",")]
        except ValueError:
            raise ValueError(
                f"--positions must be 'x,y[,z];x,y[,z]...' in µm, got {text!r}"
            ) from None
        if len(values) not in (2, 3):
            raise ValueError(f"--positions must be 'x,y[,z];x,y[,z]...' in µm, got {text!r}")
        result.append((values[0], values[1], values[2] if len(values) == 3 else None))
    return result


def _load_config(config: Path) -> Any:
    import mm_test_adapters
    from pymmcore_plus import find_micromanager
    from pymmcore_plus.experimental.unicore import UniMMCore

    if not config.is_file():
        raise FileNotFoundError(f"--config {str(config)!r} is not a file")
    core = UniMMCore()
    paths = [p for p in [find_micromanager()] if p] + [mm_test_adapters.device_adapter_path()]
    core.setDeviceAdapterSearchPaths([str(p) for p in paths])
    error = ""
    try:
        core.loadSystemConfiguration(str(config))
    except Exception as exc:
        error = f"--config {str(config)!r} does not load: {exc}"
    if not error and not core.getCameraDevice():
        error = f"--config {str(config)!r} sets no camera (Core,Camera)"
    if not error and not core.getFocusDevice():
        error = f"--config {str(config)!r} sets no focus stage (Core,Focus) for Z"
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
    config: Path = typer.Option(..., "--config", help="Micro-Manager configuration (.cfg)."),
    z_range: float = typer.Option(..., help="Z-stack range in µm around the current focus."),
    step: float = typer.Option(..., help="Z step in µm."),
    positions: str | None = typer.Option(None, help="Stage positions 'x,y[,z];x,y[,z]' (µm)."),
    time_points: int = typer.Option(1, help="Number of time points."),
    interval: float = typer.Option(0.0, help="Seconds between time points."),
    channel_group: str = typer.Option("Channel", help="Config group of --channels."),
    channels: str | None = typer.Option(None, help="Comma-separated channel presets."),
    out: Path = typer.Option(Path("livefocus.ome.zarr"), "--out", "-o", help="Store."),
    no_preview: bool = _NO_PREVIEW,
    screenshot: Path | None = _SCREENSHOT,
    device: str = _DEVICE,
    model: str = _MODEL,
    mask: str | None = _MASK,
    measure: str = _MEASURE,
    window: int | None = _WINDOW,
    strides: str | None = _STRIDES,
    paint: str | None = _PAINT,
    dof: float | None = typer.Option(None, help="Depth of field in µm (default: 2 z steps)."),
    queue_size: int = _QUEUE,
    overwrite: bool = _OVERWRITE,
    as_json: bool = _JSON,
) -> None:
    """Acquire Z-stacks on a real microscope and segment every frame as it arrives."""
    from livefocus.stream import z_sequence

    if out.exists() and not overwrite:
        raise ValueError(f"--out {str(out)!r} exists; pass --overwrite to replace it")
    if not z_range > 0 or not step > 0:
        raise ValueError(f"--z-range and --step must be positive µm, got {z_range} and {step}")
    if time_points < 1:
        raise ValueError(f"--time-points must be at least 1, got {time_points}")
    core = _load_config(config)
    sequence = z_sequence(
        {"range": z_range, "step": step},
        time_points=time_points,
        interval=interval,
        positions=_positions(positions),
        channels=[c.strip() for c in channels.split(",") if c.strip()] if channels else None,
        channel_group=channel_group,
    )
    shape = (int(core.getImageHeight()), int(core.getImageWidth()))
    settings = _settings(shape, measure, window, strides, paint, dof)

    report = _execute(
        core,
        sequence,
        title="livefocus acquire",
        preview=not no_preview,
        screenshot=screenshot,
        out=out,
        settings=settings,
        mask=mask,
        model=model,
        device=device,
        queue_size=queue_size,
        overwrite=overwrite,
        meta={"source": "acquire", "config": str(config)},
    )
    _summary(report, {}, as_json)
