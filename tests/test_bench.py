"""The benchmarks run and report exactness (speed itself is measured, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_cli

from livefocus.bench import focus


def test_focus_bench_rows_are_exact() -> None:
    rows = focus.run(quick=True, measures=("std", "entropy"))
    by_measure = {row["measure"]: row for row in rows}
    assert set(by_measure) >= {"std", "entropy"}
    for name in ("std", "entropy"):
        assert by_measure[name]["max rel diff"] < 1e-9
        assert by_measure[name]["reference s/slice"] > 0 and by_measure[name]["fast s/slice"] > 0
    assert any(row["measure"].startswith("std, 20-slice stack") for row in rows)


def test_kernel_bench_rows_are_bit_exact() -> None:
    from livefocus.bench import kernels

    rows = kernels.run(quick=True)
    assert len(rows) == 5 and all(row["equal"] is True for row in rows), rows
    assert all(row["baseline ms"] > 0 and row["kernel ms"] > 0 for row in rows)
    assert rows[2]["OpenCV ms"] > 0  # the 3 x 3 mean's well-known baseline, timed beside it


def test_kernel_bench_sees_a_kernel_that_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    """The equality column compares the kernel's state with the referee's (a corrupted
    kernel reads False), so the bit-exactness it reports can fail."""
    from livefocus.bench import kernels
    from livefocus.depth import _state

    right = _state.update_curves

    def wrong(*args: Any) -> Any:
        out = right(*args)
        args[7][0][0] += 1  # fmax of one pixel
        return out

    monkeypatch.setattr(_state, "update_curves", wrong)
    rows = kernels.run(quick=True)
    assert rows[3]["kernel"] == "curve state update" and rows[3]["equal"] is False


def test_bench_cli_writes_json(tmp_path: Path) -> None:
    result = run_cli("bench", "nothing")
    assert result.returncode == 2 and "target must be one of" in result.stderr
    out = tmp_path / "b.json"
    ok = run_cli("bench", "focus", "--quick", "--json", str(out))
    assert ok.returncode == 0, ok.stderr
    assert "| std | 256^2 |" in ok.stdout
    assert len(json.loads(out.read_text())["focus"]) >= 11


def test_soak_loses_nothing_and_reports_memory() -> None:
    from livefocus.bench import soak

    (row,) = soak.run(quick=True)
    assert row["frames"] == row["written"] == 400 and row["lost"] == 0
    assert row["rss_end_MB"] > 0 and row["max_threads"] >= 3
