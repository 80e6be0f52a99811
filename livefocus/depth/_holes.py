"""Holes of a binary mask filled: :func:`fill_holes` and :func:`enclosed` (OpenCV), and their
scipy referees."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["enclosed", "enclosed_reference", "fill_holes", "fill_holes_reference"]


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
