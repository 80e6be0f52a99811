"""Ready pymmcore-plus cores: the simulated specimen (:func:`demo_core`) and stack replay.

Both cores are loaded from the same configuration text as ``device_configs/demo.cfg`` and
``device_configs/replay.cfg`` (:data:`DEMO_CFG` and :data:`REPLAY_CFG`, rendered with their
defaults, are those files byte for byte; a test holds them equal), so what the functions give
is what the files give.
"""

from __future__ import annotations

import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from pymmcore_plus.experimental.unicore import UniMMCore

from livefocus._vocab import CONTRASTS
from livefocus.devices._link import linked
from livefocus.devices._replay import ReplayCamera, handed_over, replay_frames
from livefocus.devices._specimen import MAX_SENSOR_PX, SpecimenCamera
from livefocus.focus._validate import check_positive_number
from livefocus.sim import Z_MARGIN_UM, Specimen, field_shape

__all__ = [
    "DEMO_CFG",
    "REPLAY_CFG",
    "REPLAY_DEFAULT_PATH",
    "demo_camera",
    "demo_cfg_text",
    "demo_core",
    "demo_specimen",
    "demo_truth",
    "fit_travel_to_replay",
    "new_core",
    "replay_camera",
    "replay_cfg_text",
    "replay_core",
]

DEMO_CFG = """\
# livefocus demo: Micro-Manager's demo adapters (mm-test-adapters) plus a simulated specimen.
# Load with UniMMCore (pymmcore-plus), after
#   core.setDeviceAdapterSearchPaths([mm_test_adapters.device_adapter_path()])
# Lines starting with "#py " are Python devices; plain pymmcore skips them as comments.
Property,Core,Initialize,0

# Demo adapters (DemoCamera library): hub, a second camera, shutter, objective.
Device,DHub,DemoCamera,DHub
Device,DemoCam,DemoCamera,DCam
Device,Shutter,DemoCamera,DShutter
Device,Objective,DemoCamera,DObjective
Parent,DemoCam,DHub
Parent,Shutter,DHub
Parent,Objective,DHub

# The simulated specimen camera, Z and XY stages (livefocus.devices). They share the Link
# name; the camera renders the specimen at the Z stage's position, in the field of view the
# XY stage has moved to. The objects lie within +-ObjectRangeUm of Z = 0; the Z stage
# travels {margin:g} um further on each side.
#py pyDevice,Camera,livefocus.devices,SpecimenCamera
#py pyDevice,Z,livefocus.devices,SimZStage
#py pyDevice,XY,livefocus.devices,SimXYStage
#py Property,Camera,Link,{link}
#py Property,Camera,Seed,{seed}
#py Property,Camera,Contrast,{contrast}
#py Property,Camera,SensorWidth,{width}
#py Property,Camera,SensorHeight,{height}
#py Property,Camera,PixelSizeUm,{pixel_size:g}
#py Property,Camera,ObjectRangeUm,{object_range:g}
#py Property,Z,Link,{link}
#py Property,Z,LowerLimitUm,{z_lo:g}
#py Property,Z,UpperLimitUm,{z_hi:g}
#py Property,XY,Link,{link}

Property,Core,Initialize,1

Label,Objective,1,Sim 20X NA 0.45
Label,Objective,0,Objective-0

# Roles
#py Property,Core,Camera,Camera
#py Property,Core,Focus,Z
#py Property,Core,XYStage,XY
Property,Core,Shutter,Shutter
Property,Core,AutoShutter,1

# Pixel size of the simulated camera in the specimen
ConfigPixelSize,Sim20x,Objective,Label,Sim 20X NA 0.45
PixelSize_um,Sim20x,{pixel_size:g}

ConfigGroup,System,Startup,Objective,Label,Sim 20X NA 0.45
"""

REPLAY_CFG = """\
# livefocus replay: a camera that serves the plane of a saved stack nearest to the Z stage.
# Plane k lies at Z = k * ZStepUm (ZStepUm 0: the z step stored in the file, else 1 um).
# A relative Path is read from the working directory or, failing that, from this file's
# folder; replace it with your stack (TIFF, .npy or OME-Zarr).
# No shutter: call core.setAutoShutter(False) (done here).
Property,Core,Initialize,0

#py pyDevice,Camera,livefocus.devices,ReplayCamera
#py pyDevice,Z,livefocus.devices,SimZStage
#py Property,Camera,Link,{link}
#py Property,Camera,Path,{path}
#py Property,Camera,ZStepUm,{z_step:g}
#py Property,Z,Link,{link}

Property,Core,Initialize,1

#py Property,Core,Camera,Camera
#py Property,Core,Focus,Z
Property,Core,AutoShutter,0
"""

