"""Training on weak labels, fine-tuning on exact masks, and the Table-2 evaluation."""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livefocus._output import check_output, prepare_output
from livefocus.depth import stack_masks
from livefocus.focus._validate import (
    check_count,
    check_memory,
    check_positive_int,
    check_positive_number,
    check_stack,
)
from livefocus.focus.plots import check_figure_path
from livefocus.model.data import (
    LABEL_KINDS,
    Pairs,
    check_context,
    label_config,
    label_stack,
    model_input,
    normalise,
    pairs_from_files,
    pairs_from_simulation,
)
from livefocus.model.losses import combined_loss, iou_score
from livefocus.model.randomise import MAKERS, pairs_from_randomised
from livefocus.model.registry import Model, load, save
from livefocus.model.tiling import pad_to_multiple
from livefocus.model.unet import UNet, UNetConfig

__all__ = ["PRESETS", "evaluate", "finetune", "predict_probabilities", "train"]

#: Simulated-data seeds: training, validation, fine-tuning and held-out test never overlap.
SEEDS = {"train": 0, "val": 500, "finetune": 700, "finetune_val": 800, "test": 1000}

#: Named training recipes (``livefocus train --preset NAME``).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "architecture": {"depth": 3, "base": 8, "global_context": True},
        "labels": "otsu",
        "n_train": 24,
        "n_val": 4,
        "shape": [12, 256, 256],
        "crop": 256,
        "batch_size": 16,
        "epochs": 60,
        "patience": 60,
        "lr": 1e-3,
        "schedule": "cosine",
    },
    "depth": {
        "architecture": {"depth": 3, "base": 16},
        "labels": "depth",
        "data": "randomised",
        "generators": ["layers", "volumes"],
        "context": 3,
        "alone": 0.25,
        # final masks: the planes around each pixel's peaks in z of the probability
        "threshold": 0.2,
        "z_peaks": {"radius": 2, "paint": 1, "floor": 0.1, "lean": True},
        "n_train": 288,
        "n_val": 6,
        "shape": [12, 256, 256],
        "crop": 128,
        "batch_size": 16,
        "epochs": 10,
        "patience": 20,
        "lr": 1e-3,
        "schedule": "cosine",
    },
    "depth-sim": {
        "architecture": {"depth": 3, "base": 16},
        "labels": "depth",
        "n_train": 24,
        "n_val": 4,
        "shape": [12, 256, 256],
        "crop": 128,
        "batch_size": 16,
        "epochs": 30,
        "patience": 30,
        "lr": 1e-3,
        "schedule": "cosine",
    },
    "paper": {
        "architecture": {"depth": 3, "base": 64},
        "labels": "otsu",
        "n_train": 32,
        "n_val": 8,
        "shape": [20, 256, 256],
        "crop": 256,
        "batch_size": 16,
        "epochs": 100,
        "patience": 10,
        "lr": 1e-3,
    },
}


def _batch(
    pairs: Pairs, idx: np.ndarray, crop: int, rng: np.random.Generator, alone: float = 0.0
) -> tuple[Any, Any]:
    """A batch of random flips / 90-degree rotations (each slice its own) and random
    ``crop`` x ``crop`` crops; weak labels are those of the transformed slice
    (:attr:`Pairs.y_dihedral`), since the sliding-window scheme does not commute with flips.

    Windows of several planes are read either way through the stack, at random
    (:attr:`Pairs.x_reversed`): acquisitions step up or down. A fraction ``alone`` of them
    shows the plane alone (every plane of the window is the current one, as at a stack's
    start), so that the net still judges a plane whose predecessors it has not got."""
    c = min(crop, *pairs.x.shape[-2:])  # a quarter turn swaps the sides, not their minimum
    xs, ys = [], []
    for i in idx:
        k = int(rng.integers(8))
        reverse = pairs.x_reversed is not None and bool(rng.random() < 0.5)
        x, y = pairs.augmented(int(i), k, reverse)
        if x.ndim == 3 and alone > 0 and rng.random() < alone:
            # the window of the plane alone: its own z-score, repeated (= model_input of it)
            x = np.repeat(normalise(x[-1])[None], len(x), axis=0)
        h, w = x.shape[-2:]  # of the turned slice
        a = int(rng.integers(0, h - c + 1))
        b = int(rng.integers(0, w - c + 1))
        xs.append(x[..., a : a + c, b : b + c])
        ys.append(y[a : a + c, b : b + c])
    return np.stack(xs), np.stack(ys)


