"""PC/SC end to end: pcscd with vpcd's virtual readers, a virtual contactless card, pyscard
in the monitor's thread. Plus the pure helpers (reader matching, UID response)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from hardware.base import CredentialRead, ReaderStatus
from hardware.pcsc import PcscMonitor, PcscSlot, match_readers, uid_from_response
from hardware.support import Backoff
from simulators.vpcd_card import VirtualCard, answer, wait_card_state
from tests.support.hardware import EventLog

READER_0 = "Virtual PCD 00 00"
READER_1 = "Virtual PCD 00 01"


def test_match_readers_follows_plug_and_unplug() -> None:
    slots = [PcscSlot("desk-1", "ACS ACR122U"), PcscSlot("desk-2", "Virtual PCD 00 01")]
    present = ["ACS ACR122U PICC Interface 00 00", "Virtual PCD 00 01", "Virtual PCD 00 00"]
    assert match_readers(slots, present) == {
        "desk-1": "ACS ACR122U PICC Interface 00 00",
        "desk-2": "Virtual PCD 00 01",
    }
    assert match_readers(slots, present[1:]) == {"desk-2": "Virtual PCD 00 01"}
    # a prefix never steals a reader that another slot names exactly
    both = [PcscSlot("a", "Virtual PCD"), PcscSlot("b", "Virtual PCD 00 00")]
    assert match_readers(both, ["Virtual PCD 00 00"]) == {"b": "Virtual PCD 00 00"}


def test_uid_response() -> None:
    assert uid_from_response(list(bytes.fromhex("04A1B2C39000"))) == "UID:04A1B2C3"
    with pytest.raises(ValueError, match="6A81"):
        uid_from_response([0x6A, 0x81])
    assert answer(bytes.fromhex("FFCA000000"), b"\x01\x02") == b"\x01\x02\x90\x00"
    assert answer(bytes.fromhex("00A4040000"), b"\x01") == b"\x6d\x00"


@pytest.fixture
def vpcd_readers() -> None:
    """Fail (not skip) with a clear message when the PC/SC stack is not what the test needs."""
    try:
        from smartcard.scard import (
            SCARD_S_SUCCESS,
            SCARD_SCOPE_USER,
            SCardEstablishContext,
            SCardListReaders,
            SCardReleaseContext,
        )
    except ImportError:
        pytest.fail("pyscard is not installed: pip install '.[pcsc]'")
    hresult, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
    if hresult != SCARD_S_SUCCESS:
        pytest.fail(
            "pcscd is not running: start it with deploy/start-services.sh "
            "(or deselect these tests with -m 'not pcscd')"
        )
    hresult, names = SCardListReaders(ctx, [])
    SCardReleaseContext(ctx)
    missing = {READER_0, READER_1} - set(names if hresult == SCARD_S_SUCCESS else [])
    if missing:
        pytest.fail(
            f"pcscd runs but the vpcd virtual readers {sorted(missing)} are absent: install "
            "vsmartcard-vpcd and restart pcscd"
        )


def _read(reader_id: str, credential: str) -> Callable[[object], bool]:
    return lambda e: (
        isinstance(e, CredentialRead) and e.reader_id == reader_id and e.credential == credential
    )


@pytest.mark.pcscd
@pytest.mark.usefixtures("vpcd_readers")
async def test_two_readers_insert_remove_and_a_missing_reader() -> None:
    monitor = PcscMonitor(
        "canteen",
        [PcscSlot("desk-1", READER_0), PcscSlot("desk-2", READER_1), PcscSlot("desk-9", "Nope")],
        wait_ms=200,
        backoff=Backoff(base=0.2, cap=1.0),
    )
    card_a = VirtualCard(bytes.fromhex("04A1B2C3D4E5F6"))
    card_b = VirtualCard(bytes.fromhex("DEADBEEF"))
    log = EventLog()
    try:
        async with monitor, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(monitor.events()))
            for reader_id in ("desk-1", "desk-2"):
                await log.wait_for(
                    lambda e, r=reader_id: (
                        isinstance(e, ReaderStatus)  # type: ignore[misc]
                        and e.reader_id == r
                        and e.online
                    ),
                    5,
                )
            missing = await log.wait_for(
                lambda e: isinstance(e, ReaderStatus) and e.reader_id == "desk-9", 5
            )
            assert not missing.online and "not connected" in missing.detail  # type: ignore[union-attr]

            await asyncio.to_thread(card_a.insert, 0)
            await log.wait_for(_read("desk-1", "UID:04A1B2C3D4E5F6"), 5)
            await asyncio.to_thread(card_b.insert, 1)
            await log.wait_for(_read("desk-2", "UID:DEADBEEF"), 5)
            # Left on the reader: read once. Taken off and put back: read again.
            await asyncio.to_thread(card_a.remove)
            assert await asyncio.to_thread(wait_card_state, READER_0, False)
            await asyncio.to_thread(card_a.insert, 0)
            mark = len(log.events)
            await log.wait_for(_read("desk-1", "UID:04A1B2C3D4E5F6"), 5, start=mark)
            consumer.cancel()
    finally:
        card_a.remove()
        card_b.remove()
    reads = [(e.reader_id, e.credential) for e in log.of_type(CredentialRead)]  # type: ignore[union-attr]
    assert reads == [
        ("desk-1", "UID:04A1B2C3D4E5F6"),
        ("desk-2", "UID:DEADBEEF"),
        ("desk-1", "UID:04A1B2C3D4E5F6"),
    ]
    assert card_a.apdus and all(apdu == bytes.fromhex("FFCA000000") for apdu in card_a.apdus)
    assert monitor.misreads == 0


@pytest.mark.pcscd
@pytest.mark.usefixtures("vpcd_readers")
async def test_card_already_on_the_reader_at_start_is_not_read() -> None:
    card = VirtualCard(bytes.fromhex("0102030405060708"))
    other = VirtualCard(bytes.fromhex("0A0B0C0D"))
    # pcscd has seen the cards of earlier tests taken off, then this one put on before the start
    for reader in (READER_0, READER_1):
        assert await asyncio.to_thread(wait_card_state, reader, False)
    await asyncio.to_thread(card.insert, 0)
    try:
        assert await asyncio.to_thread(wait_card_state, READER_0, True)
        slots = [PcscSlot("desk-1", READER_0), PcscSlot("desk-2", READER_1)]
        monitor = PcscMonitor("desk", slots, wait_ms=200)
        log = EventLog()
        async with monitor, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(monitor.events()))
            for desk in ("desk-1", "desk-2"):
                await log.wait_for(
                    lambda e, d=desk: isinstance(e, ReaderStatus) and e.online and e.reader_id == d,
                    5,
                )
            # A card put on the other reader now is read in a later round of the same monitor:
            # a wrong read of the card that was already there would have come before it.
            await asyncio.to_thread(other.insert, 1)
            await log.wait_for(_read("desk-2", "UID:0A0B0C0D"), 5)
            assert [e.reader_id for e in log.of_type(CredentialRead)] == ["desk-2"]  # type: ignore[attr-defined]
            await asyncio.to_thread(card.remove)
            assert await asyncio.to_thread(wait_card_state, READER_0, False)
            await asyncio.to_thread(card.insert, 0)
            await log.wait_for(_read("desk-1", "UID:0102030405060708"), 5)
            consumer.cancel()
    finally:
        card.remove()
        other.remove()
