"""napari reader for livefocus stores (``pip install livefocus[napari]``).

The npe2 manifest ``livefocus/napari.yaml`` registers :func:`get_reader` for folders ending
in ``.zarr``; it claims only stores livefocus wrote (stream, ``label`` and ``simulate``
output) and leaves every other Zarr folder to the other readers. Opening a store gives, for
each position and channel, these layers, all in the same world coordinates (t, z, y, x):

- ``raw``: the camera frames, an image (multiscale when the store has a pyramid), with the
  channel's name, colour and display window from its ``omero`` metadata;
- ``in focus (<mode>)``: each mask mode's in-focus label (0 transparent, 1 coloured);
- ``depth`` (turbo), ``all-in-focus`` (grey) and ``confidence`` (hidden): the per-stack maps,
  one plane that spans the whole stack in z.

The arrays stay on disk: napari reads the planes it shows through :class:`AxisView`. This
module never imports napari; the layer data tuples are plain Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from livefocus._output import is_livefocus_output
from livefocus.stream._ngff import LABEL_COLORS
from livefocus.stream.store import MAP_ARRAYS, StoreReader, open_store

__all__ = ["AxisView", "LayerData", "get_reader", "read_store"]

#: napari's layer data tuple: (data, layer keyword arguments, layer type).
LayerData = tuple[Any, dict[str, Any], str]

_MAP_STYLE = {
    "depth": {"colormap": "turbo", "visible": True},
    "all_in_focus": {"colormap": "gray", "visible": False},
    "confidence": {"colormap": "magma", "visible": False},
}


class AxisView:
    """A lazy (T, Z, Y, X) view of a (T, C, Z, Y, X) or (T, C, Y, X) array at channel ``c``.

    A 4-D map gets a z axis of size 1. Indexing with ints and slices reads only what is
    asked for, which is how napari reads the plane it shows.
    """

    def __init__(self, array: Any, channel: int) -> None:
        self.array = array
        self.channel = int(channel)
        self.flat = len(array.shape) == 4
        t, _, *rest = (int(v) for v in array.shape)
        self.shape = (t, 1, *rest) if self.flat else (t, *rest)
        self.dtype = np.dtype(array.dtype)
        self.ndim = 4

    def __getitem__(self, key: Any) -> np.ndarray:
        keys = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in keys):
            at = keys.index(Ellipsis)
            keys = keys[:at] + (slice(None),) * (4 - len(keys) + 1) + keys[at + 1 :]
        keys = keys + (slice(None),) * (4 - len(keys))
        t, z, y, x = keys
        if not self.flat:
            return np.asarray(self.array[t, self.channel, z, y, x])
        planes = range(1)[z]  # the map's one z plane: an int or a range (IndexError beyond)
        plane = np.asarray(self.array[t, self.channel, y, x])
        if isinstance(planes, int):
            return plane
        axis = 1 if isinstance(t, slice) else 0
        return np.repeat(np.expand_dims(plane, axis), len(planes), axis=axis)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data.astype(dtype) if dtype is not None else data

    def __len__(self) -> int:
        return self.shape[0]


def _scale(store: StoreReader) -> list[float]:
    """The scale of (t, z, y, x) at full resolution (1 where unknown)."""
    meta = store.meta
    interval = meta.get("interval_s")
    dt = float(interval) if interval else 1.0
    step = meta.get("z_step_um")
    dz = float(step) if step else 1.0
    pixel = store.pixel_size if store.pixel_size is not None else 1.0
    return [dt, dz, pixel, pixel]


def _translate(store: StoreReader, p: int) -> list[float]:
    stage = store.meta.get("stage_positions")
    if not stage or store.pixel_size is None:
        return [0.0, 0.0, 0.0, 0.0]
    x, y = (float(v) for v in stage[p])
    return [0.0, 0.0, y, x]


def _channel_style(store: StoreReader, p: int, c: int) -> dict[str, Any]:
    """Name, colour and contrast limits of channel ``c`` from the image's omero metadata."""
    image = store.root if store.positions == 1 else store.root[str(p)]
    try:
        channel = dict(image.attrs)["ome"]["omero"]["channels"][c]
    except (KeyError, IndexError, TypeError):
        return {"name": f"c{c}", "colormap": "gray"}
    color = str(channel.get("color", "FFFFFF")).upper()
    window = channel.get("window", {})
    style: dict[str, Any] = {
        "name": str(channel.get("label") or f"c{c}"),
        "colormap": "gray" if color == "FFFFFF" else _hex_colormap(color),
    }
    if "start" in window and "end" in window and window["end"] > window["start"]:
        style["contrast_limits"] = [float(window["start"]), float(window["end"])]
    return style