def _channels(x: np.ndarray) -> np.ndarray:
    """A batch as the network takes it: (B, C, h, w) (single planes get their channel axis)."""
    return x[:, None] if x.ndim == 3 else x


@torch.inference_mode()
def _logits(net: UNet, x: np.ndarray, batch: int = 8) -> torch.Tensor:
    net.eval()
    m = net.config.multiple
    h, w = x.shape[-2:]
    out = []
    for i in range(0, len(x), batch):
        # the engines' padding: reflected, mirrored for frames smaller than the pad
        padded, _ = pad_to_multiple(x[i : i + batch], m)
        t = torch.from_numpy(np.ascontiguousarray(_channels(padded)))
        out.append(net(t)[:, 0, :h, :w])
    return torch.cat(out)


def predict_probabilities(model: Model | UNet, frames: Any) -> np.ndarray:
    """In-focus probabilities (float32) of raw frames with the torch model on CPU (whole
    frames, no tiling: for evaluation; use :func:`livefocus.model.engine` for speed).

    ``frames`` as :meth:`livefocus.model.Engine.predict` takes them: for a model of several
    planes, a (Z, H, W) stack in acquisition order or (N, context, H, W) windows."""
    net = model.net if isinstance(model, Model) else model
    arr = np.asarray(frames)
    x = model_input(arr, net.config.in_channels)
    p = torch.sigmoid(_logits(net, x)).numpy().astype(np.float32)
    return p.reshape(arr.shape if arr.ndim < 4 else (arr.shape[0], *arr.shape[2:]))


def _check_out(out: Any) -> None:
    """A model folder path must be given (``""`` would be the working folder itself)."""
    if not isinstance(out, (str, Path)) or str(out) in ("", "."):
        raise ValueError(f"out must be the path of a model folder, got {str(out)!r}")


def _check_paths(paths: Any, name: str) -> list[Path]:
    """A sequence of file paths (a single str is refused: it would be read letter by letter)."""
    if isinstance(paths, (str, Path)):
        raise TypeError(f"{name} must be a sequence of paths, got the single path {str(paths)!r}")
    items = list(paths)
    for item in items:
        if not isinstance(item, (str, Path)) or str(item) == "":
            raise ValueError(f"{name} must hold file paths, got {item!r}")
        if not Path(item).exists():
            raise FileNotFoundError(f"{name}: {str(item)!r} does not exist")
    return [Path(item) for item in items]


def _check_shape(shape: Any) -> tuple[int, int, int]:
    """A simulated stack shape (Z, Y, X) of positive ints (the simulator checks its limits)."""
    values = tuple(shape) if isinstance(shape, (tuple, list)) else ()
    if len(values) != 3:
        raise ValueError(f"shape must be three ints (Z, Y, X), got {shape!r}")
    z, y, x = (check_positive_int(v, "shape") for v in values)
    return z, y, x


def _check_seed(seed: Any) -> int:
    """A seed torch and numpy both take: an int from 0 to 2**64 - 1."""
    value = check_count(seed, "seed")
    if value >= 2**64:
        raise ValueError(f"seed must be below 2**64, got {seed!r}")
    return value


def _check_frame_size(pairs: Pairs, net: UNet, name: str) -> None:
    """Training crops need at least two cells of the network's pooling grid per side."""
    smallest = 2 * net.config.multiple
    h, w = pairs.x.shape[-2:]
    if min(h, w) < smallest:
        raise ValueError(
            f"{name} with frames of {h} x {w} px are too small to train on; the network needs "
            f"at least {smallest} x {smallest} px"
        )


