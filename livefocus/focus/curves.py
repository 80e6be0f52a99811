"""Axial focus curves: one whole-slice score per plane (the paper's Fig. 1b)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from livefocus._vocab import MEASURES
from livefocus._xp import array_namespace, to_numpy
from livefocus.focus._validate import check_measure, check_measures, check_stack
from livefocus.focus.sliding import window_scores

__all__ = ["axial_curve", "axial_curves"]


def axial_curve(stack: Any, measure: str = "std", *, normalize: bool = True) -> np.ndarray:
    """Whole-slice focus score of every plane of a (Z, H, W) stack -> float64 (Z,).

    Each slice is scored as one window covering the whole slice, with the same formula as the
    sliding-window maps. With ``normalize`` the curve is min-max scaled to [0, 1] (a flat curve
    becomes all zeros). Returned on the host.
    """
    data = check_stack(stack)
    measure = check_measure(measure)
    window = max(data.shape[1:])
    xp = array_namespace(data)
    scores = xp.stack([window_scores(s, measure, window=window, stride=window)[0, 0] for s in data])
    curve = to_numpy(scores).astype(np.float64)
    if normalize:
        span = curve.max() - curve.min()
        curve = (curve - curve.min()) / span if span > 0 else np.zeros_like(curve)
    return curve


def axial_curves(
    stack: Any, measures: Sequence[str] = MEASURES, *, normalize: bool = True
) -> dict[str, np.ndarray]:
    """:func:`axial_curve` for several measures (at least one), keyed by measure name."""
    names = check_measures(measures)
    data = check_stack(stack)
    return {m: axial_curve(data, m, normalize=normalize) for m in names}
