"""The readers' LEDs and buzzers as the school's own alarm, end to end with Qaqpa's OSDP driver
against a simulated libosdp reader on a pty (secure channel on) and a real edge store: an alarm
journaled at the school turns the reader's idle LED amber; with the link down for longer than
the rule's limit the reader beeps too (once, not at every look); cleared, the LED goes dark."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import osdp
import pytest

from edge.alarm_lights import AlarmLights
from edge.core.alarms import LINK_DOWN_AFTER_MS, Signal
from edge.store import EdgeStore
from hardware.base import ReaderStatus
from hardware.osdp import OsdpBus, OsdpReaderSpec, serial_channel_factory
from hardware.support import Backoff
from protocol.messages import AlarmCode
from simulators.osdp_pd import PtyBus
from tests.support.hardware import EventLog

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


@pytest.fixture
def sim_bus() -> Iterator[PtyBus]:
    bus = PtyBus()
    yield bus
    bus.close()


def _led(colour: int):  # type: ignore[no-untyped-def]
    return lambda c: (
        c["command"] == osdp.Command.LED and c.get("control_code") == 1 and c["on_color"] == colour
    )


async def test_alarm_lights_on_a_real_osdp_reader(sim_bus: PtyBus, tmp_path: Path) -> None:
    pd = sim_bus.attach(1, KEY)
    driver = OsdpBus(
        "bus-1",
        serial_channel_factory(sim_bus.port, 115200),
        [OsdpReaderSpec("gate-1", 1, KEY)],
        backoff=lambda: Backoff(base=0.3, cap=1.0),
    )
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="edge-1")
    clock = {"now": 0}
    try:
        log = EventLog()
        async with driver, asyncio.TaskGroup() as tg:
            consumer = tg.create_task(log.consume(driver.events()))
            await log.wait_for(
                lambda e: isinstance(e, ReaderStatus) and e.reader_id == "gate-1" and e.online, 5
            )
            lights = AlarmLights(store, now_ms=lambda: clock["now"])
            lights.register("gate-1", driver.feedback("gate-1"))
            lights.register("screen", object())  # no LED: ignored
            assert await lights.check() is Signal.QUIET
            assert pd.wait_command(lambda c: c["command"] == osdp.Command.LED, 0) is None

            await store.journal_alarm("gate-2", AlarmCode.READER_OFFLINE, True, "osdp 2")
            stats = await store.outbox_stats()
            assert stats.oldest_unsent_ms is not None
            clock["now"] = stats.oldest_unsent_ms + 1_000  # the link is fine so far
            assert await lights.check() is Signal.ALARM
            led = await asyncio.to_thread(pd.wait_command, _led(osdp.CommandLEDColor.Amber), 3)
            assert led is not None and led["on_count"] == 5
            assert pd.wait_command(lambda c: c["command"] == osdp.Command.Buzzer, 0) is None

            # nothing acknowledged for longer than the limit: the link is down, beep
            clock["now"] = stats.oldest_unsent_ms + LINK_DOWN_AFTER_MS
            assert await lights.check() is Signal.ALARM_OFFLINE
            buzz = await asyncio.to_thread(
                pd.wait_command, lambda c: c["command"] == osdp.Command.Buzzer, 3
            )
            assert buzz is not None
            n = len(pd.commands)
            clock["now"] += 10_000
            assert await lights.check() is Signal.ALARM_OFFLINE
            await asyncio.sleep(0.3)
            assert len(pd.commands) == n  # nothing new to show, no second beep yet

            await store.journal_alarm("gate-2", AlarmCode.READER_OFFLINE, False, "osdp 2")
            assert await lights.check() is Signal.QUIET
            dark = await asyncio.to_thread(pd.wait_command, _led(osdp.CommandLEDColor.Black), 3)
            assert dark is not None
            consumer.cancel()
    finally:
        await store.close()
