"""A third, independent validation generator: membranes, filaments, sheets and puncta in 3-D.

Everything here is written from scratch and shares no model with :mod:`livefocus.sim` or the
volume phantom, so an algorithm tuned on those meets a new specimen, new optics and a new camera.

Specimen
    A 3-D density sampled on a grid of ``_SUB`` sub-slices per plane that extends ``_EXT``
    planes beyond both ends of the stack (and ``_PAD`` pixels beyond the field laterally, so
    that blur near the edges sees real neighbours). Each voxel holds the z-integral of the
    density over its sub-slice (an exact interval overlap, so membranes thinner than a
    sub-slice keep their mass). The objects, with counts and a brightness of their own drawn
    from the seed, are

    * hollow spherical shells: membranes 0.3-0.6 µm thick, radii 3-12 µm, so a pixel column
      inside one holds material at two heights (cap and floor);
    * filaments: smoothed random walks with a random persistence that climb or descend in z
      across the field, with a Gaussian cross-section 1-2 px wide;
    * one or two flat sheets covering part of the field, tilted so their height varies
      linearly, with a patchy texture of their own (filtered noise thresholded into patches);
    * puncta: sub-resolution points scattered in 3-D;
    * one or two haze objects (a filament or a sheet) lying 3.5-6 planes beyond the ends of
      the stack: they add out-of-focus light and are never part of the truth.

    The lateral pixel size follows from ``z_step``: the optics have a Rayleigh range
    ``zR = z_step`` (below), and a Gaussian beam of waist ``w0 = 2 * sigma0`` in water at
    520 nm has ``zR = pi * n * w0**2 / lambda``, which fixes ``w0`` in µm and so the pixel.

Optics
    The PSF at a defocus ``dz`` between a sub-slice and the focal plane is a mix of a Gaussian
    core whose width grows like a Gaussian beam, ``sigma(dz) = sigma0 * sqrt(1 + (dz/zR)**2)``
    with ``sigma0 = 1.15 px``, and a thin defocus ring of radius ``3 * sigma0 * |dz| / zR``
    carrying the fraction ``|dz| / (|dz| + 3 zR)`` of the energy. Core and ring are each
    normalised to unit sum. Each focal plane is the sum over all sub-slices of the sub-slice
    convolved (by FFT) with the PSF of its defocus. The depth of field is ``2 * zR = 2 * z_step``.

    * fluorescence: photoelectrons = that sum times a photon scale, plus a dim smooth
      autofluorescence background (10-50 e-);
    * brightfield: the same sum of the (absorption) density is an optical density ``A`` and the
      intensity is ``background * exp(-A)`` over a smooth, slightly graded illumination, so
      objects are dark (10-40 % absorbed in focus).

    Object strengths are set so that in-focus objects peak at roughly 200-1500 e- over the
    background (fluorescence) or absorb 10-40 % (brightfield); both contrasts image the same
    specimen for a given seed.

Camera (sCMOS-like)
    A per-frame global flicker of up to +-1-2 %, Poisson shot noise, a per-pixel read-noise map
    (log-normal, median about 1.5 e-, with 2-5 % of pixels 3-10x noisier), a gain of 0.4-0.7
    ADU/e-, a per-pixel offset near 100 ADU (fixed pattern plus column pattern), rounding and
    12-bit clipping to 0..4095, stored as uint16.

Truth (exact for the sampled model)
    A voxel is material when an object's density there exceeds 5 % of that object's peak
    voxel; haze objects are excluded. ``mask[k]`` is true where the pixel's column holds
    material in the sub-slices within ``z_k +- depth_of_field / 2`` (sub-slice edges fall exactly
    on the window edges). ``depth`` is the height of the centre of the column's densest
    material sub-slice within the stack's range ``[-dof/2, z_max + dof/2]`` (so it may lie up to
    ``dof/2`` outside ``[0, z_max]``), NaN where the column holds none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft
from scipy import ndimage

__all__ = ["PointsPhantom", "points_stack"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_SUB = 4  # sub-slices per plane (even, so sub-slice edges fall on the truth window edges)
_EXT = 6  # planes of specimen beyond each end of the stack
_PAD = 32  # lateral guard band in pixels (blur and objects beyond the field)
_SIGMA0 = 1.15  # in-focus PSF core sigma, px
_RING_SLOPE = 3.0  # ring radius per Rayleigh range of defocus, in units of sigma0
_RING_WIDTH = 0.7  # radial sigma of the defocus ring, px
_WAVELENGTH_UM = 0.52
_N_MEDIUM = 1.33
_TRUTH_FRACTION = 0.05
_FULL_SCALE = 4095
_CONTRASTS = ("fluorescence", "brightfield")


@dataclass(frozen=True, eq=False)
class PointsPhantom:
    """A simulated stack and its exact truth."""

    raw: npt.NDArray[np.uint16]  # (Z, Y, X) camera frames, 12-bit values 0..4095
    mask: npt.NDArray[np.bool_]  # (Z, Y, X) in-focus truth
    depth: F32  # (Y, X) µm from plane 0, NaN where no object in range
    z_um: F64  # (Z,) plane positions
    meta: dict[str, Any]


@dataclass(frozen=True)
class _Grid:
    nz: int  # planes
    ny: int  # padded rows
    nx: int  # padded columns
    z_step: float
    pixel: float  # µm per lateral pixel

    @property
    def dzs(self) -> float:
        return self.z_step / _SUB

    @property
    def ns(self) -> int:
        return _SUB * (self.nz + 2 * _EXT)

    @property
    def z_lo(self) -> float:
        return -(_EXT + 0.5) * self.z_step

    @property
    def z_hi(self) -> float:
        return self.z_lo + self.ns * self.dzs

    def centres(self) -> F64:
        out: F64 = self.z_lo + (np.arange(self.ns, dtype=np.float64) + 0.5) * self.dzs
        return out

    def j_of(self, z: float) -> int:
        """The sub-slice holding height ``z``, clipped to the grid."""
        return int(min(max(math.floor((z - self.z_lo) / self.dzs), 0), self.ns - 1))

    def in_range(self) -> tuple[int, int]:
        """First and one-past-last sub-slice inside the stack's truth range."""
        return _SUB * _EXT - _SUB // 2, _SUB * (_EXT + self.nz) + _SUB // 2


