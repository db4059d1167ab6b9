"""Magnetic stripe readers, ISO/IEC 7811 track 2, as ``MS:<PAN>`` credentials.

Track 2 carries 5-bit characters (4 data bits + odd parity); readers in ASCII mode send each
as ``0x30 + value``, so the alphabet is ``0-9 : ; < = > ?``. A swipe is::

    ;  PAN (up to 19 digits)  =  expiry, service code, discretionary data  ?  LRC

``;`` is the start sentinel, ``=`` the field separator, ``?`` the end sentinel. The LRC
character is the XOR of the 4-bit values of every character from ``;`` to ``?`` inclusive,
sent as ``0x30 + lrc``. Serial (RS-232 / USB-COM) readers send the whole swipe including the
LRC, ended by CR (often CR LF, sometimes inside STX/ETX): :func:`magstripe_reader` reads them
through :class:`hardware.serial_reader.SerialLineReader` and requires the LRC. Keyboard-wedge
readers type the text between the sentinels and usually drop the LRC (they checked it
themselves): :class:`KeyboardWedgeMagstripeReader` consumes such text lines from any async line
source (the kiosk page, an evdev reader...) and checks the LRC only when one is present.

A bad LRC, a missing sentinel or a character outside the alphabet is a
:class:`~hardware.base.Misread`, never an unknown card.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from hardware.base import CredentialRead, Misread, normalise_credential
from hardware.serial_reader import FrameError, SerialLineReader, TransportFactory
from hardware.support import EventChannel, OneTaskDevice

log = logging.getLogger(__name__)

TRACK2_ALPHABET = frozenset("0123456789:;<=>?")
MAX_PAN = 19


def track2_lrc(text: str) -> str:
    """The LRC character of the track 2 characters ``;...?`` in ``text``."""
    lrc = 0
    for char in text:
        lrc ^= ord(char) - 0x30
    return chr(0x30 + lrc)


def track2_swipe(pan: str, extra: str = "2512101", *, lrc: bool = True) -> str:
    """The text a reader sends for a card (for simulators and tests)."""
    body = f";{pan}={extra}?"
    return body + track2_lrc(body) if lrc else body


def decode_track2_text(text: str, *, require_lrc: bool) -> str:
    """``MS:<PAN>`` from a track 2 swipe; raises :class:`FrameError` (no card digits in it)."""
    text = text.strip()
    start = text.find(";")
    if start < 0:
        raise FrameError("track 2 start sentinel missing")
    end = text.find("?", start)
    if end < 0:
        raise FrameError("track 2 end sentinel missing")
    if text[:start].strip():
        raise FrameError("bytes before the track 2 start sentinel")
    body = text[start : end + 1]
    tail = text[end + 1 :]
    if any(char not in TRACK2_ALPHABET for char in body):
        raise FrameError("character outside the track 2 alphabet")
    if len(tail) > 1:
        raise FrameError("bytes after the track 2 LRC")
    if tail:
        if tail not in TRACK2_ALPHABET or tail != track2_lrc(body):
            raise FrameError("track 2 LRC mismatch")
    elif require_lrc:
        raise FrameError("track 2 LRC missing")
    pan = body[1:-1].split("=", 1)[0]
    if not pan or not pan.isdigit() or len(pan) > MAX_PAN:
        raise FrameError("track 2 PAN malformed")
    return f"MS:{pan}"


def decode_track2(payload: bytes, framed: bool) -> str:
    """Decoder for :class:`SerialLineReader`: a serial swipe, LRC required."""
    del framed
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as err:
        raise FrameError("non-ASCII payload") from err
    return decode_track2_text(text, require_lrc=True)


def magstripe_reader(
    reader_id: str, transport_factory: TransportFactory, **kwargs: Any
) -> SerialLineReader:
    """A serial magnetic stripe reader (track 2 with LRC, one swipe per line)."""
    return SerialLineReader(reader_id, transport_factory, decode_track2, **kwargs)


LineSource = Callable[[], AsyncIterator[str]]


class KeyboardWedgeMagstripeReader(OneTaskDevice):
    _task_prefix = "wedge-reader"

    """A keyboard-wedge magstripe reader: each text line from ``line_source()`` is one swipe.

    ``line_source`` is called again (after ``restart_delay``) if its iterator ends or fails, so
    a source tied to a device node can be reopened.
    """

    def __init__(
        self,
        reader_id: str,
        line_source: LineSource,
        *,
        require_lrc: bool = False,
        restart_delay: float = 1.0,
    ) -> None:
        self.reader_id = reader_id
        self._source = line_source
        self._require_lrc = require_lrc
        self._restart_delay = restart_delay
        self._events = EventChannel(f"reader {reader_id}")
        self.misreads = 0
        self.reads = 0

    def handle_line(self, line: str) -> None:
        """Decode one swipe line and emit its event."""
        if not line.strip():
            return
        try:
            credential = decode_track2_text(line, require_lrc=self._require_lrc)
        except FrameError as err:
            self.misreads += 1
            log.debug("reader %s misread: %s", self.reader_id, err)
            self._events.put(Misread(self.reader_id, str(err)))
            return
        self.reads += 1
        self._events.put(
            CredentialRead(self.reader_id, normalise_credential(credential), time.monotonic())
        )

    async def _run(self) -> None:
        while True:
            try:
                async for line in self._source():
                    self.handle_line(line)
            except OSError as err:
                log.warning("reader %s line source failed: %s", self.reader_id, type(err).__name__)
            await asyncio.sleep(self._restart_delay)
