"""Simulated widefield specimens with exact truth, and Micro-Manager demo and replay devices.

- :class:`Specimen`: a deterministic 3D specimen (cells, fibres, sheets, a curved surface) and
  its widefield image formation (Gaussian defocus PSF, brightfield or fluorescence).
- :func:`simulate_stack`: a Z-stack with its exact in-focus masks, depth map and all-in-focus
  image.
- :func:`save_simulated` / :func:`load_simulated`: the stack and its truth in a Zarr v3 group
  (``livefocus simulate``).
- :func:`demo_core`, :func:`replay_core`: ready pymmcore-plus cores (``device_configs/``) whose
  camera images the specimen at the Z stage, or replays a saved stack;
  :func:`demo_truth` gives the exact truth of any frame of a demo core.
- :func:`mask_scores`, :func:`weak_label_scores`: masks scored against the exact truth.
"""

from livefocus.sim.cores import (
    demo_camera,
    demo_core,
    demo_specimen,
    demo_truth,
    replay_camera,
    replay_core,
)
from livefocus.sim.devices import ReplayCamera, SimZStage, SpecimenCamera
from livefocus.sim.evaluate import mask_scores, weak_label_scores
from livefocus.sim.optics import PSF_MODELS, Camera, LayerRenderer, Optics
from livefocus.sim.phantom import CONTRASTS, MIN_FIELD_PX, Specimen
from livefocus.sim.stack import SimulatedStack, load_simulated, save_simulated, simulate_stack

__all__ = [
    "CONTRASTS",
    "MIN_FIELD_PX",
    "PSF_MODELS",
    "Camera",
    "LayerRenderer",
    "Optics",
    "ReplayCamera",
    "SimZStage",
    "SimulatedStack",
    "Specimen",
    "SpecimenCamera",
    "demo_camera",
    "demo_core",
    "demo_specimen",
    "demo_truth",
    "load_simulated",
    "mask_scores",
    "replay_camera",
    "replay_core",
    "save_simulated",
    "simulate_stack",
    "weak_label_scores",
]
