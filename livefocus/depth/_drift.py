"""How far the specimen moved between two Z-stacks of one position: :func:`stack_drift`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

__all__ = ["Drift", "stack_drift"]

#: Fewest pixels with a depth in both stacks (after the lateral shift) for a Z drift.
MIN_DEPTH_PIXELS = 50
#: Least share of each axis the two images must still have in common for a lateral move.
MIN_OVERLAP = 0.125
#: How much better another candidate move must match than the phase correlation's own.
_PREFER = 0.1


@dataclass(frozen=True)
class Drift:
    """The specimen's move from one stack to the next (the later one's content relative to the
    earlier one's).

    Attributes
    ----------
    x_px, y_px : float
        Lateral move in pixels (+x: toward higher columns, +y: toward higher rows), from the
        phase correlation of the two all-in-focus images (OpenCV's ``phaseCorrelate``,
        sub-pixel, under a Hann window); 0 where the images have no structure in common
        (``match`` NaN).
    z_um : float
        Axial move in µm (+: the specimen higher, toward larger stage Z): the median change
        of the depth over the pixels that keep a depth in both stacks, once aligned
        laterally; NaN when fewer than :data:`MIN_DEPTH_PIXELS` do.
    response : float
        The phase correlation's peak (about 1 for a clean match, near 0 for none).
    pixels : int
        Pixels that gave the Z drift.
    match : float
        Pearson correlation of the parts of the two all-in-focus images that show the same
        content for the move (1: identical; near 0 for a move that matches nothing). The
        phase correlation gives a move only up to a whole field (a move of ``s`` pixels and
        one of ``s - size`` look alike): of the candidates, the one that matches best is
        taken. NaN when the images have no structure in common to compare.
    overlap : float
        Share of the field the two images have in common for the move (1: no move).
    """

    x_px: float
    y_px: float
    z_um: float
    response: float
    pixels: int
    match: float = math.nan
    overlap: float = math.nan

    def as_dict(self) -> dict[str, float | int | None]:
        """The fields, NaN as None (JSON)."""
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


def _overlap(shift: int, size: int) -> tuple[slice, slice]:
    """Slices of the earlier and the later image that show the same content for a move of
    ``shift`` pixels along an axis of ``size``."""
    if shift >= 0:
        return slice(0, size - shift), slice(shift, size)
    return slice(-shift, size), slice(0, size + shift)


def _candidates(shift: int, size: int) -> list[int]:
    """The moves along an axis of ``size`` that a phase-correlation peak at ``shift`` stands
    for (it is periodic in ``size``) and that leave :data:`MIN_OVERLAP` of the axis in common."""
    moves = {shift, shift - size, shift + size}
    return sorted(m for m in moves if abs(m) <= size - _least(size))


def _least(size: int) -> int:
    """Fewest pixels of an axis of ``size`` the two images must share (:data:`MIN_OVERLAP`)."""
    return max(2, math.ceil(MIN_OVERLAP * size))


def _match(a: np.ndarray, b: np.ndarray, sy: int, sx: int) -> float:
    """Pearson correlation of ``a`` and ``b`` where they show the same content for the move
    (``sy``, ``sx``); NaN when either part is flat."""
    (ya, yb), (xa, xb) = _overlap(sy, a.shape[0]), _overlap(sx, a.shape[1])
    pa = a[ya, xa].astype(np.float64).ravel()
    pb = b[yb, xb].astype(np.float64).ravel()
    pa -= pa.mean()
    pb -= pb.mean()
    norm = math.sqrt(float(pa @ pa) * float(pb @ pb))
    return float(pa @ pb) / norm if norm > 0 else math.nan


def stack_drift(
    before_aif: np.ndarray,
    before_depth: np.ndarray,
    after_aif: np.ndarray,
    after_depth: np.ndarray,
    *,
    z_offset_um: float = 0.0,
) -> Drift:
    """The specimen's move between two stacks of one position (see :class:`Drift`).

    Parameters
    ----------
    before_aif, after_aif : ndarray
        (Y, X) all-in-focus images of the earlier and the later stack
        (:attr:`StackResult.all_in_focus`).
    before_depth, after_depth : ndarray
        (Y, X) depth maps (µm above each stack's lowest plane, NaN where none).
    z_offset_um : float
        How much higher the later stack's lowest plane lies than the earlier one's (0 when
        both stacks have the same Z plan).
    """
    a = np.asarray(before_aif, np.float32)
    b = np.asarray(after_aif, np.float32)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"the all-in-focus images must be (Y, X) of one shape, got {a.shape}")
    if np.asarray(before_depth).shape != a.shape or np.asarray(after_depth).shape != a.shape:
        raise ValueError(f"the depth maps must have the images' shape {a.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("the all-in-focus images must be finite")
    ny, nx = a.shape
    if ny >= 2 and nx >= 2:
        window = cv2.createHanningWindow((nx, ny), cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(a - a.mean(), b - b.mean(), window)
    else:  # a line of pixels: nothing to correlate
        (dx, dy), response = (0.0, 0.0), math.nan
    sy, sx = round(dy), round(dx)
    tried = [
        (_match(a, b, my, mx), my, mx) for my in _candidates(sy, ny) for mx in _candidates(sx, nx)
    ]
    tried = [c for c in tried if math.isfinite(c[0])]
    match = math.nan
    if tried:
        # the peak's own move, unless another matches clearly better (a move beyond half the
        # field)
        match, my, mx = max(
            tried, key=lambda c: c[0] + (_PREFER if (c[1], c[2]) == (sy, sx) else 0)
        )
        dy, dx, sy, sx = dy + (my - sy), dx + (mx - sx), my, mx
    else:  # no structure in common to compare: no lateral move is measured
        dy = dx = 0.0
        sy = sx = 0
    (ya, yb), (xa, xb) = _overlap(sy, ny), _overlap(sx, nx)
    if tried and (abs(sy) > ny // 16 or abs(sx) > nx // 16):
        # beyond a sixteenth of the field the peak weakens and may be off by a pixel or so
        # (the window weighs the parts the images do not share): the parts in common, aligned,
        # give the rest (twice: the first correction may change the parts)
        for _ in range(2):
            pa, pb = a[ya, xa], b[yb, xb]
            if min(pa.shape) < 2:
                break
            hann = cv2.createHanningWindow((pa.shape[1], pa.shape[0]), cv2.CV_32F)
            (rx, ry), _ = cv2.phaseCorrelate(pa - pa.mean(), pb - pb.mean(), hann)
            if not (abs(rx) < 2 and abs(ry) < 2):
                break
            ty, tx = round(sy + ry), round(sx + rx)
            if (ty, tx) == (sy, sx):
                dy, dx = sy + ry, sx + rx
                break
            if abs(ty) > ny - _least(ny) or abs(tx) > nx - _least(nx):
                break  # too little would be left in common: keep the move found
            dy, dx, sy, sx = sy + ry, sx + rx, ty, tx
            (ya, yb), (xa, xb) = _overlap(sy, ny), _overlap(sx, nx)
            match = _match(a, b, sy, sx)
    d0 = np.asarray(before_depth, np.float64)[ya, xa]
    d1 = np.asarray(after_depth, np.float64)[yb, xb] + z_offset_um
    both = np.isfinite(d0) & np.isfinite(d1)
    n = int(both.sum())
    dz = float(np.median(d1[both] - d0[both])) if n >= MIN_DEPTH_PIXELS else math.nan
    overlap = (ny - abs(sy)) * (nx - abs(sx)) / (ny * nx)
    return Drift(float(dx), float(dy), dz, float(response), n, float(match), float(overlap))
