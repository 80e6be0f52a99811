"""A 3D specimen with exact geometry: cells, fibres, textured sheets and a curved surface.

Every pixel of the field belongs to at most one object, and each object pixel has one height.
Heights are snapped to a grid of ``layer_step`` µm; the snapped height *is* the object's height
(the render uses it and the truth uses it), so the in-focus truth is exact for the render.
"""

from __future__ import annotations

import atexit
import math
import threading
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np
import scipy.fft
from scipy import ndimage

from livefocus._vocab import CONTRASTS, Contrast
from livefocus.sim.optics import Camera, LayerRenderer, Optics

__all__ = ["CONTRASTS", "MIN_FIELD_PX", "Z_MARGIN_UM", "Contrast", "Specimen", "field_shape"]

#: Smallest field (pixels per side) that fits the objects.
MIN_FIELD_PX = 64

#: Margin (pixels) around the visible field: light from objects just outside it blurs in.
_PAD = 64
#: Defocus (µm) beyond the objects' height range over which the specimen can be rendered
#: (and that the demo stage may travel).
Z_MARGIN_UM = 30.0


#: Set at interpreter exit: prefetch threads stop before the next plane.
_EXITING = threading.Event()
_PREFETCHERS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


@atexit.register
def _stop_prefetchers() -> None:
    # A daemon thread killed inside a native FFT at interpreter exit can abort the process;
    # let running renders finish first (each takes milliseconds).
    _EXITING.set()
    for thread in list(_PREFETCHERS):
        thread.join(timeout=2.0)


