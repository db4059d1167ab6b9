"""Report pages and downloads through the console, on real PostgreSQL, with events inserted
straight into the ``events`` table (as ingest stores them)."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import (
    CategoryMembership,
    MealPeriodDoc,
    PolicyDoc,
    PolicySet,
    ShiftDoc,
    StudentRecord,
    StudentUpsert,
)
from server.audit.models import AuditEntry
from server.clock import now_ms
from server.models import Device, IngestProgress, ServerAlarm, StoredEvent
from server.people.models import SchoolClass, StaffMember
from server.reports import calc, service
from server.sync.changelog import append_changes
from tests.support.console import World, add_student

ZONE = ZoneInfo("Asia/Almaty")
DAY = dt.date(2026, 11, 20)


def at(day: dt.date, hhmm: str) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    return int(dt.datetime.combine(day, dt.time(h, m), ZONE).timestamp() * 1000)


class Events:
    """Inserts uplink events of one school's edge directly into ``events``."""

    def __init__(self, db: Session, school: str, device: str | None = None) -> None:
        self.db = db
        self.school = school
        dev = Device(
            school_id=school, device_id=device or f"{school.lower()}-edge", created_at_ms=0
        )
        db.add(dev)
        db.flush()
        db.add(IngestProgress(device_pk=dev.pk, committed_through=0, gaps=[], updated_at_ms=0))
        self.device = dev
        self.seq = 0

    def add(self, kind: str, at_ms: int, **fields: Any) -> int:
        self.seq += 1
        payload = {
            "seq": self.seq,
            "at_ms": at_ms,
            "terminal": fields.pop("terminal", "gate-1"),
            "kind": kind,
            **fields,
        }
        self.db.add(
            StoredEvent(
                device_pk=self.device.pk,
                seq=self.seq,
                school_id=self.school,
                at_ms=at_ms,
                kind=kind,
                terminal=payload["terminal"],
                student_id=fields.get("student_id"),
                staff_id=fields.get("staff_id"),
                payload=payload,
                received_at_ms=at_ms,
            )
        )
        return self.seq

    def meal(
        self, ref: str, day: dt.date, hhmm: str, meal: str, period: str = "lunch", amount: int = 0
    ) -> None:
        self.add(
            "meal_served",
            at(day, hhmm),
            student_id=ref,
            period=period,
            local_date=day.isoformat(),
            meal=meal,
            amount_tiyn=amount,
        )


def policy(db: Session, school: str = "S1") -> None:
    doc = PolicyDoc(
        timezone="Asia/Almaty",
        free_meal_grades=[1, 2, 3, 4],
        free_meal_categories=["large_family", "orphan"],
        shifts=[
            ShiftDoc(number=1, entry_from="07:00", entry_to="12:00", starts_at="08:00"),
            ShiftDoc(number=2, entry_from="12:00", entry_to="18:00", starts_at="13:30"),
        ],
        meal_periods=[
            MealPeriodDoc(name="breakfast", shifts=[1], from_="09:00", to="10:00"),
            MealPeriodDoc(name="lunch", shifts=[1, 2], from_="12:00", to="13:00"),
        ],
    )
    orphan = CategoryMembership(
        code="orphan", valid_from="2026-09-01", valid_to="2027-05-31", document="No. 5"
    )
    append_changes(
        db,
        school,
        [
            PolicySet(policy=doc),
            StudentUpsert(student=StudentRecord(id="s1-3a-1", grade=3, class_name="3A", shift=1)),
            StudentUpsert(student=StudentRecord(id="s1-3a-2", grade=3, class_name="3A", shift=1)),
            StudentUpsert(
                student=StudentRecord(
                    id="s1-7b-1", grade=7, class_name="7B", shift=2, categories=[orphan]
                )
            ),
            StudentUpsert(student=StudentRecord(id="s1-7b-2", grade=7, class_name="7B", shift=2)),
        ],
    )


