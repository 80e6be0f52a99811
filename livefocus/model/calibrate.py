"""Self-calibration: fine-tune a model on the rule's masks of the user's own stack.

The depth rule (:func:`livefocus.depth.reconstruct`) sees the whole stack; the U-Net sees one
frame. The rule's final masks of a stack are weak labels of the user's own specimen, optics
and camera (the paper's idea, applied on the instrument): a short fine-tuning on them adapts
the net to that instrument.

The frames are cut into square tiles on a grid; a seeded quarter of the tile positions (all
planes) is held out. Training draws flipped and rotated 64 px crops of the other tiles, with
batch normalisation frozen; every 10 steps the held-out tiles are scored (IoU against the
rule's masks), with early stopping and a wall-clock budget checked before every step. The
base model is scored on the same tiles before training: the model written is the calibrated
one only if it beats the base there, else the base's weights (``"kept"`` in the metrics says
which). A model with a z-peak rule (:mod:`livefocus.depth`) is scored with its final
masks of each held-out tile position's planes, as it gives them. A model of several planes
(``context`` > 1) is calibrated on each plane's window of the stack in its order, the planes
before it included, as the streaming pipeline feeds it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livefocus._output import check_output, prepare_output
from livefocus.depth import ZPeaks, stack_masks
from livefocus.focus._validate import check_positive_int, check_positive_number
from livefocus.model.data import check_frames, dihedral, label_config, label_stack, model_input
from livefocus.model.losses import combined_loss
from livefocus.model.registry import Model, load, save
from livefocus.model.unet import UNet

__all__ = ["LABEL_SOURCE", "calibrate", "calibrate_on", "holdout_tiles"]

#: Where the calibration labels come from (written to config.json).
LABEL_SOURCE = "livefocus.depth.reconstruct(stack, z_step=...).mask_depth"
#: Largest tile side (px): 4 tiles per 256 x 256 frame.
_TILE = 128
#: Side (px) of the training crops, cut inside the training tiles.
_CROP = 64
#: Steps over which the learning rate rises to ``lr``.
_WARMUP = 10
#: Most held-out tiles scored at each validation (a seeded sample beyond that).
_MAX_VAL_TILES = 48
#: Validations (of ``_EVAL_EVERY`` steps each) without a better held-out IoU before stopping.
_PATIENCE = 10
#: Training steps between two validations.
_EVAL_EVERY = 10
#: Seconds of the budget kept for writing the model folder and exiting (at most 10 % of it).
_WRITE_RESERVE_S = 3.0


def holdout_tiles(
    shape: Sequence[int], multiple: int, *, seed: int = 0
) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
    """Tile side and the (y, x) corners of the training and held-out tiles of frames of
    ``shape`` (..., Y, X): a grid of square tiles (a multiple of ``multiple``, at most 128 px,
    at least two per frame), a seeded quarter of them (at least one) held out.

    Raises ValueError when the frames are too small for two tiles of ``2 * multiple`` px.

    Examples
    --------
    >>> tile, train, held = holdout_tiles((20, 256, 256), 8)
    >>> tile, len(train), len(held)
    (128, 3, 1)
    """
    ny, nx = (int(v) for v in shape[-2:])
    side = min(_TILE, max(ny, nx) // 2, min(ny, nx))
    side -= side % multiple
    if side < 2 * multiple:
        raise ValueError(
            f"stack frames of {ny} x {nx} px are too small to calibrate on: the network needs "
            f"two tiles of at least {2 * multiple} x {2 * multiple} px"
        )
    corners = [(y, x) for y in range(0, ny - side + 1, side) for x in range(0, nx - side + 1, side)]
    order = np.random.default_rng([int(seed), 11]).permutation(len(corners))
    n_held = max(1, len(corners) // 4)
    held = sorted(corners[i] for i in order[:n_held])
    train = sorted(corners[i] for i in order[n_held:])
    return side, train, held


def _cut(arr: np.ndarray, corners: list[tuple[int, int]], side: int) -> np.ndarray:
    """Every plane's tile at each corner: (Z * len(corners), ..., side, side)."""
    return np.concatenate([arr[..., y : y + side, x : x + side] for y, x in corners])


