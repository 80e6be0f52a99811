"""The one way tests run ``livefocus`` as a user does: a subprocess of ``python -m livefocus``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CliRun", "run_cli", "start_cli"]


@dataclass(frozen=True)
class CliRun:
    """Exit code and output of one command (unpacks as ``code, out, err``)."""

    returncode: int
    stdout: str
    stderr: str

    def __iter__(self) -> Iterator[int | str]:
        return iter((self.returncode, self.stdout, self.stderr))


def start_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``livefocus ARGS`` (stdout and stderr piped, text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "livefocus", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> CliRun:
    """Run ``livefocus ARGS`` to the end."""
    proc = start_cli(*args, cwd=cwd, env=env)
    out, err = proc.communicate(timeout=timeout)
    return CliRun(proc.returncode, out, err)
