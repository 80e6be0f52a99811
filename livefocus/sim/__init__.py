"""Simulated widefield specimens with exact truth (numpy only; the Micro-Manager devices that
image them are in :mod:`livefocus.devices`).

- :class:`Specimen`: a deterministic 3D specimen (cells, fibres, sheets, a curved surface) and
  its widefield image formation (Gaussian defocus PSF, brightfield or fluorescence).
- :func:`simulate_stack`: a Z-stack with its exact in-focus masks, depth map and all-in-focus
  image.
- :func:`save_simulated` / :func:`load_simulated`: the stack and its truth in a Zarr v3 group
  (``livefocus simulate``).
- :func:`mask_scores`, :func:`weak_label_scores`: masks scored against the exact truth.
"""

from livefocus.sim.evaluate import mask_scores, weak_label_scores
from livefocus.sim.optics import PSF_MODELS, Camera, LayerRenderer, Optics
from livefocus.sim.phantom import CONTRASTS, MIN_FIELD_PX, Z_MARGIN_UM, Specimen, field_shape
from livefocus.sim.stack import SimulatedStack, load_simulated, save_simulated, simulate_stack

__all__ = [
    "CONTRASTS",
    "MIN_FIELD_PX",
    "PSF_MODELS",
    "Z_MARGIN_UM",
    "Camera",
    "LayerRenderer",
    "Optics",
    "SimulatedStack",
    "Specimen",
    "field_shape",
    "load_simulated",
    "mask_scores",
    "save_simulated",
    "simulate_stack",
    "weak_label_scores",
]
