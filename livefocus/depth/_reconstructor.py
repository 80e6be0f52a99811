"""Online reconstruction of a Z-stack: depth map, all-in-focus image, confidence and masks.

A :class:`StackReconstructor` takes the planes of one Z-stack one at a time (from the
acquisition's worker thread) and keeps, in O(H * W) work per plane:

- the plane's **focus map** (:func:`livefocus.focus_map`; fine 6-pixel windows by default);
- the per-pixel **focus curve** over the planes seen so far, and from it the current **depth
  map** (plane of highest focus score, refined to sub-plane precision by a parabola, or a
  Gaussian, through that plane and its two neighbours), the **all-in-focus** image (each pixel
  linearly interpolated between the two frames around its refined depth) and the
  **confidence** map (prominence of the highest peak of the curve over the whole stack,
  ``1 - base / peak`` where ``base`` is the higher of the minima on either side; 0 for a flat
  curve; with the share of its neighbours that keep a depth, mapped to a calibrated
  probability);
  a depth is kept only where that peak passes the support and noise tests below, no
  second peak nearly as high makes it ambiguous (``ambiguous_peak``) and it agrees with the
  depths around it (``outlier_tolerance``), and is then smoothed edge-aware; the current state
  is what :meth:`~StackReconstructor.finish` would give if the stack ended with the newest
  plane;
- two in-focus **masks** per plane: ``otsu`` (the paper's weak label: Otsu's threshold of the
  plane's focus map; in the :class:`~livefocus.depth.StackResult` one Otsu threshold over
  all the stack's maps, ``scope="stack"``) and ``depth`` (below).

Depth masks and when they become final
--------------------------------------
A pixel may have several in-focus structures along Z, so the depth mask uses every *local*
peak of its focus curve. Plane ``j`` is a peak of a pixel when its score is the highest within
``peak_radius`` (``R``) planes on either side; its confidence is its prominence within that
range, ``1 - max(min(f[j-R..j]), min(f[j..j+R])) / f[j]`` (0 on a flat curve). A peak is
confident when that prominence is above ``min_confidence``, the peak stands more than
``noise_floor`` noise stds of plane ``j`` (:func:`~livefocus.depth.noise_sigma`) above its base,
and the pixel itself stands out of its local background on plane ``j`` by more than
``min_support`` noise stds (:func:`~livefocus.depth.plane_support`: object support, so that
background next to an object does not inherit the object's window score; the support of
planes ``j - 1`` and ``j + 1`` counts towards ``support_peak``, and a peak enclosed by
supported peaks of plane ``j``, once those are closed over gaps of ``support_close - 1``
pixels, counts as supported). All three are
judged on plane ``j``'s own maps, so the finality below is unchanged. A confident peak is
refined to a sub-plane depth ``d_j`` (clamped between the
midpoints to the neighbouring planes), and the pixel is **in focus at plane k when**
``|d_j - z_k| <= depth_of_field / 2`` for some confident peak ``j``.

A peak on the first or last plane (an *edge* plane) is judged on its one side, and counts only
where the parabola through the three edge planes opens downwards with its vertex at most half
the depth of field beyond the edge plane: a structure just outside the stack is in focus on the
edge plane, one further away (whose focus still rises steeply at the edge) is not. Its depth is
that vertex.

Peak ``j`` is decided once plane ``j + R`` has been seen (or at :meth:`StackReconstructor.finish`,
where the range is cut at the last plane). Plane ``k``'s mask is **final** once every peak that
could reach it is decided: with increasing (or decreasing) plane positions that is when plane
``j0 + R - 1`` has been seen, ``j0`` being the first plane after ``k`` whose lower midpoint lies
more than half the depth of field from ``z_k``. For a uniform step and the default depth of
field (twice the step) ``j0 = k + 2``: plane ``k`` is final after plane ``k + R + 1``, i.e. with
a lag of ``R + 1 = 7`` planes by default. :meth:`StackReconstructor.add` returns those final
masks as soon as they are known and :meth:`StackReconstructor.finish` the rest; every plane's
final mask is delivered exactly once.

The *provisional* mask that :meth:`~StackReconstructor.add` gives for the new plane applies the
same rule to what is known now: decided peaks, plus undecided ones judged on the planes seen so
far, the newest plane counting as an edge plane.

Memory: the stack's float32 focus and support maps and bool depth masks, and a few (Y, X)
arrays (the raw frames are not kept). Plane positions must be strictly monotonic (either direction).

The offline :func:`reconstruct` feeds the same :class:`StackReconstructor` plane by plane, so
online and offline results are identical, bit for bit.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from livefocus.depth._calibration import calibrated, depth_density, peak_features, peak_weight
from livefocus.depth._focus import intensity_units, plane_focus
from livefocus.depth._holes import closed, enclosed
from livefocus.depth._outliers import consistent
from livefocus.depth._peaks import fit_vertex, peak_candidates, rival_peak
from livefocus.depth._regions import grown
from livefocus.depth._result import StackResult
from livefocus.depth._settings import ReconstructSettings, check_shape
from livefocus.depth._signal import noise_sigma, plane_support
from livefocus.depth._smooth import guided_smooth, smooth_depth
from livefocus.depth._specks import without_specks
from livefocus.depth._state import CURVE_FIELDS, update_curves
from livefocus.focus._validate import check_image, check_positive_int, check_positive_number
from livefocus.focus.labels import otsu_threshold, weak_labels
from livefocus.io import Z_STEP_RANGE_UM

__all__ = ["PlaneUpdate", "StackReconstructor"]

_TINY = np.float32(1e-30)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


_HELPER: ThreadPoolExecutor | None = None
_HELPER_LOCK = threading.Lock()


def _beside(fn: Any, *args: Any) -> Future[Any]:
    """``fn(*args)`` on a helper thread, shared by every reconstructor (up to one per core,
    started as needed; each caller waits for its own tasks, which never wait for the helper
    themselves, so at most one task per caller is queued). Once the interpreter shuts down
    the helpers take no more work: ``fn`` then runs here, and the future is already done."""
    global _HELPER
    with _HELPER_LOCK:
        if _HELPER is None:
            _HELPER = ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="livefocus-helper"
            )
        helper = _HELPER
    try:
        return helper.submit(fn, *args)
    except RuntimeError:  # "cannot schedule new futures after (interpreter) shutdown"
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args))
        except Exception as exc:
            done.set_exception(exc)
        return done


def _forget_helper() -> None:
    """In a forked child the parent's helper threads do not exist: start new ones there."""
    global _HELPER, _HELPER_LOCK
    _HELPER, _HELPER_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_helper)


