"""``livefocus bench stream``: sustained frames/s, latency and frames lost of the pipeline.

A "camera" thread hands pre-rendered simulated brightfield frames (tiled up to 2048 x 2048)
to the :class:`~livefocus.stream.Pipeline` as fast as it takes them (policy ``block``), so
the figures are the pipeline's own: focus map, masks, reconstruction and OME-Zarr writing to
a temporary folder. Flat out, the latency includes the wait in the full queues; a second row
paces the camera below the pipeline's rate to show the latency of one frame. Rows for the std
rule (the streaming defaults for the frame size) and for the U-Net (ONNX Runtime on CPU); one
more row runs the whole demo (MDA on the demo config, camera rendering included) at 512^2.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from livefocus._vocab import MaskMode
from livefocus.stream.types import Metrics

__all__ = ["run"]


def _frames(size: int, n: int) -> np.ndarray:
    from livefocus.bench.model import _frames as tiled

    return tiled(size, n)


def _device() -> str:
    from livefocus._xp import has_module

    if has_module("torch"):
        import torch

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name())
    return f"CPU ({os.cpu_count()} cores)"


def _pipeline_row(
    frames: np.ndarray,
    mask: str,
    folder: Path,
    device: str,
    pace: float | None = None,
    stacks: int = 1,
) -> dict[str, Any]:
    """One run of the pipeline on ``frames`` as one Z-stack, or as each of ``stacks`` time
    points (so that a stack's end-of-stack work overlaps the next stack's planes)."""
    from livefocus.depth import ReconstructSettings
    from livefocus.model import engine as make_engine
    from livefocus.stream import Pipeline, StoreWriter

    n, height, width = frames.shape
    settings = ReconstructSettings.for_frame((height, width))
    engine = None
    modes: tuple[MaskMode, ...] = ("depth", "otsu")
    if mask == "model":
        engine = make_engine("default", backend="auto", threads=2)
        engine.predict(frames[:1])  # build / warm up outside the timing
        modes = ("model", "depth", "otsu")
    store = StoreWriter(
        folder / f"{mask}-{height}.ome.zarr",
        shape=(1, stacks, 1, n, height, width),
        z_step=2.0,
        mask_modes=modes,
        overwrite=True,
    )
    pipeline = Pipeline(
        settings,
        n_planes=n,
        z_step=2.0,
        store=store,
        mask_modes=modes,
        engine=engine,
        device="gpu" if device == "gpu" else "cpu",
    ).start()
    start = time.perf_counter()
    for k in range(stacks * n):
        t, z = divmod(k, n)
        if pace is not None:  # a camera at `pace` frames/s
            time.sleep(max(0.0, start + k / pace - time.perf_counter()))
        pipeline.submit(frames[z], {"t": t, "z": z}, 2.0 * z)
    m = pipeline.close()
    path = f"pipeline, camera at {pace:g} frames/s" if pace else "pipeline, camera flat out"
    if stacks > 1:
        path += f", {stacks} stacks of {n}"
    mask_name = "U-Net (" + engine.backend + ")" if engine is not None else "std rule"
    return _row(path, mask_name, height, settings.window, m)


def _row(path: str, mask: str, size: int, window: int, m: Metrics) -> dict[str, Any]:
    return {
        "path": path,
        "mask": mask,
        "size": size,
        "window": window,
        "frames": m.frames_out,
        "frames_per_s": m.fps,
        "p50_ms": m.latency_p50 * 1e3,
        "p99_ms": m.latency_p99 * 1e3,
        "lost": m.frames_lost,
        "blocked_s": m.blocked,
    }


def _demo_row(folder: Path, n: int) -> dict[str, Any]:
    from livefocus.devices import demo_core
    from livefocus.stream import stream, z_sequence

    core = demo_core(shape=(512, 512))
    sequence = z_sequence({"range": 2.0 * (n - 1), "step": 2.0})
    report = stream(core, sequence, out=folder / "demo.ome.zarr", overwrite=True)
    window = report.settings.window if report.settings else 0
    return _row("demo MDA (camera renders)", "std rule", 512, window, report.metrics)


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """Rows: ``path``, ``mask``, ``size``, ``frames``, ``frames_per_s``, ``p50_ms``,
    ``p99_ms``, ``lost``, ``blocked_s``, ``device``."""
    from livefocus._xp import has_module

    gpu = has_module("cupy") and "CPU" not in _device()
    sizes = (512,) if quick else (512, 2048)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="livefocus-bench-") as tmp:
        folder = Path(tmp)
        for size in sizes:
            n = {512: 21 if quick else 61, 2048: 21 if gpu else 6}[size]
            frames = _frames(size, n)
            device = "gpu" if gpu else "cpu"
            rows.append(_pipeline_row(frames, "rule", folder, device))
            if size == 512:  # latency when the pipeline keeps up (no queueing)
                rows.append(_pipeline_row(frames, "rule", folder, device, pace=30.0))
            if size == 512 and not quick:  # a time-lapse: stack ends overlap the next planes
                rows.append(_pipeline_row(frames[:20], "rule", folder, device, stacks=4))
            if not quick:  # the U-Net (tiled at 2048^2: a few frames on CPU)
                rows.append(_pipeline_row(frames[: min(n, 21)], "model", folder, device))
        start = time.perf_counter()
        rows.append(_demo_row(folder, 21 if quick else 41))
        rows[-1]["wall_s"] = time.perf_counter() - start
    for row in rows:
        row["device"] = _device()
    return rows
