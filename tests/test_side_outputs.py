"""Side files and inputs: a screenshot, a JSON summary or a figure never replaces an input, a
file inside a store, or a file livefocus did not write; ``--overwrite`` never replaces the
model a command reads, nor a livefocus output of another kind; a store with lost planes is no
stack; ``replay --fps`` paces the frames (a red-team's findings, 2026-12-01 night). Real CLI
runs, real stores and model folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from support.cli import run_cli

import livefocus as lf
from livefocus._output import (
    check_file_output,
    is_livefocus_file,
    output_kind,
    write_json,
)
from livefocus.cli import main
from livefocus.sim import simulate_stack


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    code = done.value.code
    captured = capsys.readouterr()
    return (0 if code is None else int(code)), captured.out, captured.err


@pytest.fixture()
def stack(tmp_path: Path) -> Path:
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, simulate_stack((5, 64, 64), seed=3, z_step=2.0).raw)
    return path


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real calibrated model folder (a few seconds of calibration)."""
    root = tmp_path_factory.mktemp("model")
    raw = root / "s.tif"
    tifffile.imwrite(raw, simulate_stack((6, 64, 64), seed=4, z_step=2.0).raw)
    out = root / "cal"
    lf.model.calibrate(raw, model="default", out=out, seconds=3)
    return out


def test_side_file_rules(tmp_path: Path) -> None:
    mine = tmp_path / "mine.json"
    mine.write_text('{"a": 1}\n')
    with pytest.raises(FileExistsError, match="did not write"):
        check_file_output(mine, name="--json")
    ours = tmp_path / "ours.json"
    write_json(ours, {"a": 1})
    assert is_livefocus_file(ours) and json.loads(ours.read_text())["writer"] == "livefocus"
    assert check_file_output(ours, name="--json") == ours  # its own file: replaced
    store = tmp_path / "s.zarr"
    store.mkdir()
    with pytest.raises(ValueError, match="input"):
        check_file_output(store / "zarr.json", name="--screenshot", inputs=[store])
    with pytest.raises(ValueError, match="inside the output"):
        check_file_output(store / "x.png", name="--screenshot", within=[store])
    with pytest.raises(ValueError, match=r"\.png"):
        check_file_output(tmp_path / "x.tif", name="--screenshot", suffixes=[".png"])
    with pytest.raises(FileNotFoundError, match="--plot"):
        check_file_output(tmp_path / "nowhere" / "x.png", name="--plot")


