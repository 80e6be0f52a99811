"""Commands of this area (registered on the shared app)."""

from __future__ import annotations