class _Volume:
    """Accumulates object densities and their truth voxels."""

    def __init__(self, grid: _Grid) -> None:
        self.grid = grid
        shape = (grid.ns, grid.ny, grid.nx)
        self.total = np.zeros(shape, np.float32)
        self.truth_density = np.zeros(shape, np.float32)
        self.truth = np.zeros(shape, np.bool_)

    def add(self, j0: int, y0: int, x0: int, block: F32, *, truth: bool) -> None:
        if block.size == 0:
            return
        peak = float(block.max())
        if peak <= 0.0:
            return
        nj, ny, nx = block.shape
        sl = (slice(j0, j0 + nj), slice(y0, y0 + ny), slice(x0, x0 + nx))
        self.total[sl] += block
        if truth:
            self.truth_density[sl] += block
            self.truth[sl] |= block > _TRUTH_FRACTION * peak


def _overlap(grid: _Grid, lo: F64, hi: F64, j0: int, j1: int) -> F64:
    """Length (µm) of each interval ``[lo, hi]`` inside sub-slices ``j0..j1-1``: (j1-j0, *shape)."""
    edges = grid.z_lo + grid.dzs * np.arange(j0, j1 + 1, dtype=np.float64)
    ex = (slice(None),) + (None,) * lo.ndim
    top = np.minimum(hi[None], edges[1:][ex])
    bottom = np.maximum(lo[None], edges[:-1][ex])
    out: F64 = np.clip(top - bottom, 0.0, None)
    return out


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> F64:
    """Gaussian-filtered white noise scaled to unit standard deviation."""
    n: F64 = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    out: F64 = n / max(float(n.std()), 1e-12)
    return out


# --- specimen ---------------------------------------------------------------------------------


