"""``livefocus export | evaluate | train | finetune`` as a user runs them (in-process)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from livefocus.cli import main
from livefocus.model.registry import SHIPPED


def test_export_writes_valid_onnx(tmp_path: Path) -> None:
    out = tmp_path / "default.onnx"
    with pytest.raises(SystemExit) as done:
        main(["export", "default", "--out", str(out)])
    assert done.value.code in (0, None)
    graph = onnx.load(str(out))
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["frames"]


def test_bad_model_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(SHIPPED / "default", broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["architecture"]["depth"] = 2
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SystemExit) as done:
        main(["export", str(broken), "--out", str(tmp_path / "x.onnx")])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "does not match the weights" in err
    assert len(err.splitlines()) == 1


def test_a_model_whose_config_does_not_parse_names_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``demo --model DIR`` with a damaged config.json: one line naming --model (until
    2026-12-03 it began with the file's path, and no option was named)."""
    broken = tmp_path / "broken"
    shutil.copytree(SHIPPED / "default", broken)
    (broken / "config.json").write_text("{bad")
    argv = ["demo", "--no-preview", "--size", "64", "--model", str(broken)]
    with pytest.raises(SystemExit) as done:
        main([*argv, "--out", str(tmp_path / "d.ome.zarr")])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and err.startswith("error: --model: model '"), err
    assert "config.json: not valid JSON" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "d.ome.zarr").exists()


def test_train_refuses_more_stacks_than_memory_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "huge"
    with pytest.raises(SystemExit) as done:
        main(["train", "--preset", "depth", "--out", str(out), "--n-train", "1000000",
              "--no-progress"])  # fmt: skip
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "n_train 1000000 needs about" in err, err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_train_on_depth_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d"
    with pytest.raises(SystemExit) as done:
        main(
            ["train", "--labels", "depth", "--out", str(out), "--n-train", "1", "--epochs", "1",
             "--no-progress", "--shape", "10", "64", "64"]
        )  # fmt: skip
    assert done.value.code in (0, None)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["labels"]["kind"] == "depth" and cfg["labels"]["settings"]["window"] == 6
    assert cfg["training"]["recipe"]["labels"] == "depth"
    assert "--labels depth" in cfg["training"]["command"]
    with pytest.raises(SystemExit) as done:
        main(["train", "--labels", "edges", "--out", str(out), "--no-progress"])
    assert done.value.code == 2
    assert "labels must be 'otsu' or 'depth'" in capsys.readouterr().err


def test_train_with_a_real_stack_of_another_size(tmp_path: Path) -> None:
    """A 229 x 305 real stack joins 64 x 64 simulated ones: labelled whole, then tiled."""
    stack = Path(__file__).parent / "data" / "diatom_mfusionj_3z.tif"
    out = tmp_path / "m"
    with pytest.raises(SystemExit) as done:
        main(
            ["train", "--out", str(out), "--n-train", "1", "--epochs", "1",
             "--no-progress", "--shape", "6", "64", "64", "--stack", str(stack)]
        )  # fmt: skip
    assert done.value.code in (0, None)
    data = json.loads((out / "config.json").read_text())["training"]["data"]
    assert data["user_stacks"] == [str(stack)] and data["frame_shape"] == [64, 64]
    assert data["n_slices"] == 6 + 3 * 4 * 5  # 4 x 5 tiles of each of the 3 real slices


def test_finetune_on_user_stack_with_mask(tmp_path: Path) -> None:
    from livefocus.sim import simulate_stack

    sim = simulate_stack((3, 64, 64), seed=3)
    np.save(tmp_path / "raw.npy", sim.raw)
    np.save(tmp_path / "mask.npy", sim.mask.astype(np.uint8))
    out = tmp_path / "tuned"
    with pytest.raises(SystemExit) as done:
        main(
            ["finetune", "default", "--out", str(out), "--n-sim", "0", "--epochs", "1",
             "--stack", str(tmp_path / "raw.npy"), "--mask", str(tmp_path / "mask.npy"),
             "--no-progress"]
        )  # fmt: skip
    assert done.value.code in (0, None)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["finetuning"]["from"] == "default" and (out / "metrics.json").is_file()


def test_bench_model_quick_rows() -> None:
    from livefocus.bench.model import run

    rows = run(quick=True)
    backends = {(r["size"], r["backend"]) for r in rows}
    assert {(256, "onnxruntime"), (256, "torch"), (512, "std rule (w=128)")} <= backends
    assert all(r["slices_per_s"] > 0 and r["x_vs_std"] > 0 for r in rows)


def test_evaluate_leaves_an_empty_against_an_empty_mask_unscored(tmp_path: Path) -> None:
    """An 8 x 8 stack of noise: the depth rule and the model mark nothing, and 0/0 is not an
    IoU of 1 (it was: ``iou_vs_depth 1``)."""
    import tifffile

    from livefocus.model import evaluate

    rng = np.random.default_rng(1)
    path = tmp_path / "tiny.tif"
    tifffile.imwrite(path, (100 + rng.normal(0, 3, (6, 8, 8))).astype(np.uint16))
    rows = evaluate(["depth"], n_stacks=1, shape=(8, 64, 64), real=[path])
    real = next(r for r in rows if r["data"] == "tiny.tif")
    assert real["iou_vs_depth"] is None, real
    assert all(v is None or 0 <= v <= 1 for k, v in real.items() if k.startswith("iou"))
    simulated = next(r for r in rows if r["data"] != "tiny.tif")
    assert isinstance(simulated["iou_vs_truth"], float)
