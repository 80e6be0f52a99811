"""Focus following (:class:`livefocus.stream.follow.FocusFollower`): the offsets it gives a
useq sequence for known drifts, its bounds, and a streamed demo specimen drifting in z that
the stacks follow, against the camera's own record of the drift it rendered."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import useq
from support.cli import run_cli
from support.timelapse import INTERVAL, timelapse

from livefocus.devices import demo_camera, demo_core
from livefocus.stream import open_store, stream
from livefocus.stream.follow import FocusFollower

PLAN = useq.ZRangeAround(range=8.0, step=2.0)  # planes at -4 .. 4 µm


def _sequence(loops: int, interval: float = INTERVAL, **kwargs: Any) -> useq.MDASequence:
    return timelapse(PLAN, loops, interval, **kwargs)


def _follower(drifts: list[dict[str, Any]], **kwargs: Any) -> FocusFollower:
    return FocusFollower(lambda since: drifts[since:], wait_s=kwargs.pop("wait_s", 1.0), **kwargs)


def _run(
    follower: FocusFollower,
    drifts: list[dict[str, Any]],
    moves: list[float | None],
    sequence: useq.MDASequence,
    skip: tuple[int, ...] = (),
) -> dict[int, list[float]]:
    """Consume the follower's events as an acquisition would: after each stack's last plane,
    the pipeline's drift of that stack (``moves[t]``, µm since the last stack with a drift;
    None: not measured) appears, for each channel; the stacks in ``skip`` give none."""
    zs: dict[int, list[float]] = {}
    events: Iterator[Any] = follower.events(sequence)
    last = max(int(e.index.get("z", 0)) for e in sequence)
    since = 0
    for event in events:
        t = event.index["t"]
        zs.setdefault(t, []).append(float(event.z_pos))
        if event.index["z"] == last and t >= 1 and t not in skip:
            entry = {"p": 0, "t": t, "c": event.index.get("c", 0), "since_t": since}
            drifts.append({**entry, "z_um": moves[t]})
            if event.index.get("c", 0) == len(sequence.channels or [None]) - 1:
                since = t
    return zs


def test_a_steady_drift_is_followed_from_the_third_stack() -> None:
    drifts: list[dict[str, Any]] = []
    follower = _follower(drifts)
    zs = _run(follower, drifts, [None, 1.5, 1.5, 1.5, 1.5], _sequence(5))
    plan = [float(z) for z in PLAN]
    assert zs[0] == plan and zs[1] == plan  # nothing is known before the second stack ends
    for t, offset in ((2, 3.0), (3, 4.5), (4, 6.0)):  # where a steady drift puts it
        np.testing.assert_allclose(zs[t], np.add(plan, offset), atol=1e-3)
    assert [o["t"] for o in follower.offsets] == [2, 3, 4]
    np.testing.assert_allclose([o["offset_um"] for o in follower.offsets], [3, 4.5, 6], atol=1e-3)
    assert all(o["measured"] for o in follower.offsets)


def test_a_move_not_measured_is_extrapolated() -> None:
    drifts: list[dict[str, Any]] = []
    follower = _follower(drifts)
    _run(follower, drifts, [None, 2.0, None, -1.0, 0.0], _sequence(5))
    # t2: 2 + 2; t3: stack 2's move not measured, taken as 2 again -> 4 + 2;
    # t4: stack 2 put at 4, stack 3 then 1 lower (3), and on at that speed -> 2
    np.testing.assert_allclose([o["offset_um"] for o in follower.offsets], [4, 6, 2], atol=1e-3)
    assert [o["measured"] for o in follower.offsets] == [True, False, True]


def test_a_stack_without_a_drift_leaves_a_gap_the_next_drift_spans() -> None:
    """1 µm a stack, 0.5 s apart; stack 2 gives no drift, stack 3's spans stacks 1 to 3."""
    drifts: list[dict[str, Any]] = []
    follower = _follower(drifts, wait_s=0.05)
    moves = [None, 1.0, None, 2.0, 1.0, 1.0]
    _run(follower, drifts, moves, _sequence(6, interval=0.5), skip=(2,))
    assert [o["t"] for o in follower.offsets] == [2, 3, 4, 5]
    assert [o["measured"] for o in follower.offsets] == [True, False, True, True]
    predicted = [o["predicted_um"] for o in follower.offsets]
    np.testing.assert_allclose(predicted, [2.0, 3.0, 4.0, 5.0], atol=0.1)


