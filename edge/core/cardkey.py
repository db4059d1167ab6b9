"""How a card number is kept in the school's store: a keyed hash (HMAC-SHA-256 under the school's
card key, a file only the daemon reads), so a copied store file does not give away the numbers.
Without a key (a store opened by a tool or a test without one) the number is kept as it is. Pure."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

PREFIX = "h1:"  # a keyed hash; numbers are upper case ("EM:..."), so the two never collide

CardKeyOf = Callable[[str], str]


def plain(credential: str) -> str:
    """The number as readers and rosters write it, normalised (no key)."""
    return credential.strip().upper()


def keyed(key: bytes) -> CardKeyOf:
    """The store key of a number under ``key``: ``h1:`` and the HMAC-SHA-256 in hex."""

    def key_of(credential: str) -> str:
        mac = hmac.new(key, plain(credential).encode("utf-8"), hashlib.sha256)
        return PREFIX + mac.hexdigest()

    return key_of


def is_keyed(stored: str) -> bool:
    return stored.startswith(PREFIX)
