"""Independent widefield Z-stack phantom built from scalar Fourier optics.

This generator was written blind to the package it validates: it shares no code, no parameters
and no image model with it.  It uses numpy and scipy only.

Physical model
--------------
Optics.  A widefield objective of numerical aperture ``na`` with an immersion medium of refractive
index ``n`` images light of wavelength ``wavelength`` onto a camera whose pixels measure
``pixel_size`` at the sample.  The scalar pupil is the disc ``|f| <= na / wavelength`` in the
lateral spatial-frequency plane.  A point at axial distance ``dz`` from the focal plane adds the
angular-spectrum defocus phase ``(kz(f) - k) * dz`` with ``kz = 2 pi sqrt((n / lambda)^2 - f^2)``
and ``k = 2 pi n / lambda``, plus a small per-seed primary spherical aberration (Zernike Z(4,0)).
No paraxial or Gaussian approximation is made for the image formation:

* fluorescence (incoherent emitters on a dark field): the intensity PSF at defocus ``dz`` is
  ``|IFFT(A(f) P(f) exp(i W(f, dz)))|^2`` with the aplanatic collection apodisation
  ``A = cos(theta)^-1/2``; its FFT is the OTF.
* brightfield (Koehler illumination, a condenser disc of coherence ``sigma`` times the objective
  aperture, absorbing and weakly phase-shifting objects on a bright field): weak-object transfer
  functions from the transmission cross-coefficient.  With ``C(f) = sum_s S(s) P(f + s)
  exp(i (W(f + s) - W(s))) / sum_s S(s)`` (an FFT cross-correlation of source and pupil), the
  absorption transfer is ``C(f) + conj(C(-f))`` and the phase transfer ``i (C(f) - conj(C(-f)))``.
  In focus a phase object is invisible and an absorber shows; with defocus phase objects show
  light/dark halos.  The linear weak-object image ``L`` is exponentiated (``exp(L)``, a
  Beer-Lambert-like closure) to keep intensities positive.

Both transfer functions also carry the pixel-integration sinc.  The specimen is a 3-D density
sampled on thin depth slices ``slice_spacing = z_step / slice_factor`` apart (at least four slices
per depth of field).  Plane ``z`` of the stack is the sum over all slices of the slice convolved
with the transfer function for that slice's defocus - a genuinely 3-D image formation in which
out-of-focus material from anywhere in the specimen (also above and below the stack) blurs into
every plane.  Convolutions are circular over a laterally padded field (the specimen is generated
over the whole padded field, so material just outside the view blurs into it).

Specimen (a mix per seed; the geometry for a seed is the same in both contrasts): cells (soft
ellipses with 5-20 px semi-axes, thickness 0.3-1.2 um, internal smooth texture, granules, an
optional dimmer nucleus; flat-ish, half of them tilted, all slightly domed), thin curved filaments
(Gaussian cross-section, sigma 0.5-0.9 px, running at a slope through z with a gentle wave), and
sub-resolution beads at random heights.  Heights are uniform over the stack span widened by three
planes on both sides.  Fluorescence adds a smooth autofluorescence haze, stray light and mild
bleaching; brightfield has an illumination gradient; both are vignetted.

Camera: photoelectrons are Poisson with a quantum efficiency and dark signal, plus Gaussian read
noise, a gain (ADU per electron), an offset, optional row/column fixed-pattern noise, a few hot
pixels (fixed positions, every plane), quantisation and clipping at 12 or 16 bits.

Depth of field (recorded in ``meta``): Berek/Inoue ``dof = lambda n / na^2 + n pixel / na`` (the
second term with the pixel at the sample standing for the detector's e / M).  The optics are drawn
per seed so that ``dof / z_step`` falls in 1.5-3 planes (``meta["dof_planes"]``).

Parameter ranges (fixed up front, uniform unless noted): wavelength 0.50-0.60 um, pixel 0.10-0.20
um, target dof 1.5-3 planes; immersion air / water / oil (n 1.0 / 1.333 / 1.515) tried in a random
order and NA solved from the Berek formula, accepted in 0.55-0.92 (NA <= 0.95 n); only when no
medium fits (a z_step far from ~1 um) NA may go to 0.30-1.40, and where NA / lambda exceeds the
grid's Nyquist frequency the pupil is cut by the grid.  Spherical aberration 0-0.08 waves,
condenser sigma 0.3-0.8.  Fluorescence peak 20-4000 photons (log-uniform), autofluorescence 1-20 %
of it, stray 0-5 photons, bleaching 0-1 % per plane; brightfield 200-30000 photons (log-uniform),
gradient 0-30 %; vignette 5-35 %.  Camera QE 0.55-0.9, read noise 1-5 e-, dark 0-2 e-, 12 or 16
bits, offset 50-200 / 100-500 ADU, gain set to fill 25-85 % of the range (clipped to 0.05-4 ADU per
e-), hot pixels 0-3e-4 per pixel at 100-5000 e-, row/column pattern (half the seeds) 0.2-3 ADU.
Cells cover 15-60 % of the padded field; beads (75 % of seeds) 100-600 and filaments (70 % of
seeds) 5-30 per 256 x 256 px.  Parameters are drawn from three independent streams of
``SeedSequence([seed, salt])`` (optics, specimen, camera/illumination).

Truth definition
----------------
Each object has a material density ``D`` on the lateral grid (peak 1), a centre height ``H(y, x)``
and a thickness ``T``.  Its in-focus image footprint is ``F = D`` blurred by the in-focus PSF core
(a Gaussian of sigma ``0.21 lambda / na``).  The object is *visible* in column ``(y, x)`` where
``F >= VISIBLE_FRACTION * max(F)`` (15 % of that object's own peak).  There it occupies heights
``[Hc - T/2, Hc + T/2]``, with ``Hc`` the footprint-weighted height (``blur(D H) / blur(D)``).
``mask[z, y, x]`` is True where any visible object's interval overlaps ``[z z_step - dof / 2,
z z_step + dof / 2]``.  ``depth[y, x]`` is ``Hc`` (um above plane 0) of the dominant object in the
column (largest brightness x F in fluorescence, absorption x F in brightfield) among the objects
that put a True into that column; it is NaN exactly where ``mask[:, y, x]`` has no True.  Hot
pixels, background, haze and material outside the stack never enter the truth.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import fft as sfft
from scipy import ndimage as ndi

__all__ = ["CONTRASTS", "VISIBLE_FRACTION", "WidefieldStack", "widefield_stack"]

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]

CONTRASTS = ("fluorescence", "brightfield")
VISIBLE_FRACTION = 0.15
"""Material is visible where its in-focus footprint exceeds this fraction of the object's peak."""

