"""Pictures of axial focus curves (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from livefocus._output import WRITER, check_file_output

__all__ = ["check_figure_path", "plot_curves", "save_figure"]


def check_figure_path(
    path: str | Path,
    name: str = "path",
    inputs: Iterable[str | Path] = (),
    within: Iterable[str | Path] = (),
) -> Path:
    """``path`` as a Path if a figure can be saved there: a ``.png`` file name (PNG only, so
    that livefocus recognises its own figures by their ``Software`` text and replaces only
    those), in a writable folder, not an input nor inside one, not inside an output being
    written (``within``) nor inside a folder livefocus wrote, and not a file livefocus did not
    write (:func:`livefocus._output.check_file_output`); otherwise an error naming ``name``.
    Checked before any work, so that a bad path fails at once."""
    return check_file_output(
        path, name=name, inputs=inputs, within=within, suffixes=[".png"], example="curves.png"
    )


def save_figure(fig: Any, path: Path, **kwargs: Any) -> None:
    """``fig.savefig`` to a PNG marked as livefocus's (so that it may replace it later)."""
    fig.savefig(path, metadata={"Software": WRITER}, **kwargs)


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

    path = check_figure_path(path)
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
    save_figure(fig, path)
    return path
