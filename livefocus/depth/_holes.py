"""Holes of a binary mask filled: :func:`fill_holes`, :func:`enclosed` and :func:`closed`
(OpenCV), and their scipy referees."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "closed",
    "closed_reference",
    "enclosed",
    "enclosed_reference",
    "fill_holes",
    "fill_holes_reference",
]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """bool (Y, X): ``mask`` with every region of False pixels that does not touch the border
    (4-connected) set True; the same as :func:`fill_holes_reference`, about 10 times faster.

    The mask is framed by one False pixel and flood-filled from the corner, so every False
    pixel connected to the border is reached and what is left unreached is a hole.
    """
    import cv2

    m = np.asarray(mask, bool)
    if m.ndim != 2:
        return fill_holes_reference(m)
    framed = np.zeros((m.shape[0] + 2, m.shape[1] + 2), np.uint8)
    framed[1:-1, 1:-1] = m
    cv2.floodFill(framed, None, (0, 0), 2, flags=4)
    return np.asarray(framed[1:-1, 1:-1] != 2)


def fill_holes_reference(mask: np.ndarray) -> np.ndarray:
    """scipy's ``binary_fill_holes`` (4-connected background), the referee in the tests."""
    return np.asarray(ndimage.binary_fill_holes(np.asarray(mask, bool)))


def enclosed(mask: np.ndarray, size: int) -> np.ndarray:
    """bool (Y, X): ``mask`` closed with a ``size`` square (odd) (gaps up to ``size - 1`` pixels
    bridged; nothing beyond the frame counts), then its holes filled; 1: holes only.

    The same as :func:`enclosed_reference`.
    """
    import cv2

    m = np.asarray(mask, bool)
    if size > 1:
        kernel = np.ones((size, size), np.uint8)
        # OpenCV's default border leaves the frame's edge out of both passes, as scipy's
        # dilation (border 0) and erosion (border 1) do in the referee
        m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
    return fill_holes(m)


def enclosed_reference(mask: np.ndarray, size: int) -> np.ndarray:
    """scipy's binary closing (border outside the frame neutral) and hole filling."""
    m = np.asarray(mask, bool)
    if size > 1:
        st = np.ones((size, size), bool)
        m = ndimage.binary_erosion(ndimage.binary_dilation(m, st), st, border_value=1)
    return fill_holes_reference(m)


def closed(mask: np.ndarray, size: int, max_hole: int) -> np.ndarray:
    """bool (Y, X): ``mask`` closed with a ``size`` square (odd; 1: not closed), and the holes
    of the result (4-connected regions of False pixels that do not touch the frame's edge) of
    at most ``max_hole`` pixels filled (0: none).

    Both steps only add pixels, and a mask's subset gives a subset. The same as
    :func:`closed_reference`.
    """
    import cv2

    m = np.ascontiguousarray(mask, bool)
    if not m.any():
        return m.copy()
    if size > 1:
        kernel = np.ones((size, size), np.uint8)
        c = cv2.morphologyEx(m.view(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
        m = c | m
    if max_hole <= 0:
        return m if size > 1 else m.copy()
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        (~m).view(np.uint8), connectivity=4, ltype=cv2.CV_32S
    )
    ny, nx = m.shape
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    w, h = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    inside = (x > 0) & (y > 0) & (x + w < nx) & (y + h < ny)
    small = inside & (stats[:, cv2.CC_STAT_AREA] <= max_hole)
    small[0] = False  # label 0: the mask's own pixels
    if not small.any():
        return m if size > 1 else m.copy()
    return np.asarray(m | np.take(small, np.asarray(labels, np.intp)))


def closed_reference(mask: np.ndarray, size: int, max_hole: int) -> np.ndarray:
    """scipy's binary closing (border outside the frame neutral) and hole labelling."""
    m = np.asarray(mask, bool).copy()
    if not m.any():
        return m
    if size > 1:
        st = np.ones((size, size), bool)
        m |= ndimage.binary_erosion(ndimage.binary_dilation(m, st), st, border_value=1)
    if max_hole <= 0:
        return m
    labels, n = ndimage.label(~m)  # 4-connected
    out = m.copy()
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    for i in range(1, n + 1):
        region = labels == i
        if i not in edge and int(region.sum()) <= max_hole:
            out |= region
    return out
