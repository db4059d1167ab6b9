"""The fire alarm (README, "Fire alarm and power to the gates"): the real daemon with two
turnstiles on OSDP peripherals (libosdp on a pty, secure channel on); the fire-alarm panel's dry
contact is an input of the entrance's reader.

When the contact closes every turnstile is held free (its output permanently on), once each,
even the one whose release is still waiting for a passage (that release ends not passed: a
passage through a turnstile held free is anyone's); the evacuation's start is journaled; the
duty page lists who is inside. When it opens they lock again and the end is journaled."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import osdp
import pytest

from edge.cards import load_card_key
from edge.clock_guard import ClockGuard
from edge.daemon import run_daemon
from edge.evacuation import Evacuation
from edge.store import EdgeStore
from hardware.osdp import OUT_PERMANENT_OFF, OUT_PERMANENT_ON, OUT_TEMPORARY_ON
from hardware.wiegand import decode, encode
from protocol.messages import AlarmCode, AlarmEvent, EntryEvent, Event, NotPassedEvent
from simulators.osdp_pd import PtyBus
from tests.integration.test_daemon_osdp import KEY, snapshot
from tests.support.wait import wait_until_async

KEY2 = bytes.fromhex("1f2e3d4c5b6a79881f2e3d4c5b6a7988")
FIRE_INPUT = 3


def outputs(pd: Any, code: int) -> int:
    return sum(
        1
        for c in list(pd.commands)
        if c.get("command") == osdp.Command.Output
        and c.get("output_no") == 0
        and c.get("control_code") == code
    )


def not_passed(journal: list[Event]) -> list[NotPassedEvent]:
    return [e for e in journal if isinstance(e, NotPassedEvent)]


def fire_alarms(journal: list[Event]) -> list[AlarmEvent]:
    return [e for e in journal if isinstance(e, AlarmEvent) and e.code is AlarmCode.FIRE_ALARM]


@pytest.mark.timeout(120)
async def test_the_fire_alarm_frees_every_turnstile_and_records_the_evacuation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = {f"s{i}": decode(encode(26, 12, 300 + i)) for i in range(1, 4)}
    store_path = tmp_path / "edge.sqlite"
    key = load_card_key(tmp_path / "card.key")
    store = await EdgeStore.open(store_path, school="S1", device="d1", card_key=key)
    await store.apply_snapshot(snapshot(creds))
    await store.close()

    # the daemon's Evacuation, to look at the duty page's list while it runs
    made: list[Evacuation] = []
    real_init: Callable[..., None] = Evacuation.__init__

    def spy(self: Evacuation, *args: Any) -> None:
        real_init(self, *args)
        made.append(self)

    monkeypatch.setattr(Evacuation, "__init__", spy)

    with PtyBus() as bus:
        entrance = bus.attach(1, KEY, passage_delay=0.05)
        exit_pd = bus.attach(2, KEY2, passage_delay=0.05)
        (tmp_path / "edge.toml").write_text(
            f"""school = "S1"
device = "d1"
store = "edge.sqlite"

[[terminal]]
id = "gate-1-in"
kind = "turnstile"
direction = "in"
passage_timeout = 3.0
reader = {{ type = "osdp", reader_id = "gate-1-in", port = "{bus.port}", address = 1, scbk = "{KEY.hex()}", fire_input_no = {FIRE_INPUT} }}
gate = {{ type = "osdp_output" }}

