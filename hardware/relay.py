"""Doors and turnstiles not driven through OSDP: a USB/serial relay board.

Protocol: the widespread "LCUS" USB relay boards (LCUS-1, LCUS-2, LCUS-4, LCUS-8 on a CH340
USB-serial chip, 9600 8N1). Every command is 4 bytes and the board sends no reply::

    A0  <channel>  <state>  <checksum>

``channel`` counts from 1, ``state`` is 01 (contact closed, "on") or 00 (open, "off"), and
``checksum`` is the low byte of ``A0 + channel + state``: ``A0 01 01 A2`` switches relay 1 on,
``A0 01 00 A1`` switches it off. Boards with a status query (``FF``) exist but are not relied
on. Because there is no acknowledgement, a release is only as certain as the write to the
port; a failed write is retried once on a reopened port and otherwise raises HardwareError.

:class:`RelayGate` pulses one channel for ``pulse_ms`` (the turnstile controller or door
strike takes a dry contact pulse) and returns ``PassageResult.UNKNOWN``, unless a
:class:`PassageSensor` is given, in which case it waits up to ``passage_timeout`` for it:
``PASSED`` or ``NOT_PASSED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from hardware.base import HardwareError, PassageResult, Transport
from hardware.serial_reader import close_quietly
from hardware.support import run_blocking_cleanup

log = logging.getLogger(__name__)

HEAD = 0xA0
IO_TIMEOUT = 2.0


def lcus_command(channel: int, on: bool) -> bytes:
    """The 4-byte LCUS command for one relay channel (1-based)."""
    if not 1 <= channel <= 8:
        raise ValueError("LCUS boards have channels 1..8")
    state = 1 if on else 0
    return bytes([HEAD, channel, state, (HEAD + channel + state) & 0xFF])


def parse_lcus(data: bytes) -> tuple[list[tuple[int, bool]], int]:
    """(channel, on) commands found in ``data`` and the count of bytes skipped as invalid.

    A pure function for the simulator and tests; resynchronises on the next ``A0``.
    """
    commands: list[tuple[int, bool]] = []
    skipped = 0
    i = 0
    while i < len(data):
        chunk = data[i : i + 4]
        if (
            len(chunk) == 4
            and chunk[0] == HEAD
            and 1 <= chunk[1] <= 8
            and chunk[2] in (0, 1)
            and chunk[3] == (chunk[0] + chunk[1] + chunk[2]) & 0xFF
        ):
            commands.append((chunk[1], chunk[2] == 1))
            i += 4
        else:
            skipped += 1
            i += 1
    return commands, skipped


class PassageSensor(Protocol):
    """Something that tells whether a person went through after a release."""

    async def wait_passage(self, within: float) -> bool: ...


TransportFactory = Callable[[], Transport]


class RelayGate:
    """A gate released by pulsing a relay channel. An async context manager owning the port."""

    def __init__(
        self,
        gate_id: str,
        transport_factory: TransportFactory,
        *,
        channel: int = 1,
        pulse_ms: int = 500,
        sensor: PassageSensor | None = None,
    ) -> None:
        lcus_command(channel, True)  # validates the channel
        self.gate_id = gate_id
        self._factory = transport_factory
        self._channel = channel
        self._pulse = pulse_ms / 1000
        self._sensor = sensor
        self._transport: Transport | None = None
        self._lock = asyncio.Lock()
        self._failed = False
        self._held_free = asyncio.Event()  # set while the fire alarm holds the gate free

    @property
    def held(self) -> bool:
        """Held free by the fire alarm."""
        return self._held_free.is_set()

    async def __aenter__(self) -> RelayGate:
        # A board missing at start is reported once by _open; release() tries again.
        with contextlib.suppress(HardwareError):
            await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _open(self) -> Transport:
        try:
            async with asyncio.timeout(IO_TIMEOUT):
                transport = await asyncio.to_thread(self._factory)
        except (OSError, TimeoutError) as err:
            self._mark_failed(f"cannot open relay port ({type(err).__name__})")
            raise HardwareError(f"relay {self.gate_id}: cannot open port") from err
        self._transport = transport
        return transport

    async def _close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await run_blocking_cleanup(
                lambda: close_quietly(transport), f"relay {self.gate_id} port close"
            )

    def _mark_failed(self, detail: str) -> None:
        if not self._failed:
            log.warning("relay %s unavailable: %s", self.gate_id, detail)
            self._failed = True

    def _mark_ok(self) -> None:
        if self._failed:
            log.info("relay %s available again", self.gate_id)
            self._failed = False

    @property
    def available(self) -> bool:
        return not self._failed

    async def _send(self, frame: bytes) -> None:
        for attempt in (1, 2):
            transport = self._transport or await self._open()

            def write(t: Transport = transport) -> None:
                t.write(frame)
                t.flush()

            try:
                async with asyncio.timeout(IO_TIMEOUT):
                    await asyncio.to_thread(write)
            except (OSError, TimeoutError) as err:
                self._mark_failed(f"write failed ({type(err).__name__})")
                await self._close()
                if attempt == 2:
                    raise HardwareError(f"relay {self.gate_id}: write failed") from err
                continue
            self._mark_ok()
            return

    async def hold_open(self, free: bool) -> None:
        """Hold the contact closed (turnstile free: the fire alarm) or open it again. Not
        behind a release under way (it may wait seconds for a passage): a 4-byte frame of its
        own, and the release then leaves the contact as it is."""
        if free:
            self._held_free.set()  # a release waiting for its passage ends, not passed
        else:
            self._held_free.clear()
        await self._send(lcus_command(self._channel, free))

    async def release(self, passage_timeout: float) -> PassageResult:
        if self.held:
            return PassageResult.UNKNOWN  # held free (evacuation): already open
        async with self._lock:
            passage: asyncio.Task[bool] | None = None
            if self._sensor is not None:
                passage = asyncio.create_task(
                    self._sensor.wait_passage(passage_timeout), name=f"relay-{self.gate_id}-sensor"
                )
            try:
                await self._send(lcus_command(self._channel, True))
                try:
                    await asyncio.sleep(self._pulse)
                finally:
                    # Always let go of the contact, even when cancelled mid-pulse (unless the
                    # fire alarm holds it closed meanwhile).
                    if not self.held:
                        await asyncio.shield(self._send(lcus_command(self._channel, False)))
                if passage is None:
                    return PassageResult.UNKNOWN
                held = asyncio.ensure_future(self._held_free.wait())
                try:
                    async with asyncio.timeout(passage_timeout + IO_TIMEOUT):
                        await asyncio.wait((passage, held), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    held.cancel()
                if not passage.done():
                    # Held free by the fire alarm before a passage: from here on anyone may
                    # walk through, and a passage can no longer be told apart (the person who
                    # tapped stays on the evacuation list).
                    return PassageResult.NOT_PASSED
                return PassageResult.PASSED if passage.result() else PassageResult.NOT_PASSED
            finally:
                if passage is not None and not passage.done():
                    passage.cancel()
