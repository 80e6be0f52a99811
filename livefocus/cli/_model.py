"""``livefocus train | finetune | evaluate | export | calibrate``: the U-Net surrogate."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer

from livefocus._output import check_suffix, write_json
from livefocus.cli._app import app, entered

#: A process whose command-line entry point ran this soon after its start is that command.
_FRESH_PROCESS_S = 3.0


@app.command()
def train(
    out: Path = typer.Option(None, "--out", "-o", help="Model folder (default: models/PRESET)."),
    preset: str = typer.Option(
        "default", help="Training recipe: default, depth, depth-sim or paper."
    ),
    stack: list[Path] = typer.Option([], help="User stacks (TIFF/Zarr/.npy) to add; repeatable."),
    labels: str | None = typer.Option(
        None,
        help="Weak labels: otsu (Otsu on std maps, the paper) or depth (reconstruct(...)"
        ".mask_depth, depth-based). Default: the preset's (otsu; depth for --preset depth).",
    ),
    seed: int = typer.Option(0, help="Seed of weights, batches and augmentation."),
    epochs: int | None = typer.Option(None, help="Override the preset's maximum epochs."),
    n_train: int | None = typer.Option(None, help="Override the number of simulated stacks."),
    shape: tuple[int, int, int] | None = typer.Option(
        None, help="Override the simulated stack shape: Z Y X."
    ),
    context: int | None = typer.Option(
        None,
        help="Planes per input: the current plane and the planes before it (1: the frame "
        "alone). Default: the preset's.",
    ),
    progress: bool = typer.Option(True, help="Progress bar with loss and validation IoU."),
    overwrite: bool = typer.Option(False, help="Replace a model folder livefocus wrote."),
) -> None:
    """Train a U-Net on weak labels of simulated (and user) stacks; writes config + metrics."""
    from livefocus.model import train as train_model

    folder = out or Path("models") / preset
    metrics = train_model(
        folder,
        preset=preset,
        stacks=stack,
        labels=labels,
        seed=seed,
        epochs=epochs,
        n_train=n_train,
        shape=shape,
        context=context,
        progress=progress,
        overwrite=overwrite,
    )
    typer.echo(
        f"{folder}: validation IoU vs {metrics['labels']} labels {metrics['val_iou_vs_weak']:.3f} "
        f"(epoch {metrics['best_epoch']}, {metrics['train_seconds']:.0f} s)"
    )


@app.command()
def finetune(
    model: str = typer.Argument("default", help="Model name or folder to start from."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write."),
    stack: list[Path] = typer.Option([], help="User stack; repeatable (pair with --mask)."),
    mask: list[Path] = typer.Option([], help="Its mask (non-zero = in focus); repeatable."),
    n_sim: int = typer.Option(3, help="Simulated stacks with exact truth (0: user stacks only)."),
    epochs: int = typer.Option(15, help="Maximum epochs (batch 1)."),
    lr: float = typer.Option(1e-4, help="Adam learning rate."),
    seed: int = typer.Option(0, help="Seed."),
    progress: bool = typer.Option(True, help="Progress bar."),
    overwrite: bool = typer.Option(False, help="Replace a model folder livefocus wrote."),
) -> None:
    """Fine-tune a model with batch 1 on a few stacks with exact (or manual) masks."""
    from livefocus.model import finetune as finetune_model

    metrics = finetune_model(
        model,
        out,
        stacks=stack,
        masks=mask,
        n_sim=n_sim,
        epochs=epochs,
        lr=lr,
        seed=seed,
        progress=progress,
        overwrite=overwrite,
    )
    typer.echo(f"{out}: validation IoU vs truth {metrics['val_iou_vs_truth']:.3f}")


@app.command()
def evaluate(
    model: list[str] = typer.Argument(None, help="Model names or folders (default: default)."),
    n_stacks: int = typer.Option(4, help="Held-out simulated stacks."),
    real: list[Path] = typer.Option([], help="Real stacks scored against weak labels."),
    figure: Path | None = typer.Option(None, help="Fig.-4-style PNG of the first model."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the rows as JSON."),
) -> None:
    """Table-2 analogue: IoU vs weak labels and vs exact truth, per model and data set."""
    from livefocus.cli._bench import check_json_path, format_table
    from livefocus.focus.plots import check_figure_path
    from livefocus.model import evaluate as evaluate_models

    folders = [Path(m) for m in model or [] if Path(m).is_dir()]
    if figure is not None:
        check_figure_path(figure, "--figure", inputs=[*real, *folders])
    check_json_path(json_out, inputs=[*real, *folders, *([figure] if figure else [])])
    rows = evaluate_models(model or ["default"], n_stacks=n_stacks, real=real, figure=figure)
    typer.echo(format_table(rows))
    if json_out is not None:
        write_json(json_out, {"rows": rows})


@app.command()
def export(
    model: str = typer.Argument("default", help="Model name or folder."),
    out: Path = typer.Option(..., "--out", "-o", help="ONNX file to write."),
    opset: int = typer.Option(17, help="ONNX opset."),
    overwrite: bool = typer.Option(False, help="Replace an ONNX file livefocus exported."),
) -> None:
    """Export a model to ONNX (dynamic batch and frame size, sides a multiple of 8 for the shipped
    models: its frame_multiple metadata; input normalised per slice)."""
    from livefocus.model import export_onnx

    check_suffix(out, name="out", suffixes=(".onnx",))
    typer.echo(str(export_onnx(model, out, opset=opset, overwrite=overwrite)))


#: ``calibrate``'s choice of an acquisition store's stack (unlike ``label`` and ``replay``,
#: which need it where there are several, it takes the first stack, as ``--calibrate`` does).
STORE_CHOICE_HELP = "Which stack of an acquisition store (default 0: its first stack)."


@app.command()
def calibrate(
    stack: Path = typer.Argument(..., help="Stack file (TIFF/.npy/Zarr) or a livefocus store."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write."),
    model: str = typer.Option("depth", help="Model to start from: a shipped name or a folder."),
    z_step: float | None = typer.Option(
        None, help="Plane spacing in µm (default: the one stored with the stack, else 1)."
    ),
    seconds: float = typer.Option(
        60.0, help="Wall-clock budget of the whole command: start-up, labels, training, writing."
    ),
    seed: int = typer.Option(0, help="Seed of the held-out tiles and the batches."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the metrics as JSON."),
    overwrite: bool = typer.Option(False, help="Replace a model folder livefocus wrote."),
    time_point: int | None = typer.Option(None, "--time-point", help=STORE_CHOICE_HELP),
    channel: int | None = typer.Option(None, "--channel", help=STORE_CHOICE_HELP),
    position: int | None = typer.Option(None, "--position", help=STORE_CHOICE_HELP),
) -> None:
    """Fine-tune a model on the rule's in-focus masks of your own stack (self-calibration).

    Holds out a quarter of the frame's tiles, stops early, and keeps the base model's weights
    unless the calibrated ones score better on the held-out tiles. Use the folder with
    --model DIR in every command."""
    from livefocus.cli._bench import check_json_path
    from livefocus.model import calibrate as calibrate_model

    base = [Path(model)] if Path(model).is_dir() else []
    check_json_path(json_out, inputs=[stack, *base], within=[out])
    metrics = calibrate_model(
        stack,
        model=model,
        out=out,
        z_step=z_step,
        seconds=seconds,
        seed=seed,
        overwrite=overwrite,
        started=_command_started(),  # the budget is the whole command's
        time_point=time_point,
        channel=channel,
        position=position,
    )
    calibrated = metrics["calibrated_held_out_iou"]
    source = json.loads((out / "config.json").read_text())["calibration"]["stack"]["kind"]
    if source != "stack":  # which stack of an acquisition store was taken
        typer.echo(f"{stack}: calibrated on {source}")
    typer.echo(
        f"{out}: kept {metrics['kept']}; held-out IoU vs the rule's masks: base "
        f"{metrics['base_held_out_iou']:.3f}, calibrated "
        f"{'n/a' if calibrated is None else f'{calibrated:.3f}'} "
        f"({metrics['steps']} steps, stopped: {metrics['stopped']}, {metrics['seconds']:.0f} s)"
    )
    if json_out is not None:
        write_json(json_out, metrics)


def _command_started() -> float:
    """When this command started (perf_counter): the process's start when the process is the
    command (its entry point ran within a few seconds of it), else the entry point's call (a
    notebook, a test or a plugin calling ``main``), else now."""
    now, main = time.perf_counter(), entered()
    age = _process_age()
    if main is not None and age is not None and main - (now - age) < _FRESH_PROCESS_S:
        return now - age  # Python's and the imports' start-up count too
    return main if main is not None else now


def _process_age() -> float | None:
    """Seconds since this process started (Linux's /proc), None where that is not known."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = float(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return max(0.0, uptime - started)
