"""The simulated specimen, its image formation and its exact truth (livefocus.sim)."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st

import livefocus as lf
from livefocus.io import stack_z_step
from livefocus.sim import (
    Camera,
    LayerRenderer,
    Optics,
    SimulatedStack,
    Specimen,
    load_simulated,
    mask_scores,
    save_simulated,
    simulate_stack,
    weak_label_scores,
)


@pytest.fixture(scope="module")
def small() -> SimulatedStack:
    return simulate_stack((12, 128, 128), seed=4)


def test_simulate_stack_contract(small: SimulatedStack) -> None:
    s = small
    assert s.raw.shape == (12, 128, 128) and s.raw.dtype == np.uint16
    assert s.mask.shape == (12, 128, 128) and s.mask.dtype == bool
    assert s.depth.shape == (128, 128) and s.depth.dtype == np.float32
    assert s.all_in_focus.shape == (128, 128) and s.all_in_focus.dtype == np.float32
    np.testing.assert_array_equal(s.z_um, np.arange(12) * 2.0)
    assert s.z_um.dtype == np.float64
    assert {"z_step", "pixel_size", "depth_of_field", "seed", "contrast", "parameters"} <= set(
        s.meta
    )
    assert s.meta["z_step"] == 2.0 and s.meta["pixel_size"] == 0.5 and s.meta["seed"] == 4
    assert s.meta["contrast"] == "brightfield"
    # The default depth of field sees a structure in focus on one or two 2 µm planes.
    assert 2.0 <= s.meta["depth_of_field"] <= 6.0
    assert s.raw.max() <= 2**12 - 1  # 12-bit camera by default
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.raw = s.raw  # type: ignore[misc]


def test_deterministic_by_seed() -> None:
    a = simulate_stack((4, 64, 64), seed=7)
    b = simulate_stack((4, 64, 64), seed=7)
    c = simulate_stack((4, 64, 64), seed=8)
    np.testing.assert_array_equal(a.raw, b.raw)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert not np.array_equal(a.raw, c.raw)


def test_truth_agrees_with_geometry(small: SimulatedStack) -> None:
    spec = Specimen(
        (128, 128), seed=4, z_center=11.0, object_range=11.0 - Optics().depth_of_field_um / 2
    )
    s = small
    # The stack is this specimen: same depth map.
    np.testing.assert_array_equal(spec.depth, s.depth)
    labels = spec.labels
    assert np.array_equal(np.isnan(s.depth), labels == 0)
    dof = s.meta["depth_of_field"]
    kept = 0
    for k, z in enumerate(s.z_um):
        with np.errstate(invalid="ignore"):
            geometric = (np.abs(s.depth - z) <= dof / 2) & (labels > 0)
        np.testing.assert_array_equal(spec.within_depth_of_field(z), geometric)
        share = spec.in_focus_share(z)
        assert share.min() >= 0 and share.max() <= 1
        np.testing.assert_array_equal(s.mask[k], geometric & (share >= 0.5))
        np.testing.assert_array_equal(spec.truth_mask(z), s.mask[k])
        kept += s.mask[k].sum()
    # Haze from defocused neighbours takes only a few in-focus pixels out of the truth.
    geometric_total = sum(spec.within_depth_of_field(z).sum() for z in s.z_um)
    assert kept >= 0.8 * geometric_total
    # Objects lie inside the stack's range, flat objects at one height, the surface tilted.
    lo, hi = spec.z_center - spec.object_range, spec.z_center + spec.object_range
    step = spec.layer_step
    assert np.nanmin(s.depth) >= lo - step and np.nanmax(s.depth) <= hi + step
    kinds = spec.object_kinds
    for i in np.unique(labels[labels > 0]):
        d = s.depth[labels == i]
        if kinds[i - 1] in ("cell", "sheet"):
            assert np.ptp(d) == 0
        if kinds[i - 1] == "surface":
            assert np.ptp(d) > 5 * step
    # Every object comes into focus on some plane, and every plane but the ends sees some.
    in_focus_somewhere = s.mask.any(axis=0)
    assert not (in_focus_somewhere & (labels == 0)).any()
    assert in_focus_somewhere.sum() >= 0.9 * (labels > 0).sum()
    assert s.mask[1:-1].any(axis=(1, 2)).all()


def test_depth_of_field_from_optics() -> None:
    o = Optics(na=0.45, wavelength=0.55, immersion_index=1.0, pixel_size=0.5)
    assert math.isclose(o.depth_of_field_um, 0.55 / 0.45**2 + 0.5 / 0.45)
    assert Optics(depth_of_field=2.5).depth_of_field_um == 2.5
    sigma = o.sigma_px(np.array([0.0, 2.0, 10.0]))
    assert math.isclose(sigma[0], o.sigma_focus_px)
    assert sigma[0] < sigma[1] < sigma[2]


def test_layer_renderer_is_the_gaussian_defocus_model() -> None:
    """A point on a layer images as a Gaussian of the model's width; layers add linearly."""
    optics = Optics()
    n = 96
    layers = np.zeros((2, n, n), np.float32)
    layers[0, 48, 48] = 1.0
    layers[1, 20, 30] = 1.0
    heights = np.array([5.0, -20.0])
    crop = (slice(0, n), slice(0, n))
    renderer = LayerRenderer(layers, heights, optics, crop)
    single = LayerRenderer(layers[:1], heights[:1], optics, crop)
    other = LayerRenderer(layers[1:], heights[1:], optics, crop)
    yy, xx = np.mgrid[0:n, 0:n]
    in_focus = single.render(5.0)
    assert np.unravel_index(np.argmax(in_focus), in_focus.shape) == (48, 48)
    assert abs(in_focus.sum() - 1.0) < 1e-4
    # Defocused (sigma >= 1 px, well sampled): the sampled Gaussian of the model's width.
    for z in (1.0, -1.0, -5.0):
        image = single.render(z).astype(np.float64)
        sigma = float(optics.sigma_px(5.0 - z))
        g = np.exp(-((yy - 48) ** 2 + (xx - 48) ** 2) / (2 * sigma**2))
        g /= g.sum()
        np.testing.assert_allclose(image, g, atol=2e-3 * g.max())
        var_y = (image * (yy - 48) ** 2).sum() / image.sum()
        assert abs(math.sqrt(var_y) - sigma) < 0.02 * sigma
        both = renderer.render(z)
        np.testing.assert_allclose(both, image + other.render(z), atol=1e-6)
    heights = np.array([5.0, -20.0])
    # The truncated spectral sum equals the full one.
    z = 1.5
    acc = np.zeros((n, n // 2 + 1), np.complex128)
    fy = scipy.fft.fftfreq(n)[:, None]
    fx = scipy.fft.rfftfreq(n)[None, :]
    for spectrum, h in zip(renderer.spectra, heights, strict=True):
        s = float(optics.sigma_px(h - z))
        acc += spectrum * np.exp(-2 * math.pi**2 * s**2 * (fy**2 + fx**2))
    full = scipy.fft.irfft2(acc, s=(n, n))
    np.testing.assert_allclose(renderer.render(z), full, atol=1e-4 * full.max())


def test_in_focus_objects_render_like_the_all_in_focus_image() -> None:
    """In focus and free of haze, the image's detail is the all-in-focus image's; far, not."""
    from scipy import ndimage

    spec = Specimen((128, 128), seed=2, object_range=10.0)
    aif = spec.all_in_focus()

    def detail(image: np.ndarray) -> np.ndarray:
        return np.asarray(image - ndimage.gaussian_filter(image, 3.0))

    for z in (-8.0, 8.0):
        image = spec.render(z)
        sharp = spec.truth_mask(z) & (spec.in_focus_share(z) >= 0.9)
        far = np.abs(spec.depth - z) > 2 * spec.depth_of_field
        assert sharp.sum() > 20 and far.sum() > 20
        err = np.abs(detail(image) - detail(aif))
        scale = np.abs(detail(aif))
        assert err[sharp].mean() < 0.35 * scale[sharp].mean()
        assert err[far].mean() > 0.6 * scale[far].mean()


def test_contrasts() -> None:
    bf = Specimen((96, 96), seed=1, contrast="brightfield")
    fl = Specimen((96, 96), seed=1, contrast="fluorescence")
    np.testing.assert_array_equal(bf.depth, fl.depth)  # same geometry
    empty = bf.labels == 0
    far_from_objects = empty & (
        np.asarray(
            __import__("scipy.ndimage", fromlist=["distance_transform_edt"]).distance_transform_edt(
                empty
            )
        )
        > 40
    )
    bf_img, fl_img = bf.all_in_focus(), fl.all_in_focus()
    # Brightfield: bright background, darker objects. Fluorescence: dark background.
    assert bf_img[empty].mean() > bf_img[~empty].mean()
    assert fl_img[empty].mean() < fl_img[~empty].mean()
    if far_from_objects.any():
        assert abs(bf_img[far_from_objects].mean() - bf.brightness) < 0.02 * bf.brightness
        assert abs(fl_img[far_from_objects].mean() - fl.background) < 5


@pytest.mark.parametrize("exact", [True, False])
def test_camera_model(exact: bool) -> None:
    cam = Camera(gain=2.0, offset=100.0, read_noise=3.0, bit_depth=12)
    rng = np.random.default_rng(0)
    electrons = np.full((256, 256), 400.0, np.float32)
    frame = cam.expose(electrons, rng, exact=exact)
    assert frame.dtype == np.uint16 and frame.shape == (256, 256)
    assert abs(frame.mean() - (100 + 2 * 400)) < 1.0
    # Variance in ADU: gain² (shot + read²).
    assert abs(frame.astype(float).var() / (4 * (400 + 9)) - 1) < 0.05
    bright = cam.expose(np.full((8, 8), 1e6, np.float32), rng, exact=exact)
    assert bright.max() == 4095  # clipped at the bit depth
    np.testing.assert_allclose(cam.expected_adu(electrons), 900.0)


def test_render_speed_512() -> None:
    """A 512 x 512 plane in under 50 ms on one core once the specimen is built."""
    spec = Specimen((512, 512), seed=0)
    spec.cache_size = 0  # measure rendering, not the cache
    times = []
    for z in np.linspace(-15.0, 15.0, 7):
        t0 = time.perf_counter()
        spec.render(float(z) + 0.123)
        times.append(time.perf_counter() - t0)
    assert min(times) < 0.050, times


def test_render_cache_and_prefetch() -> None:
    spec = Specimen((64, 64), seed=3)
    a = spec.render(1.0)
    assert spec.render(1.0) is a and not a.flags.writeable
    thread = spec.prefetch([2.0, 3.0, 2.0, 1e6])  # out of range: skipped
    assert thread is not None
    thread.join(timeout=30)
    assert spec.prefetch([1.0, 2.0, 3.0, 1e6]) is None  # all cached: nothing to do
    b = spec.render(2.0)
    np.testing.assert_array_equal(b, Specimen((64, 64), seed=3).render(2.0))


def test_std_focus_peaks_at_each_objects_depth() -> None:
    """Per object, the std focus score through the stack peaks where the truth puts it."""
    for contrast in ("brightfield", "fluorescence"):
        s = simulate_stack((16, 192, 192), seed=5, contrast=contrast)
        spec = Specimen(
            (192, 192),
            seed=5,
            contrast=contrast,
            z_center=15.0,
            object_range=15.0 - s.meta["depth_of_field"] / 2,
        )
        maps = lf.focus_maps(s.raw, "std", window=16, strides=(4,), paint="mean")
        hits = total = 0
        for i, kind in enumerate(spec.object_kinds, start=1):
            region = spec.labels == i
            if kind not in ("cell", "sheet") or region.sum() < 50:
                continue
            z_peak = s.z_um[np.argmax(maps[:, region].mean(axis=1))]
            total += 1
            hits += abs(z_peak - float(s.depth[region][0])) <= s.meta["depth_of_field"] / 2 + 1
        assert total >= 4
        assert hits >= 0.75 * total, (contrast, hits, total)


def test_weak_label_iou_against_exact_truth() -> None:
    """The paper's weak labels, scored against exact truth: better than the wrong planes'."""
    for contrast in ("brightfield", "fluorescence"):
        s = simulate_stack((10, 256, 256), seed=1, contrast=contrast)
        settings = {"window": 32, "strides": (4,), "paint": "mean"}
        scores = weak_label_scores(s, **settings)
        assert 0.0 < scores["iou"] < 1.0 and scores["recall"] > 0.5
        labels = lf.weak_labels(lf.focus_maps(s.raw, "std", **settings))
        shifted = mask_scores(labels, np.roll(s.mask, 5, axis=0))
        assert scores["iou"] > 1.5 * shifted["iou"], (contrast, scores, shifted)
        paper = weak_label_scores(s)  # window 128, strides 8..36, sum
        assert 0.0 < paper["iou"] < scores["iou"]


def test_mask_scores() -> None:
    pred = np.zeros((2, 4, 4), bool)
    true = np.zeros((2, 4, 4), bool)
    pred[0, :2] = True  # 8 pixels
    true[0, :1] = True  # 4 pixels, inside pred
    scores = mask_scores(pred, true)
    assert scores["iou"] == 0.5 and scores["precision"] == 0.5 and scores["recall"] == 1.0
    assert math.isclose(scores["dice"], 2 * 4 / 12)
    assert scores["mean_slice_iou"] == 0.5  # the empty-truth plane does not count
    with pytest.raises(ValueError, match="shape"):
        mask_scores(pred, true[0])


def test_save_and_load_round_trip(tmp_path: Path, small: SimulatedStack) -> None:
    path = save_simulated(small, tmp_path / "phantom.zarr")
    back = load_simulated(path)
    np.testing.assert_array_equal(back.raw, small.raw)
    np.testing.assert_array_equal(back.mask, small.mask)
    np.testing.assert_array_equal(back.depth, small.depth)
    np.testing.assert_array_equal(back.all_in_focus, small.all_in_focus)
    np.testing.assert_array_equal(back.z_um, small.z_um)
    assert back.meta == small.meta
    np.testing.assert_array_equal(lf.read_stack(path), small.raw)
    assert stack_z_step(path) == 2.0
    with pytest.raises(FileExistsError, match="overwrite"):
        save_simulated(small, path)
    save_simulated(small, path, overwrite=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (10, 32, 128)}, "too small"),
        ({"shape": (1, 128, 128)}, "Z must be at least 2"),
        ({"shape": (10, 128)}, "shape"),
        ({"contrast": "phase"}, "contrast"),
        ({"z_step": 0.0}, "z_step"),
        ({"z_step": float("nan")}, "z_step"),
        ({"pixel_size": -1.0}, "pixel_size"),
        ({"na": 1.2}, "na"),
        ({"seed": -1}, "seed"),
        ({"depth_of_field": 0.0}, "depth_of_field"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict[str, object], match: str) -> None:
    args = {"shape": (4, 64, 64), **kwargs}
    with pytest.raises(ValueError, match=match):
        simulate_stack(**args)  # type: ignore[arg-type]


def test_z_outside_the_simulated_range() -> None:
    spec = Specimen((64, 64), seed=0, object_range=5.0)
    lo, hi = spec.z_range
    with pytest.raises(ValueError, match=r"z_um=.*outside the simulated range"):
        spec.render(hi + 1.0)
    with pytest.raises(ValueError, match="z_um"):
        spec.truth_mask(lo - 1.0)
    with pytest.raises(ValueError, match="z_um must be a number"):
        spec.render("top")  # type: ignore[arg-type]
    assert spec.render(hi).shape == (64, 64)  # still usable


def test_physical_psf_option() -> None:
    pytest.importorskip("psfmodels")
    optics = Optics(psf="vectorial")
    n = 64
    layers = np.zeros((1, n, n), np.float32)
    layers[0, 32, 32] = 1.0
    renderer = LayerRenderer(layers, np.array([0.0]), optics, (slice(0, n), slice(0, n)))
    peaks = [renderer.render(z).max() for z in (0.0, 2.0, 6.0)]
    assert peaks[0] > peaks[1] > peaks[2]  # defocus spreads the point
    assert abs(renderer.render(4.0).sum() - 1.0) < 1e-3  # and keeps its energy
    gauss = Specimen((96, 96), seed=1).render(3.0)
    vectorial = Specimen((96, 96), seed=1, optics=optics).render(3.0)
    assert np.corrcoef(gauss.ravel(), vectorial.ravel())[0, 1] > 0.95
    assert simulate_stack((3, 64, 64), psf="scalar").meta["parameters"]["psf"] == "scalar"


def test_physical_psf_without_psfmodels(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psfmodels", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install psfmodels"):
        Specimen((64, 64), seed=0, optics=Optics(psf="vectorial"))
    with pytest.raises(ValueError, match="psf"):
        Optics(psf="airy")


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    nz=st.integers(2, 5),
    ny=st.integers(64, 90),
    nx=st.integers(64, 90),
    contrast=st.sampled_from(["brightfield", "fluorescence"]),
    z_step=st.floats(0.5, 4.0),
)
def test_invariants_on_random_stacks(
    seed: int, nz: int, ny: int, nx: int, contrast: str, z_step: float
) -> None:
    s = simulate_stack((nz, ny, nx), seed=seed, contrast=contrast, z_step=z_step)
    assert s.raw.shape == s.mask.shape == (nz, ny, nx)
    assert s.raw.max() <= 4095
    objects = ~np.isnan(s.depth)
    assert not (s.mask & ~objects).any()  # in focus only where an object is
    with np.errstate(invalid="ignore"):
        # depth is stored as float32: allow its rounding (~1e-7 relative) at the boundary
        gap = np.abs(s.depth[None] - s.z_um[:, None, None]) - s.meta["depth_of_field"] / 2
        near = gap <= 1e-5
    assert not (s.mask & ~near).any()  # and only within half the depth of field
    assert np.isfinite(s.all_in_focus).all()


