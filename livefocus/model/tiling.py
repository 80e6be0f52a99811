"""Inference on any frame size: overlapping tiles blended with smooth weights."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["blend_weights", "pad_to_multiple", "predict_tiled", "tile_starts"]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` with at least ``overlap``."""
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    return [*starts, size - tile]


def blend_weights(tile: int, overlap: int) -> np.ndarray:
    """(tile,) weights: a raised-cosine ramp over ``overlap`` pixels at each end, 1 inside.

    The ramp keeps away from 0 so that frame borders (covered by one tile) stay defined.
    """
    w = np.ones(tile, np.float32)
    if overlap > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        w[:overlap] = np.maximum(ramp, 1e-3)
        w[-overlap:] = np.maximum(ramp[::-1], 1e-3)
    return w


def pad_to_multiple(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad the last two axes of ``x`` up to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        widths = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
        # reflect needs pads shorter than the frame; symmetric covers tiny frames
        x = np.pad(x, widths, mode="reflect" if ph < h and pw < w else "symmetric")
    return x, (h, w)


def predict_tiled(
    predict: Callable[[np.ndarray], np.ndarray],
    frame: np.ndarray,
    *,
    tile: int = 512,
    overlap: int = 64,
    multiple: int = 8,
    batch: int = 4,
) -> np.ndarray:
    """Probabilities of a large (H, W) frame from overlapping tiles.

    Parameters
    ----------
    predict : callable
        Maps a float32 batch (B, h, w) of normalised tiles, or (B, C, h, w) for a frame of
        ``C`` planes, to probabilities (B, h, w).
    frame : (H, W) or (C, H, W) array
        One frame (or the window of planes a model of ``C`` planes takes), already normalised
        (normalise the whole frame, not each tile, so that all tiles see the same intensity
        scale).
    tile, overlap : int
        Tile size and overlap in pixels; tiles are blended with :func:`blend_weights` so that
        seams match a single pass to within the model's border effects.
    multiple : int
        Tile sizes are padded to a multiple of this (``2 ** depth``).
    batch : int
        Tiles per call of ``predict``.

    Returns
    -------
    (H, W) float32 array
    """
    if frame.ndim not in (2, 3):
        raise ValueError(f"frame must be (H, W) or (C, H, W), got shape {frame.shape}")
    if overlap < 0 or tile <= 2 * overlap:
        raise ValueError(f"need 0 <= overlap < tile / 2, got tile={tile}, overlap={overlap}")
    h, w = frame.shape[-2:]
    if h <= tile and w <= tile:
        padded, _ = pad_to_multiple(frame[None], multiple)
        return predict(padded)[0, :h, :w].astype(np.float32)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    wy = blend_weights(th, overlap if len(ys) > 1 else 0)
    wx = blend_weights(tw, overlap if len(xs) > 1 else 0)
    weight = wy[:, None] * wx[None, :]
    acc = np.zeros((h, w), np.float32)
    norm = np.zeros((h, w), np.float32)
    boxes = [(y, x) for y in ys for x in xs]
    for i in range(0, len(boxes), batch):
        chunk = boxes[i : i + batch]
        tiles = np.stack([frame[..., y : y + th, x : x + tw] for y, x in chunk])
        padded, _ = pad_to_multiple(tiles, multiple)
        probs = predict(padded)[:, :th, :tw]
        for (y, x), p in zip(chunk, probs, strict=True):
            acc[y : y + th, x : x + tw] += p * weight
            norm[y : y + th, x : x + tw] += weight
    return acc / norm
