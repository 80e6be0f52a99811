"""Plane skipping (:class:`livefocus.stream.skip.PlaneSkipper`): the planes it keeps of a
useq sequence for known masks, when it keeps a stack whole, and streamed demo stacks whose
trimmed stacks segment the specimen as well as whole ones, with fewer frames."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import useq
from support.cli import run_cli
from support.timelapse import INTERVAL, timelapse

from livefocus.devices import demo_camera, demo_core, demo_truth
from livefocus.io import read_stack
from livefocus.sim import mask_scores
from livefocus.stream import open_store, stream
from livefocus.stream.skip import PlaneSkipper

PLAN = useq.ZRangeAround(range=20.0, step=2.0)  # 11 planes, indices 0 .. 10
PLANES = len(list(PLAN))


def _sequence(loops: int, interval: float = INTERVAL, **kwargs: Any) -> useq.MDASequence:
    return timelapse(PLAN, loops, interval, **kwargs)


def _skipper(found: list[dict[str, Any]], **kwargs: Any) -> PlaneSkipper:
    return PlaneSkipper(lambda since: found[since:], wait_s=kwargs.pop("wait_s", 1.0), **kwargs)


def _run(
    skipper: PlaneSkipper,
    found: list[dict[str, Any]],
    in_focus: dict[int, list[int]],
    sequence: useq.MDASequence,
) -> dict[int, list[int]]:
    """Consume the skipper's events (one channel) as an acquisition would: after each stack's
    last plane, the pipeline's entry of that stack appears, with the planes ``in_focus[t]``
    (none for a stack not in ``in_focus``). The plane indices acquired, by stack."""
    planes: dict[int, list[int]] = {}
    for event in skipper.events(sequence):
        t, z = int(event.index["t"]), int(event.index["z"])
        planes.setdefault(t, []).append(z)
        # a stack's entry is recorded before its first event is given out
        last = skipper.skips[-1]["last"] if t else PLANES - 1
        if z == last and t in in_focus:
            found.append({"p": 0, "t": t, "c": 0, "in_focus": list(in_focus[t])})
    return planes


def test_later_stacks_keep_the_planes_near_the_focus_found() -> None:
    found: list[dict[str, Any]] = []
    skipper = _skipper(found, margin=2)
    in_focus = {0: [4, 5, 6], 1: [4, 5, 6], 2: [3, 4, 5], 3: [0, 1]}
    planes = _run(skipper, found, in_focus, _sequence(5))
    assert planes[0] == list(range(PLANES))  # the first stack is whole
    assert planes[1] == [2, 3, 4, 5, 6, 7, 8]
    assert planes[2] == [2, 3, 4, 5, 6, 7, 8]  # a still specimen: the same planes
    # in focus next to stack 2's lowest kept plane (2): the specimen may go on below it
    assert planes[3] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert planes[4] == [0, 1, 2, 3]  # clipped at the plan's first plane
    assert [(s["t"], s["first"], s["last"], s["skipped"]) for s in skipper.skips] == [
        (1, 2, 8, 4),
        (2, 2, 8, 4),
        (3, 0, 7, 3),
        (4, 0, 3, 7),
    ]
    assert "widened" in skipper.skips[2]["why"] and "widened" not in skipper.skips[3]["why"]


def test_stacks_are_whole_at_every_full_stack_and_when_nothing_was_in_focus() -> None:
    found: list[dict[str, Any]] = []
    skipper = _skipper(found, margin=1, full_every=3)
    planes = _run(skipper, found, {0: [5], 1: [], 2: [5], 3: [5]}, _sequence(5))
    assert planes[1] == [4, 5, 6]
    assert planes[2] == list(range(PLANES))  # nothing in focus in stack 1
    assert planes[3] == list(range(PLANES))  # t = 3: a full stack
    assert planes[4] == [4, 5, 6]
    whys = [s["why"] for s in skipper.skips]
    assert "nothing was in focus" in whys[1] and "multiple of 3" in whys[2]


def test_masks_not_known_in_time_keep_the_stack_whole() -> None:
    found: list[dict[str, Any]] = []
    skipper = _skipper(found, wait_s=0.05)
    started = time.perf_counter()
    planes = _run(skipper, found, {}, _sequence(3, interval=0.0))  # no stack gives an entry
    assert time.perf_counter() - started < 2.0
    assert all(planes[t] == list(range(PLANES)) for t in range(3))
    assert all("not known in time" in s["why"] for s in skipper.skips)
    stop = threading.Event()
    cancelled = PlaneSkipper(lambda since: [], wait_s=60.0, cancelled=stop.is_set)
    threading.Timer(0.3, stop.set).start()  # a cancel during the wait
    started = time.perf_counter()
    list(cancelled.events(_sequence(2, interval=0.0)))
    assert 0.3 <= time.perf_counter() - started < 5.0


def test_a_cancelled_wait_records_nothing_and_lost_frames_keep_the_next_stack_whole() -> None:
    stop = threading.Event()
    cancelled = PlaneSkipper(lambda since: [], wait_s=60.0, cancelled=stop.is_set)
    threading.Timer(0.2, stop.set).start()
    events = list(cancelled.events(_sequence(2, interval=0.0)))
    assert cancelled.skips == [] and len(events) == 2 * PLANES  # stack 1 is never acquired
    found: list[dict[str, Any]] = []
    skipper = _skipper(found)
    # stack 0 lost plane 9 (dropped): its masks cannot say the specimen ends there
    given = skipper.events(_sequence(2))
    for event in given:
        if event.index["t"] == 0 and event.index["z"] == PLANES - 1:
            planes = [z for z in range(PLANES) if z != 9]
            found.append({"p": 0, "t": 0, "c": 0, "planes": planes, "in_focus": [4, 5]})
    assert skipper.skips[0]["skipped"] == 0 and "lost frames" in skipper.skips[0]["why"]


def test_the_planes_of_every_channel_count_and_all_are_waited_for() -> None:
    """Two channels in focus on planes 3 and 7: the next stack keeps 2-8 (margin 1) in both
    channels, also when the second channel's entry comes late (from another thread)."""
    found: list[dict[str, Any]] = []
    skipper = _skipper(found, margin=1, wait_s=5.0)
    sequence = _sequence(2, channels=["DAPI", "FITC"], axis_order="tpcz")
    late: list[threading.Timer] = []
    acquired: list[tuple[int, int]] = []
    for event in skipper.events(sequence):
        t, c, z = event.index["t"], event.index.get("c", 0), event.index["z"]
        if t == 1:
            acquired.append((c, z))
        if t == 0 and z == PLANES - 1:
            entry = {"p": 0, "t": 0, "c": c, "in_focus": [3] if c == 0 else [7]}
            if c == 1:  # after the next stack's wait has begun
                timer = threading.Timer(0.2, found.append, args=(entry,))
                timer.start()
                late.append(timer)
            else:
                found.append(entry)
    for timer in late:
        timer.join()
    assert acquired == [(c, z) for c in (0, 1) for z in range(2, 9)]
    assert skipper.skips[0]["skipped"] == 2 * (PLANES - 7)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"margin": -1}, "skip_margin"),
        ({"margin": 0}, "skip_margin must be a whole number of planes >= 1"),
        ({"margin": 1.5}, "skip_margin"),
        ({"margin": True}, "skip_margin"),
        ({"full_every": 1}, "skip_full_every"),
        ({"wait_s": float("nan")}, "wait_s"),
    ],
)
def test_bad_bounds_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PlaneSkipper(lambda since: [], **kwargs)


