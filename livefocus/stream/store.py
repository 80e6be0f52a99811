"""OME-Zarr (NGFF 0.5, zarr v3) store written plane by plane while frames arrive.

Layout of ``OUT.ome.zarr`` (one position; with several positions the same groups live under
``pos0/``, ``pos1/``, ...)::

    raw/0            (T, C, Z, Y, X)  camera frames (camera dtype)
    focus/0          (T, C, Z, Y, X)  float32 focus-score maps
    mask/0           (T, C, Z, Y, X)  uint8 in-focus mask of the primary mode (0/1)
    mask_<mode>/0    (T, C, Z, Y, X)  uint8 masks of the other modes computed
    depth/0          (T, C, Y, X)     float32 µm from the first plane of the stack
    all_in_focus/0   (T, C, Y, X)     float32
    confidence/0     (T, C, Y, X)     float32 in [0, 1]
    planes           (T, C, Z)        uint8 plane status: 0 not written, 1 written with
                                      provisional masks, 2 final

Each image group carries NGFF 0.5 ``multiscales`` metadata (axes with units, pixel size and z
step as a scale). Arrays are chunked per plane (per stack for the 2-D maps), so every plane is
on disk once :meth:`StoreWriter.write_plane` returns, and a store left by an interrupted run
opens with all of its written planes intact. The root's ``livefocus`` attribute holds the
settings, the mask modes, the model, the run status and the metrics.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livefocus.focus._validate import check_positive_number

__all__ = [
    "MAP_ARRAYS",
    "PLANE_ARRAYS",
    "PLANE_FINAL",
    "PLANE_PROVISIONAL",
    "StoreReader",
    "StoreWriter",
    "open_store",
]

#: Arrays with one plane per frame (t, c, z, y, x) and with one map per stack (t, c, y, x).
PLANE_ARRAYS = ("raw", "focus", "mask")
MAP_ARRAYS = ("depth", "all_in_focus", "confidence")
#: Codes of the ``planes`` status array.
PLANE_PROVISIONAL = 1
PLANE_FINAL = 2
MASK_MODES = ("depth", "otsu", "model")


def _codecs() -> dict[str, Any]:
    from zarr.codecs import BloscCodec

    # lz4 at level 1 keeps up with the camera; shuffle helps the masks and float maps
    return {"compressors": [BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")]}


def _ngff(name: str, axes: Sequence[str], scale: Sequence[float]) -> dict[str, Any]:
    kinds = {"t": "time", "c": "channel"}
    units = {"y": "micrometer", "x": "micrometer", "z": "micrometer", "t": "second"}
    axis_meta = []
    for a in axes:
        entry: dict[str, str] = {"name": a, "type": kinds.get(a, "space")}
        if a in units:
            entry["unit"] = units[a]
        axis_meta.append(entry)
    return {
        "version": "0.5",
        "multiscales": [
            {
                "name": name,
                "axes": axis_meta,
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": list(scale)}],
                    }
                ],
            }
        ],
    }


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"out: {str(path)!r} already exists (pass --overwrite)")
        if path.is_dir() and not (path / "zarr.json").exists() and any(path.iterdir()):
            raise FileExistsError(f"out: {str(path)!r} is a folder that is not a Zarr store")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise FileNotFoundError(f"out: folder {str(parent)!r} does not exist")
    probe = parent / f".livefocus-write-test-{id(path)}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"out: cannot write in {str(parent)!r} ({exc})") from None


class StoreWriter:
    """Create an OME-Zarr store and write planes, masks and stack maps as they arrive.

    Parameters
    ----------
    path : str or Path
        The store folder (by convention ``NAME.ome.zarr``).
    shape : tuple of int
        (P, T, C, Z, Y, X): positions, time points, channels, planes, height and width.
    dtype : numpy dtype
        Camera frame type.
    z_step : float
        Plane spacing in µm (the z scale).
    pixel_size : float
        Pixel size in µm (y and x scale); 1.0 when unknown.
    mask_modes : sequence of str
        Mask modes computed; the first is the primary (array ``mask``), the others are stored
        as ``mask_<mode>``.
    meta : dict, optional
        JSON metadata for the ``livefocus`` attribute (settings, model, sequence, ...).
    overwrite : bool
        Replace an existing store.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is false.
    FileNotFoundError, PermissionError
        When the parent folder is missing or not writable.
    ValueError
        For a bad shape, mode or scale.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        shape: Sequence[int],
        dtype: Any = np.uint16,
        z_step: float = 1.0,
        pixel_size: float = 1.0,
        mask_modes: Sequence[str] = ("depth", "otsu"),
        meta: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        import zarr

        dims = tuple(int(v) for v in shape)
        if len(dims) != 6 or min(dims) < 1:
            raise ValueError(f"shape must be 6 positive sizes (P, T, C, Z, Y, X), got {shape!r}")
        for name, value in (("z_step", z_step), ("pixel_size", pixel_size)):
            check_positive_number(value, name, "µm")
        modes = tuple(mask_modes)
        if not modes or len(set(modes)) != len(modes) or set(modes) - set(MASK_MODES):
            raise ValueError(f"mask_modes must be distinct values of {MASK_MODES}, got {modes}")
        self.path = Path(path).expanduser()
        _check_target(self.path, overwrite)
        self.shape = dims
        self.mask_arrays = {"mask": modes[0]} | {f"mask_{m}": m for m in modes[1:]}
        npos, nt, nc, nz, ny, nx = dims
        self.root = zarr.open_group(str(self.path), mode="w", zarr_format=3)
        self.meta: dict[str, Any] = dict(meta or {})
        self.meta.update(
            positions=npos,
            shape=list(dims[1:]),
            z_step_um=float(z_step),
            pixel_size_um=float(pixel_size),
            masks=self.mask_arrays,
            status="running",
        )
        self.root.attrs["livefocus"] = self.meta
        codecs = _codecs()
        self._arrays: list[dict[str, Any]] = []
        for p in range(npos):
            group = self.root if npos == 1 else self.root.create_group(f"pos{p}")
            arrays: dict[str, Any] = {}
            plane_scale = [1.0, 1.0, float(z_step), float(pixel_size), float(pixel_size)]
            plane_types = {"raw": np.dtype(dtype), "focus": np.dtype(np.float32)}
            for name in ("raw", "focus", *self.mask_arrays):
                image = group.create_group(name)
                image.attrs["ome"] = _ngff(name, "tczyx", plane_scale)
                kind = plane_types.get(name, np.dtype(np.uint8))
                arrays[name] = image.create_array(
                    "0",
                    shape=(nt, nc, nz, ny, nx),
                    chunks=(1, 1, 1, ny, nx),
                    dtype=kind,
                    fill_value=np.nan if kind.kind == "f" else 0,
                    dimension_names=list("tczyx"),
                    **codecs,
                )
            for name in MAP_ARRAYS:
                image = group.create_group(name)
                image.attrs["ome"] = _ngff(name, "tcyx", [1.0, 1.0, *plane_scale[3:]])
                arrays[name] = image.create_array(
                    "0",
                    shape=(nt, nc, ny, nx),
                    chunks=(1, 1, ny, nx),
                    dtype=np.float32,
                    fill_value=np.nan,
                    dimension_names=list("tcyx"),
                    **codecs,
                )
            arrays["planes"] = group.create_array(
                "planes", shape=(nt, nc, nz), chunks=(1, 1, nz), dtype=np.uint8, fill_value=0
            )
            self._arrays.append(arrays)

    def write_plane(
        self,
        index: tuple[int, int, int, int],
        *,
        raw: np.ndarray,
        focus: np.ndarray,
        masks: Mapping[str, np.ndarray],
    ) -> None:
        """Write one frame: raw, focus map and its (provisional) masks by mode.

        Parameters
        ----------
        index : tuple of int
            (p, t, c, z).
        raw, focus : ndarray
            (Y, X) frame and its focus map.
        masks : dict
            bool (Y, X) masks by mode (every mode of the store).
        """
        p, t, c, z = index
        arrays = self._arrays[p]
        arrays["raw"][t, c, z] = raw
        arrays["focus"][t, c, z] = focus.astype(np.float32, copy=False)
        self._write_masks(arrays, (t, c, z), masks)
        arrays["planes"][t, c, z] = PLANE_PROVISIONAL

    def _write_masks(
        self, arrays: dict[str, Any], tcz: tuple[int, int, int], masks: Mapping[str, np.ndarray]
    ) -> None:
        for name, mode in self.mask_arrays.items():
            if mode in masks:
                arrays[name][tcz] = masks[mode].astype(np.uint8, copy=False)

    def write_final(
        self, index: tuple[int, int, int, int], masks: Mapping[str, np.ndarray]
    ) -> None:
        """Replace the plane's provisional masks by final ones (only the modes given)."""
        p, t, c, z = index
        arrays = self._arrays[p]
        self._write_masks(arrays, (t, c, z), masks)

    def write_stack(
        self,
        index: tuple[int, int, int],
        *,
        maps: Mapping[str, np.ndarray],
        masks: Mapping[str, np.ndarray],
        planes: Sequence[int] | None = None,
    ) -> None:
        """Write a finished stack: its 2-D maps and its final (Z, Y, X) masks by mode.

        Parameters
        ----------
        index : tuple of int
            (p, t, c).
        maps : dict
            ``depth``, ``all_in_focus``, ``confidence`` (Y, X).
        masks : dict
            Final (Z, Y, X) masks by mode; modes left out keep what was written per plane.
        planes : sequence of int, optional
            The planes the stack has (default: all); only they are marked final.
        """
        p, t, c = index
        arrays = self._arrays[p]
        for name in MAP_ARRAYS:
            arrays[name][t, c] = np.asarray(maps[name], dtype=np.float32)
        for name, mode in self.mask_arrays.items():
            if mode in masks:
                arrays[name][t, c] = np.asarray(masks[mode]).astype(np.uint8, copy=False)
        if planes is None:
            arrays["planes"][t, c] = PLANE_FINAL
        else:
            status = np.asarray(arrays["planes"][t, c])
            status[list(planes)] = PLANE_FINAL
            arrays["planes"][t, c] = status

    def update_meta(self, **values: Any) -> None:
        """Merge ``values`` into the root's ``livefocus`` attribute (written at once)."""
        self.meta.update(values)
        self.root.attrs["livefocus"] = self.meta

    def close(self, status: str = "complete", **values: Any) -> None:
        """Record the final status (``complete``, ``interrupted`` or ``error: ...``)."""
        self.update_meta(status=status, **values)


