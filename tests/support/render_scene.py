"""Synthetic thin-lens focus stacks of opaque 3-D scenes, with exact depth truth.

This module is a *validation generator*: it renders a focus bracket (a camera
or microscope stepping its focal plane through a scene seen from above) and
returns, next to the 8/12/16-bit images, the per-pixel truth that a
depth-from-focus method should recover.  Everything is drawn from
``np.random.default_rng(seed)``, so ``render_stack(shape, seed, bits)`` is
deterministic.

Units
-----
Depth is measured in *planes*: plane ``z`` (``z = 0 .. Z-1``) of the stack is
focused at depth ``z``; the focal plane steps *up* (towards the camera) by
exactly one unit per plane, so ``z_step == 1.0``.  A larger depth is nearer to
the camera and occludes a smaller one.  Lateral units are pixels.

Scene
-----
The visible surface is a height field ``h(y, x)`` (in planes), built in this
order from pieces drawn per seed:

1. a base plane with a random tilt and gentle quadratic curvature plus a
   smooth, landscape-like low-frequency relief;
2. one to three plateaus (rotated rectangles, random polygons or discs) whose
   flat, slightly tilted tops sit a few planes above the ground they cover
   (vertical walls: sharp depth discontinuities);
3. one to four smooth domes or dips (Gaussian, raised-cosine or spherical-cap
   profile) added to the surface;
4. one to three free-standing foreground objects (discs or rotated
   rectangles) whose nearly flat tops lie well above the highest point under
   their footprint, so that they occlude the background.  Each object is
   either *floating* (70 %: a thin plate held above the ground, which
   continues, hidden, underneath it) or *solid* (30 %: a block whose walls
   come down to the ground).

Plateaus and solid objects are blocks: the ground under them does not exist.
Floating objects are separate surface sheets above a complete ground sheet,
so the lens can look past their defocused rims at the hidden ground, as it
does in a real camera.

The field is then mapped affinely so that, over the image, it spans
``[lo, hi]`` with ``lo`` and ``Z-1-hi`` margins of a few planes (scaled down
for short stacks); on 30 % of seeds ``lo`` is slightly negative so that a
small part of the scene lies just below plane 0.  The scene is generated on a
grid larger than the image by the largest blur radius so that out-of-view
surface blurs into the borders as in a real camera.

Albedo (reflectance in ``[0.02, 0.98]``) is painted per region: Voronoi cells
of the ground and one region per plateau and foreground object.  Each region
receives one texture: 1/f^beta ("natural image") noise, fine stripes, random
dots, machined grooves (concentric turning marks or parallel milling marks with
per-groove depth jitter) or smooth paint (nearly textureless; at least one
ground cell per seed).  Texture contrast (standard deviation) is drawn
log-uniformly per region, so some regions are weak.  A faint 1/f "grime"
layer is added everywhere.  The scene is lit by a slow linear illumination
gradient.

Optics
------
Thin lens: a surface point at depth ``h`` imaged with focus at plane ``z``
has a circle of confusion of diameter ``D = kappa * |h - z|`` pixels
(``kappa`` drawn per seed).  The point-spread function on the pixel grid is

    PSF = [(1 - g) * pillbox(D) + g * Gauss(sigma = D / 4)] (*) G0,

i.e. a uniform disc of diameter ``D`` averaged over each pixel's area
(optionally mixed with a little pixel-integrated Gaussian of the same second
moment), convolved with ``G0``, a Gaussian of ``sigma_focus`` px integrated
over the pixel (diffraction, aberrations and the sensor aperture; its exact,
periodised transfer function is used, so nothing rings).  The kernel is
compact, non-negative and sums to one; its variance per axis is about
``D**2/16 + sigma_focus**2 + 1/12`` px^2.  Convolutions are done with real
FFTs on zero-padded windows that are large enough never to wrap.

Rendering is by layered compositing.  The height field is cut into layers
``LAYER_STEP = 0.25`` plane thick; each pixel is split linearly between the two
layers whose centres bracket its depth (so the effective focus of every pixel
is its exact depth, not a staircase).  For each focal plane every layer's
coverage ``alpha`` and premultiplied radiance ``alpha * L`` are blurred with
the PSF of that layer's own defocus, and the layers are composited front to
back:

    C += T * blur(alpha L),   A += T * blur(alpha),

where the transmittance ``T`` is the product of ``1 - blur(alpha)`` over the
layers at least ``OCCLUSION_GAP = 1`` plane in front ("over" operator).
Layers closer than that gap add without occluding each other, which is what a
smooth height field does physically (no self-occlusion) and avoids dark seams
between adjacent layers.  The image is ``C / A``.  For floating objects ``A``
is 1 (the hidden ground is there to be seen), so the normalisation only acts
next to blocks, where the rays that would reach ground under the block hit
its wall instead; those rays take the colour of the visible neighbourhood,
which removes the dark seams a plain "over" would leave.  Consequently a
defocused foreground object's blurred edge spills over (and partly hides) a
sharp background, the ground shows through the blurred rim of a defocused
floating object, and a defocused background is cut sharply by an in-focus
object (and, for a block, by its in-focus foot).

Camera
------
The composited radiance is multiplied by a mild radial vignetting, an
exposure scale and a per-plane exposure flicker (about 1 %, clipped to
+-2 %).  Shot noise is Poisson with ``photons_mid_grey`` photons at radiance
0.5 of full scale; Gaussian read noise is added (given in 8-bit DN and scaled
with the bit depth); the result is rounded and clipped to ``[0, 2**bits - 1]``
(``uint8`` for ``bits <= 8``, ``uint16`` otherwise).  Optional focus breathing
(keyword ``breathing``, the total fractional magnification change over the
stack; default 0, i.e. off) rescales each plane about the image centre, with
magnification 1 at the middle plane.

Truth
-----
``depth``
    float32 ``(Y, X)``: the height (in planes) of the visible, front-most
    surface at each pixel centre, taken from the very height field that is
    rendered -- the plane in which that pixel is in focus.  With breathing, it
    refers to the geometry of the middle plane.
``textured``
    bool ``(Y, X)``: the standard deviation of the albedo over the 5 x 5
    window centred on the pixel is at least ``TEXTURE_STD_THRESHOLD = 0.015``
    (albedo of the visible surface, reflectance in ``[0, 1]``, before
    illumination; 0.015 is about 3-4 DN at 8 bits).  Albedo steps between
    regions count as texture.  Whether the texture survives the noise of a
    given seed is not taken into account.
``edge``
    bool ``(Y, X)``: within ``EDGE_RADIUS_PX = 3`` pixels (Euclidean) of a
    depth discontinuity, i.e. of a pair of 4-neighbouring pixels whose depths
    differ by more than ``EDGE_JUMP_PLANES = 1`` plane (this includes
    near-vertical flanks, such as the rim of a spherical cap).  Note that the
    optical spill of a defocused occluder reaches its blur radius
    (``kappa * |depth difference| / 2``), which can be wider than this band.

Both masks are computed on the scene grid that includes the out-of-view
margin, so they are not affected by the image border.

``meta`` holds every drawn parameter (JSON-serialisable).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage, special

__all__ = [
    "EDGE_JUMP_PLANES",
    "EDGE_RADIUS_PX",
    "LAYER_STEP",
    "OCCLUSION_GAP",
    "TEXTURE_STD_THRESHOLD",
    "TEXTURE_WINDOW",
    "RenderedStack",
    "render_stack",
]

LAYER_STEP: float = 0.25
OCCLUSION_GAP: float = 1.0
TEXTURE_WINDOW: int = 5
TEXTURE_STD_THRESHOLD: float = 0.015
EDGE_JUMP_PLANES: float = 1.0
EDGE_RADIUS_PX: float = 3.0

_SPECTRUM_BUDGET_BYTES: int = 256 * 2**20
_OTF_BUDGET_BYTES: int = 96 * 2**20
_GRID_CACHE_SIZE: int = 48


@dataclass(frozen=True)
class RenderedStack:
    """A rendered focus stack and its truth (see the module docstring).

    ``raw`` is ``(Z, Y, X)`` ``uint8`` (``uint16`` when ``bits > 8``), plane 0
    first; ``depth`` is float32 ``(Y, X)`` in planes; ``textured`` and
    ``edge`` are bool ``(Y, X)``; ``z_step`` is 1.0; ``meta`` holds every drawn
    parameter and is JSON-serialisable.
    """

    raw: np.ndarray
    depth: np.ndarray
    textured: np.ndarray
    edge: np.ndarray
    z_step: float
    meta: dict[str, Any]


# --------------------------------------------------------------------------
# random helpers
# --------------------------------------------------------------------------


def _uni(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _log_uni(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _choice(rng: np.random.Generator, options: list[str], probs: list[float]) -> str:
    p = np.asarray(probs, dtype=np.float64)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


# --------------------------------------------------------------------------
# parameter drawing
# --------------------------------------------------------------------------


def _draw_optics(rng: np.random.Generator) -> dict[str, float]:
    return {
        "coc_px_per_plane": _uni(rng, 0.8, 2.5),
        "sigma_focus_px": _uni(rng, 0.5, 1.0),
        "gauss_fraction": _uni(rng, 0.0, 0.3),
    }


def _draw_depth_range(rng: np.random.Generator, nz: int) -> dict[str, Any]:
    scale = min(1.0, (nz - 1) / 30.0)
    margin_lo = _uni(rng, 2.0, 4.0) * scale
    margin_hi = _uni(rng, 2.0, 4.0) * scale
    below = bool(rng.random() < 0.3)
    below_by = _uni(rng, 0.3, 1.0)
    if below:
        margin_lo = -below_by * max(scale, 0.25)
    lo = margin_lo
    hi = (nz - 1) - margin_hi
    return {"lo": float(lo), "hi": float(hi), "part_below_plane0": below}


def _draw_outline(
    rng: np.random.Generator,
    ny: int,
    nx: int,
    size_lo: float,
    size_hi: float,
    kinds: list[str],
    inset: float,
) -> dict[str, Any]:
    s = 0.5 * min(ny, nx)
    kind = kinds[int(rng.integers(len(kinds)))]
    out: dict[str, Any] = {
        "kind": kind,
        "cy": _uni(rng, inset, 1.0 - inset) * (ny - 1),
        "cx": _uni(rng, inset, 1.0 - inset) * (nx - 1),
        "size": _uni(rng, size_lo, size_hi) * s,
        "angle": _uni(rng, 0.0, math.pi),
        "aspect": _uni(rng, 0.45, 1.0),
    }
    nv = int(rng.integers(5, 9))
    ang = np.sort(rng.uniform(0.0, 2.0 * math.pi, nv))
    rad = rng.uniform(0.55, 1.0, nv)
    if kind == "polygon":
        out["vertices"] = [
            [
                float(out["cy"] + out["size"] * r * math.sin(a)),
                float(out["cx"] + out["size"] * r * math.cos(a)),
            ]
            for a, r in zip(ang, rad, strict=True)
        ]
    return out


def _draw_texture(rng: np.random.Generator, kind: str | None = None) -> dict[str, Any]:
    if kind is None:
        kind = _choice(
            rng,
            ["pink", "stripes", "dots", "grooves", "flat"],
            [0.30, 0.15, 0.15, 0.15, 0.25],
        )
    tex: dict[str, Any] = {
        "kind": kind,
        "mean": _uni(rng, 0.15, 0.75),
        "contrast": _log_uni(rng, 0.01, 0.15),
        "beta": _uni(rng, 0.7, 1.3),
        "period": _uni(rng, 3.0, 9.0),
        "angle": _uni(rng, 0.0, math.pi),
        "sharpness": _uni(rng, 0.5, 3.0),
        "spacing": _uni(rng, 4.0, 10.0),
        "dot_radius": _uni(rng, 0.15, 0.3),
        "polarity": float(rng.choice([-1.0, 1.0])),
        "layout": "concentric" if rng.random() < 0.5 else "parallel",
        "groove_period": _uni(rng, 3.0, 12.0),
        "centre_y": _uni(rng, -0.5, 1.5),
        "centre_x": _uni(rng, -0.5, 1.5),
        "paint_variation": _uni(rng, 0.0, 0.01),
    }
    if kind == "flat":
        tex["contrast"] = 0.0
    return tex


def _draw_params(rng: np.random.Generator, nz: int, ny: int, nx: int) -> dict[str, Any]:
    p: dict[str, Any] = {}
    p["optics"] = _draw_optics(rng)
    p["depth_range"] = _draw_depth_range(rng, nz)
    p["base"] = {
        "tilt_x": _uni(rng, -0.3, 0.3),
        "tilt_y": _uni(rng, -0.3, 0.3),
        "curvature": _uni(rng, -0.2, 0.2),
        "relief_amp": _uni(rng, 0.0, 0.15),
        "relief_sigma": _uni(rng, 0.15, 0.5),
    }
    plateaus = []
    for _ in range(int(rng.integers(1, 4))):
        pl = _draw_outline(rng, ny, nx, 0.15, 0.45, ["rect", "polygon", "disc"], 0.1)
        pl["step"] = _uni(rng, 0.15, 0.35)
        pl["top_tilt_y"] = _uni(rng, -0.05, 0.05)
        pl["top_tilt_x"] = _uni(rng, -0.05, 0.05)
        plateaus.append(pl)
    p["plateaus"] = plateaus
    domes = []
    for _ in range(int(rng.integers(1, 5))):
        domes.append(
            {
                "cy": _uni(rng, 0.0, 1.0) * (ny - 1),
                "cx": _uni(rng, 0.0, 1.0) * (nx - 1),
                "radius": _uni(rng, 0.08, 0.3) * 0.5 * min(ny, nx),
                "amp": _uni(rng, 0.08, 0.3) * (-1.0 if rng.random() < 0.25 else 1.0),
                "profile": _choice(rng, ["gauss", "cosine", "cap"], [1.0, 1.0, 1.0]),
            }
        )
    p["domes"] = domes
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        ob = _draw_outline(rng, ny, nx, 0.08, 0.2, ["disc", "rect"], 0.2)
        ob["step"] = _uni(rng, 0.2, 0.45)
        ob["top_tilt_y"] = _uni(rng, -0.03, 0.03)
        ob["top_tilt_x"] = _uni(rng, -0.03, 0.03)
        ob["support"] = "floating" if rng.random() < 0.7 else "solid"
        objects.append(ob)
    p["objects"] = objects
    n_cells = int(rng.integers(5, 11))
    p["cells"] = [
        [_uni(rng, -0.05, 1.05) * (ny - 1), _uni(rng, -0.05, 1.05) * (nx - 1)]
        for _ in range(n_cells)
    ]
    cell_tex = [_draw_texture(rng) for _ in range(n_cells)]
    if not any(t["kind"] == "flat" for t in cell_tex):
        j = int(rng.integers(n_cells))
        cell_tex[j] = _draw_texture(rng, "flat")
    p["cell_textures"] = cell_tex
    p["plateau_textures"] = [_draw_texture(rng) for _ in plateaus]
    p["object_textures"] = [_draw_texture(rng) for _ in objects]
    p["grime_std"] = _uni(rng, 0.002, 0.006)
    p["lighting"] = {
        "gradient_amp": _uni(rng, 0.0, 0.08),
        "gradient_angle": _uni(rng, 0.0, 2.0 * math.pi),
        "vignetting": _uni(rng, 0.05, 0.2),
        "exposure": _uni(rng, 0.8, 0.95),
        "flicker_std": _uni(rng, 0.004, 0.01),
    }
    flick = np.clip(rng.normal(0.0, p["lighting"]["flicker_std"], nz), -0.02, 0.02)
    p["lighting"]["flicker"] = [float(v) for v in flick]
    p["sensor"] = {
        "photons_mid_grey": _log_uni(rng, 200.0, 5000.0),
        "read_noise_dn8": _uni(rng, 0.3, 1.5),
    }
    return p


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------


def _outline_mask(o: dict[str, Any], yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    dy = yy - o["cy"]
    dx = xx - o["cx"]
    if o["kind"] == "disc":
        return np.asarray(dy * dy + dx * dx <= o["size"] ** 2)
    if o["kind"] == "rect":
        c, s = math.cos(o["angle"]), math.sin(o["angle"])
        u = c * dx + s * dy
        v = -s * dx + c * dy
        return np.asarray((np.abs(u) <= o["size"]) & (np.abs(v) <= o["size"] * o["aspect"]))
    return _polygon_mask(o["vertices"], yy, xx)


def _polygon_mask(vertices: list[list[float]], yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    inside = np.zeros(yy.shape, dtype=bool)
    n = len(vertices)
    for i in range(n):
        y1, x1 = vertices[i]
        y2, x2 = vertices[(i + 1) % n]
        if y1 == y2:
            continue
        crosses = (y1 > yy) != (y2 > yy)
        x_at = (x2 - x1) * (yy - y1) / (y2 - y1) + x1
        inside ^= crosses & (xx < x_at)
    return inside


def _gauss_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """White noise low-passed by a Gaussian of ``sigma`` px, unit std."""
    white = rng.standard_normal(shape)
    fy = sfft.fftfreq(shape[0])[:, None]
    fx = sfft.rfftfreq(shape[1])[None, :]
    g = np.exp(-2.0 * math.pi**2 * sigma**2 * (fy**2 + fx**2))
    out = sfft.irfft2(sfft.rfft2(white) * g, s=shape)
    return np.asarray(out / max(float(out.std()), 1e-12))


def _pink_field(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Noise with amplitude spectrum 1/f**beta, zero mean, unit std."""
    white = rng.standard_normal(shape)
    fy = sfft.fftfreq(shape[0])[:, None]
    fx = sfft.rfftfreq(shape[1])[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f_min = 1.0 / max(shape)
    amp = np.maximum(f, f_min) ** (-beta)
    amp[0, 0] = 0.0
    out = sfft.irfft2(sfft.rfft2(white) * amp, s=shape)
    return np.asarray(out / max(float(out.std()), 1e-12))


def _dome_profile(d: dict[str, Any], yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    r2 = ((yy - d["cy"]) ** 2 + (xx - d["cx"]) ** 2) / d["radius"] ** 2
    if d["profile"] == "gauss":
        prof = np.exp(-0.5 * r2 * 4.0)
    elif d["profile"] == "cosine":
        prof = np.where(r2 < 1.0, 0.5 * (1.0 + np.cos(math.pi * np.sqrt(np.minimum(r2, 1.0)))), 0.0)
    else:
        prof = np.sqrt(np.clip(1.0 - r2, 0.0, None))
    return np.asarray(d["amp"] * prof)


@dataclass
class _Sheet:
    """One opaque surface sheet of the scene: height (planes), radiance, coverage."""

    h: np.ndarray
    radiance: np.ndarray
    coverage: np.ndarray


def _height_field(
    rng: np.random.Generator,
    p: dict[str, Any],
    yy: np.ndarray,
    xx: np.ndarray,
    ny: int,
    nx: int,
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Heights in raw units ``u``: ground, plateau masks, object masks and tops.

    Objects are stacked in drawing order: each top lies ``step`` above the
    highest visible point (ground or earlier object) under its footprint.
    """
    s = 0.5 * min(ny, nx)
    yn = (yy - 0.5 * (ny - 1)) / s
    xn = (xx - 0.5 * (nx - 1)) / s
    b = p["base"]
    u = b["tilt_x"] * xn + b["tilt_y"] * yn + b["curvature"] * (xn**2 + yn**2)
    u = u + b["relief_amp"] * _gauss_field(rng, yy.shape, b["relief_sigma"] * s)
    plateau_masks = []
    for pl in p["plateaus"]:
        m = _outline_mask(pl, yy, xx)
        top = float(np.percentile(u[m], 90.0)) + pl["step"]
        ty = (yy - pl["cy"]) / s
        tx = (xx - pl["cx"]) / s
        u = np.where(m, top + pl["top_tilt_y"] * ty + pl["top_tilt_x"] * tx, u)
        plateau_masks.append(m)
    for d in p["domes"]:
        u = u + _dome_profile(d, yy, xx)
    visible = u
    object_masks, object_tops = [], []
    for ob in p["objects"]:
        m = _outline_mask(ob, yy, xx)
        top = float(visible[m].max()) + ob["step"]
        ty = (yy - ob["cy"]) / s
        tx = (xx - ob["cx"]) / s
        top_field = top + ob["top_tilt_y"] * ty + ob["top_tilt_x"] * tx
        visible = np.where(m, top_field, visible)
        object_masks.append(m)
        object_tops.append(top_field)
    return u, plateau_masks, object_masks, object_tops


def _to_planes(u: np.ndarray, u_min: float, u_max: float, lo: float, hi: float) -> np.ndarray:
    h = lo + (u - u_min) * ((hi - lo) / max(u_max - u_min, 1e-12))
    return np.asarray(np.clip(h, lo, hi))


# --------------------------------------------------------------------------
# albedo
# --------------------------------------------------------------------------


def _texture(
    rng: np.random.Generator, t: dict[str, Any], yy: np.ndarray, xx: np.ndarray
) -> np.ndarray:
    """Zero-mean, unit-std texture of kind ``t['kind']`` on the given grid."""
    kind = t["kind"]
    shape = (yy.shape[0], yy.shape[1])
    if kind == "pink":
        out = _pink_field(rng, shape, t["beta"])
    elif kind == "stripes":
        c, s = math.cos(t["angle"]), math.sin(t["angle"])
        phase = 2.0 * math.pi * (c * xx + s * yy) / t["period"] + _uni(rng, 0.0, 2 * math.pi)
        k = t["sharpness"]
        out = np.tanh(k * np.sin(phase)) / math.tanh(k)
    elif kind == "dots":
        n = max(1, round(shape[0] * shape[1] / t["spacing"] ** 2))
        imp = np.zeros(shape)
        iy = rng.integers(0, shape[0], n)
        ix = rng.integers(0, shape[1], n)
        np.add.at(imp, (iy, ix), 1.0)
        sig = max(0.4, t["dot_radius"] * t["spacing"] / 1.5)
        out = ndimage.gaussian_filter(imp, sig, mode="wrap") * (2.0 * math.pi * sig**2)
        out = t["polarity"] * np.minimum(out, 1.0)
    elif kind == "grooves":
        if t["layout"] == "concentric":
            gy = t["centre_y"] * (yy.max() - yy.min()) + yy.min()
            gx = t["centre_x"] * (xx.max() - xx.min()) + xx.min()
            g = np.hypot(yy - gy, xx - gx) / t["groove_period"]
        else:
            c, s = math.cos(t["angle"]), math.sin(t["angle"])
            g = (c * xx + s * yy) / t["groove_period"]
        g = g - g.min()
        idx = np.floor(g).astype(np.int64)
        frac = g - idx
        amp = rng.uniform(0.3, 1.0, 512)
        scallop = (2.0 * frac - 1.0) ** 2 - 1.0 / 3.0
        out = amp[idx % 512] * scallop + 0.2 * _pink_field(rng, shape, 1.0)
    else:
        return np.zeros(shape)
    out = out - out.mean()
    return np.asarray(out / max(float(out.std()), 1e-12))


def _paint_regions(
    rng: np.random.Generator,
    region: np.ndarray,
    textures: list[dict[str, Any]],
    yy: np.ndarray,
    xx: np.ndarray,
    paint: np.ndarray,
    out: np.ndarray,
) -> None:
    """Fill ``out`` region by region with mean + contrast * texture."""
    for r, t in enumerate(textures):
        m = region == r
        if not m.any():
            continue
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        tex = _texture(rng, t, yy[sl], xx[sl])
        val = t["mean"] + t["contrast"] * tex + t["paint_variation"] * paint[sl]
        sub = out[sl]
        sub[m[sl]] = val[m[sl]]


def _albedo(
    rng: np.random.Generator,
    p: dict[str, Any],
    yy: np.ndarray,
    xx: np.ndarray,
    plateau_masks: list[np.ndarray],
    object_masks: list[np.ndarray],
    ny: int,
    nx: int,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Albedo of the complete ground (also under objects) and of each object."""
    cells = np.asarray(p["cells"], dtype=np.float64)
    dist = np.stack([(yy - cy) ** 2 + (xx - cx) ** 2 for cy, cx in cells])
    region = np.argmin(dist, axis=0)
    textures = list(p["cell_textures"])
    for m, t in zip(plateau_masks, p["plateau_textures"], strict=True):
        region = np.where(m, len(textures), region)
        textures.append(t)
    paint = _gauss_field(rng, yy.shape, 0.3 * 0.5 * min(ny, nx))
    grime = p["grime_std"] * _pink_field(rng, yy.shape, 1.0)
    ground = np.zeros(yy.shape)
    _paint_regions(rng, region, textures, yy, xx, paint, ground)
    ground = np.clip(ground + grime, 0.02, 0.98)
    objects = []
    for m, t in zip(object_masks, p["object_textures"], strict=True):
        alb = np.zeros(yy.shape)
        _paint_regions(rng, np.where(m, 0, -1), [t], yy, xx, paint, alb)
        objects.append(np.clip(alb + grime, 0.02, 0.98))
    return ground, objects


# --------------------------------------------------------------------------
# optics
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Optics:
    kappa: float
    sigma_focus: float
    gauss_fraction: float

    def diameter(self, defocus: float) -> float:
        """Circle-of-confusion diameter (px) at ``defocus`` planes."""
        return self.kappa * abs(defocus)

    def kernel_radius(self, defocus: float) -> int:
        """Half-size (px) of the defocus kernel (disc and its Gaussian mix)."""
        d = self.diameter(defocus)
        r = max(0.5 * d, 0.75 * d if self.gauss_fraction > 0.0 else 0.0)
        return math.ceil(r + 1.0)

    def reach(self, defocus: float) -> int:
        """Radius (px) beyond which the whole PSF at ``defocus`` is negligible."""
        return self.kernel_radius(defocus) + math.ceil(3.0 * self.sigma_focus) + 1


def _disc_kernel(diameter: float, radius: int) -> np.ndarray:
    """Uniform disc of the given diameter, averaged over each pixel's area."""
    ax = np.arange(-radius, radius + 1, dtype=np.float64)
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    r = 0.5 * diameter
    rr = np.hypot(yy, xx)
    k = (rr <= r - 0.7072).astype(np.float64)
    ring = np.flatnonzero((np.abs(rr - r) < 0.7072).ravel())
    if ring.size:
        ss = 16
        sub = (np.arange(ss) + 0.5) / ss - 0.5
        sy, sx = np.meshgrid(sub, sub, indexing="ij")
        py = yy.ravel()[ring][:, None] + sy.ravel()[None, :]
        px = xx.ravel()[ring][:, None] + sx.ravel()[None, :]
        k.ravel()[ring] = (py * py + px * px <= r * r).mean(axis=1)
    if k.sum() <= 0.0:
        k[radius, radius] = 1.0
    return np.asarray(k / k.sum())


def _gauss_kernel(sigma: float, radius: int) -> np.ndarray:
    """Isotropic Gaussian integrated over each pixel (separable erf form)."""
    edges = np.arange(-radius - 0.5, radius + 1.0, dtype=np.float64)
    if sigma <= 1e-6:
        g = np.zeros(2 * radius + 1)
        g[radius] = 1.0
    else:
        cdf = special.ndtr(edges / sigma)
        g = np.diff(cdf)
    k = np.outer(g, g)
    return np.asarray(k / k.sum())


def _pixel_gauss_otf(f: np.ndarray, sigma: float) -> np.ndarray:
    """1-D transfer function of a Gaussian (``sigma`` px) integrated over a pixel.

    It is the periodised (aliased) spectrum ``sum_n sinc(f+n) g(f+n)``, i.e. the
    exact DTFT of the sampled, pixel-integrated Gaussian: smooth across the
    Nyquist frequency, so it does not ring.
    """
    out = np.zeros(f.shape)
    for n in range(-3, 4):
        g = f + n
        out += np.sinc(g) * np.exp(-2.0 * math.pi**2 * sigma**2 * g**2)
    return out


class _OtfBank:
    """Defocus kernels per defocus step and transfer functions per FFT grid.

    The PSF on the pixel grid is ``[(1-g) disc(D) + g Gauss(D/4)] (*) G0``: the
    pixel-averaged disc (mixed with a pixel-integrated Gaussian of the same
    second moment) convolved with the pixel-integrated in-focus Gaussian
    ``G0``.  All parts are non-negative and sum to one.
    """

    def __init__(self, optics: _Optics, step: float) -> None:
        self.optics = optics
        self.step = step
        self.kernels: dict[int, np.ndarray] = {}
        self.bases: dict[tuple[int, int], np.ndarray] = {}
        self.otfs: dict[tuple[int, int, int], np.ndarray] = {}
        self.otf_bytes = 0

    def kernel(self, key: int) -> np.ndarray:
        k = self.kernels.get(key)
        if k is None:
            o = self.optics
            defocus = key * self.step
            diam = o.diameter(defocus)
            rad = o.kernel_radius(defocus)
            k = _disc_kernel(diam, rad)
            if o.gauss_fraction > 0.0:
                k = (1.0 - o.gauss_fraction) * k + o.gauss_fraction * _gauss_kernel(diam / 4.0, rad)
            self.kernels[key] = k
        return k

    def base(self, shape: tuple[int, int]) -> np.ndarray:
        """Half-spectrum (rfft layout) transfer function of the in-focus blur."""
        b = self.bases.get(shape)
        if b is None:
            s0 = self.optics.sigma_focus
            fy = sfft.fftfreq(shape[0])[:, None]
            fx = sfft.rfftfreq(shape[1])[None, :]
            b = (_pixel_gauss_otf(fy, s0) * _pixel_gauss_otf(fx, s0)).astype(np.float32)
            if len(self.bases) >= _GRID_CACHE_SIZE:
                self.bases.pop(next(iter(self.bases)))
            self.bases[shape] = b
        return b

    def otf(self, shape: tuple[int, int], key: int) -> np.ndarray:
        """Half-spectrum transfer function of the defocus kernel on ``shape``."""
        ck = (shape[0], shape[1], key)
        t = self.otfs.get(ck)
        if t is not None:
            return t
        k = self.kernel(key)
        rad = k.shape[0] // 2
        arr = np.zeros(shape)
        iy = np.arange(-rad, rad + 1) % shape[0]
        ix = np.arange(-rad, rad + 1) % shape[1]
        if 2 * rad + 1 <= min(shape):
            arr[np.ix_(iy, ix)] = k
        else:
            np.add.at(arr, (iy[:, None], ix[None, :]), k)
        t = np.asarray(sfft.rfft2(arr, workers=-1).real, dtype=np.float32)
        nbytes = t.nbytes
        while self.otfs and self.otf_bytes + nbytes > _OTF_BUDGET_BYTES:
            old = self.otfs.pop(next(iter(self.otfs)))
            self.otf_bytes -= old.nbytes
        if nbytes <= _OTF_BUDGET_BYTES:
            self.otfs[ck] = t
            self.otf_bytes += nbytes
        return t


def _fft_size(n: int) -> int:
    """Smallest size >= n from a sparse ladder of fast FFT lengths."""
    n = max(int(n), 8)
    best = 1 << 40
    for m in (8, 9, 10, 12, 15):
        k = max(0, math.ceil(math.log2(n / m)))
        while m << k < n:
            k += 1
        best = min(best, m << k)
    return best


@dataclass
class _Layer:
    k: int
    shape: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    alpha: np.ndarray
    colour: np.ndarray
    target: tuple[slice, slice]
    extent: tuple[int, int]
    spectrum: np.ndarray | None


def _layer_spectrum(lay: _Layer, bank: _OtfBank) -> np.ndarray:
    """rfft2 of the layer's [alpha, alpha*radiance], times the in-focus OTF."""
    if lay.spectrum is not None:
        return lay.spectrum
    arr = np.zeros((2, *lay.shape), dtype=np.float32)
    arr[0, lay.rows, lay.cols] = lay.alpha
    arr[1, lay.rows, lay.cols] = lay.colour
    spec = sfft.rfft2(arr, workers=-1)
    spec *= bank.base(lay.shape)
    return np.asarray(spec)


def _axis_window(s0: int, s1: int, reach: int, n: int) -> tuple[int, int, int]:
    """Target start/stop inside the image and FFT length for one axis.

    The layer occupies ``[s0, s1)``; its blur reaches ``reach`` px further.
    The periodic FFT of length ``size`` must not wrap blurred content back
    into the target ``[t0, t1)``.
    """
    t0 = max(0, s0 - reach)
    t1 = min(n, s1 + reach)
    size = _fft_size(max(s1 + reach - t0, t1 - (s0 - reach)))
    return t0, t1, size


def _build_layers(
    sheet: _Sheet,
    margin: int,
    nz: int,
    ny: int,
    nx: int,
    optics: _Optics,
    bank: _OtfBank,
    step: float,
    budget: list[int],
) -> list[_Layer]:
    """Split a sheet into soft depth layers (linear split between centres)."""
    cov = np.flatnonzero(sheet.coverage.ravel())
    if cov.size == 0:
        return []
    pos = sheet.h.ravel()[cov] / step
    k0 = np.floor(pos).astype(np.int64)
    frac = pos - k0
    rad = sheet.radiance.ravel()
    order = np.argsort(k0, kind="stable")
    ks = k0[order]
    k_lo, k_hi = int(ks[0]), int(ks[-1]) + 1
    bounds = np.searchsorted(ks, np.arange(k_lo, k_hi + 2))
    sx = sheet.h.shape[1]
    layers: list[_Layer] = []
    for k in range(k_hi, k_lo - 1, -1):
        parts_i, parts_w = [], []
        j = k - k_lo
        if j < len(bounds) - 1:
            sel = order[bounds[j] : bounds[j + 1]]
            parts_i.append(sel)
            parts_w.append(1.0 - frac[sel])
        if j >= 1:
            sel = order[bounds[j - 1] : bounds[j]]
            parts_i.append(sel)
            parts_w.append(frac[sel])
        idx = cov[np.concatenate(parts_i)]
        w = np.concatenate(parts_w)
        centre = k * step
        reach = optics.reach(max(abs(centre), abs(centre - (nz - 1))))
        r = idx // sx - margin
        c = idx % sx - margin
        keep = (w > 1e-6) & (r >= -reach) & (r < ny + reach) & (c >= -reach) & (c < nx + reach)
        if not keep.any():
            continue
        r, c, w, idx = r[keep], c[keep], w[keep], idx[keep]
        ty0, ty1, sy = _axis_window(int(r.min()), int(r.max()) + 1, reach, ny)
        tx0, tx1, sxx = _axis_window(int(c.min()), int(c.max()) + 1, reach, nx)
        if ty1 <= ty0 or tx1 <= tx0:
            continue
        lay = _Layer(
            k=k,
            shape=(sy, sxx),
            rows=((r - ty0) % sy).astype(np.intp),
            cols=((c - tx0) % sxx).astype(np.intp),
            alpha=w.astype(np.float32),
            colour=(w * rad[idx]).astype(np.float32),
            target=(slice(ty0, ty1), slice(tx0, tx1)),
            extent=(ty1 - ty0, tx1 - tx0),
            spectrum=None,
        )
        nbytes = 2 * sy * (sxx // 2 + 1) * 8
        if budget[0] >= nbytes:
            lay.spectrum = _layer_spectrum(lay, bank)
            budget[0] -= nbytes
        layers.append(lay)
    return layers


def _composite_plane(
    layers: list[_Layer], z: float, bank: _OtfBank, ny: int, nx: int, gap: int
) -> np.ndarray:
    """Radiance image focused at plane ``z`` (front-to-back soft 'over')."""
    acc_c = np.zeros((ny, nx), dtype=np.float32)
    acc_a = np.zeros((ny, nx), dtype=np.float32)
    trans = np.ones((ny, nx), dtype=np.float32)
    pending: deque[tuple[int, tuple[slice, slice], np.ndarray]] = deque()
    zk = z / bank.step
    for lay in layers:
        while pending and pending[0][0] >= lay.k + gap:
            _, sl, keep = pending.popleft()
            trans[sl] *= keep
        key = round(abs(lay.k - zk))
        spec = _layer_spectrum(lay, bank) * bank.otf(lay.shape, key)
        img = sfft.irfft2(spec, s=lay.shape, workers=-1, overwrite_x=True)
        ey, ex = lay.extent
        a = np.clip(img[0, :ey, :ex], 0.0, 1.0)
        c = np.maximum(img[1, :ey, :ex], 0.0)
        t = trans[lay.target]
        acc_a[lay.target] += t * a
        acc_c[lay.target] += t * c
        pending.append((lay.k, lay.target, 1.0 - a))
    return np.asarray(acc_c / np.maximum(acc_a, 1e-6))


def _render_radiance(
    sheets: list[_Sheet],
    margin: int,
    nz: int,
    ny: int,
    nx: int,
    optics: _Optics,
) -> np.ndarray:
    """Noise-free (Z, Y, X) radiance of the scene for focus at planes 0..Z-1."""
    bank = _OtfBank(optics, LAYER_STEP)
    budget = [_SPECTRUM_BUDGET_BYTES]
    layers: list[_Layer] = []
    for sheet in sheets:
        layers += _build_layers(sheet, margin, nz, ny, nx, optics, bank, LAYER_STEP, budget)
    layers.sort(key=lambda lay: -lay.k)
    gap = round(OCCLUSION_GAP / LAYER_STEP)
    out = np.empty((nz, ny, nx), dtype=np.float32)
    for z in range(nz):
        out[z] = _composite_plane(layers, float(z), bank, ny, nx, gap)
    return out


# --------------------------------------------------------------------------
# camera
# --------------------------------------------------------------------------


def _vignetting(ny: int, nx: int, strength: float) -> np.ndarray:
    y = (np.arange(ny) - 0.5 * (ny - 1))[:, None]
    x = (np.arange(nx) - 0.5 * (nx - 1))[None, :]
    r2 = (y**2 + x**2) / max(0.25 * ((ny - 1) ** 2 + (nx - 1) ** 2), 1e-12)
    return np.asarray(1.0 - strength * r2)


def _breathe(img: np.ndarray, mag: float) -> np.ndarray:
    if mag == 1.0:
        return img
    centre = 0.5 * (np.asarray(img.shape, dtype=np.float64) - 1.0)
    inv = 1.0 / mag
    return np.asarray(
        ndimage.affine_transform(
            img, [inv, inv], offset=centre - inv * centre, order=3, mode="nearest"
        )
    )


def _sensor(
    rng: np.random.Generator, radiance: np.ndarray, p: dict[str, Any], bits: int
) -> np.ndarray:
    full = float(2**bits - 1)
    per_unit = 2.0 * p["sensor"]["photons_mid_grey"]
    read = p["sensor"]["read_noise_dn8"] * full / 255.0
    dtype = np.uint8 if bits <= 8 else np.uint16
    out = np.empty(radiance.shape, dtype=dtype)
    for z in range(radiance.shape[0]):
        lam = np.clip(radiance[z].astype(np.float64), 0.0, None) * per_unit
        dn = rng.poisson(lam) * (full / per_unit) + rng.normal(0.0, read, lam.shape)
        out[z] = np.clip(np.rint(dn), 0.0, full).astype(dtype)
    return out


# --------------------------------------------------------------------------
# truth
# --------------------------------------------------------------------------


def _textured_mask(albedo: np.ndarray) -> np.ndarray:
    m = ndimage.uniform_filter(albedo, TEXTURE_WINDOW, mode="reflect")
    m2 = ndimage.uniform_filter(albedo * albedo, TEXTURE_WINDOW, mode="reflect")
    std = np.sqrt(np.clip(m2 - m * m, 0.0, None))
    return np.asarray(std >= TEXTURE_STD_THRESHOLD)


def _edge_mask(h: np.ndarray) -> np.ndarray:
    jump = np.zeros(h.shape, dtype=bool)
    dy = np.abs(np.diff(h, axis=0)) > EDGE_JUMP_PLANES
    dx = np.abs(np.diff(h, axis=1)) > EDGE_JUMP_PLANES
    jump[:-1, :] |= dy
    jump[1:, :] |= dy
    jump[:, :-1] |= dx
    jump[:, 1:] |= dx
    if not jump.any():
        return np.zeros(h.shape, dtype=bool)
    return np.asarray(ndimage.distance_transform_edt(~jump) <= EDGE_RADIUS_PX)


# --------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------


def render_stack(
    shape: tuple[int, int, int] = (44, 500, 500),
    seed: int = 0,
    bits: int = 8,
    *,
    breathing: float = 0.0,
) -> RenderedStack:
    """Render a synthetic focus stack ``(Z, Y, X)`` with its depth truth.

    ``breathing`` (keyword only, default 0 = off) is the total fractional
    magnification change from plane 0 to plane Z-1 (keep ``|breathing| <
    0.005``).  See the module docstring for the model and truth definitions.
    """
    nz, ny, nx = (int(v) for v in shape)
    if nz < 2 or ny < 16 or nx < 16:
        raise ValueError("shape must be (Z >= 2, Y >= 16, X >= 16)")
    if not 1 <= int(bits) <= 16:
        raise ValueError("bits must be in 1..16")
    bits = int(bits)
    rng = np.random.default_rng(seed)
    p = _draw_params(rng, nz, ny, nx)
    o = p["optics"]
    optics = _Optics(o["coc_px_per_plane"], o["sigma_focus_px"], o["gauss_fraction"])
    lo, hi = p["depth_range"]["lo"], p["depth_range"]["hi"]
    margin = optics.reach(max(hi, (nz - 1) - lo) + LAYER_STEP) + 1
    yy, xx = np.mgrid[-margin : ny + margin, -margin : nx + margin].astype(np.float64)
    inner = (slice(margin, margin + ny), slice(margin, margin + nx))

    u_ground, plateau_masks, object_masks, object_tops = _height_field(rng, p, yy, xx, ny, nx)
    alb_ground, alb_objects = _albedo(rng, p, yy, xx, plateau_masks, object_masks, ny, nx)
    u_vis = u_ground
    alb_vis = alb_ground
    for m, top, alb in zip(object_masks, object_tops, alb_objects, strict=True):
        u_vis = np.where(m, top, u_vis)
        alb_vis = np.where(m, alb, alb_vis)
    u_min, u_max = float(u_vis[inner].min()), float(u_vis[inner].max())
    h = _to_planes(u_vis, u_min, u_max, lo, hi)

    lt = p["lighting"]
    s = 0.5 * min(ny, nx)
    ga = lt["gradient_angle"]
    illum = (
        1.0
        + lt["gradient_amp"]
        * (math.cos(ga) * (xx - 0.5 * (nx - 1)) + math.sin(ga) * (yy - 0.5 * (ny - 1)))
        / s
    )
    sheets = [
        _Sheet(
            h=_to_planes(u_ground, u_min, u_max, lo, hi),
            radiance=(alb_ground * illum).astype(np.float32),
            coverage=np.ones(u_ground.shape, dtype=bool),
        )
    ]
    for ob, m, top, alb in zip(p["objects"], object_masks, object_tops, alb_objects, strict=True):
        if ob["support"] == "solid":
            for sh in sheets:
                sh.coverage &= ~m
        sheets.append(
            _Sheet(
                h=_to_planes(top, u_min, u_max, lo, hi),
                radiance=(alb * illum).astype(np.float32),
                coverage=m.copy(),
            )
        )
    radiance = _render_radiance(sheets, margin, nz, ny, nx, optics)
    vign = (_vignetting(ny, nx, lt["vignetting"]) * lt["exposure"]).astype(np.float32)
    zc = 0.5 * (nz - 1)
    for z in range(nz):
        plane = radiance[z] * vign * np.float32(1.0 + lt["flicker"][z])
        if breathing != 0.0:
            plane = _breathe(plane, 1.0 + breathing * (z - zc) / (nz - 1))
        radiance[z] = plane
    raw = _sensor(rng, radiance, p, bits)

    depth = h[inner].astype(np.float32)
    textured = _textured_mask(alb_vis)[inner]
    edge = _edge_mask(h)[inner]

    meta: dict[str, Any] = {
        "generator": "render_scene",
        "version": 1,
        "shape": [nz, ny, nx],
        "seed": int(seed),
        "bits": bits,
        "breathing": float(breathing),
        "layer_step": LAYER_STEP,
        "occlusion_gap": OCCLUSION_GAP,
        "scene_margin_px": int(margin),
        "height_u_range": {"u_min": u_min, "u_max": u_max},
        "texture_window": TEXTURE_WINDOW,
        "texture_std_threshold": TEXTURE_STD_THRESHOLD,
        "edge_jump_planes": EDGE_JUMP_PLANES,
        "edge_radius_px": EDGE_RADIUS_PX,
        "depth_min": float(depth.min()),
        "depth_max": float(depth.max()),
        "textured_fraction": float(textured.mean()),
        "edge_fraction": float(edge.mean()),
    }
    meta.update(p)
    return RenderedStack(raw=raw, depth=depth, textured=textured, edge=edge, z_step=1.0, meta=meta)
