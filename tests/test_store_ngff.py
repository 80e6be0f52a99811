"""Every store livefocus writes is OME-NGFF 0.5 that real clients open from the root (issue 14).

Validated with ome-zarr-models (the root, every image, every labels group and label image),
read with ome-zarr-py's reader, and opened by ``livefocus view`` and the napari reader.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr_models.v05.bioformats2raw import BioFormats2Raw
from ome_zarr_models.v05.image import Image
from ome_zarr_models.v05.image_label import ImageLabel
from ome_zarr_models.v05.labels import Labels

from livefocus._napari import AxisView, get_reader, read_store
from livefocus.cli import main
from livefocus.sim import save_simulated, simulate_stack
from livefocus.stream import StoreWriter, open_store, stream, z_sequence
from livefocus.stream.store import MAP_ARRAYS, PLANE_FINAL

MAPS = ("focus", *MAP_ARRAYS)


def validate(path: Path) -> list[str]:
    """Validate a store with ome-zarr-models; the paths of its images (one per position)."""
    root = zarr.open_group(str(path), mode="r")
    ome = dict(root.attrs)["ome"]
    if "bioformats2raw.layout" in ome:
        series = BioFormats2Raw.from_zarr(root)
        listed = dict(root["OME"].attrs)["ome"]["series"]
        assert listed == series.image_paths
        images = listed
    else:
        images = [""]
    for image in images:
        group = root[image] if image else root
        model = Image.from_zarr(group)
        assert model.labels is not None
        labels = Labels.from_zarr(group["labels"])
        for name in labels.label_paths:
            label = ImageLabel.from_zarr(group["labels"][name])
            meta = label.ome_attributes.image_label
            assert meta is not None and meta.source is not None and meta.colors
        for name in MAPS:
            if name in group:
                Image.from_zarr(group[name])
        planes = group["planes"]
        assert planes.metadata.dimension_names == ("t", "c", "z")
    return images


def ome_zarr_nodes(path: Path) -> list[Any]:
    return list(Reader(parse_url(str(path)))())


def axes_of(group: Any) -> tuple[list[str | None], list[float], list[float] | None]:
    """(units, scale, translation) of the first dataset of an image group."""
    multiscale = dict(group.attrs)["ome"]["multiscales"][0]
    units = [a.get("unit") for a in multiscale["axes"]]
    transforms = {t["type"]: t for t in multiscale["datasets"][0]["coordinateTransformations"]}
    shift = transforms.get("translation")
    return units, transforms["scale"]["scale"], shift["translation"] if shift else None


def write_store(path: Path, shape: tuple[int, ...], **options: Any) -> StoreWriter:
    """A store with every plane and stack written (values: raw = 10 * c + z + 1)."""
    npos, nt, nc, nz, ny, nx = shape
    writer = StoreWriter(path, shape=shape, mask_modes=("depth", "otsu"), **options)
    yy = np.arange(ny)[:, None] + np.zeros(nx)
    for p in range(npos):
        for t in range(nt):
            for c in range(nc):
                for z in range(nz):
                    raw = np.full((ny, nx), 10 * c + z + 1, np.uint16)
                    mask = yy < ny // 2
                    writer.write_plane(
                        (p, t, c, z), raw=raw, focus=yy, masks={"depth": mask, "otsu": ~mask}
                    )
                maps = {name: yy.astype(np.float32) for name in MAP_ARRAYS}
                writer.write_stack((p, t, c), maps=maps, masks={})
    writer.close("complete")
    return writer


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from livefocus.devices import demo_core

    out = tmp_path_factory.mktemp("ngff") / "demo.ome.zarr"
    report = stream(demo_core(shape=(64, 64)), z_sequence({"range": 8.0, "step": 2.0}), out=out)
    assert report.ok, report.status
    return out


def test_stream_store_opens_from_the_root(demo_store: Path) -> None:
    assert validate(demo_store) == [""]
    nodes = ome_zarr_nodes(demo_store)
    kinds = [[type(s).__name__ for s in node.specs] for node in nodes]
    assert kinds[0] == ["Multiscales", "OMERO"]  # the raw image, from the root
    assert sum("Label" in k for k in kinds) == 2  # mask_depth and mask_otsu
    store = open_store(demo_store)
    np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), store.array("raw")[:])
    label = next(n for n in nodes if n.metadata.get("name") == "mask_depth")
    np.testing.assert_array_equal(np.asarray(label.data[0]), store.array("mask_depth")[:])
    units, scale, _ = axes_of(zarr.open_group(str(demo_store), mode="r"))
    assert scale == [1.0, 1.0, 2.0, 0.5, 0.5]  # demo core: 0.5 µm pixels, 2 µm steps
    assert units == [None, None, "micrometer", "micrometer", "micrometer"]  # no interval


def test_scales_channels_and_interval(tmp_path: Path) -> None:
    path = tmp_path / "s.ome.zarr"
    write_store(
        path,
        (1, 2, 2, 3, 32, 48),
        z_step=0.8,
        pixel_size=0.65,
        interval_s=0.5,
        channels=["DAPI", "FITC"],
    )
    validate(path)
    root = zarr.open_group(str(path), mode="r")
    units, scale, shift = axes_of(root)
    assert scale == [0.5, 1.0, 0.8, 0.65, 0.65] and shift is None
    assert units == ["second", None, "micrometer", "micrometer", "micrometer"]
    for name in MAPS:
        assert axes_of(root[name])[1] == ([0.5, 1.0, 0.8, 0.65, 0.65] if name == "focus" else
                                          [0.5, 1.0, 0.65, 0.65])  # fmt: skip
    channels = dict(root.attrs)["ome"]["omero"]["channels"]
    assert [ch["label"] for ch in channels] == ["DAPI", "FITC"]
    # windows from the data: raw = 10 c + z + 1
    assert [(ch["window"]["start"], ch["window"]["end"]) for ch in channels] == [
        (1.0, 3.0),
        (11.0, 13.0),
    ]
    node = ome_zarr_nodes(path)[0]
    assert node.metadata["channel_names"] == ["DAPI", "FITC"]
    label = dict(root["labels/mask_otsu"].attrs)["ome"]["image-label"]
    assert label["source"] == {"image": "../../"}
    assert [c["label-value"] for c in label["colors"]] == [0, 1]
    store = open_store(path)
    assert (store.array("planes")[:] == PLANE_FINAL).all()
    assert store.meta["channels"] == ["DAPI", "FITC"] and store.meta["interval_s"] == 0.5


def test_multi_position_store_is_a_bioformats2raw_series(tmp_path: Path) -> None:
    path = tmp_path / "mp.ome.zarr"
    write_store(path, (2, 1, 1, 2, 32, 32), pixel_size=0.5, stage_positions=[(10, 20), (30, 40)])
    assert validate(path) == ["0", "1"]
    root = zarr.open_group(str(path), mode="r")
    assert dict(root.attrs)["ome"]["bioformats2raw.layout"] == 3
    for p, (x, y) in enumerate([(10, 20), (30, 40)]):
        assert axes_of(root[str(p)])[2] == [0.0, 0.0, 0.0, y, x]  # the stage position
        assert axes_of(root[f"{p}/labels/mask_depth"])[2] == [0.0, 0.0, 0.0, y, x]
        # ome-zarr-py 0.18 does not follow bioformats2raw roots; each series opens
        node = ome_zarr_nodes(path / str(p))[0]
        np.testing.assert_array_equal(np.asarray(node.data[0]), open_store(path).array("raw", p))


def test_uncalibrated_store_claims_no_unit(tmp_path: Path) -> None:
    path = tmp_path / "u.ome.zarr"
    write_store(path, (2, 1, 1, 2, 32, 32), pixel_size=None, stage_positions=[(1, 2), (3, 4)])
    validate(path)
    root = zarr.open_group(str(path), mode="r")
    units, scale, shift = axes_of(root["0"])
    assert units == [None, None, "micrometer", None, None]
    assert scale == [1.0, 1.0, 1.0, 1.0, 1.0] and shift is None  # no µm translation either
    assert open_store(path).pixel_size is None


def test_large_frames_get_a_pyramid(tmp_path: Path) -> None:
    path = tmp_path / "big.ome.zarr"
    writer = StoreWriter(path, shape=(1, 1, 1, 2, 1100, 1040), mask_modes=("depth",))
    rng = np.random.default_rng(0)
    raws = rng.integers(0, 4000, (2, 1100, 1040)).astype(np.uint16)
    for z in range(2):
        writer.write_plane(
            (0, 0, 0, z), raw=raws[z], focus=np.zeros((1100, 1040)), masks={"depth": raws[z] > 9}
        )
    maps = {name: np.ones((1100, 1040)) for name in MAP_ARRAYS}
    writer.write_stack((0, 0, 0), maps=maps, masks={})
    writer.close()
    validate(path)  # also checks that the labels have as many levels as the image
    nodes = ome_zarr_nodes(path)
    assert [d.shape[-2:] for d in nodes[0].data] == [(1100, 1040), (550, 520), (275, 260)]
    store = open_store(path)
    level1 = store.array("raw", 0, 1)[0, 0]
    sums = raws.reshape(2, 550, 2, 520, 2).astype(np.int64).sum(axis=(2, 4))
    np.testing.assert_array_equal(level1, ((sums + 2) // 4).astype(np.uint16))  # means
    np.testing.assert_array_equal(store.array("mask_depth", 0, 2)[0, 0], raws[:, ::4, ::4] > 9)
    assert axes_of(zarr.open_group(str(path), mode="r"))[1] == [1.0, 1.0, 1.0, 1.0, 1.0]


def test_label_store_is_the_same_layout(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "diatom.ome.zarr"
    stack = data_dir / "diatom_mfusionj_3z.tif"
    with pytest.raises(SystemExit) as done:
        main(["label", str(stack), "--out", str(out), "--window", "32", "--strides", "8,16"])
    assert done.value.code in (0, None), capsys.readouterr().err
    validate(out)
    kinds = [[type(s).__name__ for s in node.specs] for node in ome_zarr_nodes(out)]
    assert kinds[0] == ["Multiscales", "OMERO"] and ["Label", "Multiscales"] in kinds
    store = open_store(out)
    assert store.mask_names == ["mask_otsu"] and store.meta["status"] == "complete"
    assert not store.has("depth") and store.meta["kind"] == "label"


def test_view_opens_every_store_livefocus_writes(
    tmp_path: Path, demo_store: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    label = tmp_path / "l.ome.zarr"
    with pytest.raises(SystemExit):
        main(["label", str(data_dir / "diatom_mfusionj_3z.tif"), "--out", str(label)])
    sim = save_simulated(simulate_stack((4, 64, 64), seed=1), tmp_path / "sim.zarr")
    for path in (demo_store, label, sim):
        png = tmp_path / f"{path.stem}.png"
        with pytest.raises(SystemExit) as done:
            main(["view", str(path), "--screenshot", str(png)])
        assert done.value.code in (0, None), capsys.readouterr().err
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_napari_reader_gives_layers_without_napari(tmp_path: Path, demo_store: Path) -> None:
    manifest = yaml.safe_load((Path(__file__).parents[1] / "livefocus" / "napari.yaml").read_text())
    command = manifest["contributions"]["commands"][0]
    module, name = command["python_name"].split(":")
    assert module == "livefocus._napari" and name == "get_reader"
    assert get_reader(str(demo_store)) is read_store
    assert get_reader(str(tmp_path)) is None  # not a livefocus store: left to other readers
    layers = read_store(demo_store)
    by_name = {kwargs["name"]: (data, kwargs, kind) for data, kwargs, kind in layers}
    assert {k: v[2] for k, v in by_name.items()} == {
        "raw": "image",
        "in focus (depth)": "labels",
        "in focus (otsu)": "labels",
        "depth": "image",
        "all-in-focus": "image",
        "confidence": "image",
    }
    store = open_store(demo_store)
    raw, kwargs, _ = by_name["raw"]
    assert raw.shape == (1, 5, 64, 64) and kwargs["scale"] == [1.0, 2.0, 0.5, 0.5]
    np.testing.assert_array_equal(raw[0, 2], store.array("raw")[0, 0, 2])
    np.testing.assert_array_equal(np.asarray(raw), store.array("raw")[:, 0])
    labels, kwargs, _ = by_name["in focus (depth)"]
    assert labels.dtype == np.uint8 and kwargs["colormap"][0][3] == 0.0
    depth, kwargs, _ = by_name["depth"]
    assert depth.shape == (1, 1, 64, 64) and kwargs["colormap"] == "turbo"
    assert kwargs["scale"][1] == 10.0 and kwargs["translate"][1] == 4.0  # spans the stack
    np.testing.assert_array_equal(depth[0, 0], store.array("depth")[0, 0])
    np.testing.assert_array_equal(depth[0, :, 3:5], store.array("depth")[0, 0][None, 3:5])
    sim = save_simulated(simulate_stack((4, 64, 64), seed=1), tmp_path / "sim.zarr")
    kinds = {kwargs["name"]: kind for _, kwargs, kind in read_store(sim)}
    assert kinds == {"raw": "image", "in focus (truth)": "labels", "depth": "image",
                     "all-in-focus": "image"}  # fmt: skip
    assert "napari" not in sys.modules


def test_stores_of_the_old_layout_are_refused_clearly(tmp_path: Path) -> None:
    old = zarr.open_group(str(tmp_path / "old.ome.zarr"), mode="w", zarr_format=3)
    old.attrs["livefocus"] = {"shape": [1, 1, 2, 8, 8], "status": "complete"}
    old.create_group("raw")
    with pytest.raises(ValueError, match="before the NGFF root layout"):
        open_store(tmp_path / "old.ome.zarr")


def test_axis_view_indexing() -> None:
    maps = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    view = AxisView(maps, 1)
    assert view.shape == (2, 1, 4, 5) and view.ndim == 4
    np.testing.assert_array_equal(view[1, 0], maps[1, 1])
    np.testing.assert_array_equal(view[:, 0:1, 2], maps[:, 1, None, 2])
    np.testing.assert_array_equal(np.asarray(view), maps[:, 1, None])
    with pytest.raises(IndexError):
        view[0, 1]
