"""Reading focus stacks from TIFF, .npy and Zarr (including our own OME-Zarr stores)."""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from livefocus._output import check_complete

__all__ = [
    "Z_STEP_RANGE_UM",
    "check_planes_written",
    "is_acquisition_store",
    "read_stack",
    "stack_pixel_size",
    "stack_z_step",
]

_TIFF = (".tif", ".tiff")
#: Plane spacings (µm) a stack may have: from a picometre to a metre (1e300 or 1e-300 would
#: overflow the depth arithmetic).
Z_STEP_RANGE_UM = (1e-6, 1e6)
#: Held while tifffile's log is silenced (:func:`_tifffile_quiet`).
_TIFFFILE_LOG = threading.Lock()
#: Files at the root of a Zarr v3 (``zarr.json``) or v2 (``.zarray``, ``.zgroup``) store.
_ZARR_ROOTS = ("zarr.json", ".zarray", ".zgroup")


def _open_zarr(path: Path, key: str | None) -> Any:
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return node
    for name in [key] if key else ["raw", "0"]:
        if name in node:
            child = node[name]
            # An OME-Zarr image group holds its full-resolution level as array "0".
            return child["0"] if isinstance(child, zarr.Group) and "0" in child else child
    raise ValueError(
        f"path {str(path)!r} is a Zarr group without an image array; "
        f"pass key= one of {sorted(node.keys())}"
    )


class _Choice(ValueError):
    """A stack of a store was not chosen, or chosen out of range (said as it is)."""


#: Why a stack has no time point, channel or position to choose (:func:`_no_choice`).
_NOT_A_STORE = (
    "is not a livefocus acquisition store, which alone has time points, channels and "
    "positions to choose"
)
_ONE_STACK_FILE = (
    "is a file of one stack; only a livefocus acquisition store has time points, channels "
    "and positions to choose"
)


def _no_choice(path: Path, picks: dict[str, int | None], why: str = _NOT_A_STORE) -> None:
    """Refuse a time point, channel or position asked of a stack that has none to choose."""
    given = [name for name, value in picks.items() if value is not None]
    if given:
        raise _Choice(f"{given[0]}: stack {str(path)!r} {why}")


def _zarr_stack(
    path: Path, key: str | None, picks: dict[str, int | None]
) -> tuple[Any, int | None]:
    """The Zarr array (or lazy selection) of the stack at ``path``, and its time point."""
    import zarr

    node = zarr.open(str(path), mode="r")
    if key is None and isinstance(node, zarr.Group):
        return _choose(path, node, picks)
    _no_choice(path, picks)
    return _open_zarr(path, key), None


@contextmanager
def _tifffile_quiet() -> Iterator[None]:
    """tifffile's own log silenced: a damaged file it warns about ("invalid page offset")
    fails with one error that names the stack, not a log line before it."""
    log = logging.getLogger("tifffile")
    with _TIFFFILE_LOG:  # threads reading at once restore the level they found, in turn
        level = log.level
        log.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            log.setLevel(level)


def _read_tiff(path: Path) -> tuple[np.ndarray, str]:
    """The first series of a TIFF and its axes (tifffile's letters: ``S`` holds samples)."""
    import tifffile

    with _tifffile_quiet(), tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return np.asarray(series.asarray()), str(series.axes)


def _check_grey(path: Path, data: np.ndarray, axes: str) -> None:
    """Refuse a colour TIFF whose pixels hold interleaved RGB(A) samples (axes ending in
    ``S``), which would read as planes 3 or 4 pixels wide. Separate sample planes (``SYX``,
    how tifffile once saved any 3-plane stack by default) read as planes, as before."""
    if axes.endswith("S") and data.shape[-1] > 1:
        raise ValueError(
            f"stack {str(path)!r} is a colour image (axes {axes}, shape {data.shape}; "
            "S holds RGB(A) samples); focus needs one grey level per pixel: save the stack "
            "in grey (or one channel) first"
        )


