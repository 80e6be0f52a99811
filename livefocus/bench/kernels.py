"""``livefocus bench kernels``: the per-plane numba kernels against the numpy or scipy code
they replace (their referees), side by side on one 512 x 512 plane.

Each row: the baseline's and the kernel's best time of several runs, their ratio, and whether
the two results are equal bit for bit. The 3 x 3 mean also shows OpenCV's box filter, which is
faster still but rounds differently (so it is not used).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["run"]


def _best_ms(
    fn: Callable[[Any], Any], repeats: int, setup: Callable[[], Any] = lambda: None
) -> tuple[float, Any]:
    """Best time (ms) of ``fn(setup())``, ``setup`` untimed; and the last result."""
    fn(setup())  # compile (or load from the cache) and warm up
    best, out = np.inf, None
    for _ in range(repeats):
        arg = setup()
        start = time.perf_counter()
        out = fn(arg)
        best = min(best, time.perf_counter() - start)
    return 1e3 * float(best), out


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))


def _row(
    name: str,
    baseline: str,
    size: int,
    slow: Callable[[Any], Any],
    fast: Callable[[Any], Any],
    n: int,
    setups: tuple[Callable[[], Any], Callable[[], Any]] = (lambda: None, lambda: None),
) -> dict[str, Any]:
    slow_ms, expected = _best_ms(slow, n, setups[0])
    fast_ms, got = _best_ms(fast, n, setups[1])
    return {
        "kernel": name,
        "baseline": baseline,
        "size": f"{size}^2",
        "baseline ms": slow_ms,
        "kernel ms": fast_ms,
        "speed-up": slow_ms / fast_ms,
        "equal": _equal(got, expected),
    }


def _curve_row(size: int, repeats: int) -> dict[str, Any]:
    """The update of every pixel's curve state with a third plane (fresh state each run)."""
    from livefocus.depth._state import CURVE_FIELDS, update_curves, update_curves_reference

    rng = np.random.default_rng(1)
    n = size * size
    planes = rng.gamma(2.0, 1.0, (3, n)).astype(np.float32)
    support = rng.gamma(2.0, 1.0, (3, n)).astype(np.float32)
    frames = rng.normal(100, 5, (3, n)).astype(np.float32)
    after = np.empty(n, np.intp)
    args = (planes[2], support[2], frames[2], frames[1], planes[1], 2, 1.0)

    template = tuple(
        np.zeros(n, np.intp) if name == "arg" else np.zeros(n, np.float32) for name in CURVE_FIELDS
    )
    template[0][:] = planes[1]  # fmax: plane 1 was the highest so far
    template[1][:] = 1
    slow_state = tuple(a.copy() for a in template)
    fast_state = tuple(a.copy() for a in template)

    def reset(state: tuple[np.ndarray, ...]) -> None:  # the same arrays each run: no page faults
        for a, start in zip(state, template, strict=True):
            np.copyto(a, start)

    return _row(
        "curve state update",
        "numpy (20 passes)",
        size,
        lambda _: (update_curves_reference(*args, slow_state), slow_state),
        lambda _: (update_curves(*args, fast_state, after).copy(), fast_state),
        repeats,
        (lambda: reset(slow_state), lambda: reset(fast_state)),
    )


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """Rows: ``kernel``, ``baseline``, ``size``, ``baseline ms``, ``kernel ms``, ``speed-up``,
    ``equal``, and ``OpenCV ms`` for the 3 x 3 mean."""
    import cv2

    from livefocus import _morph
    from livefocus.depth._peaks import peak_candidates, peak_candidates_reference
    from livefocus.depth._signal import median_abs_residual, median_abs_residual_reference
    from livefocus.focus import labels

    size = 128 if quick else 512
    repeats = 5 if quick else 20
    rng = np.random.default_rng(0)
    frame = rng.normal(1000.0, 30.0, (size, size)).astype(np.float32)
    focus = rng.gamma(2.0, 3.0, (size, size)).astype(np.float32)
    flat = focus.reshape(-1)
    lo, hi = float(flat.min()), float(flat.max())

    def bins(_: Any) -> Any:
        counts = np.zeros(256, np.int64)
        labels._bin_counts(flat, lo, hi, np.linspace(lo, hi, 257), counts)
        return counts

    # a focus curve's 9 planes around plane 4: each pixel peaks on one of them (a ninth here)
    curve = -((np.arange(9)[:, None] - rng.uniform(0, 8, size * size)) ** 2)
    window = np.exp(curve / 8.0 + 0.1 * rng.normal(size=curve.shape)).astype(np.float32)
    support = rng.gamma(2.0, 1.0, window.shape).astype(np.float32)
    buffer = np.empty(size * size, np.intp)
    rows = [
        _row(
            "Otsu's 256 bins",
            "numpy.histogram",
            size,
            lambda _: labels.bin_counts_reference(flat, 256)[0],
            bins,
            repeats,
        ),
        _row(
            "noise: median of abs residual",
            "numpy.median",
            size,
            lambda _: median_abs_residual_reference(frame),
            lambda _: median_abs_residual(frame),
            repeats,
        ),
        _row(
            "3 x 3 mean",
            "scipy.ndimage.uniform_filter",
            size,
            lambda _: _morph.mean3_reference(focus),
            lambda _: _morph.mean3(focus),
            repeats,
        ),
        _curve_row(size, repeats),
        _row(
            "peak candidates, bases, support (9 planes)",
            "numpy reductions",
            size,
            lambda _: peak_candidates_reference(window, support, 4, False),
            lambda _: tuple(a.copy() for a in peak_candidates(window, support, 4, False, buffer)),
            repeats,
        ),
    ]
    opencv_ms, _ = _best_ms(
        lambda _: cv2.blur(focus, (3, 3), borderType=cv2.BORDER_REFLECT), repeats
    )
    rows[2]["OpenCV ms"] = opencv_ms
    return rows
