"""The typer application that every command module registers on."""

from __future__ import annotations

import time

import typer

__all__ = ["app", "entered", "mark_entered"]

_entered: float | None = None  # perf_counter when main() was last entered


def mark_entered() -> None:
    """Note that the command line's entry point runs now (budgets may count from it)."""
    global _entered
    _entered = time.perf_counter()


def entered() -> float | None:
    """When the command line's entry point was last entered (perf_counter), if it was."""
    return _entered


app = typer.Typer(
    name="livefocus",
    help="Online in-focus segmentation for widefield microscopy (a digital confocal).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
