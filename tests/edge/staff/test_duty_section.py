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
