"""Offline labelling on a Dask cluster: one task per slice (``pip install 'livefocus[dask]'``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from livefocus._xp import require
from livefocus.focus._validate import check_measure, check_positive_int, check_stack, check_strides
from livefocus.focus.reference import PAPER_STRIDES, PAPER_WINDOW, check_paint
from livefocus.focus.sliding import focus_map

__all__ = ["focus_maps_dask", "iter_focus_maps"]


def focus_maps_dask(
    stack: Any,
    measure: str = "std",
    *,
    window: int = PAPER_WINDOW,
    strides: Sequence[int] | int = PAPER_STRIDES,
    paint: str = "sum",
) -> Any:
    """Lazy :func:`livefocus.focus_maps` as a dask array chunked one slice per task.

    ``stack`` may be a numpy array, a dask array or a Zarr array (read lazily, slice by slice,
    by the workers). Compute it with any dask scheduler, e.g. a ``distributed.Client``.
    """
    da = require("dask.array")
    measure = check_measure(measure)
    window = check_positive_int(window, "window")
    strides = check_strides(strides)
    paint = check_paint(paint)
    if getattr(stack, "ndim", 0) == 2:
        stack = stack[None]
    if getattr(stack, "ndim", 0) != 3:
        shape = getattr(stack, "shape", None)
        raise ValueError(f"stack must be a (Z, Y, X) stack, got shape {shape}")
    lazy = da.asarray(stack).rechunk((1, *stack.shape[1:]))

    def one(block: np.ndarray) -> np.ndarray:
        return np.asarray(  # type: ignore[no-any-return]
            focus_map(block[0], measure, window=window, strides=strides, paint=paint)
        )[None]

    return lazy.map_blocks(one, dtype=np.float64)


def iter_focus_maps(
    stack: Any,
    measure: str = "std",
    *,
    window: int = PAPER_WINDOW,
    strides: Sequence[int] | int = PAPER_STRIDES,
    paint: str = "sum",
    client: Any,
    batch: int = 8,
) -> Iterator[tuple[int, np.ndarray]]:
    """Compute slice maps on a ``distributed.Client`` and yield ``(z, map)`` as they finish.

    At most ``batch`` slices are in flight at once, so memory stays bounded on both sides.
    """
    distributed = require("distributed")
    check_stack(stack[:1])
    lazy = focus_maps_dask(stack, measure, window=window, strides=strides, paint=paint)
    pending: dict[Any, int] = {}
    z_next = 0
    while z_next < lazy.shape[0] or pending:
        while z_next < lazy.shape[0] and len(pending) < batch:
            pending[client.compute(lazy[z_next])] = z_next
            z_next += 1
        done = next(iter(distributed.as_completed(list(pending))))
        yield pending.pop(done), np.asarray(done.result())