def _shell(vol: _Volume, rng: np.random.Generator, strength: float) -> None:
    g = vol.grid
    r_out = _log_uniform(rng, 3.0, 12.0)
    thick = rng.uniform(0.3, 0.6)
    r_in = r_out - thick
    cy = _PAD + rng.uniform(0.0, g.ny - 2 * _PAD)
    cx = _PAD + rng.uniform(0.0, g.nx - 2 * _PAD)
    zc = rng.uniform(0.0, (g.nz - 1) * g.z_step)
    rpx = r_out / g.pixel
    y0, y1 = max(0, int(cy - rpx) - 1), min(g.ny, int(cy + rpx) + 2)
    x0, x1 = max(0, int(cx - rpx) - 1), min(g.nx, int(cx + rpx) + 2)
    j0, j1 = g.j_of(zc - r_out), g.j_of(zc + r_out) + 1
    yy = (np.arange(y0, y1, dtype=np.float64) + 0.5 - cy)[:, None]
    xx = (np.arange(x0, x1, dtype=np.float64) + 0.5 - cx)[None, :]
    rho2 = (yy**2 + xx**2) * g.pixel**2
    b = np.sqrt(np.clip(r_out**2 - rho2, 0.0, None))
    a = np.sqrt(np.clip(r_in**2 - rho2, 0.0, None))
    w = _overlap(g, zc + a, zc + b, j0, j1) + _overlap(g, zc - b, zc - a, j0, j1)
    # The brightest in-focus view is the rim, where a column grazes the wall over this length.
    rim_path = 2.0 * math.sqrt(r_out**2 - r_in**2)
    block = (w * (strength * 1.5 / rim_path)).astype(np.float32)
    vol.add(j0, y0, x0, block, truth=True)


