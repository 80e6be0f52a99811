"""``livefocus bench``: benchmarks measured side by side in one run."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import typer

from livefocus.cli._app import app


def check_json_path(path: Path | None) -> None:
    """Refuse a ``--json`` output that cannot be written, before any work is done."""
    if path is None:
        return
    if path.name in ("", ".", "..") or path.is_dir():
        raise ValueError(f"--json {str(path)!r} is a folder; give a file name such as rows.json")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--json: folder {str(path.parent)!r} does not exist")


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
        "focus", help="What to measure: focus, model, stream, soak or all."
    ),
    quick: bool = typer.Option(False, help="Smaller sizes, for a smoke test."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the rows as JSON."),
) -> None:
    """Measure speed (and exactness where a reference exists); prints Markdown tables."""
    from livefocus import bench as benchmarks

    check_json_path(json_out)
    targets = benchmarks.TARGETS if target == "all" else (target,)
    results: dict[str, Any] = {"machine": platform.processor() or platform.machine()}
    for name in targets:
        rows = benchmarks.run(name, quick=quick)
        results[name] = rows
        typer.echo(f"\n## bench {name}\n\n{format_table(rows)}")
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2, default=str))
