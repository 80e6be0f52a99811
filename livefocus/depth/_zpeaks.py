"""A stack's final model masks: the peaks in z of the in-focus probability.

A U-Net judges each plane with the planes before it (it is causal, so that a plane's mask is
ready when the plane arrives); it cannot see whether the next plane is sharper still, so on
its own it marks the planes on the way up to focus too. Like the depth rule, which paints the
planes around each pixel's focus peak, the final mask keeps, for each pixel, the planes
around the local maxima in z of the probability:

- plane ``j`` is a **peak** where its probability is above ``threshold`` and no plane within
  ``radius`` planes of it (in the stack) has a higher one;
- plane ``k`` is **in focus** where a peak lies within ``paint`` planes of it and its own
  probability is above ``floor``; with ``lean`` (the shipped rule) the planes exactly ``paint``
  away from a peak count only on the side of its higher neighbour, where the parabola through
  the peak and its two neighbours has its vertex (both sides on a tie, and at the stack's ends,
  beyond which a plane counts as -inf). This is the depth rule's painting, ``|d_j - z_k| <=
  paint`` around a sub-plane peak ``d_j`` within half a plane of ``j``: with ``paint=1`` a
  peak paints 2 planes, or 3 where its neighbours are equal, as the structure lies between two
  planes or on one.

Plane ``k``'s final mask therefore needs the planes up to ``k + radius + paint``
(:attr:`ZPeaks.lag`); :class:`ZPeakFinaliser` gives each plane's final mask as soon as they
have arrived, and the rest at the stack's end, equal to :func:`peak_masks` of the whole
stack. The defaults are the shipped ``depth`` model's, chosen on the selection sets of its
recipe (README, "Two generators and final masks").
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
from scipy import ndimage

from livefocus.focus._validate import check_count, check_positive_int

__all__ = ["ZPeakFinaliser", "ZPeaks", "peak_masks", "peak_masks_reference", "stack_masks"]


@dataclass(frozen=True)
class ZPeaks:
    """The z-peak rule (``"z_peaks"`` in a model's config.json, with ``radius``, ``paint``,
    ``floor`` and ``lean``; its ``threshold`` is the model's own). See the module's text."""

    threshold: float = 0.2
    radius: int = 2
    paint: int = 1
    floor: float = 0.1
    lean: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.lean, (bool, np.bool_)):
            raise ValueError(f"z_peaks lean must be true or false, got {self.lean!r}")
        object.__setattr__(self, "lean", bool(self.lean))
        for name in ("threshold", "floor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real):
                raise ValueError(f"z_peaks {name} must be a number in [0, 1), got {value!r}")
            if not 0 <= float(value) < 1:
                raise ValueError(f"z_peaks {name} must be in [0, 1), got {value!r}")
            object.__setattr__(self, name, float(value))  # a numpy scalar compares as a float
        check_positive_int(self.radius, "z_peaks radius")
        check_count(self.paint, "z_peaks paint")

    @property
    def lag(self) -> int:
        """Planes after plane ``k`` that its final mask needs."""
        return self.radius + self.paint

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ZPeaks | None:
        """The rule of a model's config.json; None for a model without one (a plain
        threshold). A rule without ``"lean"`` (folders written before it) paints both sides."""
        rule = config.get("z_peaks")
        if rule is None:
            return None
        if not isinstance(rule, dict):
            raise ValueError(f"z_peaks must be a mapping, got {rule!r}")
        unknown = set(rule) - {"radius", "paint", "floor", "lean"}
        if unknown:
            raise ValueError(f"z_peaks has unknown keys {sorted(unknown)}")
        return cls(threshold=float(config.get("threshold", 0.5)), **{"lean": False, **rule})

    def as_config(self) -> dict[str, Any]:
        """The ``"z_peaks"`` entry of config.json (the threshold is the model's own)."""
        return {"radius": self.radius, "paint": self.paint, "floor": self.floor, "lean": self.lean}


def _finite(probability: Any) -> np.ndarray:
    """float32 probabilities with NaN as -inf (never a peak, never the highest), as the three
    implementations of the rule take them."""
    p = np.asarray(probability, dtype=np.float32)
    nan = np.isnan(p)
    return np.where(nan, np.float32(-np.inf), p) if nan.any() else p


def peak_masks(probability: np.ndarray, rule: ZPeaks) -> np.ndarray:
    """bool (Z, Y, X): the final masks of a stack's probabilities (Z, Y, X), in stack order.

    A single plane (Z = 1) is its own peak: its mask is its probability above the threshold.
    NaN counts as -inf, as a plane without a probability does in :class:`ZPeakFinaliser`.
    """
    p = _finite(probability)
    if p.ndim != 3:
        raise ValueError(f"probability must be (Z, Y, X), got shape {p.shape}")
    # "nearest" repeats the edge planes, which never raises the maximum: the same as
    # judging each plane within the planes of the stack only
    top = ndimage.maximum_filter1d(p, 2 * rule.radius + 1, axis=0, mode="nearest")
    peak = (p >= top) & (p > rule.threshold)
    if rule.paint:
        reach = rule.paint - 1 if rule.lean else rule.paint
        near = peak
        if reach:
            near = ndimage.maximum_filter1d(
                peak.view(np.uint8), 2 * reach + 1, axis=0, mode="constant", cval=0
            ).astype(bool)
        if rule.lean:
            # the planes `paint` away: only on the side of the peak's higher neighbour
            below = np.concatenate([np.full_like(p[:1], -np.inf), p[:-1]])
            above = np.concatenate([p[1:], np.full_like(p[:1], -np.inf)])
            d = rule.paint
            up, down = peak & (above >= below), peak & (below >= above)
            near = near.copy()
            near[d:] |= up[:-d]
            near[:-d] |= down[d:]
        peak = near
    return np.asarray(peak & (p > rule.floor))


def stack_masks(
    probability: np.ndarray, threshold: float, rule: ZPeaks | None, *, nz: int | None = None
) -> np.ndarray:
    """bool (Z, Y, X): a stack's masks as a model gives them from its probabilities (Z, Y, X):
    ``rule``'s final masks, or, for a model without one, each probability above
    ``threshold``. ``nz``: the planes are consecutive stacks of ``nz`` planes each, judged
    each on its own."""
    p = np.asarray(probability)
    if rule is None:
        return np.asarray(p > threshold)
    if nz is None:
        return peak_masks(p, rule)
    stacks = p.reshape(-1, int(nz), *p.shape[1:])
    return np.concatenate([peak_masks(s, rule) for s in stacks])


def peak_masks_reference(probability: np.ndarray, rule: ZPeaks) -> np.ndarray:
    """Referee of :func:`peak_masks`: the rule pixel by pixel, plane by plane."""
    p = _finite(probability)
    nz = p.shape[0]
    out = np.zeros(p.shape, dtype=bool)
    for y in range(p.shape[1]):
        for x in range(p.shape[2]):
            col = p[:, y, x]
            peaks = [
                j
                for j in range(nz)
                if col[j] > rule.threshold
                and col[j] >= col[max(0, j - rule.radius) : j + rule.radius + 1].max()
            ]
            for k in range(nz):
                if col[k] > rule.floor and any(_reaches(col, j, k, rule) for j in peaks):
                    out[k, y, x] = True
    return out


def _reaches(col: np.ndarray, j: int, k: int, rule: ZPeaks) -> bool:
    """Whether the peak at plane ``j`` of a pixel's probabilities ``col`` paints plane ``k``."""
    d = k - j
    if abs(d) < rule.paint or d == 0:
        return True
    if abs(d) > rule.paint:
        return False
    if not rule.lean:
        return True
    below = float(col[j - 1]) if j > 0 else -math.inf
    above = float(col[j + 1]) if j + 1 < len(col) else -math.inf
    return above >= below if d > 0 else below >= above


def _plane_mask(planes: list[np.ndarray | None], k: int, rule: ZPeaks) -> np.ndarray:
    """Plane ``k``'s mask under ``rule``, the list being the stack (its ends clipping the
    windows; None: a plane without a probability, which is never a peak and never the
    highest): only the planes within ``rule.lag`` of ``k`` are read, as :func:`peak_masks` of
    the whole list gives it (None as -inf)."""
    n = len(planes)
    own = planes[k]
    if own is None:
        raise ValueError(f"plane {k} has no probability")
    near = np.zeros(own.shape, dtype=bool)
    for j in range(max(0, k - rule.paint), min(n, k + rule.paint + 1)):
        pj = planes[j]
        if pj is None:
            continue
        top = pj
        for q in range(max(0, j - rule.radius), min(n, j + rule.radius + 1)):
            pq = planes[q]
            if pq is not None and q != j:
                top = np.maximum(top, pq)
        peak = (pj >= top) & (pj > rule.threshold)
        if rule.lean and rule.paint and abs(k - j) == rule.paint:
            # the far plane on the side of the higher neighbour only (see the module's text)
            low, high = _neighbour(planes, j - 1), _neighbour(planes, j + 1)
            peak &= np.asarray(high >= low) if k > j else np.asarray(low >= high)
        near |= peak
    return np.asarray(near & (own > rule.floor))


def _neighbour(planes: list[np.ndarray | None], q: int) -> np.ndarray | float:
    """Plane ``q``'s probabilities, or -inf outside the stack and for a plane without one."""
    if 0 <= q < len(planes):
        pq = planes[q]
        if pq is not None:
            return pq
    return -math.inf


class ZPeakFinaliser:
    """The z-peak rule plane by plane: keeps the last ``2 * lag + 1`` probabilities only.

    ``add(p, index)`` takes plane ``index`` of the stack (increasing; default: the next) and
    returns the final masks its arrival completes, as ``{index: mask}``; planes skipped (a
    dropped frame) and planes added with ``p`` None (a failed prediction) have no probability:
    they are never a peak nor the highest within a window, and get no mask. ``finish()``
    returns the rest. Together they equal :func:`peak_masks` of the stack with those planes at
    -inf. ``provisional()`` is the newest plane's mask judged with the planes so far (as if
    the stack ended there). Each reads the planes within ``lag`` of the plane it judges only
    (about 25 array operations of a frame each).
    """

    def __init__(self, rule: ZPeaks) -> None:
        self.rule = rule
        self._recent: deque[np.ndarray | None] = deque(maxlen=2 * rule.lag + 1)
        self._next = 0  # the index the next plane would have
        self._done = 0  # planes below this have had their final mask

    def add(
        self, probability: np.ndarray | None, index: int | None = None
    ) -> dict[int, np.ndarray]:
        at = self._next if index is None else int(index)
        if at < self._next:
            raise ValueError(f"plane index must increase: {at} after {self._next - 1}")
        out: dict[int, np.ndarray] = {}
        while self._next <= at:  # the skipped planes first, as planes without a probability
            plane = None if self._next < at or probability is None else probability
            self._recent.append(None if plane is None else _finite(plane))
            self._next += 1
            out.update(self._finals(self._next - 1 - self.rule.lag))
        return out

    def provisional(self) -> np.ndarray:
        """The newest plane's mask from the planes so far (an error when it has no
        probability)."""
        planes = list(self._recent)
        if not planes:
            raise ValueError("provisional() needs a plane: add one first")
        if planes[-1] is None:
            raise ValueError("the newest plane has no probability")
        return _plane_mask(planes, len(planes) - 1, self.rule)

    def finish(self) -> dict[int, np.ndarray]:
        return self._finals(self._next - 1)

    def _finals(self, last: int) -> dict[int, np.ndarray]:
        """Final masks of planes ``_done .. last`` that have a probability."""
        if last < self._done:
            return {}
        first_kept = self._next - len(self._recent)
        planes = list(self._recent)
        out = {
            k: _plane_mask(planes, k - first_kept, self.rule)
            for k in range(self._done, last + 1)
            if planes[k - first_kept] is not None
        }
        self._done = last + 1
        return out
