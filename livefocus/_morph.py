"""Grey morphology of 2-D float images on OpenCV, exactly as scipy.ndimage computes it.

A square min / max filter is separable and needs no arithmetic, so OpenCV's ``erode`` and
``dilate`` (with ``BORDER_REPLICATE``, scipy's ``mode="nearest"``) give the same numbers as
:mod:`scipy.ndimage`, bit for bit, about 20 times faster (measured by ``livefocus bench
focus``). For an even size the two libraries place the window differently, so those sizes,
and images that are not 2-D float32, go to scipy. The ``*_reference`` functions are scipy's,
the referee in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "closing",
    "closing_reference",
    "max_filter",
    "max_filter_reference",
    "opening",
    "opening_reference",
]


def _fast(image: np.ndarray, size: int) -> Any:
    """The cv2 module when OpenCV computes this exactly, else None."""
    if size % 2 == 0 or image.ndim != 2 or image.dtype != np.float32 or min(image.shape) < 1:
        return None
    import cv2

    return cv2


def _kernel(size: int) -> np.ndarray:
    return np.ones((size, size), np.uint8)


def max_filter(image: np.ndarray, size: int) -> np.ndarray:
    """Maximum over a ``size`` x ``size`` window (edges: nearest pixel)."""
    img = np.ascontiguousarray(image)
    cv2 = _fast(img, size)
    if cv2 is None:
        return max_filter_reference(img, size)
    return np.asarray(cv2.dilate(img, _kernel(size), borderType=cv2.BORDER_REPLICATE))


def opening(image: np.ndarray, size: int) -> np.ndarray:
    """Grey opening (erosion, then dilation) with a ``size`` x ``size`` square."""
    img = np.ascontiguousarray(image)
    cv2 = _fast(img, size)
    if cv2 is None:
        return opening_reference(img, size)
    k = _kernel(size)
    eroded = cv2.erode(img, k, borderType=cv2.BORDER_REPLICATE)
    return np.asarray(cv2.dilate(eroded, k, borderType=cv2.BORDER_REPLICATE))


def closing(image: np.ndarray, size: int) -> np.ndarray:
    """Grey closing (dilation, then erosion) with a ``size`` x ``size`` square."""
    img = np.ascontiguousarray(image)
    cv2 = _fast(img, size)
    if cv2 is None:
        return closing_reference(img, size)
    k = _kernel(size)
    dilated = cv2.dilate(img, k, borderType=cv2.BORDER_REPLICATE)
    return np.asarray(cv2.erode(dilated, k, borderType=cv2.BORDER_REPLICATE))


def max_filter_reference(image: np.ndarray, size: int) -> np.ndarray:
    """scipy's ``maximum_filter`` (the referee)."""
    return np.asarray(ndimage.maximum_filter(image, size, mode="nearest"))


def opening_reference(image: np.ndarray, size: int) -> np.ndarray:
    """scipy's ``grey_opening`` (the referee)."""
    return np.asarray(ndimage.grey_opening(image, size=(size, size), mode="nearest"))


def closing_reference(image: np.ndarray, size: int) -> np.ndarray:
    """scipy's ``grey_closing`` (the referee)."""
    return np.asarray(ndimage.grey_closing(image, size=(size, size), mode="nearest"))