def check_planes_written(path: str | Path, name: str = "stack", t: int | None = None) -> None:
    """Raise a ValueError when the livefocus store ``path`` (time point ``t``, default all)
    lacks planes: frames lost while it was recorded are no data (their pixels read as 0).

    Anything without livefocus's ``planes`` array (another store, a file) passes."""
    import zarr

    try:
        node: Any = zarr.open(str(path), mode="r")
        image = node if "planes" in node else node["0"]
        status = np.asarray(image["planes"])
    except Exception:
        return
    if t is not None:
        status = status[t : t + 1]
    missing = int(np.count_nonzero(status == 0))
    if missing:
        skipped = _skipped(node, t)
        why = (
            f"{skipped} of them skipped by --skip-planes, which acquires only the planes near "
            "the focus"
            if skipped
            else "frames lost while it was recorded, or a run stopped early"
        )
        raise ValueError(
            f"{name} {str(path)!r} lacks {missing} of {status.size} planes ({why}): they are "
            "no data"
        )


def _skipped(node: Any, t: int | None) -> int:
    """Frames a livefocus store's run skipped (plane skipping; of time point ``t`` if given)."""
    try:
        skips = node.attrs["livefocus"].get("plane_skips") or []
        return sum(int(s["skipped"]) for s in skips if t is None or int(s["t"]) == t)
    except Exception:
        return 0


def _choose(path: Path, node: Any, picks: dict[str, int | None]) -> tuple[Any, int | None]:
    """The stack of a livefocus stream store chosen by ``time_point``, ``channel`` and
    ``position`` (the time point picked, for the planes' check), as a lazy Zarr selection.

    A store holding several stacks (time points, channels, positions) needs the choice: one is
    never picked in silence. Anything else takes no choice."""
    import zarr

    attrs = _zarr_attrs(path) or {}
    meta = attrs.get("livefocus")
    for name, value in picks.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0
        ):
            raise _Choice(f"{name} must be a non-negative int, got {value!r}")
    if not isinstance(meta, dict) or meta.get("layout") is None:
        _no_choice(path, picks)
        return _open_zarr(path, None), None
    positions = int(meta.get("positions") or 1)
    p = _pick(path, "position", picks["position"], positions, "positions", "P")
    group = node if positions == 1 else node[str(p)]
    array: Any = group["0"] if isinstance(group, zarr.Group) else group
    shape = tuple(array.shape)
    t = _pick(path, "time_point", picks["time_point"], shape[0], "time points", "TIME", shape)
    c = _pick(path, "channel", picks["channel"], shape[1], "channels", "CHANNEL", shape)
    return array[t, c], t


def _pick(
    path: Path,
    name: str,
    value: int | None,
    count: int,
    what: str,
    placeholder: str,
    shape: tuple[int, ...] | None = None,
) -> int:
    """The index ``name`` of a store's ``count`` ``what``: ``value``, which must be given where
    there are several, and below ``count``."""
    if value is None and count > 1:
        held = f" (shape {shape})" if shape is not None else ""
        raise _Choice(
            f"stack {str(path)!r} holds {count} {what}{held}: choose one with "
            f"{name}={placeholder} (0 to {count - 1})"
        )
    index = int(value or 0)
    if index >= count:
        raise _Choice(f"{name} must be below {count} for stack {str(path)!r}, got {index}")
    return index