_SALT = 0x57_1DEF_1E1D

# ---- parameter ranges, fixed before anything was evaluated -------------------------------
_WAVELENGTH_UM = (0.50, 0.60)
_PIXEL_UM = (0.10, 0.20)
_DOF_PLANES = (1.5, 3.0)
_NA_PREFERRED = (0.55, 0.92)
_NA_FALLBACK = (0.30, 1.40)
_MEDIA = (("air", 1.0), ("water", 1.333), ("oil", 1.515))
_SPHERICAL_WAVES = (0.0, 0.08)
_CONDENSER_SIGMA = (0.3, 0.8)
_PSF_CORE_SIGMA = 0.21  # x lambda / NA: Gaussian approximation of the Airy core
_PAD_PX = 32
_HEIGHT_MARGIN_PLANES = 3.0
_CELL_COVERAGE = (0.15, 0.6)  # summed cell area / padded field area
_CELL_SEMI_AXIS_PX = (5.0, 20.0)
_CELL_ASPECT = (0.5, 1.0)
_CELL_THICKNESS_UM = (0.3, 1.2)
_CELL_TILT_PROB = 0.5
_CELL_TILT_RISE_UM = (0.5, 4.0)  # height change across the long diameter
_CELL_DOME_UM = (0.0, 0.5)
_CELL_TEXTURE = (0.05, 0.3)
_CELL_GRANULES = (3, 40)
_GRANULE_SIGMA_PX = (0.6, 1.5)
_GRANULE_AMP = (0.3, 1.0)
_NUCLEUS_PROB = 0.5
_NUCLEUS_FACTOR = (0.6, 0.9)
_BEAD_PROB = 0.75
_BEADS_PER_AREA = (100, 600)  # per 256 x 256 px of padded field
_BEAD_SIGMA_PX = (0.4, 0.7)
_BEAD_THICKNESS_UM = 0.15
_FILAMENT_PROB = 0.7
_FILAMENTS_PER_AREA = (5, 30)  # per 256 x 256 px of padded field
_FILAMENT_LENGTH_PX = (40.0, 250.0)
_FILAMENT_SIGMA_PX = (0.5, 0.9)
_FILAMENT_SLOPE_UM_PER_PX = 0.06
_FILAMENT_WAVE_UM = (0.0, 0.5)
_FILAMENT_THICKNESS_UM = 0.2
_BRIGHT_CELL = (0.3, 1.0)  # fluorescence brightness (x density)
_BRIGHT_BEAD = (2.0, 8.0)
_BRIGHT_FILAMENT = (1.0, 2.5)
_ABSORB_CELL = (0.04, 0.2)  # brightfield amplitude attenuation at peak density
_ABSORB_BEAD = (0.4, 1.2)
_ABSORB_FILAMENT = (0.1, 0.35)
_PHASE_RATIO = (0.2, 1.2)  # phase (rad) per unit attenuation
_FLUOR_PEAK_PHOTONS = (20.0, 4000.0)  # log-uniform
_AUTOFLUOR_FRACTION = (0.01, 0.2)
_STRAY_PHOTONS = (0.0, 5.0)
_BLEACH_PER_PLANE = (0.0, 0.01)
_BF_PHOTONS = (200.0, 30000.0)  # log-uniform
_ILLUM_GRADIENT = (0.0, 0.3)
_VIGNETTE = (0.05, 0.35)
_QE = (0.55, 0.9)
_READ_NOISE_E = (1.0, 5.0)
_DARK_E = (0.0, 2.0)
_FILL_FRACTION = (0.25, 0.85)
_GAIN_CLIP = (0.05, 4.0)  # ADU per electron
_OFFSET_ADU = {12: (50, 200), 16: (100, 500)}
_HOT_RATE = (0.0, 3e-4)  # per pixel
_HOT_E = (100.0, 5000.0)
_FPN_PROB = 0.5
_FPN_COL_ADU = (0.2, 3.0)
_FPN_ROW_ADU = (0.2, 2.0)


@dataclass(frozen=True)
class WidefieldStack:
    """One simulated widefield Z-stack with its exact in-focus truth."""

    raw: NDArray[np.uint16]
    """(Z, Y, X) camera counts."""
    mask: NDArray[np.bool_]
    """(Z, Y, X) True where the pixel shows in-focus specimen at that plane."""
    depth: FloatArray
    """(Y, X) um above plane 0 of the dominant in-focus object; NaN where the column has none."""
    meta: dict[str, Any]


