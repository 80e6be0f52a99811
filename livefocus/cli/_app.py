"""The typer application that every command module registers on."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    name="livefocus",
    help="Online in-focus segmentation for widefield microscopy (a digital confocal).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