def _filament(
    vol: _Volume,
    rng: np.random.Generator,
    strength: float,
    z_band: tuple[float, float],
    truth: bool,
) -> None:
    g = vol.grid
    fy, fx = g.ny - 2 * _PAD, g.nx - 2 * _PAD
    sigma_f = rng.uniform(0.45, 0.8)  # cross-section, px
    half_z = sigma_f * g.pixel  # half thickness in z, µm
    node = 2.0  # px between coarse nodes
    length = rng.uniform(0.8, 1.5) * max(fy, fx)
    n = max(int(length / node), 8)
    # Start just outside a random edge, heading into the field.
    side = int(rng.integers(4))
    t = rng.uniform(0.1, 0.9)
    starts = [(0.0, t * fx), (fy, t * fx), (t * fy, 0.0), (t * fy, fx)]
    sy, sx = starts[side]
    sy, sx = sy + _PAD, sx + _PAD
    theta0 = math.atan2(g.ny / 2 - sy, g.nx / 2 - sx) + rng.uniform(-0.7, 0.7)
    turn = ndimage.gaussian_filter1d(rng.standard_normal(n), rng.uniform(4.0, 15.0))
    turn *= rng.uniform(0.01, 0.05) / max(float(turn.std()), 1e-12)
    theta = theta0 + np.cumsum(turn)
    py = sy + np.concatenate([[0.0], np.cumsum(node * np.sin(theta[:-1]))])
    px = sx + np.concatenate([[0.0], np.cumsum(node * np.cos(theta[:-1]))])
    za, zb = rng.uniform(*z_band, size=2)
    wig = ndimage.gaussian_filter1d(rng.standard_normal(n), rng.uniform(10.0, 30.0))
    wig *= rng.uniform(0.2, 1.2) / max(float(wig.std()), 1e-12)
    pz = np.clip(np.linspace(za, zb, n) + wig, z_band[0] + half_z, z_band[1] - half_z)
    # Resample densely enough that neither the lateral nor the z step leaves gaps.
    dz_max = float(np.abs(np.diff(pz)).max())
    sub = max(math.ceil(node / 0.3), math.ceil(dz_max / (0.5 * half_z)))
    u = np.linspace(0.0, n - 1.0, (n - 1) * sub + 1)
    idx = np.arange(n, dtype=np.float64)
    py, px, pz = np.interp(u, idx, py), np.interp(u, idx, px), np.interp(u, idx, pz)
    step = np.sqrt(np.diff(py) ** 2 + np.diff(px) ** 2 + (np.diff(pz) / g.pixel) ** 2)
    seg = np.concatenate([[step[0] / 2], (step[:-1] + step[1:]) / 2, [step[-1] / 2]])
    keep = (py >= 1) & (py < g.ny - 2) & (px >= 1) & (px < g.nx - 2)
    keep &= (pz - half_z > g.z_lo) & (pz + half_z < g.z_hi)
    if not keep.any():
        return
    py, px, pz, seg = py[keep], px[keep], pz[keep], seg[keep]
    line_density = strength * math.sqrt(2.0 * math.pi * (_SIGMA0**2 + sigma_f**2))
    mass = seg * line_density
    margin = 5
    y0, y1 = max(0, int(py.min()) - margin), min(g.ny, int(py.max()) + margin + 2)
    x0, x1 = max(0, int(px.min()) - margin), min(g.nx, int(px.max()) + margin + 2)
    j0, j1 = g.j_of(float(pz.min()) - half_z), g.j_of(float(pz.max()) + half_z) + 1
    nj, by, bx = j1 - j0, y1 - y0, x1 - x0
    # Bilinear lateral splat (pixel centres at i + 0.5) times the exact z overlap.
    fy_, fx_ = py - 0.5 - y0, px - 0.5 - x0
    iy, ix = np.floor(fy_).astype(np.int64), np.floor(fx_).astype(np.int64)
    ry, rx = fy_ - iy, fx_ - ix
    jlo = np.floor((pz - half_z - g.z_lo) / g.dzs).astype(np.int64)
    n_off = math.ceil(2 * half_z / g.dzs) + 1
    flat = np.zeros(nj * by * bx, np.float64)
    for o in range(n_off):
        j = jlo + o
        e0 = g.z_lo + j * g.dzs
        wz = np.clip(np.minimum(pz + half_z, e0 + g.dzs) - np.maximum(pz - half_z, e0), 0.0, None)
        wz /= 2 * half_z
        ok = (j >= j0) & (j < j1) & (wz > 0)
        for dy, wy in ((0, 1 - ry), (1, ry)):
            for dx, wx in ((0, 1 - rx), (1, rx)):
                lin = ((j - j0) * by + iy + dy) * bx + ix + dx
                flat += np.bincount(lin[ok], (mass * wz * wy * wx)[ok], minlength=flat.size)
    vol3 = flat.reshape(nj, by, bx)
    block = ndimage.gaussian_filter(vol3, (0.0, sigma_f, sigma_f), truncate=3.5).astype(np.float32)
    vol.add(j0, y0, x0, block, truth=truth)


def _sheet(
    vol: _Volume,
    rng: np.random.Generator,
    strength: float,
    z_band: tuple[float, float],
    truth: bool,
) -> None:
    g = vol.grid
    shape = (g.ny, g.nx)
    fy, fx = g.ny - 2 * _PAD, g.nx - 2 * _PAD
    yy = np.arange(g.ny, dtype=np.float64)[:, None] - g.ny / 2
    xx = np.arange(g.nx, dtype=np.float64)[None, :] - g.nx / 2
    # Extent: part of the field beyond a wavy line.
    phi = rng.uniform(0.0, 2 * math.pi)
    ramp = (xx * math.cos(phi) + yy * math.sin(phi)) / max(fy, fx)
    ramp = ramp + 0.08 * _smooth_noise(rng, shape, max(fy, fx) / 10)
    cover = rng.uniform(0.15, 0.3)
    inner = ramp[_PAD : g.ny - _PAD, _PAD : g.nx - _PAD]
    region = ramp > np.quantile(inner, 1.0 - cover)
    # Texture: filtered noise thresholded into soft-edged patches of varying brightness.
    tex_n = _smooth_noise(rng, shape, rng.uniform(1.5, 4.0))
    fill = rng.uniform(0.35, 0.6)
    tex = np.clip((tex_n - np.quantile(tex_n, 1.0 - fill)) / 0.3, 0.0, 1.0)
    shade = 0.6 + 0.4 * np.clip(0.5 + 0.25 * _smooth_noise(rng, shape, 12.0), 0.0, 1.0)
    tex = tex * shade * region
    # Height: a tilted plane.
    thick = rng.uniform(0.3, 0.8)
    psi = rng.uniform(0.0, 2 * math.pi)
    z_mid = rng.uniform(*z_band)
    span = rng.uniform(2.0, 10.0) if truth else rng.uniform(0.0, 2.0)
    slope = span / max(fy, fx)  # µm per px
    h = z_mid + slope * (xx * math.cos(psi) + yy * math.sin(psi))
    h = np.clip(h, z_band[0] + thick / 2, z_band[1] - thick / 2) if not truth else h
    on = tex > 0
    if not on.any():
        return
    rows, cols = np.nonzero(on.any(axis=1))[0], np.nonzero(on.any(axis=0))[0]
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    hb, tb = h[y0:y1, x0:x1], tex[y0:y1, x0:x1]
    hon = hb[tb > 0]
    j0, j1 = g.j_of(float(hon.min()) - thick / 2), g.j_of(float(hon.max()) + thick / 2) + 1
    w = _overlap(g, hb - thick / 2, hb + thick / 2, j0, j1)
    block = (w * (tb * (strength / thick))[None]).astype(np.float32)
    vol.add(j0, y0, x0, block, truth=truth)


