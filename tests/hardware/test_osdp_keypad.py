"""The keypad of an OSDP reader (a second PIN input at the gate): libosdp's keypad reports
reach the driver as ``KeypadKeys`` (digits, ``#`` for enter, ``*`` for clear), secure channel
on, and never show the keys in a log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hardware.base import KeypadKeys, ReaderStatus
from hardware.osdp import OsdpBus, OsdpReaderSpec, serial_channel_factory
from hardware.support import Backoff
from simulators.osdp_pd import PtyBus
from tests.support.hardware import EventLog

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


@pytest.mark.timeout(60)
async def test_keypad_keys_reach_the_driver(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with PtyBus() as bus:
        pd = bus.attach(1, KEY)
        driver = OsdpBus(
            "bus-1",
            serial_channel_factory(bus.port, 115200),
            [OsdpReaderSpec("gate-1", 1, KEY)],
            backoff=lambda: Backoff(base=0.3, cap=1.0),
        )
        log = EventLog()
        async with driver, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(driver.events()))
            await log.wait_for(lambda e: isinstance(e, ReaderStatus) and e.online, 10)
            assert pd.press_keys("19*4821#")
            await log.wait_for(lambda e: isinstance(e, KeypadKeys), 5)
            consumer.cancel()
    keys = "".join(e.keys for e in log.of_type(KeypadKeys))  # type: ignore[union-attr]
    assert keys == "19*4821#"
    assert "4821" not in caplog.text
    assert "keys=<" in repr(KeypadKeys("gate-1", "4821"))