def _hex_colormap(color: str) -> dict[str, Any]:
    """A black-to-``color`` colormap in napari's dict form."""
    rgb = [int(color[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    return {"colors": [[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], "name": f"#{color}"}


def read_store(path: str | Path) -> list[LayerData]:
    """The napari layers of a livefocus store (see the module docstring)."""
    store = open_store(path)
    nc, nz = store.shape[1], store.shape[2]
    scale = _scale(store)
    levels = int(store.meta.get("levels", 1)) if store.arrays is None else 1
    layers: list[LayerData] = []
    for p in range(store.positions):
        where = f" p{p}" if store.positions > 1 else ""
        translate = _translate(store, p)
        for c in range(nc):
            style = _channel_style(store, p, c) if store.arrays is None else {"name": "raw"}
            suffix = (f" {style['name']}" if nc > 1 else "") + where
            pyramid = [AxisView(store.array("raw", p, level), c) for level in range(levels)]
            meta = {"livefocus_store": str(store.path), "position": p, "channel": c}
            kwargs = {
                "colormap": "gray",
                **style,
                "name": f"raw{suffix}",
                "scale": scale,
                "translate": translate,
                "blending": "additive",
                "metadata": meta,
            }
            layers.append((pyramid if levels > 1 else pyramid[0], kwargs, "image"))
            for name in store.mask_names:
                mode = str(store.meta.get("masks", {}).get(name, name.removeprefix("mask_")))
                rgba = [v / 255 for v in LABEL_COLORS.get(mode, (255, 255, 0, 160))]
                label = [AxisView(store.array(name, p, level), c) for level in range(levels)]
                kwargs = {
                    "name": f"in focus ({mode}){suffix}",
                    "scale": scale,
                    "translate": translate,
                    "colormap": {0: [0.0, 0.0, 0.0, 0.0], 1: rgba, None: [0.0, 0.0, 0.0, 0.0]},
                    "opacity": 0.6,
                    "metadata": meta,
                }
                layers.append((label if levels > 1 else label[0], kwargs, "labels"))
            for name in MAP_ARRAYS:
                if not store.has(name):
                    continue
                # one plane spanning the stack: centred on it, as tall as it
                map_scale = [scale[0], scale[1] * nz, scale[2], scale[3]]
                map_translate = [translate[0], scale[1] * (nz - 1) / 2, *translate[2:]]
                kwargs = {
                    "name": f"{name.replace('_', '-')}{suffix}",
                    "scale": map_scale,
                    "translate": map_translate,
                    "metadata": meta,
                    **_MAP_STYLE[name],
                }
                layers.append((AxisView(store.array(name, p), c), kwargs, "image"))
    return layers


def get_reader(path: str | Sequence[str]) -> Callable[[str | Path], list[LayerData]] | None:
    """napari's reader hook: :func:`read_store` for a livefocus store, else None."""
    if not isinstance(path, (str, Path)):
        if len(path) != 1:
            return None
        path = path[0]
    folder = Path(path)
    if folder.suffix != ".zarr" or not is_livefocus_output(folder):
        return None
    return read_store
