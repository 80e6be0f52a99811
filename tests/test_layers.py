"""The layering is checked, not just written down: import-linter contracts, two AST walks and
what streaming imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "livefocus"
#: Packages allowed to import the ``livefocus`` facade and to name CLI flags.
FRONT_ENDS = ("cli", "bench")


def _library_modules() -> list[Path]:
    return [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.relative_to(PACKAGE).parts[0] not in FRONT_ENDS and p.name != "__main__.py"
    ]


def test_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    from importlinter.cli import lint_imports

    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert code == 0, capsys.readouterr().out


def test_only_front_ends_import_the_facade() -> None:
    offenders = []
    for path in _library_modules():
        if path == PACKAGE / "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name == "livefocus" for a in node.names):
                offenders.append(f"{path}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "livefocus" and node.level == 0:
                offenders.append(f"{path}:{node.lineno}")
    assert not offenders, offenders


def _raised_text(node: ast.Raise) -> str:
    parts = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            parts.append(sub.value)
    return " ".join(parts)


def test_library_errors_name_parameters_not_flags() -> None:
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
    offenders = []
    for path in _library_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and flag.search(_raised_text(node)):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {_raised_text(node)}")
    assert not offenders, "\n".join(offenders)


def test_the_checks_can_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same checks find a cycle and a flag in a small package made to break them."""
    from importlinter.cli import lint_imports

    pkg = tmp_path / "layered"
    for name, text in {
        "__init__.py": "",
        "low/__init__.py": "def f():\n    from layered.high import g\n",  # inside a function
        "high/__init__.py": "from layered.low import f\ng = 1\n",
    }.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "layered"\n\n'
        '[[tool.importlinter.contracts]]\nname = "high -> low"\ntype = "layers"\n'
        'layers = ["layered.high", "layered.low"]\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert lint_imports(config_filename=str(config), no_cache=True) != 0
    assert "layered.low is not allowed to import layered.high" in capsys.readouterr().out
    bad = ast.parse('raise ValueError(f"give --overwrite for {x}")\n')
    raises = [n for n in ast.walk(bad) if isinstance(n, ast.Raise)]
    assert "--overwrite" in _raised_text(raises[0])


def test_streaming_without_a_model_imports_no_torch() -> None:
    """The streaming layer needs torch only for a U-Net: its import (and the depth rule's
    z-peak finaliser) must not pull torch in, a 1.5-2 s start-up of every run."""
    code = "import sys, livefocus.stream; print(*(m in sys.modules for m in ('torch', 'onnx')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
