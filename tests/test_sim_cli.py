"""``livefocus simulate`` as a user runs it (a real subprocess)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from support.cli import run_cli

import livefocus as lf
from livefocus.io import stack_z_step
from livefocus.sim import simulate_stack


def test_simulate_writes_stack_truth_and_metadata(tmp_path: Path) -> None:
    out = tmp_path / "phantom.zarr"
    result = run_cli(
        "simulate",
        "--out",
        str(out),
        "--shape",
        "5,64,80",
        "--seed",
        "2",
        "--contrast",
        "fluorescence",
        "--z-step",
        "1.5",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    group = zarr.open_group(str(out), mode="r")
    expected = simulate_stack((5, 64, 80), seed=2, contrast="fluorescence", z_step=1.5)
    np.testing.assert_array_equal(group["raw"][:], expected.raw)
    np.testing.assert_array_equal(group["truth/mask"][:], expected.mask)
    np.testing.assert_array_equal(group["truth/depth"][:], expected.depth)
    np.testing.assert_array_equal(group["truth/all_in_focus"][:], expected.all_in_focus)
    attrs = dict(group.attrs)
    assert attrs["z_step_um"] == 1.5 and attrs["pixel_size_um"] == 0.5 and attrs["seed"] == 2
    assert attrs["contrast"] == "fluorescence"
    assert attrs["parameters"]["shape"] == [5, 64, 80]
    # The focus-score core reads it like any stack.
    np.testing.assert_array_equal(lf.read_stack(out), expected.raw)
    assert stack_z_step(out) == 1.5
    # An existing output is refused (and kept) unless --overwrite.
    again = run_cli("simulate", "--out", str(out), "--shape", "3,64,64", cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    assert zarr.open_group(str(out), mode="r")["raw"].shape == (5, 64, 80)
    replaced = run_cli(
        "simulate", "--out", str(out), "--shape", "3,64,64", "--overwrite", cwd=tmp_path
    )
    assert replaced.returncode == 0, replaced.stderr
    assert zarr.open_group(str(out), mode="r")["raw"].shape == (3, 64, 64)


def test_simulate_bad_input_is_one_line(tmp_path: Path) -> None:
    cases = [
        (["--shape", "5,64"], "--shape"),
        (["--shape", "5,32,32"], "too small"),
        (["--contrast", "phase"], "contrast"),
        (["--z-step", "0"], "z_step"),
    ]
    for extra, message in cases:
        result = run_cli("simulate", "--out", str(tmp_path / "x.zarr"), *extra, cwd=tmp_path)
        assert result.returncode == 2, (extra, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "x.zarr").exists()
