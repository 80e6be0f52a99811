"""Training pairs: raw slices (normalised per slice) and their labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LABEL_DEFAULTS",
    "LABEL_KINDS",
    "MAX_CONTEXT",
    "Pairs",
    "check_context",
    "check_frames",
    "context_windows",
    "depth_label_settings",
    "dihedral",
    "label_config",
    "label_stack",
    "model_input",
    "normalise",
    "normalise_windows",
    "pairs_from_files",
    "pairs_from_simulation",
    "stack_pairs",
    "undihedral",
]

#: How weak labels are made (written to config.json): Otsu on std maps, one threshold per slice
#: w = 32 px suits 256-512 px training frames (the paper's 128 was for 2048 px frames).
LABEL_DEFAULTS: dict[str, Any] = {
    "measure": "std",
    "window": 32,
    "strides": [4, 8],
    "scope": "slice",
    "method": "otsu",
}


#: Frames whose largest magnitude passes 2**48 are scaled to about 2**32 (see check_frames):
#: float32 sums of their squared deviations then stay finite for frames up to 2**26 pixels.
_PEAK_EXPONENT = 48
_TARGET_EXPONENT = 32


def check_frames(frames: Any, *, name: str = "frames") -> np.ndarray:
    """``frames`` as a float32 (N, H, W) array; 2-D input becomes N = 1.

    Frames with values beyond 2**48 in magnitude (beyond float32, or whose squares overflow
    it) are first scaled, all by the same power of two: the per-slice z-score of the model
    input (:func:`normalise`) is the same for them.

    Raises ValueError for other dimensions, non-numeric or complex dtypes, empty or non-finite
    frames.
    """
    arr = np.asarray(frames)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must be an integer or float array, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name} must be (H, W) or (N, H, W), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    peak = max(abs(float(arr.max())), abs(float(arr.min())))
    exponent = math.frexp(peak)[1] if math.isfinite(peak) else 0
    if exponent > _PEAK_EXPONENT:
        # float32 (or the squares behind the per-slice z-score) would overflow: scale all
        # frames by one power of two, which the z-score that follows does not see
        arr = np.ldexp(arr.astype(np.float64), _TARGET_EXPONENT - exponent)
    out = arr.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        bad = np.flatnonzero(~np.isfinite(out).reshape(len(out), -1).all(axis=1))
        raise ValueError(
            f"{name} must be finite: NaN or infinite values (frames {bad.tolist()[:10]})"
        )
    return out


def normalise(frames: np.ndarray) -> np.ndarray:
    """Per-slice z-score (the model's input normalisation, ``"per_slice_zscore"``)."""
    x = frames.astype(np.float32, copy=True)
    mean = x.mean(axis=(-2, -1), keepdims=True)
    std = x.std(axis=(-2, -1), keepdims=True)
    return np.asarray((x - mean) / np.maximum(std, 1e-6), dtype=np.float32)


def context_windows(frames: np.ndarray, context: int) -> np.ndarray:
    """The causal input windows of a (Z, H, W) stack: (Z, ``context``, H, W), plane ``k``
    with the ``context - 1`` planes before it, oldest first (``[k - context + 1, ..., k]``);
    the first plane stands in for the planes before the stack's start.

    Examples
    --------
    >>> stack = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((3, 1, 1))
    >>> context_windows(stack, 3)[:, :, 0, 0].tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 2.0]]
    """
    context = check_context(context)
    z = len(frames)
    index = np.maximum(np.arange(z)[:, None] + np.arange(1 - context, 1)[None, :], 0)
    return np.asarray(frames[index])


def normalise_windows(windows: np.ndarray) -> np.ndarray:
    """One z-score over all planes and pixels of each (context, H, W) window of
    ``windows`` (N, context, H, W) (``"joint_zscore"``): no gain, offset or bit depth
    changes it, and the planes keep their brightness relative to each other."""
    x = windows.astype(np.float32, copy=True)
    mean = x.mean(axis=(-3, -2, -1), keepdims=True)
    std = x.std(axis=(-3, -2, -1), keepdims=True)
    return np.asarray((x - mean) / np.maximum(std, 1e-6), dtype=np.float32)


def check_context(context: Any) -> int:
    """The number of planes a model sees (a positive int, at most :data:`MAX_CONTEXT`)."""
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)):
        raise ValueError(f"context must be a positive int, got {context!r}")
    if not 1 <= int(context) <= MAX_CONTEXT:
        raise ValueError(f"context must be from 1 to {MAX_CONTEXT}, got {context!r}")
    return int(context)


