"""Online segmentation during acquisition: pipeline, reconstruction and OME-Zarr store.

- :func:`stream`: run a pymmcore-plus MDA through the :class:`Pipeline` into a store.
- :class:`StackReconstructor`, :func:`reconstruct`: depth map, all-in-focus image, confidence
  and the ``otsu`` / ``depth`` masks of a Z-stack, plane by plane or offline (same results).
- :class:`StoreWriter`, :func:`open_store`: the OME-Zarr (NGFF 0.5) store.
"""

from livefocus.stream.acquisition import (
    MASK_MODES,
    StreamReport,
    sequence_layout,
    stream,
    z_sequence,
)
from livefocus.stream.pipeline import POLICIES, Pipeline
from livefocus.stream.reconstruct import (
    PlaneUpdate,
    ReconstructSettings,
    StackReconstructor,
    reconstruct,
)
from livefocus.stream.store import StoreReader, StoreWriter, open_store
from livefocus.stream.types import FrameResult, Metrics, StackResult

__all__ = [
    "MASK_MODES",
    "POLICIES",
    "FrameResult",
    "Metrics",
    "Pipeline",
    "PlaneUpdate",
    "ReconstructSettings",
    "StackReconstructor",
    "StackResult",
    "StoreReader",
    "StoreWriter",
    "StreamReport",
    "open_store",
    "reconstruct",
    "sequence_layout",
    "stream",
    "z_sequence",
]
