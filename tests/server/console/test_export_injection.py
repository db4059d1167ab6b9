"""Formula injection: a name such as ``=HYPERLINK("http://x","y")`` reaches every export (XLSX
reports, the canteen XLSX, the roster CSV and the templates) as text, never as a formula. A
guard lists every place in ``server/`` that writes a spreadsheet, so a new export without the
helper fails here."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import Device, IngestProgress, StoredEvent
from server.people.models import StaffMember, Student
from server.spreadsheets import TRIGGERS, restore_cell, safe_cell
from tests.support.console import World

SERVER = Path(__file__).resolve().parents[3] / "server"
PAYLOAD = '=HYPERLINK("http://x","y")'
GIVEN = "-2+3+cmd|' /C calc'!A0"
STAFF = '@SUM(1+1)*cmd|"/C calc"!A0'
DAY = dt.date(2026, 11, 20)
ZONE = ZoneInfo("Asia/Almaty")
XLSX = (
    "/reports/attendance?school=S1&class={c3a}&day=2026-11-20&format=xlsx",
    "/reports/attendance/month?school=S1&month=2026-11&format=xlsx",
    "/reports/meals?school=S1&month=2026-11&format=xlsx",
    "/reports/meals/statement?school=S1&month=2026-11&format=xlsx",
    "/reports/library?school=S1&class={c3a}&month=2026-11&format=xlsx",
    "/reports/library?school=S1&month=2026-11&format=xlsx",
    "/canteen/reports?school=S1&format=xlsx",
    "/roster/import/template.xlsx",
)
CSV = ("/roster/export?school=S1", "/roster/import/template.csv")
# Every module that writes a spreadsheet, and what it writes: the test below fetches them all.
# (tutoring/demo.py writes the demo project's own CSV files for its importer: no export)
WRITERS = {"reports/export.py", "canteen/routes.py", "roster/rules.py", "tutoring/demo.py"}


def _at(hhmm: str) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    return int(dt.datetime.combine(DAY, dt.time(h, m), ZONE).timestamp() * 1000)


def _events(db: Session) -> None:
    dev = Device(school_id="S1", device_id="s1-edge", created_at_ms=0)
    db.add(dev)
    db.flush()
    db.add(IngestProgress(device_pk=dev.pk, committed_through=0, gaps=[], updated_at_ms=0))
    rows = [
        ("entry", "07:50", {"student_id": "s1-3a-1"}),
        ("manual_pass", "08:15", {"student_id": "s1-3a-2", "authorised_by": "t-1"}),
        ("library_visit", "11:00", {"student_id": "s1-3a-1", "terminal": "lib-1"}),
        ("library_visit", "11:05", {"student_id": "s1-3a-2", "terminal": "lib-1"}),
    ]
    for seq, (kind, hhmm, fields) in enumerate(rows, start=1):
        terminal = fields.pop("terminal", "gate-1")
        payload = {"seq": seq, "at_ms": _at(hhmm), "terminal": terminal, "kind": kind, **fields}
        db.add(
            StoredEvent(
                device_pk=dev.pk,
                seq=seq,
                school_id="S1",
                at_ms=_at(hhmm),
                kind=kind,
                terminal=terminal,
                student_id=fields.get("student_id"),
                staff_id=None,
                payload=payload,
                received_at_ms=_at(hhmm),
            )
        )


def _poison(db: Session, world: World) -> None:
    one = db.get_one(Student, world.students["s1-3a-1"])
    one.surname = PAYLOAD
    two = db.get_one(Student, world.students["s1-3a-2"])
    two.given_name = GIVEN
    db.add(StaffMember(school_id="S1", ref="t-1", full_name=STAFF))
    _events(db)
    db.commit()


def _dangerous(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TRIGGERS) and safe_cell(value) != value


def test_every_spreadsheet_writer_is_known() -> None:
    found = set()
    for py in SERVER.rglob("*.py"):
        text = py.read_text()
        if re.search(r"\bWorkbook\(|csv\.writer\(|csv\.DictWriter\(", text):
            rel = py.relative_to(SERVER).as_posix()
            found.add(rel)
            assert "neutralise_workbook" in text or "safe_cell" in text, rel
    assert found == WRITERS, "a new export: fetch it in the test below"


def test_no_export_holds_a_live_formula(make_browser, db: Session, world: World) -> None:  # type: ignore[no-untyped-def]
    _poison(db, world)
    admin = make_browser("admin1")
    canteen = make_browser("canteen1")
    seen_payload = 0
    for url in XLSX:
        who = canteen if url.startswith("/canteen") else admin
        r = who.get(url.format(c3a=world.classes["S1/3A"]))
        assert r.status_code == 200, url
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
            for name in sheets:
                assert b"<f>" not in z.read(name), f"{url}: a formula in {name}"
        wb = load_workbook(io.BytesIO(r.content))
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", (url, cell.coordinate, cell.value)
                    assert not _dangerous(cell.value), (url, cell.coordinate, cell.value)
                    if isinstance(cell.value, str) and PAYLOAD in cell.value:
                        seen_payload += 1
    for url in CSV:
        r = admin.get(url)
        assert r.status_code == 200, url
        text = r.content.decode("utf-8-sig")
        for cells in csv.reader(io.StringIO(text)):
            for value in cells:
                assert not _dangerous(value), (url, value)
                if PAYLOAD in value:
                    seen_payload += 1
    # The names did reach the attendance and library reports and the roster export, as text.
    assert seen_payload >= 4


def test_the_exported_roster_reads_back_the_same(make_browser, db: Session, world: World) -> None:  # type: ignore[no-untyped-def]
    from server.roster import rules

    _poison(db, world)
    r = make_browser("admin1").get("/roster/export?school=S1")
    parsed = rules.parse_file("roster.csv", r.content)
    assert not parsed.refused, parsed.errors
    by_ref = {row.cells["student_ref"]: row.cells for row in parsed.rows}
    assert by_ref["s1-3a-1"]["surname"] == PAYLOAD
    assert by_ref["s1-3a-2"]["given_name"] == GIVEN
    ids = set(db.execute(select(Student.ref).where(Student.school_id == "S1")).scalars())
    assert set(by_ref) == ids


def test_the_helper_keeps_numbers() -> None:
    assert safe_cell(-12.5) == -12.5 and safe_cell(7) == 7 and safe_cell(None) is None
    assert safe_cell("-12.5") == "-12.5" and safe_cell("+77010000000") == "+77010000000"
    for bad in ("=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "-", "=", "+7 701"):
        assert safe_cell(bad) == "'" + bad and restore_cell(safe_cell(bad)) == bad
    assert safe_cell("Ахметов") == "Ахметов" and restore_cell("'Ahmet") == "'Ahmet"
