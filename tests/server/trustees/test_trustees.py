"""The board of trustees' report end to end on PostgreSQL: consents, cards and events as the
console and ingest store them, concerns recorded and answered in the console; the page, the
XLSX and the PDF."""

from __future__ import annotations

import datetime as dt
import io

from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.cards.service import record_desk_events
from server.clock import now_ms
from server.duty.models import DutyAlert
from server.people.models import StaffMember
from server.trustees import calc
from server.trustees.models import ParentConcern
from tests.server.cards.test_cards import issued
from tests.support.consents import give
from tests.support.console import World
from tests.support.notify import add_device, store


def test_board_report_page_xlsx_pdf_and_the_concerns_log(
    make_browser, db: Session, world: World
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    s = world.students
    for ref in ("s1-3a-1", "s1-3a-2", "s1-7b-1"):
        give(admin, s[ref])
    give(admin, s["s1-3a-1"], kind="biometric")
    give(admin, s["s1-3a-2"], kind="biometric")
    give(admin, s["s1-3a-2"], kind="biometric", decision="withdrawn")
    # the card alternative: s1-7b-1 has a card and no biometric consent
    # (bound at the school's desk: the centre learns the card's record, never its number)
    assert record_desk_events(db, "S1", [issued("k-tr1", "s1-7b-1")]) == 1
    db.add(StaffMember(school_id="S1", ref="t-1", full_name="Тілеуғабыл А."))
    db.commit()
    dev = add_device(db, "S1", "s1-edge")
    store(db, dev, "S1", "manual_pass", "s1-3a-2", authorised_by="t-1", direction="in")
    store(db, dev, "S1", "manual_pass", "s1-3a-1", authorised_by="t-1", direction="in")
    store(db, dev, "S1", "alarm", None, code="reader_offline", active=True)
    store(db, dev, "S1", "alarm", None, code="reader_offline", active=False)
    store(db, dev, "S1", "denied", "s1-7b-2", terminal_kind="turnstile", reason="no_consent")
    db.add(
        DutyAlert(
            source="ev:x",
            school_id="S1",
            device="s1-edge",
            code="reader_offline",
            routed_to="on_duty",
            channel="sms",
            body="x",
            at_ms=now_ms(),
            created_at_ms=now_ms(),
        )
    )
    db.commit()

    # concerns: recorded by the social pedagogue, answered by the admin; bad input refused
    social = make_browser("social1")
    today = dt.date.today().isoformat()
    r = social.get("/concerns?school=S1")
    assert r.status_code == 200
    for bad, field in (
        ({"raised_on": today, "topic": "weather", "text": "x"}, "topic"),
        ({"raised_on": today, "topic": "biometrics", "text": "  "}, "text"),
        ({"raised_on": "2099-01-01", "topic": "biometrics", "text": "x"}, "raised_on"),
    ):
        r = social.post("/schools/S1/concerns", bad)
        assert (r.status_code, f'data-field="{field}"' in r.text) == (400, True), bad
    assert db.scalar(select(func.count()).select_from(ParentConcern)) == 0
    for text in ("Are the face photos sent to Astana?", "What if the card is lost?"):
        r = social.post(
            "/schools/S1/concerns", {"raised_on": today, "topic": "biometrics", "text": text}
        )
        assert r.status_code == 200
    first = db.scalars(select(ParentConcern).order_by(ParentConcern.pk)).first()
    assert first is not None
    r = admin.post(
        "/schools/S1/concerns/answer",
        {"concern": str(first.pk), "answer": "No: templates stay at the school."},
    )
    assert r.status_code == 200
    assert (
        make_browser("duty1")
        .post("/schools/S1/concerns", {"raised_on": today, "topic": "other", "text": "x"})
        .status_code
        == 403
    )

    duty = make_browser("duty1")
    r = duty.get("/trustees?school=S1")
    assert r.status_code == 200
    page = r.text
    assert 'id="students">4<' in page  # S1's four active students
    cov = page.split('id="coverage-data"')[1].split("</tr>")[0]
    assert ">3<" in cov and ">75<" in cov  # 3 of 4 given, 75 %
    bio = page.split('id="coverage-biometric"')[1].split("</tr>")[0]
    assert [">1<" in bio, ">25<" in bio] == [True, True]
    assert 'id="bio-card">1<' in page and 'id="bio-nocard">2<' in page
    assert "Тілеуғабыл А." in page.split('id="manual"')[1].split("</table>")[0]
    assert ">2<" in page.split('id="manual"')[1].split("</table>")[0]
    assert "Recorded" not in page  # Kazakh by default
    assert "Тіркелді" not in page and ">2</strong>" in page.split('id="concern-totals"')[1][:300]

    r = duty.get("/trustees?school=S1&format=xlsx")
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.content))
    names = ["consents", "biometrics", "manual passes", "incidents", "concerns"]
    assert [n.split(" ")[0] for n in wb.sheetnames] == [n.split(" ")[0] for n in names]
    manual = list(wb.worksheets[2].iter_rows(values_only=True))
    assert any(row[:2] == ("Тілеуғабыл А.", 2) for row in manual)
    incidents = [row for row in wb.worksheets[3].iter_rows(values_only=True) if row[1] == 1]
    assert len(incidents) == 3  # one reader_offline raised, one alert sent, one refusal
    r = duty.get("/trustees?school=S1&format=pdf")
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    # another school's people never see S1
    assert make_browser("admin3").get("/trustees?school=S1").status_code == 404


def test_calc() -> None:
    cov = calc.coverage([1, 2, 3], {1: {"data": True}, 2: {"data": False}})
    assert (cov[0].given, cov[0].withdrawn, cov[0].none, cov[0].percent) == (1, 1, 1, 33)
    b = calc.biometrics([1, 2, 3], {1: {"biometric": True}, 2: {"biometric": False}}, {2})
    assert (b.without, b.withdrawn, b.with_card, b.without_card) == (2, 1, 1, 1)
    assert calc.by_count(["b", "a", "b"]) == [("b", 2), ("a", 1)]
    assert calc.period_default(dt.date(2026, 3, 1)) == (dt.date(2025, 9, 1), dt.date(2026, 3, 1))
    assert calc.period_default(dt.date(2026, 9, 1))[0] == dt.date(2026, 9, 1)
