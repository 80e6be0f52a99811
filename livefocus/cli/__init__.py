"""Command line: ``livefocus COMMAND``.

Commands are thin: they parse options, call the library and print. Each command module
registers its commands on the shared :data:`app`; errors from bad input are printed as one
line without a traceback and the process exits with status 2.
"""

from __future__ import annotations

import sys

import typer

from livefocus.cli import _bench, _focus, _model, _sim, _stream, _view  # noqa: F401  (registers commands)
from livefocus.cli._app import app

__all__ = ["app", "main"]

#: Exceptions that mean "the user asked for something invalid" (or an optional extra is
#: missing): printed, not traced.
USER_ERRORS = (ValueError, TypeError, OSError, KeyError, RuntimeError, ImportError)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``livefocus`` console script."""
    try:
        app(args=argv, prog_name="livefocus")
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        sys.exit(2)