def test_screenshot_and_json_never_replace_the_input(
    tmp_path: Path, stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = stack.read_bytes()
    out = tmp_path / "r.zarr"
    code, _, err = cli(
        ["replay", str(stack), "--out", str(out), "--screenshot", str(stack)], capsys
    )
    assert code == 2 and "--screenshot" in err and not out.exists()
    cal = tmp_path / "c"
    argv = ["calibrate", str(stack), "--out", str(cal), "--seconds", "3", "--json", str(stack)]
    code, _, err = cli(argv, capsys)
    assert code == 2 and "--json" in err and not cal.exists()
    assert stack.read_bytes() == before


def test_view_screenshot_never_writes_into_the_store(
    tmp_path: Path, stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "r.zarr"
    code, _, err = cli(["replay", str(stack), "--out", str(store), "--no-preview"], capsys)
    assert code == 0, err
    before = (store / "zarr.json").read_text()
    code, _, err = cli(["view", str(store), "--screenshot", str(store / "zarr.json")], capsys)
    assert code == 2 and "--screenshot" in err
    assert (store / "zarr.json").read_text() == before
    lf.stream.open_store(store)  # still a store


def test_label_keeps_a_users_file_where_its_curve_would_go(
    tmp_path: Path, stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    curve = tmp_path / "o-curve.png"
    curve.write_text("mine")
    out = tmp_path / "o.zarr"
    code, _, err = cli(["label", str(stack), "--out", str(out)], capsys)
    assert code == 2 and "--plot" in err and "did not write" in err
    assert curve.read_text() == "mine" and not out.exists()
    curve.unlink()
    code, _, err = cli(["label", str(stack), "--out", str(out)], capsys)
    assert code == 0, err
    assert is_livefocus_file(curve)  # its own figure: replaced by the next run
    code, _, err = cli(["label", str(stack), "--out", str(out), "--overwrite"], capsys)
    assert code == 0, err


def test_label_names_out_for_a_missing_folder(
    tmp_path: Path, stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(["label", str(stack), "--out", str(tmp_path / "none" / "o.zarr")], capsys)
    assert code == 2 and err.strip().startswith("error: --out"), err


def test_overwrite_never_replaces_the_model_being_read(
    tmp_path: Path, stack: Path, model_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = sorted(p.name for p in model_folder.iterdir())
    replay = ["replay", str(stack), "--overwrite", "--no-preview"]
    for argv in (
        ["label", str(stack), "--overwrite", "--out", str(model_folder),
         "--model", str(model_folder)],
        [*replay, "--out", str(model_folder), "--model", str(model_folder)],
        [*replay, "--out", str(tmp_path / "r.zarr"), "--model", str(model_folder),
         "--calibrate", str(model_folder)],
    ):  # fmt: skip
        code, _, err = cli(argv, capsys)
        assert code == 2, (argv, err)
        assert sorted(p.name for p in model_folder.iterdir()) == weights
    assert output_kind(model_folder) == "model"


def test_overwrite_never_replaces_another_kind_of_output(
    tmp_path: Path, stack: Path, model_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "r.zarr"
    code, _, err = cli(["replay", str(stack), "--out", str(store), "--no-preview"], capsys)
    assert code == 0, err
    argv = ["replay", str(stack), "--out", str(tmp_path / "r2.zarr"), "--no-preview"]
    code, _, err = cli([*argv, "--calibrate", str(store), "--overwrite"], capsys)
    assert code == 2 and "store" in err and output_kind(store) == "store"
    copy = tmp_path / "model"
    copy.mkdir()
    for item in model_folder.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    code, _, err = cli(["label", str(stack), "--out", str(copy), "--overwrite"], capsys)
    assert code == 2 and "model" in err and output_kind(copy) == "model"


def test_a_store_with_lost_planes_is_no_stack(tmp_path: Path) -> None:
    frames = simulate_stack((6, 64, 64), seed=5, z_step=2.0).raw
    store = tmp_path / "part.zarr"
    writer = lf.stream.StoreWriter(
        store, shape=(1, 1, 1, 6, 64, 64), dtype=frames.dtype, mask_modes=("depth",)
    )
    for z in (0, 1, 2, 4):  # planes 3 and 5 were lost
        writer.write_plane(
            (0, 0, 0, z), raw=frames[z], focus=frames[z].astype(np.float32), masks={}
        )
    writer.close("complete")
    with pytest.raises(ValueError, match="lacks 2 of 6 planes"):
        lf.read_stack(store)
    with pytest.raises(ValueError, match="lacks 2 of 6 planes"):
        lf.model.calibrate(store, model="default", out=tmp_path / "cal", seconds=3)
    assert not (tmp_path / "cal").exists()


def test_replay_fps_paces_the_frames(tmp_path: Path) -> None:
    path = tmp_path / "five.npy"
    np.save(path, simulate_stack((5, 64, 64), seed=6, z_step=2.0).raw)
    run = run_cli(
        "replay", str(path), "--out", str(tmp_path / "f.zarr"), "--no-preview", "--fps", "5",
        "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    # 5 frames at 5 frames/s: 0.8 s from the first frame written to the last at least
    assert 0 < summary["fps"] <= 5.5, summary


def test_a_model_threshold_outside_0_1_is_refused(tmp_path: Path, model_folder: Path) -> None:
    for bad in (float("nan"), 5, "x"):
        copy = tmp_path / f"m{bad}"
        copy.mkdir()
        for item in model_folder.iterdir():
            (copy / item.name).write_bytes(item.read_bytes())
        cfg = json.loads((copy / "config.json").read_text())
        cfg["threshold"] = bad
        (copy / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(ValueError, match="threshold"):
            lf.model.load(copy)


def test_z_step_beyond_reason_is_one_line(
    tmp_path: Path, stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for value in ("1e300", "1e-300"):
        out = tmp_path / "o.zarr"
        argv = ["label", str(stack), "--out", str(out), "--depth", "--z-step", value]
        code, _, err = cli(argv, capsys)
        assert code == 2 and "--z-step" in err and not out.exists()


@pytest.mark.parametrize("value", [1e300, 1e9, 0, -2.0, float("nan")])
def test_a_z_step_the_file_records_beyond_reason_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: float
) -> None:
    """A z step read from the stack gets the flag's range check: label crashed on 1e300
    (OverflowError), replay put -2 into a Micro-Manager configuration error, 0 became 1 µm."""
    stack = tmp_path / "z.zarr"
    group = zarr.open_group(stack, mode="w")
    group.create_array("raw", data=np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16))
    group.attrs["z_step_um"] = value
    tiff = tmp_path / "z.tif"
    tifffile.imwrite(
        tiff, np.zeros((4, 16, 16), np.uint16), imagej=True, metadata={"spacing": value}
    )
    runs = [
        (["label", str(stack), "--depth"], "l.zarr"),
        (["replay", str(stack), "--no-preview"], "r.ome.zarr"),
        (["calibrate", str(stack), "--seconds", "5"], "c"),
        (["label", str(tiff), "--depth"], "t.zarr"),
    ]
    for argv, name in runs:
        out = tmp_path / name
        code, _, err = cli([*argv, "--out", str(out)], capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "--z-step" in lines[0], (argv, err)
        assert "records a z step" in err and not out.exists(), (argv, err)
    code, _, err = cli(
        ["label", str(stack), "--depth", "--z-step", "2", "--out", str(tmp_path / "ok.zarr")],
        capsys,
    )
    assert code == 0, err


def test_calibrate_without_rule_pixels_in_the_held_out_tiles_keeps_the_base(
    tmp_path: Path,
) -> None:
    """Yeast field A (tests/data): the rule marks a few pixels, none in the held-out tile, so
    an empty mask would score 1 there; nothing is fitted and the base is kept."""
    field = tifffile.imread(Path(__file__).parent / "data" / "yeast_brightfield_5z.tif")[0]
    path = tmp_path / "yeast_a.tif"
    tifffile.imwrite(path, field)
    metrics = lf.model.calibrate(path, model="default", out=tmp_path / "c", seconds=20)
    assert metrics["kept"] == "base" and metrics["steps"] == 0
    assert metrics["stopped"].startswith("not run"), metrics["stopped"]


def test_acquire_refuses_nan_positions_and_a_broken_cfg_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Path(__file__).resolve().parents[1] / "device_configs" / "demo.cfg"
    out = tmp_path / "a.zarr"
    argv = ["acquire", "--config", str(config), "--z-range", "4", "--step", "1"]
    code, _, err = cli([*argv, "--positions", "nan,0", "--out", str(out)], capsys)
    assert code == 2 and "--positions" in err and not out.exists()
    bad = tmp_path / "bad.cfg"
    bad.write_text("garbage line\n")
    argv = ["acquire", "--config", str(bad), "--z-range", "4", "--step", "1"]
    code, _, err = cli([*argv, "--out", str(out), "--no-preview"], capsys)
    assert code == 2 and "--config" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_label_dof_beyond_reason_and_its_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    field = tifffile.imread(Path(__file__).parent / "data" / "yeast_brightfield_5z.tif")[0]
    path = tmp_path / "yeast_a.tif"
    tifffile.imwrite(path, field)
    out = tmp_path / "o.zarr"
    code, _, err = cli(["label", str(path), "--out", str(out), "--depth", "--dof", "1e300"], capsys)
    assert code == 2 and "--dof" in err and not out.exists()
    code, text, err = cli(["label", str(path), "--out", str(out)], capsys)
    assert code == 0, err
    assert "best slice 0" in text and "edge plane" in text and "phase object" in text
    two = tmp_path / "two.tif"
    tifffile.imwrite(two, field[1:3])
    code, text, err = cli(["label", str(two), "--out", str(tmp_path / "t.zarr"), "--depth"], capsys)
    assert code == 0, err
    assert "needs 3 planes" in text


def test_calibrate_refuses_a_store_whose_run_did_not_finish(tmp_path: Path) -> None:
    frames = simulate_stack((6, 64, 64), seed=7, z_step=2.0).raw
    store = tmp_path / "crashed.zarr"
    writer = lf.stream.StoreWriter(
        store, shape=(1, 1, 1, 6, 64, 64), dtype=frames.dtype, mask_modes=("depth",)
    )
    for z in range(6):
        writer.write_plane(
            (0, 0, 0, z), raw=frames[z], focus=frames[z].astype(np.float32), masks={}
        )
    # never closed: its status stays "running", as after a crash
    with pytest.raises(ValueError, match="incomplete livefocus store"):
        lf.model.calibrate(store, model="default", out=tmp_path / "cal", seconds=3)
    assert not (tmp_path / "cal").exists()


# -- a second red-team pass ------------------------------------------------------------------
def copy_folder(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for item in src.iterdir():
        (dst / item.name).write_bytes(item.read_bytes())
    return dst


def test_overwrite_never_deletes_the_replayed_stack_or_the_config(
    tmp_path: Path, model_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_folder(model_folder, tmp_path / "M2")
    stack = folder / "s.tif"
    tifffile.imwrite(stack, simulate_stack((5, 64, 64), seed=8, z_step=2.0).raw)
    argv = ["replay", str(stack), "--calibrate", str(folder), "--overwrite", "--no-preview"]
    code, _, err = cli([*argv, "--out", str(tmp_path / "r.zarr")], capsys)
    assert code == 2 and stack.is_file(), err
    store = tmp_path / "A.zarr"
    code, _, err = cli(["replay", str(stack), "--out", str(store), "--no-preview"], capsys)
    assert code == 0, err
    config = store / "my.cfg"
    config.write_text(
        (Path(__file__).resolve().parents[1] / "device_configs" / "demo.cfg").read_text()
    )
    argv = ["acquire", "--config", str(config), "--z-range", "4", "--step", "2", "--no-preview"]
    code, _, err = cli([*argv, "--out", str(store), "--overwrite"], capsys)
    assert code == 2 and config.is_file(), err


def test_out_dot_never_empties_the_folder_you_are_in(tmp_path: Path, stack: Path) -> None:
    store = tmp_path / "A.zarr"
    assert run_cli("replay", str(stack), "--out", str(store), "--no-preview").returncode == 0
    before = sorted(p.name for p in store.iterdir())
    for out in (".", ""):
        run = run_cli("replay", str(stack), "--out", out, "--overwrite", "--no-preview", cwd=store)
        assert run.returncode == 2, run.stderr
        assert sorted(p.name for p in store.iterdir()) == before


def test_side_files_never_go_into_a_livefocus_folder(
    tmp_path: Path, stack: Path, model_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_folder(model_folder, tmp_path / "M4")
    marker = (folder / ".livefocus").read_text()
    argv = ["calibrate", str(stack), "--out", str(tmp_path / "N"), "--seconds", "3"]
    code, _, err = cli([*argv, "--json", str(folder / ".livefocus")], capsys)
    assert code == 2 and "--json" in err and (folder / ".livefocus").read_text() == marker
    argv = ["replay", str(stack), "--out", str(tmp_path / "r.zarr")]
    code, _, err = cli([*argv, "--calibrate", str(tmp_path / "C.png"),
                        "--screenshot", str(tmp_path / "C.png")], capsys)  # fmt: skip
    assert code == 2 and "--screenshot" in err and not (tmp_path / "r.zarr").exists()


def test_a_float16_stack_replays_its_values(tmp_path: Path) -> None:
    path = tmp_path / "f16.npy"
    values = simulate_stack((4, 64, 64), seed=9, z_step=2.0).raw / 4095.0
    np.save(path, values.astype(np.float16))
    out = tmp_path / "f.zarr"
    run = run_cli("replay", str(path), "--out", str(out), "--no-preview")
    assert run.returncode == 0, run.stderr
    raw = np.asarray(lf.stream.open_store(out).array("raw")[0, 0])
    assert raw.max() > 60000 and raw.std() > 100  # scaled to the camera's range, not zeros


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "STACK", "--z-step", "1e300"],
        ["replay", "STACK", "--dof", "1e300"],
        ["replay", "STACK", "--pixel-size", "nan"],
        ["replay", "STACK", "--pixel-size", "0"],
        ["demo", "--size", "64", "--z-range", "4e-300", "--step", "1e-300"],
        ["demo", "--size", "64", "--z-range", "-4", "--step", "2"],
    ],
)
def test_streaming_plane_spacings_beyond_reason_are_one_line(
    argv: list[str], tmp_path: Path, stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.zarr"
    line = [str(stack) if a == "STACK" else a for a in argv]
    code, _, err = cli([*line, "--out", str(out), "--no-preview"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not out.exists(), err
    assert any(f in err for f in ("--z-step", "--dof", "--step", "--z-range", "--pixel-size")), err


def test_a_z_plan_beyond_the_stage_travel_is_refused_before_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "d.zarr"
    demo = ["demo", "--size", "64", "--step", "2", "--no-preview", "--out", str(out)]
    code, _, err = cli([*demo, "--z-range", "8"], capsys)
    assert code == 0, err
    before = (out / "zarr.json").read_text()
    code, _, err = cli([*demo, "--z-range", "1000", "--overwrite"], capsys)
    assert code == 2 and "--z-range" in err and "travel" in err, err
    assert (out / "zarr.json").read_text() == before  # the old store is still there


def test_label_and_replay_choose_one_stack_of_a_time_lapse_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store of 2 time points was refused by label and replay with only its shape ('expected
    3 axes'); now they take --time-point (never one picked in silence)."""
    from livefocus.io import read_stack

    lapse = tmp_path / "lapse.ome.zarr"
    demo = ["demo", "--no-preview", "--size", "64", "--z-range", "4", "--step", "2"]
    code, _, err = cli([*demo, "--time-points", "2", "-o", str(lapse)], capsys)
    assert code == 0, err
    for argv in (["label", str(lapse)], ["replay", str(lapse), "--no-preview"]):
        out = tmp_path / f"{argv[0]}.zarr"
        code, _, err = cli([*argv, "--out", str(out)], capsys)
        assert code == 2 and "holds 2 time points" in err and "--time-point" in err, err
        assert not out.exists()
        code, _, err = cli([*argv, "--out", str(out), "--time-point", "1"], capsys)
        assert code == 0, err
        assert out.exists()
    second = np.asarray(lf.stream.open_store(lapse).array("raw")[1, 0])
    assert np.array_equal(read_stack(lapse, time_point=1), second)
    code, _, err = cli(["label", str(lapse), "--out", str(tmp_path / "x.zarr"), "--time-point",
                        "2"], capsys)  # fmt: skip
    assert code == 2 and "--time-point" in err and "below 2" in err, err
    tiff = tmp_path / "one.tif"
    tifffile.imwrite(tiff, np.zeros((5, 16, 16), np.uint16))
    with pytest.raises(ValueError, match=r"time_point: stack .* is a file of one stack"):
        read_stack(tiff, time_point=0)
