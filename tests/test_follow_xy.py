"""Following laterally: the simulated XY stage moves the demo camera's field of view, the
follower chains image shifts and its own stage moves into the specimen's track, and a
drifting demo specimen is followed by the XY stage (against the camera's own record)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import useq
from support.cli import run_cli
from support.timelapse import timelapse

from livefocus.devices import demo_camera, demo_core, replay_core
from livefocus.stream import stream
from livefocus.stream.follow import FocusFollower

PLAN = useq.ZRangeAround(range=8.0, step=2.0)  # 5 planes
PIXEL = 0.5  # µm per pixel


def test_the_xy_stage_moves_the_field_of_view() -> None:
    """The stage at +5 µm in x (-2 µm in y) sees the specimen 10 pixels toward lower columns
    (4 toward higher rows); beyond its travel it refuses, and the core stays usable."""
    core = demo_core(shape=(128, 128), seed=3)
    assert core.getXYStageDevice() == "XY"
    core.snapImage()
    before = np.asarray(core.getImage(), np.float32)
    core.setXYPosition(5.0, -2.0)
    core.snapImage()
    after = np.asarray(core.getImage(), np.float32)
    (dx, dy), _ = cv2.phaseCorrelate(before, after)
    assert dx == pytest.approx(-10.0, abs=0.3) and dy == pytest.approx(4.0, abs=0.3)
    core.setProperty("XY", "LimitUm", 50.0)
    with pytest.raises(ValueError, match="outside the range"):
        core.setXYPosition(60.0, 0.0)
    assert core.getXYPosition() == pytest.approx((5.0, -2.0))


def test_lateral_moves_chain_image_shifts_and_the_stages_own_moves() -> None:
    """A specimen moving +1 µm in x and -0.5 µm in y a stack: each measured image shift is
    its move less the stage's move between the two stacks; from the third stack on the
    stage is put where the specimen will be."""
    drifts: list[dict[str, Any]] = []
    follower = FocusFollower(
        lambda since: drifts[since:],
        wait_s=1.0,
        to_stage=[[PIXEL, 0.0], [0.0, PIXEL]],
        xy_origin=lambda: (100.0, 50.0),
    )
    world = {t: np.array([1.0 * t, -0.5 * t]) for t in range(6)}
    stage: dict[int, np.ndarray] = {}
    xs: dict[int, set[float]] = {}
    last = len(list(PLAN)) - 1
    for event in follower.events(timelapse(PLAN, 6)):
        t = int(event.index["t"])
        at = (
            np.array([100.0, 50.0]) if event.x_pos is None else np.array([event.x_pos, event.y_pos])
        )
        stage[t] = at - np.array([100.0, 50.0])
        xs.setdefault(t, set()).add(float(at[0]))
        if event.index["z"] == last and t >= 1:
            seen = (world[t] - world[t - 1]) - (stage[t] - stage[t - 1])  # in the image
            drifts.append(
                {"p": 0, "t": t, "c": 0, "since_t": t - 1, "z_um": 0.0}
                | {"x_px": seen[0] / PIXEL, "y_px": seen[1] / PIXEL}
            )
    assert all(len(v) == 1 for v in xs.values())  # a stack's planes share its X
    for t in range(2, 6):  # a steady move is followed without lag
        np.testing.assert_allclose(stage[t], world[t], atol=1e-6)
    offsets = {o["t"]: (o["x_offset_um"], o["y_offset_um"]) for o in follower.offsets}
    assert offsets[5] == pytest.approx((5.0, -2.5))
    assert all(o["limited"] == [] for o in follower.offsets)


def test_a_shift_whose_images_do_not_match_is_not_followed() -> None:
    """A drift entry whose two images do not match where they overlap (``match`` below
    MIN_MATCH: a move beyond the field, or noise) moves nothing laterally; the bound on the
    lateral move is named where it holds one back."""
    for match, bound, expected, limited in (
        (0.2, 100.0, 0.0, []),
        (0.9, 100.0, 6.0, []),
        (0.9, 2.0, 2.0, ["max_lateral_um"]),
    ):
        drifts: list[dict[str, Any]] = []
        follower = FocusFollower(
            lambda since, d=drifts: d[since:],
            wait_s=1.0,
            to_stage=[[PIXEL, 0.0], [0.0, PIXEL]],
            max_lateral_um=bound,
        )
        last = len(list(PLAN)) - 1
        for event in follower.events(timelapse(PLAN, 3)):
            t = int(event.index["t"])
            if event.index["z"] == last and t >= 1:
                entry = {"p": 0, "t": t, "c": 0, "since_t": t - 1, "z_um": 0.0, "match": match}
                drifts.append(entry | {"x_px": 3.0 / PIXEL, "y_px": 0.0})
        (only,) = follower.offsets
        assert only["x_offset_um"] == pytest.approx(expected), (match, bound)
        assert only["limited"] == limited


def test_following_laterally_needs_following_an_xy_stage_and_a_pixel_size(tmp_path: Path) -> None:
    core = demo_core(shape=(64, 64))
    with pytest.raises(ValueError, match="pass follow_drift=True"):
        stream(core, timelapse(PLAN, 3), out=None, follow_xy=True)
    stack = np.zeros((3, 64, 64), np.uint16)
    np.save(tmp_path / "s.npy", stack)
    replay = replay_core(tmp_path / "s.npy")
    with pytest.raises(ValueError, match="follow_xy needs an XY stage"):
        stream(replay, timelapse(PLAN, 3), out=None, follow_drift=True, follow_xy=True)
    with pytest.raises(ValueError, match="to_stage must be an invertible"):
        FocusFollower(lambda since: [], to_stage=[[1.0, 2.0], [2.0, 4.0]])


def test_a_laterally_drifting_demo_specimen_is_followed_by_the_stage() -> None:
    """The specimen moves +2 µm/s in x and -1 µm/s in y through 6 stacks 1 s apart; with
    lateral following the stage ends within 0.6 µm of the camera's record of the drift, and
    the last stacks' measured image shifts are a fraction of a stack's drift."""
    core = demo_core(shape=(128, 128), seed=4, object_range=6.0)
    camera = demo_camera(core)
    core.setProperty(camera.get_label(), "DriftXUmPerS", 2.0)
    core.setProperty(camera.get_label(), "DriftYUmPerS", -1.0)
    sequence = timelapse(useq.ZRangeAround(range=12.0, step=2.0), 6, interval=1.0)
    report = stream(core, sequence, out=None, follow_drift=True, follow_xy=True)
    assert report.ok, report.status
    assert [o["t"] for o in report.focus_offsets] == [2, 3, 4, 5]
    assert camera.last_drift_um is not None
    drift = np.array(camera.last_drift_um[:2])
    assert drift[0] > 8.0  # without following, the specimen would be this far off
    np.testing.assert_allclose(core.getXYPosition(), drift, atol=0.6)
    late = [(d["x_um"], d["y_um"]) for d in report.drift if d["t"] >= 4]
    assert np.abs(late).max() < 0.8, report.drift  # 2 µm a stack without following


def test_demo_cli_follows_laterally(tmp_path: Path) -> None:
    out = tmp_path / "xy.ome.zarr"
    argv = ["demo", "--no-preview", "--size", "64", "--time-points", "4", "--drift", "2,-1,0"]
    code, text, err = run_cli(*argv, "--follow-drift", "--follow-xy", "--json", "-o", str(out))
    assert code == 0, err
    offsets = json.loads(text)["focus_offsets"]
    assert [o["t"] for o in offsets] == [2, 3]
    assert all(o["x_offset_um"] > 0 > o["y_offset_um"] for o in offsets)
    code, text, err = run_cli(*argv, "--follow-xy", "-o", str(tmp_path / "no.ome.zarr"))
    assert code == 2 and "--follow-xy" in err and "pass --follow-drift" in err


def test_a_stage_move_the_engine_cannot_make_is_the_runs_error() -> None:
    """pymmcore-plus's engine logs a failed XY move and acquires on where the stage stands;
    the run records it as its error instead of a complete run of the wrong place."""
    core = demo_core(shape=(64, 64))
    sequence = useq.MDASequence(
        z_plan=useq.ZRangeAround(range=4.0, step=2.0),
        stage_positions=[(0.0, 0.0, 0.0), (4.0, 0.0, 0.0)],
    )

    def shrink(run: Any) -> None:  # after the checks: the travel shrinks to ±1 µm
        core.setProperty("XY", "LimitUm", 1.0)

    report = stream(core, sequence, out=None, handler=shrink)
    assert not report.ok
    assert report.status.startswith("error: 1 event setting(s) failed"), report.status
    assert "Failed to set XY position" in report.status
