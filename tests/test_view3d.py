"""The preview's 3-D view (:mod:`livefocus.preview._render`): the fast z-buffered splat
against its loop referee, where voxels land and which hides which, and the window's panel
(Qt offscreen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livefocus.preview._render import (
    EDGE_GREY,
    VIRIDIS,
    View,
    VoxelCache,
    render_volume,
    render_volume_reference,
)


def _planes(seed: int, n: int, nz: int, share: float = 0.2) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        z: ((rng.random((n, n)) < share) * (1 + 100 * rng.random((n, n)))).astype(np.float32)
        for z in range(nz)
    }


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(4, 40),
    nz=st.integers(1, 6),
    factor=st.integers(1, 3),
    azimuth=st.floats(0, 360),
    elevation=st.floats(0, 90),
    size=st.integers(8, 64),
)
def test_the_fast_splat_matches_its_referee(
    seed: int, n: int, nz: int, factor: int, azimuth: float, elevation: float, size: int
) -> None:
    planes = _planes(seed, n, nz)
    z_um = {z: 1.5 * z for z in planes}
    shape = (n * factor, n * factor)
    view = View(azimuth=azimuth, elevation=elevation, size=size)
    fast = render_volume(planes, z_um, factor, shape, view)
    np.testing.assert_array_equal(fast, render_volume_reference(planes, z_um, factor, shape, view))
    cached = VoxelCache()  # with the cache, twice: the same image
    for _ in range(2):
        np.testing.assert_array_equal(
            render_volume(planes, z_um, factor, shape, view, cached), fast
        )


def _one(points: dict[int, list[tuple[int, int]]], n: int = 32) -> dict[int, np.ndarray]:
    planes = {z: np.zeros((n, n), np.float32) for z in range(3)}
    for z, where in points.items():
        for y, x in where:
            planes[z][y, x] = 50.0
    return planes


def test_from_above_the_frame_is_seen_as_drawn_and_the_top_plane_hides_the_rest() -> None:
    z_um = {0: 0.0, 1: 2.0, 2: 4.0}
    planes = _one({0: [(8, 24)], 2: [(8, 24)], 1: [(24, 4)]})
    view = View(azimuth=0.0, elevation=90.0, size=64, levels=(0.0, 50.0))
    image = render_volume(planes, z_um, 1, (32, 32), view)
    voxel = image.any(axis=2) & (image != np.array(EDGE_GREY, np.uint8)).any(axis=2)
    rows, cols = np.nonzero(voxel)
    # two voxels of 2 x 2 screen pixels (64 for a 32-pixel frame): the top plane's voxel
    # hides the bottom one, which lies under it
    assert len(rows) == 2 * 4
    # the voxel at row 8, column 24 of the frame lies up and right; the other down and left
    top_right = (rows < 32) & (cols > 32)
    assert top_right.sum() == 4 and ((rows > 32) & (cols < 32)).sum() == 4
    assert sorted(set(rows[top_right].tolist())) == [16, 17]  # row 8 of 32 -> 16 of 64
    r, c = rows[top_right][0], cols[top_right][0]
    assert image[r, c, 2] < image[r, c, 0]  # yellow: the highest plane, not the lowest's purple
    np.testing.assert_array_less(np.abs(image[r, c] - VIRIDIS[255]), 1.0)  # at full shade


def test_from_the_side_the_nearer_row_hides_the_farther_and_z_points_up() -> None:
    z_um = {0: 0.0, 1: 2.0, 2: 4.0}
    # the same column and plane, rows 4 and 28: at azimuth 0 the larger row is nearer
    side = View(azimuth=0.0, elevation=0.0, size=64)
    near = render_volume(_one({1: [(28, 16)]}), z_um, 1, (32, 32), side)
    both = render_volume(_one({1: [(4, 16), (28, 16)]}), z_um, 1, (32, 32), side)
    assert np.array_equal(near, both)
    low = render_volume(_one({0: [(16, 16)]}), z_um, 1, (32, 32), side)
    high = render_volume(_one({2: [(16, 16)]}), z_um, 1, (32, 32), side)
    grey = np.array(EDGE_GREY, np.uint8)

    def row(img: np.ndarray) -> int:
        return int(np.nonzero((img.any(axis=2)) & (img != grey).any(axis=2))[0][0])

    assert row(high) < row(low)  # a higher plane is drawn higher on the screen


def test_an_empty_volume_draws_only_the_box() -> None:
    planes = {0: np.zeros((16, 16), np.float32), 1: np.zeros((16, 16), np.float32)}
    image = render_volume(planes, {0: 0.0, 1: 2.0}, 1, (16, 16), View(size=32))
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert colours == {(0, 0, 0), EDGE_GREY}


def test_the_window_shows_and_turns_the_3d_view(qtbot: Any) -> None:
    pytest.importorskip("pytestqt")
    from test_preview import _results

    from livefocus.preview import PreviewWindow

    window = PreviewWindow(title="test", refresh_hz=50)
    qtbot.addWidget(window)
    window.show()
    for r in _results(seed=3):
        window.submit(r)
    window.refresh()
    first = np.array(window._view3d.image)
    assert first.shape[2] == 3 and (first.max(axis=2) > 100).sum() > 50  # voxels drawn
    window._turn_by(60.0, -20.0)  # a drag: 30 degrees round, 10 down
    assert window.azimuth_slider.value() == 0 and window.elevation_slider.value() == 20
    turned = np.array(window._view3d.image)
    assert not np.array_equal(first, turned)
    window.true_scale_box.setChecked(True)  # z at the frame's pixel size: a flat box
    assert not np.array_equal(np.array(window._view3d.image), turned)
    window.close()


def test_a_change_held_back_by_the_interval_is_drawn_later(qtbot: Any) -> None:
    """Planes that come within the redraw interval of the last draw are drawn by a later
    tick once it has passed, and at once when the run ends (its summary comes)."""
    pytest.importorskip("pytestqt")
    from test_preview import _results

    from livefocus.preview import PreviewWindow

    results = _results(seed=3)
    for finish in ("tick", "summary"):
        window = PreviewWindow(title="test", refresh_hz=50)
        qtbot.addWidget(window)
        window.submit(results[0])
        window.refresh()  # the 3D view of the first plane
        first = np.array(window._view3d.image)
        for r in results[1:]:
            window.submit(r)
        window.refresh()  # within the interval: held back
        assert window._pending_3d and np.array_equal(np.array(window._view3d.image), first)
        if finish == "tick":
            at, stack = window._drawn_3d
            window._drawn_3d = (at - 1.0, stack)  # the interval has passed
        else:
            window.set_summary("done")
        window.refresh()
        assert not window._pending_3d
        assert not np.array_equal(np.array(window._view3d.image), first), finish
        window.close()
