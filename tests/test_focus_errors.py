"""Bad input gets a clear error naming the parameter."""

from __future__ import annotations

import numpy as np
import pytest

import livefocus as lf

IMG = np.zeros((16, 16), dtype=np.uint8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image": np.zeros((2, 8, 8))}, "image must be a 2-D.*focus_maps"),
        ({"image": np.zeros((0, 8))}, "image must not be empty"),
        ({"image": np.full((4, 4), np.nan)}, "NaN or inf"),
        ({"image": np.full((4, 4), np.inf)}, "NaN or inf"),
        ({"image": np.ones((4, 4), dtype=bool)}, "bool"),
        ({"image": np.array([["a"]])}, "integer or float"),
        ({"window": 0}, "window must be a positive int, got 0"),
        ({"window": -3}, "window must be a positive int"),
        ({"window": 2.5}, "window must be a positive int, got 2.5"),
        ({"window": True}, "window must be a positive int"),
        ({"strides": ()}, "strides must not be empty"),
        ({"strides": (8, 0)}, "strides must be a positive int"),
        ({"strides": "8"}, "strides must be"),
        ({"measure": "sharpness"}, "measure must be one of brenner, .*dwt; got 'sharpness'"),
        ({"paint": "max"}, "paint must be one of sum, mean"),
    ],
)
@pytest.mark.parametrize("function", [lf.focus_map, lf.focus_map_reference])
def test_bad_arguments(function, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    args = {"image": IMG, "measure": "std", "window": 8, "strides": (4,), "paint": "sum"} | kwargs
    image = args.pop("image")
    with pytest.raises((ValueError, TypeError), match=match):
        function(image, **args)


def test_bad_stacks() -> None:
    with pytest.raises(ValueError, match=r"stack must be a \(Z, Y, X\)"):
        lf.focus_maps(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="workers"):
        lf.focus_maps(np.zeros((2, 4, 4)), workers=0)
    with pytest.raises(ValueError, match="NaN"):
        lf.axial_curve(np.full((2, 4, 4), np.nan))


def test_read_stack_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lf.read_stack(tmp_path / "missing.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="could not be read"):
        lf.read_stack(bad)
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown format"):
        lf.read_stack(tmp_path / "x.png")
    np.save(tmp_path / "four.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="expected 3 axes"):
        lf.read_stack(tmp_path / "four.npy")
    np.save(tmp_path / "flags.npy", np.zeros((2, 3, 4), dtype=bool))
    with pytest.raises(ValueError, match="dtype bool"):
        lf.read_stack(tmp_path / "flags.npy")


def test_positive_numbers_one_check_everywhere() -> None:
    """Optics, the simulator, the store and the reconstruction share one check."""
    from livefocus.depth import StackReconstructor
    from livefocus.focus._validate import check_positive_number
    from livefocus.sim import Optics

    assert check_positive_number(np.float32(0.5), "z_step", "µm") == 0.5
    assert check_positive_number(np.int64(3), "gain") == 3.0
    for bad in (0, -1.0, float("nan"), float("inf"), True, "1.0", None):
        with pytest.raises(ValueError, match=r"z_step must be a positive number of µm, got "):
            check_positive_number(bad, "z_step", "µm")
    with pytest.raises(ValueError, match=r"na must be a positive number, got -0\.5"):
        Optics(na=-0.5)
    with pytest.raises(ValueError, match="z_step must be a positive number of µm"):
        StackReconstructor((32, 32), z_step=0)
