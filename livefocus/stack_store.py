"""The store of ``livefocus label``: the same OME-Zarr layout as a streaming run.

One position, one time point, one channel: the stack itself is the root image (``0``), its
focus-score maps are the ``focus`` image and its weak labels the ``labels/mask_otsu`` label
image (see :mod:`livefocus.stream.store`). With ``depth=True`` (``label --depth``) the depth
rule's final masks are the ``labels/mask_depth`` label image and its depth, all-in-focus and
confidence maps are stored as a streaming run stores them; without, there are no depth maps.
With ``model=True`` (``label --model``) a U-Net's masks are the ``labels/mask_model`` image.
The axial focus curve is in the ``livefocus`` attribute (``curve``). Every slice is its own
chunk and is on disk once ``write_*`` returns, and the status (``running``, then
``complete``, ``interrupted`` or ``error: ...``) says whether the labelling finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from livefocus.depth import StackResult
from livefocus.stream.store import StoreWriter

__all__ = ["LabelStore"]


class LabelStore:
    """Writes the output of ``livefocus label`` slice by slice (see :meth:`create`)."""

    def __init__(self, writer: StoreWriter, raw: np.ndarray) -> None:
        self.writer = writer
        self.raw = raw

    @property
    def path(self) -> Path:
        return self.writer.path

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        raw: np.ndarray,
        attrs: dict[str, Any],
        z_step: float | None = None,
        pixel_size: float | None = None,
        overwrite: bool = False,
        inputs: Sequence[str | Path] = (),
        depth: bool = False,
        model: bool = False,
    ) -> LabelStore:
        """Create the store of the (Z, Y, X) stack ``raw``; ``attrs`` go to ``livefocus``.

        ``z_step`` and ``pixel_size`` (µm) are the scales when known. ``overwrite`` replaces
        only a store livefocus wrote, never one of ``inputs``. ``depth``: the store also holds
        the depth rule's masks and maps (:meth:`write_curve` takes them); ``model``: a
        U-Net's masks too.
        """
        nz, ny, nx = raw.shape
        modes = ("otsu", "depth") if depth else ("otsu",)
        writer = StoreWriter(
            path,
            shape=(1, 1, 1, nz, ny, nx),
            dtype=raw.dtype,
            z_step=z_step,
            pixel_size=pixel_size,
            mask_modes=(*modes, "model") if model else modes,
            meta={"kind": "label", **attrs},
            overwrite=overwrite,
            inputs=inputs,
            maps=depth,
        )
        return cls(writer, raw)

    def write_map(self, z: int, focus: np.ndarray) -> None:
        """Slice ``z``: its raw frame and focus map (its mask follows)."""
        self.writer.write_plane((0, 0, 0, z), raw=self.raw[z], focus=focus, masks={})

    def write_mask(self, z: int, mask: np.ndarray) -> None:
        """The weak-label mask of slice ``z``."""
        self.writer.write_final((0, 0, 0, z), {"otsu": mask})

    def write_curve(
        self,
        curve: np.ndarray,
        depth: StackResult | None = None,
        *,
        model: np.ndarray | None = None,
    ) -> None:
        """The axial focus curve, the reconstruction ``depth`` of a store made with
        ``depth=True`` (its final masks and maps) and the (Z, Y, X) ``model`` masks of one
        made with ``model=True``; marks every slice final."""
        maps: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {} if model is None else {"model": model}
        if depth is not None:
            maps = {
                "depth": depth.depth,
                "all_in_focus": depth.all_in_focus,
                "confidence": depth.confidence,
            }
            masks["depth"] = depth.mask_depth
        self.writer.write_stack((0, 0, 0), maps=maps, masks=masks)
        self.writer.update_meta(curve=[float(v) for v in curve])

    def close(self, status: str = "complete") -> None:
        """Record the final status (``complete``, ``interrupted`` or ``error: ...``)."""
        self.writer.close(status)
