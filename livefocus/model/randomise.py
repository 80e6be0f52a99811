"""Domain-randomised training stacks from two generators, each through random optics, light
and cameras, so that a net trained on them does not learn one specimen or one instrument:
:func:`random_stack` images :mod:`livefocus.sim`'s layered specimens (objects at one height
per pixel, a Gaussian defocus PSF), :func:`random_volume_stack` the volumes of
:mod:`livefocus.sim.volume` (cells with a thickness, tubes, beads, a defocus-disk PSF, phase
contrast, an 8-bit-style camera with fixed pattern).

Each layered stack draws its own:

- contrast (brightfield or fluorescence) and, for some, inverted grey levels;
- numerical aperture, wavelength and pixel size (so PSF width and depth of field), and a z
  step of about half the depth of field;
- object density and brightness (photoelectrons: the shot-noise level);
- uneven illumination (a tilted ramp times a vignette);
- a camera: bit depth 8 to 16, offset, gain, read noise, per-pixel gain (fixed pattern),
  per-frame row noise and hot pixels.

The labels are the rule's (:func:`livefocus.model.data.label_stack`), made on the stack as the
camera wrote it; the exact truth of the simulator is kept for scoring only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from livefocus.model.data import Pairs, _weak_labels, stack_pairs

__all__ = [
    "GENERATORS",
    "MAKERS",
    "RandomStack",
    "pairs_from_randomised",
    "random_stack",
    "random_volume_stack",
]

#: Probability that a stack's grey levels are inverted (dark objects become bright).
_P_INVERT = 0.2

#: Defocus-disk radius (pixels) at the edge of the volume generator's default depth of field
#: (NA 0.5, 0.3 µm pixels, ±1 µm): a randomised volume stack keeps that definition.
_DISK_AT_DOF_PX = math.tan(math.asin(0.5)) / 0.3


@dataclass(frozen=True, eq=False)
class RandomStack:
    """A domain-randomised stack: ``raw`` (Z, Y, X) camera values, ``mask`` the exact truth,
    ``z_step`` in µm and the ``parameters`` drawn (JSON-ready)."""

    raw: np.ndarray
    mask: np.ndarray
    z_step: float
    parameters: dict[str, Any]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth field in (0, 1]: a ramp in a random direction times a vignette."""
    ny, nx = shape
    y, x = np.mgrid[-1 : 1 : ny * 1j, -1 : 1 : nx * 1j]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = 1 + rng.uniform(0, 0.6) * (x * np.cos(angle) + y * np.sin(angle))
    cy, cx = rng.uniform(-0.5, 0.5, size=2)
    vignette = 1 - rng.uniform(0, 0.5) * ((x - cx) ** 2 + (y - cy) ** 2) / 2
    field = np.clip(ramp * vignette, 0.2, None)
    return np.asarray(field / field.max(), dtype=np.float32)


def random_stack(shape: Sequence[int], seed: int) -> RandomStack:
    """One domain-randomised stack of ``shape`` (Z, Y, X); the same ``seed`` gives the same
    stack.

    Examples
    --------
    >>> s = random_stack((6, 64, 64), seed=1)
    >>> s.raw.shape == s.mask.shape == (6, 64, 64)
    True
    """
    from livefocus.sim import Optics, Specimen

    nz, ny, nx = (int(v) for v in shape)
    rng = np.random.default_rng([int(seed), 7])
    contrast = "brightfield" if rng.random() < 0.5 else "fluorescence"
    optics = Optics(
        na=float(rng.uniform(0.25, 0.8)),
        wavelength=float(rng.uniform(0.45, 0.65)),
        pixel_size=float(rng.uniform(0.25, 0.8)),
    )
    dof = optics.depth_of_field_um
    z_step = float(np.clip(dof / 2 * rng.uniform(0.6, 1.5), 0.2, 5.0))
    half_span = (nz - 1) * z_step / 2
    brightness = (
        _log_uniform(rng, 200, 8000) if contrast == "brightfield" else _log_uniform(rng, 60, 3000)
    )
    spec = Specimen(
        (ny, nx),
        seed=int(rng.integers(2**31)),
        contrast=contrast,
        z_center=half_span,
        object_range=max(0.0, half_span - dof / 2),
        optics=optics,
        brightness=brightness,
        density=float(rng.uniform(0.4, 2.0)),
    )
    z_um = np.arange(nz) * z_step
    light = _illumination(rng, (ny, nx))
    electrons = np.stack([spec.render(float(z)) * light for z in z_um])
    bits = int(rng.choice([8, 10, 12, 16]))
    top = 2**bits - 1
    offset = float(rng.uniform(0, 0.1) * top)
    # the brightest expected pixel lands at 30-95 % of the range
    gain = float(rng.uniform(0.3, 0.95) * (top - offset) / max(float(electrons.max()), 1.0))
    read_noise = float(rng.uniform(0.5, 8.0))
    pixel_gain = 1 + rng.uniform(0, 0.03) * rng.standard_normal((ny, nx))
    row_sigma = float(rng.uniform(0, 1.5))
    hot = rng.random((ny, nx)) < rng.uniform(0, 3e-4)
    shot = rng.poisson(np.clip(electrons, 0, None)).astype(np.float32)
    signal = shot + read_noise * rng.standard_normal(electrons.shape)
    signal += row_sigma * read_noise * rng.standard_normal((nz, ny, 1))
    adu = offset + gain * pixel_gain * signal
    adu[:, hot] = top
    raw = np.clip(np.rint(adu), 0, top)
    invert = bool(rng.random() < _P_INVERT)
    if invert:
        raw = top - raw
    mask = np.stack([spec.truth_mask(float(z)) for z in z_um])
    parameters = {
        "seed": int(seed),
        "contrast": contrast,
        "inverted": invert,
        "na": optics.na,
        "wavelength": optics.wavelength,
        "pixel_size": optics.pixel_size,
        "depth_of_field": dof,
        "z_step": z_step,
        "brightness": brightness,
        "density": spec.density,
        "bit_depth": bits,
        "offset": offset,
        "gain": gain,
        "read_noise": read_noise,
        "row_noise": row_sigma,
        "hot_pixels": int(hot.sum()),
    }
    dtype = np.uint8 if bits == 8 else np.uint16
    return RandomStack(raw.astype(dtype), mask, z_step, parameters)


