"""Benchmarks behind ``livefocus bench TARGET``.

Each target module has ``run(*, quick: bool) -> list[dict]``: one dict per table row, with
timings measured side by side in the same run (these machines are noisy; ratios are what count).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TARGETS", "run"]

TARGETS = ("focus", "kernels", "model", "stream", "soak")


def run(target: str, *, quick: bool = False) -> list[dict[str, Any]]:
    """Run one benchmark target and return its rows."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}; got {target!r}")
    module = importlib.import_module(f"livefocus.bench.{target}")
    return module.run(quick=quick)  # type: ignore[no-any-return]
