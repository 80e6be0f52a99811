"""Widefield image formation: defocus PSF, layered rendering and the camera model.

A plane at focus ``z_f`` is the sum over the specimen's layers, each convolved with a defocus
PSF whose width grows with the layer's distance from focus. The Gaussian model is computed in
the Fourier domain from per-layer spectra that are built once, so a plane costs one inverse FFT
plus a sum over the layers restricted to the frequencies that the layer's blur lets through.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

from livefocus.focus._validate import check_positive_number

__all__ = ["PSF_MODELS", "Camera", "LayerRenderer", "Optics"]

#: Defocus PSF models: the built-in Gaussian, or psfmodels' vectorial and scalar PSFs.
PSF_MODELS: tuple[str, ...] = ("gaussian", "vectorial", "scalar")

#: Relative OTF amplitude below which a frequency is dropped from a layer's sum.
_OTF_FLOOR = 1e-4


@dataclass(frozen=True)
class Optics:
    """Widefield optics: numerical aperture, wavelength, immersion and sampling.

    Parameters
    ----------
    na : float
        Numerical aperture of the objective (below ``immersion_index``).
    wavelength : float
        Wavelength in µm.
    immersion_index : float
        Refractive index of the immersion medium.
    pixel_size : float
        Camera pixel size in the specimen plane, in µm.
    depth_of_field : float, optional
        Depth of field in µm; by default ``λ·n/NA² + n·pixel_size/NA`` (the wave-optical term
        plus the term of a detector whose pixels are ``pixel_size`` in the specimen).
    psf : {"gaussian", "vectorial", "scalar"}
        Defocus PSF: the Gaussian model (:meth:`sigma_px`, fast, the default) or a physical
        PSF from the ``psfmodels`` package (Aguet et al. vectorial, or Gibson-Lanni scalar;
        ``pip install psfmodels``), computed for each defocus and cached.

    Examples
    --------
    >>> round(Optics().depth_of_field_um, 2)
    3.83
    """

    na: float = 0.45
    wavelength: float = 0.55
    immersion_index: float = 1.0
    pixel_size: float = 0.5
    depth_of_field: float | None = None
    psf: str = "gaussian"

    def __post_init__(self) -> None:
        check_positive_number(self.na, "na")
        check_positive_number(self.wavelength, "wavelength")
        check_positive_number(self.immersion_index, "immersion_index")
        check_positive_number(self.pixel_size, "pixel_size")
        if self.na >= self.immersion_index:
            raise ValueError(
                f"na must be below immersion_index ({self.immersion_index}), got {self.na}"
            )
        if self.depth_of_field is not None:
            check_positive_number(self.depth_of_field, "depth_of_field")
        if self.psf not in PSF_MODELS:
            raise ValueError(f"psf must be one of {PSF_MODELS}, got {self.psf!r}")

    @property
    def depth_of_field_um(self) -> float:
        """Depth of field in µm (given, or from the optics)."""
        if self.depth_of_field is not None:
            return float(self.depth_of_field)
        n, na = self.immersion_index, self.na
        return self.wavelength * n / na**2 + n * self.pixel_size / na

    @property
    def sigma_focus_px(self) -> float:
        """Standard deviation of the in-focus PSF (Gaussian fit to the Airy disk), in pixels."""
        return 0.21 * self.wavelength / self.na / self.pixel_size

    def sigma_px(self, dz: float | np.ndarray) -> np.ndarray:
        """Standard deviation in pixels of the Gaussian defocus PSF at defocus ``dz`` (µm).

        Far from focus the blur is geometric: a disk of radius ``|dz|·tan(asin(NA/n))``, whose
        second moment a Gaussian of half that radius matches. Near focus the wave-optical PSF
        hardly changes within its focal depth ``δ = λ·n / (2·NA²)``; the defocus term
        ``g·(sqrt(dz² + δ²) − δ)`` (``g`` the geometric slope) is flat there (second order in
        ``dz``) and geometric beyond (``g·(|dz| − δ)``). It is added in quadrature to the
        in-focus width.
        """
        n, na = self.immersion_index, self.na
        slope = math.tan(math.asin(na / n)) / 2.0 / self.pixel_size
        delta = self.wavelength * n / (2.0 * na**2)
        dz_arr = np.asarray(dz, dtype=np.float64)
        defocus = slope * (np.sqrt(dz_arr**2 + delta**2) - delta)
        return np.sqrt(self.sigma_focus_px**2 + defocus**2)


@dataclass(frozen=True)
class Camera:
    """A scientific camera: gain, offset, shot and read noise, bit depth.

    Parameters
    ----------
    gain : float
        ADU per photoelectron.
    offset : float
        Dark level in ADU.
    read_noise : float
        Read noise in electrons (rms).
    bit_depth : int
        Output bit depth, 8 to 16; values are clipped to ``2**bit_depth - 1``.

    Examples
    --------
    >>> cam = Camera(read_noise=0.0)
    >>> cam.expose(np.full((2, 2), 50.0), np.random.default_rng(0)).dtype
    dtype('uint16')
    """

    gain: float = 1.0
    offset: float = 100.0
    read_noise: float = 2.0
    bit_depth: int = 12

    def __post_init__(self) -> None:
        check_positive_number(self.gain, "gain")
        if not math.isfinite(self.offset) or self.offset < 0:
            raise ValueError(f"offset must be a non-negative number, got {self.offset!r}")
        if not math.isfinite(self.read_noise) or self.read_noise < 0:
            raise ValueError(f"read_noise must be a non-negative number, got {self.read_noise!r}")
        if not isinstance(self.bit_depth, int) or not 8 <= self.bit_depth <= 16:
            raise ValueError(f"bit_depth must be an int from 8 to 16, got {self.bit_depth!r}")

    @property
    def max_value(self) -> int:
        """Largest value the camera can output."""
        return int(2**self.bit_depth - 1)

    def expected_adu(self, electrons: np.ndarray) -> np.ndarray:
        """Noise-free camera value (float32, unclipped) for a mean photoelectron image."""
        return (self.offset + self.gain * np.asarray(electrons, dtype=np.float32)).astype(
            np.float32, copy=False
        )

    def expose(
        self, electrons: np.ndarray, rng: np.random.Generator, *, exact: bool = True
    ) -> np.ndarray:
        """One noisy uint16 frame from a mean photoelectron image.

        Parameters
        ----------
        electrons : ndarray
            Mean photoelectrons per pixel (non-negative).
        rng : numpy.random.Generator
            Source of the noise.
        exact : bool
            Poisson shot noise when True; when False, a Gaussian of the same variance
            (shot plus read noise in one draw), about four times faster and indistinguishable
            above a few tens of electrons: the live camera uses it.
        """
        if not exact:
            return self.expose_moments(self.moments(electrons), rng)
        mean = np.clip(np.asarray(electrons, dtype=np.float32), 0.0, None)
        signal = rng.poisson(mean).astype(np.float32)
        if self.read_noise:
            signal += np.float32(self.read_noise) * rng.standard_normal(
                mean.shape, dtype=np.float32
            )
        adu = np.float32(self.offset) + np.float32(self.gain) * signal
        np.clip(adu, 0, self.max_value, out=adu)
        out: np.ndarray = np.rint(adu).astype(np.uint16)
        return out

    def moments(self, electrons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation in ADU of the Gaussian noise model, float32.

        Depends only on the noise-free image: a live camera computes it once per plane and
        draws fresh noise with :meth:`expose_moments` for every frame.
        """
        mean = np.clip(np.asarray(electrons, dtype=np.float32), 0.0, None)
        std = np.sqrt(mean + np.float32(self.read_noise**2))
        std *= np.float32(self.gain)
        adu = np.float32(self.offset) + np.float32(self.gain) * mean
        return adu, std

    def expose_moments(
        self,
        moments: tuple[np.ndarray, np.ndarray],
        rng: np.random.Generator,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """One uint16 frame of the Gaussian noise model from :meth:`moments` (into ``out``)."""
        mean, std = moments
        frame = rng.standard_normal(mean.shape, dtype=np.float32)
        frame *= std
        frame += mean
        # Round half up by truncation after +0.5, inside [0, max].
        frame += np.float32(0.5)
        np.clip(frame, 0.0, self.max_value + 0.5, out=frame)
        if out is None:
            out = np.empty(mean.shape, dtype=np.uint16)
        np.copyto(out, frame, casting="unsafe")
        return out


class LayerRenderer:
    """Sum of layers, each blurred by a Gaussian whose width depends on its distance from focus.

    The layers' spectra are computed once; a plane multiplies each spectrum by its separable
    Gaussian OTF only over the frequencies where that OTF is above ``1e-4`` (a far-defocused
    layer keeps a small low-frequency corner), then takes one inverse FFT. Convolution is
    circular: give the layers a margin (``crop``) at least as wide as the blur that matters.

    Parameters
    ----------
    layers : ndarray
        Float (L, H, W) layer images.
    heights : ndarray
        (L,) height of each layer in µm.
    optics : Optics
        PSF model.
    crop : tuple of slice
        Region of the (H, W) field returned by :meth:`render`.
    """

    def __init__(
        self,
        layers: np.ndarray,
        heights: np.ndarray,
        optics: Optics,
        crop: tuple[slice, slice],
    ) -> None:
        layers = np.asarray(layers, dtype=np.float32)
        if layers.ndim != 3 or layers.shape[0] != len(heights):
            raise ValueError(f"layers must be (L, H, W) with L = len(heights), got {layers.shape}")
        self.shape: tuple[int, int] = (int(layers.shape[1]), int(layers.shape[2]))
        self.heights = np.asarray(heights, dtype=np.float64)
        self.optics = optics
        self.crop = crop
        self.spectra = scipy.fft.rfft2(layers, workers=1).astype(np.complex64)
        h, w = self.shape
        self._fy2 = (scipy.fft.fftfreq(h) ** 2).astype(np.float32)
        self._fx2 = (scipy.fft.rfftfreq(w) ** 2).astype(np.float32)
        self.total_spectrum = self.spectra.sum(axis=0)
        self._otfs: OrderedDict[float, np.ndarray] = OrderedDict()
        self._otf_lock = threading.Lock()
        self._psfmodels: Any = None
        if optics.psf != "gaussian":
            try:
                self._psfmodels = importlib.import_module("psfmodels")
            except ImportError:
                raise ImportError(
                    f"psf={optics.psf!r} needs the psfmodels package: pip install psfmodels"
                ) from None

    def _cutoff(self, sigma: float, n: int) -> int:
        # exp(-2 pi^2 sigma^2 f^2) = floor  ->  f = sqrt(ln(1/floor) / 2) / (pi sigma)
        f_cut = math.sqrt(math.log(1.0 / _OTF_FLOOR) / 2.0) / (math.pi * max(sigma, 1e-6))
        return min(n // 2, math.ceil(f_cut * n))

    def render(self, z: float, select: np.ndarray | None = None) -> np.ndarray:
        """The cropped float32 image with focus at height ``z`` (µm).

        ``select`` (bool, one per layer) restricts the sum to some layers: the layers' shares
        of the image add up to the whole.
        """
        if self.optics.psf != "gaussian":
            return self._render_physical(z, select)
        h, w = self.shape
        acc = np.zeros((h, w // 2 + 1), dtype=np.complex64)
        sigmas = self.optics.sigma_px(self.heights - z)
        chosen = np.ones(len(sigmas), bool) if select is None else np.asarray(select, bool)
        for spectrum, sigma, use in zip(self.spectra, sigmas, chosen, strict=True):
            if not use:
                continue
            k = 2.0 * math.pi**2 * float(sigma) ** 2
            ky = self._cutoff(float(sigma), h)
            kx = min(w // 2, self._cutoff(float(sigma), w))
            gx = np.exp(-k * self._fx2[: kx + 1])
            if 2 * ky + 1 >= h:
                gy = np.exp(-k * self._fy2)
                acc[:, : kx + 1] += spectrum[:, : kx + 1] * (gy[:, None] * gx[None, :])
                continue
            gy_lo = np.exp(-k * self._fy2[: ky + 1])
            acc[: ky + 1, : kx + 1] += spectrum[: ky + 1, : kx + 1] * (gy_lo[:, None] * gx)
            if ky:
                gy_hi = np.exp(-k * self._fy2[h - ky :])
                acc[h - ky :, : kx + 1] += spectrum[h - ky :, : kx + 1] * (gy_hi[:, None] * gx)
        image = scipy.fft.irfft2(acc, s=self.shape, workers=1)
        return np.ascontiguousarray(image[self.crop], dtype=np.float32)

    def _render_physical(self, z: float, select: np.ndarray | None) -> np.ndarray:
        chosen = np.ones(len(self.heights), bool) if select is None else np.asarray(select, bool)
        dz = np.round(self.heights - z, 3)
        otfs = self.otfs(dz[chosen])
        acc = np.zeros(self.spectra.shape[1:], dtype=np.complex64)
        for spectrum, d in zip(self.spectra[chosen], dz[chosen], strict=True):
            acc += spectrum * otfs[float(d)]
        image = scipy.fft.irfft2(acc, s=self.shape, workers=1)
        return np.ascontiguousarray(image[self.crop], dtype=np.float32)

    def otfs(self, defocus: np.ndarray) -> dict[float, np.ndarray]:
        """OTFs (rfft2 of the field-sized, centred, unit-sum PSF) of a physical PSF by defocus.

        Computed with ``psfmodels`` for the defocus values not cached yet (the last 128 are
        kept), all in one call.
        """
        keys = [float(d) for d in dict.fromkeys(np.round(np.asarray(defocus, float), 3))]
        with self._otf_lock:
            missing = [d for d in keys if d not in self._otfs]
            if missing:
                self._compute_otfs(missing)
            found = {d: self._otfs[d] for d in keys}
            for d in keys:
                self._otfs.move_to_end(d)
            while len(self._otfs) > max(128, len(keys)):
                self._otfs.popitem(last=False)
        return found

    def _compute_otfs(self, defocus: list[float]) -> None:
        h, w = self.shape
        o = self.optics
        # Wide enough for the defocus disk plus the Airy tails, odd, at most the field.
        reach = float(np.max(o.sigma_px(np.asarray(defocus)))) * 5 + 16
        nx = min(2 * math.ceil(reach) + 1, (min(h, w) - 1) | 1)
        stack = self._psfmodels.make_psf(
            np.asarray(defocus, dtype=np.float64),
            nx,
            dxy=o.pixel_size,
            NA=o.na,
            wvl=o.wavelength,
            ns=o.immersion_index,
            ni=o.immersion_index,
            ni0=o.immersion_index,
            model=o.psf,
        )
        c = nx // 2
        for d, kernel in zip(defocus, np.asarray(stack), strict=True):
            field = np.zeros(self.shape, dtype=np.float64)
            field[:nx, :nx] = kernel / kernel.sum()
            field = np.roll(field, (-c, -c), axis=(0, 1))
            self._otfs[d] = scipy.fft.rfft2(field, workers=1).astype(np.complex64)

    def render_in_focus(self) -> np.ndarray:
        """Every layer at its own focus (the all-in-focus image), cropped, float32."""
        if self.optics.psf != "gaussian":
            otf = self.otfs(np.zeros(1))[0.0]
            image = scipy.fft.irfft2(self.total_spectrum * otf, s=self.shape, workers=1)
            return np.ascontiguousarray(image[self.crop], dtype=np.float32)
        sigma = self.optics.sigma_focus_px
        k = 2.0 * math.pi**2 * sigma**2
        otf = np.exp(-k * (self._fy2[:, None] + self._fx2[None, :]))
        image = scipy.fft.irfft2(self.total_spectrum * otf, s=self.shape, workers=1)
        return np.ascontiguousarray(image[self.crop], dtype=np.float32)