@pytest.fixture
def s1(db: Session, world: World) -> Events:
    policy(db)
    db.add(StaffMember(school_id="S1", ref="t-1", full_name="Teacher Aigerim"))
    ev = Events(db, "S1")
    # 3A (shift 1, lessons 08:00): -1 on time, -2 late via a manual pass by t-1.
    ev.add("entry", at(DAY, "07:50"), student_id="s1-3a-1")
    ev.add("exit", at(DAY, "13:05"), student_id="s1-3a-1")
    ev.add(
        "manual_pass", at(DAY, "08:15"), student_id="s1-3a-2", authorised_by="t-1", direction="in"
    )
    # 7B (shift 2, lessons 13:30): -1 arrives 13:20; -2 absent (a granted entry not taken).
    ev.add("entry", at(DAY, "13:20"), student_id="s1-7b-1")
    seq = ev.add("entry", at(DAY, "13:25"), student_id="s1-7b-2")
    ev.add("not_passed", at(DAY, "13:25"), student_id="s1-7b-2", granted_seq=seq)
    # S2's events never show in S1's reports
    Events(db, "S2").add("entry", at(DAY, "07:00"), student_id="s2-3a-1")
    db.commit()
    return ev


def test_attendance_day_for_a_class(make_browser, s1: Events, db: Session, world: World) -> None:  # type: ignore[no-untyped-def]
    b = make_browser("admin1")
    r = b.get(f"/reports/attendance?school=S1&class={world.classes['S1/3A']}&day=2026-11-20")
    assert r.status_code == 200, r.text
    rows = re.findall(
        r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>",
        r.text,
        re.S,
    )
    assert len(rows) == 2
    first, second = rows
    assert "Surname1" in first[0] and first[1] == "07:50" and first[2] == "13:05" and first[3] == ""
    assert "Surname2" in second[0] and second[1] == "08:15" and "badge warn" in second[3]
    assert "Teacher Aigerim" in second[4]
    # the whole school: per class
    r = b.get("/reports/attendance?school=S1&day=2026-11-20")
    assert r.status_code == 200
    assert re.search(
        r"<td>3A</td><td class=\"num\">2</td><td class=\"num\">2</td><td class=\"num\">1</td><td class=\"num\">0</td><td class=\"num\">1</td>",
        r.text,
    )
    assert re.search(
        r"<td>7B</td><td class=\"num\">2</td><td class=\"num\">1</td><td class=\"num\">0</td><td class=\"num\">1</td>",
        r.text,
    )


