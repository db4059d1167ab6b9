"""Helpers shared by the tests (not fixtures: those are in ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
