"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test caches exported models in its own folder, never the user's cache."""
    monkeypatch.setenv("LIVEFOCUS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder with the small real focus stacks (see tests/data/LICENSES.md)."""
    return DATA


@pytest.fixture
def demo(request: pytest.FixtureRequest) -> Any:
    """A fresh demo core (``livefocus.devices.demo_core``), 64 x 64 unless the test says.

    Parametrise indirectly to change it: ``@pytest.mark.parametrize("demo", [{"shape":
    (128, 128), "seed": 2}], indirect=True)``.
    """
    from livefocus.devices import demo_core

    options = {"shape": (64, 64), **getattr(request, "param", {})}
    return demo_core(**options)
