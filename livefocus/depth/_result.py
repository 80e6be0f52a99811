"""What the reconstruction of a Z-stack gives: :class:`StackResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["StackResult"]


@dataclass(frozen=True, eq=False)
class StackResult:
    """The reconstruction of one complete Z-stack (also what :func:`livefocus.reconstruct` gives).

    Attributes
    ----------
    focus : ndarray
        float32 (Z, Y, X) focus-score maps, in intensity units (``std``'s; for another
        measure :func:`~livefocus.depth.intensity_units` of its maps, which the depth rule
        judges; the stream's store keeps the measure's own).
    mask_otsu : ndarray
        bool (Z, Y, X) Otsu weak labels, refined over the whole stack (``scope="stack"``).
    mask_depth : ndarray
        bool (Z, Y, X) final depth-based masks: the estimated depth of the pixel lies within half
        the depth of field of the plane and its focus peak is confident.
    depth : ndarray
        float32 (Y, X) height of the in-focus structure in µm above the lowest plane, within the
        stack's span (NaN where no confident peak).
    all_in_focus : ndarray
        float32 (Y, X) each pixel taken from (interpolated between) its sharpest planes.
    confidence : ndarray
        float32 (Y, X) in [0, 1]: probability that the pixel's depth is right (calibrated on
        the simulator), 0 where it has no depth.
    z_um : ndarray
        float64 (Z,) plane positions in µm above the lowest plane.
    meta : dict
        Settings (measure, window, strides, paint, depth of field, refinement) as JSON.
    """

    focus: np.ndarray
    mask_otsu: np.ndarray
    mask_depth: np.ndarray
    depth: np.ndarray
    all_in_focus: np.ndarray
    confidence: np.ndarray
    z_um: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