#: Most planes (the current one and those before it) a model may take as input.
MAX_CONTEXT = 16


def model_input(frames: Any, context: int = 1) -> np.ndarray:
    """Raw frames as the network's input: checked, float32, normalised.

    Parameters
    ----------
    frames : array
        ``context`` 1: (H, W) or (N, H, W) frames, each z-scored on its own; returns
        (N, H, W). ``context`` > 1: an (H, W) frame or a (Z, H, W) stack in acquisition order
        (each plane gets the planes before it, :func:`context_windows`), or (N, context, H, W)
        windows, oldest plane first; one z-score per window; returns (N, context, H, W).
    context : int
        Planes per input (the model's ``context``).
    """
    context = check_context(context)
    arr = np.asarray(frames)
    if context == 1:
        return np.asarray(normalise(check_frames(arr)))
    if arr.ndim == 4:
        if arr.shape[1] != context:
            raise ValueError(
                f"frames must be (N, {context}, H, W) windows for a model of {context} planes, "
                f"got shape {arr.shape}"
            )
        n = arr.shape[0]
        flat = check_frames(arr.reshape(n * context, *arr.shape[2:]))
        return normalise_windows(flat.reshape(arr.shape))
    return normalise_windows(context_windows(check_frames(arr), context))


LABEL_KINDS = ("otsu", "depth")


def depth_label_settings(frame_shape: Sequence[int], **overrides: Any) -> dict[str, Any]:
    """The reconstruction settings that ``labels="depth"`` uses for frames of ``frame_shape``
    (:meth:`ReconstructSettings.for_frame`, with ``overrides``), as a JSON-ready dict."""
    from livefocus.depth import ReconstructSettings

    ny, nx = (int(v) for v in frame_shape[-2:])
    return ReconstructSettings.for_frame((ny, nx), **overrides).as_dict()


def label_stack(
    raw: np.ndarray, *, labels: str = "otsu", z_step: float | None = None, **params: Any
) -> np.ndarray:
    """Weak labels of a (Z, H, W) stack.

    Parameters
    ----------
    raw : (Z, H, W) array
    labels : {"otsu", "depth"}
        ``"otsu"``: Otsu threshold of std focus maps, one per slice (the paper; ``params``
        override :data:`LABEL_DEFAULTS`). ``"depth"``: the depth-based masks of
        :func:`livefocus.stream.reconstruct` (``reconstruct(raw, z_step=z_step).mask_depth``,
        settings :meth:`ReconstructSettings.for_frame` of the frame size; ``params`` override
        its fields): a pixel is in focus where one of its confident focus peaks lies within
        half the depth of field (default twice ``z_step``) of the plane.
    z_step : float, optional
        Plane spacing in µm (``labels="depth"`` only; the default depth of field scales with
        it). None: 1.
    """
    from livefocus.focus import focus_maps, weak_labels

    if labels not in LABEL_KINDS:
        raise ValueError(f"labels must be 'otsu' or 'depth', got {labels!r}")
    arr = np.asarray(raw)
    if arr.ndim != 3:
        raise ValueError(f"labels need a (Z, H, W) stack, got shape {arr.shape}")
    if labels == "depth":
        from livefocus.depth import ReconstructSettings, reconstruct

        settings = ReconstructSettings.for_frame((arr.shape[1], arr.shape[2]), **params)
        result = reconstruct(arr, z_step=z_step, settings=settings)
        return np.asarray(result.mask_depth, dtype=bool)
    p = {**LABEL_DEFAULTS, **params}
    maps = focus_maps(arr, p["measure"], window=p["window"], strides=tuple(p["strides"]))
    return np.asarray(weak_labels(maps, method=p["method"], scope=p["scope"]), dtype=bool)


