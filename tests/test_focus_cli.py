"""``livefocus label`` and ``livefocus curves`` as a user runs them (a real subprocess)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from support.cli import run_cli

import livefocus as lf
from livefocus.stream import open_store


def test_label_writes_maps_masks_and_plot(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "diatom.ome.zarr"  # its curve: diatom-curve.png
    result = run_cli(
        "label",
        str(data_dir / "diatom_mfusionj_3z.tif"),
        "--out",
        str(out),
        "--window",
        "32",
        "--strides",
        "8,16",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    store = open_store(out)  # the layout of a streaming run: stack, focus maps, labels
    stack = lf.read_stack(data_dir / "diatom_mfusionj_3z.tif")
    maps = lf.focus_maps(stack, "std", window=32, strides=(8, 16))
    np.testing.assert_array_equal(store.array("raw")[0, 0], stack)
    np.testing.assert_allclose(store.array("focus")[0, 0], maps.astype(np.float32))
    masks = store.array("mask_otsu")[0, 0]
    np.testing.assert_array_equal(masks, lf.weak_labels(maps).astype(np.uint8))
    np.testing.assert_allclose(store.meta["curve"], lf.axial_curve(stack, "std"))
    assert store.meta["strides"] == [8, 16] and store.meta["status"] == "complete"
    png = tmp_path / "diatom-curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # An existing output is refused (and kept) unless --overwrite.
    again = run_cli(
        "label", str(data_dir / "diatom_mfusionj_3z.tif"), "--out", str(out), cwd=tmp_path
    )
    assert again.returncode == 2 and "overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    assert open_store(out).array("focus").shape == (1, 1, *stack.shape)


def test_label_errors_are_one_line(tmp_path: Path, data_dir: Path) -> None:
    missing = run_cli(
        "label", str(tmp_path / "nope.tif"), "--out", str(tmp_path / "o.zarr"), cwd=tmp_path
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad = run_cli(
        "label",
        str(data_dir / "diatom_mfusionj_3z.tif"),
        "--out",
        str(tmp_path / "o.zarr"),
        "--measure",
        "sharpness",
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "measure must be one of" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "o.zarr").exists()
    zero = run_cli(
        "label",
        str(data_dir / "diatom_mfusionj_3z.tif"),
        "--out",
        str(tmp_path / "o.zarr"),
        "--window",
        "0",
        cwd=tmp_path,
    )
    assert zero.returncode == 2 and "window must be a positive int" in zero.stderr


def test_curves_prints_and_plots(tmp_path: Path, data_dir: Path) -> None:
    result = run_cli(
        "curves",
        str(data_dir / "pseudoscorpion_zstack_4x.tif"),
        "--plot",
        "c.png",
        "--measures",
        "std,brenner",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("std") and "argmax   2" in lines[0]
    assert (tmp_path / "c.png").stat().st_size > 10_000
    # every measure's curve is printed, value by value, as axial_curves gives it
    want = lf.axial_curves(
        lf.io.read_stack(data_dir / "pseudoscorpion_zstack_4x.tif"), ["std", "brenner"]
    )
    for line, (name, curve) in zip(lines[:2], want.items(), strict=True):
        words = line.split()
        assert words[:3] == [name, "argmax", str(int(np.argmax(curve)))]
        np.testing.assert_allclose([float(w) for w in words[3:]], curve, atol=0.006)


def test_label_reads_npy_and_zarr_and_runs_on_dask(tmp_path: Path, data_dir: Path) -> None:
    stack = lf.read_stack(data_dir / "diatom_mfusionj_3z.tif")[:, :96, :128]
    np.save(tmp_path / "s.npy", stack)
    zarr.create_array(str(tmp_path / "s.zarr"), data=stack)
    expected = lf.focus_maps(stack, "brenner", window=32, strides=(8, 16))
    for source, extra in (("s.npy", []), ("s.zarr", ["--dask", "local"])):
        out = tmp_path / f"{source}.labels.zarr"
        result = run_cli(
            "label",
            source,
            "--out",
            str(out),
            "--measure",
            "brenner",
            "--window",
            "32",
            "--strides",
            "8,16",
            *extra,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        maps = open_store(out).array("focus")[0, 0]
        np.testing.assert_allclose(maps, expected.astype(np.float32))


def test_label_depth_equals_reconstruct_here_and_on_dask(tmp_path: Path, data_dir: Path) -> None:
    """``label --depth`` stores the depth rule's final masks and maps: those of
    ``livefocus.reconstruct`` at the given z step, bit for bit, here and on a Dask cluster."""
    from livefocus.depth import reconstruct

    stack = lf.read_stack(data_dir / "pseudoscorpion_zstack_4x.tif")
    expected = reconstruct(stack, z_step=2.0)
    assert expected.mask_depth.any() and np.isfinite(expected.depth).any()  # not vacuous
    for name, extra in (("here", []), ("dask", ["--dask", "local"])):
        out = tmp_path / f"{name}.zarr"
        result = run_cli(
            "label",
            str(data_dir / "pseudoscorpion_zstack_4x.tif"),
            "--out",
            str(out),
            "--depth",
            "--z-step",
            "2",
            *extra,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert "depth masks and maps" in result.stdout
        store = open_store(out)
        assert store.mask_names == ["mask_otsu", "mask_depth"]
        assert store.meta["status"] == "complete"
        # the store's z axis is the step the depths were measured in
        np.testing.assert_allclose(store.z_um, 2.0 * np.arange(len(stack)))
        assert store.meta["depth_z_step"] == 2.0
        recorded = store.meta["depth_settings"]
        assert recorded["window"] == 6 and {k: expected.meta[k] for k in recorded} == recorded
        masks = np.asarray(store.array("mask_depth")[0, 0]).astype(bool)
        np.testing.assert_array_equal(masks, expected.mask_depth)
        for key in ("depth", "all_in_focus", "confidence"):
            np.testing.assert_array_equal(store.array(key)[0, 0], getattr(expected, key))


def test_label_depth_bad_z_step_writes_nothing(tmp_path: Path, data_dir: Path) -> None:
    stack = str(data_dir / "diatom_mfusionj_3z.tif")
    for extra, message in (
        (["--depth", "--z-step", "0"], "--z-step must be a positive number"),
        (["--depth", "--z-step", "nan"], "--z-step must be a positive number"),
        (["--z-step", "2"], "pass --depth too"),
        (["--depth", "--dof", "0"], "--dof must be a positive number"),
        (["--dof", "3"], "pass --depth too"),
    ):
        result = run_cli("label", stack, "--out", "o.zarr", *extra, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []


def test_label_depth_without_a_step_takes_one_micrometre(tmp_path: Path, data_dir: Path) -> None:
    from livefocus.depth import reconstruct

    stack = lf.read_stack(data_dir / "pseudoscorpion_zstack_4x.tif")[:, :96, :128]
    np.save(tmp_path / "s.npy", stack)  # .npy: no step stored
    result = run_cli("label", "s.npy", "--out", "o.zarr", "--depth", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    store = open_store(tmp_path / "o.zarr")
    assert store.meta["depth_z_step"] == 1.0
    expected = reconstruct(stack, z_step=1.0)
    np.testing.assert_array_equal(store.array("depth")[0, 0], expected.depth)


def test_label_model_writes_the_models_final_masks(tmp_path: Path, data_dir: Path) -> None:
    """``label --model depth``: the U-Net's masks of the whole stack (its z-peak final masks,
    as ``Engine.predict_mask`` gives them) are the store's ``mask_model``, with the model and
    its rule recorded; a model that does not exist is one line, exit 2, nothing written."""
    import livefocus.model as lm

    stack = lf.read_stack(data_dir / "pseudoscorpion_zstack_4x.tif")[:, :96, :128]
    np.save(tmp_path / "s.npy", stack)
    result = run_cli(
        "label", "s.npy", "--out", "o.zarr", "--model", "depth", "--backend", "onnxruntime",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "model masks (depth)" in result.stdout
    store = open_store(tmp_path / "o.zarr")
    assert store.mask_names == ["mask_otsu", "mask_model"] and store.meta["model"] == "depth"
    assert store.meta["model_rule"]["z_peaks"]["lean"] is True
    got = np.asarray(store.array("mask_model")[0, 0]).astype(bool)
    expected = lm.engine("depth", "onnxruntime").predict_mask(stack)
    assert expected.any()  # not vacuous
    np.testing.assert_array_equal(got, expected)
    bad = run_cli("label", "s.npy", "--out", "p.zarr", "--model", "nosuch", cwd=tmp_path)
    assert bad.returncode == 2 and "--model: model 'nosuch' is neither" in bad.stderr
    assert bad.stderr.count("\n") == 1 and not (tmp_path / "p.zarr").exists()


def test_label_depth_takes_the_depth_of_field(tmp_path: Path, data_dir: Path) -> None:
    from livefocus.depth import reconstruct

    stack = lf.read_stack(data_dir / "pseudoscorpion_zstack_4x.tif")[:, :96, :128]
    np.save(tmp_path / "s.npy", stack)
    result = run_cli("label", "s.npy", "--out", "o.zarr", "--depth", "--dof", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    store = open_store(tmp_path / "o.zarr")
    assert store.meta["depth_settings"]["depth_of_field"] == 3.0
    expected = reconstruct(stack, z_step=1.0, depth_of_field=3.0).mask_depth
    assert not np.array_equal(expected, reconstruct(stack, z_step=1.0).mask_depth)
    np.testing.assert_array_equal(np.asarray(store.array("mask_depth")[0, 0]) > 0, expected)


def test_label_depth_takes_the_least_probability(tmp_path: Path, data_dir: Path) -> None:
    from livefocus.depth import reconstruct

    stack = lf.read_stack(data_dir / "pseudoscorpion_zstack_4x.tif")[:, :96, :128]
    np.save(tmp_path / "s.npy", stack)
    argv = ["label", "s.npy", "--out", "o.zarr", "--depth"]
    result = run_cli(*argv, "--min-probability", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got = np.asarray(open_store(tmp_path / "o.zarr").array("depth")[0, 0])
    every = reconstruct(stack, z_step=1.0, min_probability=0.0).depth
    np.testing.assert_array_equal(got, every)
    assert np.isfinite(every).sum() > np.isfinite(reconstruct(stack, z_step=1.0).depth).sum()
    for extra, message in (
        (["--min-probability", "1.5"], "--min-probability"),
        (["--min-probability", "nan"], "--min-probability"),
    ):
        bad = run_cli("label", "s.npy", "--out", "bad.zarr", "--depth", *extra, cwd=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert not (tmp_path / "bad.zarr").exists()
    nodepth = run_cli("label", "s.npy", "--out", "n.zarr", "--min-probability", "0", cwd=tmp_path)
    assert nodepth.returncode == 2 and "pass --depth too" in nodepth.stderr
    result = run_cli(*argv[:3], "a.zarr", "--depth", "--min-area", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got_masks = np.asarray(open_store(tmp_path / "a.zarr").array("mask_depth")[0, 0]) > 0
    specks = reconstruct(stack, z_step=1.0, min_area=0).mask_depth
    assert specks.sum() > reconstruct(stack, z_step=1.0).mask_depth.sum()  # not vacuous
    np.testing.assert_array_equal(got_masks, specks)
    nodepth = run_cli("label", "s.npy", "--out", "m.zarr", "--min-area", "0", cwd=tmp_path)
    assert nodepth.returncode == 2 and "pass --depth too" in nodepth.stderr


def test_label_dask_sends_its_work_to_the_cluster(tmp_path: Path, data_dir: Path) -> None:
    """``label --depth --dask ADDRESS`` computes every slice's focus map and every plane's
    depth focus map on that cluster: its scheduler saw the tasks finish (the results equal the
    local ones, so only the scheduler can tell)."""
    distributed = pytest.importorskip("distributed")
    stack = data_dir / "pseudoscorpion_zstack_4x.tif"
    n = len(lf.read_stack(stack))
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
        dashboard_address=None, scheduler_port=0,
    ) as cluster:  # fmt: skip
        result = run_cli(
            "label", str(stack), "--out", str(tmp_path / "o.zarr"), "--depth", "--z-step", "2",
            "--dask", cluster.scheduler_address,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        done = {
            name: prefix.state_counts["memory"]
            for name, prefix in cluster.scheduler.task_prefixes.items()
        }
    assert done.pop("plane_focus") == n  # the depth rule's maps, one task a plane
    assert max(done.values()) >= n  # the slices' maps (dask array tasks)


def test_label_keeps_the_stacks_pixel_size(tmp_path: Path) -> None:
    """A stack's stored pixel size goes to the labelled store as its y / x scale, as its z
    step does (until 2026-12-03 it was dropped)."""
    import tifffile

    from livefocus.io import stack_pixel_size

    stack = tmp_path / "ij.tif"
    from livefocus.sim import simulate_stack

    raw = simulate_stack((4, 64, 64), seed=3).raw
    meta = {"unit": "um", "spacing": 1.5, "axes": "ZYX"}
    tifffile.imwrite(stack, raw, imagej=True, resolution=(4.0, 4.0), metadata=meta)
    out = tmp_path / "l.ome.zarr"
    run = run_cli("label", str(stack), "--out", str(out), "--window", "16", "--strides", "8")
    assert run.returncode == 0, run.stderr
    assert stack_pixel_size(out) == pytest.approx(0.25)
    scale = zarr.open_group(str(out), mode="r").attrs["ome"]["multiscales"][0]["datasets"][0]
    assert scale["coordinateTransformations"][0]["scale"][-3:] == pytest.approx([1.5, 0.25, 0.25])