def test_every_channel_of_a_stack_is_waited_for() -> None:
    """Two channels measure 1 and 3 µm a stack; a stack waits for both (median 2), also when
    the second comes late (from another thread, during the wait)."""
    drifts: list[dict[str, Any]] = []
    follower = _follower(drifts, wait_s=5.0)
    sequence = _sequence(4, channels=["DAPI", "FITC"], axis_order="tpzc")
    late: list[threading.Timer] = []
    moves = {0: 1.0, 1: 3.0}
    for event in follower.events(sequence):
        t, c = event.index["t"], event.index.get("c", 0)
        if event.index["z"] == len(list(PLAN)) - 1 and t >= 1:
            entry = {"p": 0, "t": t, "c": c, "since_t": t - 1, "z_um": moves[c]}
            if c == 1:  # after the next stack's wait has begun
                timer = threading.Timer(0.2, drifts.append, args=(entry,))
                timer.start()
                late.append(timer)
            else:
                drifts.append(entry)
    for timer in late:
        timer.join()
    np.testing.assert_allclose([o["offset_um"] for o in follower.offsets], [4.0, 6.0], atol=1e-3)
    assert all(o["measured"] and o["waited_s"] >= 0.1 for o in follower.offsets)


def test_the_offset_stays_within_the_travel_and_the_bound() -> None:
    drifts: list[dict[str, Any]] = []
    follower = _follower(drifts, limits=(-10.0, 10.0))
    zs = _run(follower, drifts, [None, 5.0, 5.0, 5.0], _sequence(4))
    assert max(zs[2]) == pytest.approx(10.0) and max(zs[3]) == pytest.approx(10.0)  # 10, not 14
    assert follower.offsets[0]["predicted_um"] == pytest.approx(10.0)
    assert [o["limited"] for o in follower.offsets] == [["z travel"], ["z travel"]]
    drifts.clear()
    bounded = _follower(drifts, max_offset_um=3.0)
    _run(bounded, drifts, [None, -5.0, -5.0], _sequence(3))
    assert bounded.offsets[0]["offset_um"] == pytest.approx(-3.0)
    assert bounded.offsets[0]["limited"] == ["max_offset_um"]
    drifts.clear()
    free = _follower(drifts)
    _run(free, drifts, [None, 1.0, 1.0], _sequence(3))
    assert free.offsets[0]["limited"] == []


def test_the_wait_is_bounded_and_ends_when_cancelled() -> None:
    follower = FocusFollower(lambda since: [], wait_s=0.2)
    started = time.perf_counter()
    events = list(follower.events(_sequence(3, interval=0.0)))
    assert 0.2 <= time.perf_counter() - started < 2.0
    assert follower.offsets[0]["measured"] is False and follower.offsets[0]["offset_um"] == 0.0
    assert len(events) == 3 * len(list(PLAN))
    stop = threading.Event()
    cancelled = FocusFollower(lambda since: [], wait_s=60.0, cancelled=stop.is_set)
    threading.Timer(0.3, stop.set).start()  # a cancel during the wait
    started = time.perf_counter()
    list(cancelled.events(_sequence(3, interval=0.0)))
    assert 0.3 <= time.perf_counter() - started < 5.0


@pytest.mark.parametrize(("name", "value"), [("wait_s", -1.0), ("max_offset_um", float("nan"))])
def test_bad_bounds_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        FocusFollower(lambda since: [], **{name: value})


