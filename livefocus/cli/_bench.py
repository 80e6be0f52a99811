"""``livefocus bench``: benchmarks measured side by side in one run."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from livefocus._output import check_file_output, write_json
from livefocus.cli._app import app


def check_json_path(
    path: Path | None, inputs: Iterable[str | Path] = (), within: Iterable[str | Path] = ()
) -> None:
    """Refuse a ``--json`` output that cannot be written, before any work is done: a folder,
    a missing or read-only folder, an input or a path inside one or inside an output
    (``within``), a name not ending in ``.json``, or a file livefocus did not write
    (``livefocus._output.check_file_output``).
    """
    if path is not None:
        check_file_output(
            path,
            name="--json",
            inputs=inputs,
            within=within,
            suffixes=(".json",),
            example="rows.json",
        )


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as a Markdown table (the README's performance tables)."""
    if not rows:
        return "(no rows)"
    keys = list(dict.fromkeys(k for row in rows for k in row))

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row.get(k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


@app.command()
def bench(
    target: str = typer.Argument(
        "focus", help="What to measure: focus, kernels, model, stream, soak or all."
    ),
    quick: bool = typer.Option(False, help="Smaller sizes, for a smoke test."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the rows as JSON."),
) -> None:
    """Measure speed (and exactness where a reference exists); prints Markdown tables."""
    from livefocus import bench as benchmarks

    check_json_path(json_out)
    if target not in (*benchmarks.TARGETS, "all"):  # before any work (the library's own check
        # would come after the first targets of a list, and does not know "all")
        raise ValueError(
            f"target must be one of {', '.join(benchmarks.TARGETS)} or all; got {target!r}"
        )
    targets = benchmarks.TARGETS if target == "all" else (target,)
    results: dict[str, Any] = {"machine": platform.processor() or platform.machine()}
    for name in targets:
        rows = benchmarks.run(name, quick=quick)
        results[name] = rows
        typer.echo(f"\n## bench {name}\n\n{format_table(rows)}")
    if json_out is not None:
        write_json(json_out, results)
