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


def test_reconstruct_on_a_cluster_is_bit_for_bit_the_local_one() -> None:
    """``reconstruct(client=)`` computes the planes' focus maps on the cluster (fused measures
    too) and feeds them in plane order: every output equals the local reconstruction."""
    from distributed import Client

    from livefocus.depth import reconstruct
    from livefocus.sim import simulate_stack

    raw = simulate_stack((9, 96, 80), seed=4, contrast="fluorescence").raw
    fields = ("focus", "mask_otsu", "mask_depth", "depth", "all_in_focus", "confidence")
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        for kw in ({}, {"fuse": ("tenengrad",)}):
            here = reconstruct(raw, z_step=2.0, **kw)
            there = reconstruct(raw, z_step=2.0, client=c, batch=3, **kw)
            assert here.mask_depth.any()
            for name in fields:
                np.testing.assert_array_equal(getattr(there, name), getattr(here, name), name)
            assert there.meta == here.meta


def test_reconstruct_on_worker_processes_and_bad_clients() -> None:
    """Real worker processes (the planes and settings are pickled there and back)."""
    import pytest
    from distributed import Client, LocalCluster

    from livefocus.depth import reconstruct
    from livefocus.sim import simulate_stack

    raw = simulate_stack((6, 64, 64), seed=5).raw
    here = reconstruct(raw, z_step=2.0)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        there = reconstruct(raw, z_step=2.0, client=c)
    np.testing.assert_array_equal(there.mask_depth, here.mask_depth)
    np.testing.assert_array_equal(there.depth, here.depth)
    with pytest.raises(ValueError, match=r"client must be a distributed\.Client"):
        reconstruct(raw, z_step=2.0, client="local")
    with pytest.raises(ValueError, match="batch"):
        reconstruct(raw, z_step=2.0, batch=0)
