"""Data that flows out of the streaming pipeline (shared by the pipeline, store and preview)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livefocus.depth import StackResult

__all__ = ["FrameResult", "Metrics", "StackResult"]


@dataclass(frozen=True)
class Metrics:
    """Running figures of a pipeline (a snapshot; all times in seconds).

    Attributes
    ----------
    frames_in, frames_out : int
        Frames taken from the camera / fully processed and written.
    frames_lost : int
        Frames dropped (always 0 under the default ``"block"`` policy).
    fps : float
        Processed frames per second since the first frame.
    queue_depth, queue_size : int
        Frames waiting to be processed, and the queue's bound.
    latency_p50, latency_p99 : float
        Per-frame latency (frame ready -> written), median and 99th percentile.
    blocked : float
        Total time the acquisition thread waited for room in the queue.
    elapsed : float
        Seconds since the first frame.
    """

    frames_in: int = 0
    frames_out: int = 0
    frames_lost: int = 0
    fps: float = 0.0
    queue_depth: int = 0
    queue_size: int = 0
    latency_p50: float = 0.0
    latency_p99: float = 0.0
    blocked: float = 0.0
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        """The figures as a JSON-ready dict."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class FrameResult:
    """What the pipeline knows after one frame (what the preview draws).

    Attributes
    ----------
    index : dict
        The frame's MDA index, e.g. ``{"t": 0, "p": 0, "c": 0, "z": 3}``.
    z_um : float
        Plane position, µm from the first plane of its stack.
    frame : ndarray
        The raw frame (Y, X).
    focus : ndarray
        float32 (Y, X) focus-score map of the frame.
    mask : ndarray
        bool (Y, X) the frame's in-focus mask as known now (provisional for ``depth`` masks).
    depth, all_in_focus, confidence : ndarray
        float32 (Y, X) current state of the stack's reconstruction (grows plane by plane).
    curve : ndarray
        float64 (k,) axial focus curve of the stack so far (mean focus score per plane).
    metrics : Metrics
        Pipeline figures at the time of this frame.
    mask_mode : str
        ``"depth"``, ``"otsu"`` or ``"model"``.
    measure : str
        Focus measure.
    threshold : str
        The rule behind ``mask`` in words, with its numbers (e.g. ``"Otsu > 12.3"``).
    pixel_size : float
        µm per pixel in the sample (1.0 where unknown).
    """

    index: dict[str, int]
    z_um: float
    frame: np.ndarray
    focus: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    all_in_focus: np.ndarray
    confidence: np.ndarray
    curve: np.ndarray
    metrics: Metrics
    mask_mode: str = "depth"
    measure: str = "std"
    threshold: str = ""
    pixel_size: float = 1.0
