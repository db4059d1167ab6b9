"""Staff PINs at the edge: a keyed verifier and the rate limit of wrong entries (pure).

The centre never holds a PIN or a hash of one: a new PIN reaches the school sealed to its edges'
keys (``protocol.sealing``) and the edge keeps only ``HMAC-SHA256(key, staff id, PIN)``, with the
key in a file only the daemon reads (like the face key). A stolen store alone does not give the
PINs: without the key, a 4-6 digit PIN cannot be guessed offline.

Wrong entries are limited per staff member: a few are free (typing mistakes), then each one
doubles the wait, and after ``lockout_after`` failures in a row the PIN is locked until the
school admin sets a new one from the console."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

KEY_BYTES = 32
PIN_MIN, PIN_MAX = 4, 6


class PinKeyError(Exception):
    """The verifier key file cannot be created or read, or is readable by others."""


def valid_pin(pin: str) -> bool:
    """4 to 6 ASCII digits."""
    return PIN_MIN <= len(pin) <= PIN_MAX and pin.isascii() and pin.isdigit()


def verifier(key: bytes, staff_id: str, pin: str) -> str:
    """The keyed verifier of ``pin`` for ``staff_id`` (hex)."""
    msg = b"qaqpa-staff-pin\x00" + staff_id.encode() + b"\x00" + pin.encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def pin_matches(key: bytes, staff_id: str, pin: str, stored: str) -> bool:
    if not stored or not valid_pin(pin):
        return False
    return hmac.compare_digest(verifier(key, staff_id, pin), stored)


def load_pin_key(path: Path) -> bytes:
    """The verifier key, created (0600, 32 random bytes) when the file is absent. A key file
    other users can read is refused: whoever reads it could test PINs offline. Blocking."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PinKeyError(f"{path}: readable by other users (mode {oct(mode & 0o777)}): chmod 600")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise PinKeyError(f"{path}: expected {KEY_BYTES} bytes, found {len(key)}")
    return key


@dataclass(frozen=True, slots=True)
class PinRule:
    """How wrong PINs of one staff member slow the next attempts."""

    free: int = 3  # wrong entries before any delay
    base_s: float = 2.0  # the first delay; each further failure doubles it
    cap_s: float = 300.0
    lockout_after: int = 10  # in a row: locked until a new PIN is set from the console


def pin_delay_s(failures: int, rule: PinRule) -> float:
    """Seconds to wait after the ``failures``-th wrong entry in a row (0 within the free ones)."""
    if failures < rule.free:
        return 0.0
    return min(rule.cap_s, rule.base_s * 2.0 ** min(failures - rule.free, 32))


def locked(failures: int, rule: PinRule) -> bool:
    return failures >= rule.lockout_after
