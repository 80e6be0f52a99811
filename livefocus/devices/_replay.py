"""A camera that replays a saved stack as a live feed: :class:`ReplayCamera`."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from livefocus.devices._camera import LinkedCamera

__all__ = ["ReplayCamera", "config_folder", "handed_over", "replay_frames"]

#: Folders of the configuration files being loaded (the newest last). A module-level list, not
#: a context variable: pymmcore-plus initialises Python devices on a thread pool.
_CONFIG_FOLDERS: list[Path] = []
_FOLDERS_LOCK = threading.Lock()


@contextmanager
def config_folder(folder: str | Path) -> Iterator[None]:
    """While a configuration file from ``folder`` loads, a replay camera's relative ``Path``
    that the working directory does not hold is read from ``folder``."""
    entry = Path(folder)
    with _FOLDERS_LOCK:
        _CONFIG_FOLDERS.append(entry)
    try:
        yield
    finally:
        with _FOLDERS_LOCK:
            _CONFIG_FOLDERS.remove(entry)


#: One stack read already (by :func:`~livefocus.devices.replay_core`, to check it before a core
#: is made) for the replay camera about to read the same file (:func:`handed_over`).
_HANDED: list[tuple[Path, int, np.ndarray]] = []
_HANDED_LOCK = threading.Lock()


@contextmanager
def handed_over(path: str | Path, frames: np.ndarray) -> Iterator[None]:
    """While in the block, a replay camera that reads ``path`` takes these uint16 ``frames``
    (read and converted by :func:`replay_frames` already) instead of reading the file again,
    unless the file changed meanwhile. One slot, emptied on leaving: nothing stays cached."""
    where = Path(path).resolve()
    with _HANDED_LOCK:
        _HANDED[:] = [(where, where.stat().st_mtime_ns, frames)]
    try:
        yield
    finally:
        with _HANDED_LOCK:
            _HANDED.clear()


def _handed(path: Path) -> np.ndarray | None:
    """The frames handed over for ``path``, or None."""
    try:
        where = path.resolve()
        mtime = where.stat().st_mtime_ns
    except OSError:
        return None
    with _HANDED_LOCK:
        if _HANDED and _HANDED[0][:2] == (where, mtime):
            return _HANDED[0][2]
    return None


def _resolve(value: str) -> Path:
    """``value`` as a path: a relative one from the working directory, or failing that from
    the folder of the configuration being loaded (:func:`config_folder`)."""
    path = Path(value).expanduser()
    with _FOLDERS_LOCK:
        folder = _CONFIG_FOLDERS[-1] if _CONFIG_FOLDERS else None
    if path.is_absolute() or path.exists() or folder is None or not (folder / path).exists():
        return path
    return folder / path


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
    # in float64: float16 arithmetic would overflow to inf above 65504 and serve zeros
    scaled = (data.astype(np.float64) - lo_f) * (65535.0 / max(hi_f - lo_f, 1e-30))
    return np.rint(scaled).astype(np.uint16)


class ReplayCamera(LinkedCamera):
    """A camera that serves the plane of a saved stack nearest to the linked stage's Z.

    Pre-initialisation properties: ``Path`` (TIFF, ``.npy`` or (OME-)Zarr) and ``ZStepUm``
    (plane spacing; 0 means the step stored in the file, else 1 µm). A relative ``Path`` is read
    from the working directory or, failing that, from the configuration file's folder (see
    :func:`config_folder`). Plane ``k`` lies at
    ``Z = k * step``; a Z more than half a step outside the stack raises ``ValueError``. Frames
    are the saved planes themselves (no noise), as uint16 (see :func:`replay_frames`). The frame
    metadata carries ``ReplayPlane`` (the plane index) and ``SimZ_um``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._path = ""
        # the Path as set and the file it was found at (a relative Path found in the folder of
        # the configuration being loaded stays found there when the stack is read again)
        self._found: tuple[str, Path] | None = None
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
        found = self._found
        path = found[1] if found is not None and found[0] == self._path else None
        path = path or _resolve(self._path)
        frames = _handed(path)
        if frames is None:
            frames = replay_frames(read_stack(path), name=f"stack {str(self._path)!r}")
        step = self._z_step_setting or stack_z_step(path) or 1.0
        self._found = (self._path, path.absolute())
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
        """Index of the plane nearest to ``z`` µm (within half a step of the stack, both ends
        included: the travel :func:`~livefocus.devices.fit_travel_to_replay` gives)."""
        n = self.frames.shape[0]
        k = math.floor(float(z) / self.z_step + 0.5)
        end = (n - 1) * self.z_step + self.z_step / 2  # as the travel's end is computed
        if k == n and float(z) <= end + 1e-9 * self.z_step:
            k = n - 1  # exactly half a step above the last plane: the stage's travel ends there
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
