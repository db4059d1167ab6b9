"""OSDP end to end: Qaqpa's driver (libosdp ControlPanel) against simulated libosdp PDs over a
pty, secure channel on. Card reads, feedback, turnstile passage, silence, wrong key."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import osdp
import pytest

from hardware import wiegand
from hardware.base import CredentialRead, HardwareError, Misread, PassageResult, ReaderStatus
from hardware.osdp import OsdpBus, OsdpReaderSpec, serial_channel_factory
from hardware.support import Backoff
from simulators.osdp_pd import PtyBus
from tests.support.hardware import EventLog

KEY_A = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
KEY_B = bytes.fromhex("f0e1d2c3b4a5968778695a4b3c2d1e0f")
WRONG = bytes.fromhex("00112233445566778899aabbccddeeff")


def _status(reader_id: str, online: bool) -> Callable[[object], bool]:
    return lambda e: isinstance(e, ReaderStatus) and e.reader_id == reader_id and e.online is online


def _fast() -> Backoff:
    return Backoff(base=0.3, cap=1.0)


@pytest.fixture
def sim_bus() -> AsyncIterator[PtyBus]:  # type: ignore[misc]
    bus = PtyBus()
    yield bus
    bus.close()


async def test_two_secure_readers_cards_feedback_and_passage(
    sim_bus: PtyBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pd1 = sim_bus.attach(1, KEY_A)
    pd2 = sim_bus.attach(2, KEY_B, output_no=1, passage_input_no=2)
    driver = OsdpBus(
        "bus-1",
        serial_channel_factory(sim_bus.port, 115200),
        [
            OsdpReaderSpec("turnstile-1", 1, KEY_A),
            OsdpReaderSpec("turnstile-2", 2, KEY_B, output_no=1, passage_input_no=2),
        ],
        backoff=_fast,
    )
    log = EventLog()
    async with driver, asyncio.TaskGroup() as tg:
        consumer = tg.create_task(log.consume(driver.events()))
        await log.wait_for(_status("turnstile-1", True), 5)
        await log.wait_for(_status("turnstile-2", True), 5)
        assert pd1.secure_channel_active and pd2.secure_channel_active

        assert pd1.present_card(26, 12, 34567)
        assert pd2.present_uid(bytes.fromhex("04a1b2c3d4e5f6"))
        assert pd2.present_card(34, 12, 34567)
        assert pd1.present_wiegand(wiegand.WiegandFrame(26, wiegand.encode(26, 1, 1).value ^ 2))
        assert pd1.present_wiegand(wiegand.WiegandFrame(37, 0x1A2B3C4D5))
        await log.wait_for(
            lambda e: isinstance(e, CredentialRead) and e.credential.startswith("WR:"), 5
        )
        reads = [(e.reader_id, e.credential) for e in log.of_type(CredentialRead)]  # type: ignore[union-attr]
        assert reads == [
            ("turnstile-1", "W26:012:34567"),
            ("turnstile-2", "UID:04A1B2C3D4E5F6"),
            ("turnstile-2", "W34:00012:0034567"),
            ("turnstile-1", "WR:37:1A2B3C4D5"),
        ]
        (misread,) = log.of_type(Misread)
        assert misread.reader_id == "turnstile-1" and "parity" in misread.detail  # type: ignore[union-attr]

        await driver.feedback("turnstile-1").show(granted=True)
        led = await asyncio.to_thread(
            pd1.wait_command, lambda c: c["command"] == osdp.Command.LED, 3
        )
        assert led is not None and led["on_color"] == osdp.CommandLEDColor.Green
        buzz = await asyncio.to_thread(
            pd1.wait_command, lambda c: c["command"] == osdp.Command.Buzzer, 3
        )
        assert buzz is not None
        await driver.feedback("turnstile-2").show(granted=False)
        led2 = await asyncio.to_thread(
            pd2.wait_command, lambda c: c["command"] == osdp.Command.LED, 3
        )
        assert led2 is not None and led2["on_color"] == osdp.CommandLEDColor.Red

        assert await driver.gate("turnstile-2").release(3.0) is PassageResult.PASSED
        out = pd2.wait_command(lambda c: c["command"] == osdp.Command.Output, 0)
        assert out is not None and out["output_no"] == 1 and out["control_code"] == 5
        assert not any(c["command"] == osdp.Command.Output for c in pd1.commands)

        pd1.turn_back_next()
        assert await driver.gate("turnstile-1").release(0.6) is PassageResult.NOT_PASSED
        relock = await asyncio.to_thread(
            pd1.wait_command,
            lambda c: c["command"] == osdp.Command.Output and c["control_code"] == 1,
            3,
        )
        assert relock is not None
        consumer.cancel()
    assert driver.misreads == 1
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any("online" in m for m in loud)
    assert not any("34567" in m or "A1B2C3" in m.upper() for m in loud)


async def test_reader_that_stops_answering_goes_offline_and_comes_back(sim_bus: PtyBus) -> None:
    pd = sim_bus.attach(5, KEY_A)
    driver = OsdpBus(
        "bus-1",
        serial_channel_factory(sim_bus.port, 115200),
        [OsdpReaderSpec("turnstile-5", 5, KEY_A)],
        backoff=_fast,
    )
    log = EventLog()
    async with driver, asyncio.TaskGroup() as tg:
        consumer = tg.create_task(log.consume(driver.events()))
        await log.wait_for(_status("turnstile-5", True), 5)
        pd.go_silent()
        offline = await log.wait_for(_status("turnstile-5", False), 5)
        assert "answering" in offline.detail  # type: ignore[union-attr]
        with pytest.raises(HardwareError):
            await driver.gate("turnstile-5").release(0.5)
        pd.resume()
        mark = len(log.events)
        await log.wait_for(_status("turnstile-5", True), 20, start=mark)
        assert pd.present_card(26, 1, 2)
        await log.wait_for(lambda e: isinstance(e, CredentialRead), 5)
        consumer.cancel()
    statuses = [e.online for e in log.of_type(ReaderStatus)]  # type: ignore[union-attr]
    assert statuses == [True, False, True]


async def test_wrong_secure_channel_key_is_refused_and_alarmed(sim_bus: PtyBus) -> None:
    good = sim_bus.attach(1, KEY_A)
    impostor = sim_bus.attach(2, WRONG)
    driver = OsdpBus(
        "bus-1",
        serial_channel_factory(sim_bus.port, 115200),
        [OsdpReaderSpec("good", 1, KEY_A), OsdpReaderSpec("impostor", 2, KEY_B)],
        backoff=_fast,
        connect_grace=1.5,
    )
    log = EventLog()
    async with driver, asyncio.TaskGroup() as tg:
        consumer = tg.create_task(log.consume(driver.events()))
        await log.wait_for(_status("good", True), 5)
        alarm = await log.wait_for(_status("impostor", False), 5)
        assert "secure channel refused" in alarm.detail  # type: ignore[union-attr]
        # The impostor keeps presenting cards; none may be accepted, through retries too.
        for card in range(5):
            impostor.present_card(26, 1, card)
            await asyncio.sleep(0.3)
        assert good.present_card(26, 9, 9)
        await log.wait_for(lambda e: isinstance(e, CredentialRead), 5)
        consumer.cancel()
    assert not impostor.secure_channel_active
    assert [e.reader_id for e in log.of_type(CredentialRead)] == ["good"]  # type: ignore[union-attr]
    assert not any(e.reader_id == "impostor" and e.online for e in log.of_type(ReaderStatus))  # type: ignore[union-attr]


async def test_bus_adapter_unplugged_and_replugged(tmp_path: Path) -> None:
    line = PtyBus(tmp_path / "rs485")
    try:
        pd = line.attach(3, KEY_A)
        driver = OsdpBus(
            "bus-1",
            serial_channel_factory(line.port, 115200),
            [OsdpReaderSpec("turnstile-3", 3, KEY_A)],
            backoff=_fast,
        )
        log = EventLog()
        async with driver, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(driver.events()))
            await log.wait_for(_status("turnstile-3", True), 5)
            line.unplug()
            offline = await log.wait_for(_status("turnstile-3", False), 5)
            assert "port failed" in offline.detail  # type: ignore[union-attr]
            mark = len(log.events)
            line.replug()
            await log.wait_for(_status("turnstile-3", True), 20, start=mark)
            assert pd.present_card(26, 7, 7)
            await log.wait_for(lambda e: isinstance(e, CredentialRead), 5)
            consumer.cancel()
        statuses = [e.online for e in log.of_type(ReaderStatus)]  # type: ignore[union-attr]
        assert statuses == [True, False, True]
    finally:
        line.close()


async def test_control_panel_thread_and_wake_pipe_end_with_the_bus(sim_bus: PtyBus) -> None:
    pd = sim_bus.attach(1, KEY_A)
    fds_before = len(os.listdir("/proc/self/fd"))
    driver = OsdpBus(
        "bus-1", serial_channel_factory(sim_bus.port, 115200), [OsdpReaderSpec("t1", 1, KEY_A)]
    )
    log = EventLog()
    async with driver, asyncio.TaskGroup() as tg:
        consumer = tg.create_task(log.consume(driver.events()))
        await log.wait_for(_status("t1", True), 5)
        assert [t.name for t in threading.enumerate()].count("osdp-cp") == 1
        # output first, feedback after: libosdp sends a PD's commands in the order queued
        await driver.submit(
            1, {"command": osdp.Command.Output, "output_no": 0, "control_code": 1, "timer_count": 0}
        )
        await driver.feedback("t1").show(granted=True)
        buzz = await asyncio.to_thread(
            pd.wait_command, lambda c: c["command"] == osdp.Command.Buzzer, 3
        )
        assert buzz is not None
        kinds = [osdp.Command.Output, osdp.Command.LED, osdp.Command.Buzzer]
        assert [c["command"] for c in pd.commands if c["command"] in kinds] == kinds
        consumer.cancel()
    assert "osdp-cp" not in [t.name for t in threading.enumerate()]
    assert len(os.listdir("/proc/self/fd")) == fds_before
