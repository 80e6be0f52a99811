"""Offline labelling on a (local, in-process) Dask cluster gives the same maps."""

from __future__ import annotations

import numpy as np

import livefocus as lf
from livefocus.focus.parallel import focus_maps_dask, iter_focus_maps


def test_dask_maps_equal_local_maps() -> None:
    from distributed import Client

    rng = np.random.default_rng(0)
    stack = rng.integers(0, 999, (5, 60, 70)).astype(np.uint16)
    expected = lf.focus_maps(stack, "std", window=16, strides=(4, 8))
    lazy = focus_maps_dask(stack, "std", window=16, strides=(4, 8))
    assert lazy.chunks[0] == (1,) * 5
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), expected)
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        got = dict(iter_focus_maps(stack, "std", window=16, strides=(4, 8), client=c, batch=2))
    assert sorted(got) == list(range(5))
    for z, focus in got.items():
        np.testing.assert_array_equal(focus, expected[z])
