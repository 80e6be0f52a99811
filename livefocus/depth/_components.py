"""The 8-connected regions of a mask by a plain breadth-first flood fill: the referees'
common ground (:func:`~livefocus.depth._specks.without_specks_reference`,
:func:`~livefocus.depth._regions.grown_reference`)."""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["regions_reference"]


def regions_reference(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """The (y, x) pixels of each 8-connected region of ``mask``, in scan order."""
    m = np.asarray(mask, bool)
    ny, nx = m.shape
    seen = np.zeros_like(m)
    found: list[list[tuple[int, int]]] = []
    for y0 in range(ny):
        for x0 in range(nx):
            if not m[y0, x0] or seen[y0, x0]:
                continue
            region = [(y0, x0)]
            seen[y0, x0] = True
            todo = deque(region)
            while todo:
                y, x = todo.popleft()
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        v, u = y + dy, x + dx
                        if 0 <= v < ny and 0 <= u < nx and m[v, u] and not seen[v, u]:
                            seen[v, u] = True
                            region.append((v, u))
                            todo.append((v, u))
            found.append(region)
    return found
