"""Bad input, as a hostile new user gives it: one table of CLI cases and one of API cases.

Every CLI case must exit with status 2 and print one ``error:`` line that names the flag (or
what is wrong), without a traceback; every API case must raise the stated exception with a
message naming the parameter. In both, nothing may be written: the working folder (where
every output path of the table points) and the model cache stay empty.

The CLI runs in this process through :func:`livefocus.cli.main`, the console script's entry
point (the same exit codes as a subprocess, at a fraction of the cost); an exception other
than a user error would escape it and fail the test, which is how a traceback shows here.
The streaming commands (demo, replay, acquire) have their own tests.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

import livefocus as lf
from livefocus import model
from livefocus.cli import main
from livefocus.focus import entropy_bins, otsu_threshold, window_score
from livefocus.io import stack_z_step
from livefocus.model.registry import SHIPPED
from livefocus.sim import simulate_stack

RNG = np.random.default_rng(0)
GOOD = RNG.integers(0, 4000, (3, 32, 32)).astype(np.uint16)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Input files, in a folder of their own (outputs go to each test's empty folder)."""
    folder = tmp_path_factory.mktemp("inputs")
    np.save(folder / "good.npy", GOOD)
    np.save(folder / "empty.npy", np.zeros((0, 32, 32), np.uint16))
    np.save(folder / "nan.npy", np.where(GOOD > 2000, np.nan, GOOD.astype(float)))
    np.save(folder / "huge.npy", RNG.random((3, 32, 32)) * 1e300)
    np.save(folder / "complex.npy", GOOD.astype(complex))
    np.save(folder / "tiny.npy", GOOD[:, :4, :4])
    tifffile.imwrite(folder / "rgb.tif", RNG.integers(0, 255, (32, 32, 3), np.uint8))
    tifffile.imwrite(folder / "stack.tif", GOOD, photometric="minisblack")
    (folder / "corrupt.tif").write_bytes(b"II*\x00 not a tiff")
    tifffile.imwrite(folder / "whole.tif", GOOD, photometric="minisblack")  # cut short below
    (folder / "truncated.tif").write_bytes((folder / "whole.tif").read_bytes()[:3000])
    (folder / "text.tif").write_text("not a TIFF at all\n")
    (folder / "folder").mkdir()
    with pytest.raises(SystemExit) as done:  # a store livefocus wrote, to refuse replacing
        main(
            ["label", str(folder / "good.npy"), "--out", str(folder / "old.zarr"), "--window", "8"]
        )
    assert done.value.code == 0
    # defect 9: a model whose config name would lead the ONNX cache file out of the cache
    evil = folder / "evil-model"
    shutil.copytree(SHIPPED / "default", evil)
    config = json.loads((evil / "config.json").read_text())
    (evil / "config.json").write_text(json.dumps({**config, "name": "../../escaped"}))
    return folder


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder that must stay empty, with the model cache inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIVEFOCUS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


