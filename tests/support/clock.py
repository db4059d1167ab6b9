"""The clock as an input of the whole suite: ``QAQPA_TEST_TRAVEL`` moves every test, and the
processes it starts, to another moment, so a test that reads today's date instead of taking its
day as an input shows up (see README, Tests)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import time_machine

TRAVEL_ENV = "QAQPA_TEST_TRAVEL"
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def parse_moment(text: str) -> dt.datetime:
    """``2031-03-15T09:00+05:00`` or ``2031-03-15T09:00 Asia/Almaty``; a moment, never naive."""
    stamp, _, zone = text.strip().partition(" ")
    try:
        moment = dt.datetime.fromisoformat(stamp)
        if zone:
            moment = moment.replace(tzinfo=ZoneInfo(zone))
    except (ValueError, KeyError) as err:
        raise ValueError(
            f"{TRAVEL_ENV}={text!r}: not an ISO moment with an offset or zone"
        ) from err
    if moment.tzinfo is None:
        raise ValueError(f"{TRAVEL_ENV}={text!r}: give an offset (+05:00) or a zone name")
    return moment


@contextlib.contextmanager
def travel_from_env() -> Iterator[None]:
    """Travel to ``$QAQPA_TEST_TRAVEL`` (ticking) for the block when it is set; else nothing.

    Child processes inherit libfaketime with the same offset from the real clock, on their
    monotonic clock too (it ticks at the real rate: asyncio and timeouts keep working; keeping it
    unfaked makes libfaketime 0.9.10 fail Python's ``time.sleep`` with EINVAL)."""
    text = os.environ.get(TRAVEL_ENV)
    if not text:
        yield
        return
    moment = parse_moment(text)
    if not LIBFAKETIME.exists():
        raise RuntimeError(f"{TRAVEL_ENV} needs {LIBFAKETIME}: apt-get install faketime")
    saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "FAKETIME")}
    os.environ["FAKETIME"] = f"{round(moment.timestamp() - time.time()):+d}"
    os.environ["LD_PRELOAD"] = " ".join(filter(None, [str(LIBFAKETIME), saved["LD_PRELOAD"]]))
    try:
        with time_machine.travel(moment, tick=True):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