#: The pixel size configuration :func:`replay_core` defines for its stack.
REPLAY_PIXEL_CONFIG = "livefocus-replay"
#: The default stack of ``device_configs/replay.cfg``, relative to that file's folder.
REPLAY_DEFAULT_PATH = "../tests/data/diatom_mfusionj_3z.tif"


def demo_cfg_text(
    *,
    link: str = "livefocus",
    seed: int = 0,
    contrast: str = "brightfield",
    shape: tuple[int, int] = (512, 512),
    pixel_size: float = 0.5,
    object_range: float = 18.0,
) -> str:
    """The demo configuration with the given settings (defaults: ``device_configs/demo.cfg``)."""
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    height, width = field_shape(shape)
    if max(height, width) > MAX_SENSOR_PX:
        raise ValueError(
            f"shape {(height, width)} is larger than the simulated camera: Y and X must be at "
            f"most {MAX_SENSOR_PX} pixels"
        )
    for name, value in (("pixel_size", pixel_size), ("object_range", object_range)):
        if not math.isfinite(value) or value < 0 or (name == "pixel_size" and value == 0):
            raise ValueError(f"{name} must be a positive number of µm, got {value!r}")
    _check_link(link)
    return DEMO_CFG.format(
        link=link,
        seed=int(seed),
        contrast=contrast,
        width=width,
        height=height,
        pixel_size=float(pixel_size),
        object_range=float(object_range),
        z_lo=-(object_range + Z_MARGIN_UM),
        z_hi=object_range + Z_MARGIN_UM,
        margin=Z_MARGIN_UM,
    )


def replay_cfg_text(
    *, link: str = "livefocus", path: str = REPLAY_DEFAULT_PATH, z_step: float = 0.0
) -> str:
    """The replay configuration (defaults: ``device_configs/replay.cfg``)."""
    _check_link(link)
    if any(c in str(path) for c in ",\r\n"):
        raise ValueError(f"path {str(path)!r} cannot be written in a .cfg line (comma or newline)")
    return REPLAY_CFG.format(link=link, path=path, z_step=float(z_step))


def _check_link(link: str) -> None:
    if not link or any(c in link for c in ",\r\n"):
        raise ValueError(f"link must be a non-empty name without commas, got {link!r}")


def new_core() -> UniMMCore:
    """A new, empty ``UniMMCore`` whose signals are psygnal's, with or without a QApplication.

    pymmcore-plus picks its signal backend when a core is created (Qt when a QApplication
    runs, which needs qtpy); livefocus wants psygnal, whose signals are called on the emitting
    (acquisition) thread. The choice is pymmcore-plus's ``PYMM_SIGNALS_BACKEND``, set for the
    creation only and restored after.
    """
    previous = os.environ.get("PYMM_SIGNALS_BACKEND")
    os.environ["PYMM_SIGNALS_BACKEND"] = "psygnal"
    try:
        return UniMMCore()
    finally:
        if previous is None:
            del os.environ["PYMM_SIGNALS_BACKEND"]
        else:
            os.environ["PYMM_SIGNALS_BACKEND"] = previous


def _load(cfg: str, core: UniMMCore | None) -> UniMMCore:
    import mm_test_adapters

    core = core if core is not None else new_core()
    core.setDeviceAdapterSearchPaths([mm_test_adapters.device_adapter_path()])
    with tempfile.TemporaryDirectory(prefix="livefocus-cfg-") as tmp:
        path = Path(tmp) / "livefocus.cfg"
        path.write_text(cfg)
        core.loadSystemConfiguration(path)
    return core