def label_config(labels: str, frame_shape: Sequence[int]) -> dict[str, Any]:
    """What ``config.json`` records about the labels of a model trained with ``labels``."""
    if labels not in LABEL_KINDS:
        raise ValueError(f"labels must be 'otsu' or 'depth', got {labels!r}")
    if labels == "otsu":
        return {"kind": "otsu", **LABEL_DEFAULTS}
    return {
        "kind": "depth",
        "source": "livefocus.stream.reconstruct(raw, z_step=...).mask_depth",
        "z_step": "the stack's (simulated: its z_step; files: stored spacing, else 1 um)",
        "settings": depth_label_settings(frame_shape),
    }


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th of the 8 flips and 90-degree rotations of the last two axes of ``a``
    (``k % 4`` quarter turns, then a left-right flip if ``k >= 4``; ``k = 0`` is ``a``)."""
    if not 0 <= k < 8:
        raise ValueError(f"k must be in 0..7, got {k!r}")
    out = np.rot90(a, k % 4, axes=(-2, -1))
    return out[..., ::-1] if k >= 4 else out


def undihedral(a: np.ndarray, k: int) -> np.ndarray:
    """The inverse of :func:`dihedral`: ``undihedral(dihedral(a, k), k)`` is ``a``.

    A rotation by k quarter turns is undone by 4 - k more; a rotation followed by a flip is a
    reflection, which is its own inverse."""
    if not 0 <= k < 8:
        raise ValueError(f"k must be in 0..7, got {k!r}")
    return dihedral(a, k if k >= 4 else (4 - k) % 4)


def _dihedral_labels(raw: np.ndarray, labels: str, z_step: float | None) -> list[np.ndarray]:
    """Weak labels of each dihedral transform of a (Z, H, W) stack, mapped back onto the
    untransformed stack (so they tile and crop like it).

    The sliding-window scheme is anchored at the top-left corner (windows start at 0, s, 2s,
    ... and are truncated at the bottom and right), so its labels do not commute with flips
    and rotations: pixels near the top and left edges are covered by fewer windows. An
    augmented slice is therefore paired with the labels of the augmented slice, not with the
    augmented labels."""
    return [
        np.ascontiguousarray(
            undihedral(
                label_stack(np.ascontiguousarray(dihedral(raw, k)), labels=labels, z_step=z_step),
                k,
            )
        )
        for k in range(8)
    ]


def _weak_labels(
    raw: np.ndarray, labels: str, z_step: float | None, augment: bool
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Weak labels of a stack and, with ``augment``, those of its 8 flips and rotations
    (:attr:`Pairs.y_dihedral`; the first is the labels themselves)."""
    if not augment:
        return label_stack(raw, labels=labels, z_step=z_step), None
    variants = _dihedral_labels(raw, labels, z_step)
    return variants[0], variants


def _tile_starts(length: int, tile: int) -> list[int]:
    """Starts of ``tile``-long pieces covering ``length`` (the last one flush with the end)."""
    starts = list(range(0, length - tile + 1, tile))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


