"""A staff page borrows a reader: its next card (and keypad keys) go to the page, not to a tap.

While a page waits at a terminal's reader (a claim), the daemon hands that reader's card reads
and keypad keys to the claim instead of deciding a tap; without a claim nothing changes. One
claim per reader at a time, and a claim lasts seconds: a forgotten page never holds a turnstile.
Keypad keys follow the OSDP reader convention: digits, ``#`` (or CR) ends the entry, ``*`` (or
DEL) clears it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

ENTER = frozenset("#\r")
CLEAR = frozenset("*\x7f")
MAX_KEYS = 12


class ReaderBusy(Exception):
    """Another staff page is already waiting at this reader."""


@dataclass
class Claim:
    terminal: str
    cards: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(maxsize=4))
    entries: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(maxsize=4))
    _keys: list[str] = field(default_factory=list)

    async def card(self) -> str:
        """The next card read at the reader (wrap in ``asyncio.timeout``)."""
        return await self.cards.get()

    async def keypad_entry(self) -> str:
        """The next keypad entry ended with ``#`` (wrap in ``asyncio.timeout``)."""
        return await self.entries.get()

    def _key(self, key: str) -> None:
        if key in ENTER:
            entry, self._keys = "".join(self._keys), []
            with contextlib.suppress(asyncio.QueueFull):
                self.entries.put_nowait(entry)
        elif key in CLEAR:
            self._keys.clear()
        elif len(self._keys) < MAX_KEYS:
            self._keys.append(key)


class ReaderInput:
    """The daemon's readers as seen by staff pages (one object per daemon)."""

    def __init__(self) -> None:
        self._claims: dict[str, Claim] = {}

    @contextlib.asynccontextmanager
    async def claim(self, terminal: str) -> AsyncIterator[Claim]:
        if terminal in self._claims:
            raise ReaderBusy(terminal)
        claim = Claim(terminal)
        self._claims[terminal] = claim
        try:
            yield claim
        finally:
            if self._claims.get(terminal) is claim:
                del self._claims[terminal]

    def claimed(self, terminal: str) -> bool:
        return terminal in self._claims

    def offer_card(self, terminal: str, credential: str) -> bool:
        """Called by the terminal's loop for each card read: True when a page took it (then it
        is no tap)."""
        claim = self._claims.get(terminal)
        if claim is None:
            return False
        with contextlib.suppress(asyncio.QueueFull):
            claim.cards.put_nowait(credential)
        return True

    def offer_keys(self, terminal: str, keys: str) -> bool:
        """Keypad keys read at the terminal's reader; True when a page took them."""
        claim = self._claims.get(terminal)
        if claim is None:
            return False
        for key in keys:
            claim._key(key)
        return True
