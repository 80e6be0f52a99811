"""How a Z-stack is reconstructed: :class:`ReconstructSettings`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from livefocus._vocab import REFINEMENTS, Measure, Paint, Refinement, check_choice
from livefocus.focus._validate import (
    check_measure,
    check_positive_int,
    check_positive_number,
    check_strides,
)
from livefocus.focus.measures import MIN_WINDOW, NOISE_SCALE
from livefocus.focus.reference import check_paint
from livefocus.io import Z_STEP_RANGE_UM

__all__ = ["POLARITIES", "REFINEMENTS", "ReconstructSettings", "check_shape"]

Polarity = Literal["auto", "bright", "dark", "both"]
#: What counts as specimen in a frame (see ``ReconstructSettings.polarity``).
POLARITIES: tuple[str, ...] = get_args(Polarity)

#: Default window (pixels) for frames up to 1024 pixels on a side.
_BASE_WINDOW = 6


def check_shape(shape: Any) -> tuple[int, int]:
    """``shape`` as (Y, X) positive integers, or a ValueError naming it."""
    try:
        values = tuple(shape)
    except TypeError:
        values = ()
    # integers only: int() took 64.5, "64" and True (a 1 x 1 frame)
    whole = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
    if len(values) != 2 or not whole:
        raise ValueError(f"shape must be (Y, X) integers, got {shape!r}")
    ny, nx = int(values[0]), int(values[1])
    if ny < 1 or nx < 1:
        raise ValueError(f"shape must be positive (Y, X), got {shape!r}")
    return ny, nx


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_fuse(fuse: Any, measure: str) -> tuple[Measure, ...]:
    if isinstance(fuse, str) or not isinstance(fuse, (tuple, list)):
        raise ValueError(f"fuse must be a tuple of measure names, got {fuse!r}")
    try:
        names = tuple(check_measure(m) for m in fuse)
    except ValueError as exc:
        raise ValueError(f"fuse: {exc}") from None
    if names:
        bad = [m for m in (measure, *names) if m not in NOISE_SCALE]
        if bad:
            raise ValueError(
                f"fuse: {', '.join(bad)} cannot be fused (no noise law); fusable measures are "
                f"{', '.join(NOISE_SCALE)}"
            )
    if measure in names or len(set(names)) < len(names):
        raise ValueError(f"fuse: a measure is repeated in {(measure, *names)!r}")
    return names


def _non_negative_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def _non_negative(value: Any, name: str) -> float:
    v = _number(value, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


@dataclass(frozen=True)
class ReconstructSettings:
    """How a stack is reconstructed (defaults tuned on the simulator; see the README).

    Attributes
    ----------
    measure : str
        Focus measure of :func:`livefocus.focus_map`, one with a noise law
        (:data:`livefocus.focus.measures.NOISE_SCALE`: not vollath, smd2 or entropy). Its
        maps are judged in intensity units (:func:`~livefocus.depth.intensity_units`).
    fuse : tuple of str
        Further measures fused with ``measure`` (:func:`~livefocus.depth.plane_focus`: the
        geometric mean of the maps, each in intensity units; every one must be in
        :data:`livefocus.focus.measures.NOISE_SCALE`). Empty (the default): ``measure`` alone.
        Measured on the simulator and the independent generator, ``("tenengrad",)`` changes
        the depth-mask IoU by -0.002 to +0.009 at twice the focus cost (README).
    window : int
        Window size in pixels. Depth wants fine windows: 6 gives about 0.4 planes of mean
        depth error on simulated 512 x 512 stacks where the paper's 128 gives several planes.
    strides : tuple of int
        Window strides (one stride: the focus map costs O(H * W) per stride).
    paint : {"mean", "sum"}
        ``"mean"`` (default) averages the windows covering a pixel, so the map has no border
        bias; ``"sum"`` is the paper's painting.
    depth_of_field : float or None
        In-focus tolerance in µm: a structure is in focus at a plane within half of it. None:
        twice the stack's ``z_step``.
    min_confidence : float
        A focus peak counts when its prominence (``1 - base / peak``) is above this, in
        [0, 1) (and it passes the support and noise tests below).
    refine : {"parabola", "gaussian", "none"}
        Sub-plane refinement of a peak: vertex of the parabola through the peak plane and its
        neighbours, of the parabola through their logarithms (a Gaussian), or none.
    peak_radius : int
        ``R``: a local peak is the highest score within ``R`` planes on either side, and its
        prominence is measured within that range. Depth masks become final ``R + 1`` planes
        later (uniform step, default depth of field).
    support_size : int
        Size (pixels) of the top-hat that measures a pixel's own signal
        (:func:`~livefocus.depth.plane_support`): structure up to about this size counts.
    support_large : int
        In a frame that votes one polarity (``polarity="auto"``), the top-hat of this size
        counts too, so that objects wider than ``support_size`` on a plain field keep their
        interiors (0, or not above ``support_size``: none). Chosen on the domain-randomised
        stacks (:mod:`livefocus.model.randomise`), as :mod:`livefocus.sim` never votes one way.
    support_smooth : int
        Box (pixels) the frame is smoothed over before the top-hat (1, the default: not
        smoothed; an even box shifts the support by half a pixel).
    support_edge : float
        Pixels whose top-hat is below this fraction of the highest (3 x 3 mean) top-hat within
        7 x 7 pixels lie beyond an object's edge and get no support (0: no cut).
    support_close : int
        Odd. Gaps of up to ``support_close - 1`` pixels between a plane's supported peaks are
        bridged (a square closing) before the peaks they enclose count as supported too
        (1: enclosed holes only).
    support_peak : float
        A peak counts only where the pixel's support on the peak's plane is at least this
        fraction of the most it has on the planes judged, in [0, 1] (a halo lit by a defocused
        object has its most elsewhere).
    polarity : {"auto", "bright", "dark", "both"}
        Which structure is specimen: brighter than its surroundings (fluorescence), darker
        (absorbing objects in brightfield), either (textured surfaces), or decided per frame
        (``"auto"``: the top-hat that holds twice the other's total above ``min_support``
        noise stds, both otherwise).
    min_support : float
        A peak counts only where the pixel itself stands out of its local background on the
        peak's plane by more than this many noise stds (0: no support test).
    noise_floor : float
        A peak counts only where it stands more than this many noise standard deviations
        (of the plane, :func:`~livefocus.depth.noise_sigma`) above its base (0: no floor).
    smooth_radius : int
        Half size of the square over which the depth map is smoothed, edge-aware and weighted
        by confidence (:func:`~livefocus.depth.smooth_depth`; 0: not smoothed).
    smooth_tolerance : float
        Depth difference, in planes (``z_step``), beyond which neighbours hardly count.
    smooth_passes : int
        How many times the smoothing is applied.
    guide_radius : int
        Half size of the square of the self-guided filter applied after the smoothing
        (:func:`~livefocus.depth.guided_smooth`; 0: none): it flattens the depth further at
        the scale of a few windows, where depths vary less than ``sqrt(guide_eps)`` planes.
    guide_eps : float
        Its regularisation, in planes².
    ambiguous_peak : float
        A pixel whose focus curve has a second peak (separated from the highest by a dip below
        half of itself) reaching this fraction of the highest gets no depth: it mixes two
        depths, as at a step or where two layers overlap (its masks keep both; 0: kept).
    outlier_tolerance : float
        A depth further than this many planes (``z_step``) from the median of the depths in
        its ``outlier_size`` square has none (a ghost peak; :func:`~livefocus.depth.consistent`;
        0: kept). Judged before the smoothing.
    outlier_size : int
        Side of that square in pixels (odd, at least 3).
    min_probability : float
        The depth map keeps a depth only where its calibrated confidence (the probability
        that it is right) reaches this, in [0, 1) (0: every confident peak's depth). With
        0.7 (default) isolated depths on textureless ground, which are mostly noise, go.
    min_area : int
        A plane's final depth mask loses its 8-connected regions of fewer than this many
        pixels (specks: a noise peak met a pixel of faint support; 0 or 1: kept; a frame of
        fewer pixels than this has empty masks). The depth map is not touched.
    grow_share : float
        A plane's final mask grows into the flat regions of its objects (smooth interiors with
        no focus peak): the 8-connected region that pixels of the plane's support (above
        ``min_support``), without a focus peak so far and flat in focus and support
        (``grow_flat``) make with the mask joins it where the mask holds at least this share of
        the region and ``min_area`` of its pixels, in [0, 1] (0: no growth). The depth map is
        not touched.
    grow_flat : float
        Those pixels' focus on the plane is at least this fraction of their highest so far,
        and their support at least this fraction of the most they have within one and a half
        depths of field of the plane, in [0, 1].
    mask_close : int
        Odd. A plane's final mask is closed with a square of this size (gaps of up to
        ``mask_close - 1`` pixels between its parts bridged; 1: not closed), then its holes of
        at most ``mask_holes`` pixels are filled (:func:`~livefocus.depth._holes.closed`): an
        object's interior between its in-focus parts on the plane is in focus there too. After
        the specks and the growth. Chosen on the simulator and the randomised stacks (README).
    mask_holes : int
        Largest hole (pixels, 4-connected, not touching the frame's edge) filled (0: none).
    gain, offset, read_noise : float or None
        Camera model (ADU per electron, ADU, ADU): with ``read_noise`` the noise comes from it
        instead of being estimated from each frame.
    """

    measure: Measure = "std"
    fuse: tuple[Measure, ...] = ()
    window: int = _BASE_WINDOW
    strides: tuple[int, ...] = (_BASE_WINDOW // 2,)
    paint: Paint = "mean"
    depth_of_field: float | None = None
    min_confidence: float = 0.15
    refine: Refinement = "parabola"
    peak_radius: int = 6
    support_size: int = 17
    support_large: int = 33
    support_smooth: int = 1
    support_edge: float = 0.4
    support_peak: float = 0.85
    support_close: int = 3
    polarity: Polarity = "auto"
    min_support: float = 5.0
    noise_floor: float = 0.5
    smooth_radius: int = 3
    smooth_tolerance: float = 1.0
    smooth_passes: int = 1
    guide_radius: int = 7
    guide_eps: float = 1.0
    ambiguous_peak: float = 0.7
    outlier_tolerance: float = 1.0
    outlier_size: int = 15
    min_probability: float = 0.7
    min_area: int = 10
    grow_share: float = 0.3
    grow_flat: float = 0.9
    mask_close: int = 5
    mask_holes: int = 144
    gain: float = 1.0
    offset: float = 0.0
    read_noise: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "measure", check_measure(self.measure))
        if self.measure not in NOISE_SCALE:
            # the noise floor and the calibrated confidence compare a peak with the camera's
            # noise: entropy's depth masks were empty, vollath's depth map was
            raise ValueError(
                f"measure {self.measure!r} has no noise law, which the depth analysis needs "
                f"(its noise floor and confidence); it takes {', '.join(NOISE_SCALE)} (the "
                f"weak labels of {self.measure!r} need no depth analysis: "
                "livefocus.focus.weak_labels)"
            )
        set_(self, "fuse", _check_fuse(self.fuse, self.measure))
        set_(self, "window", check_positive_int(self.window, "window"))
        for m in (self.measure, *self.fuse):
            if self.window < MIN_WINDOW[m]:
                raise ValueError(
                    f"window must be at least {MIN_WINDOW[m]} for measure {m!r} (a smaller "
                    f"window scores every pixel 0), got {self.window}"
                )
        set_(self, "strides", check_strides(self.strides))
        set_(self, "paint", check_paint(self.paint))
        if self.depth_of_field is not None:
            set_(
                self,
                "depth_of_field",
                check_positive_number(self.depth_of_field, "depth_of_field", "µm"),
            )
            lo, hi = Z_STEP_RANGE_UM  # as z_step: 1e300 would overflow
            if not lo <= self.depth_of_field <= hi:
                raise ValueError(
                    f"depth_of_field must be from {lo:g} to {hi:g} µm, got {self.depth_of_field!r}"
                )
        conf = self.min_confidence
        if (
            isinstance(conf, bool)
            or not isinstance(conf, (int, float, np.integer, np.floating))
            or not 0.0 <= float(conf) < 1.0
        ):
            raise ValueError(f"min_confidence must be a number in [0, 1), got {conf!r}")
        set_(self, "min_confidence", float(conf))
        set_(self, "refine", check_choice(self.refine, "refine", REFINEMENTS))
        set_(self, "peak_radius", check_positive_int(self.peak_radius, "peak_radius"))
        set_(self, "support_size", check_positive_int(self.support_size, "support_size"))
        set_(self, "support_large", _non_negative_int(self.support_large, "support_large"))
        set_(self, "support_smooth", check_positive_int(self.support_smooth, "support_smooth"))
        set_(self, "support_edge", _non_negative(self.support_edge, "support_edge"))
        set_(self, "support_peak", _non_negative(self.support_peak, "support_peak"))
        close = check_positive_int(self.support_close, "support_close")
        if close % 2 == 0:
            raise ValueError(f"support_close must be an odd int >= 1, got {self.support_close!r}")
        set_(self, "support_close", close)
        if self.support_peak > 1:
            raise ValueError(f"support_peak must be in [0, 1], got {self.support_peak!r}")
        set_(self, "polarity", check_choice(self.polarity, "polarity", POLARITIES))
        set_(self, "min_support", _non_negative(self.min_support, "min_support"))
        set_(self, "noise_floor", _non_negative(self.noise_floor, "noise_floor"))
        set_(self, "smooth_radius", _non_negative_int(self.smooth_radius, "smooth_radius"))
        set_(self, "smooth_passes", check_positive_int(self.smooth_passes, "smooth_passes"))
        set_(self, "guide_radius", _non_negative_int(self.guide_radius, "guide_radius"))
        set_(self, "guide_eps", check_positive_number(self.guide_eps, "guide_eps"))
        set_(self, "outlier_tolerance", _non_negative(self.outlier_tolerance, "outlier_tolerance"))
        rival = _non_negative(self.ambiguous_peak, "ambiguous_peak")
        if rival > 1:
            raise ValueError(f"ambiguous_peak must be in [0, 1], got {self.ambiguous_peak!r}")
        set_(self, "ambiguous_peak", rival)
        size = check_positive_int(self.outlier_size, "outlier_size")
        if size < 3 or size % 2 == 0:
            raise ValueError(f"outlier_size must be an odd int >= 3, got {self.outlier_size!r}")
        set_(self, "outlier_size", size)
        least = _non_negative(self.min_probability, "min_probability")
        if least >= 1:
            raise ValueError(f"min_probability must be in [0, 1), got {self.min_probability!r}")
        set_(self, "min_probability", least)
        set_(self, "min_area", _non_negative_int(self.min_area, "min_area"))
        set_(self, "mask_holes", _non_negative_int(self.mask_holes, "mask_holes"))
        mask_close = check_positive_int(self.mask_close, "mask_close")
        if mask_close % 2 == 0:
            raise ValueError(f"mask_close must be an odd int >= 1, got {self.mask_close!r}")
        set_(self, "mask_close", mask_close)
        for name in ("grow_share", "grow_flat"):
            value = _non_negative(getattr(self, name), name)
            if value > 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
            set_(self, name, value)
        set_(
            self,
            "smooth_tolerance",
            check_positive_number(self.smooth_tolerance, "smooth_tolerance"),
        )
        set_(self, "gain", check_positive_number(self.gain, "gain", "ADU per electron"))
        set_(self, "offset", _number(self.offset, "offset"))
        if self.read_noise is not None:
            set_(self, "read_noise", _non_negative(self.read_noise, "read_noise"))

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["strides"] = list(self.strides)
        out["fuse"] = list(self.fuse)
        return out

    @classmethod
    def for_frame(cls, shape: tuple[int, int], **overrides: Any) -> ReconstructSettings:
        """Default settings for frames of ``shape`` (Y, X), with ``overrides`` applied.

        The window is 6 pixels up to 1024 pixels on the longer side and grows with the frame
        beyond (12 for 2048 x 2048, 18 for 3072), with one stride of half the window, so that
        the focus map of a large frame stays cheap (its cost grows with the number of windows).

        Parameters
        ----------
        shape : tuple of int
            Frame shape (Y, X).
        **overrides
            Any field of :class:`ReconstructSettings`.

        Returns
        -------
        ReconstructSettings
        """
        ny, nx = check_shape(shape)
        window = _BASE_WINDOW * max(1, round(max(ny, nx) / 1024))
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)}; "
                f"expected any of {', '.join(sorted(fields))}"
            )
        values: dict[str, Any] = {"window": window, "strides": (max(1, window // 2),)}
        values.update(overrides)
        return cls(**values)
