"""Array namespaces (numpy or CuPy) and lazy imports of optional extras."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["array_namespace", "has_module", "require", "to_numpy"]

#: Which ``pip install`` provides an optional module.
EXTRAS = {
    "cupy": "pip install 'livefocus[gpu]' (or the cupy-cudaXXx wheel for your CUDA)",
    "tensorrt": "pip install 'livefocus[tensorrt]'",
    "dask": "pip install 'livefocus[dask]'",
    "distributed": "pip install 'livefocus[dask]'",
}


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require(name: str) -> ModuleType:
    """Import an optional module, or raise an ImportError that says which install fixes it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        hint = EXTRAS.get(name.split(".")[0], f"pip install {name}")
        raise ImportError(f"{name} is needed here but is not installed: {hint}") from exc


def array_namespace(array: Any) -> ModuleType:
    """``cupy`` for a CuPy array, ``numpy`` for anything else."""
    if type(array).__module__.split(".")[0] == "cupy":
        return require("cupy")
    return np


def to_numpy(array: Any) -> np.ndarray:
    """A host (numpy) copy or view of a numpy or CuPy array."""
    if type(array).__module__.split(".")[0] == "cupy":
        return array.get()  # type: ignore[no-any-return]
    return np.asarray(array)
