"""A second image model: volumes imaged through a 3-D widefield PSF.

It shares nothing with the rest of :mod:`livefocus.sim` on purpose. It was written as the
independent validation generator of the depth rule (whose parameters were all chosen on the
layered simulator), and it is also one of the two generators the domain-randomised training
stacks draw from (:func:`livefocus.model.randomise.random_volume_stack`); the models are then
validated on a third generator (``tests/support/phantom_points.py``). What it models:

- the specimen is a set of **volumes** (ellipsoidal cells, tubes along 3-D curves, beads),
  each pixel's column holding a thickness and a centre height, not objects at one height;
  a few out-of-range objects add defocused haze only;
- the optics are a **geometric defocus disk** (its OTF a jinc, with negative lobes, and a
  different slope above and below focus) times a diffraction core, applied by FFT to thin
  sub-slices of the volume (0.5 plane apart) and summed: a 3-D PSF convolution;
- brightfield mixes **absorption** with a **phase** term (transport of intensity: contrast
  grows with defocus and flips sign through focus); fluorescence adds autofluorescence haze;
- **illumination** is uneven and vignetted; the **camera** has shot and read noise, per-pixel
  gain and offset (fixed pattern), per-frame row noise, hot pixels, and 8-bit quantisation.

Truth, exact for the model:

- ``mask[k]``: the pixel's object column (the interval ``centre ± thickness / 2``) meets
  ``z_k ± depth_of_field / 2``;
- ``depth``: the column's centre, µm from plane 0 (NaN: no object in the stack's range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.fft
from scipy import ndimage, special

from livefocus.focus._validate import check_positive_number

__all__ = ["Phantom", "noise_stack", "phantom_stack", "surface_stack"]

#: Sub-slices per plane the volume is sampled on.
_SUB = 2
#: Planes beyond the stack that the volume extends over (haze objects live there).
_MARGIN = 6


@dataclass(frozen=True, eq=False)
class Phantom:
    """A generated stack and its truth.

    Attributes
    ----------
    raw : ndarray
        uint8 (Z, Y, X) camera frames.
    mask : ndarray
        bool (Z, Y, X) in-focus truth.
    depth : ndarray
        float32 (Y, X) object centre height in µm from plane 0; NaN where there is none.
    z_um : ndarray
        float64 (Z,) plane positions.
    meta : dict
        ``z_step``, ``depth_of_field``, ``contrast``, ``seed`` and the edge band of a surface.
    """

    raw: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    z_um: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def background(self) -> np.ndarray:
        """bool (Y, X): pixels that are in focus on no plane."""
        return np.asarray(~self.mask.any(axis=0))


# -- optics -----------------------------------------------------------------------------------
class _Optics:
    """Defocus-disk OTFs on an rfft2 grid, cached per defocus (µm)."""

    def __init__(self, shape: tuple[int, int], *, pixel_um: float, na: float) -> None:
        self.pad = 24
        fy = scipy.fft.fftfreq(shape[0] + 2 * self.pad)[:, None]
        fx = scipy.fft.rfftfreq(shape[1] + 2 * self.pad)[None, :]
        self.rho = np.sqrt(fy * fy + fx * fx).astype(np.float32)  # cycles per pixel
        self.slope = math.tan(math.asin(na)) / pixel_um  # disk radius (px) per µm
        self.core = 0.21 * 0.55 / na / pixel_um  # diffraction sigma (px)
        self._cache: dict[float, np.ndarray] = {}

    def otf(self, dz: float) -> np.ndarray:
        key = round(dz, 6)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        # asymmetric: the disk grows faster on one side of focus (spherical aberration)
        radius = abs(dz) * self.slope * (1.25 if dz > 0 else 1.0)
        arg = 2 * np.pi * self.rho * radius
        with np.errstate(invalid="ignore", divide="ignore"):
            jinc = np.where(arg > 1e-6, 2 * special.j1(arg) / arg, 1.0)
        gauss = np.exp(-2 * np.pi**2 * (self.core**2 + 0.15 * abs(dz)) * self.rho**2)
        out = np.asarray(jinc * gauss, dtype=np.float32)
        self._cache[key] = out
        return out


def _columns_to_volume(
    density: np.ndarray, centre: np.ndarray, thick: np.ndarray, z_sub: np.ndarray
) -> np.ndarray:
    """Spread each pixel's column (``density`` per µm over ``centre ± thick/2``) on sub-slices."""
    dz = float(z_sub[1] - z_sub[0])
    lo, hi = centre - thick / 2, centre + thick / 2
    vol = np.zeros((len(z_sub), *density.shape), np.float32)
    present = density > 0
    for s, zc in enumerate(z_sub):
        overlap = np.clip(np.minimum(hi, zc + dz / 2) - np.maximum(lo, zc - dz / 2), 0, None)
        vol[s] = np.where(present, density * overlap, 0)
    return vol