@dataclass
class Pairs:
    """Normalised slices ``x`` (N, H, W) float32 and targets ``y`` (N, H, W) bool, plus the
    exact truth ``truth`` where known (simulated stacks) and the index of the source stack.

    For a model of several planes (``context`` > 1), ``x`` holds the input windows
    (N, context, H, W) of :func:`model_input`, and ``x_reversed`` the windows of the same
    planes with the stack read the other way (the planes after each one, as an acquisition
    stepping down sees them), for augmentation; None for single planes.

    ``y_dihedral``, where the targets are weak labels, holds for each of the 8
    :func:`dihedral` transforms the labels of the transformed slices, mapped back onto the
    untransformed ones (``y_dihedral[k]`` is (N, H, W); ``y_dihedral[0]`` is ``y``), for
    augmentation; None where the targets commute with flips (exact masks)."""

    x: np.ndarray
    y: np.ndarray
    truth: np.ndarray | None
    stack: np.ndarray
    y_dihedral: list[np.ndarray] | None = None
    x_reversed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def augmented(self, i: int, k: int, reverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``i`` under dihedral transform ``k`` and its target; with ``reverse``, its
        window of the stack read the other way (:attr:`x_reversed`; the target is the same:
        a plane's focus does not depend on the direction it was reached from)."""
        y = self.y_dihedral[k][i] if self.y_dihedral is not None else self.y[i]
        x = self.x_reversed[i] if reverse and self.x_reversed is not None else self.x[i]
        return dihedral(x, k), dihedral(y, k)

    def tiles(self, shape: Sequence[int]) -> Pairs:
        """The slices cut into (Y, X) = ``shape`` tiles that cover them (the last row and
        column of tiles flush with the edges), labels computed on the whole slices cut alike;
        ``self`` when the slices already have that shape. Lets stacks of any frame size train
        together.

        Raises ValueError when a slice is smaller than ``shape``."""
        ty, tx = (int(v) for v in shape)
        h, w = self.x.shape[-2:]
        if (h, w) == (ty, tx):
            return self
        if h < ty or w < tx:
            raise ValueError(
                f"frames of {h} x {w} px are smaller than the training frames ({ty} x {tx});"
                " give a smaller training shape"
            )
        cuts = [(a, b) for a in _tile_starts(h, ty) for b in _tile_starts(w, tx)]

        def cut(arr: np.ndarray) -> np.ndarray:
            pieces = [arr[..., a : a + ty, b : b + tx] for a, b in cuts]
            return np.stack(pieces, axis=1).reshape(-1, *arr.shape[1:-2], ty, tx)

        return Pairs(
            x=cut(self.x),
            y=cut(self.y),
            truth=None if self.truth is None else cut(self.truth),
            stack=np.repeat(self.stack, len(cuts)),
            y_dihedral=None if self.y_dihedral is None else [cut(v) for v in self.y_dihedral],
            x_reversed=None if self.x_reversed is None else cut(self.x_reversed),
        )

    @staticmethod
    def concat(parts: Sequence[Pairs]) -> Pairs:
        """Pairs of several sources (truth kept only if every part has it; reversed windows
        only if every part has them)."""
        truths = [p.truth for p in parts]
        reversed_ = [p.x_reversed for p in parts]
        offsets = np.cumsum([0] + [int(p.stack.max()) + 1 for p in parts[:-1]])
        y_dihedral = None
        if any(p.y_dihedral is not None for p in parts):
            y_dihedral = [
                np.concatenate([p.y if p.y_dihedral is None else p.y_dihedral[k] for p in parts])
                for k in range(8)
            ]
        return Pairs(
            x=np.concatenate([p.x for p in parts]),
            y=np.concatenate([p.y for p in parts]),
            truth=None
            if any(t is None for t in truths)
            else np.concatenate([t for t in truths if t is not None]),
            stack=np.concatenate([p.stack + o for p, o in zip(parts, offsets, strict=True)]),
            y_dihedral=y_dihedral,
            x_reversed=None
            if any(r is None for r in reversed_)
            else np.concatenate([r for r in reversed_ if r is not None]),
        )


def stack_pairs(
    raw: np.ndarray,
    y: np.ndarray,
    truth: np.ndarray | None,
    variants: list[np.ndarray] | None,
    *,
    context: int = 1,
    name: str = "frames",
) -> Pairs:
    """The :class:`Pairs` of one (Z, H, W) stack and its targets, as the network of
    ``context`` planes takes them (:func:`model_input`); with ``variants`` (augmentation)
    and ``context`` > 1, also the windows of the stack read the other way."""
    frames = check_frames(raw, name=name)
    x = model_input(frames, context)
    x_reversed = None
    if context > 1 and variants is not None:
        x_reversed = np.ascontiguousarray(model_input(frames[::-1], context)[::-1])
    return Pairs(x, y, truth, np.zeros(len(frames), int), variants, x_reversed)


def pairs_from_simulation(
    n_stacks: int,
    *,
    shape: Sequence[int] = (12, 256, 256),
    seed: int = 0,
    contrasts: Sequence[str] = ("brightfield", "fluorescence"),
    target: str = "weak",
    labels: str = "otsu",
    augment: bool = False,
    context: int = 1,
) -> Pairs:
    """Pairs from ``n_stacks`` simulated stacks (seeds ``seed .. seed + n_stacks - 1``,
    contrasts alternating); ``target`` is ``"weak"`` (weak labels of kind ``labels``, see
    :func:`label_stack`) or ``"truth"`` (exact masks). ``augment``: also label the 8 flips and
    rotations of each weak-labelled stack (``Pairs.y_dihedral``, for training). ``context``:
    planes per input (see :func:`stack_pairs`).
    """
    from livefocus.sim import simulate_stack

    if target not in ("weak", "truth"):
        raise ValueError(f"target must be 'weak' or 'truth', got {target!r}")
    if len(shape) != 3:
        raise ValueError(f"shape must be (Z, Y, X), got {tuple(shape)}")
    zyx = (int(shape[0]), int(shape[1]), int(shape[2]))
    parts = []
    for i in range(n_stacks):
        sim = simulate_stack(zyx, seed=seed + i, contrast=contrasts[i % len(contrasts)])
        y, variants = sim.mask, None
        if target == "weak":
            y, variants = _weak_labels(sim.raw, labels, float(sim.meta["z_step"]), augment)
        parts.append(stack_pairs(sim.raw, y, sim.mask, variants, context=context))
    return Pairs.concat(parts)


def pairs_from_files(
    stacks: Sequence[str | Path],
    masks: Sequence[str | Path] | None = None,
    *,
    labels: str = "otsu",
    augment: bool = False,
    tile: Sequence[int] | None = None,
    context: int = 1,
) -> Pairs:
    """Pairs from user stacks (TIFF / .npy / Zarr, read with :func:`livefocus.read_stack`);
    with ``masks`` (one file per stack, non-zero = in focus) the masks are the targets and the
    truth, otherwise weak labels are the targets (``labels="depth"`` takes the z step stored
    with the file, :func:`livefocus.io.stack_z_step`, else 1 µm). Labels are made on whole
    slices; with ``tile`` (Y, X) every stack is then cut into such tiles
    (:meth:`Pairs.tiles`), so that they join other pairs of that frame size. Without it,
    stacks of different frame sizes are cut into tiles of the smallest height and width.
    ``context``: planes per input (see :func:`stack_pairs`)."""
    from livefocus.io import read_stack

    if masks is not None and len(masks) != len(stacks):
        raise ValueError(f"got {len(stacks)} stacks but {len(masks)} masks; give one per stack")
    parts = []
    for i, path in enumerate(stacks):
        raw = np.asarray(read_stack(path))
        name = f"stack {str(path)!r}"
        check_frames(raw, name=name)  # before labelling: its errors name the file
        variants = None
        if masks is None:
            z_step = None
            if labels == "depth":
                from livefocus.io import stack_z_step

                z_step = stack_z_step(path)
            y, variants = _weak_labels(raw, labels, z_step, augment)
        else:
            y = np.asarray(read_stack(masks[i])) != 0
            if y.shape != raw.shape:
                raise ValueError(f"mask {masks[i]} has shape {y.shape}, stack has {raw.shape}")
        truth = None if masks is None else y
        parts.append(stack_pairs(raw, y, truth, variants, context=context, name=name))
    if tile is None and len({p.x.shape[-2:] for p in parts}) > 1:
        tile = (min(p.x.shape[-2] for p in parts), min(p.x.shape[-1] for p in parts))
    return Pairs.concat(parts if tile is None else [p.tiles(tile) for p in parts])
