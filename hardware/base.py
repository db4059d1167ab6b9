"""The small interfaces every driver implements, and the typed events they produce.

A credential is always carried as one normalised string ``PREFIX:VALUE`` (upper case), the same
form the roster and the edge store use, so that a card read on any reader compares equal to the
card bound in the console:

======  =========================================================  ==================
prefix  source                                                     example
======  =========================================================  ==================
EM      125 kHz EM-Marine, 10 decimal digits (32-bit id)            ``EM:0004567891``
W26     Wiegand 26-bit, facility code and card number              ``W26:012:34567``
W34     Wiegand 34-bit, facility code and card number              ``W34:00012:0034567``
WR      other Wiegand lengths, bit count and hex of the raw bits    ``WR:37:1A2B3C4D5``
MS      magnetic stripe ISO 7811 track 2, the PAN digits            ``MS:6001234567890``
UID     contactless UID read over PC/SC or OSDP raw data (hex)      ``UID:04A1B2C3D4E5F6``
======  =========================================================  ==================
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class HardwareError(Exception):
    """A device could not be opened, read or driven."""


class HeldFree(Exception):
    """A release's wait for its passage ended by the fire alarm holding the gate free: whoever
    goes through now cannot be told apart, so the release counts as not passed."""


def normalise_credential(raw: str) -> str:
    """Canonical form of a credential string: trimmed, upper case."""
    return raw.strip().upper()


@dataclass(frozen=True, slots=True)
class CredentialRead:
    """A card (or other credential) presented at a reader."""

    reader_id: str
    credential: str  # normalised PREFIX:VALUE, see the module docstring
    monotonic: float  # time.monotonic() when the driver decoded it


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    """A reader went offline or came back. Offline raises an alarm; online clears it."""

    reader_id: str
    online: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Misread:
    """Bytes arrived that were not a valid credential (bad checksum, bad LRC, half frame)."""

    reader_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class KeypadKeys:
    """Keys pressed on a reader's keypad (OSDP keypad data), as ASCII: digits, ``#`` (enter)
    and ``*`` (clear). A PIN typed here never appears in a log."""

    reader_id: str
    keys: str

    def __repr__(self) -> str:  # keep typed PINs out of logs and tracebacks
        return f"KeypadKeys(reader_id={self.reader_id!r}, keys=<{len(self.keys)}>)"


ReaderEvent = CredentialRead | ReaderStatus | Misread | KeypadKeys


class PassageResult(enum.StrEnum):
    PASSED = "passed"
    NOT_PASSED = "not_passed"  # released, but nobody went through before the timeout
    UNKNOWN = "unknown"  # the gate has no passage sensor


@runtime_checkable
class Transport(Protocol):
    """A byte stream: a serial port, a pty, a socket. ``read`` must not block for long."""

    def read(self, size: int) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def flush(self) -> None: ...


class Reader(Protocol):
    """One owner per device: an async context manager that yields typed events."""

    reader_id: str

    async def __aenter__(self) -> Reader: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def events(self) -> AsyncIterator[ReaderEvent]: ...


class Feedback(Protocol):
    """What a reader shows the person in front of it (LED colour, buzzer)."""

    async def show(self, granted: bool) -> None: ...


@runtime_checkable
class AlarmIndicator(Protocol):
    """A reader that can show an alarm between taps (its LED's idle state, a short beep)."""

    async def indicate(self, alarm: bool, beep: bool) -> None: ...


class Gate(Protocol):
    """A turnstile or door that can be released once, with an optional passage sensor."""

    async def release(self, passage_timeout: float) -> PassageResult: ...


@runtime_checkable
class FreeGate(Protocol):
    """A gate the fire alarm can hold free (released until told otherwise)."""

    async def hold_open(self, free: bool) -> None: ...
