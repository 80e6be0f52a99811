"""OME-Zarr (NGFF 0.5, zarr v3) store written plane by plane while frames arrive.

Layout of ``OUT.ome.zarr`` with one position: the root is the multiscale image of the raw
frames, and everything derived from them lives inside it::

    zarr.json            ome: multiscales + omero channels; livefocus: settings, status, ...
    0                    (T, C, Z, Y, X)  camera frames (camera dtype)
    1, 2                 the same at 1/2 and 1/4 in y and x (frames above 1024 px only; the
                         labels and maps get theirs at stack end)
    labels/              ome: labels = [mask_<mode>, ...]
      mask_<mode>/0      (T, C, Z, Y, X)  uint8 in-focus label of each mask mode (0/1), an
                                          ``image-label`` with colours and source ``../../``
    focus/0              (T, C, Z, Y, X)  float32 focus-score maps (an image, same scale)
    depth/0              (T, C, Y, X)     float32 µm above the plan's lowest plane
    all_in_focus/0       (T, C, Y, X)     float32
    confidence/0         (T, C, Y, X)     float32 in [0, 1]
    planes               (T, C, Z)        uint8 plane status: 0 not written, 1 written with
                                          provisional masks, 2 final

With several positions the root follows the bioformats2raw layout that pymmcore-plus and
ome-writers write: root ``ome`` = ``{"bioformats2raw.layout": 3}``, ``OME/`` lists the
series ``["0", "1", ...]`` and each ``<p>/`` is an image laid out as above; the stage position
is its translation. The axes' scales are the pixel size, the z step and the sequence interval;
a unit is claimed only where it is known (no pixel size: y and x have scale 1 and no unit).
The metadata documents come from yaozarrs' models (:mod:`livefocus.stream._ngff`).

Arrays are chunked per plane (per stack for the 2-D maps), so every plane is on disk once
:meth:`StoreWriter.write_plane` returns, and a store left by an interrupted run opens with all
of its written planes intact. The root's ``livefocus`` attribute is also the marker that lets
``overwrite`` replace the store (:mod:`livefocus._output`); it holds the settings, the mask
modes, the model, the run ``status`` (``running``, then ``complete``, ``interrupted`` or
``error: ...``) and the metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livefocus._output import NODES_KEY, creating, prepare_output, store_nodes, writer_stamp
from livefocus._vocab import MASK_MODES, check_choice
from livefocus.focus._validate import check_positive_number
from livefocus.stream._ngff import (
    Geometry,
    bf2raw_attrs,
    image_attrs,
    label_attrs,
    labels_attrs,
    series_attrs,
)

__all__ = [
    "MAP_ARRAYS",
    "PLANE_ARRAYS",
    "PLANE_FINAL",
    "PLANE_PROVISIONAL",
    "PLANE_RAW",
    "PYRAMID_ABOVE",
    "StoreReader",
    "StoreWriter",
    "open_store",
    "pyramid_levels",
]

#: Arrays with one plane per frame (t, c, z, y, x) and with one map per stack (t, c, y, x).
PLANE_ARRAYS = ("raw", "focus", "mask")
MAP_ARRAYS = ("depth", "all_in_focus", "confidence")
#: Codes of the ``planes`` status array.
PLANE_PROVISIONAL = 1
PLANE_FINAL = 2
PLANE_RAW = 3  # raw frame only: its processing failed or stalled
#: Frames with a side above this many pixels get a pyramid (halved until at most 512 px).
PYRAMID_ABOVE = 1024
#: The store layout recorded in the ``livefocus`` attribute (readers check it).
LAYOUT = "ngff-0.5/1"


def pyramid_levels(frame: tuple[int, int]) -> int:
    """Resolution levels of a frame size: 1, or up to 3 for frames above 1024 px."""
    side = max(frame)
    levels = 1
    while side > PYRAMID_ABOVE // 2 and levels < 3 and max(frame) > PYRAMID_ABOVE:
        side //= 2
        levels += 1
    return levels


#: zarr-python writes chunks even where they hold only the fill value: its test of that
#: compares each chunk with it (with NaN equal for the float maps), which cost more than the
#: write. (It writes the coarser levels; tensorstore, which writes the full levels, leaves such
#: chunks out itself, at little cost.)
_WRITE_ALL = {"write_empty_chunks": True}
#: The status codes of tensorstore's I/O failures (its errors are ValueErrors whose text starts
#: with the code; a failed system call also names its ``os_error_code``).
_IO_STATUS = (
    "OUT_OF_RANGE",
    "RESOURCE_EXHAUSTED",
    "PERMISSION_DENIED",
    "UNAVAILABLE",
    "DATA_LOSS",
    "ABORTED",
    "DEADLINE_EXCEEDED",
)


def _chunk_writers(root: Path, arrays: dict[str, list[Any]]) -> dict[str, Any]:
    """tensorstore handles on the full-resolution arrays (the ones written plane by plane),
    by name."""
    import tensorstore as ts

    context = ts.Context({"cache_pool": {"total_bytes_limit": 0}})  # no cache: reads see disk
    root = root.resolve()  # tensorstore refuses a path with '..' in it
    return {
        name: ts.open(
            {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(root / levels[0].path)}},
            open=True,
            context=context,
        ).result()
        for name, levels in arrays.items()
    }


def _codecs() -> dict[str, Any]:
    from zarr.codecs import BloscCodec

    # lz4 at level 1 keeps up with the camera; shuffle helps the masks and float maps
    return {"compressors": [BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")]}


def _halve(a: np.ndarray, mean: bool) -> np.ndarray:
    """Half size in the last two axes: 2 x 2 block means (rounded half up for integers), or
    every second pixel (masks, maps: no value that was not measured)."""
    h, w = a.shape[-2] // 2, a.shape[-1] // 2
    corners = [a[..., i : 2 * h : 2, j : 2 * w : 2] for i in (0, 1) for j in (0, 1)]
    if not mean:
        return np.ascontiguousarray(corners[0])
    if a.dtype.kind in "ui" and a.dtype.itemsize <= 2:  # exact in int32, faster than float
        total = sum((c.astype(np.int32) for c in corners), np.int32(2))
        return np.asarray(total // 4).astype(a.dtype)
    out = sum((c.astype(np.float64) for c in corners), np.float64(0)) / 4
    return np.asarray(out if a.dtype.kind == "f" else np.floor(out + 0.5)).astype(a.dtype)


def _windows(
    dtype: np.dtype[Any], lo: np.ndarray, hi: np.ndarray
) -> list[tuple[float, float, float, float]]:
    """(start, end, min, max) display windows per channel, from the data range seen."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        full = (float(info.min), float(info.max))
    else:
        full = (float(np.nanmin(lo)) if np.isfinite(lo).any() else 0.0, float(np.nanmax(hi)))
        full = full if np.isfinite(full[1]) else (0.0, 1.0)
    out = []
    for a, b in zip(lo, hi, strict=True):
        start, end = (float(a), float(b)) if np.isfinite(a) and b > a else full
        out.append((start, end, min(full[0], start), max(full[1], end)))
    return out


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
    z_step : float or None
        Plane spacing in µm (the z scale); None when unknown (scale 1, no unit).
    pixel_size : float or None
        Pixel size in µm (y and x scale); None when uncalibrated (scale 1, no unit).
    mask_modes : sequence of str
        Mask modes computed; the first is the primary (also reachable as ``mask``). Each is a
        label image ``labels/mask_<mode>``.
    meta : dict, optional
        JSON metadata for the ``livefocus`` attribute (settings, model, sequence, ...); a
        ``stack`` entry (the replayed file) counts as an input.
    overwrite : bool
        Replace an existing store written by livefocus (never anything else, nor an input).
    channels : sequence of str, optional
        Channel names (default ``c0``, ``c1``, ...), written as ``omero`` channel labels.
    interval_s : float, optional
        Seconds between time points (the t scale); None or 0: unknown.
    stage_positions : sequence of (x, y), optional
        Stage XY of each position in µm, written as the image's translation.
    inputs : sequence of paths
        Files the run reads, which the store may not replace.
    maps : bool
        Create the per-stack maps (``depth``, ``all_in_focus``, ``confidence``).

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is false, or livefocus did not write it.
    FileNotFoundError, PermissionError
        When the parent folder is missing or not writable.
    ValueError
        For a bad shape, mode or scale, or a ``path`` that is an input.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        shape: Sequence[int],
        dtype: Any = np.uint16,
        z_step: float | None = 1.0,
        pixel_size: float | None = 1.0,
        mask_modes: Sequence[str] = ("depth", "otsu"),
        meta: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        channels: Sequence[str] | None = None,
        interval_s: float | None = None,
        stage_positions: Sequence[tuple[float, float]] | None = None,
        inputs: Sequence[str | Path] = (),
        maps: bool = True,
    ) -> None:
        import zarr

        dims = tuple(int(v) for v in shape)
        if len(dims) != 6 or min(dims) < 1:
            raise ValueError(f"shape must be 6 positive sizes (P, T, C, Z, Y, X), got {shape!r}")
        npos, _, nc, _, ny, nx = dims
        for name, value in (("z_step", z_step), ("pixel_size", pixel_size)):
            if value is not None:
                check_positive_number(value, name, "µm")
        if interval_s is not None and not (np.isfinite(interval_s) and interval_s >= 0):
            raise ValueError(f"interval_s must be a number of seconds >= 0, got {interval_s!r}")
        modes = tuple(mask_modes)
        for mode in modes:
            check_choice(mode, "mask_modes", MASK_MODES)
        if not modes or len(set(modes)) != len(modes):
            raise ValueError(f"mask_modes must be distinct values of {MASK_MODES}, got {modes}")
        names = [str(c) for c in channels] if channels is not None else [f"c{i}" for i in range(nc)]
        if len(names) != nc:
            raise ValueError(f"channels must name the {nc} channels of shape, got {names}")
        positions = [tuple(float(v) for v in xy) for xy in stage_positions or []]
        if positions and len(positions) != npos:
            raise ValueError(f"stage_positions must give the {npos} positions, got {positions}")
        self.meta: dict[str, Any] = dict(meta or {})
        stack = self.meta.get("stack")
        sources = [*inputs, *([stack] if isinstance(stack, str) else [])]
        self.path = prepare_output(path, overwrite=overwrite, inputs=sources, kind="store")
        self.shape = dims
        self.dtype = np.dtype(dtype)
        self.mask_arrays = {f"mask_{m}": m for m in modes}
        self.levels = pyramid_levels((ny, nx))
        self.channels = names
        self._lock = threading.Lock()
        self._lo = np.full((npos, nc), np.inf)
        self._hi = np.full((npos, nc), -np.inf)
        self.meta.update(
            layout=LAYOUT,
            positions=npos,
            shape=list(dims[1:]),
            z_step_um=None if z_step is None else float(z_step),
            pixel_size_um=None if pixel_size is None else float(pixel_size),
            interval_s=interval_s,
            channels=names,
            stage_positions=[list(p) for p in positions] or None,
            masks=self.mask_arrays,
            primary_mask=modes[0],
            levels=self.levels,
            status="running",
            writer=writer_stamp(),  # overwrite refuses the store while this process writes it
        )
        # a Ctrl-C or a full disk meanwhile: what this writer began to make goes, so no
        # half-made store is left behind
        with creating(self.path, "out"):
            # the marker in the root's first write: a crash from here on leaves it too
            self.root = zarr.open_group(
                str(self.path), mode="w-", zarr_format=3, attributes={"livefocus": self.meta}
            )
            self._geometry = [
                Geometry(
                    z_step=None if z_step is None else float(z_step),
                    pixel_size=None if pixel_size is None else float(pixel_size),
                    interval_s=interval_s,
                    stage_yx=(positions[p][1], positions[p][0]) if positions else None,
                )
                for p in range(npos)
            ]
            if npos > 1:
                self.root.attrs["ome"] = bf2raw_attrs()
                self.root.create_group("OME").attrs["ome"] = series_attrs(
                    [str(p) for p in range(npos)]
                )
            self._images = [
                self.root if npos == 1 else self.root.create_group(str(p)) for p in range(npos)
            ]
            self._arrays = [self._create(p, maps) for p in range(npos)]
            # what it made, so that --overwrite knows every node that is its own
            self.meta[NODES_KEY] = store_nodes(self.path)
            self.root.attrs["livefocus"] = self.meta
            self._chunks = [_chunk_writers(self.path, arrays) for arrays in self._arrays]

    def _create(self, p: int, maps: bool) -> dict[str, list[Any]]:
        """The groups and arrays of position ``p`` (``planes`` is a one-item list too)."""
        _, nt, nc, nz, ny, nx = self.shape
        image, geometry = self._images[p], self._geometry[p]
        codecs = _codecs()

        def levels(group: Any, dtype: Any, axes: str, count: int) -> list[Any]:
            out = []
            for level in range(count):
                h, w = ny >> level, nx >> level
                dims = {"t": nt, "c": nc, "z": nz, "y": h, "x": w}
                out.append(
                    group.create_array(
                        str(level),
                        shape=tuple(dims[a] for a in axes),
                        chunks=tuple(1 if a in "tcz" else dims[a] for a in axes),
                        dtype=dtype,
                        fill_value=np.nan if np.dtype(dtype).kind == "f" else 0,
                        dimension_names=list(axes),
                        config=_WRITE_ALL,
                        **codecs,
                    )
                )
            return out

        image.attrs["ome"] = self._image_meta(p)
        arrays: dict[str, list[Any]] = {"raw": levels(image, self.dtype, "tczyx", self.levels)}
        labels = image.create_group("labels")
        labels.attrs["ome"] = labels_attrs(list(self.mask_arrays))
        for name, mode in self.mask_arrays.items():
            group = labels.create_group(name)
            group.attrs["ome"] = label_attrs(geometry, name, mode, self.levels)
            arrays[name] = levels(group, np.uint8, "tczyx", self.levels)
        group = image.create_group("focus")
        group.attrs["ome"] = image_attrs(geometry, "focus", "tczyx")
        arrays["focus"] = levels(group, np.float32, "tczyx", 1)
        for name in MAP_ARRAYS if maps else ():
            group = image.create_group(name)
            group.attrs["ome"] = image_attrs(geometry, name, "tcyx", self.levels)
            arrays[name] = levels(group, np.float32, "tcyx", self.levels)
        arrays["planes"] = [
            image.create_array(
                "planes",
                shape=(nt, nc, nz),
                chunks=(1, 1, nz),
                dtype=np.uint8,
                fill_value=0,
                dimension_names=["t", "c", "z"],
            )
        ]
        return arrays

    def _image_meta(self, p: int) -> dict[str, Any]:
        windows = _windows(self.dtype, self._lo[p], self._hi[p])
        return image_attrs(
            self._geometry[p], "raw", "tczyx", self.levels, channels=self.channels, windows=windows
        )

    def write_plane(
        self,
        index: tuple[int, int, int, int],
        *,
        raw: np.ndarray,
        focus: np.ndarray | None = None,
        masks: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Write one frame: raw, focus map and its (provisional) masks by mode.

        Parameters
        ----------
        index : tuple of int
            (p, t, c, z).
        raw : ndarray
            (Y, X) frame.
        focus : ndarray, optional
            Its focus map. None (a frame whose processing failed or stalled): the plane is
            marked :data:`PLANE_RAW` (raw only) and keeps no focus map or masks.
        masks : dict, optional
            bool (Y, X) masks by mode (the modes computed; others stay 0).
        """
        p, t, c, z = index
        arrays = self._arrays[p]
        raw = np.asarray(raw)
        if raw.shape != self.shape[4:]:
            raise ValueError(f"raw must be a {self.shape[4:]} frame, got shape {raw.shape}")
        # the camera's values in the store's dtype, as zarr-python casts them
        self._put(p, "raw", (t, c, z), raw.astype(self.dtype, copy=False))
        if focus is not None:
            self._put(p, "focus", (t, c, z), focus.astype(np.float32, copy=False))
        self._write_masks(p, (t, c, z), masks or {})
        status = PLANE_PROVISIONAL if focus is not None else PLANE_RAW
        self._put(p, "planes", (t, c, z), np.uint8(status))
        coarse = raw  # the raw pyramid plane by plane: nothing is read back at stack end
        for level in arrays["raw"][1:]:
            coarse = _halve(coarse, mean=True)
            level[t, c, z] = coarse
        lo, hi = raw.min(), raw.max()  # the channel's display window
        if lo < self._lo[p, c]:
            self._lo[p, c] = lo
        if hi > self._hi[p, c]:
            self._hi[p, c] = hi

    def _put(self, p: int, name: str, index: tuple[int, ...], value: Any) -> None:
        """Write ``value`` at ``index`` of position ``p``'s array ``name`` (its full level)
        through tensorstore (half zarr-python's CPU time per chunk, and the same chunks), its
        I/O errors as OSError, as zarr-python's are."""
        try:
            self._chunks[p][name][index].write(value).result()
        except ValueError as exc:
            text = str(exc)
            if "os_error_code" in text or text.startswith(_IO_STATUS):  # a full disk, ...
                raise OSError(text) from exc
            raise  # not I/O: a frame of the wrong shape, say

    def _write_masks(self, p: int, tcz: tuple[int, ...], masks: Mapping[str, np.ndarray]) -> None:
        for name, mode in self.mask_arrays.items():
            if mode in masks:
                self._put(p, name, tcz, np.asarray(masks[mode]).astype(np.uint8, copy=False))

    def write_final(
        self, index: tuple[int, int, int, int], masks: Mapping[str, np.ndarray]
    ) -> None:
        """Replace the plane's provisional masks by final ones (only the modes given)."""
        p, t, c, z = index
        self._write_masks(p, (t, c, z), masks)

    def write_stack(
        self,
        index: tuple[int, int, int],
        *,
        maps: Mapping[str, np.ndarray],
        masks: Mapping[str, np.ndarray],
        planes: Sequence[int] | None = None,
    ) -> None:
        """Write a finished stack: its 2-D maps, its final (Z, Y, X) masks by mode and, for
        large frames, the coarser levels of its masks and maps (those of the raw frames are
        written with each plane).

        Parameters
        ----------
        index : tuple of int
            (p, t, c).
        maps : dict
            ``depth``, ``all_in_focus``, ``confidence`` (Y, X); ignored by a store without
            maps.
        masks : dict
            Final (Z, Y, X) masks by mode; modes left out keep what was written per plane.
        planes : sequence of int, optional
            The planes the stack has (default: all); only they are marked final.
        """
        p, t, c = index
        arrays = self._arrays[p]
        for name in MAP_ARRAYS:
            if name in arrays:
                self._put(p, name, (t, c), np.asarray(maps[name], dtype=np.float32))
        self._write_masks(p, (t, c), masks)
        marks = np.full(self.shape[3], PLANE_FINAL, np.uint8)
        if planes is not None:
            marks = np.asarray(arrays["planes"][0][t, c])
            marks[list(planes)] = PLANE_FINAL
        self._put(p, "planes", (t, c), marks)
        if self.levels > 1:
            self._write_pyramid(arrays, (t, c), maps, masks)
        with self._lock:
            self._images[p].attrs["ome"] = self._image_meta(p)

    def _write_pyramid(
        self,
        arrays: dict[str, list[Any]],
        tc: tuple[int, int],
        maps: Mapping[str, np.ndarray],
        masks: Mapping[str, np.ndarray],
    ) -> None:
        """The coarser levels of the masks and maps of stack ``tc`` (raw has its own)."""
        given = {**maps, **{n: masks[m] for n, m in self.mask_arrays.items() if m in masks}}
        for name, levels in arrays.items():
            if name in ("raw", "planes") or len(levels) < 2:
                continue
            data = np.asarray(given[name]) if name in given else np.asarray(levels[0][tc])
            data = data.astype(levels[0].dtype, copy=False)
            for level in levels[1:]:
                data = _halve(data, mean=False)
                level[tc] = data

    def update_meta(self, **values: Any) -> None:
        """Merge ``values`` into the root's ``livefocus`` attribute (written at once)."""
        with self._lock:
            self.meta.update(values)
            self.root.attrs["livefocus"] = self.meta

    def close(self, status: str = "complete", **values: Any) -> None:
        """Record the final status (``complete``, ``interrupted`` or ``error: ...``) and the
        channels' display windows."""
        with self._lock:
            for p, image in enumerate(self._images):
                image.attrs["ome"] = self._image_meta(p)
        self.update_meta(status=status, **values)


@dataclass(frozen=True, eq=False)
class StoreReader:
    """A livefocus store opened for reading (see :func:`open_store`).

    Attributes
    ----------
    path : Path
    root : zarr.Group
    positions : int
    shape : tuple of int
        (T, C, Z, Y, X).
    z_um : ndarray
        Plane positions, µm above the lowest plane.
    pixel_size : float or None
        µm; None when uncalibrated.
    meta : dict
        The root's ``livefocus`` attribute (settings, masks, model, status, metrics).
    arrays : dict
        For a store that is not a stream store (``simulate`` output): its arrays by name,
        with leading (T, C) axes of size 1.
    """

    path: Path
    root: Any
    positions: int
    shape: tuple[int, int, int, int, int]
    z_um: np.ndarray
    pixel_size: float | None
    meta: dict[str, Any]
    arrays: Mapping[str, Any] | None = None

    @property
    def mask_names(self) -> list[str]:
        """The in-focus mask arrays, ``mask_<mode>``, primary first."""
        masks: dict[str, str] = self.meta.get("masks", {})
        return list(masks)

    def has(self, name: str) -> bool:
        """Whether :meth:`array` finds ``name``."""
        try:
            self.array(name)
        except KeyError:
            return False
        return True

    def array(self, name: str, position: int = 0, level: int = 0) -> Any:
        """The zarr array ``name`` of a position (at a pyramid ``level``).

        ``raw``, ``focus`` and ``mask_<mode>`` are (T, C, Z, Y, X); ``depth``,
        ``all_in_focus`` and ``confidence`` are (T, C, Y, X); ``planes`` is (T, C, Z).
        ``mask`` is the primary mode's mask.
        """
        if not 0 <= position < self.positions:
            raise ValueError(f"position must be in 0..{self.positions - 1}, got {position}")
        masks = self.mask_names
        if name == "mask" and masks:
            name = masks[0]
        if self.arrays is not None:
            if name not in self.arrays or level:
                raise KeyError(f"array {name!r} is not in the store; it has {sorted(self.arrays)}")
            return self.arrays[name]
        image = self.root if self.positions == 1 else self.root[str(position)]
        paths = {"raw": f"{level}", "focus": "focus/0", "planes": "planes"}
        paths.update({m: f"labels/{m}/{level}" for m in masks})
        paths.update({m: f"{m}/{level}" for m in MAP_ARRAYS})
        if name not in paths or paths[name] not in image:
            known = ", ".join(n for n in paths if paths[n] in image)
            raise KeyError(f"array {name!r} is not in the store; it has {known}")
        return image[paths[name]]


def _simulated(path: Path, root: Any, meta: dict[str, Any]) -> StoreReader:
    """A ``simulate`` store seen as a one-stack store: raw, truth mask, depth, all-in-focus."""
    attrs = dict(root.attrs)
    raw = np.asarray(root["raw"][...])[None, None]
    arrays = {
        "raw": raw,
        "mask_truth": np.asarray(root["truth/mask"][...]).astype(np.uint8)[None, None],
        "depth": np.asarray(root["truth/depth"][...])[None, None],
        "all_in_focus": np.asarray(root["truth/all_in_focus"][...])[None, None],
    }
    nz = raw.shape[2]
    z_um = np.asarray(attrs.get("z_um", np.arange(nz) * float(attrs["z_step_um"])), np.float64)
    return StoreReader(
        path=path,
        root=root,
        positions=1,
        shape=(1, 1, nz, raw.shape[3], raw.shape[4]),
        z_um=z_um,
        pixel_size=float(attrs["pixel_size_um"]),
        meta={**meta, "masks": {"mask_truth": "truth"}},
        arrays=arrays,
    )


def open_store(path: str | Path) -> StoreReader:
    """Open a store livefocus wrote: a stream or ``label`` store (complete or left by an
    interrupted run), or a ``simulate`` store.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When it is not a livefocus store, or one of an older layout.
    """
    import zarr

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"store: {str(path)!r} does not exist")
    try:
        root = zarr.open_group(str(path), mode="r")
        found: Any = root.attrs.get("livefocus")
        meta: dict[str, Any] = dict(found) if isinstance(found, dict) else {}
        why = "" if meta else "its root has no 'livefocus' attribute"
    except Exception as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
    if why:
        raise ValueError(f"store: {str(path)!r} is not a livefocus OME-Zarr store ({why})")
    try:
        if meta.get("kind") == "simulated-stack":
            return _simulated(path, root, meta)
        if meta.get("layout") != LAYOUT:
            found = meta.get("layout")
            raise ValueError(
                "written by a livefocus version before the NGFF root layout (raw/, mask/ "
                "groups); read its arrays with zarr"
                if found is None
                else f"layout {found!r}, this version reads {LAYOUT!r}"
            )
        nt, nc, nz, ny, nx = (int(v) for v in meta["shape"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(
            f"store: {str(path)!r} is not a livefocus store this version reads ({exc})"
        ) from None
    step = float(meta.get("z_step_um") or 1.0)
    z_um = np.asarray(meta.get("z_um", np.arange(nz) * step), dtype=np.float64)
    pixel = meta.get("pixel_size_um")
    return StoreReader(
        path=path,
        root=root,
        positions=int(meta.get("positions", 1)),
        shape=(nt, nc, nz, ny, nx),
        z_um=z_um,
        pixel_size=None if pixel is None else float(pixel),
        meta=meta,
    )
