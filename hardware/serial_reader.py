"""Serial card readers that send ASCII text: 125 kHz EM-Marine readers and Wiegand-to-serial
converters (and, through :mod:`hardware.magstripe`, magnetic stripe readers).

Framing (both are accepted on the same line, see :class:`Framer`):

* ``STX (0x02) payload ETX (0x03)``: the RDM6300 / EM4100 module format. The payload is
  10 hex digits of data (1 version/customer byte + the 32-bit card id) followed by 2 hex digits
  of checksum, the XOR of the 5 data bytes; CR/LF inside the frame are ignored.
  ``02 "0A0045B353" "AF" 03`` is ``EM:0004567891``.
* A text line ended by CR and/or LF (USB "virtual COM" desk readers): 10 decimal digits, the
  32-bit id as printed on the card (``0004567891``), or the ``FFF,CCCCC`` form (8-bit high part,
  16-bit low part of the id) printed on many EM cards. No checksum exists in this form.

Wiegand-to-serial converters (the common RS-232/USB "Wiegand to ASCII" boxes) are configured
to send one line per read: ``W<bits>:<HEX>`` (also ``<bits>:<HEX>``, or a space or comma instead
of ``:``), where HEX is the raw Wiegand frame including the parity bits, right-aligned, e.g.
``W26:2F6E1A5`` (optionally inside STX/ETX). 26 and 34 bit frames are parity-checked and
decoded to ``W26``/``W34``; other lengths become ``WR`` (see :mod:`hardware.wiegand`).

Anything else (noise, half frames, bad checksums, overlong lines) is dropped, counted in
:attr:`SerialLineReader.misreads` and reported as a :class:`~hardware.base.Misread`; the task
never dies on bad input. A port that disappears or fails to read is closed and reopened with
capped jittered backoff, and availability flips through ``ReaderStatus`` (logged once each way).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hardware import wiegand
from hardware.base import CredentialRead, Misread, Transport, normalise_credential
from hardware.support import (
    Availability,
    Backoff,
    EventChannel,
    OneTaskDevice,
    ThreadPump,
    run_blocking_cleanup,
)

log = logging.getLogger(__name__)

STX = 0x02
ETX = 0x03
MAX_FRAME = 96  # longest legitimate payload (a track 2 is 40 characters) with room to spare


class FrameError(ValueError):
    """A complete frame arrived but is not a valid credential. The message is safe to log:
    it never contains the card number."""


@dataclass(frozen=True, slots=True)
class Frame:
    payload: bytes
    framed: bool  # True for STX..ETX, False for a CR/LF line


@dataclass(frozen=True, slots=True)
class Garbage:
    detail: str


class Framer:
    """Splits a byte stream into STX..ETX frames and CR/LF lines; a pure state machine.

    A new STX abandons a half frame (reported as garbage), bytes that are neither printable
    ASCII nor framing are garbage, an overlong frame or line is garbage. Empty lines are skipped
    silently (CR LF pairs).
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._in_stx = False
        self._max = max_frame
        self._bad = 0  # garbage bytes seen since the last report

    def feed(self, data: bytes) -> Iterator[Frame | Garbage]:
        for byte in data:
            yield from self._byte(byte)

    def _flush_bad(self) -> Iterator[Garbage]:
        if self._bad:
            yield Garbage(f"{self._bad} stray bytes")
            self._bad = 0

    def _byte(self, byte: int) -> Iterator[Frame | Garbage]:
        if byte == STX:
            if self._in_stx or self._buf:
                yield Garbage("half frame dropped at STX")
            yield from self._flush_bad()
            self._buf.clear()
            self._in_stx = True
        elif byte == ETX:
            if not self._in_stx:
                self._bad += 1
                return
            self._in_stx = False
            payload = bytes(self._buf).replace(b"\r", b"").replace(b"\n", b"")
            self._buf.clear()
            yield from self._flush_bad()
            yield Frame(payload, framed=True)
        elif byte in (0x0D, 0x0A):
            if self._in_stx:
                return  # some modules put CR LF before ETX
            if self._buf:
                payload = bytes(self._buf)
                self._buf.clear()
                yield from self._flush_bad()
                yield Frame(payload, framed=False)
        elif 0x20 <= byte < 0x7F:
            if len(self._buf) >= self._max:
                self._buf.clear()
                self._in_stx = False
                yield Garbage("overlong frame dropped")
                return
            self._buf.append(byte)
        else:
            self._bad += 1
            if self._bad >= self._max:
                yield from self._flush_bad()