def _punctum(vol: _Volume, rng: np.random.Generator, strength: float) -> None:
    g = vol.grid
    sigma_p = rng.uniform(0.4, 0.6)
    half_z = rng.uniform(0.05, 0.15)
    cy = _PAD + rng.uniform(-8.0, g.ny - 2 * _PAD + 8.0)
    cx = _PAD + rng.uniform(-8.0, g.nx - 2 * _PAD + 8.0)
    cz = rng.uniform(-0.5, g.nz - 0.5) * g.z_step
    r = 4
    y0, x0 = int(cy) - r, int(cx) - r
    yy = (np.arange(y0, y0 + 2 * r + 1) + 0.5 - cy)[:, None]
    xx = (np.arange(x0, x0 + 2 * r + 1) + 0.5 - cx)[None, :]
    lat = np.exp(-(yy**2 + xx**2) / (2 * sigma_p**2))
    lat /= lat.sum()
    j0, j1 = g.j_of(cz - half_z), g.j_of(cz + half_z) + 1
    wz = _overlap(g, np.array([cz - half_z]), np.array([cz + half_z]), j0, j1)[:, 0]
    wz /= 2 * half_z
    total = strength * 2 * math.pi * (_SIGMA0**2 + sigma_p**2)
    block = (total * wz[:, None, None] * lat[None]).astype(np.float32)
    vol.add(j0, y0, x0, block, truth=True)


def _specimen(grid: _Grid, rng: np.random.Generator) -> _Volume:
    vol = _Volume(grid)
    z_max = (grid.nz - 1) * grid.z_step
    zs = grid.z_step
    in_band = (-2.0 * zs, z_max + 2.0 * zs)
    bands = [(-(_EXT - 0.5) * zs, -3.5 * zs), (z_max + 3.5 * zs, z_max + (_EXT - 0.5) * zs)]

    def strength() -> float:
        return _log_uniform(rng, 1.0, 5.0)

    for _ in range(int(rng.integers(1, 3))):
        _shell(vol, rng, strength())
    for _ in range(int(rng.integers(3, 9))):
        _filament(vol, rng, strength(), in_band, truth=True)
    for _ in range(int(rng.integers(1, 3))):
        lo, hi = 1.0 * zs, z_max - 1.0 * zs
        _sheet(vol, rng, strength(), (lo, max(lo, hi)), truth=True)
    for _ in range(int(rng.integers(30, 121))):
        _punctum(vol, rng, strength())
    for _ in range(int(rng.integers(1, 3))):
        band = bands[int(rng.integers(2))]
        if rng.random() < 0.5:
            _filament(vol, rng, 2.0 * strength(), band, truth=False)
        else:
            _sheet(vol, rng, 2.0 * strength(), band, truth=False)
    return vol


# --- optics -----------------------------------------------------------------------------------


