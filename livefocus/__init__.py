"""livefocus: online in-focus segmentation for widefield microscopy.

The focus-score core (Li, Kudryashev & Yakimovich, Sci Rep 2023): sliding-window focus maps,
weak labels and axial curves. Simulation (:mod:`livefocus.sim`), the U-Net surrogate
(:mod:`livefocus.model`) and streaming acquisition (:mod:`livefocus.stream`) are subpackages.
"""

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

__version__ = "0.1.0"

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
    "weak_labels",
]