def _image_planes(
    optics: _Optics,
    vol: np.ndarray,
    z_sub: np.ndarray,
    z_planes: np.ndarray,
    *,
    phase: bool = False,
) -> np.ndarray:
    """Each plane: the sum over sub-slices of the sub-slice convolved with the defocus PSF.

    With ``phase``, ``vol`` holds phase sub-slices and each plane gets their transport-of-
    intensity contrast instead: ∝ defocus · Laplacian, blurred the same way. The field is
    padded by reflection (``optics.pad``) so that light does not wrap around.
    """
    p = optics.pad
    shape = (vol.shape[1] + 2 * p, vol.shape[2] + 2 * p)
    spectra = [
        (s, scipy.fft.rfft2(np.pad(v, p, mode="reflect"))) for s, v in enumerate(vol) if v.any()
    ]
    if phase:
        lap = -4 * np.pi**2 * optics.rho**2
        spectra = [(s, spec * lap) for s, spec in spectra]
    out = np.zeros((len(z_planes), vol.shape[1], vol.shape[2]), np.float32)
    for k, zk in enumerate(z_planes):
        if not spectra:
            break
        acc = np.zeros(spectra[0][1].shape, np.complex64)
        for s, spec in spectra:
            dz = float(zk - z_sub[s])
            acc = acc + spec * (dz * optics.otf(dz) if phase else optics.otf(dz))
        out[k] = scipy.fft.irfft2(acc, s=shape)[p:-p, p:-p]
    return out


