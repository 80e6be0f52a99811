"""Checks of user input; every error names the parameter and what was expected."""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

import numpy as np

from livefocus._vocab import MEASURES, Measure, check_choice
from livefocus._xp import array_namespace

__all__ = [
    "check_count",
    "check_image",
    "check_in_range",
    "check_maps",
    "check_measure",
    "check_measures",
    "check_memory",
    "check_positive_int",
    "check_positive_number",
    "check_stack",
    "check_strides",
]


def check_measure(measure: Any) -> Measure:
    return check_choice(
        measure.lower() if isinstance(measure, str) else measure, "measure", MEASURES
    )


def check_measures(measures: Any) -> tuple[Measure, ...]:
    """One measure name, or a non-empty sequence of them."""
    values = (measures,) if isinstance(measures, str) and measures else measures
    if isinstance(values, str) or not isinstance(values, Iterable) or not (names := tuple(values)):
        raise ValueError(
            f"measures must name at least one of {', '.join(MEASURES)}; got {measures!r}"
        )
    return tuple(
        check_choice(m.lower() if isinstance(m, str) else m, "measures", MEASURES) for m in names
    )


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_count(value: Any, name: str) -> int:
    """``value`` as an int if it is a whole number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(nbytes: float, name: str, value: Any, *, fraction: float = 1.0) -> None:
    """A ValueError naming ``name`` when ``nbytes`` exceed ``fraction`` of the memory available
    now (a fraction below 1 leaves room for what else the process holds).

    Where the available memory cannot be found, only sizes beyond 2**50 bytes are refused.
    """
    available = _available_memory()
    limit = fraction * float(available) if available is not None else float(1 << 50)
    if nbytes > limit:
        raise ValueError(
            f"{name} {value!r} needs about {nbytes / 2**30:.3g} GiB of memory, more than the "
            f"{limit / 2**30:.3g} GiB available"
        )


def check_positive_number(value: Any, name: str, unit: str = "") -> float:
    """``value`` as a float if it is a finite real number above 0 (not a bool); otherwise a
    ValueError naming ``name`` and, if given, its ``unit`` (``"µm"``)."""
    ok = isinstance(value, Real) and not isinstance(value, bool)
    out = float(value) if ok else math.nan
    if not math.isfinite(out) or out <= 0:
        of = f" of {unit}" if unit else ""
        raise ValueError(f"{name} must be a positive number{of}, got {value!r}")
    return out


def check_in_range(value: Any, name: str, low: float, high: float, unit: str = "") -> float:
    """``value`` as a float if it is a real number in ``[low, high]`` (not a bool); otherwise a
    ValueError naming ``name`` and the range."""
    ok = isinstance(value, Real) and not isinstance(value, bool)
    out = float(value) if ok else math.nan
    if not low <= out <= high:
        of = f" {unit}" if unit else ""
        raise ValueError(f"{name} must be between {low:g} and {high:g}{of}, got {value!r}")
    return out


def check_strides(strides: Any) -> tuple[int, ...]:
    if isinstance(strides, Integral) and not isinstance(strides, bool):
        strides = (strides,)
    if isinstance(strides, (str, bytes)) or not isinstance(strides, Iterable):
        raise ValueError(f"strides must be a positive int or a sequence of them, got {strides!r}")
    values = tuple(strides)
    if not values:
        raise ValueError("strides must not be empty")
    return tuple(check_positive_int(s, "strides") for s in values)


def _check_pixels(array: Any, name: str) -> None:
    xp = array_namespace(array)
    if array.dtype == bool:
        raise TypeError(f"{name} must hold integer or float pixels, got a bool array")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must hold integer or float pixels, got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(array.shape)}")
    if np.issubdtype(array.dtype, np.floating) and not bool(xp.isfinite(array).all()):
        raise ValueError(f"{name} contains NaN or inf pixels; focus scores need finite values")


def check_image(image: Any, name: str = "image") -> Any:
    """A 2-D numeric, non-empty, finite numpy or CuPy array."""
    if type(image).__module__.split(".")[0] != "cupy":
        image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (Y, X) image, got {image.ndim}-D shape {tuple(image.shape)}"
            + ("; use focus_maps for a (Z, Y, X) stack" if image.ndim == 3 else "")
        )
    _check_pixels(image, name)
    return image


def check_maps(maps: Any, name: str = "maps") -> Any:
    """(H, W) or (Z, H, W) real, non-empty, finite numpy or CuPy maps."""
    if type(maps).__module__.split(".")[0] != "cupy":
        maps = np.asarray(maps)
    if maps.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be an (H, W) or (Z, H, W) array, got shape {tuple(maps.shape)}"
        )
    _check_pixels(maps, name)
    return maps


def check_stack(stack: Any, name: str = "stack") -> Any:
    """A (Z, Y, X) numeric array; a single 2-D image becomes a one-slice stack."""
    if type(stack).__module__.split(".")[0] != "cupy":
        stack = np.asarray(stack)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise ValueError(
            f"{name} must be a (Z, Y, X) stack or a (Y, X) image, got shape {tuple(stack.shape)}"
        )
    _check_pixels(stack, name)
    return stack
