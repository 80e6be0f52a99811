"""``livefocus view``: browse a finished store in the preview window."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from livefocus.cli._app import app


@app.command()
def view(
    store: Path = typer.Argument(..., help="A livefocus OME-Zarr store (OUT.ome.zarr)."),
    screenshot: Path | None = typer.Option(None, help="Save a PNG of the window."),
    keep_open: bool | None = typer.Option(
        None,
        "--keep-open/--no-keep-open",
        help="Wait until the window is closed (default: unless --screenshot is given).",
    ),
) -> None:
    """Browse a store: frame with mask overlay, focus, depth, all-in-focus, XZ/YZ, curve."""
    from livefocus._output import check_file_output
    from livefocus.preview import display_available

    if screenshot is not None:  # never into the store it shows, nor over a file of the user's
        check_file_output(screenshot, name="--screenshot", inputs=[store], suffixes=[".png"])
    if not display_available():
        if screenshot is None:
            raise RuntimeError(
                "no display: set DISPLAY (or QT_QPA_PLATFORM=offscreen with --screenshot)"
            )
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        keep_open = False
    from livefocus.preview import view_store

    try:
        view_store(
            store,
            screenshot=screenshot,
            keep_open=screenshot is None if keep_open is None else keep_open,
        )
    except RuntimeError as exc:  # zarr's codecs raise RuntimeError on a damaged chunk
        raise ValueError(
            f"store {str(store)!r} is damaged: a chunk cannot be read ({exc}); "
            "livefocus.stream.open_store reads the planes that are whole"
        ) from None
    if screenshot is not None:
        typer.echo(f"wrote {screenshot}")
