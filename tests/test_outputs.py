"""Outputs: ``overwrite`` replaces only what livefocus wrote, never an input; incomplete stores
say so (issue 13, defects 1, 2 and 8). Real files and folders, the real CLI and API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import livefocus as lf
from livefocus._output import (
    MARKER,
    check_complete,
    is_livefocus_output,
    prepare_output,
    store_status,
)
from livefocus.cli import main
from livefocus.model import load as load_model
from livefocus.model import train as train_model
from livefocus.sim import load_simulated, save_simulated, simulate_stack
from livefocus.stream import StoreWriter, open_store

DATA = Path(__file__).parent / "data"


def user_folder(path: Path) -> Path:
    """A folder a user made: a sub-folder and a note (what ``--overwrite`` once deleted)."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("keep me")
    return path


def intact(path: Path) -> bool:
    return (path / "notes.txt").read_text() == "keep me" and (path / "sub").is_dir()


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stderr)."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    code = done.value.code
    return (0 if code is None else int(code)), capsys.readouterr().err


@pytest.fixture(scope="module")
def stack_npy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "good.npy"
    np.save(path, simulate_stack((3, 64, 64), seed=1).raw)
    return path


# -- defect 1: --overwrite deletes any folder or file ----------------------------------------
@pytest.mark.parametrize("command", ["label", "simulate", "demo"])
def test_overwrite_never_deletes_a_user_folder(
    command: str, stack_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = user_folder(tmp_path / ("anything.zarr" if command == "demo" else "X"))
    argv = {
        "label": ["label", str(stack_npy), "--window", "16", "--strides", "8"],
        "simulate": ["simulate", "--shape", "3,64,64"],
        "demo": ["demo", "--size", "64", "--no-preview", "--z-range", "4"],
    }[command]
    code, err = cli([*argv, "--out", str(folder), "--overwrite"], capsys)
    assert code == 2, err
    assert "livefocus did not write" in err and len(err.splitlines()) == 1
    assert intact(folder)


@pytest.mark.parametrize("command", ["label", "simulate"])
def test_overwrite_never_deletes_a_file(
    command: str, stack_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "file.tif"
    target.write_bytes(b"precious")
    argv = ["label", str(stack_npy)] if command == "label" else ["simulate", "--shape", "3,64,64"]
    code, err = cli([*argv, "--out", str(target), "--overwrite"], capsys)
    assert code == 2 and "is a file that livefocus did not write" in err
    assert target.read_bytes() == b"precious"


def test_overwrite_replaces_what_livefocus_wrote(
    stack_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "l.ome.zarr"
    argv = ["label", str(stack_npy), "--out", str(out), "--window", "16", "--strides", "8"]
    assert cli(argv, capsys)[0] == 0
    code, err = cli(argv, capsys)  # exists, no --overwrite
    assert code == 2 and "already exists" in err and "overwrite" in err
    assert cli([*argv, "--overwrite"], capsys)[0] == 0
    assert store_status(out) == "complete"


def test_overwrite_keeps_a_zarr_array_a_user_added_and_takes_back_a_crashed_store(
    stack_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A label image a user added under ``labels/`` (as napari or ome-zarr-py do) is a Zarr
    node livefocus did not write: refused. What a killed run leaves in its own store (Zarr's
    ``zarr.<uuid>.partial`` beside a node's ``zarr.json``, a recorded node's folder without
    its ``zarr.json``) and an operating system's ``.DS_Store`` do not keep it from being
    replaced."""
    import zarr

    out = tmp_path / "l.ome.zarr"
    argv = ["label", str(stack_npy), "--out", str(out), "--window", "16", "--strides", "8"]
    assert cli(argv, capsys)[0] == 0
    nodes = open_store(out).meta["nodes"]
    assert "" in nodes and "labels/mask_otsu/0" in nodes and "focus/0" in nodes
    added = zarr.open_group(str(out / "labels"), mode="r+").create_array(
        "my_annotation", data=np.ones((1, 1, 3, 64, 64), np.uint8)
    )
    assert added is not None
    code, err = cli([*argv, "--overwrite"], capsys)
    assert code == 2 and "'labels/my_annotation'" in err, err
    assert (out / "labels" / "my_annotation" / "zarr.json").is_file()
    import shutil

    shutil.rmtree(out / "labels" / "my_annotation")
    (out / "labels" / "zarr.0123456789abcdef0123456789abcdef.partial").write_text("{")
    (out / "focus" / "zarr.json").unlink()  # killed between the folder and its zarr.json
    (out / ".DS_Store").write_bytes(b"\0")
    assert cli([*argv, "--overwrite"], capsys)[0] == 0
    assert store_status(out) == "complete" and not (out / ".DS_Store").exists()


def test_every_node_a_store_makes_is_recorded(tmp_path: Path) -> None:
    """The nodes a writer records are those it made: several positions (the bioformats2raw
    layout with its OME group), pyramid levels, every mask and map."""
    from livefocus._output import store_nodes

    store = StoreWriter(
        tmp_path / "s.ome.zarr", shape=(2, 1, 1, 3, 2100, 64), z_step=1.0,
        mask_modes=("depth", "otsu", "model"),
    )  # fmt: skip
    recorded = store.meta["nodes"]
    assert recorded == store_nodes(store.path) and "OME" in recorded and "1/labels" in recorded
    assert "0/1" in recorded  # a pyramid level of a frame taller than 1024 px


def test_an_output_inside_a_livefocus_output_is_refused(
    stack_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another output inside a store or a model folder would become part of it (which then
    holds what its writer did not write): refused, nothing written."""
    store = tmp_path / "l.ome.zarr"
    assert cli(["label", str(stack_npy), "--out", str(store), "--window", "16"], capsys)[0] == 0
    for argv in (
        ["simulate", "--shape", "3,64,64", "--out", str(store / "s.zarr")],
        ["export", "default", "--out", str(store / "x.onnx")],
        ["label", str(stack_npy), "--out", str(store / "labels" / "l2.zarr")],
    ):
        code, err = cli(argv, capsys)
        assert code == 2 and "lies inside the livefocus output" in err, (argv, err)
    from livefocus._output import foreign_entry

    assert foreign_entry(store) is None and store_status(store) == "complete"


def test_overwrite_keeps_what_a_user_put_in_a_store(
    stack_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file or link a user put into a livefocus store is not livefocus's to remove: the
    store is not replaced (one line naming it, exit 2) until it is moved out."""
    out = tmp_path / "l.ome.zarr"
    argv = ["label", str(stack_npy), "--out", str(out), "--window", "16", "--strides", "8"]
    assert cli(argv, capsys)[0] == 0
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    chunk = next(p for p in sorted((out / "0" / "c").rglob("*")) if p.is_file())
    # inside an array's chunk folder too (until 2026-12-03 it was not looked into): a file
    # beside the chunk keys, one at a depth no key has, in a folder named otherwise, a chunk
    # replaced by a link
    extras = [
        out / "notes.txt",
        out / "labels" / "mask_otsu" / "0" / "mine",
        out / "link",
        out / "0" / "c" / "notes.txt",
        out / "0" / "c" / "9" / "9" / "keep.txt",
        out / "labels" / "mask_otsu" / "0" / "c" / "extra" / "f",
        chunk.parent / "99999" / "0",
        chunk,
    ]
    for extra in extras:
        made = [p for p in extra.parents if not p.exists()]
        extra.parent.mkdir(parents=True, exist_ok=True)
        kept = extra.read_bytes() if extra == chunk else None
        if extra.name == "link" or extra == chunk:
            extra.unlink(missing_ok=True)
            extra.symlink_to(target)
        else:
            extra.write_text("mine")
        code, err = cli([*argv, "--overwrite"], capsys)
        named = re.search(r"holds '([^']+)'", err)  # the entry, or the folder holding it
        relative = str(extra.relative_to(out))
        assert code == 2 and named is not None and "did not write" in err, err
        assert relative == named[1] or relative.startswith(named[1] + "/"), err
        assert len(err.strip().splitlines()) == 1 and (extra.exists() or extra.is_symlink())
        assert store_status(out) == "complete"  # the old store as it was
        extra.unlink()
        for folder in made:
            folder.rmdir()
        if kept is not None:
            extra.write_bytes(kept)
    assert target.read_text() == "keep me"
    # what a killed writer leaves beside a chunk is its own: zarr-python's and tensorstore's
    # files it renames into place
    (chunk.parent / f"{chunk.name}.{'0' * 32}.partial").write_bytes(b"")
    (chunk.parent / f"{chunk.name}.__lock").write_bytes(b"")
    assert cli([*argv, "--overwrite"], capsys)[0] == 0  # nothing foreign left: replaced


# -- defect 2: output equal to an input -------------------------------------------------------
def test_label_refuses_its_input_as_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ph = save_simulated(simulate_stack((3, 64, 64), seed=2), tmp_path / "ph.zarr")
    before = lf.read_stack(ph)
    for out in (ph, ph / "inner.zarr", tmp_path):  # the input, inside it, holding it
        code, err = cli(["label", str(ph), "--out", str(out), "--overwrite"], capsys)
        assert code == 2 and "would overwrite the input" in err, err
    np.testing.assert_array_equal(lf.read_stack(ph), before)
    assert load_simulated(ph).raw.shape == (3, 64, 64)


def test_replay_refuses_its_input_as_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run.ome.zarr"
    raw = simulate_stack((3, 64, 64), seed=3).raw
    writer = StoreWriter(run, shape=(1, 1, 1, 3, 64, 64), mask_modes=("depth",))
    for z in range(3):
        writer.write_plane(
            (0, 0, 0, z), raw=raw[z], focus=np.zeros((64, 64)), masks={"depth": raw[z] > 0}
        )
    writer.close("complete")
    argv = ["replay", str(run), "--out", str(run), "--overwrite", "--no-preview"]
    code, err = cli(argv, capsys)
    assert code == 2 and "would overwrite the input" in err, err
    np.testing.assert_array_equal(open_store(run).array("raw")[0, 0], raw)


def test_model_writers_never_overwrite_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx_path = tmp_path / "m.onnx"
    assert cli(["export", "default", "--out", str(onnx_path)], capsys)[0] == 0
    first = onnx_path.read_bytes()
    code, err = cli(["export", "default", "--out", str(onnx_path)], capsys)
    assert code == 2 and "already exists" in err
    assert cli(["export", "default", "--out", str(onnx_path), "--overwrite"], capsys)[0] == 0
    assert onnx_path.read_bytes() == first  # replaced by the same export
    other = tmp_path / "other.onnx"
    other.write_bytes(b"not ours")
    code, err = cli(["export", "default", "--out", str(other), "--overwrite"], capsys)
    assert code == 2 and "did not write" in err and other.read_bytes() == b"not ours"
    # train and finetune refuse before any training: a user folder, their own input
    folder = user_folder(tmp_path / "models")
    code, err = cli(["train", "--out", str(folder), "--overwrite", "--no-progress"], capsys)
    assert code == 2 and "did not write" in err and intact(folder)
    code, err = cli(["finetune", "default", "--out", str(folder), "--no-progress"], capsys)
    # without --overwrite too: it is refused as not livefocus's, not with a hint to overwrite
    assert code == 2 and "did not write" in err and "--overwrite" not in err and intact(folder)
    shipped = load_model("default").path
    assert shipped is not None
    code, err = cli(["finetune", str(shipped), "--out", str(shipped), "--overwrite"], capsys)
    assert code == 2 and "would overwrite the input" in err
    assert (shipped / "weights.pt").is_file()


# -- defect 8: incomplete output looks complete ------------------------------------------------
def _cli_with_file_limit(
    limit: int, argv: list[str], numba_cache: Path
) -> subprocess.CompletedProcess[str]:
    """The CLI run in a process that may write no file above ``limit`` bytes (RLIMIT_FSIZE:
    a real write failure, EFBIG, where a disk would be full), with numba's cache in the empty
    folder ``numba_cache``: the kernels compile there and cannot save their cache either (until
    2026-12-03 that failure ended the run; it passed only where an earlier run had cached)."""
    script = textwrap.dedent(
        f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from livefocus.cli import main
        main({argv!r})
        """
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)


def test_simulate_on_a_full_disk_leaves_nothing(tmp_path: Path) -> None:
    """No file above 8 KB: the half-written store goes (until 2026-12-02 it stayed, marked
    incomplete)."""
    out = tmp_path / "full.zarr"
    done = _cli_with_file_limit(
        8192, ["simulate", "--shape", "2,128,128", "--out", str(out)], tmp_path / "numba"
    )
    assert done.returncode == 2 and "File too large" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "could not be written" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists()


def test_a_disk_that_fills_during_a_run_counts_the_frames_lost(tmp_path: Path) -> None:
    """The store is made (its metadata fits), then its first frame's chunk does not: tensorstore's
    failure is one log line, the frames captured are counted lost, the store records the error,
    and no logging traceback is printed (pymmcore-plus's log file cannot grow either)."""
    out = tmp_path / "full.ome.zarr"
    argv = ["demo", "--no-preview", "--size", "256", "--out", str(out)]
    done = _cli_with_file_limit(40_000, argv, tmp_path / "numba")
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert "writing to the store failed" in done.stderr and "File too large" in done.stderr
    assert "Traceback" not in text and "Logging error" not in text
    lost = re.search(r"frames\s+0/21 written, (\d+) lost", done.stdout)
    assert lost is not None and int(lost.group(1)) >= 1, done.stdout
    assert (store_status(out) or "").startswith("error: writing the store failed")


def test_a_store_that_cannot_be_made_leaves_nothing(tmp_path: Path, stack_npy: Path) -> None:
    """The same for the streaming store's writer (``label`` uses it): no half-made store,
    one line naming --out."""
    out = tmp_path / "full.ome.zarr"
    done = _cli_with_file_limit(
        1200, ["label", str(stack_npy), "--out", str(out)], tmp_path / "numba"
    )
    assert done.returncode == 2 and "--out" in done.stderr, done.stderr
    assert "could not be written" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_label_stores_carry_a_status(tmp_path: Path, stack_npy: Path) -> None:
    from livefocus.stack_store import LabelStore

    raw = np.load(stack_npy)
    store = LabelStore.create(tmp_path / "l.ome.zarr", raw=raw, attrs={"measure": "std"})
    store.write_map(0, np.zeros(raw.shape[1:]))  # stopped here: a crash, Ctrl-C
    assert store_status(store.path) == "running"
    with pytest.raises(ValueError, match="stopped before finishing"):
        lf.read_stack(store.path)
    store.close("interrupted")
    with pytest.raises(ValueError, match="stopped early"):
        check_complete(store.path)
    assert open_store(store.path).meta["status"] == "interrupted"  # still opens to look


# -- the API underneath ----------------------------------------------------------------------
def test_prepare_output_rules(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "user")
    with pytest.raises(FileExistsError, match="folder that livefocus did not write"):
        prepare_output(folder, overwrite=False)
    with pytest.raises(FileExistsError, match="folder that livefocus did not write"):
        prepare_output(folder, overwrite=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileExistsError, match="did not write"):  # not even an empty one
        prepare_output(empty, overwrite=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_output(tmp_path / "no" / "x.zarr", overwrite=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / MARKER).write_text(json.dumps({"writer": "livefocus", "kind": "model"}))
    assert is_livefocus_output(model)
    assert prepare_output(model, overwrite=True) == model and not model.exists()
    stack = tmp_path / "in" / "s.tif"
    stack.parent.mkdir()
    stack.write_bytes(b"x")
    with pytest.raises(ValueError, match="would overwrite the input"):
        prepare_output(tmp_path / "in", overwrite=True, inputs=[stack])
    assert intact(folder) and stack.read_bytes() == b"x"


def test_store_writer_refuses_unmarked_paths_and_inputs(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "x.ome.zarr")
    shape = (1, 1, 1, 2, 64, 64)
    with pytest.raises(FileExistsError, match="did not write"):
        StoreWriter(folder, shape=shape, overwrite=True)
    assert intact(folder)
    stack = tmp_path / "s.npy"
    np.save(stack, np.zeros((2, 64, 64), np.uint16))
    with pytest.raises(ValueError, match="would overwrite the input"):
        StoreWriter(stack, shape=shape, overwrite=True, meta={"stack": str(stack)})
    with pytest.raises(ValueError, match="would overwrite the input"):
        StoreWriter(tmp_path, shape=shape, overwrite=True, inputs=[stack])
    assert stack.is_file()
    writer = StoreWriter(tmp_path / "ok.ome.zarr", shape=shape)
    assert store_status(writer.path) == "running"
    writer.close("error: camera failed")
    assert open_store(writer.path).meta["status"] == "error: camera failed"
    with pytest.raises(ValueError, match="camera failed"):
        check_complete(writer.path)


def test_train_refuses_before_training(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "m")
    with pytest.raises(FileExistsError, match="did not write"):
        train_model(folder, n_train=1, epochs=1, progress=False)
    with pytest.raises(FileExistsError, match="did not write"):
        train_model(folder, n_train=1, epochs=1, progress=False, overwrite=True)
    assert intact(folder)


# -- 2026-12-03 (a red-team try): paths tensorstore reads otherwise than the OS ---------------
@pytest.mark.parametrize("command", ["label", "replay", "demo"])
def test_an_out_path_through_dot_dot_is_written(
    command: str,
    stack_npy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--out ../x.ome.zarr`` (and ``a/../x``): tensorstore refuses a path with '..', which
    until 2026-12-03 failed after the store was made and left it, half-made, 'running'."""
    (tmp_path / "work" / "a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    argv = {
        "label": ["label", str(stack_npy), "--window", "16", "--strides", "8"],
        "replay": ["replay", str(stack_npy), "--no-preview"],
        "demo": ["demo", "--size", "64", "--no-preview", "--z-range", "4"],
    }[command]
    for out in ("../up.ome.zarr", "a/../across.ome.zarr"):
        code, err = cli([*argv, "--out", out], capsys)
        assert code == 0, err
        assert store_status(tmp_path / "work" / out) == "complete"


@pytest.mark.parametrize("command", ["label", "replay", "simulate"])
def test_an_out_path_with_a_backslash_is_refused(
    command: str, stack_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tensorstore takes a backslash for a folder separator: refused before anything is made
    (until 2026-12-03 a half-made store was left at the path)."""
    argv = {
        "label": ["label", str(stack_npy)],
        "replay": ["replay", str(stack_npy), "--no-preview"],
        "simulate": ["simulate", "--shape", "3,64,64"],
    }[command]
    out = tmp_path / "x\\y.ome.zarr"
    code, err = cli([*argv, "--out", str(out)], capsys)
    assert code == 2 and "--out" in err and "backslash" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def _status(path: Path) -> str | None:
    try:
        return json.loads((path / "zarr.json").read_text())["attributes"]["livefocus"]["status"]
    except (OSError, ValueError, KeyError):
        return None


def test_overwrite_refuses_a_store_its_writer_is_still_writing(tmp_path: Path) -> None:
    """A second run with --overwrite onto a store another livefocus process was writing
    deleted it under its writer: the first run then died (exit 2) or reported a complete
    store with arrays missing. Now it is refused while the writer lives."""
    import time

    from support.cli import run_cli, start_cli

    out = tmp_path / "c.ome.zarr"
    long_run = ["--no-preview", "--size", "96", "--z-range", "30", "--step", "1"]
    first = start_cli("demo", *long_run, "--time-points", "200", "-o", str(out), cwd=tmp_path)
    deadline = time.monotonic() + 120
    while _status(out) != "running" and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.1)
    assert _status(out) == "running", first.poll()
    short = ["--no-preview", "--size", "64", "--z-range", "4", "--step", "2", "--overwrite"]
    code, _, err = run_cli("demo", *short, "-o", str(out), cwd=tmp_path)
    assert code == 2 and "is being written now by livefocus" in err and "--out" in err, err
    assert _status(out) == "running"  # untouched
    first.send_signal(__import__("signal").SIGINT)
    first.communicate(timeout=120)
    assert _status(out) == "interrupted"
    # once its writer is gone, the store is replaced as any other
    code, _, err = run_cli("demo", *short, "-o", str(out), cwd=tmp_path)
    assert code == 0 and _status(out) == "complete", err


def test_a_running_store_whose_writer_died_is_replaced(tmp_path: Path) -> None:
    """A crash leaves the status running: its writer's process is gone, so --overwrite
    replaces it (the writer check is not a lock a crash could leave behind)."""
    from livefocus._output import live_writer

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    out = tmp_path / "crashed.ome.zarr"
    out.mkdir()
    stamp = {"pid": int(gone.stdout), "host": __import__("socket").gethostname(), "started": 0.0}
    attrs = {"livefocus": {"status": "running", "writer": stamp}}
    (out / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attrs})
    )
    assert live_writer(out) is None
    lf.sim.save_simulated(simulate_stack((4, 64, 64), seed=0), out, overwrite=True)
    assert _status(out) == "complete"
