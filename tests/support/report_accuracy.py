"""Accuracy report of the depth masks: ``python -m tests.support.report_accuracy``.

Prints the README's table (before: the peak rule alone, as before object support, noise
floor and smoothing; after: the defaults) for :mod:`livefocus.sim`, the independent
generator (:mod:`livefocus.sim.volume`, "phantom3d"), the third and fourth generators
(``tests/support/phantom_points.py``, "points"; ``tests/support/phantom_widefield.py``,
"widefield") and the real pseudoscorpion stack, and writes
``docs/depth_reliability.png`` and ``docs/pseudoscorpion_depth_before_after.png``.
With ``--fusion`` it prints the table of fused focus measures instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from scipy import ndimage

from livefocus.depth import StackResult, reconstruct
from livefocus.sim import mask_scores, simulate_stack
from livefocus.sim.volume import noise_stack, phantom_stack, surface_stack

from .phantom_points import points_stack
from .phantom_widefield import widefield_stack
from .render_scene import RenderedStack, render_stack

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
#: The peak rule alone: no object-support or noise-floor test, no outlier or ambiguity test,
#: no depth smoothing, no least probability for the depth map, no speck removal, no growth
#: into flat regions, no closing of the masks.
PEAKS_ONLY: dict[str, Any] = {
    "min_support": 0.0,
    "noise_floor": 0.0,
    "smooth_radius": 0,
    "guide_radius": 0,
    "outlier_tolerance": 0.0,
    "ambiguous_peak": 0.0,
    "min_probability": 0.0,
    "min_area": 0,
    "grow_share": 0.0,
    "mask_close": 1,
    "mask_holes": 0,
}
#: The rule before issue 12: the peak rule alone, with its thresholds of then.
BEFORE: dict[str, Any] = {"min_confidence": 0.35, "peak_radius": 4, **PEAKS_ONLY}


def roughness(depth: np.ndarray) -> float:
    """Mean |depth - its 15 x 15 median| over pixels with a depth (same unit as ``depth``)."""
    fin = np.isfinite(depth)
    if not fin.any():
        return float("nan")
    # pixels without a depth take their nearest neighbour's, so holes do not bias the median
    _, (iy, ix) = ndimage.distance_transform_edt(~fin, return_indices=True)
    med = ndimage.median_filter(depth[iy, ix], 15)
    return float(np.mean(np.abs(depth - med)[fin]))


def scores(
    res: StackResult, mask: np.ndarray, depth: np.ndarray, z_step: float
) -> dict[str, float]:
    """IoU, precision, recall of ``mask_depth``; background false positives; depth MAE."""
    sc = mask_scores(res.mask_depth, mask)
    span = (mask.shape[0] - 1) * z_step
    present = np.isfinite(depth) & (depth >= 0) & (depth <= span)
    background = ~mask.any(axis=0) & ~present
    fin = np.isfinite(res.depth)
    both = present & mask.any(axis=0) & fin
    mae = float(np.mean(np.abs(res.depth - depth)[both])) / z_step if both.any() else np.nan
    return {
        "iou": sc["iou"],
        "precision": sc["precision"],
        "recall": sc["recall"],
        "bg_fp": float(fin[background].mean()) if background.any() else np.nan,
        "mae": mae,
    }


def reliability(results: list[tuple[StackResult, np.ndarray, float]]) -> dict[str, np.ndarray]:
    """Per confidence bin (10 bins, pixels with a depth): mean confidence, fraction right
    (depth within half the depth of field of the truth), pixel count."""
    conf, right = [], []
    for res, depth, _ in results:
        has = np.isfinite(res.depth)  # confidence is 0 elsewhere
        ok = np.abs(res.depth - depth) <= res.meta["depth_of_field_um"] / 2
        conf.append(res.confidence[has])
        right.append(ok[has])
    return _binned(np.concatenate(conf), np.concatenate(right))


def reliability_in_focus(results: list[tuple[StackResult, np.ndarray]]) -> dict[str, np.ndarray]:
    """As :func:`reliability`, with a depth right where the truth mask (Z, Y, X) marks the
    pixel in focus on a plane within half the depth of field of it. For a thick object the
    truth's one depth (its column's centre) is a convention: a depth on its sharp face, which
    the truth's masks count as in focus, is right here and wrong there."""
    conf, right = [], []
    for res, mask in results:
        has = np.isfinite(res.depth)
        half = res.meta["depth_of_field_um"] / 2
        near = np.abs(res.z_um[:, None, None] - res.depth[None]) <= half
        ok = (near & np.asarray(mask, bool)).any(axis=0)
        conf.append(res.confidence[has])
        right.append(ok[has])
    return _binned(np.concatenate(conf), np.concatenate(right))


