"""Waiting for a reader's port to be open before the first card.

A serial reader's driver flushes the port's input when it opens it (pyserial does), so a card
presented before that is lost, as it would be at a real terminal still starting. A sleep before
the first card is a guess that a loaded machine loses; this waits for the driver's own word:
``hardware.support`` logs "reader <id> online" once the port is open. Records are matched to
the thread that runs the terminals, so two simulated edges with the same reader ids in one
process do not answer for each other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOGGER = logging.getLogger("hardware.support")
_lock = threading.Lock()
_users = 0
_saved_level = logging.NOTSET


class ReadersOnline(logging.Handler):
    """The readers that came online on one thread (the thread that creates this)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._thread = threading.get_ident()
        self._online: set[str] = set()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread or not str(record.msg).startswith("reader %s online"):
            return
        with self._guard:
            self._online.add(str(record.args[0]) if record.args else "")  # type: ignore[index]

    def online(self, *reader_ids: str) -> bool:
        with self._guard:
            return set(reader_ids) <= self._online


@contextmanager
def watching_readers() -> Iterator[ReadersOnline]:
    """A ``ReadersOnline`` for this thread while the block runs (the driver's INFO records are
    made meanwhile even if the test's logging is quieter)."""
    global _users, _saved_level
    watcher = ReadersOnline()
    with _lock:
        if _users == 0:
            _saved_level = _LOGGER.level
            if _LOGGER.getEffectiveLevel() > logging.INFO:
                _LOGGER.setLevel(logging.INFO)
        _users += 1
        _LOGGER.addHandler(watcher)
    try:
        yield watcher
    finally:
        with _lock:
            _LOGGER.removeHandler(watcher)
            _users -= 1
            if _users == 0:
                _LOGGER.setLevel(_saved_level)