def _ascii(payload: bytes) -> str:
    try:
        return payload.decode("ascii").strip()
    except UnicodeDecodeError as err:
        raise FrameError("non-ASCII payload") from err


def em_checksum(data: bytes) -> int:
    """The XOR of the data bytes (EM4100 ASCII module checksum)."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def em_frame(card_id: int, version: int = 0) -> bytes:
    """The STX..ETX frame an EM module sends for ``card_id`` (used by simulators and tests)."""
    data = bytes([version]) + card_id.to_bytes(4, "big")
    return b"\x02" + f"{data.hex().upper()}{em_checksum(data):02X}".encode() + b"\x03"


_DEC10 = re.compile(r"\d{10}")
_COMMA = re.compile(r"(\d{1,3}),(\d{1,5})")
_HEX12 = re.compile(r"[0-9A-Fa-f]{12}")


def decode_em(payload: bytes, framed: bool) -> str:
    """Credential of one EM-Marine frame or line; raises :class:`FrameError`."""
    text = _ascii(payload)
    if framed:
        if not _HEX12.fullmatch(text):
            raise FrameError(f"EM frame of {len(text)} characters, expected 12 hex digits")
        raw = bytes.fromhex(text)
        data, checksum = raw[:5], raw[5]
        if em_checksum(data) != checksum:
            raise FrameError("EM checksum mismatch")
        return f"EM:{int.from_bytes(data[1:], 'big'):010d}"
    if _DEC10.fullmatch(text):
        value = int(text)
        if value >> 32:
            raise FrameError("EM number does not fit in 32 bits")
        return f"EM:{value:010d}"
    match = _COMMA.fullmatch(text)
    if match:
        high, low = int(match.group(1)), int(match.group(2))
        if high > 0xFF or low > 0xFFFF:
            raise FrameError("EM FFF,CCCCC out of range")
        return f"EM:{(high << 16) | low:010d}"
    raise FrameError(f"unrecognised EM line of {len(text)} characters")


_WIEGAND_LINE = re.compile(r"W?(\d{1,3})[:, ]([0-9A-Fa-f]{1,64})", re.IGNORECASE)


def decode_wiegand_line(payload: bytes, framed: bool) -> str:
    """Credential of one Wiegand-to-serial converter line; raises :class:`FrameError`."""
    del framed  # the same text inside STX/ETX or as a line
    text = _ascii(payload)
    match = _WIEGAND_LINE.fullmatch(text)
    if not match:
        raise FrameError(f"unrecognised Wiegand line of {len(text)} characters")
    try:
        frame = wiegand.WiegandFrame(int(match.group(1)), int(match.group(2), 16))
        return wiegand.decode(frame)
    except wiegand.WiegandError as err:
        raise FrameError(str(err)) from err


Decoder = Callable[[bytes, bool], str]
TransportFactory = Callable[[], Transport]


def serial_port_factory(
    port: str, baudrate: int = 9600, read_timeout: float = 0.2
) -> TransportFactory:
    """A factory opening a real (or pty) serial port with pyserial, non-exclusive 8N1."""
    import serial  # imported here so the parsers above import without pyserial

    def open_port() -> Transport:
        port_: Transport = serial.Serial(port, baudrate, timeout=read_timeout)
        return port_

    return open_port


def close_quietly(transport: Any) -> None:
    close = getattr(transport, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:  # closing a port that vanished can fail; nothing more to do
        log.debug("close failed", exc_info=True)


class SerialLineReader(OneTaskDevice):
    _task_prefix = "serial-reader"

    """One serial reader that sends text frames; owner of its port.

    ``transport_factory`` opens the port (pyserial ``Serial`` or anything with read / write /
    flush whose ``read`` returns within a fraction of a second); it is called again after every
    failure. ``decoder`` turns a frame into a credential string (``decode_em``,
    ``decode_wiegand_line``, ``hardware.magstripe.decode_track2``...).
    """

    def __init__(
        self,
        reader_id: str,
        transport_factory: TransportFactory,
        decoder: Decoder,
        *,
        read_size: int = 256,
        open_timeout: float = 5.0,
        stall_timeout: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.reader_id = reader_id
        self._factory = transport_factory
        self._decoder = decoder
        self._read_size = read_size
        self._open_timeout = open_timeout
        self._stall_timeout = stall_timeout
        self._backoff = backoff or Backoff()
        self._availability = Availability(reader_id)
        self._events = EventChannel(f"reader {reader_id}")
        self.misreads = 0  # frames dropped as invalid since start
        self.reads = 0  # credentials decoded since start
        self.reopens = 0  # successful port openings after the first

    async def _open(self) -> Transport | None:
        try:
            async with asyncio.timeout(self._open_timeout):
                return await asyncio.to_thread(self._factory)
        except (OSError, TimeoutError) as err:  # serial.SerialException is an OSError
            self._events.put(
                self._availability.set(False, f"cannot open port ({type(err).__name__})")
            )
            return None

    async def _run(self) -> None:
        opened_before = False
        while True:
            transport = await self._open()
            if transport is None:
                await asyncio.sleep(self._backoff.next_delay())
                continue
            if opened_before:
                self.reopens += 1
            opened_before = True
            self._events.put(self._availability.set(True, "port open"))
            try:
                reason = await self._pump(transport)
            finally:
                await run_blocking_cleanup(
                    functools.partial(close_quietly, transport),
                    f"reader {self.reader_id} port close",
                )
            self._events.put(self._availability.set(False, reason))
            await asyncio.sleep(self._backoff.next_delay())

    async def _pump(self, transport: Transport) -> str:
        """Read and decode until the port fails; returns why it stopped."""
        size = self._read_size
        pump: ThreadPump[bytes] = ThreadPump(
            f"serial-{self.reader_id}", lambda: transport.read(size), asyncio.get_running_loop()
        )
        framer = Framer()
        pump.start()
        stable = False
        opened_at = time.monotonic()
        try:
            while True:
                try:
                    # Reads return at least every read timeout (empty when idle): silence
                    # longer than the stall timeout means the thread is stuck in the driver.
                    async with asyncio.timeout(self._stall_timeout):
                        item = await pump.queue.get()
                except TimeoutError:
                    return "port read stalled"
                if isinstance(item, BaseException):
                    return f"port read failed ({type(item).__name__})"
                if not stable and (item or time.monotonic() - opened_at > 10.0):
                    stable = True  # data flowed or the port stayed up: forget past failures
                    self._backoff.reset()
                for piece in framer.feed(item):
                    self._handle(piece)
        finally:
            await pump.stop()

    def _handle(self, piece: Frame | Garbage) -> None:
        if isinstance(piece, Garbage):
            self._misread(piece.detail)
            return
        try:
            credential = self._decoder(piece.payload, piece.framed)
        except FrameError as err:
            self._misread(str(err))
            return
        self.reads += 1
        self._events.put(
            CredentialRead(self.reader_id, normalise_credential(credential), time.monotonic())
        )

    def _misread(self, detail: str) -> None:
        self.misreads += 1
        log.debug("reader %s misread: %s", self.reader_id, detail)
        self._events.put(Misread(self.reader_id, detail))


def em_marine_reader(
    reader_id: str, transport_factory: TransportFactory, **kwargs: Any
) -> SerialLineReader:
    """A 125 kHz EM-Marine ASCII reader (STX/ETX with XOR checksum, or decimal lines)."""
    return SerialLineReader(reader_id, transport_factory, decode_em, **kwargs)


def wiegand_serial_reader(
    reader_id: str, transport_factory: TransportFactory, **kwargs: Any
) -> SerialLineReader:
    """A Wiegand-to-serial converter sending ``W<bits>:<HEX>`` lines."""
    return SerialLineReader(reader_id, transport_factory, decode_wiegand_line, **kwargs)