def test_skipping_needs_two_time_points_and_time_before_channels() -> None:
    core = demo_core(shape=(64, 64))
    with pytest.raises(ValueError, match="skip_planes needs at least 2 time points"):
        stream(core, _sequence(1), out=None, skip_planes=True)
    channels = ["DAPI", "FITC"]
    with pytest.raises(ValueError, match="time axis before the channel axis"):
        stream(core, _sequence(2, channels=channels, axis_order="ctz"), out=None, skip_planes=True)
    with pytest.raises(ValueError, match="follow_wait_s"):
        stream(core, _sequence(2), out=None, skip_planes=True, follow_wait_s=-1.0)
    with pytest.raises(ValueError, match="skip_full_every"):
        stream(core, _sequence(2), out=None, skip_planes=True, skip_full_every=0)


def test_trimmed_demo_stacks_segment_the_specimen_as_whole_ones(tmp_path: Path) -> None:
    """A thin specimen in a deep plan: the stacks after the first acquire fewer planes, every
    frame acquired is stored, and their depth masks score as the first (whole) stack's."""
    core = demo_core(shape=(128, 128), seed=4, object_range=6.0)
    sequence = useq.MDASequence(
        z_plan=useq.ZRangeAround(range=30.0, step=2.0),  # 16 planes
        time_plan=useq.TIntervalLoops(interval=0.0, loops=4),
        axis_order="tpcz",
    )
    report = stream(
        core, sequence, out=tmp_path / "s.ome.zarr", skip_planes=True, skip_full_every=3
    )
    assert report.ok, report.status
    skips = report.plane_skips
    assert [s["t"] for s in skips] == [1, 2, 3]
    assert skips[0]["skipped"] > 0 and skips[1]["skipped"] > 0 and skips[2]["skipped"] == 0
    assert report.expected == 4 * 16 - sum(s["skipped"] for s in skips)
    assert report.metrics.frames_out == report.expected
    store = open_store(report.path)
    assert store.meta["plane_skips"] == skips
    with pytest.raises(ValueError, match="skipped by --skip-planes"):  # not read as lost frames
        read_stack(report.path, time_point=1)
    assert read_stack(report.path, time_point=3).shape == (16, 128, 128)  # whole again
    # the depth of a trimmed stack is measured from the plan's first plane, as a whole one's
    depth = np.asarray(store.array("depth"))[:, 0]
    for t in (1, 2):
        both = np.isfinite(depth[0]) & np.isfinite(depth[t])
        assert both.sum() > 1000 and np.median(np.abs(depth[t] - depth[0])[both]) < 0.5
    truth = demo_truth(core, report.z_positions[(0, 0, 0)])
    masks = np.asarray(store.array("mask_depth"))[:, 0].astype(bool)
    whole = mask_scores(masks[0], truth)["iou"]
    assert whole > 0.6
    for t in (1, 2):
        kept = range(skips[t - 1]["first"], skips[t - 1]["last"] + 1)
        assert not masks[t][[z for z in range(16) if z not in kept]].any()  # not acquired
        assert mask_scores(masks[t], truth)["iou"] > whole - 0.03, t