@torch.inference_mode()
def _held_out_iou(
    net: UNet,
    x: np.ndarray,
    y: np.ndarray,
    threshold: float,
    rule: ZPeaks | None = None,
    nz: int = 1,
) -> float:
    """Pooled IoU of the net's masks of tiles ``x`` against ``y`` (1 when both are empty).

    Without a z-peak ``rule`` a mask is each tile's probability above ``threshold``; with
    one, ``x`` holds whole tile stacks (``nz`` planes per tile position, in order, as
    :func:`_cut` gives them) and the masks are each stack's final masks, as the model gives
    them."""
    net.eval()
    scores = []
    for i in range(0, len(x), 16):
        batch = x[i : i + 16]
        t = torch.from_numpy(np.ascontiguousarray(batch[:, None] if batch.ndim == 3 else batch))
        scores.append(net(t)[:, 0].numpy())
    probs = (1 / (1 + np.exp(-np.concatenate(scores).astype(np.float64)))).astype(np.float32)
    pred = stack_masks(probs, threshold, rule, nz=nz)
    inter = int(np.count_nonzero(pred & y))
    union = int(np.count_nonzero(pred | y))
    return inter / union if union else 1.0


def _train_mode(net: UNet) -> None:
    """Training mode with batch normalisation frozen: its statistics stay the base model's,
    since batches of tiles of one specimen are small and alike (they moved the statistics
    far enough, in a few steps, to lower the held-out IoU)."""
    net.train()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()


def _check_masks(masks: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(masks)
    if arr.shape != shape:
        raise ValueError(f"masks must have the stack's shape {shape}, got {arr.shape}")
    if arr.dtype != bool and not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"masks must be boolean or numeric, got dtype {arr.dtype}")
    if arr.dtype != bool and not np.isfinite(arr).all():
        raise ValueError("masks must be finite (NaN or infinite values found)")
    return np.asarray(arr != 0)


def _check_not_empty(masks: np.ndarray, name: str) -> np.ndarray:
    """Masks that mark something: empty ones would teach the net that nothing is in focus."""
    if not masks.any():
        raise ValueError(
            f"{name} mark no in-focus pixel in this stack (no specimen within its range, or "
            "too few planes to judge): there is nothing to calibrate on"
        )
    return masks


def _check_stack(raw: Any, name: str = "stack") -> np.ndarray:
    arr = check_frames(raw, name=name)
    ndim = np.asarray(raw).ndim
    if ndim != 3:
        got = f"an array of shape {np.shape(raw)}"
    elif len(arr) < 2:
        got = f"{len(arr)} plane of {arr.shape[1]} x {arr.shape[2]}"
    else:
        return arr
    raise ValueError(f"{name} must be a (Z, Y, X) stack of at least 2 planes, got {got}")


