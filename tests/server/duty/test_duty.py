"""Named responsibility per shift, end to end on PostgreSQL: the administrator plans the week in
the console, the page shows who is on duty now, an edge's alarm (stored as ingest stores it)
reaches that person by SMS through a real HTTP gateway; with nobody named it goes to the school
administrators; an edge silent for longer than the grace period raises its own alarm. The senior
counsellor sees the roster but does not plan it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts.access import PERMISSIONS, Grant, Role
from server.accounts.models import User
from server.accounts.service import create_user
from server.clock import now_ms
from server.duty import rules
from server.duty.models import DutyAlert
from server.duty.service import deliver_alerts, route_alarms
from server.models import Device
from server.notify.delivery import Sender
from server.notify.rules import Channel
from server.notify.settings import NotifySettings
from simulators.notify_sinks import SmsSink
from tests.support.console import World, password_of
from tests.support.notify import add_device, store

ZONE = ZoneInfo("Asia/Almaty")


def sender(sms: SmsSink):  # type: ignore[no-untyped-def]
    s = Sender(NotifySettings(sms_url=sms.url()))
    return lambda ch, addr, key, body: s.send(Channel(ch), addr, key, body)


def test_alarm_reaches_the_deputy_on_duty_then_the_admins(
    make_browser, db: Session, world: World, sms: SmsSink
) -> None:  # type: ignore[no-untyped-def]
    duty = db.get_one(User, world.users["duty1"])
    duty.full_name = "Абдрахманова П.К."
    duty.phone = "+77015551001"
    admin = db.get_one(User, world.users["admin1"])
    admin.phone = "+77015551002"
    db.commit()
    today = dt.datetime.now(ZONE).date()

    b = make_browser("admin1")
    r = b.get("/duty?school=S1")
    assert r.status_code == 200 and 'id="roster"' in r.text
    assert "on-duty-name" not in r.text  # nobody named yet
    # a bad time and a user of another school are refused with the field named
    r = b.post(
        "/schools/S1/duty",
        {"day": today.isoformat(), "shift": "1", "user": str(duty.pk), "starts": "25:00"},
    )
    assert r.status_code == 400 and 'data-field="starts"' in r.text
    r = b.post(
        "/schools/S1/duty",
        {"day": today.isoformat(), "shift": "1", "user": str(world.users["admin3"])},
    )
    assert r.status_code == 400 and 'data-field="user"' in r.text
    r = b.post(
        "/schools/S1/duty",
        {
            "day": today.isoformat(),
            "shift": "1",
            "user": str(duty.pk),
            "starts": "00:00",
            "ends": "23:59",
        },
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/duty?school=S1&week={today.isoformat()}"
    r = b.get(f"/duty?school=S1&week={today.isoformat()}")
    assert 'id="on-duty-name">Абдрахманова П.К.<' in r.text

    # the edge raises "reader offline": routed to the deputy on duty, sent by SMS
    dev = add_device(db, "S1", "s1-edge")
    store(db, dev, "S1", "alarm", None, code="reader_offline", active=True, detail="gate-2")
    store(db, dev, "S1", "alarm", None, code="reader_offline", active=False)  # a clearance
    now = now_ms()
    assert route_alarms(db, now) == 1
    db.commit()
    assert route_alarms(db, now) == 0  # nothing twice
    assert deliver_alerts(db, sender(sms), now) == (1, 0)
    db.commit()
    got = sms.wait_for(1)
    assert got[0].to == "+77015551001" and "gate-1" in got[0].message
    alert = db.scalars(select(DutyAlert)).one()
    assert (alert.routed_to, alert.status, alert.user_pk) == ("on_duty", "sent", duty.pk)

    # nobody named: the next alarm goes to the school's administrators
    r = b.post("/schools/S1/duty", {"day": today.isoformat(), "shift": "1", "user": ""})
    assert r.status_code == 303
    store(db, dev, "S1", "alarm", None, code="outbox_high_water", active=True)
    assert route_alarms(db, now_ms()) == 1
    assert deliver_alerts(db, sender(sms), now_ms()) == (1, 0)
    db.commit()
    assert sms.wait_for(2)[1].to == "+77015551002"

    # an enrolled edge offline for longer than the grace period
    d = db.get_one(Device, dev)
    d.enrolled_at_ms = now - 3_600_000
    d.online = False
    d.online_changed_ms = now_ms() - 10 * 60_000
    db.commit()
    assert route_alarms(db, now_ms()) == 1
    db.commit()
    codes = [a.code for a in db.scalars(select(DutyAlert).order_by(DutyAlert.id))]
    assert codes == ["reader_offline", "outbox_high_water", rules.EDGE_OFFLINE]
    r = b.get("/duty?school=S1")
    assert r.text.count('class="alert-row"') == 3

    # an alarm of another school never reaches S1's people
    other = add_device(db, "S3", "s3-edge")
    store(db, other, "S3", "alarm", None, code="gate_fault", active=True)
    route_alarms(db, now_ms())
    db.commit()
    s3 = db.scalars(select(DutyAlert).where(DutyAlert.school_id == "S3")).one()
    assert s3.user_pk == world.users["admin3"] and s3.routed_to == "school_admin"


def test_senior_counsellor_sees_the_roster_but_does_not_plan(
    make_browser, db: Session, world: World
) -> None:  # type: ignore[no-untyped-def]
    u = create_user(
        db,
        "counsellor1",
        "Аға тәлімгер",
        [Grant(Role.SENIOR_COUNSELLOR, school_id="S1")],
        password=password_of("counsellor1"),
    )
    u.must_change_password = False
    db.commit()
    assert Role.SENIOR_COUNSELLOR in PERMISSIONS["duty.view"]
    assert Role.SENIOR_COUNSELLOR not in PERMISSIONS["duty.plan"]
    b = make_browser("counsellor1")
    assert b.get("/duty").status_code == 200
    assert b.get("/duty?school=S2").status_code == 404
    assert b.get("/reports/evacuation?school=S1").status_code == 200
    r = b.post("/schools/S1/duty", {"day": "2026-12-07", "shift": "1", "user": ""})
    assert r.status_code == 403


def test_rules() -> None:
    d = dt.date(2026, 12, 7)
    slots = [rules.Slot(d, 1, "07:00", "13:30", 10), rules.Slot(d, 2, "13:30", "19:30", 11)]
    assert rules.on_duty(slots, dt.datetime(2026, 12, 7, 13, 29)) == slots[0]
    assert rules.on_duty(slots, dt.datetime(2026, 12, 7, 13, 30)) == slots[1]
    assert rules.on_duty(slots, dt.datetime(2026, 12, 7, 19, 30)) is None
    assert rules.on_duty(slots, dt.datetime(2026, 12, 8, 9, 0)) is None
    assert rules.recipients(5, [1, 2]) == [rules.Recipient(5, "on_duty")]
    assert [r.user_pk for r in rules.recipients(None, [2, 1, 2])] == [1, 2]
    assert rules.recipients(None, []) == [rules.Recipient(None, "nobody")]
    assert rules.channel_for(" ", "a@b", 3) == ("email", "a@b")
    assert rules.channel_for("", "a@b", 3, push=True) == ("push", "3")
    assert rules.channel_for("", "", 3) is None
    for bad in (("shift", 4, "07:00", "08:00"), ("ends", 1, "08:00", "07:00")):
        try:
            rules.check_window(bad[1], bad[2], bad[3])  # type: ignore[arg-type]
        except rules.DutyError as err:
            assert err.field == bad[0]
        else:
            raise AssertionError(bad)
    assert len(rules.week_of(d)) == 6 and rules.week_of(d)[0].weekday() == 0


def test_cli_alarms_once(
    pg_console_url: str,
    db: Session,
    world: World,
    sms: SmsSink,
    capsys,  # type: ignore[no-untyped-def]
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from server.cli import main

    admin = db.get_one(User, world.users["admin1"])
    admin.phone = "+77015551002"
    db.commit()
    dev = add_device(db, "S1", "s1-edge")
    store(db, dev, "S1", "alarm", None, code="gate_fault", active=True)
    monkeypatch.setenv("QAQPA_NOTIFY_SMS_URL", sms.url())
    assert main(["duty", "alarms", "--database-url", pg_console_url, "--once"]) == 0
    assert "1 routed, 1 sent, 0 failed" in capsys.readouterr().out
    assert sms.wait_for(1)[0].to == "+77015551002"
