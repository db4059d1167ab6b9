"""The duty section of the edge's staff page: the deputy on duty signs in at the school with
their card and PIN and sees the alarms the edge raised and the state of the link, with no centre
at all; a class teacher does not see it. The rules behind it (active alarms, link down, what the
readers show) are pure."""

from __future__ import annotations

from pathlib import Path

import httpx

from edge.core.alarms import Signal, active_alarms, beep_due, link_down, signal
from edge.staff.pins import verifier
from protocol.messages import (
    AlarmCode,
    AlarmEvent,
    CardBind,
    CardBinding,
    OwnerKind,
    StaffRecord,
    StaffUpsert,
)
from tests.support.staff_school import KEY, TEACHER_CARD, TEACHER_PIN, staff_page

DUTY_CARD = "UID:0D00D001"
DUTY_PIN = "2468"


async def test_the_deputy_on_duty_sees_the_alarms_at_the_school(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        store = page.store
        await store.apply_local(
            [
                StaffUpsert(
                    staff=StaffRecord(
                        id="d1", roles=["duty_deputy"], display_name="Абдрахманова П.К."
                    )
                ),
                CardBind(
                    card=CardBinding(
                        credential=DUTY_CARD, owner_kind=OwnerKind.STAFF, owner_id="d1"
                    )
                ),
            ]
        )
        await store.set_staff_pin("d1", verifier(KEY, "d1", DUTY_PIN), 1, 0)
        await store.journal_alarm("gate-2", AlarmCode.READER_OFFLINE, True, "osdp 1")
        await store.journal_alarm("gate-1", AlarmCode.GATE_FAULT, True, "")
        await store.journal_alarm("gate-1", AlarmCode.GATE_FAULT, False, "")  # cleared

        r = await page.sign_in(c, DUTY_CARD, DUTY_PIN)
        assert r.status_code == 303, r.text
        home = await c.get("/")
        assert 'id="section-duty"' in home.text
        duty = await c.get("/duty/")
        assert duty.status_code == 200
        active = duty.text.split('id="active-alarms"')[1].split("</ul>")[0]
        assert "gate-2" in active and "A reader or camera is offline" in active
        assert "gate-1" not in active  # the fault was cleared
        assert duty.text.count("<li>", duty.text.index('id="recent-alarms"')) == 3
        stats = await store.outbox_stats()
        assert stats.backlog >= 3 and f'id="backlog">{stats.backlog}<' in duty.text
        assert 'data-signal="alarm"' in duty.text  # the link is not (yet) taken as down

    # a class teacher has no duty section
    async with staff_page(tmp_path / "t") as page, httpx.AsyncClient(base_url=page.url) as c:
        r = await page.sign_in(c, TEACHER_CARD, TEACHER_PIN)
        assert r.status_code == 303
        assert 'id="section-duty"' not in (await c.get("/")).text
        assert (await c.get("/duty/")).status_code == 403


def alarm(seq: int, terminal: str, code: AlarmCode, active: bool) -> AlarmEvent:
    return AlarmEvent(seq=seq, at_ms=seq, terminal=terminal, code=code, active=active)


def test_rules() -> None:
    newest_first = [
        alarm(5, "gate-1", AlarmCode.GATE_FAULT, False),
        alarm(4, "gate-2", AlarmCode.READER_OFFLINE, True),
        alarm(3, "gate-1", AlarmCode.GATE_FAULT, True),  # older than its clearance
        alarm(2, "gate-2", AlarmCode.READER_OFFLINE, False),
    ]
    assert [a.seq for a in active_alarms(newest_first)] == [4]
    assert not link_down(0, 0, 10**9)  # nothing waiting: nothing to say
    assert not link_down(5, 1_000, 1_000 + 119_999)
    assert link_down(5, 1_000, 1_000 + 120_000)
    assert signal([], True) is Signal.QUIET
    assert signal(active_alarms(newest_first), False) is Signal.ALARM
    assert signal(active_alarms(newest_first), True) is Signal.ALARM_OFFLINE
    assert beep_due(Signal.ALARM_OFFLINE, None, 5, 900_000)
    assert not beep_due(Signal.ALARM_OFFLINE, 5, 5 + 899_999, 900_000)
    assert beep_due(Signal.ALARM_OFFLINE, 5, 5 + 900_000, 900_000)
    assert not beep_due(Signal.ALARM, None, 5, 900_000)


async def test_the_duty_page_shows_the_clock_the_full_store_and_the_evacuation(
    tmp_path: Path,
) -> None:
    """What the person on duty sees of the school's faults (README, "Operations: faults and
    what staff see"): the clock in doubt with both times, a store that cannot write (which the
    journal cannot hold), the evacuation list of who is inside."""
    import asyncio
    import datetime as dt

    from edge.clock_guard import ClockGuard
    from edge.core.model import Presence
    from edge.daemon import guard_clock
    from edge.evacuation import Evacuation
    from edge.pipeline import StoreFault
    from edge.school_faults import SchoolFaults

    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        store = page.store
        await store.apply_local(
            [
                StaffUpsert(staff=StaffRecord(id="d1", roles=["duty_deputy"], display_name="Д.")),
                CardBind(
                    card=CardBinding(
                        credential=DUTY_CARD, owner_kind=OwnerKind.STAFF, owner_id="d1"
                    )
                ),
            ]
        )
        await store.set_staff_pin("d1", verifier(KEY, "d1", DUTY_PIN), 1, 0)
        offset = [dt.timedelta(0)]
        guard = ClockGuard(lambda: dt.datetime.now(dt.UTC) + offset[0])
        pending: set[asyncio.Task[int]] = set()
        guard_clock(store, guard, pending)  # as the daemon does: a doubt is journaled
        evacuation = Evacuation(store, guard.now)
        ctx = page.server.ctx
        faults = SchoolFaults(guard, evacuation, ctx.pipeline)
        ctx.extras["faults"] = faults
        assert (await page.sign_in(c, DUTY_CARD, DUTY_PIN)).status_code == 303

        duty = (await c.get("/duty/")).text
        assert 'data-doubt="no"' in duty and 'id="evacuation"' not in duty
        assert 'id="store-full"' not in duty

        offset[0] = -dt.timedelta(days=365)  # the wall clock jumps back a year
        guard.now()
        await asyncio.gather(*pending)
        ctx.pipeline.store_fault = StoreFault(guard.now(), 4, "database or disk is full")
        day = guard.now().astimezone(store.policy.timezone if store.policy else dt.UTC).date()
        student = next(iter(store.state.students))
        store.state.presence_by_person[student] = (day, Presence.INSIDE)
        store.state.presence_by_person["staff:t1"] = (day, Presence.INSIDE)
        await evacuation.set(True, "gate-1")

        duty = (await c.get("/duty/")).text
        assert 'data-doubt="yes"' in duty and "In doubt: the system counts" in duty
        year_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=365)).year
        assert str(year_ago) in duty.split('id="clock-wall">')[1][:40]
        assert 'id="store-full"' in duty and 'id="store-refused">4<' in duty
        active = duty.split('id="active-alarms"')[1].split("</ul>")[0]
        assert "The store cannot write" in active and "The clock is in doubt" in active
        assert "EVACUATION" in duty and 'id="inside-count">2<' in duty
        assert f'data-person="{student}"' in duty and 'data-person="t1"' in duty
        assert "Fire alarm: every turnstile is free" in duty  # journaled, so in the alarms