def _fit(
    net: UNet,
    x: np.ndarray,
    y: np.ndarray,
    corners: tuple[int, list[tuple[int, int]], list[tuple[int, int]]],
    *,
    threshold: float,
    rule: ZPeaks | None = None,
    deadline: float,
    seed: int,
    lr: float,
    batch_size: int,
    eval_every: int,
) -> dict[str, Any]:
    """Train ``net`` on the training tiles until the deadline or early stopping; keep the
    best weights on the held-out tiles; returns the history and the base's score."""
    side, train, held = corners
    # crops inside the training tiles: small steps, many of them, in the budget
    crop = min(side, max(_CROP, 2 * net.config.multiple))
    rng = np.random.default_rng([int(seed), 13])
    torch.manual_seed(seed)
    nz = len(x)
    if rule is not None and len(held) * nz > _MAX_VAL_TILES:
        # a z-peak rule judges whole tile stacks: a seeded sample of the held-out positions
        keep = max(1, _MAX_VAL_TILES // nz)
        held = [held[i] for i in np.sort(rng.choice(len(held), keep, replace=False))]
    x_val, y_val = _cut(x, held, side), _cut(y, held, side)
    if rule is None and len(x_val) > _MAX_VAL_TILES:
        pick = np.sort(rng.choice(len(x_val), _MAX_VAL_TILES, replace=False))
        x_val, y_val = x_val[pick], y_val[pick]

    def score() -> float:
        return _held_out_iou(net, x_val, y_val, threshold, rule, nz)

    t0 = time.perf_counter()
    base_iou = score()
    val_seconds = time.perf_counter() - t0
    base_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    best_iou, best_state, best_step = base_iou, None, 0
    history: list[dict[str, Any]] = [{"step": 0, "held_out_iou": base_iou}]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    # Adam's first steps move every weight by about lr: warm up linearly over _WARMUP steps
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / _WARMUP))
    step, stopped, since_best, losses = 0, "time", 0, []
    step_seconds = 0.0
    # held-out tiles without a pixel of the rule's masks cannot tell a better net from a worse
    # one (an empty mask scores 1 against them): then nothing is fitted and the base is kept
    judged = bool(np.any(y_val))
    while judged:
        # stop when one more round of steps and a validation would pass the deadline
        left = deadline - time.perf_counter()
        if left < eval_every * step_seconds + val_seconds:
            stopped = "time" if step else "time (no step fitted in the budget)"
            break
        t_round, first = time.perf_counter(), step
        _train_mode(net)
        for _ in range(eval_every):
            if time.perf_counter() + val_seconds > deadline:
                break  # the round's last score must still fit in the budget
            xs, ys = [], []
            for _ in range(batch_size):
                z = int(rng.integers(len(x)))
                ty, tx = train[int(rng.integers(len(train)))]
                cy = ty + int(rng.integers(side - crop + 1))
                cx = tx + int(rng.integers(side - crop + 1))
                k = int(rng.integers(8))
                xs.append(dihedral(x[z, ..., cy : cy + crop, cx : cx + crop], k))
                ys.append(dihedral(y[z, cy : cy + crop, cx : cx + crop], k))
            xb = np.stack(xs)
            xt = torch.from_numpy(np.ascontiguousarray(xb[:, None] if xb.ndim == 3 else xb))
            yt = torch.from_numpy(np.stack(ys).astype(np.float32))[:, None]
            opt.zero_grad()
            loss = combined_loss(net(xt), yt)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            warmup.step()
            losses.append(float(loss.item()))
            step += 1
        if step == first:
            stopped = "time" if step else "time (no step fitted in the budget)"
            break
        step_seconds = (time.perf_counter() - t_round) / (step - first)
        t_val = time.perf_counter()
        iou = score()
        val_seconds = time.perf_counter() - t_val
        history.append(
            {
                "step": step,
                "loss": float(np.mean(losses[first:])),
                "held_out_iou": iou,
                "seconds_left": deadline - time.perf_counter(),
            }
        )
        if iou > best_iou:
            best_iou, best_step, since_best = iou, step, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            since_best += 1
            if since_best >= _PATIENCE:
                stopped = "early (no better held-out IoU)"
                break
    if not judged:
        stopped = "not run: the held-out tiles hold no in-focus pixel of the rule to judge by"
    # (contiguous, not channels-last as in train: its first steps here took 1-2 s each)
    net.load_state_dict(best_state if best_state is not None else base_state)
    net.eval()
    return {
        "base_held_out_iou": base_iou,
        # the best of the calibrated net (None when no step fitted in the budget)
        "calibrated_held_out_iou": max((h["held_out_iou"] for h in history[1:]), default=None),
        "kept": "calibrated" if best_state is not None else "base",
        "best_step": best_step,
        "steps": step,
        "stopped": stopped,
        "n_train_tiles": len(train) * len(x),
        "n_held_out_tiles": len(x_val),
        "scored_corners": held,
        "history": history,
    }