def test_the_kept_planes_move_with_a_rising_specimen() -> None:
    """The specimen rises 3 µm/s (1.5 planes a stack) without following: each trimmed stack's
    range moves up with the masks of the stack before it."""
    core = demo_core(shape=(96, 96), seed=4, object_range=4.0)
    core.setProperty(demo_camera(core).get_label(), "DriftZUmPerS", 3.0)
    sequence = useq.MDASequence(
        z_plan=useq.ZRangeAround(range=30.0, step=2.0),
        time_plan=useq.TIntervalLoops(interval=1.0, loops=5),
        axis_order="tpcz",
    )
    report = stream(core, sequence, out=None, skip_planes=True, skip_margin=1)
    assert report.ok, report.status
    firsts = [s["first"] for s in report.plane_skips]
    lasts = [s["last"] for s in report.plane_skips]
    assert all(s["skipped"] > 0 for s in report.plane_skips), report.plane_skips
    assert firsts[-1] > firsts[0] and lasts[-1] >= lasts[0], report.plane_skips


@pytest.mark.parametrize("order", ["tpcz", "ptcz"])
def test_each_position_skips_on_its_own(order: str) -> None:
    core = demo_core(shape=(64, 64), seed=5, object_range=4.0)
    sequence = useq.MDASequence(
        z_plan=useq.ZRangeAround(range=24.0, step=2.0),
        time_plan=useq.TIntervalLoops(interval=0.0, loops=3),
        stage_positions=[(0.0, 0.0, 0.0), (10.0, 0.0, 0.0)],
        axis_order=order,
    )
    report = stream(core, sequence, out=None, skip_planes=True)
    assert report.ok, report.status
    assert sorted((s["p"], s["t"]) for s in report.plane_skips) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert all("in focus on planes" in s["why"] for s in report.plane_skips)


