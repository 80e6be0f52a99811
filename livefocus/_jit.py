"""Per-pixel loops compiled by numba on first use (no GIL held, cached on disk).

OpenCV and numpy cover the per-plane filters; what they do not cover is a loop that fuses many
elementwise steps, or bins values exactly as :func:`numpy.histogram` does, in one pass. Such a
loop is written in plain Python over arrays and decorated with :func:`kernel`: numba compiles
it at its first call (``nopython``, ``nogil``, ``cache=True``), so importing livefocus does not
import numba, and the kernels run on the helper threads in parallel. The plain function stays
available as ``.py_func``; each kernel has a numpy referee in the module that uses it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

__all__ = ["kernel"]

F = TypeVar("F", bound=Callable[..., Any])

_LOCK = threading.Lock()


def kernel(func: F) -> F:
    """``func`` compiled by numba at its first call; ``.py_func`` is the plain function."""
    compiled: list[Callable[..., Any]] = []

    @functools.wraps(func)
    def call(*args: Any) -> Any:
        if not compiled:
            with _LOCK:
                if not compiled:
                    compiled.append(_compile(func))
        try:
            return compiled[0](*args)
        except OSError:  # numba could not save its cache (a full disk): compile without one
            with _LOCK:
                compiled[0] = _compile(func, cache=False)
            return compiled[0](*args)

    call.py_func = func  # type: ignore[attr-defined]
    return cast(F, call)


def _compile(func: Callable[..., Any], cache: bool = True) -> Callable[..., Any]:
    try:
        import numba
    except ImportError as exc:  # a core dependency: only a broken install lacks it
        raise ImportError(
            "livefocus's per-pixel kernels need numba, which is missing: pip install numba"
        ) from exc
    if not cache:
        return cast(Callable[..., Any], numba.njit(nogil=True)(func))
    try:
        return cast(Callable[..., Any], numba.njit(cache=True, nogil=True)(func))
    except RuntimeError:  # no writable cache folder (a read-only install): compiled each run
        return cast(Callable[..., Any], numba.njit(nogil=True)(func))
