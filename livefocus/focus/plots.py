"""Pictures of axial focus curves (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["plot_curves"]


def plot_curves(
    curves: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    title: str = "",
    z_um: np.ndarray | None = None,
) -> Path:
    """Plot normalised axial curves (one line per measure) to a PNG and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        x = np.arange(len(curve)) if z_um is None else z_um
        ax.plot(x, curve, marker="o", markersize=3, label=name)
    ax.set_xlabel("slice" if z_um is None else "z (µm)")
    ax.set_ylabel("normalised focus score")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    return path