def test_the_volume_generator_keeps_its_validation_stacks_and_varies_on_request() -> None:
    """The optional parameters of `sim.volume.phantom_stack` default to the validation stacks'
    values (so the accuracy figures are of the same stacks), and each one changes the image."""
    from livefocus.sim.volume import phantom_stack

    base = phantom_stack((4, 64, 64), seed=3, contrast="fluorescence")
    same = phantom_stack(
        (4, 64, 64), seed=3, contrast="fluorescence", pixel_um=0.3, na=0.5,
        depth_of_field=2.0, brightness=1.0, bits=8,
    )  # fmt: skip
    assert base.raw.dtype == np.uint8
    np.testing.assert_array_equal(base.raw, same.raw)
    np.testing.assert_array_equal(base.mask, same.mask)
    deep = phantom_stack((4, 64, 64), seed=3, contrast="fluorescence", bits=12)
    assert deep.raw.dtype == np.uint16 and deep.raw.max() > 255
    wide = phantom_stack((4, 64, 64), seed=3, depth_of_field=4.0)
    assert wide.mask.sum() > base.mask.sum()  # the truth follows the depth of field
    assert not np.array_equal(phantom_stack((4, 64, 64), seed=3, na=0.7).raw, base.raw)
    dim = phantom_stack((4, 64, 64), seed=3, brightness=0.2)
    # fewer photons at the same grey levels: relatively noisier frames
    assert abs(float(dim.raw.mean()) - float(base.raw.mean())) < 0.2 * float(base.raw.mean())
    assert float(np.std(dim.raw.astype(float) - base.raw)) > 1.0


