"""Bad input to ``demo``, ``replay``, ``acquire`` and to the streaming API: one line, exit 2,
nothing written (the store is checked before it is created)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import useq

from livefocus.cli import main
from livefocus.stream import MDAHandler, stream, z_sequence

ROOT = Path(__file__).parent.parent
DEMO_CFG = str(ROOT / "device_configs" / "demo.cfg")
DIATOM = str(Path(__file__).parent / "data" / "diatom_mfusionj_3z.tif")

DEMO = ["demo", "--no-preview", "--size", "64", "-o", "out.ome.zarr"]
REPLAY = ["replay", DIATOM, "--no-preview", "-o", "out.ome.zarr"]
ACQUIRE = ["acquire", "--config", DEMO_CFG, "--no-preview", "-o", "out.ome.zarr"]

CLI_CASES = [
    ([*DEMO, "--time-points", "0"], "time_points"),
    ([*DEMO, "--time-points", "-3"], "time_points"),
    ([*DEMO, "--step", "0"], "step"),
    ([*DEMO, "--step", "-2"], "step"),
    ([*DEMO, "--step", "nan"], "step"),
    ([*DEMO, "--z-range", "0"], "range"),
    ([*DEMO, "--z-range", "inf"], "range"),
    ([*DEMO, "--z-range", "1e9"], "--z-range"),
    (["demo", "--no-preview", "--size", "100000", "-o", "out.ome.zarr"], "at most 8192"),
    (["demo", "--no-preview", "--size", "8", "-o", "out.ome.zarr"], "at least 64"),
    ([*DEMO, "--contrast", "phase"], "contrast"),
    ([*DEMO, "--seed", "-1"], "seed"),
    ([*DEMO, "--policy", "lossy"], "policy"),
    ([*DEMO, "--frame-timeout", "0"], "frame_timeout"),
    ([*DEMO, "--queue-size", "0"], "queue_size"),
    ([*DEMO, "--mask", "model"], "model"),
    ([*DEMO, "--model", "no-such-model"], "no-such-model"),
    ([*DEMO, "--model", "none", "--calibrate", "cal"], "--calibrate fine-tunes a U-Net"),
    ([*DEMO, "--follow-drift", "--time-points", "2"], "--follow-drift: follow_drift needs at"),
    ([*DEMO, "--follow-xy", "--time-points", "3"], "--follow-xy: follow_xy follows the drift"),
    ([*DEMO, "--skip-planes"], "--skip-planes: skip_planes needs at least 2 time points"),
    ([*DEMO, "--skip-margin", "-1"], "--skip-margin: skip_margin must be a whole number"),
    ([*ACQUIRE, "--z-range", "4", "--step", "2", "--skip-full-every", "1"], "--skip-full-every"),
    ([*DEMO, "--measure", "sharpness"], "measure"),
    ([*DEMO, "--measure", "std+vollath"], "--measure: measure 'std+vollath': vollath cannot"),
    ([*DEMO, "--measure", "std+std"], "--measure: measure 'std+std'"),
    ([*DEMO, "--measure", "+std"], "--measure: measure '+std': a measure name is missing"),
    ([*DEMO, "--measure", "std+laplacian", "--window", "3"], "--window: window must be at least"),
    ([*DEMO, "--paint", "max"], "paint"),
    ([*DEMO, "--strides", "0"], "strides"),
    ([*DEMO, "--calibrate", "out.ome.zarr/cal"], "--calibrate: calibrate 'out.ome.zarr/cal' lies"),
    ([*DEMO, "--strides", "4,,2"], "--strides must be comma-separated integers"),
    ([*DEMO, "--time-points", "2000000"], "--time-points: time_points must be from 1 to"),
    ([*DEMO, "--mask", "model", "--model", "none"], "pass --model NAME too"),
    ([*ACQUIRE, "--z-range", "4", "--step", "2", "--positions", "1,2;"], "--positions must"),
    ([*ACQUIRE, "--z-range", "4", "--step", "2", "--positions", "0,0,47"], "around Z = 47 µm"),
    ([*ACQUIRE, "--z-range", "400", "--step", "2"], "--z-range: z_range reaches"),
    ([*DEMO, "--device", "tpu"], "device"),
    ([*DEMO, "--gain", "2", "--estimate-noise"], "--estimate-noise excludes a camera model"),
    ([*DEMO, "--read-noise", "1e200", "--gain", "1e200"], "is beyond a float"),
    ([*REPLAY, "--offset", "100"], "--offset is part of a camera model, which needs --read-noise"),
    ([*DEMO, "--read-noise", "-1"], "--read-noise must be a non-negative number"),
    ([*DEMO, "--read-noise", "nan"], "--read-noise must be a non-negative number"),
    ([*DEMO, "--read-noise", "2", "--gain", "0"], "--gain must be a positive number"),
    ([*DEMO, "--read-noise", "2", "--offset", "inf"], "--offset must be a finite number"),
    ([*DEMO, "--read-noise", "2", "--estimate-noise"], "--estimate-noise excludes a camera"),
    ([*REPLAY, "--gain", "2"], "--gain is part of a camera model, which needs --read-noise"),
    (["replay", "missing.tif", "--no-preview", "--gain", "2"], "--gain is part of a camera"),
    (["demo", "--no-preview", "--size", "64", "-o", "missing/out.ome.zarr"], "does not exist"),
    ([*REPLAY, "--fps", "0"], "fps"),
    ([*REPLAY, "--fps", "1e-9"], "at least 0.001"),  # never ended
    ([*REPLAY, "--dof", "0"], "--dof must be a positive number"),
    ([*ACQUIRE, "--z-range", "4", "--step", "2", "--dof", "-1"], "--dof must be a positive"),
    ([*REPLAY, "--z-step", "-1"], "--z-step"),
    (["replay", "missing.tif", "--no-preview", "-o", "out.ome.zarr"], "missing.tif"),
    ([*ACQUIRE, "--z-range", "4", "--step", "2", "--channels", "DAPI"], "channels"),
    ([*ACQUIRE, "--z-range", "4", "--step", "2", "--interval", "-1"], "interval"),
    ([*ACQUIRE, "--z-range", "4", "--step", "2", "--positions", "1,2,3,4"], "--positions"),
    ([*ACQUIRE, "--z-range", "-4", "--step", "2"], "range"),
    ([*ACQUIRE, "--z-range", "4", "--step", "2", "--read-noise", "-2"], "--read-noise"),
]


@pytest.mark.parametrize(
    ("args", "message"), CLI_CASES, ids=[" ".join(a[5:]) for a, _ in CLI_CASES]
)
def test_cli_bad_input(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(args)
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == [], "nothing may be written"


def _z() -> useq.MDASequence:
    return useq.MDASequence(z_plan={"range": 4, "step": 2})


API_CASES: list[tuple[str, Any, type[Exception], str]] = [
    (
        "no z plan",
        lambda core, out: stream(core, useq.MDASequence(), out=out),
        ValueError,
        "Z plan",
    ),
    (
        "p inside z",
        lambda core, out: stream(
            core,
            useq.MDASequence(
                z_plan={"range": 4, "step": 2},
                stage_positions=[(0, 0, 0), (1, 1, 0)],
                axis_order="tzp",
            ),
            out=out,
        ),
        ValueError,
        "axis_order",
    ),
    ("fps", lambda core, out: stream(core, _z(), out=out, fps=-1), ValueError, "fps"),
    ("mask", lambda core, out: MDAHandler(out, mask="magic"), ValueError, "mask"),  # type: ignore[arg-type]
    ("settings", lambda core, out: MDAHandler(out, settings={"window": 3}), ValueError, "settings"),  # type: ignore[arg-type]
    (
        "channel",
        lambda core, out: stream(
            core, useq.MDASequence(z_plan={"range": 4, "step": 2}, channels=["FITC"]), out=out
        ),
        ValueError,
        "channels",
    ),
    (
        "skip_planes",
        lambda core, out: stream(core, _z(), out=out, skip_planes=True),
        ValueError,
        "skip_planes needs at least 2 time points",
    ),
    (
        "time_points",
        lambda core, out: z_sequence({"range": 4, "step": 2}, time_points=1.5),
        ValueError,
        "time_points",
    ),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("case", "call", "error", "message"), API_CASES, ids=[c[0] for c in API_CASES]
)
def test_api_bad_input(
    case: str, call: Any, error: type[Exception], message: str, tmp_path: Path, demo: Any
) -> None:
    out = tmp_path / "out.ome.zarr"
    with pytest.raises(error, match=message):
        call(demo, out)
    assert not out.exists()


def test_an_existing_store_is_refused_before_the_camera_runs(tmp_path: Path, demo: Any) -> None:
    out = tmp_path / "run.ome.zarr"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="out"):
        stream(demo, _z(), out=out)
    assert (out / "notes.txt").read_text() == "mine"
    demo.snapImage()  # the core is still usable
    assert np.asarray(demo.getImage()).size


def test_errors_name_the_option_but_not_a_file_that_begins_like_one() -> None:
    from livefocus.cli import _for_cli

    argv = ["acquire", "--config", "x.cfg", "--z-range", "4", "--step", "1", "--model", "."]
    text = "config.json: architecture: depth must be a positive int, got -3"
    assert _for_cli(text, argv) == text  # a model folder's file, not --config
    assert _for_cli("window must be a positive int, got 0", argv).startswith("--window: ")
    assert _for_cli("config: no camera", argv).startswith("--config: ")
    # hints become flags outside quotes only: a path may hold "model=UNET" or "overwrite=True"
    assert _for_cli("pass model=NAME", argv) == "pass --model NAME"
    quoted = "config '/data/model=UNET/overwrite=True.cfg' is not a file"
    assert _for_cli(quoted, argv) == f"--config: {quoted}"