def field_shape(shape: Any) -> tuple[int, int]:
    """``shape`` as (Y, X) integers of at least :data:`MIN_FIELD_PX`, or a ValueError."""
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (Y, X) integers, got {shape!r}") from None
    if h < MIN_FIELD_PX or w < MIN_FIELD_PX:
        raise ValueError(
            f"shape {(h, w)} is too small for the objects: Y and X must be at least "
            f"{MIN_FIELD_PX} pixels"
        )
    return h, w


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to zero mean and unit std."""
    noise: np.ndarray = ndimage.gaussian_filter(
        rng.standard_normal(shape).astype(np.float32), sigma
    )
    noise -= noise.mean()
    std = float(noise.std())
    return noise / std if std > 0 else noise


class Specimen:
    """A deterministic 3D widefield specimen and its image formation.

    Parameters
    ----------
    shape : tuple of int
        (Y, X) size of the camera field in pixels, each at least 64.
    seed : int
        Seed of every random choice: the same seed gives the same specimen.
    contrast : {"brightfield", "fluorescence"}
        Brightfield: absorbing objects on a bright background (transmitted light).
        Fluorescence: emitting objects on a dark background.
    z_center : float
        Z (µm, stage or stack coordinates) of the middle of the specimen.
    object_range : float
        Objects lie within ``z_center ± object_range`` µm (plus at most half a
        ``layer_step``, from snapping heights to the layer grid).
    optics : Optics, optional
        Objective and sampling (default :class:`Optics`, NA 0.45, 0.5 µm pixels).
    layer_step : float, optional
        Height grid in µm (default ``min(1, depth_of_field / 4)``).
    brightness : float, optional
        Photoelectrons per pixel: of the background in brightfield (default 2500), of the
        brightest in-focus emitter in fluorescence (default 1200).
    background : float
        Fluorescence background in photoelectrons per pixel.
    density : float
        Multiplier of the number of objects.

    Attributes
    ----------
    depth : ndarray
        float32 (Y, X) height in µm of the object at each pixel (Z coordinates of the
        specimen), NaN where there is no object.
    labels : ndarray
        int32 (Y, X) object at each pixel, 0 where there is none; ``object_kinds[i - 1]`` is
        the kind of object ``i`` ("cell", "fibre", "sheet" or "surface").
    z_range : tuple of float
        Range of focus positions that :meth:`render` accepts.
    depth_of_field : float
        In-focus tolerance: an object is in focus within half of it.

    Examples
    --------
    >>> spec = Specimen((64, 64), seed=1, object_range=5.0)
    >>> spec.render(spec.z_center).shape
    (64, 64)
    """

    def __init__(
        self,
        shape: tuple[int, int] = (512, 512),
        *,
        seed: int = 0,
        contrast: str = "brightfield",
        z_center: float = 0.0,
        object_range: float = 18.0,
        optics: Optics | None = None,
        layer_step: float | None = None,
        brightness: float | None = None,
        background: float = 20.0,
        density: float = 1.0,
    ) -> None:
        if contrast not in CONTRASTS:
            raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
        h, w = field_shape(shape)
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        for name, value in (("z_center", z_center), ("background", background)):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if not math.isfinite(object_range) or object_range < 0:
            raise ValueError(f"object_range must be a non-negative number, got {object_range!r}")
        if background < 0:
            raise ValueError(f"background must be non-negative, got {background!r}")
        if not math.isfinite(density) or density <= 0:
            raise ValueError(f"density must be a positive number, got {density!r}")
        self.optics = optics if optics is not None else Optics()
        self.depth_of_field = self.optics.depth_of_field_um
        if layer_step is None:
            layer_step = min(1.0, self.depth_of_field / 4.0)
        if not math.isfinite(layer_step) or layer_step <= 0:
            raise ValueError(f"layer_step must be a positive number, got {layer_step!r}")
        if brightness is None:
            brightness = 2500.0 if contrast == "brightfield" else 1200.0
        if not math.isfinite(brightness) or brightness <= 0:
            raise ValueError(f"brightness must be a positive number, got {brightness!r}")

        self.shape = (h, w)
        self.seed = int(seed)
        self.contrast: Contrast = "brightfield" if contrast == "brightfield" else "fluorescence"
        self.z_center = float(z_center)
        self.object_range = float(object_range)
        self.layer_step = float(layer_step)
        self.brightness = float(brightness)
        self.background = float(background)
        self.density = float(density)
        self.z_range = (
            self.z_center - self.object_range - Z_MARGIN_UM,
            self.z_center + self.object_range + Z_MARGIN_UM,
        )

        field = (
            scipy.fft.next_fast_len(h + 2 * _PAD, real=True),
            scipy.fft.next_fast_len(w + 2 * _PAD, real=True),
        )
        self._crop = (slice(_PAD, _PAD + h), slice(_PAD, _PAD + w))
        canvas = _build_objects(
            np.random.default_rng(self.seed), field, self._crop, self, self.density
        )
        strength, height = canvas.strength, canvas.height
        labels = canvas.owner[self._crop]
        visible = np.unique(labels[labels > 0])
        #: Kind of each object: ``object_kinds[i - 1]`` for label ``i``.
        self.object_kinds: tuple[str, ...] = tuple(canvas.kinds)
        self.labels: np.ndarray = np.ascontiguousarray(labels)
        self.labels.flags.writeable = False
        self.objects = {
            kind: sum(1 for i in visible if canvas.kinds[i - 1] == kind)
            for kind in ("cell", "fibre", "sheet", "surface")
        }
        snapped = np.round(height / self.layer_step) * self.layer_step
        present = strength > 0
        levels, inverse = np.unique(snapped[present], return_inverse=True)
        layers = np.zeros((len(levels), *field), dtype=np.float32)
        idx = np.nonzero(present)
        layers[inverse, idx[0], idx[1]] = strength[present]
        depth = np.where(present, snapped + self.z_center, np.nan).astype(np.float32)
        self.depth: np.ndarray = np.ascontiguousarray(depth[self._crop])
        self.depth.flags.writeable = False
        self._present = present[self._crop]
        self.layer_heights = levels + self.z_center
        self._renderer = LayerRenderer(layers, self.layer_heights, self.optics, self._crop)
        self._cache: OrderedDict[float, np.ndarray] = OrderedDict()
        self._in_flight: dict[float, threading.Event] = {}
        self._cache_lock = threading.Lock()
        #: Planes kept by :meth:`render` (about 256 MB of float32 planes, at least 16).
        self.cache_size = max(16, int(256 * 2**20 // (h * w * 4)))

    # -- truth ----------------------------------------------------------------------------
    @property
    def present(self) -> np.ndarray:
        """bool (Y, X): an object is at this pixel."""
        return self._present.copy()

    def check_z(self, z_um: float, name: str = "z_um") -> float:
        """Return ``z_um`` as float, or raise ValueError naming ``name`` when out of range."""
        try:
            z = float(z_um)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {z_um!r}") from None
        lo, hi = self.z_range
        if not (lo <= z <= hi):
            raise ValueError(f"{name}={z:g} µm is outside the simulated range [{lo:g}, {hi:g}] µm")
        return z

    def within_depth_of_field(self, z_um: float) -> np.ndarray:
        """bool (Y, X): an object is at the pixel, within half the depth of field of ``z_um``."""
        z = self.check_z(z_um)
        with np.errstate(invalid="ignore"):
            near = np.abs(self.depth - z) <= self.depth_of_field / 2.0
        return np.asarray(near & self._present)

    def in_focus_share(self, z_um: float) -> np.ndarray:
        """float32 (Y, X): share of each pixel's object signal that comes from in-focus layers.

        The object signal (absorption in brightfield, emission in fluorescence; not the
        background) of the image at ``z_um`` is split into the part from layers within half the
        depth of field and the part from all others (their defocused haze); this is the first
        over the sum, 0 where there is no signal.
        """
        z = self.check_z(z_um)
        near = np.abs(self.layer_heights - z) <= self.depth_of_field / 2.0
        if not near.any():
            return np.zeros(self.shape, np.float32)
        own = np.clip(self._renderer.render(z, near), 0.0, None)
        rest = np.clip(self._renderer.render(z, ~near), 0.0, None)
        total = own + rest
        share: np.ndarray = np.divide(own, total, out=np.zeros_like(own), where=total > 1e-6)
        return share.astype(np.float32, copy=False)

    def truth_mask(self, z_um: float) -> np.ndarray:
        """Exact in-focus mask at focus ``z_um``.

        A pixel is in focus when an object is there, within half the depth of field of
        ``z_um``, and the in-focus layers give at least half of the pixel's object signal
        (:meth:`in_focus_share` >= 0.5): an in-focus object swamped by the haze of defocused
        neighbours does not count, so the mask holds what the rendered image shows in focus.

        Returns
        -------
        ndarray
            bool (Y, X).
        """
        geometric = self.within_depth_of_field(z_um)
        if not geometric.any():
            return geometric
        return geometric & (self.in_focus_share(z_um) >= 0.5)

    # -- image formation -----------------------------------------------------------------
    def _to_electrons(self, blurred: np.ndarray) -> np.ndarray:
        if self.contrast == "brightfield":
            return np.float32(self.brightness) * (np.float32(1.0) - blurred)
        return np.float32(self.background) + np.float32(self.brightness) * blurred

    def render(self, z_um: float) -> np.ndarray:
        """Noise-free image (mean photoelectrons, float32 (Y, X)) with the focus at ``z_um``.

        Planes are cached by Z (the last ``cache_size``; Z is rounded to 1e-6 µm, so that a
        position computed two ways hits the same plane); the returned array is read-only.
        Thread-safe: a plane being rendered by another thread (see :meth:`prefetch`) is
        waited for, not rendered twice.
        """
        z = round(self.check_z(z_um), 6)
        while True:
            with self._cache_lock:
                cached = self._cache.get(z)
                if cached is not None:
                    self._cache.move_to_end(z)
                    return cached
                pending = self._in_flight.get(z)
                if pending is None:
                    done = self._in_flight[z] = threading.Event()
                    break
            pending.wait()
        try:
            image = self._to_electrons(self._renderer.render(z))
            np.clip(image, 0.0, None, out=image)
            image.flags.writeable = False
            with self._cache_lock:
                self._cache[z] = image
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        finally:
            with self._cache_lock:
                del self._in_flight[z]
            done.set()
        return image

    def prefetch(self, z_positions: Any) -> threading.Thread | None:
        """Render planes in a background thread, in order, into the cache.

        A camera that knows its next Z positions (a hardware-triggered Z-stack, or the next
        step of a software-timed one) calls this, so that rendering runs on a second core
        while frames are exposed. Positions outside the simulated range, and planes cached or
        being rendered already, are skipped.

        Returns
        -------
        threading.Thread or None
            The daemon thread (already started), or None when there is nothing to render.
        """
        lo, hi = self.z_range
        zs = [round(float(z), 6) for z in np.atleast_1d(np.asarray(z_positions, dtype=np.float64))]
        with self._cache_lock:
            todo = [
                z
                for z in dict.fromkeys(zs)
                if lo <= z <= hi and z not in self._cache and z not in self._in_flight
            ][: self.cache_size]
        if not todo:
            return None

        def work() -> None:
            for z in todo:
                if _EXITING.is_set():
                    return
                with self._cache_lock:
                    skip = z in self._cache or z in self._in_flight
                if not skip:
                    self.render(z)

        thread = threading.Thread(target=work, name="livefocus-prefetch", daemon=True)
        _PREFETCHERS.add(thread)
        thread.start()
        return thread

    def all_in_focus(self) -> np.ndarray:
        """Noise-free image (mean photoelectrons, float32) with every object in focus."""
        image = self._to_electrons(self._renderer.render_in_focus())
        np.clip(image, 0.0, None, out=image)
        return image

    def snap(
        self,
        z_um: float,
        camera: Camera,
        rng: np.random.Generator,
        *,
        exact: bool = True,
    ) -> np.ndarray:
        """One noisy uint16 camera frame with the focus at ``z_um``."""
        return camera.expose(self.render(z_um), rng, exact=exact)

    def parameters(self) -> dict[str, Any]:
        """JSON-serialisable description of everything that determines the specimen."""
        o = self.optics
        return {
            "shape": list(self.shape),
            "seed": self.seed,
            "contrast": self.contrast,
            "z_center_um": self.z_center,
            "object_range_um": self.object_range,
            "layer_step_um": self.layer_step,
            "brightness_e": self.brightness,
            "background_e": self.background,
            "density": self.density,
            "na": o.na,
            "wavelength_um": o.wavelength,
            "immersion_index": o.immersion_index,
            "pixel_size_um": o.pixel_size,
            "depth_of_field_um": self.depth_of_field,
            "psf": o.psf,
            "objects": {kind: n for kind, n in self.objects.items()},
        }


# -- object generation ------------------------------------------------------------------------
class _Canvas:
    """The field being painted: per-pixel strength, height and owning object."""

    def __init__(self, field: tuple[int, int]) -> None:
        self.strength = np.zeros(field, dtype=np.float32)
        self.height = np.zeros(field, dtype=np.float32)
        self.owner = np.zeros(field, dtype=np.int32)
        self.kinds: list[str] = []

    def paint(
        self,
        kind: str,
        box: tuple[slice, slice],
        mask: np.ndarray,
        value: np.ndarray | float,
        z: np.ndarray | float,
    ) -> None:
        """Give the free pixels of ``mask`` (inside ``box``) to a new object of ``kind``."""
        sub_s, sub_h, sub_o = self.strength[box], self.height[box], self.owner[box]
        free = mask & (sub_o == 0)
        if not free.any():
            return
        self.kinds.append(kind)
        sub_o[free] = len(self.kinds)
        sub_s[free] = np.clip(np.broadcast_to(value, mask.shape)[free], 1e-3, None)
        sub_h[free] = np.broadcast_to(z, mask.shape)[free]


def _box(cy: float, cx: float, r: float, field: tuple[int, int]) -> tuple[slice, slice]:
    y0, y1 = max(0, int(cy - r)), min(field[0], int(cy + r) + 2)
    x0, x1 = max(0, int(cx - r)), min(field[1], int(cx + r) + 2)
    return slice(y0, y1), slice(x0, x1)


def _build_objects(
    rng: np.random.Generator,
    field: tuple[int, int],
    crop: tuple[slice, slice],
    spec: Specimen,
    density: float,
) -> _Canvas:
    """Strength (absorption or emission), height (µm from the centre) and object per pixel.

    Objects are painted in order of priority (cells over fibres over sheets over the surface);
    a later object only takes the pixels still free, so every pixel has one object at most.
    """
    px = spec.optics.pixel_size
    rz = spec.object_range
    fluo = spec.contrast == "fluorescence"
    canvas = _Canvas(field)
    vy, vx = crop
    h, w = vy.stop - vy.start, vx.stop - vx.start
    area_um2 = h * w * px * px
    # at most one object of a kind per 64 pixels: coarse pixels (1000 µm) would otherwise ask
    # for millions of objects of a few pixels each (the counts follow the area in µm²)
    most = max(1, h * w // 64)

    def centre() -> tuple[float, float]:
        return (
            vy.start + rng.uniform(0.05, 0.95) * h,
            vx.start + rng.uniform(0.05, 0.95) * w,
        )

    # Cells: ellipses with a rim, granular cytoplasm and a nucleus, each at one height.
    n_cells = max(3, min(most, round(density * area_um2 / 1800.0)))
    for _ in range(n_cells):
        cy, cx = centre()
        a_um, b_um = rng.uniform(3.5, 9.0), rng.uniform(3.0, 7.0)
        a, b = max(a_um / px, 4.0), max(b_um / px, 3.0)
        theta = rng.uniform(0, math.pi)
        box = _box(cy, cx, max(a, b) + 1, field)
        yy, xx = np.mgrid[box[0], box[1]].astype(np.float32)
        dy, dx = yy - cy, xx - cx
        u = (dx * math.cos(theta) + dy * math.sin(theta)) / a
        v = (-dx * math.sin(theta) + dy * math.cos(theta)) / b
        r = np.sqrt(u * u + v * v)
        inside = r <= 1.0
        grain = _smooth_noise(rng, r.shape, max(0.5 / px, 0.8))
        rim = np.clip(1.0 - (1.0 - r) * max(a, b) / max(1.0 / px, 1.5), 0.0, 1.0)
        nu, nv = u - rng.uniform(-0.25, 0.25), v - rng.uniform(-0.25, 0.25)
        nucleus = np.sqrt(nu * nu + nv * nv) <= rng.uniform(0.3, 0.5)
        if fluo:
            value = 0.35 + 0.15 * grain + 0.45 * nucleus + 0.15 * rim
        else:
            value = 0.12 + 0.08 * grain + 0.28 * rim + 0.22 * nucleus
        value = value * rng.uniform(0.7, 1.0)
        z = float(rng.uniform(-rz, rz))
        canvas.paint("cell", box, inside, value, z)

    # Fibres: smooth random curves about 1 µm wide with beaded intensity, slightly tilted.
    n_fibres = max(2, min(most, round(density * area_um2 / 9000.0)))
    for _ in range(n_fibres):
        cy, cx = centre()
        length = rng.uniform(0.3, 0.7) * min(h, w)
        steps = max(8, int(length))
        turn = np.cumsum(rng.normal(0, 0.04, steps))
        angle = rng.uniform(0, 2 * math.pi) + turn
        ys = cy + np.cumsum(np.sin(angle)) - np.sin(angle).sum() / 2
        xs = cx + np.cumsum(np.cos(angle)) - np.cos(angle).sum() / 2
        half_w = max(rng.uniform(0.5, 0.9) / px, 1.0)
        y0 = max(0, int(ys.min() - half_w - 2))
        y1 = min(field[0], int(ys.max() + half_w + 3))
        x0 = max(0, int(xs.min() - half_w - 2))
        x1 = min(field[1], int(xs.max() + half_w + 3))
        if y1 <= y0 or x1 <= x0:
            continue
        box = (slice(y0, y1), slice(x0, x1))
        line = np.ones((y1 - y0, x1 - x0), dtype=bool)
        iy = np.clip(np.rint(ys).astype(int) - y0, 0, y1 - y0 - 1)
        ix = np.clip(np.rint(xs).astype(int) - x0, 0, x1 - x0 - 1)
        line[iy, ix] = False
        dist, (ny, nx) = ndimage.distance_transform_edt(line, return_indices=True)
        inside = dist <= half_w
        along = np.zeros(line.shape, dtype=np.float32)
        along[iy, ix] = np.arange(len(iy), dtype=np.float32) / len(iy)
        t = along[ny, nx]
        beads = 0.5 + 0.5 * np.sin(2 * math.pi * t * length * px / rng.uniform(3.0, 6.0))
        value = (0.5 + 0.4 * beads) if fluo else (0.25 + 0.25 * beads)
        z0 = float(rng.uniform(-rz, rz))
        tilt = rng.uniform(-0.5, 0.5) * min(rz, 4.0)
        z = np.clip(z0 + tilt * (t - 0.5), -rz, rz)
        canvas.paint("fibre", box, inside, value, z)

    # Sheets: flat irregular patches of tissue-like (cellular) texture.
    n_sheets = max(1, min(most, round(density * area_um2 / 30000.0)))
    for _ in range(n_sheets):
        cy, cx = centre()
        radius = rng.uniform(0.12, 0.22) * min(h, w)
        box = _box(cy, cx, radius * 1.3, field)
        yy, xx = np.mgrid[box[0], box[1]].astype(np.float32)
        shape_noise = _smooth_noise(rng, yy.shape, radius / 4)
        r = np.hypot(yy - cy, xx - cx) / radius
        inside = r + 0.25 * shape_noise <= 1.0
        cells = np.abs(_smooth_noise(rng, yy.shape, max(1.2 / px, 1.5)))
        membranes = np.exp(-cells * 3.0)
        grain = _smooth_noise(rng, yy.shape, max(0.4 / px, 0.7))
        if fluo:
            value = 0.25 + 0.45 * membranes + 0.08 * grain
        else:
            value = 0.10 + 0.30 * membranes + 0.05 * grain
        z = float(rng.uniform(-rz, rz))
        canvas.paint("sheet", box, inside, value, z)

    # A curved, tilted tissue surface over about half the field spanning the height range.
    yy, xx = np.mgrid[0 : field[0], 0 : field[1]].astype(np.float32)
    ny_, nx_ = (yy - vy.start) / h - 0.5, (xx - vx.start) / w - 0.5
    tilt = rng.uniform(0, 2 * math.pi)
    ramp = math.cos(tilt) * nx_ + math.sin(tilt) * ny_
    bowl = ny_**2 + nx_**2
    surface = ramp + rng.uniform(-1.0, 1.0) * bowl
    vis = surface[crop]
    lo, hi = float(vis.min()), float(vis.max())
    surface_z = (np.clip((surface - lo) / max(hi - lo, 1e-6), 0, 1) * 2 - 1) * rz * 0.95
    region_noise = _smooth_noise(rng, field, min(h, w) / 6)
    region = region_noise > np.quantile(region_noise[crop], 0.5)
    texture = _smooth_noise(rng, field, max(0.6 / px, 1.0))
    coarse = _smooth_noise(rng, field, max(3.0 / px, 3.0))
    if fluo:
        value = 0.3 + 0.12 * texture + 0.08 * coarse
    else:
        value = 0.15 + 0.08 * texture + 0.05 * coarse
    canvas.paint("surface", (slice(None), slice(None)), region, value, surface_z)
    return canvas
