"""Focus measures, sliding-window focus-score maps, weak labels and axial curves."""

from livefocus.focus.curves import axial_curve, axial_curves
from livefocus.focus.labels import otsu_threshold, weak_labels
from livefocus.focus.measures import MEASURES, entropy_bins, window_score
from livefocus.focus.reference import PAPER_STRIDES, PAPER_WINDOW, focus_map_reference
from livefocus.focus.sliding import focus_map, focus_maps, window_scores

__all__ = [
    "MEASURES",
    "PAPER_STRIDES",
    "PAPER_WINDOW",
    "axial_curve",
    "axial_curves",
    "entropy_bins",
    "focus_map",
    "focus_map_reference",
    "focus_maps",
    "otsu_threshold",
    "weak_labels",
    "window_score",
    "window_scores",
]