def test_attendance_xlsx_and_pdf_downloads_are_audited(
    make_browser, s1: Events, db: Session, world: World
) -> None:  # type: ignore[no-untyped-def]
    b = make_browser("admin1")
    c7 = world.classes["S1/7B"]
    r = b.get(f"/reports/attendance?school=S1&class={c7}&day=2026-11-20&format=xlsx")
    assert r.status_code == 200
    assert (
        r.headers["content-type"]
        == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert 'filename="attendance_S1_7B_2026-11-20.xlsx"' in r.headers["content-disposition"]
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    values = list(ws.iter_rows(values_only=True))
    body = [v for v in values if v and isinstance(v[0], str) and v[0].startswith("Surname")]
    assert [(v[1], v[2], v[5]) for v in body] == [("7B", "13:20", None), ("7B", None, "иә")]
    totals = values[-1]
    assert totals[1:3] == (2, 1) and totals[5] == 1  # students, present, absent
    r = b.get(f"/reports/attendance?school=S1&class={c7}&day=2026-11-20&format=pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF") and b"School No. 1" in r.content
    exports = (
        db.execute(
            select(AuditEntry.summary).where(
                AuditEntry.action == "export", AuditEntry.subject == "reports.attendance"
            )
        )
        .scalars()
        .all()
    )
    assert len(exports) == 2 and all(f"class_pk={c7}" in s for s in exports)
    assert not any("Surname" in s for s in exports)  # no names in the audit log


def test_attendance_month_with_chart(make_browser, s1: Events, db: Session, world: World) -> None:  # type: ignore[no-untyped-def]
    s1.add("entry", at(DAY + dt.timedelta(days=3), "08:30"), student_id="s1-3a-1")  # late, Monday
    db.commit()
    b = make_browser("teacher1")
    r = b.get("/reports/attendance/month?school=S1&month=2026-11")
    assert r.status_code == 200
    assert '<svg class="chart"' in r.text and '<title id="attendance-chart-t">' in r.text
    assert "Surname1" in r.text and "Name7BS1" not in r.text  # a class teacher: only 3A
    r = b.get("/reports/attendance/month?school=S1&month=2026-11&format=xlsx")
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    body = {
        v[0]: v[2:5]
        for v in ws.iter_rows(values_only=True)
        if v and isinstance(v[0], str) and v[0].startswith("Surname")
    }
    assert body == {"Surname1 Name3AS1": (2, 1, 0), "Surname2 Name3AS1": (1, 1, 1)}


def test_scope_of_reports(make_browser, s1: Events, world: World) -> None:  # type: ignore[no-untyped-def]
    c3, c7 = world.classes["S1/3A"], world.classes["S1/7B"]
    teacher = make_browser("teacher1")
    r = teacher.get("/reports/attendance?day=2026-11-20")
    assert r.status_code == 200 and "Surname1 Name3AS1" in r.text and "Name7BS1" not in r.text
    assert teacher.get(f"/reports/attendance?school=S1&class={c7}").status_code == 404
    assert teacher.get("/reports/attendance?school=S2").status_code == 404
    assert teacher.get("/reports/meals?school=S1").status_code == 403
    admin3 = make_browser("admin3")
    for url in (
        "/reports/attendance?school=S1",
        f"/reports/attendance?school=S3&class={c3}",
        "/reports/meals?school=S1",
        "/reports/library?school=S1",
        "/reports/evacuation?school=S1",
        "/reports/meals/statement?school=S1&month=2026-11&format=pdf",
    ):
        assert admin3.get(url).status_code == 404, url
    canteen = make_browser("canteen1")
    assert canteen.get("/reports/meals?school=S1").status_code == 200
    assert canteen.get("/reports/attendance?school=S1").status_code == 403
    assert canteen.get("/reports/evacuation").status_code == 403
    regional = make_browser("regional")
    r = regional.get("/reports/attendance?day=2026-11-20")
    assert r.status_code == 200 and "School No. 2" in r.text and "School No. 3" not in r.text
    assert regional.get("/reports/attendance?school=S3").status_code == 404
    parent = make_browser("parent1")
    assert parent.get("/reports/attendance").status_code == 403
    assert parent.get("/status").status_code == 403


def test_bad_filters_are_precise_errors(make_browser, world: World) -> None:  # type: ignore[no-untyped-def]
    b = make_browser("admin1")
    r = b.get("/reports/attendance?day=2026-13-45")
    assert r.status_code == 400 and "day=&#39;2026-13-45&#39;" in r.text
    r = b.get("/reports/meals?month=nov")
    assert r.status_code == 400 and "month=&#39;nov&#39;" in r.text
    assert b.get("/reports/library?format=doc").status_code == 400
    r = b.get("/reports/attendance?day=<script>x</script>")
    assert r.status_code == 400 and "<script>x" not in r.text and "&lt;script&gt;x" in r.text


def test_free_meals_and_monthly_statement(
    make_browser, s1: Events, db: Session, world: World
) -> None:  # type: ignore[no-untyped-def]
    d2 = DAY + dt.timedelta(days=1)
    s1.meal("s1-3a-1", DAY, "09:10", "free", "breakfast")
    s1.meal("s1-3a-1", DAY, "12:10", "free", "lunch")
    s1.meal("s1-3a-2", DAY, "12:15", "free", "lunch")
    s1.meal("s1-7b-1", DAY, "12:20", "free", "lunch")  # orphan
    s1.meal("s1-7b-1", d2, "12:20", "free", "lunch")
    s1.meal("s1-7b-2", DAY, "12:30", "paid", "lunch", 45_000)
    s1.meal("s1-7b-2", d2, "12:30", "paid", "lunch", 52_550)
    s1.meal("s1-3a-1", dt.date(2026, 10, 31), "12:00", "free", "lunch")  # another month
    db.commit()
    m = service.meal_month(db, "S1", dt.date(2026, 11, 1))
    assert m.categories == [calc.GRADES, "large_family", "orphan"]
    assert (
        m.report.free[(DAY, "lunch", calc.GRADES)] == 2
        and m.report.free[(DAY, "lunch", "orphan")] == 1
    )
    b = make_browser("canteen1")
    r = b.get("/reports/meals?school=S1&month=2026-11")
    assert r.status_code == 200 and "meals-chart" in r.text
    assert "Free meals served" not in r.text  # Kazakh by default
    assert "Берілген тегін тамақ: 5" in r.text
    assert "975,50" in r.text  # paid revenue 450 + 525.50 tenge
    r = b.get("/reports/meals/statement?school=S1&month=2026-11&format=xlsx")
    assert (
        r.status_code == 200
        and 'filename="meal-statement_S1_2026-11.xlsx"' in r.headers["content-disposition"]
    )
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    values = list(ws.iter_rows(values_only=True))
    assert any(v[0] and "School No. 1" in str(v[0]) for v in values)
    assert any(v[0] and "2026-11" in str(v[0]) for v in values)
    header = next(v for v in values if v[0] == "Күн")
    assert header[1] == "Сыныптар 1–4" and header[-1] == "Барлығы"
    rows = {v[0]: v[1:5] for v in values if v[0] in ("2026-11-20", "2026-11-21", "Барлығы")}
    # columns: grades 1-4, large families, orphans, total
    assert rows["2026-11-20"] == (3, 0, 1, 4)
    assert rows["2026-11-21"] == (0, 0, 1, 1)
    assert rows["Барлығы"] == (3, 0, 2, 5)
    assert any(v[0] == "Мектеп директоры" for v in values)  # signature lines
    r = b.get("/reports/meals/statement?school=S1&month=2026-11&format=pdf")
    assert r.content.startswith(b"%PDF") and b"School No. 1" in r.content
    assert r.headers["content-disposition"].startswith(
        'attachment; filename="meal-statement_S1_2026-11.pdf"'
    )
    r = b.get("/reports/meals?school=S1&month=2026-11&format=xlsx")
    wb = load_workbook(io.BytesIO(r.content))
    paid = wb.worksheets[1]
    paid_rows = {
        v[0]: v[1:3]
        for v in paid.iter_rows(values_only=True)
        if v[0] in ("2026-11-20", "2026-11-21")
    }
    assert paid_rows == {"2026-11-20": (1, 450), "2026-11-21": (1, 525.5)}


def test_library_per_class_and_student(make_browser, s1: Events, db: Session, world: World) -> None:  # type: ignore[no-untyped-def]
    for ref in ("s1-3a-1", "s1-3a-1", "s1-3a-2", "s1-7b-1"):
        s1.add("library_visit", at(DAY, "11:00"), student_id=ref, terminal="lib-1")
    db.commit()
    b = make_browser("admin1")
    r = b.get("/reports/library?school=S1&month=2026-11")
    assert r.status_code == 200
    assert re.search(
        r"<td>3A</td><td class=\"num\">2</td><td class=\"num\">3</td><td class=\"num\">2</td>",
        r.text,
    )
    assert re.search(
        r"<td>7B</td><td class=\"num\">2</td><td class=\"num\">1</td><td class=\"num\">1</td>",
        r.text,
    )
    r = b.get(
        f"/reports/library?school=S1&class={world.classes['S1/3A']}&month=2026-11&format=xlsx"
    )
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    body = {
        v[0]: v[2] for v in ws.iter_rows(values_only=True) if v and str(v[0]).startswith("Surname")
    }
    assert body == {"Surname1 Name3AS1": 2, "Surname2 Name3AS1": 1}
    teacher = make_browser("teacher1")
    r = teacher.get("/reports/library?month=2026-11")
    assert r.status_code == 200 and "<td>7B</td>" not in r.text and "Surname2 Name3AS1" in r.text


def test_evacuation_headcount_now(make_browser, db: Session, world: World) -> None:  # type: ignore[no-untyped-def]
    ev = Events(db, "S1")
    db.add(StaffMember(school_id="S1", ref="t-1", full_name="Teacher Aigerim"))
    now = now_ms()
    start = calc.day_bounds(calc.local_day(now, "Asia/Almaty"), "Asia/Almaty")[0]
    t = [start + (now - start) * k // 10 for k in range(1, 10)]  # ordered moments of today
    ev.add("entry", start - 60_000, student_id="s1-7b-2")  # yesterday: not counted
    ev.add("entry", t[0], student_id="s1-3a-1")
    ev.add("entry", t[1], student_id="s1-3a-2")
    ev.add("exit", t[2], student_id="s1-3a-2")  # left
    ev.add("manual_pass", t[3], student_id="s1-7b-1", authorised_by="t-1", direction="in")
    ev.add("entry", t[4], staff_id="t-1")
    g = ev.add("exit", t[5], student_id="s1-3a-1")
    ev.add("not_passed", t[5], student_id="s1-3a-1", granted_seq=g)  # did not go out after all
    db.commit()
    hc = service.headcount(db, "S1", now)
    assert [p.ref for p in hc.students] == ["s1-3a-1", "s1-7b-1"] and hc.staff == [
        ("t-1", "Teacher Aigerim")
    ]
    b = make_browser("duty1")
    r = b.get("/reports/evacuation")
    assert r.status_code == 200
    assert 'id="students-inside">2<' in r.text and 'id="staff-inside">1<' in r.text
    assert "data-print" in r.text
    r = b.get("/reports/evacuation?format=pdf")
    assert r.content.startswith(b"%PDF") and b"School No. 1" in r.content
    assert r.headers["content-disposition"].startswith('attachment; filename="evacuation_S1_')
    teacher = make_browser("teacher1")
    r = teacher.get("/reports/evacuation")
    assert 'id="students-inside">1<' in r.text and "staff-inside" not in r.text
    assert "Name7BS1" not in r.text


def test_evacuation_for_a_school_of_2000(db: Session, world: World) -> None:
    """2,000 students: the window query returns each person's last pass correctly."""
    cls = SchoolClass(school_id="S2", name="BIG", grade=5, shift=1)
    db.add(cls)
    db.flush()
    for i in range(2000):
        add_student(db, "S2", cls.pk, f"big-{i}", f"S{i:04d}", "N")
    ev = Events(db, "S2")
    now = now_ms()
    start = calc.day_bounds(calc.local_day(now, "Asia/Almaty"), "Asia/Almaty")[0]
    step = max(1, (now - start) // 8000)
    k = 0
    for i in range(2000):
        ev.add("entry", start + k * step, student_id=f"big-{i}")
        k += 1
    for i in range(0, 2000, 4):  # every 4th left, every 8th came back
        ev.add("exit", start + k * step, student_id=f"big-{i}")
        k += 1
    for i in range(0, 2000, 8):
        ev.add("entry", start + k * step, student_id=f"big-{i}")
        k += 1
    db.commit()
    hc = service.headcount(db, "S2", now)
    expected = {f"big-{i}" for i in range(2000) if i % 4 != 0 or i % 8 == 0}
    assert {p.ref for p in hc.students} == expected and len(expected) == 1750


def test_status_page_and_fragment(make_browser, db: Session, world: World, request) -> None:  # type: ignore[no-untyped-def]
    ev = Events(db, "S1")
    ev.device.online = False
    ev.device.online_changed_ms = at(DAY, "07:00")
    ev.device.last_status = {
        "school": "S1",
        "device": "s1-edge",
        "online": False,
        "at_ms": 1,
        "backlog": 37,
        "readers_offline": ["gate-2"],
    }
    ev.add(
        "alarm",
        at(DAY, "07:01"),
        code="reader_offline",
        active=True,
        detail="gate-2",
        terminal="gate-2",
    )
    ev.add("alarm", at(DAY, "07:02"), code="gate_fault", active=True, terminal="gate-1")
    ev.add("alarm", at(DAY, "07:03"), code="gate_fault", active=False, terminal="gate-1")
    ev.add("entry", at(DAY, "07:05"), student_id="s1-3a-1")
    ok = Events(db, "S3")
    ok.device.online = True
    db.add(
        ServerAlarm(
            at_ms=at(DAY, "07:30"),
            school="S1",
            device="s1-edge",
            code="batch_rejected:bad_signature",
        )
    )
    db.commit()
    rows = {s.school_id: s for s in service.school_status(db, None, at(DAY, "08:00"))}
    s = rows["S1"]
    assert (s.online, s.backlog, s.readers_offline, s.last_event_ms) == (
        0,
        37,
        ["s1-edge/gate-2"],
        at(DAY, "07:05"),
    )
    assert [a.payload["code"] for a in s.alarms] == ["reader_offline"] and not s.ok
    assert rows["S3"].ok and rows["S2"].devices == []
    # the page reads the server's clock: the school's morning of DAY, whatever today is
    clock = time_machine.travel(dt.datetime.combine(DAY, dt.time(8, 0), ZONE), tick=True)
    clock.start()
    request.addfinalizer(clock.stop)
    b = make_browser("admin1")
    r = b.get("/status")
    assert (
        r.status_code == 200
        and 'data-live="/status/fragment"' in r.text
        and 'data-every="5"' in r.text
    )
    assert "School No. 1" in r.text and "School No. 3" not in r.text
    f = b.get("/status/fragment")
    assert f.status_code == 200 and "<html" not in f.text
    # the alarm by name in the reader's language (Kazakh by default), not its code
    assert "оқу құрылғысы өшкен" in f.text and "reader_offline" not in f.text
    assert ">37<" in f.text and "gate-2" in f.text
    op = make_browser("operator")
    r = op.get("/status/fragment")
    assert "School No. 1" in r.text and "School No. 3" in r.text


def test_student_day_events_for_the_parent_page(s1: Events, db: Session, world: World) -> None:
    s1.meal("s1-3a-1", DAY, "12:10", "free", "lunch")
    s1.add("library_visit", at(DAY, "11:00"), student_id="s1-3a-1")
    s1.add("entry", at(DAY, "07:49"), student_id="s1-3a-2")  # another child
    db.commit()
    evs = service.student_day_events(db, world.students["s1-3a-1"], DAY, DAY)
    assert [(e.time, e.kind, e.direction, e.meal) for e in evs] == [
        ("07:50", "entry", "in", None),
        ("11:00", "library_visit", None, None),
        ("12:10", "meal_served", None, "free"),
        ("13:05", "exit", "out", None),
    ]
    passes = service.student_day_events(db, world.students["s1-3a-2"], DAY, DAY)
    manual = [e for e in passes if e.kind == "manual_pass"]
    assert manual[0].authorised_by == "Teacher Aigerim" and manual[0].direction == "in"
    assert service.student_day_events(db, world.students["s1-7b-2"], DAY, DAY) == []  # not taken


def test_report_queries_work_on_the_demo_sqlite_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``qaqpa demo`` runs the server on SQLite: the window query, JSON fields and integer
    division must work there too."""
    from server.db import make_engine, session_factory
    from server.migrate import upgrade
    from server.people.service import add_school

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as db:
            add_school(db, "S1", "School No. 1", region="R1")
            c = SchoolClass(school_id="S1", name="3A", grade=3, shift=1)
            db.add(c)
            db.flush()
            add_student(db, "S1", c.pk, "s1-3a-1", "Surname1", "A")
            add_student(db, "S1", c.pk, "s1-3a-2", "Surname2", "B")
            policy(db)
            ev = Events(db, "S1")
            now = now_ms()
            start = calc.day_bounds(calc.local_day(now, "Asia/Almaty"), "Asia/Almaty")[0]
            t = [start + (now - start) * k // 5 for k in range(1, 5)]
            ev.add("entry", t[0], student_id="s1-3a-1")
            g = ev.add("entry", t[1], student_id="s1-3a-2")
            ev.add("not_passed", t[1], student_id="s1-3a-2", granted_seq=g)
            ev.add("manual_pass", t[2], student_id="s1-3a-2", authorised_by="t-1", direction="out")
            ev.meal("s1-3a-1", DAY, "12:10", "free")
            db.commit()
            hc = service.headcount(db, "S1", now)
            assert [p.ref for p in hc.students] == ["s1-3a-1"]
            today = calc.local_day(now, "Asia/Almaty")
            rows = service.attendance_day_rows(db, "S1", None, today)
            assert [r.absent for r in rows] == [False, True]
            assert service.meal_month(db, "S1", DAY.replace(day=1)).report.free_total() == 1
            month = service.attendance_month_rows(db, "S1", None, today.replace(day=1))
            assert month.school_days == [today]
            assert service.school_status(db, None, now)[0].last_event_ms is not None
    finally:
        engine.dispose()
