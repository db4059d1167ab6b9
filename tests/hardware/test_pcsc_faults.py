"""PC/SC faults that vpcd cannot produce (its readers are fixed): a reader unplugged and
plugged back, and the PC/SC service going away. The monitor runs in its real thread against a
small fake of pyscard's ``smartcard.scard`` module that keeps pcsc-lite's semantics (PnP
pseudo-reader, event counter in the upper 16 bits, SCARD_E_NO_SERVICE)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from hardware.base import CredentialRead, ReaderStatus
from hardware.pcsc import PNP_READER, PcscMonitor, PcscSlot
from hardware.support import Backoff
from tests.support.hardware import EventLog

S_SUCCESS = 0
E_TIMEOUT = 0x8010000A
E_NO_SERVICE = 0x8010001D
E_NO_READERS = 0x8010002E
E_UNKNOWN_READER = 0x80100009
E_NO_SMARTCARD = 0x8010000C
STATE_UNAWARE, STATE_CHANGED, STATE_UNKNOWN = 0x0, 0x2, 0x4
STATE_EMPTY, STATE_PRESENT, STATE_MUTE = 0x10, 0x20, 0x200


class FakeScard:
    """pcsc-lite as pyscard shows it, with readers and cards under the test's control."""

    SCARD_S_SUCCESS = S_SUCCESS
    SCARD_E_TIMEOUT = E_TIMEOUT
    SCARD_E_NO_READERS_AVAILABLE = E_NO_READERS
    SCARD_E_UNKNOWN_READER = E_UNKNOWN_READER
    SCARD_SCOPE_USER = 0
    SCARD_STATE_UNAWARE = STATE_UNAWARE
    SCARD_STATE_CHANGED = STATE_CHANGED
    SCARD_STATE_PRESENT = STATE_PRESENT
    SCARD_STATE_MUTE = STATE_MUTE
    SCARD_SHARE_SHARED = 2
    SCARD_PROTOCOL_T0 = 1
    SCARD_PROTOCOL_T1 = 2
    SCARD_LEAVE_CARD = 0

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.readers: dict[str, bytes | None] = {}  # name -> UID of the card on it
        self.counts: dict[str, int] = {}
        self.list_version = 0
        self.service = True

    # --- the test's controls
    def plug(self, name: str) -> None:
        with self.cond:
            self.readers[name] = None
            self.counts.setdefault(name, 0)
            self.list_version += 1
            self.cond.notify_all()

    def unplug(self, name: str) -> None:
        with self.cond:
            del self.readers[name]
            self.list_version += 1
            self.cond.notify_all()

    def put(self, name: str, uid: bytes | None) -> None:
        with self.cond:
            self.readers[name] = uid
            self.counts[name] += 1
            self.cond.notify_all()

    def set_service(self, up: bool) -> None:
        with self.cond:
            self.service = up
            self.cond.notify_all()

    # --- pyscard's API
    def SCardGetErrorMessage(self, hresult: int) -> str:
        return f"error {hresult:#x}"

    def SCardEstablishContext(self, scope: int) -> tuple[int, int]:
        with self.cond:
            return (S_SUCCESS, 1) if self.service else (E_NO_SERVICE, 0)

    def SCardReleaseContext(self, ctx: int) -> int:
        return S_SUCCESS

    def SCardListReaders(self, ctx: int, groups: list[str]) -> tuple[int, list[str]]:
        with self.cond:
            if not self.service:
                return E_NO_SERVICE, []
            return (S_SUCCESS, sorted(self.readers)) if self.readers else (E_NO_READERS, [])

    def _state(self, name: str) -> int:
        if name == PNP_READER:
            return self.list_version << 16
        if name not in self.readers:
            return STATE_UNKNOWN
        present = STATE_PRESENT if self.readers[name] is not None else STATE_EMPTY
        return present | (self.counts[name] << 16)

    def SCardGetStatusChange(
        self, ctx: int, timeout_ms: int, query: list[tuple[str, int]]
    ) -> tuple[int, list[tuple[str, int, list[int]]]]:
        with self.cond:

            def changed() -> bool:
                return not self.service or any(
                    (self._state(n) & ~STATE_CHANGED) != (s & ~STATE_CHANGED) for n, s in query
                )

            if not self.cond.wait_for(changed, timeout_ms / 1000):
                return E_TIMEOUT, []
            if not self.service:
                return E_NO_SERVICE, []
            out = []
            for name, known in query:
                now = self._state(name)
                flag = STATE_CHANGED if (now & ~STATE_CHANGED) != (known & ~STATE_CHANGED) else 0
                out.append((name, now | flag, []))
            return S_SUCCESS, out

    def SCardConnect(self, ctx: int, name: str, share: int, protocols: int) -> tuple[int, int, int]:
        with self.cond:
            if self.readers.get(name) is None:
                return E_NO_SMARTCARD, 0, 0
            self._connected = name
            return S_SUCCESS, 7, 2

    def SCardTransmit(self, card: int, protocol: int, apdu: list[int]) -> tuple[int, list[int]]:
        with self.cond:
            uid = self.readers.get(self._connected)
        if uid is None:
            return E_NO_SMARTCARD, []
        return S_SUCCESS, [*uid, 0x90, 0x00]

    def SCardDisconnect(self, card: int, disposition: int) -> int:
        return S_SUCCESS