@dataclass(frozen=True)
class _Optics:
    wavelength: float
    pixel: float
    na: float
    n: float
    medium: str
    dof: float
    spherical: float
    sigma: float
    slice_factor: int


@dataclass(frozen=True)
class _Object:
    kind: str
    y0: int
    x0: int
    dens: FloatArray  # peak-normalised material density on the crop
    height: FloatArray  # um, centre height of the material on the crop
    thickness: float
    brightness: float
    absorption: float
    phase_ratio: float


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _log_u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def _berek(wavelength: float, n: float, na: float, pixel: float) -> float:
    return wavelength * n / na**2 + n * pixel / na


def _solve_na(wavelength: float, n: float, pixel: float, dof: float) -> float:
    """NA for which the Berek depth of field equals ``dof`` (a quadratic in 1 / NA)."""
    a = wavelength * n
    b = n * pixel
    inv = (-b + math.sqrt(b * b + 4.0 * a * dof)) / (2.0 * a)
    return 1.0 / inv


def _draw_optics(rng: np.random.Generator, z_step: float) -> _Optics:
    wavelength = _u(rng, _WAVELENGTH_UM)
    pixel = _u(rng, _PIXEL_UM)
    target = _u(rng, _DOF_PLANES) * z_step
    spherical = _u(rng, _SPHERICAL_WAVES)
    sigma = _u(rng, _CONDENSER_SIGMA)
    order = [int(i) for i in rng.permutation(len(_MEDIA))]
    choice: tuple[str, float, float] | None = None
    for bounds in (_NA_PREFERRED, _NA_FALLBACK):
        for i in order:
            name, n = _MEDIA[i]
            na = _solve_na(wavelength, n, pixel, target)
            if bounds[0] <= na <= min(bounds[1], 0.95 * n):
                choice = (name, n, na)
                break
        if choice is not None:
            break
    if choice is None:  # z_step far outside what the optics can match: clip in oil
        name, n = _MEDIA[2]
        na = _solve_na(wavelength, n, pixel, target)
        na = min(max(na, _NA_FALLBACK[0]), min(_NA_FALLBACK[1], 0.95 * n))
        choice = (name, n, na)
    name, n, na = choice
    dof = _berek(wavelength, n, na, pixel)
    factor = min(8, max(2, math.ceil(4.0 * z_step / dof - 1e-9)))
    return _Optics(wavelength, pixel, na, n, name, dof, spherical, sigma, factor)


class _Imager:
    """Defocus transfer functions on the padded FFT grid (half spectra for rfft2)."""

    def __init__(self, shape: tuple[int, int], optics: _Optics) -> None:
        ny, nx = shape
        self.shape = shape
        self.nxh = nx // 2 + 1
        lam, n, na, p = optics.wavelength, optics.n, optics.na, optics.pixel
        fy = sfft.fftfreq(ny, d=p)[:, None]
        fx = sfft.fftfreq(nx, d=p)[None, :]
        f2 = fy**2 + fx**2
        cutoff = na / lam
        self.pupil = (f2 <= cutoff**2).astype(np.float64)
        kmax = n / lam
        kz = np.sqrt(np.clip(kmax**2 - f2, 0.0, None))
        self.defocus = np.where(self.pupil > 0, 2.0 * np.pi * (kz - kmax), 0.0)
        rho2 = np.clip(f2 / cutoff**2, 0.0, 1.0)
        zernike = math.sqrt(5.0) * (6.0 * rho2**2 - 6.0 * rho2 + 1.0)
        self.aberration = np.where(self.pupil > 0, 2.0 * np.pi * optics.spherical * zernike, 0.0)
        cos_theta = np.sqrt(np.clip(1.0 - f2 / kmax**2, 1e-6, 1.0))
        self.apod = self.pupil / np.sqrt(cos_theta)
        self.source = (f2 <= (optics.sigma * cutoff) ** 2).astype(np.float64)
        self.source_sum = float(self.source.sum())
        sinc = np.sinc(fy * p) * np.sinc(fx * p)
        self.sinc = sinc[:, : self.nxh]

    def _phase(self, dz: float) -> ComplexArray:
        return np.asarray(np.exp(1j * (self.defocus * dz + self.aberration)), dtype=np.complex128)

    def fluorescence_otf(self, dz: float) -> ComplexArray:
        amp = sfft.ifft2(self.apod * self._phase(dz))
        psf = amp.real**2 + amp.imag**2
        otf = sfft.rfft2(psf)
        otf /= otf[0, 0].real
        return np.asarray(otf * self.sinc, dtype=np.complex128)

    def brightfield_tfs(self, dz: float) -> tuple[ComplexArray, ComplexArray]:
        phase = self._phase(dz)
        g = sfft.fft2(self.source * phase)
        h = sfft.fft2(self.pupil * phase)
        c = sfft.ifft2(np.conj(g) * h) / self.source_sum
        c_neg = np.conj(np.roll(c[::-1, ::-1], 1, axis=(0, 1)))
        absorb = (c + c_neg)[:, : self.nxh] * self.sinc
        phase_tf = (1j * (c - c_neg))[:, : self.nxh] * self.sinc
        return (
            np.asarray(absorb, dtype=np.complex128),
            np.asarray(phase_tf, dtype=np.complex128),
        )


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> FloatArray:
    """Zero-mean, unit-std Gaussian random field with correlation length ``sigma`` px."""
    white = rng.standard_normal(shape)
    fy = sfft.fftfreq(shape[0])[:, None]
    fx = sfft.rfftfreq(shape[1])[None, :]
    filt = np.exp(-2.0 * np.pi**2 * sigma**2 * (fy**2 + fx**2))
    field = sfft.irfft2(sfft.rfft2(white) * filt, s=shape)
    std = float(field.std())
    return np.asarray((field - field.mean()) / (std if std > 0 else 1.0), dtype=np.float64)


