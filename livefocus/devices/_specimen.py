"""A camera that images the simulated specimen at the linked stage's Z: :class:`SpecimenCamera`."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from livefocus._vocab import CONTRASTS
from livefocus.devices._camera import REFERENCE_EXPOSURE_MS, LinkedCamera
from livefocus.sim import MIN_FIELD_PX, Camera, Optics, Specimen

__all__ = ["MAX_DRIFT_UM_PER_S", "MAX_SENSOR_PX", "SpecimenCamera"]

#: Largest sensor side (pixels) of the specimen camera.
MAX_SENSOR_PX = 8192
#: Fastest drift (µm/s, each axis) the specimen camera takes.
MAX_DRIFT_UM_PER_S = 1e3


def _int_prop(name: str, value: Any, lo: int, hi: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not lo <= number <= hi:
        raise ValueError(f"{name} must be within [{lo}, {hi}], got {number}")
    return number


class SpecimenCamera(LinkedCamera):
    """A camera that images the simulated specimen at the linked stage's Z.

    Pre-initialisation properties: ``Seed``, ``Contrast`` (brightfield or fluorescence),
    ``SensorWidth``, ``SensorHeight`` (pixels), ``PixelSizeUm``, ``ObjectRangeUm`` (the
    objects lie within ± this of the stage's Z = 0) and ``BitDepth``. Changing any of them after
    initialisation rebuilds the specimen at the next frame. Rendered planes are cached by Z;
    each frame gets fresh shot and read noise. The frame's metadata carries ``SimZ_um``, the Z
    it was rendered at.

    ``DriftXUmPerS``, ``DriftYUmPerS`` and ``DriftZUmPerS`` (default 0) make the specimen
    drift at that speed from the first frame taken with a drift set (+x / +y: toward higher
    columns / rows of the frame, +z: upwards, toward larger stage Z); each frame's metadata
    then carries ``SimDrift_um``, the ``x,y,z`` offset it was rendered with.
    """

    def __init__(self) -> None:
        super().__init__()
        self._settings: dict[str, Any] = {
            "Seed": 0,
            "Contrast": "brightfield",
            "SensorWidth": 512,
            "SensorHeight": 512,
            "PixelSizeUm": 0.5,
            "ObjectRangeUm": 18.0,
            "BitDepth": 12,
        }
        self._specimen: Specimen | None = None
        self._last_z = 0.0
        self._drift = [0.0, 0.0, 0.0]  # µm/s along x, y, z
        self._drift_start: float | None = None
        #: The (x, y, z) drift offset (µm) of the last frame rendered (None without a drift):
        #: its ``SimDrift_um``, also for frames taken one by one, whose camera metadata
        #: pymmcore-plus does not pass on.
        self.last_drift_um: tuple[float, float, float] | None = None
        self._moment_cache: OrderedDict[
            tuple[int, float], tuple[np.ndarray, np.ndarray, np.ndarray]
        ] = OrderedDict()
        self._camera_model = Camera()
        self._rng = np.random.default_rng()
        self._build_lock = threading.Lock()
        for name, kind in (
            ("Seed", int),
            ("SensorWidth", int),
            ("SensorHeight", int),
            ("BitDepth", int),
            ("PixelSizeUm", float),
            ("ObjectRangeUm", float),
        ):
            self.register_property(
                name,
                default_value=self._settings[name],
                property_type=kind,
                getter=_getter(name),
                setter=_setter(name),
            )
        for i, axis in enumerate("XYZ"):
            self.register_property(
                f"Drift{axis}UmPerS",
                default_value=0.0,
                property_type=float,
                getter=_drift_getter(i),
                setter=_drift_setter(i),
            )
        self.register_property(
            "Contrast",
            default_value="brightfield",
            property_type=str,
            allowed_values=list(CONTRASTS),
            getter=_getter("Contrast"),
            setter=_setter("Contrast"),
        )

    def _validate(self) -> dict[str, Any]:
        s = dict(self._settings)
        s["Seed"] = _int_prop("Seed", s["Seed"], 0, 2**31 - 1)
        s["SensorWidth"] = _int_prop("SensorWidth", s["SensorWidth"], MIN_FIELD_PX, MAX_SENSOR_PX)
        s["SensorHeight"] = _int_prop(
            "SensorHeight", s["SensorHeight"], MIN_FIELD_PX, MAX_SENSOR_PX
        )
        s["BitDepth"] = _int_prop("BitDepth", s["BitDepth"], 8, 16)
        if s["Contrast"] not in CONTRASTS:
            raise ValueError(f"Contrast must be one of {CONTRASTS}, got {s['Contrast']!r}")
        return s

    @property
    def specimen(self) -> Specimen:
        """The specimen (built on first use after a change of settings)."""
        with self._build_lock:
            if self._specimen is None:
                s = self._validate()
                self._specimen = Specimen(
                    (s["SensorHeight"], s["SensorWidth"]),
                    seed=s["Seed"],
                    contrast=s["Contrast"],
                    z_center=0.0,
                    object_range=float(s["ObjectRangeUm"]),
                    optics=Optics(pixel_size=float(s["PixelSizeUm"])),
                )
                self._camera_model = Camera(bit_depth=s["BitDepth"])
                self._rng = np.random.default_rng([s["Seed"], 2])
            return self._specimen

    @property
    def camera_model(self) -> Camera:
        """Gain, offset, noise and bit depth of the frames."""
        _ = self.specimen
        return self._camera_model

    def prefetch(self, z_positions: tuple[float, ...]) -> None:
        """Render the planes of a triggered Z sequence on a background thread."""
        self.specimen.prefetch(z_positions)

    def initialize(self) -> None:
        """Build the specimen and register under the link."""
        _ = self.specimen
        super().initialize()

    def sensor_shape(self) -> tuple[int, int]:
        """(height, width) of the sensor."""
        return (int(self._settings["SensorHeight"]), int(self._settings["SensorWidth"]))

    def snap(self, buffer: np.ndarray) -> Mapping[str, Any]:
        """Render the specimen at the stage's Z with fresh noise into ``buffer``."""
        spec = self.specimen
        stage = spec.check_z(self.stage_z(), "stage Z")
        offset = self._drift_offset()
        # the specimen higher by dz: the stage at z sees what was at z - dz
        z = stage if offset is None else spec.check_z(stage - offset[2], "drifted Z")
        step, self._last_z = z - self._last_z, z
        if step:
            # Software-timed Z-stacks move by a constant step: render the next planes on the
            # other core while this one is exposed.
            spec.prefetch([z + step, z + 2 * step])
        moments = self._moments(spec, z)
        meta = {"SimZ_um": f"{z:.6g}"}
        # the specimen's place in the field: its drift, less where the XY stage has moved
        # the field of view (a stage at +x sees the specimen x further toward lower columns)
        field_x, field_y = self.field_xy()
        dx, dy = (0.0, 0.0) if offset is None else offset[:2]
        if offset is not None or field_x or field_y:
            pixel = float(self._settings["PixelSizeUm"])
            moments = _shifted(moments, (dx - field_x) / pixel, (dy - field_y) / pixel)
        if offset is not None:
            meta["SimDrift_um"] = ",".join(f"{v:.6g}" for v in offset)
        self.last_drift_um = offset
        self._camera_model.expose_moments(moments, self._rng, out=buffer)
        return meta

    def _drift_offset(self) -> tuple[float, float, float] | None:
        """The specimen's (x, y, z) offset in µm now, None without a drift."""
        if not any(self._drift):
            return None
        now = time.monotonic()
        if self._drift_start is None:
            self._drift_start = now
        elapsed = now - self._drift_start
        x, y, z = (v * elapsed for v in self._drift)
        return (x, y, z)

    def _moments(self, spec: Specimen, z: float) -> tuple[np.ndarray, np.ndarray]:
        """Noise model of the plane at ``z`` for the current exposure (cached with the plane)."""
        electrons = spec.render(z)
        key = (id(electrons), self._exposure)
        moments = self._moment_cache.get(key)
        if moments is None or moments[0] is not electrons:
            scale = np.float32(self._exposure / REFERENCE_EXPOSURE_MS)
            mean, std = self._camera_model.moments(electrons * scale)
            moments = (electrons, mean, std)
            self._moment_cache[key] = moments
            while len(self._moment_cache) > max(8, spec.cache_size // 4):
                self._moment_cache.popitem(last=False)
        else:
            self._moment_cache.move_to_end(key)
        return moments[1], moments[2]


def _shifted(
    moments: tuple[np.ndarray, np.ndarray], dx: float, dy: float
) -> tuple[np.ndarray, np.ndarray]:
    """The image's mean and std moved by (dx, dy) pixels (bilinear; the edge repeated)."""
    shape = moments[0].shape
    move = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float64)

    def shift(m: np.ndarray) -> np.ndarray:
        return np.asarray(
            cv2.warpAffine(
                np.ascontiguousarray(m, np.float32),
                move,
                (shape[1], shape[0]),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
        )

    return shift(moments[0]), shift(moments[1])


def _drift_getter(axis: int) -> Any:
    def get(self: SpecimenCamera) -> float:
        return self._drift[axis]

    return get


def _drift_setter(axis: int) -> Any:
    def set_(self: SpecimenCamera, value: Any) -> None:
        speed = float(value)
        if not np.isfinite(speed) or abs(speed) > MAX_DRIFT_UM_PER_S:
            raise ValueError(
                f"drift must be a speed within ±{MAX_DRIFT_UM_PER_S:g} µm/s, got {value!r}"
            )
        self._drift[axis] = speed
        self._drift_start = None  # drifts from the next frame on

    return set_


def _getter(name: str) -> Any:
    def get(self: SpecimenCamera) -> Any:
        return self._settings[name]

    return get


def _setter(name: str) -> Any:
    def set_(self: SpecimenCamera, value: Any) -> None:
        self._settings[name] = value
        with self._build_lock:
            self._specimen = None

    return set_
