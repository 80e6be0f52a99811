"""``livefocus label`` and ``livefocus curves``: offline focus maps, weak labels and curves."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import typer

from livefocus.cli._app import app
from livefocus.focus import MEASURES, PAPER_STRIDES, PAPER_WINDOW
from livefocus.focus._scale import DEGREE
from livefocus.focus._validate import check_measure, check_measures, check_memory, check_stack
from livefocus.focus.plots import check_figure_path


def _parse_strides(text: str) -> tuple[int, ...]:
    items = text.replace(" ", "").split(",")
    try:
        if "" in items:
            raise ValueError
        return tuple(int(s) for s in items)
    except ValueError:
        raise ValueError(f"--strides must be comma-separated integers, got {text!r}") from None


def _check_float32_maps(data: np.ndarray, measure: str, window: int, strides: Any) -> None:
    """Refuse float stacks whose maps could pass float32, the store's focus dtype (values
    near 1e300 would be stored as inf). Bound: a unit window scores at most 128 (Tenengrad),
    times the windows of a stride painted on one pixel."""
    if not np.issubdtype(data.dtype, np.floating):
        return  # integer pixels stay below 2**64, their scores far below float32's 2**128
    peak = max(abs(float(data.max())), abs(float(data.min())))
    if peak == 0:
        return
    covering = max(-(-min(window, max(data.shape[1:])) // s) for s in strides) ** 2
    degree = DEGREE[check_measure(measure)]
    if degree * math.log2(peak) + math.log2(128 * covering) > 128:
        raise ValueError(
            f"stack values up to {peak:.3g} can make {measure} maps beyond float32, which the "
            "store holds; scale the stack down"
        )


def _peak_pixel(data: np.ndarray) -> np.ndarray:
    """The (1, 1) crop of the stack's pixel of largest magnitude."""
    flat = (int(np.argmax(data)), int(np.argmin(data)))
    z, y, x = max(
        (np.unravel_index(i, data.shape) for i in flat), key=lambda zyx: abs(float(data[zyx]))
    )
    return data[z, y : y + 1, x : x + 1]


@contextmanager
def _dask_client(dask: str | None) -> Iterator[Any]:
    """A Dask client for ``--dask`` (None: none), connected before anything is written, so
    that an unreachable scheduler leaves no store behind."""
    if dask is None:
        yield None
        return
    from livefocus._xp import require

    distributed = require("distributed")
    try:
        if dask == "local":
            client = distributed.Client(processes=False, dashboard_address=None)
        else:
            client = distributed.Client(dask, timeout=10)
    except OSError as exc:  # an unreachable scheduler: a timeout
        raise ValueError(f"--dask {dask!r}: cannot connect ({exc})") from None
    with client:
        yield client


def _slice_maps(
    data: np.ndarray, measure: str, settings: dict[str, Any], client: Any
) -> Iterator[tuple[int, np.ndarray]]:
    """(z, focus map) of every slice, here or on the Dask ``client``."""
    from livefocus.focus import focus_map

    if client is None:
        return ((z, focus_map(data[z], measure, **settings)) for z in range(data.shape[0]))
    from livefocus.focus.parallel import iter_focus_maps

    result: Iterator[tuple[int, np.ndarray]] = iter_focus_maps(
        data, measure, client=client, **settings
    )
    return result


def _read_finite(
    path: Path,
    time_point: int | None = None,
    channel: int | None = None,
    position: int | None = None,
) -> Any:
    """The stack at ``path`` (the one chosen of an acquisition store: time point, channel,
    position), checked as the focus functions check theirs, but naming the file
    (their own check names only their parameter)."""
    from livefocus.io import read_stack

    stack = read_stack(path, time_point=time_point, channel=channel, position=position)
    return check_stack(stack, f"stack {str(path)!r}")


#: The options that choose one stack of an acquisition store (a time lapse, channels,
#: positions), shared by ``label`` and ``replay``.
TIME_POINT_HELP = "Which time point of an acquisition store (needed where it holds several)."
CHANNEL_HELP = "Which channel of an acquisition store (needed where it holds several)."
POSITION_HELP = "Which position of an acquisition store (needed where it holds several)."


def _check_step(value: float | None, name: str) -> None:
    """Refuse a plane spacing or depth of field that is not a positive number of µm within
    :data:`livefocus.io.Z_STEP_RANGE_UM` (1e300 or 1e-300 would overflow the depth
    arithmetic)."""
    from livefocus.io import Z_STEP_RANGE_UM

    lo, hi = Z_STEP_RANGE_UM
    if value is not None and not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(
            f"{name} must be a positive number of µm from {lo:g} to {hi:g}, got {value!r}"
        )


