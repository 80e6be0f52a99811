"""Old import path of the Z-stack analysis, now :mod:`livefocus.depth` (kept as an alias)."""

from livefocus.depth import (
    REFINEMENTS,
    PlaneUpdate,
    ReconstructSettings,
    StackReconstructor,
    reconstruct,
)

__all__ = ["REFINEMENTS", "PlaneUpdate", "ReconstructSettings", "StackReconstructor", "reconstruct"]