def read_stack(
    path: str | Path,
    *,
    key: str | None = None,
    ndim: int = 3,
    time_point: int | None = None,
    channel: int | None = None,
    position: int | None = None,
) -> np.ndarray:
    """Read an image stack as a numpy array.

    Parameters
    ----------
    path : str or Path
        A TIFF (``.tif``/``.tiff``), a ``.npy`` file, or a Zarr array or group (``.zarr``; for a
        group the array ``key``, else ``raw`` or ``0``).
    key : str, optional
        Array inside a Zarr group.
    ndim : {3, 2}
        The dimensionality the caller needs: singleton leading axes are dropped and a 2-D image
        becomes a one-slice stack when ``ndim`` is 3. Anything else is an error naming the shape.
    time_point, channel, position : int, optional
        Which stack of a livefocus acquisition store (a time lapse, several channels or
        positions) to read; required where the store holds more than one (never picked in
        silence), an error for anything else.

    Raises
    ------
    FileNotFoundError
        No such path.
    ValueError
        Unknown format, a corrupt or incomplete file, an empty stack, the wrong number of axes,
        a non-numeric dtype, or colour: a TIFF whose pixels hold interleaved RGB(A) samples
        is refused (focus needs one grey level per pixel; convert it to grey first).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or Path, got {type(path).__name__}")
    if str(path) == "":
        raise ValueError("path must not be empty")
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"stack {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (*_TIFF, ".npy", ".zarr") and not path.is_dir():
        raise ValueError(
            f"stack {str(path)!r}: unknown format {suffix!r}; expected .tif, .tiff, .npy or .zarr"
        )
    if path.is_dir() and not any((path / name).is_file() for name in _ZARR_ROOTS):
        raise ValueError(
            f"stack {str(path)!r} is a folder but not a Zarr store (no zarr.json); give a TIFF, "
            ".npy or Zarr path"
        )
    if suffix not in (*_TIFF, ".npy"):
        check_complete(path, "stack")  # a store left by a crash or a full disk is no stack
    axes = ""
    picks = {"time_point": time_point, "channel": channel, "position": position}
    t: int | None = None
    if suffix in (*_TIFF, ".npy"):
        _no_choice(path, picks, _ONE_STACK_FILE)
    try:
        if suffix in _TIFF:
            data, axes = _read_tiff(path)
        elif suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            node, t = _zarr_stack(path, key, picks)
            data = np.asarray(node[...])
    except _Choice:  # said as it is, not as a file that could not be read
        raise
    except Exception as exc:  # a corrupt file: say which, keep the cause
        raise ValueError(f"stack {str(path)!r} could not be read: {exc}") from exc
    if suffix not in (*_TIFF, ".npy"):
        check_planes_written(path, "stack", t=t)
    _check_grey(path, data, axes)
    if data.size == 0:
        raise ValueError(f"stack {str(path)!r} is empty: shape {data.shape}")
    while data.ndim > ndim and data.shape[0] == 1:
        data = data[0]
    if ndim == 3 and data.ndim == 2:
        data = data[None]
    if data.ndim != ndim:
        raise ValueError(
            f"stack {str(path)!r} has shape {data.shape}; expected {ndim} axes "
            f"({'Z, Y, X' if ndim == 3 else 'Y, X'})"
        )
    if data.dtype == bool or not (
        np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)
    ):
        raise ValueError(f"stack {str(path)!r} has dtype {data.dtype}; expected integer or float")
    return data


def stack_z_step(path: str | Path) -> float | None:
    """Z step in micrometres stored with a stack, when the file records one (None when it
    records none; a missing or unreadable stack is an error, as for :func:`read_stack`).

    A recorded step that is not a number of µm within :data:`Z_STEP_RANGE_UM` (0, negative,
    NaN, 1e300) is a ValueError that names the file and asks for ``z_step`` (the same value
    given as ``z_step`` is refused too)."""
    path = _stack_path(path)
    if path.suffix.lower() in _TIFF:
        spacing = _tiff_tags(path)[0].get("spacing")
        step, source = spacing, "its ImageJ spacing"
    else:
        attrs = _zarr_attrs(path)
        if attrs is None:
            return None
        step, source = _livefocus_attr(attrs, "z_step_um"), "its attribute z_step_um"
        if step is None:
            step, source = _ngff_raw_scale(attrs, "z"), "its OME-NGFF z scale"
    if step is None:
        return None
    lo, hi = Z_STEP_RANGE_UM
    value = float(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else None
    if value is None or not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(
            f"stack {str(path)!r} records a z step of {step!r} µm ({source}), not a number "
            f"from {lo:g} to {hi:g} µm: give z_step=UM"
        )
    return value


#: ImageJ's names of the micrometre (its ``unit``), for a TIFF's resolution in pixels per µm.
_MICRONS = ("micron", "microns", "um", "µm", "\u00b5m", "\u03bcm")


def stack_pixel_size(path: str | Path) -> float | None:
    """Pixel size in micrometres stored with a stack, when the file records one: an ImageJ
    TIFF's resolution in a micrometre unit, the Zarr attribute ``pixel_size_um`` (a
    livefocus store's too), or the x scale of an OME-Zarr image in micrometres (None when it
    records none, or records it in another unit; a missing stack is an error)."""
    path = _stack_path(path)
    if path.suffix.lower() in _TIFF:
        meta, resolution = _tiff_tags(path)
        if str(meta.get("unit", "")).strip().lower() not in _MICRONS:
            return None
        try:
            pixels, per = (float(v) for v in resolution)  # a fraction: pixels per unit
        except (TypeError, ValueError):
            return None
        size = per / pixels if pixels > 0 else math.nan
        return size if math.isfinite(size) and size > 0 else None
    attrs = _zarr_attrs(path)
    if attrs is None:
        return None
    stored = _livefocus_attr(attrs, "pixel_size_um")
    if isinstance(stored, (int, float)) and not isinstance(stored, bool):
        return float(stored) if math.isfinite(stored) and stored > 0 else None
    return _ngff_scale(attrs, "x", micrometres=True)


def _stack_path(path: str | Path) -> Path:
    """``path`` as a Path to something that exists (a TypeError or FileNotFoundError else)."""
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise TypeError(f"path must be a str or Path, got {path!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"stack {str(path)!r} does not exist")
    return path


def _tiff_tags(path: Path) -> tuple[dict[str, Any], Any]:
    """A TIFF's ImageJ metadata ({} without) and its first page's XResolution (() without)."""
    import tifffile

    try:
        with _tifffile_quiet(), tifffile.TiffFile(path) as tif:
            meta = tif.imagej_metadata or {}
            tag = tif.pages[0].tags.get("XResolution")  # type: ignore[union-attr]
            return dict(meta), (tag.value if tag is not None else ())
    except Exception as exc:  # a corrupt file: say which, keep the cause
        raise ValueError(f"stack {str(path)!r} could not be read: {exc}") from exc


def _zarr_attrs(path: Path) -> dict[str, Any] | None:
    """The attributes of a Zarr stack's root (None: not Zarr, or not readable as Zarr)."""
    if path.suffix.lower() != ".zarr" and not path.is_dir():
        return None
    import zarr

    try:
        return dict(zarr.open(str(path), mode="r").attrs)
    except Exception:
        return None


