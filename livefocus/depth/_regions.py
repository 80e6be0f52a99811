"""A plane's mask grown into the flat regions of its objects: :func:`grown` (OpenCV) and its
plain referee.

A focus peak needs texture: the smooth interior of a cell, or the flat middle of a thick
object, has a focus curve with no peak, and so no depth and no mask, while its textured parts
around it are in focus on the plane. Where such a region of the plane stands out of its
background (support), has no focus peak of its own, and the plane's mask already holds a
share of the 8-connected region the two make together, the region joins the mask. The test is
local to the plane and to what the reconstructor has seen when the plane's mask becomes
final, so the masks stay identical online and offline.
"""

from __future__ import annotations

import numpy as np

from livefocus.depth._components import regions_reference

__all__ = ["grown", "grown_reference"]


def grown(mask: np.ndarray, candidates: np.ndarray, share: float, least: int) -> np.ndarray:
    """bool (Y, X): ``mask`` with the ``candidates`` pixels of every 8-connected region of
    ``mask | candidates`` in which ``mask`` holds at least ``least`` pixels and at least
    ``share`` of the region's pixels.

    The same as :func:`grown_reference`.
    """
    import cv2

    m = np.ascontiguousarray(mask, bool)
    c = np.ascontiguousarray(candidates, bool) & ~m
    if not m.any() or not c.any():
        return m.copy()
    union = (m | c).view(np.uint8)
    n, labels = cv2.connectedComponents(union, connectivity=8, ltype=cv2.CV_32S)
    held = np.bincount(labels[m], minlength=n)
    size = np.bincount(labels.reshape(-1), minlength=n)
    ok = (held >= max(least, 1)) & (held >= share * size)
    ok[0] = False  # the background
    out = m.copy()
    out[c] = ok[labels[c]]
    return out


def grown_reference(
    mask: np.ndarray, candidates: np.ndarray, share: float, least: int
) -> np.ndarray:
    """Plain breadth-first flood fill of the 8-connected regions (for tests)."""
    m = np.asarray(mask, bool)
    c = np.asarray(candidates, bool) & ~m
    out = m.copy()
    for region in regions_reference(m | c):
        held = sum(1 for y, x in region if m[y, x])
        if held >= max(least, 1) and held >= share * len(region):
            for y, x in region:
                out[y, x] = True
    return out