def _strengths(rng: np.random.Generator, kind: str) -> tuple[float, float, float]:
    bright = {"cell": _BRIGHT_CELL, "bead": _BRIGHT_BEAD, "filament": _BRIGHT_FILAMENT}[kind]
    absorb = {"cell": _ABSORB_CELL, "bead": _ABSORB_BEAD, "filament": _ABSORB_FILAMENT}[kind]
    return _u(rng, bright), _u(rng, absorb), _u(rng, _PHASE_RATIO)


def _centre(rng: np.random.Generator, size: int, half: int) -> float:
    lo, hi = float(half), float(size - half - 1)
    return float(rng.uniform(lo, hi)) if hi > lo else 0.5 * (size - 1)


def _patch(
    rng: np.random.Generator, field: tuple[int, int], half: int
) -> tuple[float, float, int, int, np.ndarray, np.ndarray]:
    """A random centre for an object reaching ``half`` pixels out, and the pixel grid of its
    patch clipped to the field: (cy, cx, y0, x0, yy, xx)."""
    cy = _centre(rng, field[0], half)
    cx = _centre(rng, field[1], half)
    y0 = max(0, math.floor(cy) - half)
    x0 = max(0, math.floor(cx) - half)
    h = min(2 * half + 1, field[0] - y0)
    w = min(2 * half + 1, field[1] - x0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return cy, cx, y0, x0, yy, xx


def _make_cell(
    rng: np.random.Generator, field: tuple[int, int], hrange: tuple[float, float], margin: int
) -> tuple[_Object, float]:
    a = _u(rng, _CELL_SEMI_AXIS_PX)
    b = a * _u(rng, _CELL_ASPECT)
    theta = _u(rng, (0.0, np.pi))
    half = math.ceil(1.25 * a) + margin
    cy, cx, y0, x0, yy, xx = _patch(rng, field, half)
    h, w = yy.shape
    dy = yy + y0 - cy
    dx = xx + x0 - cx
    u = dx * math.cos(theta) + dy * math.sin(theta)
    v = -dx * math.sin(theta) + dy * math.cos(theta)
    ang = np.arctan2(v / b, u / a)
    wobble = np.ones_like(ang)
    for k in (2, 3, 4):
        wobble += _u(rng, (0.0, 0.06)) * np.cos(k * ang + _u(rng, (0.0, 2 * np.pi)))
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble
    body = 1.0 / (1.0 + np.exp(np.clip((r - 1.0) * a / 0.8, -50.0, 50.0)))
    tex = _smooth_noise(rng, (h, w), _u(rng, (1.0, 3.0)))
    dens = body * (1.0 + _u(rng, _CELL_TEXTURE) * np.clip(tex, -1.5, 1.5))
    if rng.random() < _NUCLEUS_PROB:
        nr = _u(rng, (0.35, 0.5))
        nu, nv = _u(rng, (-0.3, 0.3)), _u(rng, (-0.3, 0.3))
        rn = np.sqrt(((u / a - nu) / nr) ** 2 + ((v / b - nv) / nr) ** 2)
        nucleus = 1.0 / (1.0 + np.exp(np.clip((rn - 1.0) * nr * a / 0.8, -50.0, 50.0)))
        dens = dens * (1.0 - (1.0 - _u(rng, _NUCLEUS_FACTOR)) * nucleus)
    n_gran = int(rng.integers(_CELL_GRANULES[0], _CELL_GRANULES[1] + 1))
    inside = body > 0.5
    for _ in range(n_gran):
        rho = 0.85 * math.sqrt(_u(rng, (0.0, 1.0)))
        phi = _u(rng, (0.0, 2 * np.pi))
        gu, gv = rho * a * math.cos(phi), rho * b * math.sin(phi)
        gs = _u(rng, _GRANULE_SIGMA_PX)
        amp = _u(rng, _GRANULE_AMP)
        dens = dens + amp * inside * np.exp(-((u - gu) ** 2 + (v - gv) ** 2) / (2 * gs * gs))
    dens = np.clip(dens, 0.0, None)
    dens /= float(dens.max())
    h0 = _u(rng, hrange)
    rise = _u(rng, _CELL_TILT_RISE_UM) if rng.random() < _CELL_TILT_PROB else 0.0
    tilt_dir = _u(rng, (0.0, 2 * np.pi))
    slope = rise / (2.0 * a)
    dome = _u(rng, _CELL_DOME_UM)
    height = (
        h0
        + slope * (dx * math.cos(tilt_dir) + dy * math.sin(tilt_dir))
        + dome * (1.0 - np.clip(r, 0.0, 1.0) ** 2)
    )
    bright, absorb, ratio = _strengths(rng, "cell")
    thick = _u(rng, _CELL_THICKNESS_UM)
    cell = _Object("cell", y0, x0, dens, height, thick, bright, absorb, ratio)
    return cell, float((body > 0.5).sum())


def _make_bead(
    rng: np.random.Generator, field: tuple[int, int], hrange: tuple[float, float], margin: int
) -> _Object:
    s = _u(rng, _BEAD_SIGMA_PX)
    half = math.ceil(3.0 * s) + margin
    cy, cx, y0, x0, yy, xx = _patch(rng, field, half)
    h, w = yy.shape
    dens = np.exp(-((yy + y0 - cy) ** 2 + (xx + x0 - cx) ** 2) / (2 * s * s))
    dens /= float(dens.max())
    height = np.full((h, w), _u(rng, hrange))
    bright, absorb, ratio = _strengths(rng, "bead")
    return _Object("bead", y0, x0, dens, height, _BEAD_THICKNESS_UM, bright, absorb, ratio)


def _make_filament(
    rng: np.random.Generator, field: tuple[int, int], hrange: tuple[float, float], margin: int
) -> _Object | None:
    length = _u(rng, _FILAMENT_LENGTH_PX)
    s = _u(rng, _FILAMENT_SIGMA_PX)
    step = 0.5
    n = max(2, int(length / step))
    y, x = _u(rng, (0.0, field[0] - 1.0)), _u(rng, (0.0, field[1] - 1.0))
    angle0 = _u(rng, (0.0, 2 * np.pi))
    curvature = _u(rng, (-0.006, 0.006))
    jitter = _u(rng, (0.005, 0.03))
    angles = angle0 + np.cumsum(curvature + jitter * rng.standard_normal(n))
    ys = y + step * np.cumsum(np.sin(angles))
    xs = x + step * np.cumsum(np.cos(angles))
    arc = step * np.arange(n)
    h_start = _u(rng, hrange)
    slope = _u(rng, (-_FILAMENT_SLOPE_UM_PER_PX, _FILAMENT_SLOPE_UM_PER_PX))
    wave = _u(rng, _FILAMENT_WAVE_UM)
    period = _u(rng, (60.0, 200.0))
    phase = _u(rng, (0.0, 2 * np.pi))
    hs = np.clip(h_start + slope * arc + wave * np.sin(2 * np.pi * arc / period + phase), *hrange)
    label = ndi.gaussian_filter1d(rng.standard_normal(n), 10.0, mode="nearest")
    label_std = float(label.std())
    label = np.clip(1.0 + 0.25 * label / (label_std if label_std > 0 else 1.0), 0.5, 1.5)
    bright, absorb, ratio = _strengths(rng, "filament")
    edge = margin + math.ceil(3.0 * s) + 1
    keep = (ys >= edge) & (ys <= field[0] - 1 - edge) & (xs >= edge) & (xs <= field[1] - 1 - edge)
    if int(keep.sum()) < 4:
        return None
    ys, xs, hs, label = ys[keep], xs[keep], hs[keep], label[keep]
    y0 = math.floor(float(ys.min())) - edge
    x0 = math.floor(float(xs.min())) - edge
    h = math.ceil(float(ys.max())) + edge + 1 - y0
    w = math.ceil(float(xs.max())) + edge + 1 - x0
    wgt = np.zeros((h, w))
    wh = np.zeros((h, w))
    py, px = ys - y0, xs - x0
    iy, ix = np.floor(py).astype(np.intp), np.floor(px).astype(np.intp)
    fy, fx = py - iy, px - ix
    for oy, ox, share in (
        (0, 0, (1 - fy) * (1 - fx)),
        (1, 0, fy * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 1, fy * fx),
    ):
        np.add.at(wgt, (iy + oy, ix + ox), share * label)
        np.add.at(wh, (iy + oy, ix + ox), share * label * hs)
    dens = ndi.gaussian_filter(wgt, s, mode="constant")
    num = ndi.gaussian_filter(wh, s, mode="constant")
    height = np.where(dens > 1e-12, num / np.maximum(dens, 1e-12), h_start)
    dens /= float(dens.max())
    return _Object("filament", y0, x0, dens, height, _FILAMENT_THICKNESS_UM, bright, absorb, ratio)


def _make_specimen(
    rng: np.random.Generator, field: tuple[int, int], hrange: tuple[float, float], margin: int
) -> list[_Object]:
    area = float(field[0] * field[1])
    objects: list[_Object] = []
    coverage = _u(rng, _CELL_COVERAGE) * area
    covered = 0.0
    while covered < coverage:
        cell, cell_area = _make_cell(rng, field, hrange, margin)
        covered += cell_area
        objects.append(cell)
    if rng.random() < _BEAD_PROB:
        n_beads = round(_u(rng, _BEADS_PER_AREA) * area / 65536.0)
        objects.extend(_make_bead(rng, field, hrange, margin) for _ in range(n_beads))
    if rng.random() < _FILAMENT_PROB:
        n_fil = max(1, round(_u(rng, _FILAMENTS_PER_AREA) * area / 65536.0))
        for _ in range(n_fil):
            fil = _make_filament(rng, field, hrange, margin)
            if fil is not None:
                objects.append(fil)
    return objects


def _validate(shape: tuple[int, int, int], seed: int, contrast: str, z_step: float) -> None:
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    if len(shape) != 3 or any(isinstance(s, bool) or int(s) != s for s in shape):
        raise ValueError(f"shape must be three integers (Z, Y, X), got {shape!r}")
    if shape[0] < 1 or shape[1] < 8 or shape[2] < 8:
        raise ValueError(f"shape must have Z >= 1 and Y, X >= 8, got {shape!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not (math.isfinite(z_step) and z_step > 0):
        raise ValueError(f"z_step must be a positive finite number of um, got {z_step!r}")


def widefield_stack(
    shape: tuple[int, int, int], seed: int, contrast: str = "fluorescence", z_step: float = 1.0
) -> WidefieldStack:
    """Simulate a widefield Z-stack of ``shape`` (Z, Y, X) with planes ``z_step`` um apart.

    ``contrast`` is ``"fluorescence"`` or ``"brightfield"``.  The same arguments give
    bit-identical output.  See the module docstring for the model and the truth definition.
    """
    _validate(shape, seed, contrast, z_step)
    nz, ny, nx = (int(s) for s in shape)
    z_step = float(z_step)
    streams = np.random.SeedSequence([int(seed), _SALT]).spawn(3)
    rng_opt, rng_spec, rng_cam = (np.random.default_rng(s) for s in streams)

    optics = _draw_optics(rng_opt, z_step)
    dof = optics.dof
    m = optics.slice_factor
    ds = z_step / m
    gy = sfft.next_fast_len(ny + 2 * _PAD_PX, real=True)
    gx = sfft.next_fast_len(nx + 2 * _PAD_PX, real=True)
    oy, ox = (gy - ny) // 2, (gx - nx) // 2
    core_px = _PSF_CORE_SIGMA * optics.wavelength / optics.na / optics.pixel
    margin = math.ceil(3.0 * core_px) + 3
    span = (nz - 1) * z_step
    hrange = (-_HEIGHT_MARGIN_PLANES * z_step, span + _HEIGHT_MARGIN_PLANES * z_step)
    objects = _make_specimen(rng_spec, (gy, gx), hrange, margin)

    fluor = contrast == "fluorescence"
    planes = np.arange(nz) * z_step
    mask = np.zeros((nz, ny, nx), dtype=bool)
    depth = np.full((ny, nx), np.nan)
    best = np.full((ny, nx), -np.inf)
    pix_parts: list[NDArray[np.intp]] = []
    z_parts: list[FloatArray] = []
    w_parts: list[FloatArray] = []
    p_parts: list[FloatArray] = []
    for obj in objects:
        h, w = obj.dens.shape
        strength = obj.brightness if fluor else obj.absorption
        # material deposit (sub-samples through the thickness)
        sel = obj.dens > 1e-3
        yy, xx = np.nonzero(sel)
        k = max(1, math.ceil(2.0 * obj.thickness / ds))
        offs = obj.thickness * ((np.arange(k) + 0.5) / k - 0.5)
        pix = (yy + obj.y0) * gx + (xx + obj.x0)
        pix_parts.append(np.repeat(pix, k))
        z_parts.append((obj.height[sel][:, None] + offs[None, :]).ravel())
        wts = np.repeat(strength * obj.dens[sel] / k, k)
        w_parts.append(wts)
        p_parts.append(wts * obj.phase_ratio)
        # truth on the part of the crop inside the view
        ty0, ty1 = max(obj.y0, oy), min(obj.y0 + h, oy + ny)
        tx0, tx1 = max(obj.x0, ox), min(obj.x0 + w, ox + nx)
        if ty0 >= ty1 or tx0 >= tx1:
            continue
        foot = ndi.gaussian_filter(obj.dens, core_px, mode="constant")
        hc = ndi.gaussian_filter(obj.dens * obj.height, core_px, mode="constant")
        hc = hc / np.maximum(foot, 1e-12)
        vis_all = foot >= VISIBLE_FRACTION * float(foot.max())
        cy = slice(ty0 - obj.y0, ty1 - obj.y0)
        cx = slice(tx0 - obj.x0, tx1 - obj.x0)
        vis, hcv, fv = vis_all[cy, cx], hc[cy, cx], foot[cy, cx]
        lo = hcv - 0.5 * obj.thickness
        hi = hcv + 0.5 * obj.thickness
        cond = (
            vis[None]
            & (lo[None] <= planes[:, None, None] + 0.5 * dof)
            & (hi[None] >= planes[:, None, None] - 0.5 * dof)
        )
        vy = slice(ty0 - oy, ty1 - oy)
        vx = slice(tx0 - ox, tx1 - ox)
        mask[:, vy, vx] |= cond
        score = np.where(cond.any(axis=0), strength * fv, -np.inf)
        better = score > best[vy, vx]
        best[vy, vx] = np.where(better, score, best[vy, vx])
        depth[vy, vx] = np.where(better, hcv, depth[vy, vx])

    # ---- slices of specimen material (linear interpolation onto the slice grid) ----
    pix_all = np.concatenate(pix_parts)
    zq = np.concatenate(z_parts) / ds
    s_min = math.floor(float(zq.min())) - 1
    n_slices = math.ceil(float(zq.max())) + 1 - s_min + 1
    q = zq - s_min
    i0 = np.floor(q).astype(np.intp)
    frac = q - i0
    plane_px = gy * gx
    size = n_slices * plane_px
    idx0 = i0 * plane_px + pix_all
    idx1 = idx0 + plane_px

    def slices_of(weights: FloatArray) -> FloatArray:
        vol = np.bincount(idx0, weights * (1.0 - frac), minlength=size).astype(np.float64)
        vol += np.bincount(idx1, weights * frac, minlength=size)
        return vol.reshape(n_slices, gy, gx)

    imager = _Imager((gy, gx), optics)
    amp_slices = slices_of(np.concatenate(w_parts))
    filled: NDArray[np.bool_] = np.asarray(amp_slices.reshape(n_slices, -1).any(axis=1))
    amp_hat = sfft.rfft2(amp_slices)
    del amp_slices
    ph_hat: ComplexArray | None = None
    if not fluor:
        ph_hat = sfft.rfft2(slices_of(np.concatenate(p_parts)))
    acc = np.zeros((nz, gy, imager.nxh), dtype=np.complex128)
    zi = np.arange(nz)
    for kk in range(-s_min - (n_slices - 1), (nz - 1) * m - s_min + 1):
        si = zi * m - s_min - kk
        ok = (si >= 0) & (si < n_slices)
        ok[ok] = filled[si[ok]]
        if not ok.any():
            continue
        zs, ss = zi[ok], si[ok]
        dz = kk * ds
        if fluor:
            acc[zs] += amp_hat[ss] * imager.fluorescence_otf(dz)[None]
        else:
            assert ph_hat is not None
            tfa, tfp = imager.brightfield_tfs(dz)
            acc[zs] += ph_hat[ss] * tfp[None] - amp_hat[ss] * tfa[None]
    image = sfft.irfft2(acc, s=(gy, gx))[:, oy : oy + ny, ox : ox + nx]
    del acc, amp_hat, ph_hat

    # ---- illumination, background, vignette ----
    yn = (np.arange(ny)[:, None] - 0.5 * (ny - 1)) / max(ny, nx)
    xn = (np.arange(nx)[None, :] - 0.5 * (nx - 1)) / max(ny, nx)
    vc_y, vc_x = _u(rng_cam, (-0.1, 0.1)), _u(rng_cam, (-0.1, 0.1))
    vig_strength = _u(rng_cam, _VIGNETTE)
    vignette = 1.0 - vig_strength * ((yn - vc_y) ** 2 + (xn - vc_x) ** 2) / 0.5
    low = _smooth_noise(rng_cam, (ny, nx), 0.25 * max(ny, nx))
    qe = _u(rng_cam, _QE)
    dark = _u(rng_cam, _DARK_E)
    extra: dict[str, Any]
    if fluor:
        peak = _log_u(rng_cam, _FLUOR_PEAK_PHOTONS)
        af = _u(rng_cam, _AUTOFLUOR_FRACTION)
        stray = _u(rng_cam, _STRAY_PHOTONS)
        bleach = _u(rng_cam, _BLEACH_PER_PLANE)
        signal = np.clip(image, 0.0, None)
        ref = float(np.percentile(signal, 99.9))
        ref = ref if ref > 0 else max(float(signal.max()), 1.0)
        decay = (1.0 - bleach) ** np.arange(nz)
        haze = peak * af * np.clip(1.0 + 0.5 * low, 0.0, None)
        photons = (peak * signal / ref * decay[:, None, None] + haze[None]) * vignette + stray
        extra = {
            "peak_photons": peak,
            "autofluorescence_fraction": af,
            "stray_photons": stray,
            "bleach_per_plane": bleach,
        }
    else:
        i0_ph = _log_u(rng_cam, _BF_PHOTONS)
        grad = _u(rng_cam, _ILLUM_GRADIENT)
        gdir = _u(rng_cam, (0.0, 2 * np.pi))
        illum = (1.0 + grad * (math.cos(gdir) * xn + math.sin(gdir) * yn)) * (1.0 + 0.03 * low)
        photons = i0_ph * (illum * vignette)[None] * np.exp(np.clip(image, -6.0, 3.0))
        extra = {
            "illumination_photons": i0_ph,
            "illumination_gradient": grad,
            "condenser_sigma": optics.sigma,
        }
    electrons_mean = qe * photons + dark

    # ---- camera ----
    bits = 12 if rng_cam.random() < 0.5 else 16
    full = 2**bits - 1
    offset = float(rng_cam.integers(_OFFSET_ADU[bits][0], _OFFSET_ADU[bits][1] + 1))
    read = _u(rng_cam, _READ_NOISE_E)
    fill = _u(rng_cam, _FILL_FRACTION)
    e_max = float(np.percentile(electrons_mean, 99.99))
    gain = min(max(fill * (full - offset) / max(e_max, 1e-9), _GAIN_CLIP[0]), _GAIN_CLIP[1])
    n_hot = int(rng_cam.poisson(_u(rng_cam, _HOT_RATE) * ny * nx))
    hot_y = rng_cam.integers(0, ny, n_hot)
    hot_x = rng_cam.integers(0, nx, n_hot)
    hot_e = rng_cam.uniform(_HOT_E[0], _HOT_E[1], n_hot)
    fpn = rng_cam.random() < _FPN_PROB
    col_sd = _u(rng_cam, _FPN_COL_ADU) if fpn else 0.0
    row_sd = _u(rng_cam, _FPN_ROW_ADU) if fpn else 0.0
    pattern = (
        col_sd * rng_cam.standard_normal(nx)[None, :]
        + row_sd * rng_cam.standard_normal(ny)[:, None]
    )
    lam_e = electrons_mean.copy()
    lam_e[:, hot_y, hot_x] += hot_e[None, :]
    electrons = rng_cam.poisson(lam_e).astype(np.float64)
    electrons += read * rng_cam.standard_normal(electrons.shape)
    adu = offset + gain * electrons + pattern[None]
    raw = np.clip(np.rint(adu), 0, full).astype(np.uint16)

    meta: dict[str, Any] = {
        "generator": "widefield",
        "contrast": contrast,
        "seed": int(seed),
        "shape": (nz, ny, nx),
        "z_step": z_step,
        "depth_of_field": dof,
        "dof_planes": dof / z_step,
        "dof_formula": "wavelength*n/na**2 + n*pixel_size/na (Berek/Inoue)",
        "pixel_size": optics.pixel,
        "na": optics.na,
        "wavelength": optics.wavelength,
        "immersion": optics.medium,
        "refractive_index": optics.n,
        "spherical_aberration_waves": optics.spherical,
        "slice_spacing": ds,
        "n_slices": n_slices,
        "field_padding": (oy, ox),
        "visible_fraction": VISIBLE_FRACTION,
        "psf_core_sigma_px": core_px,
        "n_cells": sum(o.kind == "cell" for o in objects),
        "n_beads": sum(o.kind == "bead" for o in objects),
        "n_filaments": sum(o.kind == "filament" for o in objects),
        "quantum_efficiency": qe,
        "dark_electrons": dark,
        "read_noise_electrons": read,
        "gain_adu_per_electron": gain,
        "offset_adu": offset,
        "bit_depth": bits,
        "hot_pixels": n_hot,
        "fixed_pattern_adu": (col_sd, row_sd),
        "vignette": vig_strength,
        "truth": (
            "mask[z,y,x]: an object whose in-focus footprint (density blurred by a Gaussian PSF "
            f"core) is >= {VISIBLE_FRACTION:.0%} of its own peak has material "
            "[Hc-T/2, Hc+T/2] within +-depth_of_field/2 of plane z; depth: Hc of the dominant "
            "such object, NaN where the column has none"
        ),
        **extra,
    }
    return WidefieldStack(raw=raw, mask=mask, depth=depth, meta=meta)


def _local_std(img: FloatArray, size: int = 5) -> FloatArray:
    mean = ndi.uniform_filter(img, size)
    sq = ndi.uniform_filter(img * img, size)
    return np.asarray(np.sqrt(np.clip(sq - mean * mean, 0.0, None)), dtype=np.float64)


def _in_vs_away(
    sharp: FloatArray, mask: NDArray[np.bool_], away: int
) -> tuple[FloatArray, FloatArray]:
    """Sharpness at masked voxels and at the same pixel ``away`` planes off (not masked there)."""
    inside, outside = [], []
    for sign in (1, -1):
        z, y, x = np.nonzero(mask)
        zo = z + sign * away
        ok = (zo >= 0) & (zo < mask.shape[0])
        z, y, x, zo = z[ok], y[ok], x[ok], zo[ok]
        clean = ~mask[zo, y, x]
        inside.append(sharp[z[clean], y[clean], x[clean]])
        outside.append(sharp[zo[clean], y[clean], x[clean]])
    return np.concatenate(inside), np.concatenate(outside)


def _sanity(shape: tuple[int, int, int] = (20, 256, 256), away: int = 4) -> None:
    """Print shapes, truth fractions, runtimes and in-focus versus defocused sharpness."""
    print(
        f"shape {shape}; sharpness: 5x5 local std of raw (A) and of raw smoothed by a "
        f"sigma-1 px Gaussian (B), at masked voxels vs the same pixel {away} planes away"
    )
    for contrast in CONTRASTS:
        for seed in (300, 301, 302):
            t0 = time.perf_counter()
            st = widefield_stack(shape, seed, contrast)
            dt = time.perf_counter() - t0
            again = widefield_stack(shape, seed, contrast)
            same = all(
                np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
                for a, b in ((st.raw, again.raw), (st.mask, again.mask), (st.depth, again.depth))
            )
            ok_types = (
                st.raw.shape == shape
                and st.raw.dtype == np.uint16
                and st.mask.shape == shape
                and st.mask.dtype == np.bool_
                and st.depth.shape == shape[1:]
                and st.depth.dtype == np.float64
            )
            raw = st.raw.astype(np.float64)
            sharp_a = np.stack([_local_std(p) for p in raw])
            sharp_b = np.stack([_local_std(ndi.gaussian_filter(p, 1.0)) for p in raw])
            a_in, a_off = _in_vs_away(sharp_a, st.mask, away)
            b_in, b_off = _in_vs_away(sharp_b, st.mask, away)
            cols = np.isfinite(st.depth)
            peak_z = np.argmax(sharp_b, axis=0)
            near = np.abs(peak_z - st.depth / st.meta["z_step"]) <= 1.5
            m = st.meta
            print(
                f"{contrast} seed {seed}: {dt:.2f} s, shapes/dtypes ok={ok_types}, "
                f"identical rerun={same}, mask {st.mask.mean():.2%} of voxels, "
                f"depth finite in {cols.mean():.1%} of columns "
                f"(== mask.any(0): {np.array_equal(cols, st.mask.any(axis=0))})"
            )
            print(
                f"    NA {m['na']:.3f} {m['immersion']}, lambda {m['wavelength']:.3f} um, pixel "
                f"{m['pixel_size']:.3f} um, dof {m['depth_of_field']:.2f} um = "
                f"{m['dof_planes']:.2f} planes; cells/beads/filaments "
                f"{m['n_cells']}/{m['n_beads']}/{m['n_filaments']}; {m['bit_depth']}-bit, gain "
                f"{m['gain_adu_per_electron']:.2f} ADU/e-"
            )
            print(
                f"    A: in-focus {np.median(a_in):.2f} vs away {np.median(a_off):.2f} ADU "
                f"(ratio {np.median(a_in) / np.median(a_off):.2f}, in > away at "
                f"{np.mean(a_in > a_off):.0%});  B: {np.median(b_in):.2f} vs "
                f"{np.median(b_off):.2f} (ratio {np.median(b_in) / np.median(b_off):.2f}, "
                f"{np.mean(b_in > b_off):.0%});  sharpest plane (B) within 1.5 planes of depth: "
                f"{np.mean(near[cols]):.0%} of columns"
            )


if __name__ == "__main__":
    _sanity()
