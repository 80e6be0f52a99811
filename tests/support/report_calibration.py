"""The README's extended Table 2: ``python -m tests.support.report_calibration [SECONDS]``.

Models: pre-trained (shipped ``depth``: domain-randomised sim, rule labels; ``default``: Otsu
labels), fine-tuned on truth (``finetuned``), self-calibrated (``depth`` calibrated on each
stack with :func:`livefocus.model.calibrate`, SECONDS of budget, default 60). Scored against
the Otsu weak labels, the rule's masks (``reconstruct(...).mask_depth``) and, where known,
the exact truth. Data: held-out :mod:`livefocus.sim` stacks, the volume generator
(:mod:`livefocus.sim.volume`, "phantom3d"; its validation stacks, of a generator the shipped
``depth`` is trained on with other optics, cameras and seeds), the third generator
(``tests/support/phantom_points.py``, never trained or validated on), the fourth
(``tests/support/phantom_widefield.py``, written blind) and the real stacks of ``tests/data``.
A self-calibrated model is scored on the stack it was calibrated on and, for
the simulated specimens, on a re-acquisition (planes 1 µm higher, frame moved 16 px, fresh
noise). Set ``LIVEFOCUS_OLD_DEPTH`` to a model folder to add a row for it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

import livefocus.model as lm
from livefocus.depth import reconstruct
from livefocus.model.data import label_stack
from livefocus.sim import mask_scores
from livefocus.sim.volume import phantom_stack

from .phantom_points import points_stack
from .phantom_widefield import widefield_stack

ROOT = Path(__file__).resolve().parents[2]
#: Real (Z, Y, X) stacks (the yeast file has two more axes and is left out).
REAL = ("pseudoscorpion_zstack_4x.tif", "diatom_mfusionj_3z.tif")


def _acquire(seed: int, contrast: str, shift: bool) -> tuple[np.ndarray, np.ndarray]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_calibrate import acquire

    kw: dict[str, Any] = {"shift": (1.0, 16, 16), "noise_seed": 9} if shift else {}
    return acquire((20, 256, 256), seed=seed, contrast=contrast, **kw)


def datasets() -> list[dict[str, Any]]:
    """Each data set: name, raw, z step, truth (or None), and a re-acquisition (or None)."""
    out = []
    for seed, contrast in ((1000, "brightfield"), (1001, "fluorescence")):
        raw, truth = _acquire(seed, contrast, False)
        again = _acquire(seed, contrast, True)
        out.append(
            {
                "name": f"sim {contrast} {seed}",
                "raw": raw,
                "z_step": 2.0,
                "truth": truth,
                "again": again,
            }
        )
    for label, make, seeds in (("phantom3d", phantom_stack, (100, 101)),
                               ("points", points_stack, (200, 201)),
                               ("widefield", widefield_stack, (300, 301))):  # fmt: skip
        for seed, contrast in zip(seeds, ("brightfield", "fluorescence"), strict=True):
            ph = make((20, 256, 256), seed=seed, contrast=contrast)
            name = f"{label} {contrast} {seed}"
            out.append({"name": name, "raw": ph.raw, "z_step": 1.0, "truth": ph.mask,
                        "again": None})  # fmt: skip
    for name in REAL:
        raw = np.asarray(tifffile.imread(ROOT / "tests" / "data" / name))
        out.append({"name": name, "raw": raw, "z_step": 1.0, "truth": None, "again": None})
    return out


def _row(model: str, data: str, pred: np.ndarray, weak: np.ndarray, rule: np.ndarray,
         truth: np.ndarray | None) -> dict[str, Any]:  # fmt: skip
    return {
        "model": model,
        "data": data,
        "vs_weak": mask_scores(pred, weak)["iou"],
        "vs_rule": mask_scores(pred, rule)["iou"],
        "vs_truth": None if truth is None else mask_scores(pred, truth)["iou"],
    }


def main(seconds: float = 60.0) -> list[dict[str, Any]]:
    torch.set_num_threads(2)
    models = ["depth", "default", "finetuned"]
    old = os.environ.get("LIVEFOCUS_OLD_DEPTH")
    if old:
        models.append(old)
    engines = {m: lm.engine(m, "onnxruntime") for m in models}
    rows: list[dict[str, Any]] = []
    calib: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="calibrated-"))
    for d in datasets():
        raw, truth = d["raw"], d["truth"]
        weak = label_stack(raw)
        rule = reconstruct(raw, z_step=d["z_step"]).mask_depth
        rows.append(_row("rule (reconstruct)", d["name"], rule, weak, rule, truth))
        for m, eng in engines.items():
            rows.append(_row(m, d["name"], eng.predict_mask(raw), weak, rule, truth))
        t0 = time.perf_counter()
        folder = tmp / d["name"].replace(" ", "_")
        metrics = lm.calibrate(raw, model="depth", out=folder, z_step=d["z_step"], seconds=seconds)
        calib.append({"data": d["name"], "wall_seconds": time.perf_counter() - t0,
                      "load": os.getloadavg()[0], **metrics})  # fmt: skip
        eng = lm.engine(folder, "onnxruntime")
        rows.append(_row("self-calibrated", d["name"], eng.predict_mask(raw), weak, rule, truth))
        if d["again"] is not None:
            again, again_truth = d["again"]
            weak2 = label_stack(again)
            rule2 = reconstruct(again, z_step=d["z_step"]).mask_depth
            name = d["name"] + " re-acquired"
            rows.append(_row("rule (reconstruct)", name, rule2, weak2, rule2, again_truth))
            for m in ("depth", "self-calibrated"):
                e = eng if m == "self-calibrated" else engines["depth"]
                rows.append(_row(m, name, e.predict_mask(again), weak2, rule2, again_truth))
    print("| model | data | IoU vs weak | IoU vs rule | IoU vs truth |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = [
            f"{r[k]:.3f}" if r[k] is not None else "" for k in ("vs_weak", "vs_rule", "vs_truth")
        ]
        print(f"| {r['model']} | {r['data']} | " + " | ".join(cells) + " |")
    print()
    print("| data | kept | held-out IoU base -> calibrated | steps | stopped | s | load |")
    print("|---|---|---|---|---|---|---|")
    for c in calib:
        cal = c["calibrated_held_out_iou"]
        print(
            f"| {c['data']} | {c['kept']} | {c['base_held_out_iou']:.3f} -> "
            f"{'n/a' if cal is None else f'{cal:.3f}'} | {c['steps']} | {c['stopped']} | "
            f"{c['wall_seconds']:.1f} | {c['load']:.1f} |"
        )
    (tmp / "rows.json").write_text(json.dumps({"rows": rows, "calibration": calib}, indent=2))
    print(f"\nrows and calibrated models in {tmp}")
    return rows


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
