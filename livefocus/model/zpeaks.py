"""Moved to :mod:`livefocus.depth` (a stack's final masks from its probabilities are Z-stack
analysis, and streaming without a model then imports no torch); kept for old imports."""

from livefocus.depth import ZPeakFinaliser, ZPeaks, peak_masks, peak_masks_reference, stack_masks

__all__ = ["ZPeakFinaliser", "ZPeaks", "peak_masks", "peak_masks_reference", "stack_masks"]
