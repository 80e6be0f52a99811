"""``livefocus bench focus``: the fast sliding-window path against the literal reference.

Per measure, one slice of random 12-bit texture at ``size`` x ``size`` with the paper's settings
(w = 128, strides 8..36): reference and fast time per slice, their ratio (measured side by side,
in the same process), and the largest relative difference. Then a Table-1-style row: one
20-slice stack labelled (maps + Otsu masks) by the fast path on all cores, next to the
reference's per-slice time times 20 (the paper reports 203 s per 20-slice stack for Std).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from livefocus._xp import has_module
from livefocus.focus import (
    MEASURES,
    PAPER_STRIDES,
    PAPER_WINDOW,
    focus_map,
    focus_map_reference,
    focus_maps,
    weak_labels,
)

__all__ = ["run"]


def _best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return float(best), result


def _texture(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Blurred-and-sharp 12-bit texture: realistic spread of focus scores."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    noise = rng.normal(size=shape)
    sigma = (0, 4, 4) if len(shape) == 3 else 4
    smooth = gaussian_filter(noise, sigma) * 20
    return np.asarray(np.clip(2000 + 400 * smooth + 30 * noise, 0, 4095), dtype=np.uint16)


def _gpu_rows(size: int) -> list[dict[str, Any]]:
    if not has_module("cupy"):
        return []
    import cupy

    try:
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    except Exception:  # no usable GPU
        return []
    image = cupy.asarray(_texture((size, size)))
    focus_map(image, "std")  # compile and warm up
    cupy.cuda.Device().synchronize()
    repeats = 20
    start = time.perf_counter()
    for _ in range(repeats):
        focus_map(image, "std")
    cupy.cuda.Device().synchronize()
    per_slice = (time.perf_counter() - start) / repeats
    return [
        {
            "measure": "std (CuPy)",
            "size": f"{size}^2",
            "fast s/slice": per_slice,
            "slices/s": 1 / per_slice,
            "device": name,
        }
    ]


def run(*, quick: bool = False, measures: tuple[str, ...] = MEASURES) -> list[dict[str, Any]]:
    """Rows of the focus benchmark (see the module docstring)."""
    size = 256 if quick else 1024
    image = _texture((size, size))
    settings: dict[str, Any] = {"window": PAPER_WINDOW, "strides": PAPER_STRIDES}
    rows: list[dict[str, Any]] = []
    for measure in measures:
        ref_time, ref = _best_of(1, partial(focus_map_reference, image, measure, **settings))
        fast_time, fast = _best_of(3, partial(focus_map, image, measure, **settings))
        scale = np.maximum(np.abs(ref), 1e-12 * np.abs(ref).max())
        rows.append(
            {
                "measure": measure,
                "size": f"{size}^2",
                "reference s/slice": ref_time,
                "fast s/slice": fast_time,
                "speed-up": ref_time / fast_time,
                "max rel diff": float(np.max(np.abs(fast - ref) / scale)),
            }
        )
    if "std" in measures:
        std_row = next(r for r in rows if r["measure"] == "std")
        stack = _texture((20, size, size), seed=1)
        workers = os.cpu_count() or 1
        stack_time, _ = _best_of(
            2, lambda: weak_labels(focus_maps(stack, "std", workers=workers, **settings))
        )
        rows.append(
            {
                "measure": f"std, 20-slice stack + Otsu ({workers} threads)",
                "size": f"20 x {size}^2",
                "reference s/slice": std_row["reference s/slice"] * 20,
                "fast s/slice": stack_time,
                "speed-up": std_row["reference s/slice"] * 20 / stack_time,
                "max rel diff": None,
            }
        )
    rows += _gpu_rows(2048)
    return rows
