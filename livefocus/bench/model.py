"""``livefocus bench model``: U-Net slices/s per backend and frame size, next to the std rule.

Frames are simulated brightfield slices (tiled up to 2048 x 2048). Per size: the std rule
(fast path, the paper's w = 128 and strides, plus Otsu per slice) and each available backend
on the same frames, measured in the same run; ``x_vs_std`` is the backend's speed over the
rule's. CPU backends use 2 threads; GPU rows appear when a CUDA GPU is visible (fp16 batched).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from livefocus._xp import has_module

__all__ = ["run"]


def _frames(size: int, n: int) -> np.ndarray:
    from livefocus.sim import simulate_stack

    base = simulate_stack((max(2, n), 512, 512), seed=7).raw
    reps = -(-size // 512)
    big = np.tile(base, (1, reps, reps))
    return np.ascontiguousarray(big[:n, :size, :size])


def _rate(fn: Callable[[], Any], n: int, repeats: int) -> float:
    fn()  # warm-up (engine build, allocation)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return float(n / best)


def _other_models() -> list[str]:
    """Shipped models other than ``default`` whose architecture differs from it (``depth``)."""
    from livefocus.model import available, load

    base = load("default").net.config
    return [m for m in available() if m != "default" and load(m).net.config != base]


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """Rows: ``size``, ``model``, ``backend``, ``precision``, ``batch``, ``slices_per_s``,
    ``x_vs_std``; every shipped model with another architecture than ``default`` gets ONNX
    Runtime rows up to 512 px."""
    import torch

    import livefocus as lf
    from livefocus.model import engine

    torch.set_num_threads(2)
    cuda = bool(torch.cuda.is_available())
    sizes = (256, 512) if quick else (256, 512, 2048)
    repeats = 1 if quick else 3
    backends: list[tuple[str, str, dict[str, Any]]] = [
        ("torch", "fp32", {"threads": 2}),
        ("onnxruntime", "fp32", {"threads": 2}),
    ]
    if cuda:
        backends = [
            ("torch", "fp32", {}),
            ("torch", "fp16", {}),
            ("onnxruntime", "fp32", {"threads": 2}),
        ]
        if has_module("tensorrt"):
            backends.append(("tensorrt", "fp16", {}))
    device = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)"
    rows: list[dict[str, Any]] = []
    for size in sizes:
        n = {256: 64 if cuda else 16, 512: 16 if cuda else 4}.get(size, 2)
        frames = _frames(size, n)

        def rule(frames: np.ndarray = frames) -> Any:
            maps = lf.focus_maps(frames, "std", window=lf.PAPER_WINDOW, strides=lf.PAPER_STRIDES)
            return lf.weak_labels(maps, scope="slice")

        std_rate = _rate(rule, n, repeats)
        rows.append(
            {
                "size": size,
                "model": "",
                "backend": "std rule (w=128)",
                "precision": "fp64",
                "batch": n,
                "slices_per_s": std_rate,
                "x_vs_std": 1.0,
                "device": f"CPU ({os.cpu_count()} cores)",
            }
        )
        runs = [("default", *b) for b in backends]
        if size <= 512 or not quick:  # the other shipped models: ONNX Runtime on CPU only
            runs += [(m, "onnxruntime", "fp32", {"threads": 2}) for m in _other_models()]
        for model, backend, precision, extra in runs:
            on_gpu = cuda and backend != "onnxruntime"
            batch = n if on_gpu else 4
            eng = engine(model, backend, precision=precision, batch_size=batch, **extra)

            def infer(eng: Any = eng, frames: np.ndarray = frames) -> Any:
                return eng.predict(frames)

            rate = _rate(infer, n, repeats)
            rows.append(
                {
                    "size": size if size <= eng.tile else f"{size} (tiled)",
                    "model": model,
                    "backend": backend,
                    "precision": precision,
                    "batch": batch,
                    "slices_per_s": rate,
                    "x_vs_std": rate / std_rate,
                    "device": device if on_gpu else "CPU",
                }
            )
    return rows