def test_randomised_volume_stacks_draw_their_instrument_and_keep_the_truth() -> None:
    from livefocus.model.randomise import pairs_from_randomised, random_volume_stack

    stacks = [random_volume_stack((6, 64, 64), seed) for seed in range(6)]
    again = random_volume_stack((6, 64, 64), 2)
    np.testing.assert_array_equal(stacks[2].raw, again.raw)
    assert len({s.parameters["contrast"] for s in stacks}) == 2
    assert len({s.parameters["bit_depth"] for s in stacks}) >= 2
    for s in stacks:
        p = s.parameters
        assert s.raw.shape == s.mask.shape == (6, 64, 64)
        assert s.raw.max() <= 2 ** p["bit_depth"] - 1
        assert 0.3 * p["depth_of_field"] <= s.z_step <= 0.75 * p["depth_of_field"]
    pairs = pairs_from_randomised(2, shape=(4, 64, 64), generators=("layers", "volumes"))
    assert len(pairs) == 8
    from livefocus.model.randomise import random_stack

    np.testing.assert_array_equal(pairs.truth[4:], random_volume_stack((4, 64, 64), 1).mask)
    np.testing.assert_array_equal(pairs.truth[:4], random_stack((4, 64, 64), 0).mask)
    with pytest.raises(ValueError, match="generators"):
        pairs_from_randomised(1, shape=(4, 64, 64), generators=("layers", "blobs"))