def _binned(cc: np.ndarray, rr: np.ndarray) -> dict[str, np.ndarray]:
    edges = np.linspace(0, 1, 11)
    b = np.clip(np.digitize(cc, edges) - 1, 0, 9)
    n = np.bincount(b, minlength=10).astype(float)
    mean_c = np.bincount(b, cc, minlength=10) / np.maximum(n, 1)
    frac = np.bincount(b, rr.astype(float), minlength=10) / np.maximum(n, 1)
    return {"confidence": mean_c, "right": frac, "count": n}


def expected_calibration_error(rel: dict[str, np.ndarray]) -> float:
    """Pixel-weighted mean |fraction right - mean confidence| over the bins."""
    n = rel["count"]
    return float(np.sum(n * np.abs(rel["right"] - rel["confidence"])) / max(n.sum(), 1))


def background_fp(res: StackResult, regions: list[list[int]]) -> float:
    """Fraction of the pixels of hand-marked background regions that got a depth."""
    inside = np.zeros(res.depth.shape, bool)
    for y0, y1, x0, x1 in regions:
        inside[y0:y1, x0:x1] = True
    return float(np.isfinite(res.depth)[inside].mean())


#: Measures compared for fusion (the first is the default).
FUSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("std", ()),
    ("std", ("tenengrad",)),
    ("std", ("brenner",)),
    ("std", ("laplacian",)),
    ("tenengrad", ()),
    ("brenner", ()),
    ("variance", ()),
    ("smd", ()),
    ("dwt", ()),
    ("laplacian", ()),
)