#: (command line with IN/ for the inputs folder, text the error line must contain)
CLI_CASES: list[tuple[str, str]] = [
    # label
    ("label IN/empty.npy --out o.zarr", "is empty"),
    ("label IN/good.npy --out o.zarr --window 0", "--window"),
    ("label IN/good.npy --out o.zarr --window -3", "--window"),
    ("label IN/good.npy --out o.zarr --window 1e30", "'--window'"),
    ("label IN/good.npy --out o.zarr --strides 8,0", "--strides"),
    ("label IN/good.npy --out o.zarr --strides ,", "--strides"),
    ("label IN/good.npy --out o.zarr --strides x", "--strides"),
    ("label IN/good.npy --out o.zarr --measure ''", "--measure"),
    ("label IN/good.npy --out o.zarr --paint max", "--paint"),
    ("label IN/good.npy --out o.zarr --scope volume", "--scope"),
    ("label IN/nan.npy --out o.zarr", "nan.npy' contains NaN"),
    ("curves IN/nan.npy", "nan.npy' contains NaN"),
    ("evaluate --real IN/nan.npy", "--real: real stack"),
    ("label IN/huge.npy --out o.zarr --measure variance", "float64 range"),
    ("label IN/huge.npy --out o.zarr", "maps beyond float32"),
    ("label IN/complex.npy --out o.zarr", "dtype complex128"),
    ("label IN/rgb.tif --out o.zarr", "colour image"),
    ("label IN/corrupt.tif --out o.zarr", "could not be read"),
    ("label IN/truncated.tif --out o.zarr", "could not be read"),
    ("replay IN/truncated.tif --no-preview --out r.zarr", "could not be read"),
    # the parser's own errors (since 2026-12-02 one line too, with the command's --help)
    ("label IN/good.npy", "Missing option '--out'"),
    ("label IN/good.npy --out o.zarr --window x", "Invalid value for '--window'"),
    ("label IN/good.npy --out o.zarr --bogus", "No such option: --bogus"),
    ("replay", "Missing argument 'stack'"),
    ("demo --overwrite=maybe", "does not take a value"),
    ("demo --size 0", "--size: size must be at least 64"),
    ("demo --seed 4294967296", "--seed: seed must be an int from 0 to 2**31 - 1"),
    ("label IN/folder --out o.zarr", "is a folder but not a Zarr store"),
    ("label IN/missing.npy --out o.zarr", "does not exist"),
    ("label IN/good.npy --out o.zarr --plot IN/folder", "--plot"),
    ("label IN/good.npy --out o.zarr --plot nowhere/c.png", "--plot"),
    ("label IN/good.npy --out o.zarr --plot curve.xyz", "--plot"),
    ("label IN/good.npy --out o.zarr --dask nonsense", "--dask"),
    ("label IN/good.npy --out ''", "--out"),
    ("label IN/good.npy --out IN/old.zarr", "exists; pass --overwrite to replace it"),
    # curves
    ("curves IN/good.npy --measures ''", "--measures must not be empty"),
    ("curves IN/good.npy --measures std,,brenner", "--measures must be comma-separated"),
    ("label '' --out o.zarr", "STACK must not be empty"),
    ("label IN/good.npy --out o.zarr --backend onnx", "--backend: backend must be one of"),
    ("curves IN/good.npy --measures std,sharpness", "--measures"),
    ("curves IN/good.npy --plot IN/folder", "--plot"),
    ("curves IN/empty.npy --plot c.png", "is empty"),
    ("curves IN/stack.tif --plot IN/stack.tif", "must end in .png"),
    ("label IN/stack.tif --out o.zarr --plot IN/stack.tif", "must end in .png"),
    ("curves IN/rgb.tif --plot c.png", "colour image"),
    # simulate
    ("simulate --out s.zarr --shape 0,64,64", "--shape"),
    ("simulate --out s.zarr --shape 4,64", "--shape"),
    ("simulate --out s.zarr --shape 100000,100000,100000", "--shape"),
    ("simulate --out s.zarr --shape 4,64,64 --z-step 0", "--z-step"),
    ("simulate --out s.zarr --shape 4,64,64 --z-step nan", "--z-step"),
    ("simulate --out s.zarr --shape 4,64,64 --z-step 1e300", "--z-step"),
    ("simulate --out s.zarr --shape 4,64,64 --pixel-size -1", "--pixel-size"),
    ("simulate --out s.zarr --shape 4,64,64 --na 0", "--na"),
    ("simulate --out s.zarr --shape 4,64,64 --depth-of-field inf", "--depth-of-field"),
    ("simulate --out s.zarr --shape 4,64,64 --contrast phase", "--contrast"),
    ("simulate --out s.zarr --shape 4,64,64 --seed -1", "--seed"),
    # train: every option is checked before any data is made
    ("train --out m --epochs 0", "--epochs"),
    ("train --out m --n-train -1", "--n-train"),
    ("train --out m --shape 0 64 64", "--shape"),
    ("train --out m --preset huge", "--preset"),
    ("train --out m --labels manual", "--labels"),
    ("train --out m --seed -1", "--seed"),
    ("train --out '' --epochs 1", "--out"),
    ("train --out m --n-train 0", "--n-train: n_train is 0 and no stacks were given"),
    ("train --out m --n-train 0 --stack IN/rgb.tif", "colour image"),
    ("train --out m --n-train 0 --stack IN/tiny.npy", "--stack: stacks with frames of 4 x 4"),
    # finetune
    ("finetune default --out m --epochs 0", "--epochs"),
    ("finetune default --out m --lr 0", "--lr"),
    ("finetune default --out m --lr nan", "--lr"),
    ("finetune default --out m --n-sim -1", "--n-sim"),
    ("finetune default --out m --mask IN/good.npy", "--mask"),
    ("finetune no-such-model --out m", "model 'no-such-model' is neither"),
    # evaluate
    ("evaluate --n-stacks 0", "--n-stacks"),
    ("evaluate --n-stacks -2", "--n-stacks"),
    ("evaluate --figure IN/folder", "--figure"),
    ("evaluate --json nowhere/rows.json", "--json"),
    ("evaluate --json rows.txt", "--json 'rows.txt' must end in .json"),
    ("evaluate no-such-model", "model 'no-such-model' is neither"),
    # export
    ("export default --out e.onnx --opset 0", "--opset"),
    ("export default --out e.onnx --opset 99", "--opset"),
    ("export no-such-model --out e.onnx", "model 'no-such-model' is neither"),
    ("export default --out nodir/e.onnx", "folder 'nodir' does not exist"),  # as every writer
    ("export default --out e.txt", "--out: out 'e.txt' must end in .onnx"),
    ("export default --out e", "--out: out 'e' must end in .onnx"),
    # view, bench
    ("view missing.zarr --screenshot v.png", "does not exist"),
    ("view IN/good.npy --screenshot v.png", "not a livefocus"),
    ("bench sharpness", "soak or all; got"),
    ("bench focus --quick --json IN/folder", "--json"),
    ("bench focus --quick --json rows.csv", "--json 'rows.csv' must end in .json"),
]