@app.command()
def label(
    stack: Path = typer.Argument(..., help="TIFF, .npy or Zarr stack (Z, Y, X)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output OME-Zarr store (stack, focus maps, labels, curve)."
    ),
    measure: str = typer.Option("std", help=f"Focus measure: {', '.join(MEASURES)}."),
    window: int = typer.Option(PAPER_WINDOW, help="Window size in pixels."),
    strides: str = typer.Option(",".join(map(str, PAPER_STRIDES)), help="Comma-separated strides."),
    paint: str = typer.Option("sum", help="'sum' (the paper) or 'mean' (no border bias)."),
    scope: str = typer.Option("slice", help="Otsu threshold per 'slice' (paper) or per 'stack'."),
    plot: Path | None = typer.Option(None, help="Axial-curve PNG (default: next to --out)."),
    overwrite: bool = typer.Option(False, help="Replace an --out that livefocus wrote."),
    dask: str | None = typer.Option(
        None, help="Run on Dask: 'local' (a local cluster) or a scheduler address (tcp://...)."
    ),
    depth: bool = typer.Option(
        False,
        "--depth",
        help="Also the depth rule's final masks and its depth, all-in-focus and confidence "
        "maps (livefocus.reconstruct with the streaming defaults; the same on Dask).",
    ),
    z_step: float | None = typer.Option(
        None, help="Plane spacing in µm for --depth (default: from the file, else 1)."
    ),
    dof: float | None = typer.Option(
        None, help="Depth of field in µm for --depth (default: 2 z steps)."
    ),
    min_probability: float | None = typer.Option(
        None,
        help="For --depth: least calibrated probability a depth needs to stay in the depth map "
        "(default 0.7; 0 keeps every confident peak's depth).",
    ),
    min_area: int | None = typer.Option(
        None,
        help="For --depth: least size in pixels of a region of a plane's final depth mask "
        "(default 10; 0 keeps every speck).",
    ),
    model: str = typer.Option(
        "none",
        help="Also a U-Net's masks: a shipped name (depth), a model folder (calibrate --out), "
        "or none. The whole stack in the file's plane order (taken as the acquisition "
        "order): a z-peak model's final masks.",
    ),
    backend: str = typer.Option(
        "auto", help="Engine of --model: auto, torch, onnxruntime or tensorrt."
    ),
    time_point: int | None = typer.Option(None, "--time-point", help=TIME_POINT_HELP),
    channel: int | None = typer.Option(None, "--channel", help=CHANNEL_HELP),
    position: int | None = typer.Option(None, "--position", help=POSITION_HELP),
) -> None:
    """Label a saved stack offline: focus maps and weak-label masks of every slice.

    They are written as they are made to an OME-Zarr store of the same layout as a streaming
    run ('livefocus view' opens it). With --depth the store also gets the depth rule's masks
    and maps, with --model a U-Net's masks."""
    from tqdm import tqdm

    from livefocus._output import check_output
    from livefocus.focus import axial_curve, focus_map, weak_labels
    from livefocus.focus.plots import plot_curves
    from livefocus.io import stack_pixel_size, stack_z_step
    from livefocus.stack_store import LabelStore

    stride_list = _parse_strides(strides)
    if out.name in ("", ".", ".."):
        raise ValueError(f"--out must name a store folder such as labels.zarr, got {str(out)!r}")
    folder = [Path(model)] if model.lower() not in ("", "none") and Path(model).is_dir() else []
    check_output(out, overwrite=overwrite, inputs=[stack, *folder], name="--out", kind="store")
    # o.zarr or o.ome.zarr: o-curve.png beside it
    stem = out.name.removesuffix(".zarr").removesuffix(".ome")
    plot_path = plot or out.with_name(stem + "-curve.png")
    check_figure_path(plot_path, "--plot", inputs=[stack, *folder], within=[out])
    if dask is not None and dask != "local" and "://" not in dask:
        raise ValueError(
            f"dask must be 'local' or a scheduler address such as tcp://host:8786, got {dask!r}"
        )
    _check_step(z_step, "--z-step")
    if z_step is not None and not depth:
        raise ValueError("--z-step is the plane spacing of --depth; pass --depth too")
    _check_step(dof, "--dof")
    if dof is not None and not depth:
        raise ValueError("--dof is the depth of field of --depth; pass --depth too")
    if min_probability is not None and not depth:
        raise ValueError("--min-probability is part of --depth's depth map; pass --depth too")
    if min_area is not None and not depth:
        raise ValueError("--min-area is part of --depth's masks; pass --depth too")
    from livefocus._vocab import BACKENDS, check_choice

    check_choice(backend, "backend", BACKENDS)  # also without --model: a typo is said at once
    engine = None
    if model.lower() not in ("", "none"):
        from livefocus.model import engine as make_engine

        engine = make_engine(model, backend=backend)  # a bad name or folder: one line, now
    data = _read_finite(stack, time_point=time_point, channel=channel, position=position)
    # float64 maps and uint8 masks; with --depth also the reconstruction's float32 focus and
    # support stacks, its masks and their copies (about 30 bytes a voxel, measured); with
    # --model the net's float32 input windows (context planes each), probabilities and masks
    per_voxel = (39.0 if depth else 9.0) + (0.0 if engine is None else 4.0 * engine.context + 6)
    check_memory(per_voxel * data.size, "stack", data.shape)
    # Check every option before anything is written, on the pixel of largest magnitude (which
    # also refuses float values whose scores would overflow).
    focus_map(
        _peak_pixel(check_stack(data)), measure, window=window, strides=stride_list, paint=paint
    )
    weak_labels(np.zeros((1, 1)), scope=scope)
    _check_float32_maps(data, measure, window, stride_list)
    step = z_step if z_step is not None else stack_z_step(stack)
    depth_attrs: dict[str, Any] = {}
    if depth:
        from livefocus.depth import ReconstructSettings

        least: dict[str, Any] = {}
        if min_probability is not None:
            least["min_probability"] = min_probability
        if min_area is not None:
            least["min_area"] = min_area
        rec_settings = ReconstructSettings.for_frame(
            (int(data.shape[1]), int(data.shape[2])), depth_of_field=dof, **least
        )
        depth_step = step or 1.0  # the file's step, else 1 µm
        depth_attrs = {"depth_settings": rec_settings.as_dict(), "depth_z_step": depth_step}
    model_attrs: dict[str, Any] = {}
    if engine is not None:
        rule = engine.z_peaks
        model_attrs = {
            "model": model,
            "model_rule": (
                {"threshold": engine.threshold}
                if rule is None
                else {"threshold": rule.threshold, "z_peaks": rule.as_config()}
            ),
        }
    with _dask_client(dask) as client:  # connected first: an unreachable one writes nothing
        store = LabelStore.create(
            out,
            raw=data,
            z_step=step,
            pixel_size=stack_pixel_size(stack),  # the file's, when it records one
            overwrite=overwrite,
            inputs=[stack, *folder],
            depth=depth,
            model=engine is not None,
            attrs={
                **depth_attrs,
                **model_attrs,
                "source": str(stack),
                "measure": measure,
                "window": window,
                "strides": list(stride_list),
                "paint": paint,
                "threshold": f"otsu per {scope}",
            },
        )
        maps = np.empty(data.shape, dtype=np.float64)
        settings = {"window": window, "strides": stride_list, "paint": paint}
        result = None
        try:
            results = _slice_maps(data, measure, settings, client)
            steps = tqdm(results, total=data.shape[0], desc=f"{measure} maps", unit="slice")
            for z, focus in steps:
                maps[z] = focus
                store.write_map(z, focus)
                if scope == "slice":
                    store.write_mask(z, weak_labels(focus))
            if depth:
                from livefocus.depth import reconstruct

                result = reconstruct(data, z_step=depth_step, settings=rec_settings, client=client)
            if scope == "stack":
                for z, mask in enumerate(weak_labels(maps, scope="stack")):
                    store.write_mask(z, mask)
            model_masks = None
            if engine is not None:
                model_masks = engine.predict_mask(data)  # here, also when the maps ran on Dask
            curve = axial_curve(data, measure)
            store.write_curve(curve, result, model=model_masks)
        except KeyboardInterrupt:
            store.close("interrupted")
            raise
        except Exception as exc:
            store.close(f"error: {exc}")
            raise
        store.close("complete")
    plot_curves({measure: curve}, plot_path, title=f"{stack.name}: axial {measure} curve")
    extra = "" if result is None else ", depth masks and maps"
    if engine is not None:
        extra += f", model masks ({model})"
    best = int(np.argmax(curve))
    typer.echo(f"wrote {out} ({data.shape[0]} slices{extra}; best slice {best}) and {plot_path}")
    if data.shape[0] > 1 and best in (0, data.shape[0] - 1):
        typer.echo(
            f"note: the best slice is an edge plane ({best}): focus may lie beyond the stack, or "
            "the specimen is a phase object (transparent cells in brightfield), whose contrast "
            "is least in focus and greatest on either side of it"
        )
    if depth and data.shape[0] < 3:
        typer.echo(
            f"note: the depth rule needs 3 planes or more to judge a peak; with "
            f"{data.shape[0]} its masks and depth are empty"
        )


@app.command()
def curves(
    stack: Path = typer.Argument(..., help="TIFF, .npy or Zarr stack (Z, Y, X)."),
    plot: Path = typer.Option(Path("curves.png"), help="Output PNG."),
    measures: str = typer.Option(",".join(MEASURES), help="Comma-separated measures."),
) -> None:
    """Axial focus curves of several measures (the paper's Fig. 1b), printed and plotted."""
    from livefocus.focus import axial_curves
    from livefocus.focus.plots import plot_curves

    check_figure_path(plot, "plot", inputs=[stack])
    names = [m.strip() for m in measures.split(",")]
    if "" in names:
        raise ValueError(f"--measures must be comma-separated measure names, got {measures!r}")
    check_measures(names)
    data = _read_finite(stack)
    result = axial_curves(data, names)
    width = max(len(m) for m in result)
    for name, curve in result.items():
        values = " ".join(f"{v:4.2f}" for v in curve)
        typer.echo(f"{name:<{width}}  argmax {int(np.argmax(curve)):3d}  {values}")
    plot_curves(result, plot, title=f"{stack.name}: axial focus curves")
    typer.echo(f"wrote {plot}")
