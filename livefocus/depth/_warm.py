"""Compile the reconstruction's numba kernels before an acquisition needs them."""

from __future__ import annotations

import functools

import numpy as np

from livefocus.depth._offline import reconstruct

__all__ = ["warm_up"]


@functools.cache
def warm_up() -> None:
    """Run a tiny stack through :func:`~livefocus.depth.reconstruct`, so that every kernel
    (:mod:`livefocus._jit`) is compiled, or loaded from numba's cache, before the first frame:
    about 3 s on a fresh install, about 0.5 s from the cache; once per process (later calls
    return at once)."""
    stack = np.random.default_rng(0).poisson(20.0, (6, 16, 16)).astype(np.uint16)
    reconstruct(stack, z_step=1.0)