# -- specimen ---------------------------------------------------------------------------------
def _texture(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Band-limited noise in [0, 1]."""
    t = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), scale)
    t -= t.min()
    return np.asarray(t / max(float(t.max()), 1e-6), dtype=np.float32)


class _Columns:
    """Per-pixel object columns: density, centre height, thickness, phase and owner."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.density = np.zeros(shape, np.float32)
        self.phase = np.zeros(shape, np.float32)
        self.centre = np.zeros(shape, np.float32)
        self.thick = np.zeros(shape, np.float32)
        self.owner = np.zeros(shape, np.int32)
        self.n = 0

    def claim(self, region: np.ndarray, margin: int = 2) -> bool:
        grown = ndimage.binary_dilation(region, iterations=margin)
        return bool(region.any()) and not (self.owner[grown] > 0).any()

    def put(
        self,
        region: np.ndarray,
        density: np.ndarray | float,
        centre: np.ndarray | float,
        thick: np.ndarray,
        phase: np.ndarray | float = 0.0,
    ) -> None:
        self.n += 1
        self.owner[region] = self.n
        self.density[region] = np.broadcast_to(density, region.shape)[region]
        self.centre[region] = np.broadcast_to(centre, region.shape)[region]
        self.thick[region] = np.broadcast_to(thick, region.shape)[region]
        self.phase[region] = np.broadcast_to(phase, region.shape)[region]


def _specimen(
    rng: np.random.Generator, shape: tuple[int, int], nz: int, z_step: float, fluo: bool
) -> tuple[_Columns, _Columns]:
    """In-range objects and out-of-range haze objects."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    cols, haze = _Columns(shape), _Columns(shape)
    z_lo, z_hi = 0.5 * z_step, (nz - 1.5) * z_step
    area = ny * nx
    # cells: ellipsoids, textured interiors, a denser nucleus, some with a bright rim
    for _ in range(int(area / 2600) * 3):
        if cols.n >= area // 2600:
            break
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        a, b = rng.uniform(5, 16), rng.uniform(4, 12)
        th = rng.uniform(0, np.pi)
        u = ((yy - cy) * np.cos(th) + (xx - cx) * np.sin(th)) / a
        v = (-(yy - cy) * np.sin(th) + (xx - cx) * np.cos(th)) / b
        r2 = u * u + v * v
        region = r2 <= 1
        if not cols.claim(region):
            continue
        c = rng.uniform(0.15, 0.45) * z_step  # z semi-axis: the cell is a flattened volume
        thick = 2 * c * np.sqrt(np.clip(1 - r2, 0, 1))
        grain = _texture(rng, shape, rng.uniform(0.8, 1.6))
        grain = np.clip((grain - 0.35) / 0.3, 0, 1)  # granules: a contrast-stretched texture
        dens = 0.25 + 0.75 * grain
        nucleus = (u - rng.uniform(-0.3, 0.3)) ** 2 + (v - rng.uniform(-0.3, 0.3)) ** 2 < 0.12
        dens = np.where(nucleus, dens * 1.8, dens)
        if fluo and rng.random() < 0.5:
            dens = dens * (0.4 + 1.6 * np.clip((r2 - 0.6) / 0.4, 0, 1))  # membrane label
        z0 = rng.uniform(z_lo, z_hi)
        tilt_y, tilt_x = rng.normal(0, 0.03 * z_step, 2)
        centre = z0 + tilt_y * (yy - cy) + tilt_x * (xx - cx)
        strength = rng.uniform(0.5, 1.0)
        cols.put(
            region,
            strength * dens / max(2 * c, 1e-3),
            centre,
            np.maximum(thick, 0.05),
            phase=rng.uniform(0.5, 1.5) * thick,
        )
    # tubes: smooth 3-D curves crossing several planes, with beads of dye or absorption
    n_tubes = 0
    for _ in range(3 * max(1, area // 12000)):
        if n_tubes >= max(1, area // 12000):
            break
        n_pts = 200
        ang = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.03, n_pts))
        step = rng.uniform(0.8, 1.5)
        py = rng.uniform(0, ny) + np.cumsum(step * np.sin(ang))
        px = rng.uniform(0, nx) + np.cumsum(step * np.cos(ang))
        pz = rng.uniform(z_lo, z_hi) + np.linspace(0, 1, n_pts) * rng.uniform(-4, 4) * z_step
        pz = np.clip(pz, z_lo, z_hi)
        radius = rng.uniform(1.2, 2.5)
        pts = np.stack([py, px], 1)
        inside = (py >= 0) & (py < ny) & (px >= 0) & (px < nx)
        if inside.sum() < 30:
            continue
        seed_img = np.zeros(shape, np.float32)
        iy, ix = py[inside].astype(int), px[inside].astype(int)
        seed_img[iy, ix] = 1
        dist, (ny_i, nx_i) = ndimage.distance_transform_edt(seed_img == 0, return_indices=True)
        region = dist <= radius
        if not cols.claim(region):
            continue
        # height of the nearest curve point
        zmap = np.zeros(shape, np.float32)
        zmap[iy, ix] = pz[inside]
        centre = zmap[ny_i, nx_i]
        thick = 2 * np.sqrt(np.clip(radius**2 - dist**2, 0, None)) * 0.3 * z_step
        bead = 0.5 + 0.5 * np.sin(np.hypot(ny_i - pts[0, 0], nx_i - pts[0, 1]) / 2.2)
        cols.put(
            region,
            rng.uniform(0.6, 1.0) * (0.4 + 0.6 * bead) / 0.6,
            centre,
            np.maximum(thick, 0.05),
            phase=thick,
        )
        n_tubes += 1
    # beads: small spheres
    for _ in range(int(area / 4000)):
        cy, cx, r = rng.uniform(0, ny), rng.uniform(0, nx), rng.uniform(1.5, 3.0)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        region = d2 <= r * r
        if not cols.claim(region):
            continue
        thick = 2 * np.sqrt(np.clip(r * r - d2, 0, None)) / r * 0.4 * z_step
        cols.put(
            region,
            float(np.float32(rng.uniform(1.0, 2.0))),
            rng.uniform(z_lo, z_hi),
            np.maximum(thick, 0.05),
            phase=thick,
        )
    # haze: large blobs far outside the stack's range
    for _ in range(2):
        cy, cx, r = rng.uniform(0, ny), rng.uniform(0, nx), rng.uniform(15, 30)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        region = d2 <= r * r
        if not haze.claim(region, margin=1):
            continue
        side = rng.choice([-1.0, 1.0])
        z = (-(_MARGIN - 1) * z_step) if side < 0 else (nz - 1 + (_MARGIN - 1)) * z_step
        haze.put(
            region,
            0.8 * _texture(rng, shape, 2.0),
            float(np.float32(z)),
            np.full(shape, 0.5 * z_step, np.float32),
        )
    return cols, haze


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Uneven, vignetted illumination, about 0.6 to 1."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    cy, cx = ny * rng.uniform(0.35, 0.65), nx * rng.uniform(0.35, 0.65)
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.25 * (ny * ny + nx * nx))
    vignette = np.clip(1 - 0.35 * r2, 0.3, 1)
    uneven = 1 + 0.12 * (2 * _texture(rng, shape, max(ny, nx) / 6) - 1)
    return np.asarray(vignette * uneven, dtype=np.float32)


class _Camera:
    """8-bit camera (``top`` 255; more bits: a larger ``top``): shot noise, read noise, fixed
    pattern, row noise, hot pixels."""

    def __init__(
        self, rng: np.random.Generator, shape: tuple[int, int], gain: float, top: int = 255
    ) -> None:
        self.gain = gain
        self.top = top
        self.prnu = (1 + rng.normal(0, 0.01, shape)).astype(np.float32)
        self.dsnu = rng.normal(0, 0.6, shape).astype(np.float32)
        self.hot = np.zeros(shape, np.float32)
        n_hot = max(1, shape[0] * shape[1] // 2000)
        self.hot.reshape(-1)[rng.choice(self.hot.size, n_hot, replace=False)] = rng.uniform(
            20, 120, n_hot
        )

    def expose(self, electrons: np.ndarray, rng: np.random.Generator, offset: float) -> np.ndarray:
        e = rng.poisson(np.clip(electrons, 0, None) * self.prnu).astype(np.float32)
        adu = e * self.gain + offset + self.dsnu + self.hot
        adu += rng.normal(0, 0.9, adu.shape).astype(np.float32)  # read noise (ADU)
        adu += rng.normal(0, 0.5, (adu.shape[0], 1)).astype(np.float32)  # row noise
        dtype = np.uint8 if self.top <= 255 else np.uint16
        return np.asarray(np.clip(np.round(adu), 0, self.top), dtype=dtype)


def _truth(cols: _Columns, z_um: np.ndarray, dof: float) -> tuple[np.ndarray, np.ndarray]:
    present = cols.owner > 0
    lo, hi = cols.centre - cols.thick / 2, cols.centre + cols.thick / 2
    mask = np.stack([present & (hi >= z - dof / 2) & (lo <= z + dof / 2) for z in z_um])
    depth = np.where(present, cols.centre, np.float32(np.nan)).astype(np.float32)
    return mask, depth


def _check_shape(shape: Any) -> tuple[int, int, int]:
    """(Z, Y, X) of at least 2 planes and 16 x 16 pixels."""
    try:
        nz, ny, nx = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (Z, Y, X) ints, got {shape!r}") from None
    if nz < 2 or ny < 16 or nx < 16:
        raise ValueError(f"shape must have at least 2 planes of 16 x 16 pixels, got {shape!r}")
    return nz, ny, nx


def phantom_stack(
    shape: tuple[int, int, int] = (20, 256, 256),
    *,
    seed: int = 0,
    contrast: str = "fluorescence",
    z_step: float = 1.0,
    pixel_um: float | None = None,
    na: float = 0.5,
    depth_of_field: float | None = None,
    brightness: float = 1.0,
    bits: int = 8,
) -> Phantom:
    """A stack through a volume specimen, with its truth (depth of field: 2 ``z_step`` unless
    given).

    With the defaults of the optional parameters (those of the validation figures), the stack
    is the same as before they existed.

    Parameters
    ----------
    shape : tuple of int
        (Z, Y, X).
    seed : int
        Specimen, illumination and camera noise.
    contrast : {"fluorescence", "brightfield"}
        Emitting objects on a dark background, or absorbing and phase objects in transmitted
        light.
    z_step : float
        Plane spacing in µm.
    pixel_um : float, optional
        Pixel size in µm (default ``0.3 / z_step``).
    na : float
        Numerical aperture: the defocus disk's slope.
    depth_of_field : float, optional
        µm; the truth's in-focus range (default ``2 * z_step``).
    brightness : float
        Factor on the photoelectrons (fluorescence signal and haze, brightfield light); the
        gain is divided by it, so only the shot noise changes.
    bits : int
        Camera bit depth (8: uint8; more: uint16, the gain scaled by ``2 ** (bits - 8)``).
    """
    nz, ny, nx = _check_shape(shape)
    if contrast not in ("fluorescence", "brightfield"):
        raise ValueError(f"contrast must be 'fluorescence' or 'brightfield', got {contrast!r}")
    z_step = check_positive_number(z_step, "z_step", "µm")
    if isinstance(na, bool) or not isinstance(na, Real) or not 0 < float(na) < 1:
        raise ValueError(f"na must be a number between 0 and 1 (exclusive), got {na!r}")
    brightness = check_positive_number(brightness, "brightness")
    if isinstance(bits, bool) or not isinstance(bits, Integral) or not 8 <= int(bits) <= 16:
        raise ValueError(f"bits must be an int from 8 to 16, got {bits!r}")
    bits = int(bits)
    fluo = contrast == "fluorescence"
    rng = np.random.default_rng([seed, 12, 0 if fluo else 1])
    dof = (
        2.0 * z_step
        if depth_of_field is None
        else check_positive_number(depth_of_field, "depth_of_field", "µm")
    )
    pixel = 0.3 / z_step if pixel_um is None else check_positive_number(pixel_um, "pixel_um", "µm")
    optics = _Optics((ny, nx), pixel_um=pixel, na=na)
    z_um = np.arange(nz, dtype=np.float64) * z_step
    z_sub = np.arange(-_MARGIN * _SUB, (nz - 1 + _MARGIN) * _SUB + 1) * (z_step / _SUB)
    cols, haze = _specimen(rng, (ny, nx), nz, z_step, fluo)
    vol = _columns_to_volume(cols.density, cols.centre, cols.thick, z_sub)
    vol += _columns_to_volume(haze.density, haze.centre, haze.thick, z_sub)
    light = _illumination(rng, (ny, nx))
    # the gain follows the photon budget, so grey levels stay in range and only the shot
    # noise changes with ``brightness``
    scale = 2.0 ** (bits - 8) / brightness
    camera = _Camera(rng, (ny, nx), gain=(0.4 if fluo else 0.05) * scale, top=2**bits - 1)
    blurred = _image_planes(optics, vol, z_sub, z_um)
    if fluo:
        peak = brightness * rng.uniform(250, 450)  # photoelectrons of a dense in-focus column
        electrons = light * (peak * blurred + brightness * rng.uniform(15, 35))
        offset = 8.0
    else:
        phase = _columns_to_volume(cols.phase, cols.centre, cols.thick, z_sub)
        tie = _image_planes(optics, phase, z_sub, z_um, phase=True)
        absorb = np.clip(0.45 * blurred, 0, 0.95)
        background = brightness * rng.uniform(3200, 4000)
        electrons = light * background * np.clip(1 - absorb + 0.05 * tie, 0.02, None)
        offset = 4.0
    raw = np.stack([camera.expose(e, rng, offset) for e in electrons])
    mask, depth = _truth(cols, z_um, dof)
    meta = {"z_step": z_step, "depth_of_field": dof, "contrast": contrast, "seed": seed}
    return Phantom(raw, mask, depth, z_um, meta)


def surface_stack(
    shape: tuple[int, int, int] = (44, 256, 256), *, seed: int = 0, z_step: float = 1.0
) -> Phantom:
    """A textured height-map surface seen in reflected light, with a cliff, and its truth.

    The surface spans most of the stack: a smooth relief plus a raised plateau whose sharp
    step (``meta["edge"]``, bool (Y, X), pixels within 4 of the step) tests edge keeping.
    """
    nz, ny, nx = shape
    rng = np.random.default_rng([seed, 44])
    dof = 2.0 * z_step
    optics = _Optics((ny, nx), pixel_um=0.3 / z_step, na=0.5)
    z_um = np.arange(nz, dtype=np.float64) * z_step
    z_sub = np.arange(-_MARGIN * _SUB, (nz - 1 + _MARGIN) * _SUB + 1) * (z_step / _SUB)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    relief = _texture(rng, (ny, nx), max(ny, nx) / 5)
    ramp = yy / ny * np.cos(rng.uniform(0, 6.3)) + xx / nx * np.sin(rng.uniform(0, 6.3))
    base = 0.6 * relief + 0.4 * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    plateau = ((yy - ny * rng.uniform(0.3, 0.7)) ** 2 + (xx - nx * rng.uniform(0.3, 0.7)) ** 2) < (
        0.22 * min(ny, nx)
    ) ** 2
    span = (nz - 1) * z_step
    height = (0.08 * span + 0.6 * span * base + np.where(plateau, 0.22 * span, 0)).astype(
        np.float32
    )
    height = np.clip(height, 0.5 * z_step, span - 0.5 * z_step)
    albedo = 0.25 + 0.75 * (0.6 * _texture(rng, (ny, nx), 1.0) + 0.4 * _texture(rng, (ny, nx), 3.0))
    thin = np.full((ny, nx), 0.2 * z_step, np.float32)
    vol = _columns_to_volume(albedo.astype(np.float32) / 0.2, height, thin, z_sub)
    light = _illumination(rng, (ny, nx))
    camera = _Camera(rng, (ny, nx), gain=0.06)
    electrons = light * 3000.0 * _image_planes(optics, vol, z_sub, z_um)
    raw = np.stack([camera.expose(e, rng, 3.0) for e in electrons])
    edge = ndimage.binary_dilation(plateau, iterations=4) & ~ndimage.binary_erosion(
        plateau, iterations=4
    )
    mask = np.stack([np.abs(height - z) <= dof / 2 + 0.1 * z_step for z in z_um])
    meta = {
        "z_step": z_step,
        "depth_of_field": dof,
        "contrast": "reflected",
        "seed": seed,
        "edge": edge,
    }
    return Phantom(raw, mask, height, z_um, meta)


def noise_stack(
    shape: tuple[int, int, int] = (20, 256, 256), *, seed: int = 0, contrast: str = "fluorescence"
) -> Phantom:
    """Camera frames of an empty field (uneven light, fixed pattern, row noise, hot pixels)."""
    nz, ny, nx = shape
    fluo = contrast == "fluorescence"
    rng = np.random.default_rng([seed, 99, 0 if fluo else 1])
    light = _illumination(rng, (ny, nx))
    camera = _Camera(rng, (ny, nx), gain=0.4 if fluo else 0.05)
    level = rng.uniform(15, 35) if fluo else rng.uniform(3200, 4000)
    raw = np.stack([camera.expose(light * level, rng, 8.0) for _ in range(nz)])
    mask = np.zeros(raw.shape, bool)
    depth = np.full((ny, nx), np.nan, np.float32)
    z_um = np.arange(nz, dtype=np.float64)
    meta = {"z_step": 1.0, "depth_of_field": 2.0, "contrast": contrast, "seed": seed}
    return Phantom(raw, mask, depth, z_um, meta)