[[terminal]]
id = "gate-1-out"
kind = "turnstile"
direction = "out"
passage_timeout = 3.0
reader = {{ type = "osdp", reader_id = "gate-1-out", port = "{bus.port}", address = 2, scbk = "{KEY2.hex()}" }}
gate = {{ type = "osdp_output" }}
"""
        )
        daemon = asyncio.create_task(run_daemon(tmp_path / "edge.toml", guard=ClockGuard()))

        async def journal() -> list[Event]:
            async with await EdgeStore.open(
                store_path, school="S1", device="d1", card_key=key, create=False
            ) as s:
                return await s.journal_rows()

        async def events_of(kind: type) -> int:
            return sum(1 for e in await journal() if isinstance(e, kind))

        try:
            await wait_until_async(
                lambda: entrance.secure_channel_active and exit_pd.secure_channel_active, 20
            )
            # s1 and s2 come in; s3 comes in and goes out
            for n, card in enumerate((301, 302, 303), start=1):
                entrance.present_card(26, 12, card)
                await wait_until_async(lambda n=n: _at_least(events_of(EntryEvent), n), 15)
            await wait_until_async(lambda: made and len(made[0].inside()) == 3, 15)
            exit_pd.present_card(26, 12, 303)
            await wait_until_async(lambda: len(made[0].inside()) == 2, 15)
            assert {p.person_id for p in made[0].inside()} == {"s1", "s2"}

            # s2 taps out and turns back: the exit's release waits for a passage...
            exit_pd.turn_back_next()
            exit_pd.present_card(26, 12, 302)
            await wait_until_async(lambda: outputs(exit_pd, OUT_TEMPORARY_ON) == 2, 15)
            locks_before = outputs(exit_pd, OUT_PERMANENT_OFF)

            # ...when the fire-alarm panel closes its contact
            assert entrance.set_input(FIRE_INPUT, True)
            await wait_until_async(
                lambda: (
                    outputs(entrance, OUT_PERMANENT_ON) == 1
                    and outputs(exit_pd, OUT_PERMANENT_ON) == 1
                ),
                10,
                "every turnstile held free",
            )
            await wait_until_async(lambda: _any(journal(), fire_alarms), 10)
            started = fire_alarms(await journal())
            assert len(started) == 1 and started[0].active
            assert started[0].detail == "evacuation: 2 of 2 turnstiles held free"
            evac = made[0]
            assert evac.active and {p.person_id for p in evac.inside()} == {"s1", "s2"}

            # the exit's pending release ends, not passed: from the alarm on anyone may walk
            # through the exit held free (the simulated turnstile is walked through at once),
            # and that passage is not s2's, so s2 stays on the list; nor may it lock the exit
            await wait_until_async(lambda: _any(journal(), not_passed), 10, "s2 not passed")
            (turned_back,) = not_passed(await journal())
            assert turned_back.student_id == "s2"
            await asyncio.sleep(3.5)
            assert {p.person_id for p in evac.inside()} == {"s1", "s2"}
            assert outputs(exit_pd, OUT_PERMANENT_OFF) == locks_before
            # a tap during the evacuation is recorded; the turnstile stays as it is
            entrance.present_card(26, 12, 303)
            await wait_until_async(lambda: _at_least(events_of(EntryEvent), 4), 15)
            assert outputs(entrance, OUT_TEMPORARY_ON) == 3  # the three before the fire
            assert outputs(entrance, OUT_PERMANENT_OFF) == 3
            assert evac.released == {"gate-1-in": True, "gate-1-out": True}

            # the panel is reset: both lock again, and the end is journaled
            assert entrance.set_input(FIRE_INPUT, False)
            await wait_until_async(
                lambda: (
                    outputs(entrance, OUT_PERMANENT_OFF) == 4
                    and outputs(exit_pd, OUT_PERMANENT_OFF) == locks_before + 1
                ),
                10,
                "every turnstile locked again",
            )
            await wait_until_async(lambda: _count(journal(), fire_alarms, 2), 10)
            ended = fire_alarms(await journal())
            assert [e.active for e in ended] == [True, False]
            assert not evac.active
            assert (
                collections.Counter(
                    (c.get("control_code"))
                    for c in entrance.commands
                    if c.get("command") == osdp.Command.Output
                )[OUT_PERMANENT_ON]
                == 1
            )  # released once, not once per poll
        finally:
            daemon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await daemon


async def _at_least(counting: Any, n: int) -> bool:
    return bool(await counting >= n)


async def _any(events: Any, pick: Callable[[list[Event]], list[Any]]) -> bool:
    return bool(pick(await events))


async def _count(events: Any, pick: Callable[[list[Event]], list[AlarmEvent]], n: int) -> bool:
    return len(pick(await events)) >= n
