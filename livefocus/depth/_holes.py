"""Holes of a binary mask filled: :func:`fill_holes` (OpenCV), :func:`fill_holes_reference`."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["fill_holes", "fill_holes_reference"]


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
