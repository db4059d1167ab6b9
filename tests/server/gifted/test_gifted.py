"""The registry through the console: a teacher nominates in their class, the coordinator enters
the child only with the parent's registry consent, keeps the roadmap (activities, results,
support), the statistics and the teachers' list count it (page, XLSX, PDF), reminders reach the
outbox once, and withdrawing the consent removes what it covered; every view and change is
audited."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry
from server.cli import main
from server.clock import now_ms
from server.gifted import service
from server.gifted.models import Activity, GiftedEntry, Nomination, Reminder, Support
from server.notify.delivery import DeliveryWorker
from server.notify.models import OutboxMessage
from server.notify.settings import NotifySettings
from server.people.models import StaffMember, Student
from simulators.notify_sinks import SmsSink
from tests.support.consents import changes, give
from tests.support.console import World


def _staff(db: Session, school: str, name: str) -> int:
    m = StaffMember(school_id=school, ref=f"t-{name}", full_name=name)
    db.add(m)
    db.commit()
    return m.pk


def _audits(db: Session, pk: int) -> list[str]:
    db.expire_all()
    return list(
        db.scalars(
            select(AuditEntry.action + ":" + AuditEntry.summary).where(
                AuditEntry.student_pk == pk, AuditEntry.subject == "gifted"
            )
        )
    )


def test_nominate_enter_roadmap_report_and_withdraw(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    pk = world.students["s1-3a-1"]
    other = world.students["s1-7b-1"]
    teacher_pk = _staff(db, "S1", "Gulnar Teacher")
    admin = make_browser("admin1")
    assert give(admin, pk).status_code == 200  # data consent
    today = dt.date.today()

    # a class teacher nominates in their class only
    teacher = make_browser("teacher1")
    form = {
        "basis": "olympiad",
        "subject": "Mathematics",
        "detail": "Regional olympiad",
        "level": "region",
        "place": "1",
        "teacher": str(teacher_pk),
        "nominated_on": today.isoformat(),
    }
    r = teacher.post(f"/gifted/student/{pk}/nominate", form)
    assert r.status_code == 200 and 'id="saved"' in r.text
    assert teacher.post(f"/gifted/student/{other}/nominate", form).status_code == 404
    assert teacher.get(f"/gifted/student/{pk}").status_code == 403  # no roadmap for a teacher
    bad = teacher.post(f"/gifted/student/{pk}/nominate", form | {"place": ""})
    assert bad.status_code == 400 and 'data-field="place"' in bad.text
    assert db.scalar(select(func.count()).select_from(Nomination)) == 1

    # the coordinator cannot enter the child without the parent's registry consent
    coord = make_browser("gifted1")
    r = coord.post(f"/gifted/student/{pk}/enter", {})
    assert r.status_code == 400 and 'data-field="enter"' in r.text
    assert db.scalar(select(func.count()).select_from(GiftedEntry)) == 0
    assert give(admin, pk, kind="gifted").status_code == 200
    assert all(c.get("consent", {}).get("kind") != "gifted" for c in changes(db, "S1"))
    assert coord.post(f"/gifted/student/{pk}/enter", {}).status_code == 303

    # the roadmap: goals, an activity done with a prize, support planned and paid
    assert (
        coord.post(
            f"/gifted/student/{pk}/roadmap", {"abilities": "Mathematics", "goals": "IMO team"}
        ).status_code
        == 303
    )
    start = today - dt.timedelta(days=3)
    r = coord.post(
        f"/gifted/student/{pk}/activities",
        {
            "kind": "olympiad",
            "title": "Republican olympiad",
            "subject": "Mathematics",
            "level": "national",
            "planned_from": start.isoformat(),
            "planned_to": start.isoformat(),
            "teacher": str(teacher_pk),
        },
    )
    assert r.status_code == 303
    coord.post(
        f"/gifted/student/{pk}/activities",
        {
            "kind": "camp",
            "title": "Summer camp",
            "planned_from": (today + dt.timedelta(days=5)).isoformat(),
        },
    )
    act = db.scalars(select(Activity).order_by(Activity.pk)).first()
    assert act is not None
    r = coord.post(
        f"/gifted/student/{pk}/activities/result",
        {
            "item": str(act.pk),
            "status": "done",
            "done_on": start.isoformat(),
            "result": "Gold",
            "place": "1",
        },
    )
    assert r.status_code == 303
    # an item of no roadmap: a form error, nothing changed
    r = coord.post(
        f"/gifted/student/{pk}/activities/result",
        {"item": "999999", "status": "done", "done_on": start.isoformat()},
    )
    assert r.status_code == 400 and 'data-field="item"' in r.text
    coord.post(
        f"/gifted/student/{pk}/support",
        {
            "kind": "stipend",
            "title": "Akim's stipend",
            "planned_on": start.isoformat(),
            "amount": "25000",
        },
    )
    sup = db.scalars(select(Support)).one()
    r = coord.post(
        f"/gifted/student/{pk}/support/paid",
        {"item": str(sup.pk), "paid_on": start.isoformat(), "amount": "25 000"},
    )
    assert r.status_code == 303
    page = coord.get(f"/gifted/student/{pk}")
    assert page.status_code == 200
    assert "Republican olympiad" in page.text and "Gold" in page.text
    db.expire_all()
    entry = db.scalars(select(GiftedEntry)).one()
    plan = service.plan_fact_of(db, entry, today)
    assert (plan.activities_planned, plan.activities_due, plan.activities_done, plan.prizes) == (
        2,
        1,
        1,
        1,
    )
    assert plan.support_paid_tiyn == 2_500_000 and plan.done_percent == 100.0

    # the school's locality makes the child rural; the statistics and the teachers count it
    assert coord.post("/gifted/schools/S1/locality", {"locality": "rural"}).status_code == 303
    assert coord.post("/gifted/schools/S3/locality", {"locality": "rural"}).status_code == 404
    reg = coord.get("/gifted?school=S1")
    assert 'id="total">1<' in reg.text
    rows = service.annual_statistics(db, {"S1"}, start.year)
    assert [
        (r.region, r.gifted, r.rural, r.prizes, r.support_paid_tiyn["stipend"]) for r in rows
    ] == [("R1", 1, 1, 1, 2_500_000)]
    x = coord.get(f"/gifted/statistics?year={start.year}&format=xlsx")
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxml")
    ws = load_workbook(io.BytesIO(x.content)).active
    assert ws is not None
    values = [tuple(row) for row in ws.iter_rows(values_only=True)]
    region_row = next(v for v in values if v and v[0] == "Region One")
    assert region_row[1:4] == (1, 1, 0)
    p = coord.get(f"/gifted/teachers?year={start.year}&format=pdf")
    assert p.status_code == 200 and p.content.startswith(b"%PDF")
    t = coord.get(f"/gifted/teachers?year={start.year}")
    assert "Gulnar Teacher" in t.text
    teachers = service.prize_teachers(db, None, start.year)
    # the olympiad nomination and the roadmap's olympiad: two prize places, one child
    assert [(r.name, r.award.prizes, r.award.firsts, len(r.award.students)) for r in teachers] == [
        ("Gulnar Teacher", 2, 2, 1)
    ]

    # views and changes are audited, naming fields and counts, not values
    audits = _audits(db, pk)
    assert any(a.startswith("view:roadmap") for a in audits)
    assert any("entered in the gifted-children registry" in a for a in audits)
    assert any("activity" in a and "result recorded" in a for a in audits)
    assert not any("IMO team" in a or "Gold" in a for a in audits)

    # withdrawal removes the entry, the roadmap and the nominations
    r = give(admin, pk, kind="gifted", decision="withdrawn")
    assert r.status_code == 200
    assert 'id="flash"' in r.text
    db.expire_all()
    for model in (GiftedEntry, Activity, Support, Nomination):
        assert db.scalar(select(func.count()).select_from(model)) == 0, model
    assert any("gifted consent withdrawn" in a for a in _audits(db, pk))


def test_reminders_reach_the_outbox_once_and_withdrawal_cancels_them(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    pk = world.students["s1-3a-1"]  # has a guardian with a phone (the world's parent)
    admin = make_browser("admin1")
    give(admin, pk)
    give(admin, pk, kind="notifications")
    give(admin, pk, kind="gifted")
    today = dt.date.today()
    now = now_ms()
    db.add(
        Nomination(
            student_pk=pk,
            school_id="S1",
            basis="teacher",
            subject="Physics",
            detail="",
            nominated_on=today,
            recorded_at_ms=now,
        )
    )
    db.commit()
    coord = make_browser("gifted1")
    assert coord.post(f"/gifted/student/{pk}/enter", {}).status_code == 303
    coord.post(
        f"/gifted/student/{pk}/activities",
        {
            "kind": "technopark",
            "title": "Technopark robotics",
            "planned_from": (today + dt.timedelta(days=2)).isoformat(),
        },
    )
    added = service.send_reminders(db, today, 7)
    db.commit()
    assert added == 2  # the coordinator and the one guardian
    assert service.send_reminders(db, today, 7) == 0  # a rerun adds nothing
    db.commit()
    out = db.scalars(
        select(OutboxMessage).where(OutboxMessage.device_pk == service.OUTBOX_DEVICE)
    ).all()
    assert len(out) == 1 and out[0].status == "queued" and out[0].kind == "gifted"
    assert "Technopark robotics" in out[0].body
    assert "Technopark robotics" in coord.get("/gifted/reminders").text
    give(admin, pk, kind="gifted", decision="withdrawn")
    db.expire_all()
    assert db.scalars(select(OutboxMessage.status)).all() == ["cancelled"]
    assert db.scalar(select(func.count()).select_from(Reminder)) == 0


def test_no_reminder_to_a_parent_without_notification_consent(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    pk = world.students["s1-3a-1"]
    admin = make_browser("admin1")
    give(admin, pk)
    give(admin, pk, kind="gifted")
    today = dt.date.today()
    db.add(
        Nomination(
            student_pk=pk,
            school_id="S1",
            basis="teacher",
            subject="Art",
            detail="",
            nominated_on=today,
            recorded_at_ms=now_ms(),
        )
    )
    db.commit()
    coord = make_browser("gifted1")
    coord.post(f"/gifted/student/{pk}/enter", {})
    coord.post(
        f"/gifted/student/{pk}/support",
        {
            "kind": "trip",
            "title": "Trip to Astana",
            "planned_on": today.isoformat(),
            "amount": "90000",
        },
    )
    assert service.send_reminders(db, today, 7) == 1  # the coordinator only
    db.commit()
    assert db.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def _entered(make_browser, db: Session, ref_pk: int, admin_login: str = "admin1") -> None:  # type: ignore[no-untyped-def]
    admin = make_browser(admin_login)
    give(admin, ref_pk)
    give(admin, ref_pk, kind="gifted")
    db.add(
        Nomination(
            student_pk=ref_pk,
            school_id=db.get_one(Student, ref_pk).school_id,
            basis="teacher",
            subject="Chemistry",
            detail="",
            nominated_on=dt.date.today(),
            recorded_at_ms=now_ms(),
        )
    )
    db.commit()
    op = make_browser("operator")
    assert op.post(f"/gifted/student/{ref_pk}/enter", {}).status_code == 303


def test_the_cli_queues_a_parents_reminder_that_the_notify_worker_delivers(
    make_browser,
    world: World,
    db: Session,
    pg_console_url: str,
    engine: Engine,
    nset: NotifySettings,
    sms: SmsSink,
    capsys: pytest.CaptureFixture[str],
) -> None:  # type: ignore[no-untyped-def]
    pk = world.students["s1-3a-1"]  # the world's parent has a phone
    _entered(make_browser, db, pk)
    give(make_browser("admin1"), pk, kind="notifications")
    today = dt.date.today()
    coord = make_browser("gifted1")
    coord.post(
        f"/gifted/student/{pk}/activities",
        {
            "kind": "olympiad",
            "title": "City chemistry olympiad",
            "planned_from": (today + dt.timedelta(days=1)).isoformat(),
        },
    )
    url = ["--database-url", pg_console_url]
    assert main(["gifted", "remind", *url, "--today", today.isoformat(), "--days", "3"]) == 0
    assert "gifted reminders added: 2" in capsys.readouterr().out
    assert main(["gifted", "remind", *url, "--today", today.isoformat()]) == 0
    assert "gifted reminders added: 0" in capsys.readouterr().out
    assert main(["gifted", "remind", *url, "--today", "tomorrow"]) == 2
    DeliveryWorker(engine, nset, rand=lambda: 0.0).run_once()
    [got] = sms.delivered
    assert got.to == "+77010000001"
    # the first name and the activity, in the parent's language (Kazakh); no surname
    assert "Name3AS1" in got.message and "City chemistry olympiad" in got.message
    assert "Surname1" not in got.message and "еске салу" in got.message


def test_statistics_and_teachers_keep_to_the_coordinators_region(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    for ref in ("s1-3a-1", "s3-3a-1"):
        _entered(make_browser, db, world.students[ref], "operator")
    op = make_browser("operator")
    for school in ("S1", "S3"):
        assert (
            op.post(f"/gifted/schools/{school}/locality", {"locality": "urban"}).status_code == 303
        )
    year = dt.date.today().year
    regional = make_browser("giftedr")
    page = regional.get(f"/gifted/statistics?year={year}")
    assert "Region One" in page.text and "Region Two" not in page.text
    assert "Region Two" in op.get(f"/gifted/statistics?year={year}").text
    # a school's coordinator sees their school's registry only
    assert regional.get("/gifted?school=S3").status_code == 404
    assert make_browser("gifted1").get("/gifted?school=S2").status_code == 404
    rows = service.annual_statistics(db, None, year)
    assert [(r.region, r.gifted, r.other) for r in rows] == [("R1", 1, 1), ("R2", 1, 1)]
