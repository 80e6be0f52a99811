"""Simulated Z-stacks with their exact truth: :func:`simulate_stack`."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from livefocus._output import (
    NODES_KEY,
    check_complete,
    creating,
    prepare_output,
    store_nodes,
    writer_stamp,
)
from livefocus.focus._validate import check_in_range, check_memory, check_positive_number
from livefocus.sim.optics import Camera, Optics
from livefocus.sim.phantom import Specimen

__all__ = ["SimulatedStack", "load_simulated", "save_simulated", "simulate_stack"]


@dataclass(frozen=True, eq=False)
class SimulatedStack:
    """A simulated widefield Z-stack and its exact ground truth.

    Attributes
    ----------
    raw : ndarray
        uint16 (Z, Y, X) camera frames.
    mask : ndarray
        bool (Z, Y, X) exact in-focus truth: an object at that pixel lies within half the depth
        of field of the plane.
    depth : ndarray
        float32 (Y, X) height in µm of the object at each pixel, from plane 0; NaN where there
        is no object.
    all_in_focus : ndarray
        float32 (Y, X) noise-free camera values (ADU) with every object in focus.
    z_um : ndarray
        float64 (Z,) plane positions in µm; plane 0 is at 0.
    meta : dict
        ``z_step``, ``pixel_size``, ``depth_of_field`` (µm), ``seed``, ``contrast`` and
        ``parameters`` (everything that determines the stack, JSON-serialisable).
    """

    raw: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    all_in_focus: np.ndarray
    z_um: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def simulate_stack(
    shape: tuple[int, int, int] = (20, 512, 512),
    *,
    seed: int = 0,
    contrast: str = "brightfield",
    z_step: float = 2.0,
    pixel_size: float = 0.5,
    na: float = 0.45,
    wavelength: float = 0.55,
    depth_of_field: float | None = None,
    psf: str = "gaussian",
    object_range: float | None = None,
    camera: Camera | None = None,
    brightness: float | None = None,
    density: float = 1.0,
) -> SimulatedStack:
    """Simulate a widefield Z-stack through a random specimen, with its exact truth.

    Parameters
    ----------
    shape : tuple of int
        (Z, Y, X): at least 2 planes and 64 x 64 pixels.
    seed : int
        Seed of the specimen and of the camera noise.
    contrast : {"brightfield", "fluorescence"}
        Transmitted light through absorbing objects, or emitting objects on a dark background.
    z_step : float
        Plane spacing in µm.
    pixel_size : float
        Pixel size in the specimen, µm.
    na, wavelength : float
        Numerical aperture and wavelength (µm) of the Gaussian defocus model.
    depth_of_field : float, optional
        In-focus tolerance in µm (default from the optics, 3.8 µm for the defaults, so a 2 µm
        step sees each structure in focus on 1 to 2 planes).
    psf : {"gaussian", "vectorial", "scalar"}
        Defocus PSF (see :class:`~livefocus.sim.Optics`); the physical ones need
        ``pip install psfmodels`` and are several times slower.
    object_range : float, optional
        Objects lie within ± this many µm of the middle plane; by default the stack's half
        span less half the depth of field, so every object comes into focus.
    camera : Camera, optional
        Camera model (default: gain 1, offset 100, read noise 2 e-, 12 bits).
    brightness : float, optional
        Background (brightfield) or peak emitter (fluorescence) photoelectrons per pixel.
    density : float
        Multiplier of the number of objects.

    Returns
    -------
    SimulatedStack

    Examples
    --------
    >>> s = simulate_stack((5, 64, 64), seed=3)
    >>> s.raw.shape, s.raw.dtype, s.mask.dtype
    ((5, 64, 64), dtype('uint16'), dtype('bool'))
    """
    try:
        nz, ny, nx = (operator.index(v) for v in shape)  # 2.5 planes is an error, not 2
    except (TypeError, ValueError):
        raise ValueError(f"shape must be three integers (Z, Y, X), got {shape!r}") from None
    if nz < 2:
        raise ValueError(f"shape {tuple(shape)} is too small: Z must be at least 2 planes")
    # about 32 bytes per voxel at the peak: the frames, their truth and per-plane work arrays
    check_memory(32.0 * nz * max(ny, 1) * max(nx, 1), "shape", (nz, ny, nx))
    check_positive_number(z_step, "z_step", "µm")
    # beyond these the specimen model breaks down (objects of no or of millions of pixels)
    check_in_range(z_step, "z_step", 1e-3, 1e3, "µm")
    check_in_range(pixel_size, "pixel_size", 1e-3, 1e3, "µm")
    check_in_range(na, "na", 0.01, 2.0)
    if depth_of_field is not None:
        check_in_range(depth_of_field, "depth_of_field", 1e-3, 1e4, "µm")
    optics = Optics(
        na=na,
        wavelength=wavelength,
        pixel_size=pixel_size,
        depth_of_field=depth_of_field,
        psf=psf,
    )
    camera = camera if camera is not None else Camera()
    half_span = (nz - 1) * z_step / 2.0
    if object_range is None:
        object_range = max(0.0, half_span - optics.depth_of_field_um / 2.0)
    spec = Specimen(
        (ny, nx),
        seed=seed,
        contrast=contrast,
        z_center=half_span,
        object_range=object_range,
        optics=optics,
        brightness=brightness,
        density=density,
    )
    z_um = np.arange(nz, dtype=np.float64) * float(z_step)
    rng = np.random.default_rng([int(seed), 1])
    raw = np.stack([spec.snap(z, camera, rng) for z in z_um])
    mask = np.stack([spec.truth_mask(z) for z in z_um])
    depth = np.array(spec.depth, dtype=np.float32)
    all_in_focus = camera.expected_adu(spec.all_in_focus())
    parameters = spec.parameters()
    parameters.update(
        shape=[nz, ny, nx],
        z_step_um=float(z_step),
        camera={
            "gain": camera.gain,
            "offset": camera.offset,
            "read_noise_e": camera.read_noise,
            "bit_depth": camera.bit_depth,
        },
    )
    meta = {
        "z_step": float(z_step),
        "pixel_size": float(pixel_size),
        "depth_of_field": spec.depth_of_field,
        "seed": int(seed),
        "contrast": spec.contrast,
        "parameters": parameters,
    }
    return SimulatedStack(raw, mask, depth, all_in_focus, z_um, meta)


def save_simulated(stack: SimulatedStack, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a simulated stack and its truth to a Zarr v3 group.

    Arrays ``raw`` (uint16), ``truth/mask`` (bool), ``truth/depth`` (float32, NaN = no object)
    and ``truth/all_in_focus`` (float32), one chunk per plane; root attributes ``z_step_um``,
    ``pixel_size_um``, ``depth_of_field_um``, ``seed``, ``contrast``, ``z_um`` and
    ``parameters``. :func:`livefocus.read_stack` reads ``raw`` from it and
    :func:`livefocus.io.stack_z_step` finds the z step.

    Parameters
    ----------
    stack : SimulatedStack
        What :func:`simulate_stack` returned.
    path : str or Path
        The group's folder (``.zarr``).
    overwrite : bool
        Replace an existing ``path`` written by livefocus; without it an existing path is an
        error, and anything livefocus did not write (or an input) is never replaced.

    Returns
    -------
    Path

    Notes
    -----
    The root's ``livefocus`` attribute records ``status``: ``running`` until every array is
    written, then ``complete``; when writing fails (a full disk, Ctrl-C) the group is removed.
    :func:`load_simulated` and :func:`livefocus.read_stack` refuse a store that is not
    complete.
    """
    import zarr

    path = prepare_output(path, overwrite=overwrite, name="path", kind="store")
    _, ny, nx = stack.raw.shape
    meta = stack.meta
    marker: dict[str, Any] = {"kind": "simulated-stack", "z_step_um": float(meta["z_step"])}
    attrs = {
        "z_step_um": float(meta["z_step"]),
        "pixel_size_um": float(meta["pixel_size"]),
        "depth_of_field_um": float(meta["depth_of_field"]),
        "seed": int(meta["seed"]),
        "contrast": str(meta["contrast"]),
        "z_um": [float(z) for z in stack.z_um],
        "parameters": meta["parameters"],
        "livefocus": {**marker, "status": "running", "writer": writer_stamp()},
    }
    # a Ctrl-C or a full disk meanwhile: the half-written group goes
    with creating(path, "path"):
        # the marker in the root's first write
        group = zarr.open_group(str(path), mode="w-", zarr_format=3, attributes=attrs)
        plane = (1, ny, nx)
        group.create_array("raw", data=stack.raw, chunks=plane)
        truth = group.create_group("truth")
        truth.create_array("mask", data=stack.mask, chunks=plane)
        truth.create_array("depth", data=stack.depth, fill_value=np.nan)
        truth.create_array("all_in_focus", data=stack.all_in_focus)
        group.attrs["livefocus"] = {
            **marker,
            "status": "complete",
            NODES_KEY: store_nodes(path),
        }
    return path


def load_simulated(path: str | Path) -> SimulatedStack:
    """Read back a group written by :func:`save_simulated` (a ValueError if incomplete)."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path {str(path)!r} does not exist")
    check_complete(path)
    try:
        group: Any = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
        raw = np.asarray(group["raw"][...])
        mask = np.asarray(group["truth/mask"][...])
        depth = np.asarray(group["truth/depth"][...])
        aif = np.asarray(group["truth/all_in_focus"][...])
    except Exception as exc:
        raise ValueError(f"path {str(path)!r} is not a simulated stack: {exc}") from exc
    meta = {
        "z_step": attrs["z_step_um"],
        "pixel_size": attrs["pixel_size_um"],
        "depth_of_field": attrs["depth_of_field_um"],
        "seed": attrs["seed"],
        "contrast": attrs["contrast"],
        "parameters": attrs["parameters"],
    }
    z_um = np.asarray(attrs["z_um"], dtype=np.float64)
    return SimulatedStack(raw, mask, depth, aif, z_um, meta)
