"""Zarr output of ``livefocus label``: maps, masks and axial curve, one chunk per slice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LabelStore"]


class LabelStore:
    """A Zarr v3 group with ``maps`` (float32), ``masks`` (uint8) and ``curve`` (float64).

    Every slice is its own chunk and is on disk once ``write_*`` returns, so an interrupted run
    keeps all slices written before it stopped.
    """

    def __init__(self, group: Any) -> None:
        self.group = group

    @classmethod
    def create(
        cls, path: str | Path, *, shape: tuple[int, ...], attrs: dict[str, Any]
    ) -> LabelStore:
        import zarr

        group = zarr.open_group(str(path), mode="w-")
        group.attrs.update({"livefocus": attrs})
        chunks = (1, *shape[1:])
        group.create_array("maps", shape=shape, chunks=chunks, dtype="float32", fill_value=np.nan)
        group.create_array("masks", shape=shape, chunks=chunks, dtype="uint8", fill_value=0)
        group.create_array("curve", shape=(shape[0],), dtype="float64", fill_value=np.nan)
        return cls(group)

    def write_map(self, z: int, focus: np.ndarray) -> None:
        self.group["maps"][z] = focus.astype(np.float32)

    def write_mask(self, z: int, mask: np.ndarray) -> None:
        self.group["masks"][z] = mask.astype(np.uint8)

    def write_curve(self, curve: np.ndarray) -> None:
        self.group["curve"][:] = curve