def random_volume_stack(shape: Sequence[int], seed: int) -> RandomStack:
    """One domain-randomised stack of :mod:`livefocus.sim.volume`'s volumes, with its exact
    truth; the same ``seed`` gives the same stack.

    It draws the contrast, NA (0.3-0.75), pixel size (0.15-0.6 µm), so the PSF's core and
    defocus disk; the depth of field that follows (where the disk reaches the radius it has
    at the edge of the generator's default), a z step of 0.3-0.75 of it, the photon budget
    (0.2-5 times the default), the bit depth (8-16) and, for some, inverted grey levels.

    Examples
    --------
    >>> s = random_volume_stack((6, 64, 64), seed=1)
    >>> s.raw.shape == s.mask.shape == (6, 64, 64)
    True
    """
    from livefocus.sim.volume import phantom_stack

    nz, ny, nx = (int(v) for v in shape)
    rng = np.random.default_rng([int(seed), 8])
    contrast = "brightfield" if rng.random() < 0.5 else "fluorescence"
    na = float(rng.uniform(0.3, 0.75))
    pixel = float(rng.uniform(0.15, 0.6))
    dof = 2 * _DISK_AT_DOF_PX * pixel / math.tan(math.asin(na))
    z_step = float(dof / 2 * rng.uniform(0.6, 1.5))
    brightness = _log_uniform(rng, 0.2, 5.0)
    bits = int(rng.choice([8, 10, 12, 16]))
    ph = phantom_stack(
        (nz, ny, nx),
        seed=int(rng.integers(2**31)),
        contrast=contrast,
        z_step=z_step,
        pixel_um=pixel,
        na=na,
        depth_of_field=dof,
        brightness=brightness,
        bits=bits,
    )
    raw = ph.raw
    invert = bool(rng.random() < _P_INVERT)
    if invert:
        raw = (2**bits - 1 - raw.astype(np.int64)).astype(raw.dtype)
    parameters = {
        "seed": int(seed),
        "generator": "volumes",
        "contrast": contrast,
        "inverted": invert,
        "na": na,
        "pixel_size": pixel,
        "depth_of_field": dof,
        "z_step": z_step,
        "brightness": brightness,
        "bit_depth": bits,
    }
    return RandomStack(raw, ph.mask, z_step, parameters)


#: The training generators by name: ``"layers"`` (:func:`random_stack`), ``"volumes"``
#: (:func:`random_volume_stack`).
MAKERS: dict[str, Callable[[Sequence[int], int], RandomStack]] = {
    "layers": random_stack,
    "volumes": random_volume_stack,
}
#: Their names.
GENERATORS: tuple[str, ...] = tuple(MAKERS)


def pairs_from_randomised(
    n_stacks: int,
    *,
    shape: Sequence[int] = (12, 256, 256),
    seed: int = 0,
    target: str = "weak",
    labels: str = "depth",
    augment: bool = False,
    context: int = 1,
    generators: Sequence[str] = ("layers",),
) -> Pairs:
    """:class:`~livefocus.model.data.Pairs` from ``n_stacks`` domain-randomised stacks
    (seeds ``seed .. seed + n_stacks - 1``), as :func:`~livefocus.model.data.
    pairs_from_simulation` makes them from plain simulated ones: ``target`` ``"weak"`` (labels
    of kind ``labels`` at each stack's own z step) or ``"truth"``; ``augment`` labels the 8
    flips and rotations too; ``context``: planes per input (see
    :func:`~livefocus.model.data.stack_pairs`); ``generators``: stack ``i`` comes from
    ``generators[i % len(generators)]`` (see :data:`GENERATORS`)."""
    if target not in ("weak", "truth"):
        raise ValueError(f"target must be 'weak' or 'truth', got {target!r}")
    if not generators or any(g not in GENERATORS for g in generators):
        raise ValueError(f"generators must be a non-empty list of {GENERATORS}, got {generators!r}")
    parts = []
    for i in range(n_stacks):
        st = MAKERS[generators[i % len(generators)]](shape, seed + i)
        y, variants = st.mask, None
        if target == "weak":
            y, variants = _weak_labels(st.raw, labels, st.z_step, augment)
        parts.append(stack_pairs(st.raw, y, st.mask, variants, context=context))
    return Pairs.concat(parts)
