"""Online segmentation during acquisition: the MDA handler, its pipeline and the OME-Zarr store.

- :class:`MDAHandler`: a pymmcore-plus output handler (``core.mda.run(seq, output=[...])``)
  that segments every frame and writes a store; :func:`stream` runs an MDA through one.
- :class:`Pipeline`: bounded queues, processing and writer threads, metrics.
- :class:`StoreWriter`, :func:`open_store`: the OME-Zarr (NGFF 0.5) store.
- :func:`z_sequence`, :func:`sequence_layout`: the useq sequences livefocus streams.
- :class:`FocusFollower`: each stack's Z plan moved by the measured drift (``stream(follow=)``).

The Z-stack analysis itself is :mod:`livefocus.depth` (re-exported here for old imports).
"""

from livefocus._vocab import MASK_MODES, POLICIES
from livefocus.depth import PlaneUpdate, ReconstructSettings, StackReconstructor, reconstruct
from livefocus.stream.acquisition import stream
from livefocus.stream.follow import FocusFollower
from livefocus.stream.handler import DEFAULT_FRAME_TIMEOUT_S, MDAHandler, StreamReport
from livefocus.stream.pipeline import Pipeline
from livefocus.stream.sequence import SequenceLayout, sequence_layout, z_sequence
from livefocus.stream.store import StoreReader, StoreWriter, open_store
from livefocus.stream.types import FrameResult, Metrics, StackResult

__all__ = [
    "DEFAULT_FRAME_TIMEOUT_S",
    "MASK_MODES",
    "POLICIES",
    "FocusFollower",
    "FrameResult",
    "MDAHandler",
    "Metrics",
    "Pipeline",
    "PlaneUpdate",
    "ReconstructSettings",
    "SequenceLayout",
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
