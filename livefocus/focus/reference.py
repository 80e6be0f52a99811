"""The paper's sliding-window scheme, literally: one window at a time.

This is the referee for the fast path (:mod:`livefocus.focus.sliding`) in tests and benchmarks.
It is deliberately plain and slow: O(H * W * window**2 / stride**2) per stride.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from livefocus._vocab import PAINTS, Paint, check_choice
from livefocus._xp import to_numpy
from livefocus.focus._scale import unit_scale, unscale
from livefocus.focus._validate import check_image, check_measure, check_positive_int, check_strides
from livefocus.focus.measures import entropy_bins, score_window

__all__ = ["PAPER_STRIDES", "PAPER_WINDOW", "focus_map_reference"]

#: The paper's window size (pixels).
PAPER_WINDOW = 128
#: The paper's strides: 8, 10, ..., 36 (15 strides).
PAPER_STRIDES: tuple[int, ...] = tuple(range(8, 37, 2))


def check_paint(paint: Any) -> Paint:
    return check_choice(paint, "paint", PAINTS)


def focus_map_reference(
    image: Any,
    measure: str = "std",
    *,
    window: int = PAPER_WINDOW,
    strides: Sequence[int] | int = PAPER_STRIDES,
    paint: str = "sum",
) -> np.ndarray:
    """Per-pixel focus-score map by the literal window-by-window loop (slow; for checking).

    Same parameters and result as :func:`livefocus.focus_map`. For each stride ``s``, windows
    of ``window x window`` pixels start at every ``(y, x)`` in ``range(0, H, s) x range(0, W, s)``,
    truncated at the right and bottom borders; each window's score is added to every pixel it
    covers (``paint="mean"`` then divides by the number of windows covering the pixel). The map
    is the per-pixel maximum over the strides. Returns float64 (H, W) on the host.
    """
    img = to_numpy(check_image(image))
    measure = check_measure(measure)
    window = check_positive_int(window, "window")
    strides = check_strides(strides)
    paint = check_paint(paint)
    img, k = unit_scale(img, np, measure)
    bins = entropy_bins(img) if measure == "entropy" else None
    height, width = img.shape
    best = np.full((height, width), -np.inf)
    for stride in strides:
        total = np.zeros((height, width))
        count = np.zeros((height, width))
        for y in range(0, height, stride):
            for x in range(0, width, stride):
                crop = (slice(y, y + window), slice(x, x + window))
                score = score_window(img[crop], measure, None if bins is None else bins[crop])
                total[crop] += score
                count[crop] += 1
        if paint == "mean":
            total = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        best = np.maximum(best, total)
    return np.asarray(unscale(best, measure, k, np))