def _otf(grid: _Grid, dz: float, r: F64) -> F32:
    """Real OTF (rfft2 layout) of the PSF at defocus ``dz`` on the padded grid."""
    zr = grid.z_step
    a = abs(dz)
    sigma = _SIGMA0 * math.sqrt(1.0 + (a / zr) ** 2)
    core = np.exp(-(r**2) / (2 * sigma**2))
    core /= core.sum()
    frac = a / (a + 3.0 * zr)
    radius = _RING_SLOPE * _SIGMA0 * a / zr
    ring = np.exp(-((r - radius) ** 2) / (2 * _RING_WIDTH**2))
    ring /= ring.sum()
    psf = (1.0 - frac) * core + frac * ring
    out: F32 = sfft.rfft2(psf, workers=1).real.astype(np.float32)
    return out


def _blurred_stack(grid: _Grid, density: F32) -> F32:
    """Each focal plane: sum over sub-slices of the sub-slice convolved with its PSF(dz)."""
    ns, ny, nx = density.shape
    nz = grid.nz
    fy = np.fft.fftfreq(ny) * ny
    fx = np.fft.fftfreq(nx) * nx
    r = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    # dz between sub-slice j and plane k depends on d = j - SUB*(EXT + k) only:
    # dz = (d + 0.5 - SUB/2) * dzs.
    d_min = -_SUB * (_EXT + nz - 1)
    d_all = np.arange(d_min, ns - _SUB * _EXT)
    m = np.abs(2 * d_all + 1 - _SUB)  # |dz| in units of dzs / 2 (odd)
    uniq, inv = np.unique(m, return_inverse=True)
    otfs = np.stack([_otf(grid, float(u) * grid.dzs / 2, r) for u in uniq])
    table = otfs[inv]
    spec = sfft.rfft2(density, workers=1)
    sv = spec.view(np.float32).reshape(*spec.shape, 2)
    out = np.empty((nz, *spec.shape[1:]), np.complex64)
    for k in range(nz):
        start = -_SUB * (_EXT + k) - d_min
        t = table[start : start + ns]
        acc = np.einsum("jyx,jyxc->yxc", t, sv)
        out[k] = acc[..., 0] + 1j * acc[..., 1]
    img: F32 = np.asarray(sfft.irfft2(out, s=(ny, nx), workers=1), dtype=np.float32)
    return img[:, _PAD : ny - _PAD, _PAD : nx - _PAD]


# --- camera -----------------------------------------------------------------------------------


def _camera(rng: np.random.Generator, electrons: F64, gain: float) -> npt.NDArray[np.uint16]:
    nz, ny, nx = electrons.shape
    amplitude = rng.uniform(0.01, 0.02)
    flicker = 1.0 + amplitude * np.asarray(rng.uniform(-1.0, 1.0, size=nz), dtype=np.float64)
    lam = np.clip(electrons * flicker[:, None, None], 0.0, None)
    shot = np.asarray(rng.poisson(lam), dtype=np.float64)
    read = np.exp(np.log(1.5) + 0.25 * rng.standard_normal((ny, nx)))
    noisy = rng.random((ny, nx)) < rng.uniform(0.02, 0.05)
    read[noisy] *= rng.uniform(3.0, 10.0, size=int(noisy.sum()))
    offset = rng.uniform(95.0, 105.0) + rng.normal(0.0, 2.5, (ny, nx))
    offset += rng.normal(0.0, 1.0, (1, nx))  # column pattern
    adu = gain * (shot + read[None] * rng.standard_normal(shot.shape)) + offset[None]
    out: npt.NDArray[np.uint16] = np.clip(np.rint(adu), 0, _FULL_SCALE).astype(np.uint16)
    return out


def _smooth_field(rng: np.random.Generator, ny: int, nx: int) -> F64:
    """A smooth field of mean 0 and spread about +-1 (a gradient plus slow undulation)."""
    yy = np.linspace(-1.0, 1.0, ny)[:, None]
    xx = np.linspace(-1.0, 1.0, nx)[None, :]
    gy, gx = rng.uniform(-1.0, 1.0, size=2)
    und = _smooth_noise(rng, (ny, nx), max(ny, nx) / 4)
    out: F64 = (gy * yy + gx * xx) + 0.3 * und
    return out


