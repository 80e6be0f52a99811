"""CuPy in, CuPy out: the same fast path on a GPU (skipped without CuPy and a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

import livefocus as lf
from livefocus._xp import has_module


def _cupy():  # type: ignore[no-untyped-def]
    if not has_module("cupy"):
        pytest.skip("CuPy is not installed (pip install 'livefocus[gpu]')")
    import cupy

    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception:
        pytest.skip("no CUDA GPU")
    return cupy


@pytest.mark.gpu
@pytest.mark.parametrize("measure", lf.MEASURES)
def test_cupy_equals_numpy(measure: str) -> None:
    cupy = _cupy()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4096, (300, 257)).astype(np.uint16)
    on_gpu = lf.focus_map(cupy.asarray(image), measure, window=64, strides=(8, 12, 30))
    assert isinstance(on_gpu, cupy.ndarray)
    on_cpu = lf.focus_map(image, measure, window=64, strides=(8, 12, 30))
    np.testing.assert_allclose(on_gpu.get(), on_cpu, rtol=1e-6)
    masks = lf.weak_labels(on_gpu)
    assert isinstance(masks, cupy.ndarray)


def test_missing_cupy_error_names_the_extra() -> None:
    from livefocus._xp import require

    if has_module("cupy"):
        pytest.skip("CuPy is installed here")
    with pytest.raises(ImportError, match=r"pip install 'livefocus\[gpu\]'"):
        require("cupy")
