"""The shared vocabulary: every named choice of livefocus, as a ``Literal``, and its check.

The tuples of valid names are derived from the ``Literal`` types, so a name is added in one
place. Library errors name the Python parameter; the CLI maps parameters to its flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar, get_args

__all__ = [
    "BACKENDS",
    "CONTRASTS",
    "DEVICES",
    "LABEL_KINDS",
    "MASK_MODES",
    "MEASURES",
    "PAINTS",
    "POLICIES",
    "REFINEMENTS",
    "RUN_STATES",
    "Backend",
    "Contrast",
    "Device",
    "LabelKind",
    "MaskMode",
    "Measure",
    "Paint",
    "Policy",
    "Refinement",
    "RunState",
    "check_choice",
    "run_state",
]

Measure = Literal[
    "brenner", "tenengrad", "laplacian", "smd", "smd2", "vollath", "std", "variance", "entropy",
    "dwt",
]  # fmt: skip
#: How window scores are painted onto pixels.
Paint = Literal["sum", "mean"]
#: Sub-plane refinement of a focus peak.
Refinement = Literal["parabola", "gaussian", "none"]
#: In-focus mask modes of the streaming pipeline.
MaskMode = Literal["depth", "otsu", "model"]
#: Where the focus kernels run.
Device = Literal["cpu", "gpu"]
#: What a full frame queue does to the acquisition.
Policy = Literal["block", "drop"]
#: Inference engines of the U-Net.
Backend = Literal["auto", "torch", "onnxruntime", "tensorrt"]
#: Training labels of the U-Net.
LabelKind = Literal["otsu", "depth"]
#: Contrasts of the simulated specimen.
Contrast = Literal["brightfield", "fluorescence"]
#: The state of a run, as its store records it (``error`` carries a reason: ``"error: ..."``).
RunState = Literal["running", "complete", "interrupted", "error"]

MEASURES: tuple[Measure, ...] = get_args(Measure)
PAINTS: tuple[Paint, ...] = get_args(Paint)
REFINEMENTS: tuple[Refinement, ...] = get_args(Refinement)
MASK_MODES: tuple[MaskMode, ...] = get_args(MaskMode)
DEVICES: tuple[Device, ...] = get_args(Device)
POLICIES: tuple[Policy, ...] = get_args(Policy)
BACKENDS: tuple[Backend, ...] = get_args(Backend)
LABEL_KINDS: tuple[LabelKind, ...] = get_args(LabelKind)
CONTRASTS: tuple[Contrast, ...] = get_args(Contrast)
RUN_STATES: tuple[RunState, ...] = get_args(RunState)

_T = TypeVar("_T", bound=str)


def check_choice(value: Any, name: str, choices: Sequence[_T]) -> _T:
    """``value`` when it is one of ``choices``, else a ValueError naming ``name``."""
    for choice in choices:
        if value == choice:
            return choice
    raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def run_state(status: str) -> RunState:
    """The :data:`RunState` of a status string (``"error: camera failed"`` -> ``"error"``)."""
    head = status.split(":", 1)[0].strip()
    return check_choice(head, "status", RUN_STATES)