def demo_core(
    *,
    seed: int = 0,
    contrast: str = "brightfield",
    shape: tuple[int, int] = (512, 512),
    pixel_size: float = 0.5,
    object_range: float = 18.0,
    core: UniMMCore | None = None,
) -> UniMMCore:
    """A pymmcore-plus core whose camera images a simulated specimen at the Z stage.

    The configuration is ``device_configs/demo.cfg`` (Micro-Manager's demo adapters from
    ``mm-test-adapters`` plus :class:`~livefocus.devices.SpecimenCamera` and
    :class:`~livefocus.devices.SimZStage`). The stage starts at Z = 0, the middle of the
    specimen, whose objects lie within ``±object_range`` µm, so a Z-stack of range 40 µm
    around the start sees them come into and out of focus. Exact truth for any frame:
    :func:`demo_truth` (the frame metadata ``SimZ_um`` says the Z it was rendered at).

    Parameters
    ----------
    seed : int
        Specimen seed.
    contrast : {"brightfield", "fluorescence"}
        Image contrast.
    shape : tuple of int
        (height, width) of the camera in pixels (at least 64 each).
    pixel_size : float
        Pixel size in the specimen (µm); also the core's pixel size configuration.
    object_range : float
        Half range (µm) of the objects' heights around Z = 0; the stage travels 30 µm more.
    core : UniMMCore, optional
        Load into this core instead of a new one.

    Returns
    -------
    UniMMCore

    Examples
    --------
    >>> core = demo_core(shape=(64, 64))
    >>> core.snapImage(); core.getImage().shape
    (64, 64)
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31:
        # the camera's Seed property (a Micro-Manager integer) holds no more
        raise ValueError(f"seed must be an int from 0 to 2**31 - 1, got {seed!r}")
    cfg = demo_cfg_text(
        link=f"livefocus-{uuid.uuid4().hex[:12]}",
        seed=seed,
        contrast=contrast,
        shape=shape,
        pixel_size=pixel_size,
        object_range=object_range,
    )
    return _load(cfg, core)


def replay_core(
    path: str | Path,
    *,
    z_step: float | None = None,
    pixel_size: float | None = None,
    core: UniMMCore | None = None,
    time_point: int | None = None,
    channel: int | None = None,
    position: int | None = None,
) -> UniMMCore:
    """A pymmcore-plus core whose camera replays a saved stack as a live feed.

    Plane ``k`` of the stack lies at Z = ``k * z_step`` µm; the camera serves the plane nearest
    to the Z stage, and the stage starts at plane 0 and travels from half a step below the
    first plane to half a step above the last. There is no shutter (auto-shutter is off).

    Parameters
    ----------
    path : str or Path
        A TIFF, ``.npy`` or (OME-)Zarr stack (Z, Y, X), integer or float.
    z_step : float, optional
        Plane spacing in µm. Default: the z step stored in the file (ImageJ ``spacing``, the
        Zarr attribute ``z_step_um``, or the z scale of an OME-Zarr image), else 1.0.
    pixel_size : float, optional
        Pixel size in µm, the core's pixel size (``getPixelSizeUm``, which stores record).
        Default: the one stored in the file (:func:`livefocus.io.stack_pixel_size`), else none
        (0: uncalibrated).
    core : UniMMCore, optional
        Load into this core instead of a new one.
    time_point, channel, position : int, optional
        Which stack of an acquisition store (:func:`livefocus.io.read_stack`; needed where
        it holds several).

    Returns
    -------
    UniMMCore

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        For an unreadable file, a stack that is not 3-D, data that cannot be served as uint16,
        or a ``z_step`` that is not a positive number.
    """
    from livefocus.io import read_stack, stack_pixel_size, stack_z_step

    if z_step is not None:
        check_positive_number(z_step, "z_step", "µm")
    if pixel_size is not None:
        check_positive_number(pixel_size, "pixel_size", "µm")
    path = Path(path).expanduser()
    # its errors before a core is made; the camera then serves these frames, not a second read
    stack = read_stack(path, time_point=time_point, channel=channel, position=position)
    frames = replay_frames(stack, name=f"stack {str(path)!r}")
    step = float(z_step) if z_step is not None else (stack_z_step(path) or 1.0)
    link = f"livefocus-{uuid.uuid4().hex[:12]}"
    # The path is set after loading so that any file name works (a .cfg line cannot hold commas).
    cfg = replay_cfg_text(link=link, path="", z_step=step)
    core = _load(cfg.replace("#py Property,Camera,Path,\n", ""), core)
    cam = core.getCameraDevice()
    with handed_over(path, frames):
        core.setProperty(cam, "Path", str(path.resolve()))
    size = float(pixel_size) if pixel_size is not None else stack_pixel_size(path)
    if size is not None:
        # A pixel size configuration needs a property to hold; the core matches its own
        # properties only, not a Python device's, and a replay core keeps auto-shutter off
        core.definePixelSizeConfig(REPLAY_PIXEL_CONFIG, "Core", "AutoShutter", "0")
        core.setPixelSizeUm(REPLAY_PIXEL_CONFIG, size)
    fit_travel_to_replay(core)
    core.setPosition("Z", 0.0)
    return core


def fit_travel_to_replay(core: UniMMCore) -> bool:
    """Narrow the focus stage's travel (``LowerLimitUm``, ``UpperLimitUm``) to the planes of the
    replay camera's stack, half a step beyond each end, so that a Z plan beyond the stack is
    refused before it starts. False (nothing changed) when the camera is not a replay camera
    or the stage states no travel."""
    try:
        cam = replay_camera(core)
    except ValueError:
        return False
    stage = core.getFocusDevice()
    names = ("LowerLimitUm", "UpperLimitUm")
    if not stage or not all(core.hasProperty(stage, n) for n in names):
        return False
    half = cam.z_step / 2
    lo = max(float(core.getProperty(stage, names[0])), -half)
    hi = min(float(core.getProperty(stage, names[1])), float(cam.z_positions[-1]) + half)
    core.setProperty(stage, names[0], lo)
    core.setProperty(stage, names[1], hi)
    return True


def _camera(core: UniMMCore, camera: str | None) -> SpecimenCamera | ReplayCamera:
    label = camera or core.getCameraDevice()
    if not label:
        raise ValueError("core has no camera device; pass camera=")
    try:
        link = str(core.getProperty(label, "Link"))
    except Exception:
        raise ValueError(
            f"camera {label!r} is not a livefocus simulated or replay camera"
        ) from None
    cam = linked("camera", link)
    if not isinstance(cam, (SpecimenCamera, ReplayCamera)):
        raise ValueError(f"no livefocus camera is initialised with Link={link!r}")
    return cam


def demo_camera(core: UniMMCore, camera: str | None = None) -> SpecimenCamera:
    """The :class:`~livefocus.devices.SpecimenCamera` device object of a demo core."""
    cam = _camera(core, camera)
    if not isinstance(cam, SpecimenCamera):
        raise ValueError(f"camera {cam.get_label()!r} is not a simulated specimen camera")
    return cam


def replay_camera(core: UniMMCore, camera: str | None = None) -> ReplayCamera:
    """The :class:`~livefocus.devices.ReplayCamera` device object of a replay core."""
    cam = _camera(core, camera)
    if not isinstance(cam, ReplayCamera):
        raise ValueError(f"camera {cam.get_label()!r} is not a replay camera")
    return cam


def demo_specimen(core: UniMMCore, camera: str | None = None) -> Specimen:
    """The :class:`Specimen` that the demo core's camera images (exact geometry and truth)."""
    return demo_camera(core, camera).specimen


def demo_truth(core: UniMMCore, z_positions: Any, camera: str | None = None) -> np.ndarray:
    """Exact in-focus masks of the demo specimen at the given stage positions.

    Parameters
    ----------
    core : UniMMCore
        A core from :func:`demo_core` (or loaded from ``device_configs/demo.cfg``).
    z_positions : float or sequence of float
        Stage Z (µm) of the frames, e.g. the ``z_pos`` of the MDA events or the frames'
        ``SimZ_um`` metadata.
    camera : str, optional
        Camera label (default: the core's camera).

    Returns
    -------
    ndarray
        bool (N, Y, X): the object at that pixel lies within half the depth of field of Z.
    """
    spec = demo_specimen(core, camera)
    zs = np.atleast_1d(np.asarray(z_positions, dtype=np.float64))
    if zs.ndim != 1:
        raise ValueError(f"z_positions must be a number or a 1-D sequence, got shape {zs.shape}")
    if zs.size == 0:
        return np.zeros((0, *spec.shape), dtype=bool)
    return np.stack([spec.truth_mask(float(z)) for z in zs])
