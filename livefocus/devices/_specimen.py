"""A camera that images the simulated specimen at the linked stage's Z: :class:`SpecimenCamera`."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from livefocus._vocab import CONTRASTS
from livefocus.devices._camera import REFERENCE_EXPOSURE_MS, LinkedCamera
from livefocus.sim import MIN_FIELD_PX, Camera, Optics, Specimen

__all__ = ["MAX_SENSOR_PX", "SpecimenCamera"]

#: Largest sensor side (pixels) of the specimen camera.
MAX_SENSOR_PX = 8192


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
        z = spec.check_z(self.stage_z(), "stage Z")
        step, self._last_z = z - self._last_z, z
        if step:
            # Software-timed Z-stacks move by a constant step: render the next planes on the
            # other core while this one is exposed.
            spec.prefetch([z + step, z + 2 * step])
        self._camera_model.expose_moments(self._moments(spec, z), self._rng, out=buffer)
        return {"SimZ_um": f"{z:.6g}"}

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