def _argv(line: str, inputs: Path) -> list[str]:
    import shlex

    return [word.replace("IN/", f"{inputs}/") for word in shlex.split(line)]


@pytest.mark.parametrize(("line", "expected"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(
    line: str, expected: str, inputs: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(_argv(line, inputs))
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Traceback" not in err
    assert expected in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err  # one line, parser too
    assert written(workdir) == [], "bad input wrote something"
    np.testing.assert_array_equal(tifffile.imread(inputs / "stack.tif"), GOOD)  # inputs intact


def _engine(**kwargs: Any) -> Any:
    return model.engine("default", "torch", **kwargs)


IMG = GOOD[0]

#: (case id, call, exception type, regex the message must match)
#: A small stack for the reconstruction's cases.
STACK = simulate_stack((6, 64, 64), seed=1).raw

API_CASES: list[tuple[str, Callable[[Path], Any], type[Exception], str]] = [
    # the reconstruction (a fifth red-team helper, 2026-12-04: each was a traceback from deep
    # inside, a silent empty result, or blamed another parameter)
    ("z_step 1e-300", lambda _: lf.reconstruct(STACK, z_step=1e-300), ValueError, "z_step must"),
    ("z_step 1e300", lambda _: lf.reconstruct(STACK, z_step=1e300), ValueError, "z_step must"),
    ("z_step 1e-40", lambda _: lf.reconstruct(STACK, z_step=1e-40), ValueError, "z_step must"),
    (
        "z_um repeated",
        lambda _: lf.reconstruct(STACK, z_um=[0, 0, 1, 2, 3, 4]),
        ValueError,
        "z_um must be strictly monotonic",
    ),
    (
        "z_um complex",
        lambda _: lf.reconstruct(STACK, z_um=np.arange(6) + 1j),
        ValueError,
        "z_um must be numbers",
    ),
    ("z_um text", lambda _: lf.reconstruct(STACK, z_um="abcdef"), ValueError, "z_um must be"),
    (
        "frame below float32",
        lambda _: lf.reconstruct(STACK * 1e-300, z_step=1.0),
        ValueError,
        "below float32's least normal",
    ),
    (
        "shape 64.5",
        lambda _: lf.depth.StackReconstructor((64.5, 64)),  # type: ignore[arg-type]
        ValueError,
        "shape must be",
    ),
    (
        "shape True",
        lambda _: lf.depth.StackReconstructor((True, True)),
        ValueError,
        "shape must be",
    ),
    (
        "depth_of_field 1e300",
        lambda _: lf.depth.ReconstructSettings(depth_of_field=1e300),
        ValueError,
        "depth_of_field must be",
    ),
    # focus maps
    ("window 0", lambda _: lf.focus_map(IMG, window=0), ValueError, "window must be"),
    ("window 2.5", lambda _: lf.focus_map(IMG, window=2.5), ValueError, "window must be"),
    ("strides empty", lambda _: lf.focus_map(IMG, strides=()), ValueError, "strides"),
    ("empty image", lambda _: lf.focus_map(np.zeros((0, 8))), ValueError, "image must not be"),
    ("complex image", lambda _: lf.focus_map(IMG * 1j), TypeError, "image must hold"),
    ("string image", lambda _: lf.focus_map("img.tif"), ValueError, "image must be a 2-D"),
    (
        "variance overflow",
        lambda _: lf.focus_map(RNG.random((16, 16)) * 1e300, "variance", window=8, strides=4),
        ValueError,
        "image values .* variance scores beyond the float64 range",
    ),
    ("empty stack", lambda _: lf.focus_maps(np.zeros((0, 8, 8))), ValueError, "stack must not"),
    ("workers 0", lambda _: lf.focus_maps(GOOD, workers=0), ValueError, "workers"),
    # weak labels
    ("NaN maps", lambda _: lf.weak_labels(np.full((8, 8), np.nan)), ValueError, "maps contains"),
    (
        "partly NaN maps",
        lambda _: lf.weak_labels(np.where(np.eye(8) > 0, np.nan, 1.0)),
        ValueError,
        "maps contains NaN",
    ),
    ("inf maps", lambda _: lf.weak_labels(np.full((2, 8, 8), np.inf)), ValueError, "maps"),
    ("complex maps", lambda _: lf.weak_labels(np.ones((8, 8), complex)), TypeError, "maps"),
    ("bool maps", lambda _: lf.weak_labels(np.ones((8, 8), bool)), TypeError, "maps"),
    ("4-D maps", lambda _: lf.weak_labels(np.ones((2, 2, 2, 2))), ValueError, "maps must be"),
    ("scope", lambda _: lf.weak_labels(np.ones((4, 4)), scope="all"), ValueError, "scope"),
    (
        "otsu nbins",
        lambda _: otsu_threshold(np.arange(9.0), nbins=0),
        ValueError,
        "nbins",
    ),
    ("window_score empty", lambda _: window_score(np.zeros((0, 3))), ValueError, "window must"),
    ("window_score NaN", lambda _: window_score(np.full((3, 3), np.nan)), ValueError, "window"),
    (
        "window_score bins",
        lambda _: window_score(IMG[:3, :3], "entropy", bins=np.full((3, 3), -1.0)),
        ValueError,
        "bins must be",
    ),
    ("entropy_bins empty", lambda _: entropy_bins(np.zeros((0, 3))), ValueError, "image must"),
    # curves
    ("curve of nothing", lambda _: lf.axial_curve(np.zeros((0, 4, 4))), ValueError, "stack"),
    ("no measures", lambda _: lf.axial_curves(GOOD, []), ValueError, "measures must name"),
    ("bad measures", lambda _: lf.axial_curves(GOOD, ["std", "x"]), ValueError, "measures"),
    # reading
    ("path None", lambda _: lf.read_stack(None), TypeError, "path must be"),  # type: ignore[arg-type]
    ("path empty", lambda _: lf.read_stack(""), ValueError, "path must not be empty"),
    ("ndim 4", lambda d: lf.read_stack(d / "good.npy", ndim=4), ValueError, "ndim must be"),
    ("RGB TIFF", lambda d: lf.read_stack(d / "rgb.tif"), ValueError, "colour image"),
    ("empty file", lambda d: lf.read_stack(d / "empty.npy"), ValueError, "is empty"),
    ("corrupt TIFF", lambda d: lf.read_stack(d / "corrupt.tif"), ValueError, "could not be"),
    ("z step of None", lambda _: stack_z_step(None), TypeError, "path must be"),  # type: ignore[arg-type]
    ("z step corrupt", lambda d: stack_z_step(d / "text.tif"), ValueError, "could not be"),
    ("reconstruct empty", lambda _: lf.reconstruct(np.zeros((0, 8, 8))), ValueError, "stack"),
    # simulator
    ("sim shape", lambda _: simulate_stack((4, 64)), ValueError, "shape"),
    ("sim 2.5 planes", lambda _: simulate_stack((2.5, 64, 64)), ValueError, "shape must be"),  # type: ignore[arg-type]
    ("sim memory", lambda _: simulate_stack((10**5,) * 3), ValueError, "shape .* memory"),
    ("sim z_step", lambda _: simulate_stack((4, 64, 64), z_step=0), ValueError, "z_step"),
    (
        "sim pixel_size",
        lambda _: simulate_stack((4, 64, 64), pixel_size=1e300),
        ValueError,
        "pixel_size must be between",
    ),
    # models
    ("load None", lambda _: model.load(None), TypeError, "model must be"),  # type: ignore[arg-type]
    ("load empty", lambda _: model.load(""), ValueError, "model must not be empty"),
    ("load folder", lambda d: model.load(d / "folder"), FileNotFoundError, "no config.json"),
    ("depth 100", lambda _: model.UNetConfig(depth=100), ValueError, "depth must be at most"),
    ("backend", lambda _: model.engine("default", "cuda"), ValueError, "backend must be"),
    ("batch_size", lambda _: _engine(batch_size=0), ValueError, "batch_size"),
    ("tile", lambda _: _engine(tile=12), ValueError, "tile must be a multiple"),
    ("overlap", lambda _: _engine(overlap=-1), ValueError, "overlap"),
    ("threads", lambda _: _engine(threads=0), ValueError, "threads"),
    ("frames 4-D", lambda _: _engine().predict(np.zeros((1, 1, 8, 8))), ValueError, "frames"),
    (
        "export opset",
        lambda _: model.export_onnx("default", "e.onnx", opset=0),
        ValueError,
        "opset",
    ),
    (
        "train epochs",
        lambda _: model.train("m", epochs=0, progress=False),
        ValueError,
        "epochs",
    ),
    ("train out", lambda _: model.train("", progress=False), ValueError, "out must be"),
    (
        "train stacks str",
        lambda d: model.train("m", stacks=str(d / "good.npy"), progress=False),  # type: ignore[arg-type]
        TypeError,
        "stacks must be a sequence",
    ),
    (
        "finetune lr",
        lambda _: model.finetune("default", "m", lr=float("nan"), progress=False),
        ValueError,
        "lr must be",
    ),
    (
        "finetune masks",
        lambda d: model.finetune("default", "m", masks=[d / "good.npy"], progress=False),
        ValueError,
        "masks",
    ),
    (
        "evaluate n_stacks",
        lambda _: model.evaluate(["default"], n_stacks=0),
        ValueError,
        "n_stacks",
    ),
    (
        "evaluate figure",
        lambda d: model.evaluate(["default"], figure=d / "folder"),
        ValueError,
        "figure",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_api_bad_input(
    call: Callable[[Path], Any],
    error: type[Exception],
    match: str,
    inputs: Path,
    workdir: Path,
) -> None:
    with pytest.raises(error, match=match):
        call(inputs)
    assert written(workdir) == [], "bad input wrote something"


def test_model_name_cannot_lead_the_onnx_cache_out(inputs: Path, workdir: Path) -> None:
    """Defect 9: a config ``name`` of ``../../escaped`` used to write outside the cache."""
    eng = model.engine(inputs / "evil-model", "onnxruntime")
    cache = workdir / "cache" / "onnx"
    assert eng.onnx_path.parent == cache and eng.onnx_path.name.startswith("escaped-")
    assert [p for p in written(workdir) if not p.startswith("cache")] == []
    assert not (workdir.parent / "escaped").exists() and not list(inputs.glob("*.onnx"))
    assert eng.predict(GOOD[0]).shape == GOOD[0].shape


def test_sizes_beyond_the_image_are_the_image_size() -> None:
    """A huge window or stride (once an OverflowError) means "the whole image"."""
    whole = lf.focus_map(IMG, window=32, strides=32)
    np.testing.assert_array_equal(lf.focus_map(IMG, window=10**30, strides=10**40), whole)
    np.testing.assert_array_equal(lf.focus_map_reference(IMG, window=10**30, strides=10**40), whole)


@pytest.mark.parametrize("measure", lf.MEASURES)
@pytest.mark.parametrize("exponent", [-1000, -600, 600, 1000])
def test_extreme_float_images_scale_exactly(measure: str, exponent: int) -> None:
    """Values near 1e300 (once NaN maps) or 1e-300 (once all-zero maps) give the scores of the
    same image near 1, times 2**(degree * exponent), bit for bit, on the fast path and the
    reference alike; scores beyond float64 are refused instead."""
    from livefocus.focus._scale import DEGREE

    image = RNG.random((20, 20))
    extreme = np.ldexp(image, exponent)
    power = DEGREE[measure] * exponent  # type: ignore[index]
    if power > 1000:
        with pytest.raises(ValueError, match="beyond the float64 range"):
            lf.focus_map(extreme, measure, window=8, strides=(4, 6))
        return
    expected = np.ldexp(lf.focus_map(image, measure, window=8, strides=(4, 6)), power)
    np.testing.assert_array_equal(
        lf.focus_map(extreme, measure, window=8, strides=(4, 6)), expected
    )
    reference = lf.focus_map_reference(extreme, measure, window=8, strides=(4, 6))
    np.testing.assert_allclose(reference, expected, rtol=1e-9, atol=0)


def test_extreme_values_are_computed_not_refused() -> None:
    """Otsu near the float64 limits, model input beyond float32, frames smaller than the
    network's padding: each once a NaN, an overflow or a torch error."""
    assert np.isfinite(otsu_threshold(np.array([-1.7e308, 1.7e308, 0.0, 1.0])))
    assert otsu_threshold(np.ldexp(np.array([1.0, 2, 3, 9]), -1000)) == np.ldexp(
        otsu_threshold(np.array([1.0, 2, 3, 9])), -1000
    )
    eng = _engine()
    frame = RNG.random((16, 16))
    # the per-slice z-score does not see a power-of-two scale, so neither does the model
    np.testing.assert_array_equal(eng.predict(np.ldexp(frame, 1000)), eng.predict(frame))
    np.testing.assert_array_equal(
        eng.predict((frame * 2**62).astype(np.int64)), eng.predict(frame * 2**62)
    )
    tiny = model.predict_probabilities(model.load(), np.ones((2, 2)))
    assert tiny.shape == (2, 2) and np.isfinite(tiny).all()
