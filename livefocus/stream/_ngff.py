"""OME-NGFF 0.5 metadata of livefocus stores, built with yaozarrs' pydantic models.

The models validate every document before it is written (axes, one scale per dataset, a
translation after it, label colours, ...); the store writes their JSON as group attributes.
Units are claimed only where they are known: y and x in micrometres only with a pixel size,
t in seconds only with an interval (else a scale of 1 without unit), z in micrometres
(the stage's unit) unless the z step is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LABEL_COLORS",
    "Geometry",
    "bf2raw_attrs",
    "image_attrs",
    "label_attrs",
    "labels_attrs",
    "series_attrs",
]

#: Overlay colour (RGBA) of each mask mode's in-focus label; 0 is transparent.
LABEL_COLORS = {"depth": (0, 255, 0, 160), "otsu": (255, 0, 255, 160), "model": (0, 160, 255, 160)}
#: Channel colours by position (the first channel of a one-channel store is grey).
_CHANNEL_COLORS = ("FFFFFF", "00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF")


def _known(value: float | None, unit: str) -> tuple[float, float, str | None]:
    """(scale, translation, unit) of an axis whose scale may be unknown (scale 1, no unit)."""
    return (1.0, 0.0, None) if value is None else (float(value), 0.0, unit)


@dataclass(frozen=True)
class Geometry:
    """The physical scales of one position: what the axes' scales and translation say.

    Attributes
    ----------
    z_step : float or None
        µm between planes; None when unknown (scale 1, no unit).
    pixel_size : float or None
        µm per pixel; None when uncalibrated (scale 1, no unit).
    interval_s : float or None
        Seconds between time points; None when unknown (scale 1, no unit).
    stage_yx : tuple of float or None
        Stage position (y, x) in µm, written as a translation when the pixel size is known.
    """

    z_step: float | None
    pixel_size: float | None
    interval_s: float | None
    stage_yx: tuple[float, float] | None = None

    def _axis(self, name: str) -> tuple[float, float, str | None]:
        """(scale, translation, unit) of axis ``name`` at full resolution."""
        if name == "t":
            interval = self.interval_s if self.interval_s and self.interval_s > 0 else None
            return _known(interval, "second")
        if name == "c":
            return 1.0, 0.0, None
        if name == "z":
            return _known(self.z_step, "micrometer")
        if self.pixel_size is None:
            return 1.0, 0.0, None
        offset = 0.0
        if self.stage_yx is not None:
            offset = float(self.stage_yx[0] if name == "y" else self.stage_yx[1])
        return float(self.pixel_size), offset, "micrometer"

    def multiscale(self, name: str, axes: str, levels: int) -> Any:
        """A yaozarrs ``Multiscale`` with ``levels`` datasets ``0``, ``1``, ... (2x in y, x)."""
        from yaozarrs import v05

        kinds = {"t": v05.TimeAxis, "c": v05.ChannelAxis}
        axis_models = []
        for a in axes:
            unit = self._axis(a)[2]
            model = kinds.get(a, v05.SpaceAxis)
            axis_models.append(model(name=a, unit=unit) if unit else model(name=a))
        offsets = [self._axis(a)[1] for a in axes]
        datasets = []
        for level in range(levels):
            scale = [self._axis(a)[0] * (2**level if a in "yx" else 1) for a in axes]
            transforms: list[Any] = [v05.ScaleTransformation(scale=scale)]
            if any(offsets):
                transforms.append(v05.TranslationTransformation(translation=offsets))
            datasets.append(v05.Dataset(path=str(level), coordinateTransformations=transforms))
        return v05.Multiscale(name=name, axes=axis_models, datasets=datasets)


def _dump(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="json", exclude_none=True, by_alias=True)
    return out


def _omero(channels: Sequence[str], windows: Sequence[tuple[float, float, float, float]]) -> Any:
    from yaozarrs import v05

    many = len(channels) > 1
    return v05.Omero(
        channels=[
            v05.OmeroChannel(
                label=label,
                color=_CHANNEL_COLORS[(i + many) % len(_CHANNEL_COLORS)],
                window=v05.OmeroWindow(start=start, end=end, min=lo, max=hi),
                active=True,
            )
            for i, (label, (start, end, lo, hi)) in enumerate(zip(channels, windows, strict=True))
        ]
    )


def image_attrs(
    geometry: Geometry,
    name: str,
    axes: str,
    levels: int = 1,
    *,
    channels: Sequence[str] | None = None,
    windows: Sequence[tuple[float, float, float, float]] | None = None,
) -> dict[str, Any]:
    """The ``ome`` attribute of an image group (with ``omero`` channels when given).

    ``windows`` holds (start, end, min, max) of each channel's display range.
    """
    from yaozarrs import v05

    omero = _omero(channels, windows) if channels is not None and windows is not None else None
    return _dump(v05.Image(multiscales=[geometry.multiscale(name, axes, levels)], omero=omero))


def label_attrs(geometry: Geometry, name: str, mode: str, levels: int = 1) -> dict[str, Any]:
    """The ``ome`` attribute of an in-focus label image (0 = out of focus, 1 = in focus)."""
    from yaozarrs import v05

    label = v05.ImageLabel(
        colors=[
            v05.LabelColor.model_validate({"label-value": 0, "rgba": [0, 0, 0, 0]}),
            v05.LabelColor.model_validate(
                {"label-value": 1, "rgba": list(LABEL_COLORS.get(mode, (255, 255, 0, 160)))}
            ),
        ],
        source=v05.LabelSource(image="../../"),
    )
    image = v05.LabelImage.model_validate(
        {"multiscales": [geometry.multiscale(name, "tczyx", levels)], "image-label": label}
    )
    out = _dump(image)
    # yaozarrs types label-value as a float; the spec's values are integers (and
    # ome-zarr-py rejects 1.0)
    for color in out["image-label"]["colors"]:
        color["label-value"] = int(color["label-value"])
    return out


def labels_attrs(names: Sequence[str]) -> dict[str, Any]:
    """The ``ome`` attribute of an image's ``labels`` group."""
    from yaozarrs import v05

    return _dump(v05.LabelsGroup(labels=list(names)))


def bf2raw_attrs() -> dict[str, Any]:
    """The ``ome`` attribute of a multi-position root (the bioformats2raw layout)."""
    from yaozarrs import v05

    return _dump(v05.Bf2Raw.model_validate({"bioformats2raw.layout": 3}))


def series_attrs(paths: Sequence[str]) -> dict[str, Any]:
    """The ``ome`` attribute of the ``OME`` group that lists a multi-position root's images."""
    from yaozarrs import v05

    return _dump(v05.Series(series=list(paths)))