def points_stack(
    shape: tuple[int, int, int] = (20, 256, 256),
    *,
    seed: int = 0,
    contrast: str = "fluorescence",
    z_step: float = 1.0,
) -> PointsPhantom:
    """Simulate a focus stack of membranes, filaments, sheets and puncta with exact truth.

    ``shape`` is (planes, rows, columns); planes lie at ``k * z_step`` µm. The same ``seed``
    gives the same specimen in both contrasts and the same frames for a given contrast.
    """
    if contrast not in _CONTRASTS:
        raise ValueError(f"contrast must be one of {_CONTRASTS}, got {contrast!r}")
    if len(shape) != 3 or any(int(s) != s or s < 1 for s in shape):
        raise ValueError(f"shape must be three positive integers (Z, Y, X), got {shape!r}")
    if not (math.isfinite(z_step) and z_step > 0):
        raise ValueError(f"z_step must be a positive number of µm, got {z_step!r}")
    nz, ny, nx = (int(s) for s in shape)
    spec_ss, illum_ss, cam_ss = np.random.SeedSequence(seed).spawn(3)
    # zR = pi n w0^2 / lambda with zR = z_step and w0 = 2 sigma0 fixes the pixel size.
    w0_um = math.sqrt(z_step * _WAVELENGTH_UM / (math.pi * _N_MEDIUM))
    grid = _Grid(nz, ny + 2 * _PAD, nx + 2 * _PAD, float(z_step), w0_um / (2 * _SIGMA0))

    vol = _specimen(grid, np.random.default_rng(spec_ss))
    blurred = _blurred_stack(grid, vol.total).astype(np.float64)
    blurred = np.clip(blurred, 0.0, None)

    rng_i = np.random.default_rng(illum_ss)
    rng_c = np.random.default_rng(cam_ss)
    gain = rng_c.uniform(0.4, 0.7)
    if contrast == "fluorescence":
        photons_per_unit = rng_i.uniform(180.0, 300.0)
        lo = rng_i.uniform(10.0, 25.0)
        hi = lo + rng_i.uniform(5.0, 25.0)
        f = _smooth_field(rng_i, ny, nx)
        f = (f - f.min()) / max(float(np.ptp(f)), 1e-12)
        electrons = photons_per_unit * blurred + (lo + (hi - lo) * f)[None]
    else:
        absorbance_per_unit = rng_i.uniform(0.09, 0.11)
        bg = rng_i.uniform(2000.0, 6000.0)
        bg = min(bg, (0.85 * _FULL_SCALE - 110.0) / gain)  # exposure set to stay off saturation
        field = bg * (1.0 + 0.03 * _smooth_field(rng_i, ny, nx))
        electrons = field[None] * np.exp(-absorbance_per_unit * blurred)
    raw = _camera(rng_c, electrons, gain)

    # Truth.
    j_a, j_b = grid.in_range()
    truth = vol.truth[:, _PAD : _PAD + ny, _PAD : _PAD + nx]
    dens = vol.truth_density[:, _PAD : _PAD + ny, _PAD : _PAD + nx]
    mask = np.zeros((nz, ny, nx), np.bool_)
    for k in range(nz):
        a = _SUB * (_EXT + k) - _SUB // 2
        mask[k] = truth[a : a + 2 * _SUB].any(axis=0)
    t_in, d_in = truth[j_a:j_b], dens[j_a:j_b]
    best = np.argmax(np.where(t_in, d_in, -1.0), axis=0)
    depth = grid.centres()[j_a:j_b][best].astype(np.float32)
    depth[~t_in.any(axis=0)] = np.nan

    meta: dict[str, Any] = {
        "z_step": float(z_step),
        "depth_of_field": 2.0 * float(z_step),
        "contrast": contrast,
        "seed": seed,
        "generator": "points",
        "pixel_size": grid.pixel,
    }
    z_um = np.arange(nz, dtype=np.float64) * float(z_step)
    return PointsPhantom(raw=raw, mask=mask, depth=depth, z_um=z_um, meta=meta)
