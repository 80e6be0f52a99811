"""Z-stack analysis: per-pixel focus peaks, depth, all-in-focus, confidence and in-focus masks.

It also holds the peaks in z of a model's in-focus probability (:class:`ZPeaks`,
:func:`peak_masks`, :class:`ZPeakFinaliser`): the same analysis of a stack, of another map.

Pure numpy (CuPy focus maps are accepted), built on :mod:`livefocus.focus` and nothing above
it. The same code serves the online path (:class:`StackReconstructor`, one plane at a time,
during acquisition) and the offline one (:func:`reconstruct`), so both give identical results.
"""

from livefocus.depth._drift import Drift, stack_drift
from livefocus.depth._focus import intensity_units, plane_focus
from livefocus.depth._offline import reconstruct
from livefocus.depth._outliers import consistent
from livefocus.depth._peaks import fit_vertex
from livefocus.depth._reconstructor import PlaneUpdate, StackReconstructor
from livefocus.depth._result import StackResult
from livefocus.depth._settings import POLARITIES, REFINEMENTS, ReconstructSettings
from livefocus.depth._signal import noise_sigma, plane_support
from livefocus.depth._smooth import guided_smooth, smooth_depth
from livefocus.depth._warm import warm_up
from livefocus.depth._zpeaks import (
    ZPeakFinaliser,
    ZPeaks,
    peak_masks,
    peak_masks_reference,
    stack_masks,
)

__all__ = [
    "POLARITIES",
    "REFINEMENTS",
    "Drift",
    "PlaneUpdate",
    "ReconstructSettings",
    "StackReconstructor",
    "StackResult",
    "ZPeakFinaliser",
    "ZPeaks",
    "consistent",
    "fit_vertex",
    "guided_smooth",
    "intensity_units",
    "noise_sigma",
    "peak_masks",
    "peak_masks_reference",
    "plane_focus",
    "plane_support",
    "reconstruct",
    "smooth_depth",
    "stack_drift",
    "stack_masks",
    "warm_up",
]