def test_the_third_generator_is_deterministic_and_its_truth_consistent() -> None:
    """`tests/support/phantom_points` (the models' unseen validation generator)."""
    from support.phantom_points import points_stack

    a = points_stack((8, 96, 96), seed=5, contrast="fluorescence")
    b = points_stack((8, 96, 96), seed=5, contrast="fluorescence")
    bf = points_stack((8, 96, 96), seed=5, contrast="brightfield")
    np.testing.assert_array_equal(a.raw, b.raw)
    assert a.raw.dtype == np.uint16 and a.raw.max() <= 4095
    np.testing.assert_array_equal(a.mask, bf.mask)  # one specimen, two contrasts
    np.testing.assert_array_equal(a.mask.any(axis=0), np.isfinite(a.depth))
    assert 0.05 < a.mask.any(axis=0).mean() < 0.8
    with pytest.raises(ValueError, match="contrast"):
        points_stack((8, 96, 96), contrast="phase")


def test_the_fourth_generator_is_deterministic_and_its_truth_consistent() -> None:
    """`tests/support/phantom_widefield` (written blind, after every choice of the rule and
    the models): one specimen in both contrasts, a depth exactly where the mask has one."""
    from support.phantom_widefield import widefield_stack

    a = widefield_stack((8, 96, 96), seed=5, contrast="fluorescence")
    b = widefield_stack((8, 96, 96), seed=5, contrast="fluorescence")
    bf = widefield_stack((8, 96, 96), seed=5, contrast="brightfield")
    np.testing.assert_array_equal(a.raw, b.raw)
    assert a.raw.dtype == np.uint16
    np.testing.assert_array_equal(a.mask, bf.mask)
    np.testing.assert_array_equal(a.mask.any(axis=0), np.isfinite(a.depth))
    assert 0.005 < a.mask.mean() < 0.5
    with pytest.raises(ValueError, match="contrast"):
        widefield_stack((8, 96, 96), seed=5, contrast="phase")
    # the truth is where the image is sharp: the local spread of in-focus voxels beats that of
    # the same pixels 4 planes away, out of focus there
    from scipy import ndimage

    st = widefield_stack((12, 96, 96), seed=300, contrast="fluorescence")
    img = st.raw.astype(np.float64)
    mean = ndimage.uniform_filter(img, (1, 5, 5))
    spread = np.sqrt(np.maximum(ndimage.uniform_filter(img**2, (1, 5, 5)) - mean**2, 0))
    z, y, x = np.nonzero(st.mask[:8])
    away = ~st.mask[z + 4, y, x]
    assert away.sum() > 100
    ratio = spread[z, y, x][away].mean() / spread[z + 4, y, x][away].mean()
    assert ratio > 1.1, ratio


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"bits": 17}, "bits"),
        ({"bits": 8.5}, "bits"),
        ({"brightness": 0}, "brightness"),
        ({"na": 1.2}, "na must"),
        ({"pixel_um": -1.0}, "pixel_um"),
        ({"depth_of_field": 0}, "depth_of_field"),
        ({"contrast": "phase"}, "contrast"),
        ({"z_step": 0}, "z_step"),
        ({"shape": (1, 32, 32)}, "shape"),
    ],
)
def test_the_volume_generator_refuses_bad_parameters(bad: dict[str, Any], match: str) -> None:
    from livefocus.sim.volume import phantom_stack

    kw: dict[str, Any] = {"shape": (4, 32, 32), **bad}
    with pytest.raises(ValueError, match=match):
        phantom_stack(**kw)
