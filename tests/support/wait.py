"""Wait for a condition with a deadline, the one way tests wait: never a bare sleep.

``wait_until`` polls a condition from a thread (or plain test code); ``wait_until_async`` polls
from the event loop, and its condition may be a coroutine function. Both return the condition's
first truthy value and fail the test with what was awaited when the deadline passes."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class NotInTime(AssertionError):
    """A condition a test waited for did not come true before its deadline."""


def describe(condition: Callable[..., object]) -> str:
    """The condition's source line (a lambda's text) or its name, for the failure message."""
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return getattr(condition, "__qualname__", repr(condition))


def _failure(condition: Callable[..., object], what: str | None, timeout: float) -> NotInTime:
    return NotInTime(f"not true within {timeout} s: {what or describe(condition)}")


def wait_until(
    condition: Callable[[], T],
    timeout: float = 10.0,
    what: str | None = None,
    interval: float = 0.05,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(condition, what, timeout)
        time.sleep(interval)


async def wait_until_async(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    what: str | None = None,
    interval: float = 0.05,
) -> T:
    """Poll ``condition`` (plain or coroutine function) from the loop until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise _failure(condition, what, timeout)
        await asyncio.sleep(interval)
