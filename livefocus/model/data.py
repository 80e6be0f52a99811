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
    "Pairs",
    "check_frames",
    "depth_label_settings",
    "dihedral",
    "label_config",
    "label_stack",
    "model_input",
    "normalise",
    "pairs_from_files",
    "pairs_from_simulation",
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


def model_input(frames: Any) -> np.ndarray:
    """Raw (H, W) or (N, H, W) frames as the network's input: checked, float32, normalised."""
    return np.asarray(normalise(check_frames(frames)))


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

    ``y_dihedral``, where the targets are weak labels, holds for each of the 8
    :func:`dihedral` transforms the labels of the transformed slices, mapped back onto the
    untransformed ones (``y_dihedral[k]`` is (N, H, W); ``y_dihedral[0]`` is ``y``), for
    augmentation; None where the targets commute with flips (exact masks)."""

    x: np.ndarray
    y: np.ndarray
    truth: np.ndarray | None
    stack: np.ndarray
    y_dihedral: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.x)

    def augmented(self, i: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``i`` under dihedral transform ``k`` and its target."""
        y = self.y_dihedral[k][i] if self.y_dihedral is not None else self.y[i]
        return dihedral(self.x[i], k), dihedral(y, k)

    def tiles(self, shape: Sequence[int]) -> Pairs:
        """The slices cut into (Y, X) = ``shape`` tiles that cover them (the last row and
        column of tiles flush with the edges), labels computed on the whole slices cut alike;
        ``self`` when the slices already have that shape. Lets stacks of any frame size train
        together.

        Raises ValueError when a slice is smaller than ``shape``."""
        ty, tx = (int(v) for v in shape)
        h, w = self.x.shape[1:]
        if (h, w) == (ty, tx):
            return self
        if h < ty or w < tx:
            raise ValueError(
                f"frames of {h} x {w} px are smaller than the training frames ({ty} x {tx});"
                " give a smaller training shape"
            )
        cuts = [(a, b) for a in _tile_starts(h, ty) for b in _tile_starts(w, tx)]

        def cut(arr: np.ndarray) -> np.ndarray:
            return np.stack([arr[:, a : a + ty, b : b + tx] for a, b in cuts], axis=1).reshape(
                -1, ty, tx
            )

        return Pairs(
            x=cut(self.x),
            y=cut(self.y),
            truth=None if self.truth is None else cut(self.truth),
            stack=np.repeat(self.stack, len(cuts)),
            y_dihedral=None if self.y_dihedral is None else [cut(v) for v in self.y_dihedral],
        )

    @staticmethod
    def concat(parts: Sequence[Pairs]) -> Pairs:
        """Pairs of several sources (truth kept only if every part has it)."""
        truths = [p.truth for p in parts]
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
        )


def pairs_from_simulation(
    n_stacks: int,
    *,
    shape: Sequence[int] = (12, 256, 256),
    seed: int = 0,
    contrasts: Sequence[str] = ("brightfield", "fluorescence"),
    target: str = "weak",
    labels: str = "otsu",
    augment: bool = False,
) -> Pairs:
    """Pairs from ``n_stacks`` simulated stacks (seeds ``seed .. seed + n_stacks - 1``,
    contrasts alternating); ``target`` is ``"weak"`` (weak labels of kind ``labels``, see
    :func:`label_stack`) or ``"truth"`` (exact masks). ``augment``: also label the 8 flips and
    rotations of each weak-labelled stack (``Pairs.y_dihedral``, for training).
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
        x = normalise(check_frames(sim.raw))
        parts.append(Pairs(x, y, sim.mask, np.zeros(len(sim.raw), int), variants))
    return Pairs.concat(parts)


def pairs_from_files(
    stacks: Sequence[str | Path],
    masks: Sequence[str | Path] | None = None,
    *,
    labels: str = "otsu",
    augment: bool = False,
    tile: Sequence[int] | None = None,
) -> Pairs:
    """Pairs from user stacks (TIFF / .npy / Zarr, read with :func:`livefocus.read_stack`);
    with ``masks`` (one file per stack, non-zero = in focus) the masks are the targets and the
    truth, otherwise weak labels are the targets (``labels="depth"`` takes the z step stored
    with the file, :func:`livefocus.io.stack_z_step`, else 1 µm). Labels are made on whole
    slices; with ``tile`` (Y, X) every stack is then cut into such tiles
    (:meth:`Pairs.tiles`), so that they join other pairs of that frame size. Without it,
    stacks of different frame sizes are cut into tiles of the smallest height and width."""
    from livefocus.io import read_stack

    if masks is not None and len(masks) != len(stacks):
        raise ValueError(f"got {len(stacks)} stacks but {len(masks)} masks; give one per stack")
    parts = []
    for i, path in enumerate(stacks):
        raw = np.asarray(read_stack(path))
        x = normalise(check_frames(raw, name=f"stack {str(path)!r}"))
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
        parts.append(Pairs(x, y, None if masks is None else y, np.zeros(len(raw), int), variants))
    if tile is None and len({p.x.shape[1:] for p in parts}) > 1:
        tile = (min(p.x.shape[1] for p in parts), min(p.x.shape[2] for p in parts))
    return Pairs.concat(parts if tile is None else [p.tiles(tile) for p in parts])