@dataclass(frozen=True, eq=False)
class PlaneUpdate:
    """What :meth:`StackReconstructor.add` learns from one plane.

    Attributes
    ----------
    index : int
        Plane number ``k`` in the stack.
    focus : ndarray
        float32 (Y, X) focus map of this plane.
    mask_otsu : ndarray
        bool (Y, X) Otsu's threshold of this plane's map (the online weak label).
    mask_depth : ndarray
        bool (Y, X) provisional depth mask of this plane.
    final : dict of int to ndarray
        Depth masks of this or earlier planes that became final at this step.
    otsu_threshold : float
        The Otsu threshold of this plane's map (what ``mask_otsu`` is above).
    """

    index: int
    focus: np.ndarray
    mask_otsu: np.ndarray
    mask_depth: np.ndarray
    final: dict[int, np.ndarray]
    otsu_threshold: float = float("nan")


class StackReconstructor:
    """Reconstruct one Z-stack online, plane by plane.

    Parameters
    ----------
    shape : tuple of int
        Frame shape (Y, X).
    z_step : float
        Plane spacing in µm: the positions of planes added without ``z_um`` and the default
        depth of field (twice ``z_step``).
    settings : ReconstructSettings, optional
        Default: :meth:`ReconstructSettings.for_frame` of ``shape``.
    n_planes : int, optional
        Expected number of planes (memory is reserved for them; more may be added).

    Examples
    --------
    >>> from livefocus.sim import simulate_stack
    >>> sim = simulate_stack((9, 64, 64), seed=0)
    >>> rec = StackReconstructor((64, 64), z_step=2.0)
    >>> finals = {}
    >>> for frame in sim.raw:
    ...     finals.update(rec.add(frame).final)
    >>> result, rest = rec.finish()
    >>> finals.update(rest)
    >>> sorted(finals) == list(range(9)), result.depth.shape
    (True, (64, 64))
    """

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        z_step: float = 1.0,
        settings: ReconstructSettings | None = None,
        n_planes: int | None = None,
    ) -> None:
        ny, nx = check_shape(shape)
        self.shape: tuple[int, int] = (ny, nx)
        self.z_step = check_positive_number(z_step, "z_step", "µm")
        lo, hi = Z_STEP_RANGE_UM
        if not lo <= self.z_step <= hi:  # 1e300 overflowed, 1e-300 divided by zero
            raise ValueError(f"z_step must be from {lo:g} to {hi:g} µm, got {z_step!r}")
        if settings is None:
            settings = ReconstructSettings.for_frame(self.shape)
        if not isinstance(settings, ReconstructSettings):
            raise ValueError(f"settings must be a ReconstructSettings, got {type(settings)!r}")
        self.settings = settings
        dof = settings.depth_of_field
        #: In-focus tolerance in µm actually used.
        self.depth_of_field: float = 2.0 * self.z_step if dof is None else float(dof)
        capacity = 8
        if n_planes is not None:
            capacity = check_positive_int(n_planes, "n_planes")
        self._cap = capacity
        self._focus = np.empty((capacity, ny, nx), np.float32)
        self._support = np.empty((capacity, ny, nx), np.float32)
        self._sigma: list[float] = []  # noise std of each plane
        self._prev = np.zeros((ny, nx), np.float32)  # the previous frame
        self._masks = np.zeros((capacity, ny, nx), bool)
        self._z: list[float] = []
        self._curve: list[float] = []
        self._n = 0
        self._decided = 0  # peaks j < _decided are decided (painted into _masks)
        self._delivered = 0  # planes k < _delivered have had their final mask delivered
        self._finished = False
        self._direction = 0.0
        self._half = self.depth_of_field / 2.0
        # global state of each pixel's curve
        self._fmax = np.full((ny, nx), -np.inf, np.float32)
        self._arg = np.zeros((ny, nx), np.intp)
        self._runmin = np.full((ny, nx), np.inf, np.float32)
        self._s_at = np.zeros((ny, nx), np.float32)  # support at the highest plane
        self._s_max = np.zeros((ny, nx), np.float32)  # support: the most so far
        self._ever = np.zeros((ny, nx), bool)  # pixels with a decided peak
        self._leftmin = np.full((ny, nx), np.inf, np.float32)
        self._rightmin = np.full((ny, nx), np.inf, np.float32)
        # focus scores and frame values at each pixel's peak and at the planes either side
        self._fm = np.full((ny, nx), -np.inf, np.float32)
        self._fp = np.full((ny, nx), -np.inf, np.float32)
        self._raw_at = np.zeros((ny, nx), np.float32)
        self._raw_m = np.zeros((ny, nx), np.float32)
        self._raw_p = np.zeros((ny, nx), np.float32)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._first_fit: tuple[np.ndarray, np.ndarray] | None = None
        self._features: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._off_inner = np.zeros((ny, nx), np.float32)  # refined offset of interior peaks
        self._zarg = np.zeros((ny, nx), np.float32)  # position of the highest plane
        self._after = np.empty(ny * nx, np.intp)  # update_curves' buffer
        self._cand = np.empty(ny * nx, np.intp)  # peak_candidates' buffer

    # -- input ----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Planes added so far."""
        return self._n

    def _grow(self) -> None:
        if self._n < self._cap:
            return
        cap = 2 * self._cap
        for name in ("_focus", "_support", "_masks"):
            old = getattr(self, name)
            new = (np.zeros if name == "_masks" else np.empty)((cap, *self.shape), old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)
        self._cap = cap

    def _check_z(self, z_um: float | None) -> float:
        k = self._n
        if z_um is None:
            z = (self._z[0] if self._z else 0.0) + k * self.z_step
        else:
            if isinstance(z_um, bool) or not isinstance(
                z_um, (int, float, np.integer, np.floating)
            ):
                raise ValueError(f"z_um must be a finite number of µm, got {z_um!r}")
            z = float(z_um)
            if not math.isfinite(z):
                raise ValueError(f"z_um must be a finite number of µm, got {z_um!r}")
        if k == 0:
            return z
        step = z - self._z[-1]
        if step == 0 or (self._direction and step * self._direction < 0):
            raise ValueError(
                f"z_um must be strictly monotonic over the stack: plane {k} at {z:g} µm after "
                f"{self._z[-1]:g} µm"
            )
        return z

    def add(
        self,
        frame: np.ndarray,
        z_um: float | None = None,
        *,
        focus: np.ndarray | None = None,
        tentative: bool = True,
    ) -> PlaneUpdate:
        """Add the next plane of the stack.

        Parameters
        ----------
        frame : ndarray
            (Y, X) integer or float frame (finite).
        z_um : float, optional
            Plane position in µm (any origin; positions must be strictly monotonic). None:
            ``k * z_step`` after the first plane.
        focus : ndarray, optional
            (Y, X) precomputed focus map of the frame (e.g. on a GPU with the same settings);
            None: :func:`~livefocus.depth.plane_focus` with the settings, computed on the
            module's helper threads while this one measures the frame's noise and support
            (the result is the same either way).
        tentative : bool
            Whether the provisional mask of this plane also judges the undecided peaks on the
            planes seen so far (about a third of the cost of a plane). False: it holds only the
            decided peaks, a subset of the final mask; the final masks are the same either way.

        Returns
        -------
        PlaneUpdate
        """
        if self._finished:
            raise RuntimeError("finish() was called; start a new StackReconstructor")
        img = check_image(frame, "frame")
        if not isinstance(img, np.ndarray):
            img = np.asarray(img.get())
        if img.shape != self.shape:
            raise ValueError(f"frame must have shape {self.shape}, got {img.shape}")
        if img.dtype.kind == "f" and img.dtype.itemsize > 4:
            big = max(float(img.max()), -float(img.min()))
            if big > _FLOAT32_MAX:
                raise ValueError(
                    f"frame values reach {big:.3g}, beyond float32 ({_FLOAT32_MAX:.3g}); scale "
                    "the frame down"
                )
            if 0 < big < _FLOAT32_TINY:  # float32 flushes them to 0: nothing is found
                raise ValueError(
                    f"frame values reach only {big:.3g}, below float32's least normal number "
                    f"({_FLOAT32_TINY:.3g}); scale the frame up"
                )
        z = self._check_z(z_um)
        pending: Future[np.ndarray] | None = None
        if focus is None:
            # the focus map (about a quarter of a plane's cost) is computed on a second core
            # while this thread measures the frame's noise and support
            pending = _beside(plane_focus, img, self.settings)
        else:
            given: Any = focus
            if type(given).__module__.split(".")[0] == "cupy":
                given = given.get()
            fmap = np.asarray(given)
            if fmap.shape != self.shape:
                raise ValueError(f"focus must have shape {self.shape}, got {fmap.shape}")
            if not (
                np.issubdtype(fmap.dtype, np.floating) or np.issubdtype(fmap.dtype, np.integer)
            ):
                raise ValueError(f"focus must be a numeric map, got dtype {fmap.dtype}")
            fmap = fmap.astype(np.float32)
            if not np.isfinite(fmap).all():
                raise ValueError("focus contains NaN or inf values; expected a finite map")

        try:
            sigma = noise_sigma(img, self.settings)
            support = plane_support(img, self.settings, sigma)
        finally:
            if pending is not None:
                fmap = pending.result()
        if pending is not None and not np.isfinite(fmap).all():
            raise ValueError(
                "frame values are so large that their focus map exceeds float32; scale "
                "the frame down"
            )
        # the plane's Otsu threshold needs its map only: on the second core meanwhile
        otsu = _beside(otsu_threshold, fmap)
        raw_map, fmap = fmap, intensity_units(fmap, self.settings)  # what the rule judges
        self._grow()
        k = self._n
        if k == 1:
            self._direction = 1.0 if z > self._z[0] else -1.0
        self._focus[k] = fmap
        self._sigma.append(sigma)
        self._support[k] = support
        self._z.append(z)
        self._curve.append(float(raw_map.mean(dtype=np.float64)))
        self._n = k + 1
        self._update_global(fmap, img, k, z)

        # decide the peaks that now have R planes after them, then deliver final masks
        r = self.settings.peak_radius
        while self._decided <= self._n - 1 - r:
            self._decide(self._decided, self._n)
        final = self._deliver(everything=False)

        provisional = self._masks[k].copy()  # plane k is never final yet (R >= 1)
        if tentative:
            self._tentative_into(provisional, k)
        # as the final mask will be (which only grows from it): a subset of it stays a subset
        provisional = without_specks(provisional, self.settings.min_area)
        threshold = float(otsu.result())
        return PlaneUpdate(k, raw_map, raw_map > threshold, provisional, final, threshold)

    # -- per-pixel curve state ------------------------------------------------------------
    def _update_global(self, f: np.ndarray, frame: np.ndarray, k: int, z: float) -> None:
        """Update each pixel's highest peak so far and the samples around it (O(H * W))."""
        self._cache.clear()
        pixels = frame.astype(np.float32)
        flat = f.reshape(-1)
        before = self._focus[k - 1].reshape(-1) if k > 0 else flat
        zrel = z - (self._z[0] if self._z else z)
        state = tuple(getattr(self, "_" + name).reshape(-1) for name in CURVE_FIELDS)
        idx = update_curves(
            flat,
            self._support[k].reshape(-1),
            pixels.reshape(-1),
            self._prev.reshape(-1),
            before,
            k,
            zrel,
            state,
            self._after,
        )
        if k >= 2 and self.settings.refine != "none":
            # these peaks (on plane k - 1) now have both neighbours: refine them for good
            fm, f0, fp = (v.ravel()[idx] for v in (self._fm, self._fmax, f))
            if self.settings.refine == "gaussian":
                fm, f0, fp = (np.log(np.maximum(v, _TINY)) for v in (fm, f0, fp))
            a, b = self._z[k - 2] - self._z[k - 1], z - self._z[k - 1]
            off, ok = fit_vertex(fm, f0, fp, a, b)
            lo, hi = sorted((a / 2.0, b / 2.0))
            off = np.where(ok, np.clip(off, np.float32(lo), np.float32(hi)), np.float32(0))
            self._off_inner.reshape(-1)[idx] = off
        self._prev = pixels

    def _rel_z(self) -> np.ndarray:
        """Plane positions in µm above the lowest plane so far (the first, going up)."""
        z = np.asarray(self._z, np.float64)
        rel: np.ndarray = z - z.min()
        return rel

    def _samples(self, planes: tuple[int, int, int], idx: np.ndarray | None) -> list[np.ndarray]:
        """Focus scores of three planes (at flat pixels ``idx``, or all), logs for Gaussians."""
        f = self._focus
        out = [f[i].ravel()[idx] if idx is not None else f[i] for i in planes]
        if self.settings.refine == "gaussian":
            out = [np.log(np.maximum(v, _TINY)) for v in out]
        return out

    def _edgefit_vertex(
        self, e: int, n: int, idx: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offset (µm) from ``z_e`` of the focus peak of pixels whose highest score is on the
        edge plane ``e`` (first, or last of ``n``), and where that peak is in focus there.

        The parabola through the edge plane and the two next to it must open downwards with
        its vertex at most half the depth of field beyond the edge plane.
        """
        inward = 1 if e == 0 else -1
        e1, e2 = e + inward, e + 2 * inward
        z = self._z
        a, b = z[e] - z[e1], z[e2] - z[e1]
        fe, f1, f2 = self._samples((e, e1, e2), idx)
        off, ok = fit_vertex(fe, f1, f2, a, b)
        step = z[e1] - z[e]
        sign = np.float32(1.0 if step > 0 else -1.0)
        inside = (off + np.float32(step)) * sign  # vertex from z_e, positive towards the stack
        ok &= inside >= np.float32(-self._half)
        inside = np.clip(inside, np.float32(-self._half), np.float32(abs(step) / 2.0))
        return np.where(ok, inside * sign, np.float32(0.0)).astype(np.float32), ok

    def _peak(self, j: int, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Confident peaks of plane ``j`` judged on planes ``< n``: flat pixels and offsets.

        Plane ``n - 1`` counts as the last plane of the stack (so provisional masks judge the
        newest plane as if the stack ended there). Offsets are µm from ``z_j`` (None: none).
        """
        r = self.settings.peak_radius
        lo, hi = max(0, j - r), min(n - 1, j + r)
        window = self._focus[lo : hi + 1].reshape(hi + 1 - lo, -1)
        fj = window[j - lo]
        edge = j == 0 or j == n - 1
        if edge and (n < 3 or hi - lo < 2):
            return np.zeros(0, np.intp), None
        sup = self._support[lo : hi + 1].reshape(hi + 1 - lo, -1)
        # a mask paints the planes around the refined peak, which lies between j - 1 and
        # j + 1: the support there counts (a halo has its most support planes further away)
        cand, base, s_j, s_most, s_near = peak_candidates(window, sup, j - lo, edge, self._cand)
        cand = cand.copy()  # a view of the buffer, which the next call reuses
        peak = fj[cand]
        conf = 1 - base / peak
        keep = conf > np.float32(self.settings.min_confidence)
        keep &= self._clear_of_noise(peak, base, j)
        peaks = keep.copy()
        keep &= self._supported(s_j, s_most, s_near)
        if self.settings.min_support > 0:
            # support propagates within an object: a peak enclosed by supported peaks of the
            # same plane (a weakly textured interior, wider than the top-hat; the supported
            # peaks first closed over gaps of support_close pixels, noise's speckle) counts too
            inside = np.zeros(self.shape[0] * self.shape[1], bool)
            inside[cand[keep]] = True
            grid = enclosed(inside.reshape(self.shape), self.settings.support_close)
            keep |= peaks & grid.reshape(-1)[cand]
        idx = cand[keep]
        if edge:
            offset, ok = self._edgefit_vertex(j, n, idx)
            idx, offset = idx[ok], offset[ok]
            return idx, None if self.settings.refine == "none" else offset
        if self.settings.refine == "none":
            return idx, None
        a, b = self._z[j - 1] - self._z[j], self._z[j + 1] - self._z[j]
        fm, f0, fp = self._samples((j - 1, j, j + 1), idx)
        off, ok = fit_vertex(fm, f0, fp, a, b)
        lo_off, hi_off = sorted((a / 2.0, b / 2.0))
        return idx, np.clip(off, np.float32(lo_off), np.float32(hi_off))

    def _clear_of_noise(self, peak: np.ndarray, base: np.ndarray, j: int) -> np.ndarray:
        """Where a peak of plane ``j`` stands above its base by more than the noise floor."""
        floor = np.float32(self.settings.noise_floor * self._sigma[j])
        return np.asarray(peak - base > floor)

    def _supported(
        self, support: np.ndarray, most: np.ndarray, near: np.ndarray | None = None
    ) -> np.ndarray:
        """Where the pixel itself stands out of its background (``min_support``; 0: anywhere)
        and its support ``near`` the peak (default: ``support``) is at least ``support_peak``
        of the most it has on the planes judged (``most``)."""
        s = self.settings
        if s.min_support == 0:
            return np.ones(support.shape, bool)
        ok = support > np.float32(s.min_support)
        if near is None:
            near = support
        return np.asarray(ok & (near >= np.float32(s.support_peak) * most))

    def _reach(self, j: int, n: int) -> range:
        """Planes ``k < n`` that a peak at plane ``j`` can put in focus."""
        z = self._z
        half = self._half
        lo_k = j
        lower_mid = z[j] if j == 0 else (z[j - 1] + z[j]) / 2
        while lo_k > 0 and abs(z[lo_k - 1] - lower_mid) <= half:
            lo_k -= 1
        hi_k = j
        upper_mid = z[j] if j >= n - 1 else (z[j] + z[j + 1]) / 2
        while hi_k < n - 1 and abs(z[hi_k + 1] - upper_mid) <= half:
            hi_k += 1
        return range(lo_k, hi_k + 1)

    def _paint(
        self,
        j: int,
        n: int,
        idx: np.ndarray,
        offset: np.ndarray | None,
        into: dict[int, np.ndarray],
    ) -> None:
        """Mark the peaks ``idx`` of plane ``j`` in the masks ``into`` of the planes they reach."""
        if idx.size == 0:
            return
        half = np.float32(self._half)
        for k in self._reach(j, n):
            if k not in into:
                continue
            dz = np.float32(self._z[j] - self._z[k])
            if offset is None:
                sel = idx if abs(dz) <= half else idx[:0]
            else:
                sel = idx[np.abs(offset + dz) <= half]
            into[k].reshape(-1)[sel] = True

    def _decide(self, j: int, n: int) -> None:
        ok, offset = self._peak(j, n)
        self._ever.reshape(-1)[ok] = True
        targets = {k: self._masks[k] for k in range(max(self._delivered, 0), n)}
        self._paint(j, n, ok, offset, targets)
        self._decided = j + 1

    def _tentative_into(self, mask: np.ndarray, k: int) -> None:
        """Add to ``mask`` (plane ``k``, the newest) the undecided peaks judged on what is known."""
        n = self._n
        for j in range(n - 1, self._decided - 1, -1):
            if j < n - 1 and abs((self._z[j] + self._z[j + 1]) / 2 - self._z[k]) > self._half:
                break
            ok, offset = self._peak(j, n)
            self._paint(j, n, ok, offset, {k: mask})

    def _deliver(self, *, everything: bool) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        n = self._n
        z = self._z
        while self._delivered < n:
            k = self._delivered
            if not everything:
                # first undecided peak j0 must lie after k, beyond half the depth of field
                j0 = self._decided
                if j0 <= k or abs((z[j0 - 1] + z[j0]) / 2 - z[k]) <= self._half:
                    break
            # the plane's mask is complete: its specks go, here as in the result, and it grows
            # into its objects' flat regions
            s = self.settings
            self._masks[k] = without_specks(self._masks[k], s.min_area)
            if s.grow_share > 0:
                self._masks[k] = self._grown(k)
            self._masks[k] = closed(self._masks[k], s.mask_close, s.mask_holes)
            out[k] = self._masks[k].copy()
            self._delivered += 1
        return out

    def _grown(self, k: int) -> np.ndarray:
        """Plane ``k``'s mask grown into its objects' flat regions (``grow_share``), judged on
        the planes seen so far."""
        s = self.settings
        mask: np.ndarray = self._masks[k]
        support = self._support[k].reshape(-1)
        # the cheap tests first, over the frame; the others at the pixels that pass them
        idx = np.flatnonzero((support > np.float32(s.min_support)) & ~self._ever.reshape(-1))
        if idx.size == 0 or not mask.any():
            return mask
        flat = np.float32(s.grow_flat)
        idx = idx[self._focus[k].reshape(-1)[idx] >= flat * self._fmax.reshape(-1)[idx]]
        near = [j for j in range(self._n) if abs(self._z[j] - self._z[k]) <= 3.0 * self._half]
        lo, hi = min(near), max(near) + 1
        most = self._support[lo:hi].reshape(hi - lo, -1)[:, idx].max(axis=0, initial=0.0)
        idx = idx[support[idx] >= flat * most]
        candidates = np.zeros(self.shape, bool)
        candidates.reshape(-1)[idx] = True
        return grown(mask, candidates, s.grow_share, s.min_area)

    # -- current state --------------------------------------------------------------------
    def _best(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Refined depth (µm above the lowest plane, NaN where not confident), its offset from
        the highest plane, and the confidence, as if the stack ended with the newest plane
        (cached)."""
        if self._n == 0:
            raise RuntimeError("no plane has been added yet")
        cached = self._cache.get("best")
        if cached is not None:
            return cached
        n = self._n
        arg = self._arg
        fmax = self._fmax
        if n < 3:  # too few planes to judge a peak
            base = fmax.copy()
            off = np.zeros(self.shape, np.float32)
        else:
            base = np.maximum(self._leftmin, self._rightmin)
            off = self._off_inner.copy()
            # peaks on the first plane: the fit depends on the first three planes only
            if self._first_fit is None:
                self._first_fit = self._edgefit_vertex(0, n, None)
            edge_off, ok = self._first_fit
            at_first = arg == 0
            np.copyto(base, self._rightmin, where=at_first & ok)
            np.copyto(base, fmax, where=at_first & ~ok)
            np.copyto(off, edge_off, where=at_first & ok)
            # peaks on the newest plane, judged as if the stack ended there
            idx = np.flatnonzero(arg == n - 1)
            if idx.size:
                edge_off, ok = self._edgefit_vertex(n - 1, n, idx)
                left, peak = self._leftmin.reshape(-1)[idx], fmax.reshape(-1)[idx]
                base.reshape(-1)[idx] = np.where(ok, left, peak)
                off.reshape(-1)[idx] = edge_off
            if self.settings.refine == "none":
                off[...] = 0
        with np.errstate(invalid="ignore", divide="ignore"):
            prom = 1 - np.divide(base, fmax, out=np.ones_like(fmax), where=fmax > 0)
        prom = np.clip(prom, 0.0, 1.0).astype(np.float32)
        sigma = np.asarray(self._sigma, np.float32)[self._arg]
        height = (fmax - base) / sigma
        ok = (height > np.float32(self.settings.noise_floor)) & self._supported(
            self._s_at, self._s_max
        )
        confident = ok & (prom > np.float32(self.settings.min_confidence))
        # the peak's own confidence weighs its depth in the smoothing
        support = self._s_at.copy()
        own = peak_features(prom, support, height)
        conf = np.where(confident, peak_weight(own, prom), np.float32(0))
        depth = np.where(confident, self._zarg + off, np.float32(np.nan)).astype(np.float32)
        if self.settings.ambiguous_peak > 0 and n >= 3:
            # a second peak nearly as high: the pixel mixes two depths (a step, two layers)
            rival = rival_peak(self._focus[:n], self._arg)
            ambiguous = rival >= np.float32(self.settings.ambiguous_peak)
            depth[ambiguous] = np.nan
            conf[ambiguous] = 0
        if self.settings.outlier_tolerance > 0:
            keep = consistent(
                depth,
                tolerance=self.settings.outlier_tolerance * self.z_step,
                size=self.settings.outlier_size,
            )
            depth[~keep] = np.nan
            conf[~keep] = 0
        for _ in range(self.settings.smooth_passes if self.settings.smooth_radius > 0 else 0):
            depth = smooth_depth(
                depth,
                conf,
                tolerance=self.settings.smooth_tolerance * self.z_step,
                radius=self.settings.smooth_radius,
            )
        if self.settings.guide_radius > 0:
            depth = guided_smooth(
                depth,
                conf,
                radius=self.settings.guide_radius,
                eps=self.settings.guide_eps * self.z_step**2,
            )
        # µm above the lowest plane, within the stack: a peak beyond an edge plane (up to half
        # the depth of field) is put on that plane, and a descending stack counts upwards too
        z = np.asarray(self._z, np.float64)
        low, high = float(z.min() - z[0]), float(z.max() - z[0])
        depth = np.clip(depth - np.float32(low), np.float32(0), np.float32(high - low))
        # the reported confidence also counts how many neighbours keep a depth
        has = np.isfinite(depth)
        density = depth_density(has)
        probability = np.where(has, calibrated(own, prom, density), np.float32(0))
        if self.settings.min_probability > 0:
            # a depth more likely wrong than the least a user is given (isolated noise peaks
            # on textureless ground, mostly) is dropped; the density stays as counted before
            unlikely = has & (probability < np.float32(self.settings.min_probability))
            depth[unlikely] = np.nan
            probability[unlikely] = 0
        # the calibration is refitted from these (tests/support/calibrate.py)
        self._features = (prom, support, height, density)
        result = (depth, off, probability.astype(np.float32))
        self._cache["best"] = result
        return result

    @property
    def confidence(self) -> np.ndarray:
        """float32 (Y, X) in [0, 1]: probability that the pixel's depth is right (within half
        the depth of field), 0 where it has none.

        The highest peak's prominence (``1 - max(min left, min right) / peak`` over the whole
        curve; a peak on the first or newest plane judged on its one side, and only when a
        parabola through the edge planes puts it within half the depth of field of that plane),
        its support and its height over noise, and the share of the 5 x 5 pixels around it
        that keep a depth too, mapped by a logistic model fitted on the simulator
        (:mod:`livefocus.depth._calibration`). The depth smoothing weighs each depth by the
        peak's own features alone.
        """
        return self._best()[2].copy()

    @property
    def depth(self) -> np.ndarray:
        """float32 (Y, X) current depth in µm above the lowest plane (within the stack's span),
        NaN where not confident, where a second peak nearly as high makes it ambiguous
        (``ambiguous_peak``) or where it is a ghost (``outlier_tolerance``); smoothed
        edge-aware and weighted by confidence (:func:`~livefocus.depth.smooth_depth`)."""
        return self._best()[0].copy()

    @property
    def all_in_focus(self) -> np.ndarray:
        """float32 (Y, X) each pixel interpolated between the frames around its refined depth."""
        _, off, _ = self._best()
        if self._n < 2:
            return self._raw_at.copy()
        zr = self._rel_z().astype(np.float32)
        arg = self._arg
        toward_next = off * np.float32(self._direction) > 0
        other = np.clip(np.where(toward_next, arg + 1, arg - 1), 0, self._n - 1)
        dz = np.abs(zr[other] - zr[arg])
        t = np.divide(np.abs(off), dz, out=np.zeros_like(off), where=dz > 0)
        nb = np.where(toward_next, self._raw_p, self._raw_m)
        out: np.ndarray = ((1 - t) * self._raw_at + t * nb).astype(np.float32)
        return out

    @property
    def curve(self) -> np.ndarray:
        """float64 (k,) mean focus score of each plane so far."""
        return np.asarray(self._curve, np.float64)

    # -- end of stack ---------------------------------------------------------------------
    def finish(self) -> tuple[StackResult, dict[int, np.ndarray]]:
        """Close the stack: decide the remaining peaks and build the result.

        Returns
        -------
        result : StackResult
            The stack's reconstruction.
        final : dict of int to ndarray
            The depth masks that become final only now (the other planes' were delivered by
            :meth:`add`).
        """
        if self._finished:
            raise RuntimeError("finish() was already called")
        n = self._n
        if n == 0:
            raise ValueError("the stack has no planes: add at least one frame before finish()")
        while self._decided < n:
            self._decide(self._decided, n)
        final = self._deliver(everything=True)
        self._finished = True
        focus = self._focus[:n]
        meta: dict[str, Any] = {
            **self.settings.as_dict(),
            "depth_of_field_um": self.depth_of_field,
            "z_step_um": self.z_step,
            "n_planes": n,
            "mask_depth_rule": "local-peaks, object support, noise floor",
            "mask_otsu_scope": "stack",
        }
        result = StackResult(
            focus=focus,
            mask_otsu=np.asarray(weak_labels(focus, scope="stack")),
            mask_depth=self._masks[:n].copy(),
            depth=self.depth,
            all_in_focus=self.all_in_focus,
            confidence=self.confidence,
            z_um=self._rel_z(),
            meta=meta,
        )
        return result, final
