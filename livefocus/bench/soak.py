"""``livefocus bench soak``: a long run through the pipeline: frames lost, memory and threads.

A camera thread hands 10000 pre-rendered 256 x 256 simulated frames (500 Z-stacks of 20 planes)
to the :class:`~livefocus.stream.Pipeline` as fast as it takes them, policy ``block``, writing
a real OME-Zarr store in a temporary folder. Every 500 frames the process's resident memory
(RSS) and thread count are sampled. The figures: frames lost, frames/s, RSS after warm-up
(1000 frames) and at the end, its growth, and the most threads seen. ``--quick``: 400 frames.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["rss_mb", "run"]

_PLANES = 20
_SIZE = 256


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux ``/proc``; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(*, quick: bool = False) -> list[dict[str, Any]]:
    """One row: the soak's figures (see the module docstring)."""
    from livefocus.bench.model import _frames as tiled
    from livefocus.depth import ReconstructSettings
    from livefocus.stream import Pipeline, StoreWriter

    n_frames = 400 if quick else 10_000
    warm_up = min(1000, n_frames // 4)
    stacks = n_frames // _PLANES
    frames = tiled(_SIZE, _PLANES)
    samples: list[tuple[int, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="livefocus-soak-") as tmp:
        store = StoreWriter(
            Path(tmp) / "soak.ome.zarr",
            shape=(1, stacks, 1, _PLANES, _SIZE, _SIZE),
            z_step=2.0,
            pixel_size=0.5,
            mask_modes=("depth", "otsu"),
        )
        pipeline = Pipeline(
            ReconstructSettings.for_frame((_SIZE, _SIZE)),
            n_planes=_PLANES,
            z_step=2.0,
            store=store,
            frame_timeout=60.0,
        ).start()
        start = time.perf_counter()
        for i in range(n_frames):
            t, z = divmod(i, _PLANES)
            pipeline.submit(frames[z], {"t": t, "z": z}, z * 2.0)
            if i % 500 == 0 or i == warm_up:
                samples.append((i, rss_mb(), threading.active_count()))
        metrics = pipeline.close()
        elapsed = time.perf_counter() - start
        samples.append((n_frames, rss_mb(), threading.active_count()))
        store.close("complete", metrics=metrics.as_dict())
    after_warm_up = next(rss for i, rss, _ in samples if i >= warm_up)
    return [
        {
            "frames": n_frames,
            "size": f"{_SIZE}^2",
            "written": metrics.frames_out,
            "lost": metrics.frames_lost,
            "frames_per_s": n_frames / elapsed,
            "rss_warm_MB": after_warm_up,
            "rss_end_MB": samples[-1][1],
            "rss_growth_MB": samples[-1][1] - after_warm_up,
            "max_threads": max(n for _, _, n in samples),
            "rss_trace_MB": " ".join(f"{rss:.0f}" for _, rss, _ in samples),
        }
    ]
