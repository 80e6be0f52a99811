"""Pictures of axial focus curves (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

__all__ = ["check_figure_path", "plot_curves"]


def check_figure_path(
    path: str | Path, name: str = "path", inputs: Iterable[str | Path] = ()
) -> Path:
    """``path`` as a Path if a figure can be saved there: a file name (not empty, not a
    folder, not one of ``inputs``) in an existing folder, ending in a format matplotlib writes
    (``.png``, ``.pdf``, ``.svg``, ``.tif``, ...); otherwise a ValueError (FileNotFoundError
    for a missing folder) naming ``name``. Checked before any work, so that a bad path fails
    at once."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(path).expanduser()
    if str(path) in ("", ".") or path.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a folder; give a file name such as curves.png")
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise ValueError(
            f"{name} {str(path)!r} must end in a figure format: "
            + ", ".join(f".{f}" for f in sorted(formats))
        )
    for item in inputs:
        if Path(item).expanduser().resolve() == path.resolve():
            raise ValueError(f"{name} {str(path)!r} would overwrite the input {str(item)!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{name} {str(path)!r}: folder {str(path.parent)!r} does not exist")
    return path


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
    fig.savefig(path)
    return path
