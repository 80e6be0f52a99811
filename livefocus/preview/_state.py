"""What the preview keeps between frames: the latest result and the in-focus volume per stack.

No Qt here. :class:`PreviewState` is written by the acquisition thread (:meth:`submit`) and read
by the GUI thread (:meth:`snapshot`); both hold one lock for a few microseconds only. The only
per-frame work done on the acquisition thread is a strided copy of ``raw * mask`` (at most
:data:`MAX_SIDE` pixels a side) and its two in-focus mean projections.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from livefocus.preview._sizes import VOLUME_MAX_SIDE
from livefocus.stream.types import FrameResult

__all__ = ["MAX_SIDE", "PreviewState", "Snapshot", "StackVolume", "downsample_factor"]

#: Longest side of the accumulated in-focus volume (frames are subsampled to fit).
MAX_SIDE = VOLUME_MAX_SIDE
#: Stacks (position, channel) whose volumes are kept at once (interleaved channels).
MAX_STACKS = 8


def downsample_factor(shape: tuple[int, ...], max_side: int = MAX_SIDE) -> int:
    """Integer stride that brings the longest of the last two sides down to ``max_side``."""
    return max(1, math.ceil(max(shape[-2:]) / max_side))


def masked_plane(frame: np.ndarray, mask: np.ndarray, factor: int) -> np.ndarray:
    """``frame * mask`` subsampled by ``factor``, float32 (zero outside the mask)."""
    sub = np.asarray(frame)[::factor, ::factor].astype(np.float32)
    sub *= np.asarray(mask)[::factor, ::factor] != 0
    return sub


def masked_mean(plane: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """Mean of ``plane`` over the in-focus pixels along ``axis`` (NaN where there are none)."""
    counts = mask.sum(axis=axis, dtype=np.float32)
    sums = plane.sum(axis=axis, dtype=np.float32)
    out = np.full(sums.shape, np.nan, np.float32)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out


@dataclass
class StackVolume:
    """The in-focus volume (``raw * mask``) of one stack, plane by plane, subsampled.

    Attributes
    ----------
    t : int
        Time point of the stack.
    factor : int
        Subsampling stride of the planes.
    frame_shape : tuple of int
        (Y, X) of the full frames.
    planes : dict
        z index -> float32 (Y/factor, X/factor) plane.
    mean_y, mean_x : dict
        z index -> the plane's mean over its in-focus pixels along Y (length X/factor) and
        along X (length Y/factor); NaN where a column (row) has none.
    z_um : dict
        z index -> plane position in µm.
    """

    t: int
    factor: int
    frame_shape: tuple[int, int]
    planes: dict[int, np.ndarray] = field(default_factory=dict)
    mean_y: dict[int, np.ndarray] = field(default_factory=dict)
    mean_x: dict[int, np.ndarray] = field(default_factory=dict)
    z_um: dict[int, float] = field(default_factory=dict)

    def add(self, z: int, z_um: float, plane: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Store plane ``z``: subsampled ``raw * mask`` (and the subsampled mask, if known;
        else the non-zero pixels)."""
        inside = plane != 0 if mask is None else np.asarray(mask) != 0
        self.planes[z] = plane
        self.mean_y[z] = masked_mean(plane, inside, 0)
        self.mean_x[z] = masked_mean(plane, inside, 1)
        self.z_um[z] = z_um

    @property
    def last_z(self) -> int:
        """Highest z index seen (-1 if none)."""
        return max(self.planes, default=-1)

    def copy(self) -> StackVolume:
        """A shallow copy (the plane arrays are never modified once stored)."""
        return StackVolume(
            self.t,
            self.factor,
            self.frame_shape,
            dict(self.planes),
            dict(self.mean_y),
            dict(self.mean_x),
            dict(self.z_um),
        )

    def z_positions(self) -> np.ndarray:
        """Plane positions (µm) in z-index order."""
        return np.array([self.z_um[z] for z in sorted(self.planes)], dtype=np.float64)

    def xz(self, y: float | None) -> np.ndarray:
        """(nz, X/factor) section at full-frame row ``y``, or the in-focus mean if None."""
        return self._section(0, y, self.mean_y)

    def yz(self, x: float | None) -> np.ndarray:
        """(nz, Y/factor) section at full-frame column ``x``, or the in-focus mean if None."""
        return self._section(1, x, self.mean_x)

    def _section(self, axis: int, at: float | None, means: dict[int, np.ndarray]) -> np.ndarray:
        zs = sorted(self.planes)
        if not zs:
            return np.zeros((0, 0), np.float32)
        if at is None:
            return np.stack([means[z] for z in zs])
        index = int(np.clip(at // self.factor, 0, self.planes[zs[0]].shape[axis] - 1))
        return np.stack([np.take(self.planes[z], index, axis=axis) for z in zs])


@dataclass(frozen=True)
class Snapshot:
    """What the GUI thread draws: the latest result and its stack's volume (a private copy)."""

    version: int
    result: FrameResult | None
    volume: StackVolume | None
    summary: str | None


class PreviewState:
    """Latest :class:`FrameResult` and per-stack in-focus volumes, shared between threads."""

    def __init__(self, max_side: int = MAX_SIDE) -> None:
        self._lock = threading.Lock()
        self._max_side = max_side
        self._result: FrameResult | None = None
        self._volumes: OrderedDict[tuple[int, int], StackVolume] = OrderedDict()
        self._current: tuple[int, int] | None = None
        self._summary: str | None = None
        self._version = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (then :meth:`submit` does nothing)."""
        return self._closed

    @property
    def version(self) -> int:
        """Number of changes so far (a snapshot with the same version is unchanged)."""
        return self._version

    def close(self) -> None:
        """Stop accepting results and free the volumes (the latest result stays drawable)."""
        with self._lock:
            self._closed = True
            self._volumes.clear()
            self._current = None
            self._version += 1

    def submit(self, result: FrameResult) -> None:
        """Keep ``result`` as the latest and add its plane to its stack's volume (any thread).

        A stack starts again when its time point changes or its z index goes back (to 0).
        """
        if self._closed:
            return
        idx = result.index
        key = (int(idx.get("p", 0)), int(idx.get("c", 0)))
        t, z = int(idx.get("t", 0)), int(idx.get("z", 0))
        frame = np.asarray(result.frame)
        shape = (int(frame.shape[-2]), int(frame.shape[-1]))
        factor = downsample_factor(shape, self._max_side)
        plane = masked_plane(frame, result.mask, factor)  # outside the lock
        inside = np.asarray(result.mask)[::factor, ::factor]
        with self._lock:
            if self._closed:
                return
            vol = self._volumes.get(key)
            if (
                vol is None
                or vol.t != t
                or vol.frame_shape != shape
                or z < vol.last_z
                or (z == 0 and vol.planes)
            ):
                vol = StackVolume(t=t, factor=factor, frame_shape=shape)
            vol.add(z, float(result.z_um), plane, inside)
            self._volumes[key] = vol
            self._volumes.move_to_end(key)
            while len(self._volumes) > MAX_STACKS:
                self._volumes.popitem(last=False)
            self._current = key
            self._result = result
            self._version += 1

    def show(self, result: FrameResult, volume: StackVolume) -> None:
        """Show ``result`` with a complete ``volume`` (browsing a finished store)."""
        key = (int(result.index.get("p", 0)), int(result.index.get("c", 0)))
        with self._lock:
            self._volumes.clear()
            self._volumes[key] = volume
            self._current = key
            self._result = result
            self._version += 1

    def set_summary(self, text: str) -> None:
        """Text for the status bar once the run has ended (any thread)."""
        with self._lock:
            self._summary = text
            self._version += 1

    def snapshot(self) -> Snapshot:
        """The latest result and a copy of its stack's volume (GUI thread)."""
        with self._lock:
            vol = self._volumes.get(self._current) if self._current is not None else None
            return Snapshot(
                self._version, self._result, None if vol is None else vol.copy(), self._summary
            )
