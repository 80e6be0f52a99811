"""In-focus models against the exact truth: ``python -m tests.support.report_context MODEL...``.

For each model (a shipped name or a folder), the IoU of its masks against the truth, pooled
per stack and averaged over the stacks of each data set, all 20 x 256 x 256:

- held-out domain-randomised stacks of both training generators
  (:func:`livefocus.model.randomise.random_stack`, "layers", and
  :func:`~livefocus.model.randomise.random_volume_stack`, "volumes"; seeds 900-903; training
  uses 0-143, validation 500-505);
- held-out :mod:`livefocus.sim` stacks (seeds 1000 and 1001, both contrasts);
- the volume generator's validation stacks (:mod:`livefocus.sim.volume`, "phantom3d", seeds
  100 and 101, both contrasts, z step 1 µm): unseen by a model trained on layers alone, of a
  seen generator (other optics, cameras and seeds) for one trained on both;
- the third generator (``tests/support/phantom_points.py``, "points", seeds 200 and 201, both
  contrasts, z step 1 µm), never trained, validated or selected on;
- the fourth (``tests/support/phantom_widefield.py``, "widefield", seeds 300 and 301, both
  contrasts, z step 1 µm), written blind on the night of 2026-12-01, after every choice.

Each stack runs through ONNX Runtime whole, in acquisition order (a model of several planes
sees each plane with the planes before it), and plane by plane on its own ("alone": a model
of several planes then sees the plane as a stack's first). The rule's own IoU
(``reconstruct(...).mask_depth``) is the reference.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

import livefocus.model as lm
from livefocus.depth import reconstruct
from livefocus.model.randomise import random_stack, random_volume_stack
from livefocus.sim import mask_scores, simulate_stack
from livefocus.sim.volume import phantom_stack

from .phantom_points import points_stack
from .phantom_widefield import widefield_stack

SHAPE = (20, 256, 256)


def datasets() -> dict[str, list[tuple[np.ndarray, np.ndarray, float]]]:
    """Each data set: a list of (raw, truth, z step)."""
    rand, vols = [], []
    for seed in (900, 901, 902, 903):
        st = random_stack(SHAPE, seed)
        rand.append((st.raw, st.mask, st.z_step))
        vs = random_volume_stack(SHAPE, seed)
        vols.append((vs.raw, vs.mask, vs.z_step))
    sim, phantom, points = [], [], []
    for seed in (1000, 1001):
        for contrast in ("brightfield", "fluorescence"):
            s = simulate_stack(SHAPE, seed=seed, contrast=contrast)
            sim.append((s.raw, s.mask, float(s.meta["z_step"])))
    for seed in (100, 101):
        for contrast in ("brightfield", "fluorescence"):
            ph = phantom_stack(SHAPE, seed=seed, contrast=contrast, z_step=1.0)
            phantom.append((ph.raw, ph.mask, 1.0))
            pt = points_stack(SHAPE, seed=seed + 100, contrast=contrast, z_step=1.0)
            points.append((pt.raw, pt.mask, 1.0))
    widefield = []
    for seed in (300, 301):
        for contrast in ("brightfield", "fluorescence"):
            wf = widefield_stack(SHAPE, seed=seed, contrast=contrast, z_step=1.0)
            widefield.append((wf.raw, wf.mask, 1.0))
    return {
        "layers": rand,
        "volumes": vols,
        "sim": sim,
        "phantom3d": phantom,
        "points": points,
        "widefield": widefield,
    }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(mask_scores(a, b)["iou"])


def main(models: list[str]) -> dict[str, Any]:
    torch.set_num_threads(1)
    data = datasets()
    rows: dict[str, Any] = {}
    rule = {
        name: [_iou(reconstruct(raw, z_step=z).mask_depth, truth) for raw, truth, z in stacks]
        for name, stacks in data.items()
    }
    rows["rule (reconstruct)"] = {name: (float(np.mean(v)), None) for name, v in rule.items()}
    for model in models:
        eng = lm.engine(model, "onnxruntime", threads=1)
        rows[model] = {}
        for name, stacks in data.items():
            whole, alone = [], []
            for raw, truth, _ in stacks:
                whole.append(_iou(eng.predict_mask(raw), truth))
                alone.append(_iou(np.stack([eng.predict_mask(f) for f in raw]), truth))
            rows[model][name] = (float(np.mean(whole)), float(np.mean(alone)))
    print("| model | " + " | ".join(f"{n} (alone)" for n in data) + " |")
    print("|---|" + "---|" * len(data))
    for model, cells in rows.items():
        text = [f"{w:.3f}" + ("" if a is None else f" ({a:.3f})") for w, a in cells.values()]
        print(f"| {model} | " + " | ".join(text) + " |")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:] or ["depth", "depth-sim"])
