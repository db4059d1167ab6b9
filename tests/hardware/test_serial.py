"""EM-Marine, Wiegand-to-serial and magstripe drivers against simulated readers on ptys,
through pyserial: reads, noise, broken frames, unplug and replug."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hardware import wiegand
from hardware.base import CredentialRead, Misread, ReaderStatus
from hardware.magstripe import KeyboardWedgeMagstripeReader, magstripe_reader, track2_swipe
from hardware.serial_reader import em_marine_reader, serial_port_factory, wiegand_serial_reader
from hardware.support import Backoff
from simulators.serial_sim import EmMarineSim, MagstripeSim, WiegandSerialSim
from tests.support.hardware import EventLog
from tests.support.wait import wait_until_async


def _is_read(credential: str) -> Callable[[object], bool]:
    return lambda e: isinstance(e, CredentialRead) and e.credential == credential


def _is_status(online: bool) -> Callable[[object], bool]:
    return lambda e: isinstance(e, ReaderStatus) and e.online is online


async def test_em_marine_reads_both_framings(
    tmp_path: Path, fast_backoff: Callable[[], Backoff]
) -> None:
    sim = EmMarineSim(tmp_path / "em0")
    sim.plug()
    try:
        reader = em_marine_reader(
            "desk-1", serial_port_factory(str(sim.path)), backoff=fast_backoff()
        )
        log = EventLog()
        async with reader, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(reader.events()))
            await log.wait_for(_is_status(True), 5)
            sim.present_card(4567891)
            got = await log.wait_for(lambda e: isinstance(e, CredentialRead), 5)
            assert got == CredentialRead("desk-1", "EM:0004567891", got.monotonic)  # type: ignore[union-attr]
            sim.present_card(4294967295, framing="line")
            await log.wait_for(_is_read("EM:4294967295"), 5)
            consumer.cancel()
        assert reader.misreads == 0
        assert reader.reads == 2
    finally:
        sim.close()


async def test_noise_and_broken_frames_are_counted_and_good_frames_survive(
    tmp_path: Path, fast_backoff: Callable[[], Backoff]
) -> None:
    sim = EmMarineSim(tmp_path / "em0")
    sim.plug()
    try:
        reader = em_marine_reader(
            "desk-1", serial_port_factory(str(sim.path)), backoff=fast_backoff()
        )
        log = EventLog()
        async with reader, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(reader.events()))
            await log.wait_for(_is_status(True), 5)
            sim.send_bad_checksum(1111)
            sim.present_card(1)
            sim.send_half_frame(2222)
            sim.present_card(2)
            sim.inject_noise(200, seed=7)
            sim.write(b"\r\n")
            sim.present_card(3)
            await log.wait_for(_is_read("EM:0000000003"), 5)
            consumer.cancel()
        reads = [e.credential for e in log.of_type(CredentialRead)]  # type: ignore[union-attr]
        assert reads == ["EM:0000000001", "EM:0000000002", "EM:0000000003"]
        misreads = log.of_type(Misread)
        assert reader.misreads == len(misreads) >= 3
        details = " ".join(m.detail for m in misreads)  # type: ignore[union-attr]
        assert "checksum" in details and "half frame" in details
        assert "1111" not in details and "2222" not in details  # no card numbers in details
        assert not log.of_type(ReaderStatus)[1:]  # the noise never took the reader offline
    finally:
        sim.close()


async def test_unplug_and_replug_flip_availability(
    tmp_path: Path, fast_backoff: Callable[[], Backoff]
) -> None:
    sim = EmMarineSim(tmp_path / "em0")
    sim.plug()
    try:
        backoff = fast_backoff()
        reader = em_marine_reader("gate-2", serial_port_factory(str(sim.path)), backoff=backoff)
        log = EventLog()
        async with reader, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(reader.events()))
            await log.wait_for(_is_status(True), 5)
            sim.unplug()
            offline = await log.wait_for(_is_status(False), 5)
            assert isinstance(offline, ReaderStatus) and "failed" in offline.detail
            mark, failed = len(log.events), backoff.attempt
            await wait_until_async(
                lambda: backoff.attempt >= failed + 2, 5, "two more reopens fail"
            )
            assert not any(isinstance(e, ReaderStatus) for e in log.events[mark:])
            sim.plug()
            await log.wait_for(_is_status(True), 5, start=mark)
            sim.present_card(77)
            await log.wait_for(_is_read("EM:0000000077"), 5)
            consumer.cancel()
        statuses = [e.online for e in log.of_type(ReaderStatus)]  # type: ignore[union-attr]
        assert statuses == [True, False, True]  # each change reported exactly once
        assert reader.reopens == 1
    finally:
        sim.close()


async def test_wiegand_serial_converter(
    tmp_path: Path, fast_backoff: Callable[[], Backoff]
) -> None:
    sim = WiegandSerialSim(tmp_path / "wg0")
    sim.plug()
    try:
        reader = wiegand_serial_reader(
            "gate-3", serial_port_factory(str(sim.path)), backoff=fast_backoff()
        )
        log = EventLog()
        async with reader, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(reader.events()))
            await log.wait_for(_is_status(True), 5)
            sim.present_frame(wiegand.encode(26, 12, 34567))
            bad = wiegand.encode(34, 12, 34567)
            sim.present_frame(wiegand.WiegandFrame(34, bad.value ^ 1))  # odd parity broken
            sim.present_frame(wiegand.encode(34, 12, 34567))
            sim.present_frame(wiegand.WiegandFrame(37, 0x1A2B3C4D5))
            await log.wait_for(_is_read("WR:37:1A2B3C4D5"), 5)
            consumer.cancel()
        reads = [e.credential for e in log.of_type(CredentialRead)]  # type: ignore[union-attr]
        assert reads == ["W26:012:34567", "W34:00012:0034567", "WR:37:1A2B3C4D5"]
        assert reader.misreads == 1
    finally:
        sim.close()


async def test_magstripe_bad_lrc_is_a_misread(
    tmp_path: Path, fast_backoff: Callable[[], Backoff]
) -> None:
    sim = MagstripeSim(tmp_path / "ms0")
    sim.plug()
    try:
        reader = magstripe_reader(
            "canteen-1", serial_port_factory(str(sim.path)), backoff=fast_backoff()
        )
        log = EventLog()
        async with reader, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(reader.events()))
            await log.wait_for(_is_status(True), 5)
            sim.swipe("6001234567890", good_lrc=False)
            sim.swipe("6001234567891")
            await log.wait_for(_is_read("MS:6001234567891"), 5)
            consumer.cancel()
        assert [e.credential for e in log.of_type(CredentialRead)] == ["MS:6001234567891"]  # type: ignore[union-attr]
        (misread,) = log.of_type(Misread)
        assert "LRC" in misread.detail  # type: ignore[union-attr]
    finally:
        sim.close()


async def test_keyboard_wedge_swipes_from_a_line_source() -> None:
    lines: asyncio.Queue[str] = asyncio.Queue()

    async def source() -> AsyncIterator[str]:
        while True:
            yield await lines.get()

    reader = KeyboardWedgeMagstripeReader("library-1", source)
    log = EventLog()
    async with reader, asyncio.TaskGroup() as tg:
        consumer = tg.create_task(log.consume(reader.events()))
        for line in (";6001=2512?", "", "%B6001^DOE/J^2512?", track2_swipe("6002")[:-1] + "0"):
            lines.put_nowait(line)
        lines.put_nowait(track2_swipe("6003"))
        await log.wait_for(_is_read("MS:6003"), 5)
        consumer.cancel()
    assert [e.credential for e in log.of_type(CredentialRead)] == ["MS:6001", "MS:6003"]  # type: ignore[union-attr]
    assert reader.misreads == 2  # track 1 text and a wrong LRC


async def test_no_card_number_in_logs_at_info_or_above(
    tmp_path: Path, fast_backoff: Callable[[], Backoff], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim = EmMarineSim(tmp_path / "em0")
    sim.plug()
    try:
        reader = em_marine_reader(
            "desk-1", serial_port_factory(str(sim.path)), backoff=fast_backoff()
        )
        log = EventLog()
        async with reader, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(reader.events()))
            await log.wait_for(_is_status(True), 5)
            sim.send_bad_checksum(98765)
            sim.present_card(98765)
            await log.wait_for(_is_read("EM:0000098765"), 5)
            sim.unplug()
            await log.wait_for(_is_status(False), 5)
            consumer.cancel()
    finally:
        sim.close()
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any("offline" in m for m in loud)  # the failure was logged
    assert not any("98765" in m for m in loud)
