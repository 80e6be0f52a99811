"""livefocus: online in-focus segmentation for widefield microscopy.

The focus-score core (Li, Kudryashev & Yakimovich, Sci Rep 2023): sliding-window focus maps,
weak labels and axial curves (:mod:`livefocus.focus`), and the Z-stack analysis built on them
(:func:`reconstruct`, :mod:`livefocus.depth`). Simulation (:mod:`livefocus.sim`), Micro-Manager
devices (:mod:`livefocus.devices`), the U-Net surrogate (:mod:`livefocus.model`) and streaming
acquisition (:mod:`livefocus.stream`) are subpackages. This facade is for users, the CLI and
the benchmarks; the library's own modules import the subpackages directly.
"""

from importlib.metadata import PackageNotFoundError, version

from livefocus.depth import reconstruct
from livefocus.focus import (
    MEASURES,
    PAPER_STRIDES,
    PAPER_WINDOW,
    axial_curve,
    axial_curves,
    focus_map,
    focus_map_reference,
    focus_maps,
    weak_labels,
)
from livefocus.io import read_stack

try:
    __version__ = version("livefocus")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "MEASURES",
    "PAPER_STRIDES",
    "PAPER_WINDOW",
    "__version__",
    "axial_curve",
    "axial_curves",
    "focus_map",
    "focus_map_reference",
    "focus_maps",
    "read_stack",
    "reconstruct",
    "weak_labels",
]
