"""Helpers shared by the hardware tests: wait for a reader event with a deadline, never sleep."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hardware.support import Backoff


@pytest.fixture
def fast_backoff() -> Callable[[], Backoff]:
    """Reconnect backoff short enough for tests (the production default caps at 30 s)."""
    return lambda: Backoff(base=0.1, cap=0.4)