def test_skipping_and_following_combine() -> None:
    """A rising specimen followed and trimmed: the follower moves the kept planes, and every
    frame acquired is stored."""
    core = demo_core(shape=(64, 64), seed=4, object_range=4.0)
    core.setProperty(demo_camera(core).get_label(), "DriftZUmPerS", 2.0)
    sequence = useq.MDASequence(
        z_plan=useq.ZRangeAround(range=24.0, step=2.0),
        time_plan=useq.TIntervalLoops(interval=0.5, loops=4),
        axis_order="tpcz",
    )
    report = stream(core, sequence, out=None, skip_planes=True, follow_drift=True)
    assert report.ok, report.status
    assert [o["t"] for o in report.focus_offsets] == [2, 3]
    assert [s["t"] for s in report.plane_skips] == [1, 2, 3]
    assert sum(s["skipped"] for s in report.plane_skips) > 0
    assert report.metrics.frames_out == report.expected


def test_demo_cli_skips_planes_and_records_them(tmp_path: Path) -> None:
    out = tmp_path / "s.ome.zarr"
    argv = ["demo", "--no-preview", "--size", "64", "--time-points", "3", "--z-range", "60"]
    code, text, err = run_cli(*argv, "--skip-planes", "--json", "-o", str(out))
    assert code == 0, err
    summary = json.loads(text)
    assert summary["status"] == "complete" and summary["lost"] == 0
    skips = summary["plane_skips"]
    assert [s["t"] for s in skips] == [1, 2] and all(s["skipped"] > 0 for s in skips)
    assert summary["frames"]["out"] == summary["frames"]["expected"]
    assert open_store(out).meta["plane_skips"] == skips
    ious = summary["iou_by_stack"]["depth"]  # every stack scored: the trimmed ones too
    assert len(ious) == 3 and min(ious[1:]) > ious[0] - 0.05, ious
    code, text, err = run_cli(*argv, "--skip-planes", "-o", str(tmp_path / "t.ome.zarr"))
    assert code == 0, err
    assert "skip     t 1: planes" in text and "frames skipped" in text


def test_the_store_browser_marks_planes_not_acquired(qtbot: Any, tmp_path: Path) -> None:
    pytest.importorskip("pytestqt")
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from livefocus.preview import StoreBrowser

    core = demo_core(shape=(64, 64), seed=4, object_range=4.0)
    sequence = timelapse(useq.ZRangeAround(range=30.0, step=2.0), 2, interval=0.0)
    report = stream(core, sequence, out=tmp_path / "s.ome.zarr", skip_planes=True)
    assert report.ok and report.plane_skips[0]["first"] > 0, report.plane_skips
    browser = StoreBrowser(open_store(tmp_path / "s.ome.zarr"))
    qtbot.addWidget(browser.window)
    browser.sliders["t"].setValue(1)
    browser.sliders["z"].setValue(0)  # skipped in stack 1
    assert browser._labels["z"].text().endswith(": skipped (plane skipping)")
    browser.sliders["z"].setValue(report.plane_skips[0]["first"])
    assert "skipped" not in browser._labels["z"].text()
    browser.sliders["t"].setValue(0)
    browser.sliders["z"].setValue(0)  # the first stack is whole
    assert "skipped" not in browser._labels["z"].text()
    assert "not acquired" not in browser._labels["z"].text()
    # a plane missing where no skip left it out was lost or never reached
    assert browser._why_missing({"p": 0, "t": 0, "z": 0}) == "not acquired (lost, or not reached)"
    browser.window.close()
