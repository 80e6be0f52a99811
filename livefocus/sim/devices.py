"""Micro-Manager Python devices (pymmcore-plus ``UniMMCore``): specimen camera, replay camera, Z.

A camera and a Z stage that belong together share a ``Link`` property (a name). The stage
registers itself under its link when it is initialised; the camera looks up the stage with the
same link at every frame and renders (or replays) the plane at the stage's Z. The link is
needed because pymmcore-plus gives Python devices no handle on the core or on other devices.
:func:`livefocus.sim.demo_core` and :func:`livefocus.sim.replay_core` give every core a link of
its own; configuration files use ``livefocus`` unless they say otherwise.

The stage is sequenceable: under hardware-triggered Z (``MDAEngine`` with hardware sequencing)
it receives the positions of the Z-stack up front, and each camera frame acts as the trigger
that advances it to the next position, as a camera TTL line would on a real piezo.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pymmcore_plus.experimental.unicore import SimpleCameraDevice, StageDevice

from livefocus.sim.optics import Camera, Optics
from livefocus.sim.phantom import CONTRASTS, MIN_FIELD_PX, Specimen

__all__ = [
    "DEFAULT_LINK",
    "ReplayCamera",
    "SimZStage",
    "SpecimenCamera",
    "linked_camera",
    "replay_frames",
]

#: Link name used when a configuration file does not set one.
DEFAULT_LINK = "livefocus"
#: Exposure (ms) at which the specimen camera gives the specimen's nominal brightness.
_REFERENCE_EXPOSURE_MS = 10.0

_STAGES: weakref.WeakValueDictionary[str, SimZStage] = weakref.WeakValueDictionary()
_CAMERAS: weakref.WeakValueDictionary[str, _LinkedCamera] = weakref.WeakValueDictionary()


def linked_camera(link: str) -> SpecimenCamera | ReplayCamera:
    """The initialised livefocus camera registered under ``link``.

    Raises
    ------
    KeyError
        When no camera with that link is initialised.
    """
    cam = _CAMERAS.get(link)
    if not isinstance(cam, (SpecimenCamera, ReplayCamera)):
        raise KeyError(f"no livefocus camera is initialised with Link={link!r}")
    return cam


class SimZStage(StageDevice):
    """A simulated Z stage (µm) with travel limits and hardware-triggered sequences.

    Properties: ``Link`` (shared with its camera), ``LowerLimitUm`` and ``UpperLimitUm``
    (travel; a move outside raises ``ValueError``). Positions are exact: no settling, no
    backlash.
    """

    def __init__(self) -> None:
        super().__init__()
        self._position = 0.0
        self._origin = 0.0
        self._link = DEFAULT_LINK
        self._lower = -1000.0
        self._upper = 1000.0
        self._sequence: tuple[float, ...] = ()
        self._seq_index = 0
        self._seq_running = False
        self._lock_seq = threading.Lock()
        self.register_property(
            "Link", property_type=str, getter=SimZStage._get_link, setter=SimZStage._set_link
        )
        self.register_property(
            "LowerLimitUm",
            property_type=float,
            getter=SimZStage._get_lower,
            setter=SimZStage._set_lower,
        )
        self.register_property(
            "UpperLimitUm",
            property_type=float,
            getter=SimZStage._get_upper,
            setter=SimZStage._set_upper,
        )

    # properties
    def _get_link(self) -> str:
        return self._link

    def _set_link(self, value: str) -> None:
        if _STAGES.get(self._link) is self:
            del _STAGES[self._link]
        self._link = str(value)
        if self._initialized_ is True:
            _STAGES[self._link] = self

    def _get_lower(self) -> float:
        return self._lower

    def _set_lower(self, value: float) -> None:
        self._lower = float(value)

    def _get_upper(self) -> float:
        return self._upper

    def _set_upper(self, value: float) -> None:
        self._upper = float(value)

    # device
    def initialize(self) -> None:
        """Register the stage under its link."""
        _STAGES[self._link] = self

    def shutdown(self) -> None:
        """Unregister the stage."""
        if _STAGES.get(self._link) is self:
            del _STAGES[self._link]

    def set_position_um(self, val: float) -> None:
        """Move to ``val`` µm; a position outside the travel limits raises ``ValueError``."""
        z = float(val)
        if not math.isfinite(z) or not (self._lower <= z <= self._upper):
            raise ValueError(
                f"position {val!r} µm is outside the range of stage {self.get_label()!r}: "
                f"[{self._lower:g}, {self._upper:g}] µm"
            )
        self._position = z - self._origin
        self.core.events.stagePositionChanged.emit(self.get_label(), z)

    def get_position_um(self) -> float:
        """Current position in µm."""
        return self._position + self._origin

    def home(self) -> None:
        """Move to 0."""
        self.set_position_um(0.0)

    def stop(self) -> None:
        """Nothing to stop: moves are instantaneous."""

    def set_origin(self) -> None:
        """Make the current position Z = 0."""
        self._origin = -self._position

    def set_adapter_origin_um(self, newZUm: float) -> None:
        """Make the current position Z = ``newZUm``."""
        self._origin = float(newZUm) - self._position

    # hardware-triggered sequences
    def get_sequence_max_length(self) -> int:
        """Longest position sequence the stage accepts."""
        return 100_000

    def send_sequence(self, sequence: tuple[float, ...]) -> None:
        """Load the positions of a triggered Z sequence (checked against the limits)."""
        for z in sequence:
            if not (self._lower <= float(z) <= self._upper):
                raise ValueError(
                    f"sequence position {z!r} µm is outside the range of stage "
                    f"{self.get_label()!r}: [{self._lower:g}, {self._upper:g}] µm"
                )
        with self._lock_seq:
            self._sequence = tuple(float(z) for z in sequence)
        camera = _CAMERAS.get(self._link)
        if camera is not None:
            camera.prefetch(self._sequence)

    def start_sequence(self) -> None:
        """Arm the sequence: the next camera frame triggers its first position."""
        with self._lock_seq:
            self._seq_index = 0
            self._seq_running = bool(self._sequence)

    def stop_sequence(self) -> None:
        """Disarm the sequence; the stage stays where the last trigger left it."""
        with self._lock_seq:
            self._seq_running = False

    def trigger(self) -> float:
        """Position for the next frame: a triggered step when a sequence runs, else current."""
        with self._lock_seq:
            if not self._seq_running:
                return self.get_position_um()
            z = self._sequence[self._seq_index % len(self._sequence)]
            self._seq_index += 1
            self._position = z - self._origin
            return z


class _LinkedCamera(SimpleCameraDevice):
    """Shared part of the two cameras: exposure, link, size, uint16 frames, Z look-up."""

    def __init__(self) -> None:
        super().__init__()
        self._exposure = _REFERENCE_EXPOSURE_MS
        self._link = DEFAULT_LINK
        self.register_property(
            "Link",
            property_type=str,
            getter=_LinkedCamera._get_link,
            setter=_LinkedCamera._set_link,
        )

    def _get_link(self) -> str:
        return self._link

    def _set_link(self, value: str) -> None:
        if _CAMERAS.get(self._link) is self:
            del _CAMERAS[self._link]
        self._link = str(value)
        if self._initialized_ is True:
            _CAMERAS[self._link] = self

    def initialize(self) -> None:
        """Register the camera under its link."""
        _CAMERAS[self._link] = self

    def shutdown(self) -> None:
        """Unregister the camera."""
        if _CAMERAS.get(self._link) is self:
            del _CAMERAS[self._link]

    def get_exposure(self) -> float:
        """Exposure in ms."""
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        """Set the exposure in ms (frames are computed, not waited for)."""
        value = float(exposure)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"exposure must be a positive number of ms, got {exposure!r}")
        self._exposure = value

    def dtype(self) -> np.dtype[np.uint16]:
        """Frames are uint16."""
        return np.dtype(np.uint16)

    def prefetch(self, z_positions: tuple[float, ...]) -> None:
        """Prepare the frames of a Z sequence ahead of time (nothing to do by default)."""

    def stage_z(self) -> float:
        """Z (µm) of the linked stage for the next frame (a trigger under a sequence)."""
        stage = _STAGES.get(self._link)
        if stage is None:
            raise RuntimeError(
                f"camera {self.get_label()!r} has no simulated Z stage with Link={self._link!r}; "
                "load livefocus.sim.devices.SimZStage with the same Link"
            )
        return stage.trigger()


def _int_prop(name: str, value: Any, lo: int, hi: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not lo <= number <= hi:
        raise ValueError(f"{name} must be within [{lo}, {hi}], got {number}")
    return number


class SpecimenCamera(_LinkedCamera):
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
        s["SensorWidth"] = _int_prop("SensorWidth", s["SensorWidth"], MIN_FIELD_PX, 8192)
        s["SensorHeight"] = _int_prop("SensorHeight", s["SensorHeight"], MIN_FIELD_PX, 8192)
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
            scale = np.float32(self._exposure / _REFERENCE_EXPOSURE_MS)
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


def replay_frames(stack: np.ndarray, *, name: str = "stack") -> np.ndarray:
    """Convert a stack to the uint16 frames a replay camera serves.

    Unsigned or non-negative integer data up to 16 bits is kept exactly; float data that holds
    whole numbers in the uint16 range is kept exactly; any other float data is scaled linearly
    from its [min, max] to [0, 65535].

    Raises
    ------
    ValueError
        For a stack that is not 3-D, is empty, has negative integers, integers above 65535, or
        non-finite values.
    """
    data = np.asarray(stack)
    if data.ndim != 3 or min(data.shape) == 0:
        raise ValueError(f"{name} must be a non-empty (Z, Y, X) stack, got shape {data.shape}")
    if np.issubdtype(data.dtype, np.integer):
        lo, hi = int(data.min()), int(data.max())
        if lo < 0 or hi > 65535:
            raise ValueError(
                f"{name} holds integers in [{lo}, {hi}]; a replay camera serves 0 to 65535"
            )
        return np.ascontiguousarray(data, dtype=np.uint16)
    if not np.issubdtype(data.dtype, np.floating):
        raise ValueError(f"{name} has dtype {data.dtype}; expected integer or float")
    if not np.isfinite(data).all():
        raise ValueError(f"{name} has NaN or infinite values")
    lo_f, hi_f = float(data.min()), float(data.max())
    if lo_f >= 0 and hi_f <= 65535 and np.array_equal(data, np.round(data)):
        return np.ascontiguousarray(data, dtype=np.uint16)
    scaled = (data - lo_f) * (65535.0 / max(hi_f - lo_f, 1e-30))
    return np.rint(scaled).astype(np.uint16)


class ReplayCamera(_LinkedCamera):
    """A camera that serves the plane of a saved stack nearest to the linked stage's Z.

    Pre-initialisation properties: ``Path`` (TIFF, ``.npy`` or (OME-)Zarr) and ``ZStepUm``
    (plane spacing; 0 means the step stored in the file, else 1 µm). Plane ``k`` lies at
    ``Z = k * step``; a Z more than half a step outside the stack raises ``ValueError``. Frames
    are the saved planes themselves (no noise), as uint16 (see :func:`replay_frames`). The frame
    metadata carries ``ReplayPlane`` (the plane index) and ``SimZ_um``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._path = ""
        self._z_step_setting = 0.0
        self._frames: np.ndarray | None = None
        self.z_step = 1.0
        self.register_property(
            "Path", property_type=str, getter=ReplayCamera._get_path, setter=ReplayCamera._set_path
        )
        self.register_property(
            "ZStepUm",
            property_type=float,
            getter=ReplayCamera._get_z_step,
            setter=ReplayCamera._set_z_step,
        )

    def _get_path(self) -> str:
        return self._path

    def _set_path(self, value: str) -> None:
        self._path = str(value)
        if self._initialized_ is True:
            self._load()

    def _get_z_step(self) -> float:
        return self._z_step_setting

    def _set_z_step(self, value: float) -> None:
        step = float(value)
        if not math.isfinite(step) or step < 0:
            raise ValueError(f"ZStepUm must be a positive number of µm (0: from file), got {value}")
        self._z_step_setting = step
        if self._initialized_ is True:
            self._load()

    def _load(self) -> None:
        from livefocus.io import read_stack, stack_z_step

        if not self._path:
            raise ValueError("Path of the replay camera is empty: set it to a stack file")
        path = Path(self._path).expanduser()
        frames = replay_frames(read_stack(path), name=f"stack {str(path)!r}")
        step = self._z_step_setting or stack_z_step(path) or 1.0
        self._frames = frames
        self.z_step = float(step)

    @property
    def frames(self) -> np.ndarray:
        """The uint16 (Z, Y, X) planes served."""
        if self._frames is None:
            self._load()
        assert self._frames is not None
        return self._frames

    @property
    def z_positions(self) -> np.ndarray:
        """Z (µm) of every plane."""
        return np.arange(self.frames.shape[0], dtype=np.float64) * self.z_step

    def initialize(self) -> None:
        """Read the stack (when ``Path`` is set already) and register under the link."""
        if self._path:
            self._load()
        super().initialize()

    def sensor_shape(self) -> tuple[int, int]:
        """(height, width) of the saved planes (1 x 1 until a ``Path`` is set)."""
        if self._frames is None and not self._path:
            return (1, 1)
        return (int(self.frames.shape[1]), int(self.frames.shape[2]))

    def plane_at(self, z: float) -> int:
        """Index of the plane nearest to ``z`` µm."""
        n = self.frames.shape[0]
        k = math.floor(float(z) / self.z_step + 0.5)
        if not math.isfinite(z) or not 0 <= k < n:
            raise ValueError(
                f"stage Z={z:g} µm is outside the replayed stack: planes 0..{n - 1} at "
                f"Z = 0..{(n - 1) * self.z_step:g} µm (step {self.z_step:g} µm)"
            )
        return k

    def snap(self, buffer: np.ndarray) -> Mapping[str, Any]:
        """Copy the plane nearest to the stage's Z into ``buffer``."""
        z = self.stage_z()
        k = self.plane_at(z)
        buffer[...] = self.frames[k]
        return {"ReplayPlane": str(k), "SimZ_um": f"{z:.6g}"}