def fusion_table() -> None:
    """Mean depth-mask IoU and background false positives of each measure (or fusion) on sim
    and the independent generator, and the focus map's cost per 256² plane."""
    import time

    from livefocus.depth import ReconstructSettings, plane_focus

    stacks: list[tuple[str, Any, float]] = [
        ("sim", simulate_stack((20, 256, 256), seed=s, contrast=c, z_step=2.0), 2.0)
        for c in ("brightfield", "fluorescence")
        for s in (0, 1, 2)
    ]
    stacks += [
        ("phantom3d", phantom_stack((20, 256, 256), seed=s, contrast=c), 1.0)
        for c in ("brightfield", "fluorescence")
        for s in (100, 101)
    ]
    print("| measure | sim IoU | sim bg | phantom3d IoU | phantom3d bg | ms per 256² plane |")
    print("|---|---|---|---|---|---|")
    for measure, fuse in FUSIONS:
        got: dict[str, list[tuple[float, float]]] = {"sim": [], "phantom3d": []}
        for name, stack, z_step in stacks:
            res = reconstruct(stack.raw, z_step=z_step, measure=measure, fuse=fuse)
            sc = scores(res, stack.mask, stack.depth, z_step)
            got[name].append((sc["iou"], sc["bg_fp"]))
        settings = ReconstructSettings(measure=measure, fuse=fuse)  # type: ignore[arg-type]
        frame = stacks[0][1].raw[10]
        t0 = time.perf_counter()
        for _ in range(10):
            plane_focus(frame, settings)
        ms = (time.perf_counter() - t0) * 100
        sim, gen = (np.mean(got[k], axis=0) for k in ("sim", "phantom3d"))
        label = "+".join((measure, *fuse))
        print(
            f"| {label} | {sim[0]:.3f} | {100 * sim[1]:.1f} % | {gen[0]:.3f} | "
            f"{100 * gen[1]:.1f} % | {ms:.1f} |"
        )


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows: list[tuple[str, str, dict[str, float]]] = []
    rel_sim: list[tuple[StackResult, np.ndarray, float]] = []
    rel_gen: list[tuple[StackResult, np.ndarray, float]] = []
    for contrast in ("brightfield", "fluorescence"):
        for seed in (0, 1, 2):
            st = simulate_stack((20, 256, 256), seed=seed, contrast=contrast, z_step=2.0)
            for name, kw in (("before", BEFORE), ("after", {})):
                res = reconstruct(st.raw, z_step=2.0, **kw)
                rows.append(
                    (f"sim {contrast} seed {seed}", name, scores(res, st.mask, st.depth, 2.0))
                )
                if name == "after":
                    rel_sim.append((res, st.depth, 2.0))
    in_focus: dict[str, list[tuple[StackResult, np.ndarray]]] = {}
    rel_pts: list[tuple[StackResult, np.ndarray, float]] = []
    rel_wf: list[tuple[StackResult, np.ndarray, float]] = []
    generators: list[tuple[str, Any, tuple[int, int], list[Any]]] = [
        ("phantom3d", phantom_stack, (100, 101), rel_gen),
        ("points", points_stack, (200, 201), rel_pts),
        ("widefield", widefield_stack, (300, 301), rel_wf),
    ]
    for label, make, seeds, kept in generators:
        for contrast in ("brightfield", "fluorescence"):
            for seed in seeds:
                ph = make((20, 256, 256), seed=seed, contrast=contrast)
                for name, kw in (("before", BEFORE), ("after", {})):
                    res = reconstruct(ph.raw, z_step=1.0, **kw)
                    sc = scores(res, ph.mask, ph.depth, 1.0)
                    rows.append((f"{label} {contrast} seed {seed}", name, sc))
                    if name == "after":
                        kept.append((res, ph.depth, 1.0))
                        in_focus.setdefault(label, []).append((res, ph.mask))
    surf = surface_stack((44, 256, 256), seed=100)
    for name, kw in (("before", BEFORE), ("after", {})):
        res = reconstruct(surf.raw, z_step=1.0, **kw)
        sc = scores(res, surf.mask, surf.depth, 1.0)
        edge = surf.meta["edge"] & np.isfinite(res.depth)
        sc["mae_edge"] = float(np.mean(np.abs(res.depth - surf.depth)[edge]))
        sc["roughness"] = roughness(res.depth)
        rows.append(("phantom3d surface 44 x 256²", name, sc))
    for seed in (0, 1, 2):
        rows.extend(rendered_rows(render_stack((44, 500, 500), seed=seed), seed))
    for contrast in ("brightfield", "fluorescence"):
        noise = noise_stack((20, 256, 256), seed=100, contrast=contrast)
        for name, kw in (("before", BEFORE), ("after", {})):
            res = reconstruct(noise.raw, z_step=1.0, **kw)
            rows.append((f"pure noise {contrast}", name, {"voxels": float(res.mask_depth.mean())}))
    marks = json.loads((DATA / "pseudoscorpion_background.json").read_text())
    ps = tifffile.imread(DATA / marks["file"])
    ps_res = {}
    for name, kw in (("before", BEFORE), ("after", {})):
        res = reconstruct(ps, z_step=1.0, **kw)
        ps_res[name] = res
        rows.append(
            (
                "pseudoscorpion (4x), marked background",
                name,
                {
                    "bg_fp": background_fp(res, marks["regions"]),
                    "coverage": float(np.isfinite(res.depth).mean()),
                    "roughness": roughness(res.depth),
                },
            )
        )
    pcb = tifffile.imread(DATA / "pcb_focus_4x.tif")
    pcb_res = {}
    for name, kw in (("before", BEFORE), ("after", {})):
        res = reconstruct(pcb, z_step=1.0, **kw)
        pcb_res[name] = res.depth
        rows.append(
            (
                "circuit board (real camera bracket, 4x)",
                name,
                {
                    "coverage": float(np.isfinite(res.depth).mean()),
                    "roughness": roughness(res.depth),
                },
            )
        )
    for name, peer in (("7 x 7 variance argmax", variance_argmax), ("Sobel argmax", sobel_argmax)):
        pcb_res[name] = peer(pcb)
        rows.append(
            (
                "circuit board (real camera bracket, 4x)",
                name,
                {"roughness": roughness(pcb_res[name])},
            )
        )

    keys = ["iou", "precision", "recall", "bg_fp", "mae", "mae_edge", "roughness", "voxels"]
    keys += ["coverage", "mae_same_pixels"]
    print("| data | rule | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for data, name, sc in rows:
        cells = []
        for k in keys:
            v = sc.get(k)
            if v is None or not np.isfinite(v):
                cells.append("")
            elif k in ("bg_fp", "voxels", "coverage"):
                cells.append(f"{100 * v:.1f} %")
            else:
                cells.append(f"{v:.3f}")
        print(f"| {data} | {name} | " + " | ".join(cells) + " |")

    docs = ROOT / "docs"
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="ideal")
    for label, rel_set in (
        ("sim (fitted on)", rel_sim),
        ("phantom3d (validation)", rel_gen),
        ("points (validation)", rel_pts),
        ("widefield (validation)", rel_wf),
    ):
        rel = reliability(rel_set)
        used = rel["count"] > 50
        ece = expected_calibration_error(rel)
        ax.plot(rel["confidence"][used], rel["right"][used], "o-", label=f"{label}, ECE {ece:.3f}")
        print(f"reliability {label}: ECE {ece:.3f}")
    for label, pairs in in_focus.items():
        ece = expected_calibration_error(reliability_in_focus(pairs))
        print(f"reliability {label}, right = in focus in the truth's masks: ECE {ece:.3f}")
    ax.set_xlabel("confidence")
    ax.set_ylabel("fraction of depths within DoF/2 of truth")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(docs / "depth_reliability.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4))
    for r, name in enumerate(("before", "after")):
        res = ps_res[name]
        axes[r, 0].imshow(res.all_in_focus, cmap="gray")
        axes[r, 0].set_title(f"{name}: all-in-focus")
        im = axes[r, 1].imshow(res.depth, cmap="viridis")
        axes[r, 1].set_title(f"{name}: depth (planes, NaN white)")
        fig.colorbar(im, ax=axes[r, 1], fraction=0.035)
        axes[r, 2].imshow(res.mask_depth.any(axis=0), cmap="gray")
        axes[r, 2].set_title(f"{name}: in focus on any plane")
        for y0, y1, x0, x1 in marks["regions"]:
            axes[r, 2].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="r", lw=1))
    for a in axes.ravel():
        a.set_axis_off()
    fig.tight_layout()
    fig.savefig(docs / "pseudoscorpion_depth_before_after.png", dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    axes[0].imshow(pcb[3], cmap="gray")
    axes[0].set_title("circuit board, plane 3 of 10")
    for a, name in zip(axes[1:], ("before", "after", "7 x 7 variance argmax"), strict=True):
        im = a.imshow(pcb_res[name], cmap="viridis", vmin=0, vmax=len(pcb) - 1)
        a.set_title(f"{name}: depth (NaN white)" if name != "7 x 7 variance argmax" else name)
    fig.colorbar(im, ax=axes[3], fraction=0.035)
    for a in axes:
        a.set_axis_off()
    fig.tight_layout()
    fig.savefig(docs / "pcb_depth.png", dpi=55)
    plt.close(fig)


def rendered_rows(rs: RenderedStack, seed: int) -> list[tuple[str, str, dict[str, float]]]:
    """A rendered scene (``render_stack``): livefocus's MAE over the pixels it gives a depth,
    and the peers' over the textured pixels and over those same pixels."""
    label = f"rendered scene seed {seed} ({rs.raw.shape[0]} x {rs.raw.shape[1]}²)"
    res = reconstruct(rs.raw, z_step=1.0)
    has = np.isfinite(res.depth)
    err = np.abs(res.depth - rs.depth)
    rows = [
        (
            label,
            "after",
            {
                "mae": float(err[has].mean()) if has.any() else float("nan"),
                "mae_edge": float(err[has & rs.edge].mean()) if (has & rs.edge).any() else np.nan,
                "coverage": float(has.mean()),
                "roughness": roughness(res.depth),
            },
        )
    ]
    for name, peer in (("7 x 7 variance argmax", variance_argmax), ("Sobel argmax", sobel_argmax)):
        perr = np.abs(peer(rs.raw) - rs.depth)
        sc = {"mae": float(perr[rs.textured].mean()), "mae_same_pixels": float(perr[has].mean())}
        rows.append((label, f"{name} (textured pixels)", sc))
    return rows


def variance_argmax(stack: np.ndarray, size: int = 7) -> np.ndarray:
    """A peer: the plane of the highest local variance in ``size`` x ``size`` (scipy)."""
    f = np.asarray(stack, np.float64)
    mean = ndimage.uniform_filter(f, (1, size, size))
    var = ndimage.uniform_filter(f * f, (1, size, size)) - mean * mean
    out: np.ndarray = var.argmax(axis=0).astype(np.float32)
    return out


def sobel_argmax(stack: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """A peer: the plane of the highest Sobel gradient magnitude, blurred by ``sigma`` (scipy;
    clEsperanto's Sobel projection takes the same argmax)."""
    f = np.asarray(stack, np.float64)
    grad = np.stack([np.hypot(ndimage.sobel(p, 0), ndimage.sobel(p, 1)) for p in f])
    out: np.ndarray = ndimage.gaussian_filter(grad, (0, sigma, sigma)).argmax(axis=0)
    return out.astype(np.float32)


if __name__ == "__main__":
    import sys

    fusion_table() if "--fusion" in sys.argv else main()
