"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder with the small real focus stacks (see tests/data/LICENSES.md)."""
    return DATA