def is_acquisition_store(path: str | Path) -> bool:
    """Whether ``path`` is a livefocus acquisition store (``demo``/``replay``/``acquire``'s
    output), whose stacks :func:`read_stack` chooses by time point, channel and position."""
    meta = (_zarr_attrs(Path(path)) or {}).get("livefocus")
    return isinstance(meta, dict) and meta.get("layout") is not None


def _livefocus_attr(attrs: dict[str, Any], key: str) -> Any:
    """``key`` at the root of ``attrs``, else in its ``livefocus`` attribute (None: in neither)."""
    value = attrs.get(key)
    nested = attrs.get("livefocus")
    if value is None and isinstance(nested, dict):
        value = nested.get(key)
    return value


def _ngff_scale(attrs: dict[str, Any], axis: str, micrometres: bool = False) -> float | None:
    """The ``axis`` scale of an OME-NGFF image's first dataset (with ``micrometres``: only
    where the axis's unit is the micrometre), when it is a positive number."""
    value = _ngff_raw_scale(attrs, axis, micrometres)
    return value if value is not None and math.isfinite(value) and value > 0 else None


def _ngff_raw_scale(attrs: dict[str, Any], axis: str, micrometres: bool = False) -> float | None:
    """The ``axis`` scale of an OME-NGFF image's first dataset as it stands (None: none)."""
    try:
        image = attrs.get("ome", attrs)["multiscales"][0]
        axes = image["axes"]
        names = [a["name"] if isinstance(a, dict) else a for a in axes]
        k = names.index(axis)
        if micrometres and not (isinstance(axes[k], dict) and axes[k].get("unit") == "micrometer"):
            return None
        for transform in image["datasets"][0]["coordinateTransformations"]:
            if transform["type"] == "scale":
                return float(transform["scale"][k])
    except (KeyError, IndexError, TypeError, ValueError):  # not an image, or no such scale
        return None
    return None
