"""Command line: ``livefocus COMMAND``.

Commands are thin: they parse options, call the library and print. Each command module
registers its commands on the shared :data:`app`; errors from bad input are printed as one
line without a traceback and the process exits with status 2 (status 1, also one line, when
memory runs out).

Library errors name the Python parameter (``window must be a positive int, got 0``); when
that parameter is an option of the command that ran, :func:`main` puts its flag in front
(``error: --window: window must be ...``), so the user sees what to change.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import typer

from livefocus._signals import last_stop, raise_on_stop
from livefocus.cli import _bench, _focus, _model, _sim, _stream, _view  # noqa: F401  (registers commands)
from livefocus.cli._app import app, mark_entered

__all__ = ["app", "main"]

#: Exceptions that mean "the user asked for something invalid" (or an optional extra is
#: missing): printed, not traced.
USER_ERRORS = (ValueError, TypeError, OSError, KeyError, RuntimeError, ImportError)
#: The command-line parser's errors (an unknown option, a value that does not parse): click's
#: ``ClickException``, which typer either uses or carries a copy of.
_PARSER_ERROR: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _command(argv: list[str]) -> Any:
    """The (click) subcommand that ``argv`` runs (its first word naming one), if any."""
    commands = getattr(typer.main.get_command(app), "commands", {})
    return next((commands[word] for word in argv if word in commands), None)


def _flags(argv: list[str]) -> dict[str, str]:
    """Python name -> flag of every option of the command ``argv`` runs."""
    command = _command(argv)
    params = command.params if command is not None else []
    return {
        p.name: max(p.opts, key=len) for p in params if p.param_type_name == "option" and p.name
    }


def _for_cli(message: str, argv: list[str]) -> str:
    """A library error ``message`` as the CLI prints it, for the command ``argv`` runs.

    When the message starts with the name of one of the command's options, its flag goes in
    front (``"window must be ..."`` -> ``"--window: window must be ..."``); a parameter in the
    plural (``stacks``) matches a repeatable option in the singular (``--stack``). A hint
    ``name=True`` for an option becomes its flag (``overwrite=True`` -> ``--overwrite``).
    """
    flags = _flags(argv)
    if not flags:
        return message

    def flag_of(name: str) -> str | None:
        return flags.get(name) or flags.get(name.removesuffix("s"))

    def hints(part: str) -> str:
        part = re.sub(
            r"(?<![\w/.=-])([a-z][a-z0-9_]*)=True\b",
            lambda m: flag_of(m.group(1)) or m.group(0),
            part,
        )
        # and ``name=VALUE`` (an upper-case placeholder) becomes ``--flag VALUE``
        return re.sub(
            r"(?<![\w/.=-])([a-z][a-z0-9_]*)=([A-Z][A-Z_|]*)\b",
            lambda m: f"{flag_of(m.group(1))} {m.group(2)}" if flag_of(m.group(1)) else m.group(0),
            part,
        )

    # the hints are rewritten outside quoted text only (a path may hold "model=UNET")
    parts = re.split(r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")", message)
    text = "".join(hints(p) if i % 2 == 0 else p for i, p in enumerate(parts))
    # a word, not the start of a path or file name ("config.json: ...", "depth/...")
    first = re.match(r"([a-z][a-z0-9_]*)(?=[\s:=,]|$)", text)
    flag = flag_of(first.group(1)) if first else None
    return f"{flag}: {text}" if flag else text


#: Options whose empty value means none (a script's ``--positions "$POS"`` with no positions).
_EMPTY_MEANS_NONE = frozenset({"--model", "--positions"})


def _empty_value(argv: list[str]) -> str | None:
    """The message for an empty argument (``''``, which would read as the current folder),
    naming its option or argument; None when there is none. ``--model ''`` and
    ``--positions ''`` mean none, as they always did."""
    command = _command(argv)
    if command is None:  # no command: the parser says what is wrong
        return None
    params = command.params
    takes_value = {
        o for p in params if p.param_type_name == "option" and not p.is_flag for o in p.opts
    }
    arguments = [p.name.upper() for p in params if p.param_type_name == "argument" and p.name]
    for i, word in enumerate(argv):
        if word.startswith("--") and word.endswith("=") and word[:-1] in takes_value:
            return f"{word[:-1]} must not be empty"
        if word != "":
            continue
        before = argv[i - 1] if i else ""
        if before in _EMPTY_MEANS_NONE:
            continue
        if before in takes_value:
            return f"{before} must not be empty"
        name = arguments[0] if len(arguments) == 1 else "an argument"
        return f"{name} must not be empty (got '')"
    return None


def _quiet_shutdown() -> None:
    """After the one error line: zarr's event loop may still hold the chunk writes that were in
    flight when one failed; at exit asyncio logs each as 'Task was destroyed but it is pending!'
    with the failed write's traceback. The error has been reported: those records are dropped."""
    logging.getLogger("asyncio").disabled = True


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``livefocus`` console script."""
    mark_entered()
    with raise_on_stop():  # SIGTERM and SIGHUP stop a command as Ctrl-C does
        _main(argv)


def _main(argv: list[str] | None) -> None:
    args = sys.argv[1:] if argv is None else argv
    # a log handler that cannot write (its file on a full disk: pymmcore-plus logs to one)
    # loses the record quietly instead of printing a traceback for every record
    logging.raiseExceptions = False
    try:
        empty = _empty_value(args)
        if empty is not None:  # before the parser, which takes '' for the current folder
            typer.secho(f"error: {empty}", fg=typer.colors.RED, err=True)
            sys.exit(2)
        code = app(args=args, prog_name="livefocus", standalone_mode=False)
    except typer.Abort:  # Ctrl-C outside a run that handles it: as click does
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C before a command's own handling began (start-up)
        code = 130
    except _PARSER_ERROR as exc:  # the parser's own errors: one line too
        message = " ".join(exc.format_message().split())
        if not message:  # no command given: the help was printed
            sys.exit(exc.exit_code)
        command = _command(args)
        hint = f" (livefocus {command.name} --help)" if command is not None else ""
        typer.secho(f"error: {message}{hint}", fg=typer.colors.RED, err=True)
        sys.exit(exc.exit_code)
    except USER_ERRORS as exc:
        message = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        typer.secho(f"error: {_for_cli(message, args)}", fg=typer.colors.RED, err=True)
        _quiet_shutdown()
        sys.exit(2)
    except MemoryError as exc:  # a runtime failure (exit 1), still one line
        typer.secho(f"error: out of memory ({exc or 'no details'})", fg=typer.colors.RED, err=True)
        _quiet_shutdown()
        sys.exit(1)
    if code == 130:  # a Ctrl-C the command did not handle itself (typer's code for it), or start-up
        typer.echo(f"interrupted ({last_stop()})", err=True)
        _quiet_shutdown()
    sys.exit(code if isinstance(code, int) else 0)  # a command's typer.Exit(code), or 0
