"""Contactless desk readers (canteen, library) through PC/SC: pcscd + pyscard.

One :class:`PcscMonitor` watches several readers through one PC/SC context in one dedicated
thread (pyscard blocks; the event loop never does). The thread waits in
``SCardGetStatusChange`` (at most ``wait_ms``) on the configured readers and on pcsc-lite's
``\\\\?PnP?\\Notification`` pseudo-reader, so it wakes at once when a card arrives, leaves,
or a reader is plugged in or out. When a card arrives it connects (shared), sends the PC/SC
GET DATA APDU ``FF CA 00 00 00`` and emits ``UID:<HEX>``; an error status word or a failed
connect is a :class:`~hardware.base.Misread`. The card must leave before it can be read
again, so a card lying on the desk is read once. A card already on a reader when the monitor
starts (or when the reader is plugged in) is *not* read: it was not presented.

Readers are matched by PC/SC name: exactly, or by prefix (pcscd appends `` 00 00``-style
indices, so ``"ACS ACR122U"`` matches ``"ACS ACR122U PICC Interface 00 00"``). A configured
reader missing from the list is offline ("reader not connected"); it comes online when it
appears. If pcscd itself goes away, every reader goes offline and the context is rebuilt with
capped jittered backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hardware.base import CredentialRead, Misread, ReaderEvent, ReaderStatus
from hardware.support import (
    Availability,
    Backoff,
    EventChannel,
    OneTaskDevice,
    ThreadPump,
    run_blocking_cleanup,
)

log = logging.getLogger(__name__)

GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
PNP_READER = "\\\\?PnP?\\Notification"


class PcscError(Exception):
    """The PC/SC service failed (no pcscd, context lost); the owner rebuilds the context."""


@dataclass(frozen=True, slots=True)
class PcscSlot:
    """One configured desk reader."""

    reader_id: str
    name: str  # PC/SC reader name, exact or a prefix


def match_readers(slots: Sequence[PcscSlot], present: Sequence[str]) -> dict[str, str]:
    """reader_id -> PC/SC name of each configured reader now present; a pure function.

    Exact names win over prefixes; a PC/SC reader is given to at most one slot.
    """
    taken: set[str] = set()
    found: dict[str, str] = {}
    for slot in slots:
        if slot.name in present and slot.name not in taken:
            found[slot.reader_id] = slot.name
            taken.add(slot.name)
    for slot in slots:
        if slot.reader_id in found:
            continue
        for name in present:
            if name.startswith(slot.name) and name not in taken:
                found[slot.reader_id] = name
                taken.add(name)
                break
    return found


def uid_from_response(response: Sequence[int]) -> str:
    """``UID:<HEX>`` from the GET DATA response; raises ValueError on an error status."""
    data = bytes(response)
    if len(data) < 3 or data[-2:] != b"\x90\x00":
        status = data[-2:].hex().upper() if len(data) >= 2 else "none"
        raise ValueError(f"GET DATA UID failed, status {status}")
    return f"UID:{data[:-2].hex().upper()}"


class _Watcher:
    """The blocking part, run only in the monitor's thread. ``step`` returns the events of one
    wait (possibly none) and raises :class:`PcscError` when the context is unusable."""

    def __init__(self, slots: Sequence[PcscSlot], wait_ms: int, scard: Any = None) -> None:
        if scard is None:
            from smartcard import scard as pyscard  # optional dependency (extra "pcsc")

            scard = pyscard
        self._sc = scard
        self._slots = list(slots)
        self._wait_ms = wait_ms
        self._ctx: int | None = None
        self._names: dict[str, str | None] = {}  # reader_id -> PC/SC name, None if absent
        self._states: dict[str, int] = {}  # PC/SC name -> last known state
        self._present: dict[str, bool] = {}  # PC/SC name -> a card is on it
        self._pnp_state = 0
        self._pnp = True

    def close(self) -> None:
        if self._ctx is not None:
            self._sc.SCardReleaseContext(self._ctx)
            self._ctx = None

    def _context(self) -> int:
        if self._ctx is None:
            hresult, ctx = self._sc.SCardEstablishContext(self._sc.SCARD_SCOPE_USER)
            if hresult != self._sc.SCARD_S_SUCCESS:
                raise PcscError(f"no PC/SC service ({self._sc.SCardGetErrorMessage(hresult)})")
            self._ctx = ctx
            # pcsc-lite announces reader list changes through a pseudo-reader; others do not.
            probe, _ = self._sc.SCardGetStatusChange(
                ctx, 0, [(PNP_READER, self._sc.SCARD_STATE_UNAWARE)]
            )
            self._pnp = probe != self._sc.SCARD_E_UNKNOWN_READER
        return self._ctx

    def _list(self, ctx: int) -> list[str]:
        hresult, names = self._sc.SCardListReaders(ctx, [])
        if hresult == self._sc.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hresult != self._sc.SCARD_S_SUCCESS:
            raise PcscError(f"listing readers failed ({self._sc.SCardGetErrorMessage(hresult)})")
        return list(names)

    def step(self) -> list[ReaderEvent]:
        sc = self._sc
        ctx = self._context()
        events: list[ReaderEvent] = []
        names = match_readers(self._slots, self._list(ctx))
        for slot in self._slots:
            known = slot.reader_id in self._names
            before, after = self._names.get(slot.reader_id), names.get(slot.reader_id)
            if after is not None and before != after:
                events.append(ReaderStatus(slot.reader_id, True, "reader connected"))
            elif after is None and (before is not None or not known):
                events.append(ReaderStatus(slot.reader_id, False, "reader not connected"))
            if before is not None and before != after:  # unplugged: forget what it showed
                self._states.pop(before, None)
                self._present.pop(before, None)
            self._names[slot.reader_id] = after
        watched = [name for name in self._names.values() if name is not None]
        self._baseline(ctx, [name for name in watched if name not in self._states])
        query = [(name, self._states.get(name, sc.SCARD_STATE_UNAWARE)) for name in watched]
        if self._pnp:
            query.append((PNP_READER, self._pnp_state))
        if not query:
            time.sleep(self._wait_ms / 1000)
            return events
        hresult, results = sc.SCardGetStatusChange(ctx, self._wait_ms, query)
        if hresult == sc.SCARD_E_TIMEOUT:
            return events
        if hresult == sc.SCARD_E_UNKNOWN_READER:
            time.sleep(0.1)  # a reader vanished between the listing and the wait: list again
            return events
        if hresult != sc.SCARD_S_SUCCESS:
            raise PcscError(f"status wait failed ({sc.SCardGetErrorMessage(hresult)})")
        by_name = {name: reader_id for reader_id, name in self._names.items() if name}
        for name, state, _atr in results:
            stable = state & ~sc.SCARD_STATE_CHANGED
            if name == PNP_READER:
                self._pnp_state = stable
                continue
            first_look = name not in self._states
            previous = self._states.get(name, 0)
            self._states[name] = stable
            present = bool(state & sc.SCARD_STATE_PRESENT) and not state & sc.SCARD_STATE_MUTE
            was_present = self._present.get(name, False)
            self._present[name] = present
            # pcsc-lite counts insertions and removals in the upper 16 bits: a card taken off
            # and put back between two waits is still a new presentation.
            swapped = was_present and present and (stable >> 16) != (previous >> 16)
            if present and (swapped or not was_present) and not first_look:
                events.append(self._read_uid(ctx, name, by_name[name]))
        return events

    def _baseline(self, ctx: int, names: list[str]) -> None:
        """Record what newly seen readers show now, before they are announced online, so a
        card already lying there is not taken for a presentation and any card put on after
        the announcement is."""
        if not names:
            return
        sc = self._sc
        hresult, results = sc.SCardGetStatusChange(
            ctx, 0, [(name, sc.SCARD_STATE_UNAWARE) for name in names]
        )
        if hresult != sc.SCARD_S_SUCCESS:
            return  # seen again on the next wait (as a first look)
        for name, state, _atr in results:
            self._states[name] = state & ~sc.SCARD_STATE_CHANGED
            self._present[name] = bool(state & sc.SCARD_STATE_PRESENT)

    def _read_uid(self, ctx: int, name: str, reader_id: str) -> ReaderEvent:
        sc = self._sc
        hresult, card, protocol = sc.SCardConnect(
            ctx, name, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
        )
        if hresult != sc.SCARD_S_SUCCESS:
            return Misread(reader_id, f"card connect failed ({sc.SCardGetErrorMessage(hresult)})")
        try:
            hresult, response = sc.SCardTransmit(card, protocol, GET_UID)
        finally:
            sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)
        if hresult != sc.SCARD_S_SUCCESS:
            return Misread(
                reader_id, f"card removed too early ({sc.SCardGetErrorMessage(hresult)})"
            )
        try:
            credential = uid_from_response(response)
        except ValueError as err:
            return Misread(reader_id, str(err))
        return CredentialRead(reader_id, credential, time.monotonic())


class PcscMonitor(OneTaskDevice):
    _task_prefix = "pcsc"

    """Several PC/SC readers, one thread. A :class:`~hardware.base.Reader` whose events carry
    each configured reader's own ``reader_id``."""

    def __init__(
        self,
        monitor_id: str,
        slots: Sequence[PcscSlot],
        *,
        wait_ms: int = 500,
        stall_timeout: float = 10.0,
        backoff: Backoff | None = None,
        scard: Any = None,
    ) -> None:
        """``scard`` replaces pyscard's ``smartcard.scard`` module (a fake PC/SC stack in
        tests that unplug readers or stop the service); leave it None in production."""
        if not slots:
            raise ValueError("a PC/SC monitor needs at least one reader")
        self.reader_id = monitor_id
        self._scard = scard
        self._slots = list(slots)
        self._wait_ms = wait_ms
        self._stall_timeout = stall_timeout
        self._backoff = backoff or Backoff()
        self._availability = {slot.reader_id: Availability(slot.reader_id) for slot in slots}
        self._events = EventChannel(f"PC/SC {monitor_id}")
        self.misreads = 0

    def is_online(self, reader_id: str) -> bool:
        return self._availability[reader_id].online is True

    def _emit(self, event: ReaderEvent) -> None:
        if isinstance(event, ReaderStatus):
            self._events.put(self._availability[event.reader_id].set(event.online, event.detail))
            return
        if isinstance(event, Misread):
            self.misreads += 1
            log.debug("reader %s misread: %s", event.reader_id, event.detail)
        self._events.put(event)

    def _all_offline(self, detail: str) -> None:
        for availability in self._availability.values():
            self._events.put(availability.set(False, detail))

    async def _run(self) -> None:
        while True:
            try:
                watcher = _Watcher(self._slots, self._wait_ms, self._scard)
            except ImportError:
                self._all_offline("pyscard is not installed")
                await asyncio.sleep(self._backoff.next_delay())
                continue
            reason = await self._pump(watcher)
            self._all_offline(reason)
            await asyncio.sleep(self._backoff.next_delay())

    async def _pump(self, watcher: _Watcher) -> str:
        pump: ThreadPump[list[ReaderEvent]] = ThreadPump(
            f"pcsc-{self.reader_id}", watcher.step, asyncio.get_running_loop()
        )
        pump.start()
        try:
            while True:
                try:
                    async with asyncio.timeout(self._stall_timeout):
                        item = await pump.queue.get()
                except TimeoutError:
                    return "PC/SC wait stalled"
                if isinstance(item, BaseException):
                    return f"PC/SC failed: {item}"
                if any(isinstance(e, ReaderStatus) and e.online for e in item):
                    self._backoff.reset()
                for event in item:
                    self._emit(event)
        finally:
            await pump.stop(join_timeout=self._wait_ms / 1000 + 2)
            await run_blocking_cleanup(watcher.close, f"PC/SC {self.reader_id} context release")