def _run(
    raw: np.ndarray,
    masks: np.ndarray,
    *,
    base: Model,
    out: str | Path,
    z_step: float | None,
    seconds: float,
    start: float,
    seed: int,
    lr: float,
    batch_size: int,
    overwrite: bool,
    inputs: list[Path],
    source: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune a copy of ``base`` on ``masks`` of ``raw`` and write it to ``out``."""
    net = UNet(base.net.config)
    net.load_state_dict(base.net.state_dict())
    corners = holdout_tiles(raw.shape, net.config.multiple, seed=seed)
    # a model of several planes sees each plane with those before it, as when streaming
    x = model_input(raw, base.context)
    fit = _fit(
        net,
        x,
        masks,
        corners,
        threshold=base.threshold,
        rule=base.z_peaks,
        deadline=start + seconds - min(_WRITE_RESERVE_S, 0.1 * seconds),
        seed=seed,
        lr=lr,
        batch_size=batch_size,
        eval_every=_EVAL_EVERY,
    )
    side, train, held = corners
    metrics: dict[str, Any] = {
        **{k: v for k, v in fit.items() if k not in ("history", "scored_corners")},
        **(extra or {}),
        "seconds": time.perf_counter() - start,
        "budget_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
    }
    config = {
        k: v for k, v in base.config.items() if k not in ("format", "architecture", "weights")
    }
    config.pop("evaluation", None)  # the base's held-out figures are not this model's
    config["name"] = Path(out).name
    config["labels"] = {**label_config("depth", raw.shape[1:]), "source": LABEL_SOURCE}
    config["calibration"] = {
        "from": base.name,
        "base_path": str(Path(base.path).resolve()) if base.path is not None else None,
        "stack": source,
        "stack_shape": list(raw.shape),
        "z_step": z_step,
        "labels": LABEL_SOURCE,
        "label_voxels": float(masks.mean()),
        "holdout": {
            "tile": side,
            "train_corners": train,
            "held_out_corners": held,
            "scored_corners": fit["scored_corners"],  # a sample of them, when there are many
        },
        "optimizer": {"name": "adam", "lr": lr, "batch_size": batch_size, "seed": seed},
        "metrics": metrics,
    }
    folder = prepare_output(out, overwrite=overwrite, inputs=inputs, kind="model")
    save(net, folder, config)
    Path(folder, "metrics.json").write_text(
        json.dumps({**metrics, "history": fit["history"]}, indent=2) + "\n"
    )
    return metrics


def _check_common(
    model: str | Path | Model, out: Any, seconds: Any, seed: Any, lr: Any, batch_size: Any
) -> Model:
    if not isinstance(out, (str, Path)) or str(out) in ("", "."):
        raise ValueError(f"out must be the path of a model folder, got {str(out)!r}")
    check_positive_number(seconds, "seconds", "s")
    check_positive_number(lr, "lr")
    check_positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int from 0 to 2**63 - 1, got {seed!r}")
    return model if isinstance(model, Model) else load(model)


def calibrate_on(
    raw: np.ndarray,
    masks: np.ndarray,
    *,
    model: str | Path | Model = "depth",
    out: str | Path,
    seconds: float = 60.0,
    z_step: float | None = None,
    seed: int = 0,
    lr: float = 3e-4,
    batch_size: int = 8,
    overwrite: bool = False,
    source: str = "array",
) -> Path:
    """Fine-tune ``model`` on a stack and its in-focus masks; write the model folder ``out``.

    For the streaming side: call it (in a background thread, say) with the first complete
    stack and its rule masks (``StackResult.mask_depth``); load the folder it returns with
    :func:`livefocus.model.engine`. It never sets torch's thread count.

    Parameters
    ----------
    raw : (Z, Y, X) array
        The stack (any integer or float dtype), at least 2 planes.
    masks : (Z, Y, X) array
        Its in-focus masks (non-zero = in focus), normally the rule's.
    model : str, Path or Model
        The model to start from (a shipped name or a folder).
    out : path
        Model folder to write.
    seconds : float
        Wall-clock budget of the training and its validations.
    z_step : float, optional
        Plane spacing in µm (recorded only).
    seed : int
        Seed of the tile split and of the batches.
    lr, batch_size
        Adam learning rate and tiles per step.
    overwrite : bool
        Replace a model folder ``out`` written by livefocus (never the base model's folder).
    source : str
        What the stack was (recorded in config.json).

    Returns
    -------
    Path
        ``out``; its ``config.json`` holds the metrics under ``"calibration"``.
    """
    start = time.perf_counter()
    base = _check_common(model, out, seconds, seed, lr, batch_size)
    stack = _check_stack(raw, "raw")
    labels = _check_not_empty(_check_masks(masks, stack.shape), "masks")
    inputs = [base.path] if base.path is not None else []
    check_output(out, overwrite=overwrite, inputs=inputs, kind="model")
    _run(
        stack,
        labels,
        base=base,
        out=out,
        z_step=z_step,
        seconds=float(seconds),
        start=start,
        seed=seed,
        lr=float(lr),
        batch_size=int(batch_size),
        overwrite=overwrite,
        inputs=inputs,
        source={"kind": source, "dtype": str(np.asarray(raw).dtype)},
    )
    return Path(out)


def _read(path: Path, picks: dict[str, int | None]) -> tuple[np.ndarray, str]:
    """The stack of a file, or the chosen stack of a livefocus acquisition store (time point,
    channel and position 0 where not chosen: the first stack, as ``--calibrate`` takes)."""
    from livefocus.io import is_acquisition_store, read_stack

    t, c, p = (picks[name] for name in ("time_point", "channel", "position"))
    if not is_acquisition_store(path):  # read_stack refuses a choice itself
        return np.asarray(read_stack(path, time_point=t, channel=c, position=p)), "stack"
    t, c, p = (0 if value is None else value for value in (t, c, p))
    stack = read_stack(path, time_point=t, channel=c, position=p)
    return np.asarray(stack), f"time point {t}, channel {c}, position {p} of the store"


def calibrate(
    stack: str | Path | np.ndarray,
    *,
    model: str | Path | Model = "depth",
    out: str | Path,
    z_step: float | None = None,
    seconds: float = 60.0,
    seed: int = 0,
    lr: float = 3e-4,
    batch_size: int = 8,
    overwrite: bool = False,
    threads: int | None = 2,
    started: float | None = None,
    time_point: int | None = None,
    channel: int | None = None,
    position: int | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` on the rule's masks of ``stack``; write the model folder ``out``.

    The labels are ``livefocus.depth.reconstruct(stack, z_step=z_step).mask_depth``; the
    model written is never worse than ``model`` on the held-out tiles (see the module
    docstring). Every command takes the folder as ``--model DIR``.

    Parameters
    ----------
    stack : path or (Z, Y, X) array
        A stack file (TIFF / .npy / Zarr), a livefocus acquisition store (the stack chosen
        by ``time_point``, ``channel`` and ``position``: 0 for each not given), or the frames
        themselves.
    model : str, Path or Model
        The model to start from (a shipped name or a folder).
    out : path
        Model folder to write (``config.json``, ``weights.pt``, ``metrics.json``).
    z_step : float, optional
        Plane spacing in µm. None: the one stored with the file, else 1.
    seconds : float
        Wall-clock budget for the labels, the training and its validations.
    seed : int
        Seed of the tile split and of the batches.
    lr, batch_size
        Adam learning rate and tiles per step.
    overwrite : bool
        Replace a model folder ``out`` written by livefocus (never an input).
    threads : int, optional
        Torch threads (default 2); None leaves torch's setting.
    started : float, optional
        The :func:`time.perf_counter` time the budget counts from (the command line passes
        its process's start, so that ``seconds`` bounds the whole command); default: now.
    time_point, channel, position : int, optional
        Which stack of an acquisition store (an error for anything else).

    Returns
    -------
    dict
        The metrics (also in ``config.json`` under ``"calibration"``): ``base_held_out_iou``,
        ``calibrated_held_out_iou``, ``kept`` (``"calibrated"`` or ``"base"``), ``steps``,
        ``stopped``, ``label_seconds``, ``seconds``.
    """
    from livefocus.io import stack_z_step

    start = time.perf_counter() if started is None else float(started)
    base = _check_common(model, out, seconds, seed, lr, batch_size)
    if z_step is not None:
        check_positive_number(z_step, "z_step", "µm")
    if threads is not None:
        check_positive_int(threads, "threads")
    inputs = [base.path] if base.path is not None else []
    picks = {"time_point": time_point, "channel": channel, "position": position}
    if isinstance(stack, (str, Path)):
        if str(stack) == "":
            raise ValueError("stack must be a file or store path, got ''")
        path = Path(stack)
        if not path.exists():
            raise FileNotFoundError(f"stack {str(path)!r} does not exist")
        inputs.append(path)
        check_output(out, overwrite=overwrite, inputs=inputs, kind="model")
        raw, what = _read(path, picks)
        if z_step is None:
            z_step = stack_z_step(path)
        source: dict[str, Any] = {"kind": what, "path": str(path)}
    else:
        given = [name for name, value in picks.items() if value is not None]
        if given:
            raise ValueError(f"{given[0]}: only a store's stacks are chosen, not an array's")
        check_output(out, overwrite=overwrite, inputs=inputs, kind="model")
        raw, source = np.asarray(stack), {"kind": "array"}
    source["dtype"] = str(raw.dtype)
    frames = _check_stack(raw)
    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    masks = label_stack(raw, labels="depth", z_step=z_step)
    _check_not_empty(masks, "the rule's masks")
    label_seconds = time.perf_counter() - t0
    return _run(
        frames,
        masks,
        base=base,
        out=out,
        z_step=z_step,
        seconds=float(seconds),
        start=start,
        seed=seed,
        lr=float(lr),
        batch_size=int(batch_size),
        overwrite=overwrite,
        inputs=inputs,
        source=source,
        extra={"label_seconds": label_seconds},
    )