@dataclass(frozen=True, eq=False)
class StoreReader:
    """A livefocus OME-Zarr store opened for reading (see :func:`open_store`).

    Attributes
    ----------
    path : Path
    positions : int
    shape : tuple of int
        (T, C, Z, Y, X).
    z_um : ndarray
        Plane positions, µm from the first plane.
    pixel_size : float
        µm.
    meta : dict
        The root's ``livefocus`` attribute (settings, masks, model, status, metrics).
    """

    path: Path
    root: Any
    positions: int
    shape: tuple[int, int, int, int, int]
    z_um: np.ndarray
    pixel_size: float
    meta: dict[str, Any]

    def array(self, name: str, position: int = 0) -> Any:
        """The zarr array ``name`` of a position.

        ``raw``, ``focus``, ``mask`` and ``mask_<mode>`` are (T, C, Z, Y, X); ``depth``,
        ``all_in_focus`` and ``confidence`` are (T, C, Y, X); ``planes`` is (T, C, Z).
        ``mask_<mode>`` also finds the primary mask when that is its mode.
        """
        if not 0 <= position < self.positions:
            raise ValueError(f"position must be in 0..{self.positions - 1}, got {position}")
        masks: dict[str, str] = self.meta.get("masks", {})
        if name.startswith("mask_") and masks.get("mask") == name[5:]:
            name = "mask"
        group = self.root if self.positions == 1 else self.root[f"pos{position}"]
        if name == "planes":
            return group["planes"]
        if name not in (*PLANE_ARRAYS, *MAP_ARRAYS, *masks):
            known = ", ".join([*PLANE_ARRAYS, *MAP_ARRAYS, *[m for m in masks if m != "mask"]])
            raise KeyError(f"array {name!r} is not in the store; it has {known}")
        return group[name]["0"]


def open_store(path: str | Path) -> StoreReader:
    """Open a store written by :class:`StoreWriter` (complete or left by an interrupted run).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When it is not a livefocus store.
    """
    import zarr

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"store: {str(path)!r} does not exist")
    try:
        root = zarr.open_group(str(path), mode="r")
        found: Any = root.attrs["livefocus"]
        meta: dict[str, Any] = dict(found)
    except Exception as exc:
        raise ValueError(
            f"store: {str(path)!r} is not a livefocus OME-Zarr store ({exc})"
        ) from None
    nt, nc, nz, ny, nx = (int(v) for v in meta["shape"])
    step = float(meta.get("z_step_um", 1.0))
    z_um = np.asarray(meta.get("z_um", np.arange(nz) * step), dtype=np.float64)
    return StoreReader(
        path=path,
        root=root,
        positions=int(meta.get("positions", 1)),
        shape=(nt, nc, nz, ny, nx),
        z_um=z_um,
        pixel_size=float(meta.get("pixel_size_um", 1.0)),
        meta=meta,
    )
