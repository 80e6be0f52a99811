"""Scores of in-focus masks against the exact truth of a simulated stack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from livefocus.sim.stack import SimulatedStack

__all__ = ["mask_scores", "weak_label_scores"]


def mask_scores(predicted: Any, truth: Any) -> dict[str, float]:
    """IoU, precision, recall and Dice of boolean masks, pooled over all pixels.

    Parameters
    ----------
    predicted, truth : array_like
        Boolean masks of the same shape, e.g. (Z, Y, X) for a stack.

    Returns
    -------
    dict
        ``iou``, ``precision``, ``recall``, ``dice`` (pooled: every voxel counts once; a score
        whose denominator is empty is 1.0) and, for 3-D input, ``mean_slice_iou`` over the
        planes whose truth is not empty.

    Examples
    --------
    >>> mask_scores(np.array([1, 1, 0], bool), np.array([1, 0, 0], bool))["iou"]
    0.5
    """
    pred = np.asarray(predicted)
    true = np.asarray(truth)
    if pred.shape != true.shape:
        raise ValueError(f"predicted has shape {pred.shape} but truth has shape {true.shape}")
    pred, true = pred.astype(bool), true.astype(bool)
    tp = float(np.count_nonzero(pred & true))
    n_pred, n_true = float(np.count_nonzero(pred)), float(np.count_nonzero(true))
    union = n_pred + n_true - tp

    def ratio(num: float, den: float) -> float:
        return num / den if den else 1.0

    scores = {
        "iou": ratio(tp, union),
        "precision": ratio(tp, n_pred),
        "recall": ratio(tp, n_true),
        "dice": ratio(2 * tp, n_pred + n_true),
    }
    if pred.ndim == 3:
        per = [mask_scores(p, t)["iou"] for p, t in zip(pred, true, strict=True) if t.any()]
        scores["mean_slice_iou"] = float(np.mean(per)) if per else 1.0
    return scores


def weak_label_scores(
    stack: SimulatedStack,
    *,
    measure: str = "std",
    window: int | None = None,
    strides: Sequence[int] | None = None,
    paint: str = "sum",
    scope: str = "slice",
) -> dict[str, float]:
    """Score the focus-score core's weak labels (Otsu on focus maps) against the exact truth.

    Parameters
    ----------
    stack : SimulatedStack
        From :func:`~livefocus.sim.simulate_stack`.
    measure, window, strides, paint
        Passed to :func:`livefocus.focus_maps` (defaults: the paper's ``std``, window 128,
        strides 8..36, ``paint="sum"``).
    scope : {"slice", "stack"}
        Passed to :func:`livefocus.weak_labels`.

    Returns
    -------
    dict
        :func:`mask_scores` of the weak labels against ``stack.mask``.
    """
    from livefocus.focus import PAPER_STRIDES, PAPER_WINDOW, focus_maps, weak_labels

    maps = focus_maps(
        stack.raw,
        measure,
        window=PAPER_WINDOW if window is None else window,
        strides=PAPER_STRIDES if strides is None else tuple(strides),
        paint=paint,
    )
    return mask_scores(weak_labels(maps, scope=scope), stack.mask)
