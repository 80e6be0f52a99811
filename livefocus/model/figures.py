"""Fig.-4-style picture: slices by input / prediction / truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livefocus.focus.plots import check_figure_path, save_figure

__all__ = ["fig4"]


def fig4(
    x: np.ndarray,
    pred: np.ndarray,
    truth: np.ndarray,
    weak: np.ndarray,
    path: str | Path,
    *,
    n_cols: int = 5,
) -> Path:
    """Write a grid: rows input, weak label, prediction, truth; columns evenly spaced slices."""
    path = check_figure_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.linspace(0, len(x) - 1, min(n_cols, len(x))).round().astype(int)
    rows = [
        ("input", x, "gray"),
        ("weak label", weak, "magma"),
        ("U-Net", pred, "magma"),
        ("truth", truth, "magma"),
    ]
    fig, axes = plt.subplots(
        len(rows), len(idx), figsize=(2 * len(idx), 2 * len(rows)), squeeze=False
    )
    for r, (title, data, cmap) in enumerate(rows):
        for c, i in enumerate(idx):
            ax = axes[r, c]
            ax.imshow(data[i], cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title)
            if r == 0:
                ax.set_title(f"z = {i}")
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    plt.close(fig)
    return path
