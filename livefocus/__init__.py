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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from livefocus.depth import reconstruct

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
    "reconstruct",
    "weak_labels",
]


def __getattr__(name: str) -> object:
    # livefocus.reconstruct lives in the streaming package; import it only when asked for.
    if name == "reconstruct":
        from livefocus.depth import reconstruct

        return reconstruct
    raise AttributeError(f"module 'livefocus' has no attribute {name!r}")