def test_following_needs_three_time_points_and_time_before_channels() -> None:
    core = demo_core(shape=(64, 64))
    with pytest.raises(ValueError, match="follow_drift needs at least 3 time points"):
        stream(core, _sequence(2), out=None, follow_drift=True)
    channels = ["DAPI", "FITC"]
    with pytest.raises(ValueError, match="time axis before the channel axis"):
        stream(core, _sequence(3, channels=channels, axis_order="ctz"), out=None, follow_drift=True)
    with pytest.raises(ValueError, match="follow_wait_s"):
        stream(core, _sequence(3), out=None, follow_drift=True, follow_wait_s=-1.0)


def test_a_drifting_demo_specimen_stays_in_its_stacks() -> None:
    """The demo specimen rises 3 µm/s through 6 stacks (about 12 µm in all); with following,
    each stack's centre from the third on lies within 1 µm of the specimen's rendered drift."""
    core = demo_core(shape=(128, 128), seed=4, object_range=6.0)
    camera = demo_camera(core)
    core.setProperty(camera.get_label(), "DriftZUmPerS", 3.0)
    seen: dict[int, list[tuple[float, float]]] = {}

    def record(img: Any, event: useq.MDAEvent, meta: dict[str, Any]) -> None:
        assert camera.last_drift_um is not None  # frames one by one: this frame's drift
        seen.setdefault(event.index.get("t", 0), []).append(
            (camera.last_drift_um[2], float(event.z_pos or 0.0))
        )

    core.mda.events.frameReady.connect(record)
    sequence = useq.MDASequence(
        z_plan=useq.ZRangeAround(range=16.0, step=2.0),
        time_plan=useq.TIntervalLoops(interval=0.8, loops=6),
        axis_order="tpcz",
    )
    report = stream(core, sequence, out=None, follow_drift=True)
    assert report.ok, report.status
    assert [o["t"] for o in report.focus_offsets] == [2, 3, 4, 5]
    assert all(o["measured"] for o in report.focus_offsets)
    drift = {t: np.mean([d for d, _ in v]) for t, v in seen.items()}
    centre = {t: np.mean([z for _, z in v]) for t, v in seen.items()}
    assert drift[5] > 6.0  # without following, the specimen would be this far off centre
    for t in range(2, 6):
        assert abs(drift[t] - centre[t]) < 1.0, (t, drift[t], centre[t])


@pytest.mark.parametrize("order", ["tpcz", "ptcz"])
def test_each_position_is_followed_on_its_own(order: str) -> None:
    """Two positions, in either order of positions and time: each has its own offsets."""
    core = demo_core(shape=(64, 64), seed=5, object_range=6.0)
    core.setProperty(demo_camera(core).get_label(), "DriftZUmPerS", 2.0)
    sequence = useq.MDASequence(
        z_plan=useq.ZRangeAround(range=12.0, step=2.0),
        time_plan=useq.TIntervalLoops(interval=0.5, loops=4),
        stage_positions=[(0.0, 0.0, 0.0), (10.0, 0.0, 0.0)],
        axis_order=order,
    )
    report = stream(core, sequence, out=None, follow_drift=True)
    assert report.ok, report.status
    assert sorted((o["p"], o["t"]) for o in report.focus_offsets) == [
        (0, 2),
        (0, 3),
        (1, 2),
        (1, 3),
    ]
    assert all(o["measured"] and o["offset_um"] > 0 for o in report.focus_offsets)


def test_demo_cli_follows_and_records_the_offsets(tmp_path: Path) -> None:
    out = tmp_path / "f.ome.zarr"
    argv = ["demo", "--no-preview", "--size", "64", "--time-points", "4", "--drift", "0,0,2"]
    code, text, err = run_cli(*argv, "--follow-drift", "--json", "-o", str(out))
    assert code == 0, err
    summary = json.loads(text)
    assert summary["status"] == "complete" and summary["lost"] == 0
    offsets = summary["focus_offsets"]
    assert [o["t"] for o in offsets] == [2, 3]
    assert all(o["offset_um"] > 0 for o in offsets)  # the specimen rose: so did the planes
    assert open_store(out).meta["focus_offsets"] == offsets