def _fit(
    net: UNet,
    train_pairs: Pairs,
    val_pairs: Pairs,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    crop: int,
    patience: int,
    seed: int,
    progress: bool,
    desc: str,
    max_minutes: float | None = None,
    schedule: str = "plateau",
    alone: float = 0.0,
) -> dict[str, Any]:
    """Adam, focal + Dice + BCE, early stopping on validation IoU; keeps the best weights.

    ``schedule``: ``"plateau"`` lowers the learning rate when validation IoU stalls;
    ``"cosine"`` anneals it to zero over ``epochs``. ``alone``: the fraction of windows of
    several planes shown as the plane alone (see :func:`_batch`)."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # channels-last convolutions are about 1.7x faster on CPU for these narrow layers
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in the stubs
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    # Adam at `lr` as in the paper, lowered when validation IoU stalls (before early stopping).
    if schedule not in ("plateau", "cosine"):
        raise ValueError(f"schedule must be 'plateau' or 'cosine', got {schedule!r}")
    plateau = cosine = None
    if schedule == "cosine":
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    else:
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=0.3, patience=max(1, patience // 3)
        )
    val_y = torch.from_numpy(val_pairs.y.astype(np.float32))
    # crops cover whole cells of the pooling grid, so that skip connections line up
    crop = min(crop, *train_pairs.x.shape[-2:])
    crop -= crop % net.config.multiple
    best_iou, best_state, best_epoch, history = -1.0, None, 0, []
    steps = max(1, len(train_pairs) // batch_size)
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, unit="epoch")
    for epoch in bar:
        net.train()
        order = rng.permutation(len(train_pairs))
        losses = []
        for s in range(steps):
            idx = order[s * batch_size : (s + 1) * batch_size]
            x, y = _batch(train_pairs, idx, crop, rng, alone)
            xt = torch.from_numpy(np.ascontiguousarray(_channels(x), dtype=np.float32))
            xt = xt.contiguous(memory_format=torch.channels_last)
            yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[:, None]
            opt.zero_grad()
            loss = combined_loss(net(xt), yt)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            losses.append(float(loss.item()))
        val_iou = iou_score(_logits(net, val_pairs.x), val_y)
        if cosine is not None:
            cosine.step()
        elif plateau is not None:
            plateau.step(val_iou)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_iou": val_iou})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_iou=f"{val_iou:.3f}")
        if val_iou > best_iou:
            best_iou, best_epoch = val_iou, epoch + 1
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch + 1 - best_epoch >= patience:
            break
        if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
            break
    bar.close()
    if best_state is not None:
        net.load_state_dict(best_state)
    net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    net.eval()
    return {
        "best_val_iou": best_iou,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "seconds": time.perf_counter() - start,
        "history": history,
    }


def train(
    out: str | Path,
    *,
    preset: str = "default",
    stacks: Sequence[str | Path] = (),
    labels: str | None = None,
    seed: int = 0,
    epochs: int | None = None,
    n_train: int | None = None,
    n_val: int | None = None,
    batch_size: int | None = None,
    crop: int | None = None,
    shape: Sequence[int] | None = None,
    architecture: dict[str, Any] | None = None,
    context: int | None = None,
    progress: bool = True,
    max_minutes: float | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train a U-Net on weak labels and write it as a model folder ``out``.

    Parameters
    ----------
    out : path
        Model folder to write (``config.json``, ``weights.pt``, ``metrics.json``).
    preset : str
        A recipe from :data:`PRESETS`; the other arguments override its fields.
    stacks : sequence of paths
        User stacks (TIFF / .npy / Zarr) added to the simulated training stacks.
    labels : {"otsu", "depth"}
        Weak labels: ``"otsu"``, Otsu on std maps as in the paper; ``"depth"``, the depth-based
        masks of :func:`livefocus.stream.reconstruct` (settings
        ``ReconstructSettings.for_frame`` of the frame size, the stack's own z step). The kind
        and its settings go to ``config.json`` under ``"labels"``. None: the preset's
        (``"depth"`` for the ``depth`` preset, else ``"otsu"``).
    seed : int
        Seed of the weights, batches and augmentations (simulated data use fixed seeds).
    context : int, optional
        Planes per input: the current one and the ``context - 1`` before it in the stack
        (the input channels; windows normalised jointly, read either way through the stack
        at random while training). None: the preset's (1: single frames).
    max_minutes : float, optional
        Stop after this many minutes (the run is then no longer exactly reproducible).
    overwrite : bool
        Replace an existing model folder ``out`` written by livefocus (only once training
        has succeeded); anything else at ``out`` is never replaced.

    Returns
    -------
    dict
        The metrics written to ``metrics.json`` (also in ``config.json``).
    """
    _check_out(out)
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    p = dict(PRESETS[preset])
    if labels is None:
        labels = str(p.get("labels", "otsu"))
    if labels not in LABEL_KINDS:
        raise ValueError(f"labels must be 'otsu' or 'depth', got {labels!r}")
    p["labels"] = labels
    stacks = _check_paths(stacks, "stacks")
    _check_seed(seed)
    for key, value in {
        "epochs": epochs,
        "n_train": n_train,
        "n_val": n_val,
        "batch_size": batch_size,
        "crop": crop,
    }.items():
        if value is not None:
            check = check_count if key == "n_train" else check_positive_int
            p[key] = check(value, key)
    if shape is not None:
        p["shape"] = list(_check_shape(shape))
    if max_minutes is not None:
        check_positive_number(max_minutes, "max_minutes")
    if architecture is not None:
        p["architecture"] = {**p["architecture"], **architecture}
    if context is not None:
        p["context"] = check_context(context)
    planes = check_context(p.get("context", 1))
    if "in_channels" in p["architecture"] and p["architecture"]["in_channels"] != planes:
        raise ValueError(
            f"architecture in_channels ({p['architecture']['in_channels']!r}) must equal "
            f"context ({planes})"
        )
    p["architecture"] = {**p["architecture"], "in_channels": planes}
    UNetConfig.from_dict(p["architecture"])  # its errors name the field
    # the labelled training stacks stay in memory (inputs read both ways, 8 flips of the
    # labels): about 20 + 18 * planes bytes a voxel (17 GB for 288 x 12 x 256² at 3 planes)
    voxels = (p["n_train"] + p["n_val"]) * math.prod(int(v) for v in p["shape"])
    check_memory((20 + 18 * planes) * voxels, "n_train", p["n_train"], fraction=0.9)
    check_output(out, overwrite=overwrite, inputs=stacks, kind="model")
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    torch.manual_seed(seed)
    net = UNet(UNetConfig.from_dict(p["architecture"]))
    t0 = time.perf_counter()
    sim_shape = tuple(int(v) for v in p["shape"])
    randomised = p.get("data") == "randomised"
    if randomised:
        generators = list(p.get("generators", ["layers"]))
        source: Any = functools.partial(pairs_from_randomised, generators=generators)
    else:
        source = pairs_from_simulation
    parts = []
    if p["n_train"]:
        parts.append(
            source(
                p["n_train"],
                shape=sim_shape,
                seed=SEEDS["train"],
                labels=labels,
                augment=True,
                context=planes,
            )
        )
    if stacks:
        # cut to the simulated frame size when joining simulated stacks
        tile = sim_shape[1:] if parts else None
        parts.append(
            pairs_from_files(stacks, labels=labels, augment=True, tile=tile, context=planes)
        )
    if not parts:
        raise ValueError("n_train is 0 and no stacks were given: nothing to train on")
    train_pairs = Pairs.concat(parts)
    _check_frame_size(train_pairs, net, "stacks")
    val_pairs = source(
        p["n_val"], shape=sim_shape, seed=SEEDS["val"], labels=labels, context=planes
    )
    data_seconds = time.perf_counter() - t0
    fit = _fit(
        net,
        train_pairs,
        val_pairs,
        epochs=p["epochs"],
        batch_size=p["batch_size"],
        lr=p["lr"],
        crop=p["crop"],
        patience=p["patience"],
        seed=seed,
        progress=progress,
        desc=f"train {preset}",
        max_minutes=max_minutes,
        schedule=str(p.get("schedule", "plateau")),
        alone=float(p.get("alone", 0.0)),
    )
    metrics = {
        "labels": labels,
        "val_iou_vs_weak": fit["best_val_iou"],
        "best_epoch": fit["best_epoch"],
        "epochs_run": fit["epochs_run"],
        "train_seconds": fit["seconds"],
        "data_seconds": data_seconds,
        "torch_threads": torch.get_num_threads(),
        "history": fit["history"],
    }
    config = {
        "name": Path(out).name,
        "threshold": float(p.get("threshold", 0.5)),
        **({"z_peaks": dict(p["z_peaks"])} if p.get("z_peaks") else {}),
        # A global-context net sees each tile's own statistics, so it runs frames up to 2048 px
        # whole (tiles would change its masks); a local net tiles seamlessly at 512 px.
        "tile": 2048 if net.config.global_context else 512,
        "overlap": 64,
        "labels": label_config(labels, sim_shape[1:]),
        "training": {
            "preset": preset,
            "seed": seed,
            "recipe": p,
            "loss": "focal + dice + bce",
            "optimizer": "adam",
            "augmentation": "flips, rot90" + (", stack read either way" if planes > 1 else ""),
            "data": {
                "simulated": {
                    "n_stacks": p["n_train"],
                    "shape": sim_shape,
                    "seeds": [SEEDS["train"], SEEDS["train"] + p["n_train"] - 1],
                    "contrasts": ["brightfield", "fluorescence"],
                    "randomised": (
                        [f"livefocus.model.randomise.{MAKERS[g].__name__}" for g in generators]
                        if randomised
                        else None
                    ),
                },
                "validation_seeds": [SEEDS["val"], SEEDS["val"] + p["n_val"] - 1],
                "user_stacks": [str(s) for s in stacks],
                "frame_shape": list(train_pairs.x.shape[-2:]),  # user stacks are cut to it
                "n_slices": len(train_pairs),
            },
            "command": f"livefocus train --preset {preset} --labels {labels} --seed {seed}",
        },
        "metrics": {k: v for k, v in metrics.items() if k != "history"},
    }
    save(net, prepare_output(out, overwrite=overwrite, inputs=stacks, kind="model"), config)
    Path(out, "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def finetune(
    model: str | Path | Model,
    out: str | Path,
    *,
    stacks: Sequence[str | Path] = (),
    masks: Sequence[str | Path] = (),
    n_sim: int = 3,
    shape: Sequence[int] = (12, 256, 256),
    epochs: int = 15,
    lr: float = 1e-4,
    patience: int = 4,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fine-tune a model with batch 1 on a few stacks with exact masks; write it to ``out``.

    Simulated stacks (their exact truth stands in for manual masks) and/or user stacks with
    mask files (TIFF / .npy / Zarr, non-zero = in focus, one per stack). Validation: one more
    simulated stack with its truth. ``overwrite`` replaces an existing model folder ``out``
    written by livefocus (never the model it starts from, nor anything else).
    """
    _check_out(out)
    stacks = _check_paths(stacks, "stacks")
    masks = _check_paths(masks, "masks")
    if masks and len(masks) != len(stacks):
        raise ValueError(f"masks: got {len(masks)} for {len(stacks)} stacks; give one per stack")
    n_sim = check_count(n_sim, "n_sim")
    shape = _check_shape(shape)
    epochs = check_positive_int(epochs, "epochs")
    lr = check_positive_number(lr, "lr")
    patience = check_positive_int(patience, "patience")
    _check_seed(seed)
    base = model if isinstance(model, Model) else load(model)
    inputs = [*stacks, *masks, *([base.path] if base.path is not None else [])]
    check_output(out, overwrite=overwrite, inputs=inputs, kind="model")
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    net = UNet(base.net.config)
    net.load_state_dict(base.net.state_dict())
    sim_shape = tuple(int(v) for v in shape)
    planes = base.context
    parts = []
    if n_sim:
        parts.append(
            pairs_from_simulation(
                n_sim, shape=sim_shape, seed=SEEDS["finetune"], target="truth", context=planes
            )
        )
    if stacks:
        tile = sim_shape[1:] if parts else None  # the simulated frame size, if joining them
        parts.append(pairs_from_files(stacks, masks or None, tile=tile, context=planes))
    elif masks:
        raise ValueError("masks were given without stacks")
    if not parts:
        raise ValueError("nothing to fine-tune on: n_sim is 0 and no stacks were given")
    ft_pairs = Pairs.concat(parts)
    _check_frame_size(ft_pairs, net, "stacks")
    val_pairs = pairs_from_simulation(
        1, shape=sim_shape, seed=SEEDS["finetune_val"], target="truth", context=planes
    )
    fit = _fit(
        net,
        ft_pairs,
        val_pairs,
        epochs=epochs,
        batch_size=1,
        lr=lr,
        crop=max(sim_shape[1:]),
        patience=patience,
        seed=seed,
        progress=progress,
        desc="finetune",
    )
    metrics = {
        "val_iou_vs_truth": fit["best_val_iou"],
        "best_epoch": fit["best_epoch"],
        "epochs_run": fit["epochs_run"],
        "train_seconds": fit["seconds"],
        "history": fit["history"],
    }
    config = {
        k: v for k, v in base.config.items() if k not in ("format", "architecture", "weights")
    }
    config["name"] = Path(out).name
    config["finetuning"] = {
        "from": base.name,
        "batch_size": 1,
        "lr": lr,
        "seed": seed,
        "simulated": {"n_stacks": n_sim, "shape": sim_shape, "first_seed": SEEDS["finetune"]},
        "user_stacks": [str(s) for s in stacks],
        "metrics": {k: v for k, v in metrics.items() if k != "history"},
    }
    save(net, prepare_output(out, overwrite=overwrite, inputs=inputs, kind="model"), config)
    Path(out, "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _iou(a: np.ndarray, b: np.ndarray) -> float | None:
    """IoU of two masks; None (not scored) where both are empty (0/0, which
    :func:`~livefocus.sim.mask_scores` scores as 1)."""
    from livefocus.sim import mask_scores

    if not (np.any(a) or np.any(b)):
        return None
    return mask_scores(a, b)["iou"]


def _final_masks(model: Model, probs: np.ndarray, nz: int) -> np.ndarray:
    """A model's masks of consecutive stacks of ``nz`` planes from their probabilities (as
    :meth:`Engine.predict_mask` gives them)."""
    return stack_masks(probs, model.threshold, model.z_peaks, nz=nz)


def evaluate(
    models: Sequence[str | Path | Model],
    *,
    n_stacks: int = 4,
    shape: Sequence[int] = (20, 256, 256),
    real: Sequence[str | Path] = (),
    figure: str | Path | None = None,
) -> list[dict[str, Any]]:
    """A Table-2 analogue: IoU of each model against weak labels and against exact truth on
    held-out simulated stacks, and against weak labels on real stacks.

    Returns one row per model and dataset (``model``, ``data``, ``iou_vs_weak`` (Otsu weak
    labels, the paper's), ``iou_vs_depth`` (the depth labels of ``--labels depth``),
    ``iou_vs_truth``, and for simulated data ``weak_vs_truth`` and ``depth_vs_truth``: the
    labels' own IoU against truth; None where both masks are empty: not scored). With
    ``figure``, writes a Fig.-4-style PNG of the first model and stack.
    """
    from livefocus.io import read_stack, stack_z_step
    from livefocus.model.engines import engine

    if isinstance(models, (str, Path, Model)):
        models = [models]
    n_stacks = check_positive_int(n_stacks, "n_stacks")
    zyx = _check_shape(shape)
    real = _check_paths(real, "real")
    if figure is not None:
        check_figure_path(figure, "figure", inputs=real)
    loaded = [m if isinstance(m, Model) else load(m) for m in models]
    if not loaded:
        raise ValueError("models must name at least one model to evaluate")
    reals = []
    for path in real:  # before the simulation: a bad stack is said at once, naming `real`
        try:
            raw = check_stack(read_stack(path), f"stack {str(path)!r}")
            weak = label_stack(raw)
            dlab = label_stack(raw, labels="depth", z_step=stack_z_step(path))
        except (OSError, ValueError) as exc:
            raise ValueError(f"real {exc}") from exc
        reals.append((Path(path).name, raw, weak, dlab))
    sim = pairs_from_simulation(n_stacks, shape=zyx, seed=SEEDS["test"], target="weak")
    depth = pairs_from_simulation(
        n_stacks, shape=zyx, seed=SEEDS["test"], target="weak", labels="depth"
    ).y
    assert sim.truth is not None
    # the inputs of models of several planes: each plane's window of its own stack
    inputs = {1: sim.x}
    for planes in sorted({m.context for m in loaded} - {1}):
        inputs[planes] = pairs_from_simulation(
            n_stacks, shape=zyx, seed=SEEDS["test"], target="truth", context=planes
        ).x
    rows: list[dict[str, Any]] = []
    for m in loaded:
        pred = _final_masks(m, torch.sigmoid(_logits(m.net, inputs[m.context])).numpy(), zyx[0])
        rows.append(
            {
                "model": m.name,
                "data": f"simulated test ({n_stacks} x {zyx})",
                "iou_vs_weak": _iou(pred, sim.y),
                "iou_vs_depth": _iou(pred, depth),
                "iou_vs_truth": _iou(pred, sim.truth),
                "weak_vs_truth": _iou(sim.y, sim.truth),
                "depth_vs_truth": _iou(depth, sim.truth),
            }
        )
        for name, raw, weak, dlab in reals:
            p = engine(m, "onnxruntime").predict_mask(raw)  # tiled: real frames may be large
            rows.append(
                {
                    "model": m.name,
                    "data": name,
                    "iou_vs_weak": _iou(p, weak),
                    "iou_vs_depth": _iou(p, dlab),
                }
            )
    if figure is not None:
        from livefocus.model.figures import fig4

        n = zyx[0]
        first = inputs[loaded[0].context][:n]
        pred = _final_masks(loaded[0], torch.sigmoid(_logits(loaded[0].net, first)).numpy(), n)
        fig4(sim.x[:n], pred, sim.truth[:n], sim.y[:n], figure)
    return rows