def _status(online: bool) -> Any:
    return lambda e: isinstance(e, ReaderStatus) and e.reader_id == "desk-1" and e.online is online


async def test_reader_unplugged_and_replugged_and_service_restart() -> None:
    fake = FakeScard()
    fake.plug("ACME Reader 00 00")
    monitor = PcscMonitor(
        "desk",
        [PcscSlot("desk-1", "ACME Reader")],
        wait_ms=300,
        backoff=Backoff(base=0.1, cap=0.3),
        scard=fake,
    )
    log = EventLog()
    async with monitor, asyncio.TaskGroup() as tg:
        consumer = tg.create_task(log.consume(monitor.events()))
        await log.wait_for(_status(True), 5)
        fake.put("ACME Reader 00 00", b"\x01\x02\x03\x04")
        await log.wait_for(lambda e: isinstance(e, CredentialRead), 5)

        # unplugged with the card on it, plugged back (new index) with the card still there
        fake.unplug("ACME Reader 00 00")
        gone = await log.wait_for(_status(False), 5)
        assert "not connected" in gone.detail  # type: ignore[union-attr]
        mark = len(log.events)
        fake.plug("ACME Reader 00 01")
        fake.put("ACME Reader 00 01", b"\x01\x02\x03\x04")
        await log.wait_for(_status(True), 5, start=mark)
        fake.put("ACME Reader 00 01", None)
        fake.put("ACME Reader 00 01", b"\x0a\x0b")
        await log.wait_for(
            lambda e: isinstance(e, CredentialRead) and e.credential == "UID:0A0B", 5
        )

        # pcscd stops: offline; it comes back: online, and cards read again
        fake.set_service(False)
        mark = len(log.events)
        down = await log.wait_for(_status(False), 5, start=mark)
        assert "PC/SC" in down.detail or "service" in down.detail  # type: ignore[union-attr]
        fake.set_service(True)
        await log.wait_for(_status(True), 5, start=mark)
        fake.put("ACME Reader 00 01", None)
        fake.put("ACME Reader 00 01", b"\xcc")
        await log.wait_for(lambda e: isinstance(e, CredentialRead) and e.credential == "UID:CC", 5)
        consumer.cancel()
    reads = [e.credential for e in log.of_type(CredentialRead)]  # type: ignore[union-attr]
    assert reads == ["UID:01020304", "UID:0A0B", "UID:CC"]  # the replugged card: no read
    assert [e.online for e in log.of_type(ReaderStatus)] == [True, False, True, False, True]  # type: ignore[union-attr]
