"""``livefocus simulate``: a simulated widefield Z-stack with its exact truth, to Zarr."""

from __future__ import annotations

from pathlib import Path

import typer

from livefocus.cli._app import app


def _parse_shape(text: str) -> tuple[int, int, int]:
    parts = [p for p in text.replace(" ", "").replace("x", ",").split(",") if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--shape must be three integers Z,Y,X, got {text!r}") from None
    if len(values) != 3:
        raise ValueError(f"--shape must be three integers Z,Y,X, got {text!r}")
    return values[0], values[1], values[2]


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Output Zarr group (e.g. phantom.zarr)."),
    shape: str = typer.Option("20,512,512", help="Stack shape Z,Y,X."),
    seed: int = typer.Option(0, help="Specimen and noise seed."),
    contrast: str = typer.Option("brightfield", help="'brightfield' or 'fluorescence'."),
    z_step: float = typer.Option(2.0, help="Plane spacing in µm."),
    pixel_size: float = typer.Option(0.5, help="Pixel size in the specimen, µm."),
    na: float = typer.Option(0.45, help="Numerical aperture."),
    depth_of_field: float | None = typer.Option(
        None, help="In-focus tolerance in µm (default: from NA, wavelength and pixel size)."
    ),
    psf: str = typer.Option(
        "gaussian", help="Defocus PSF: gaussian, or vectorial / scalar (pip install psfmodels)."
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing --out."),
) -> None:
    """Simulate a widefield Z-stack through a random specimen and write it with its truth.

    Arrays raw, truth/mask, truth/depth and truth/all_in_focus; attributes z_step_um,
    pixel_size_um, seed, contrast and parameters.
    """
    from livefocus._output import check_output
    from livefocus.sim import save_simulated, simulate_stack

    dims = _parse_shape(shape)
    check_output(out, overwrite=overwrite, name="out", kind="store")  # before any work
    stack = simulate_stack(
        dims,
        seed=seed,
        contrast=contrast,
        z_step=z_step,
        pixel_size=pixel_size,
        na=na,
        depth_of_field=depth_of_field,
        psf=psf,
    )
    save_simulated(stack, out, overwrite=overwrite)
    in_focus = stack.mask.mean() * 100
    typer.echo(
        f"wrote {out}: {dims[0]} planes of {dims[1]} x {dims[2]} ({stack.meta['contrast']}, "
        f"seed {seed}, z step {z_step:g} µm, depth of field "
        f"{stack.meta['depth_of_field']:.2f} µm, {in_focus:.1f}% of voxels in focus)"
    )
