"""The console pages, as users run them: import the seed's table and read the report (page, XLSX,
PDF, JSON); a refused import changes nothing; a campaign through approval to lending; a parent
sees what their child holds."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import openpyxl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.equipment.models import CoverageReport, Loan, PriorityList
from server.equipment.seed000 import seed_csv
from server.people.models import Consent
from tests.support.console import World

GOOD = "cpu_cores=4; ram_gb=8; storage_gb=128; screen_in=14; warranty_months=24; os=Windows 11"


def test_coverage_import_page_and_files(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    b = make_browser("regional")
    b.post("/lang", {"lang": "en", "next": "/"})
    b.get("/equipment")
    r = b.post(
        "/equipment/region/R1/import",
        {"period": "2020"},
        files={"file": ("seed.csv", seed_csv().encode(), "text/csv")},
    )
    assert r.status_code == 303, r.text
    page = b.get("/equipment?region=R1&period=2020").text
    assert "Риддер" in page and "flagged, not summed" in page
    assert "with_computer (7051) exceeds students (6993)" in page
    js = json.loads(b.get("/equipment/coverage.json?region=R1&period=2020").text)
    assert js["total"]["students"] == 186_219 and js["total"]["uncovered_families"] == 132
    x = b.get("/equipment/coverage.xlsx?region=R1&period=2020")
    ws = openpyxl.load_workbook(io.BytesIO(x.content)).active
    values = [c for row in ws.iter_rows(values_only=True) for c in row]
    assert 186_219 in values and "Үржар" in values
    assert b.get("/equipment/coverage.pdf?region=R1&period=2020").content.startswith(b"%PDF")
    # an unknown school: refused with the line, nothing changed
    before = db.scalar(select(func.count()).select_from(CoverageReport))
    bad = (
        "district,school_id,students,with_computer,without_computer,needy_students,"
        "needy_families,uncovered_students,uncovered_families\nD,GHOST,1,1,0,0,0,0,0\n"
    )
    b.get("/equipment")
    r = b.post(
        "/equipment/region/R1/import",
        {"period": "2020"},
        files={"file": ("bad.csv", bad.encode(), "text/csv")},
    )
    assert r.status_code == 422 and "line 2: unknown school &#39;GHOST&#39;" in r.text
    db.rollback()
    assert db.scalar(select(func.count()).select_from(CoverageReport)) == before


def test_campaign_to_lending_through_the_pages(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    op = make_browser("operator")
    op.post("/lang", {"lang": "en", "next": "/"})
    op.get("/equipment/campaign?region=R1")
    r = op.post(
        "/equipment/region/R1/campaigns",
        {
            "name": "Every child",
            "period": "2026",
            "goal": "79 500 000",
            "unit_price": "150000",
            "starts_on": "2026-02-01",
            "deadline": "2026-08-20",
            "fund_name": "Paryz",
        },
    )
    assert r.status_code == 303
    camp = r.headers["location"].rsplit("=", 1)[1]
    pk = world.students["s1-3a-1"]
    op.get(f"/equipment/school/S1?campaign={camp}")
    r = op.post(
        "/equipment/school/S1/answers",
        {"campaign": camp, "student": str(pk), "has_computer": "no", "low_income": "1"},
    )
    assert r.status_code == 422 and "consent" in r.text  # no survey consent yet
    db.add(
        Consent(
            student_pk=pk,
            kind="equipment_survey",
            granted=True,
            given_by="P",
            document="d",
            signed_on=dt.date(2026, 1, 1),
            recorded_at_ms=1,
        )
    )
    db.commit()
    assert (
        op.post(
            "/equipment/school/S1/answers",
            {"campaign": camp, "student": str(pk), "has_computer": "no", "low_income": "1"},
        ).status_code
        == 303
    )
    assert (
        op.post("/equipment/school/S1/list", {"campaign": camp, "action": "build"}).status_code
        == 303
    )
    assert (
        op.post("/equipment/school/S1/list", {"campaign": camp, "action": "propose"}).status_code
        == 303
    )
    lst = db.scalars(select(PriorityList)).one()
    assert (
        op.post("/equipment/region/R1/approve-region", {"list_pk": str(lst.pk)}).status_code == 422
    )
    assert (
        op.post("/equipment/region/R1/approve-district", {"list_pk": str(lst.pk)}).status_code
        == 303
    )
    assert (
        op.post("/equipment/region/R1/approve-region", {"list_pk": str(lst.pk)}).status_code == 303
    )
    r = op.post(
        "/equipment/region/R1/contracts",
        {
            "campaign": camp,
            "supplier": "TechKZ",
            "number": "K-1",
            "quantity": "2",
            "unit_price": "160000",
            "signed_on": "2026-03-01",
            "due_on": "2026-08-01",
        },
    )
    assert r.status_code == 303
    page = op.get(f"/equipment/campaign?region=R1&campaign={camp}").text
    assert "K-1" in page
    cpk = re.search(r"<td>(\d+) · K-1</td>", page).group(1)  # type: ignore[union-attr]
    op.get("/equipment/school/S1/inventory")
    r = op.post(
        "/equipment/school/S1/delivery",
        {
            "contract": cpk,
            "delivered_on": "2026-08-10",
            "devices": f"INV-1 | SN1 | {GOOD}\nINV-2 | SN2 | {GOOD.replace('ram_gb=8', 'ram_gb=2')}",
        },
    )
    assert r.status_code == 303, r.text
    inv = op.get("/equipment/school/S1/inventory").text
    assert (
        "ram_gb: 2 is below the minimum 4" in inv
        and "INV-2" not in inv.split('id="items"')[1].split("</table>")[0]
    )
    other = world.students["s1-3a-2"]
    op.get("/equipment/school/S1/desk")
    r = op.post("/equipment/school/S1/lend", {"student": str(other), "inventory_no": "INV-1"})
    assert r.status_code == 422 and "not on the approved list" in r.text
    r = op.post("/equipment/school/S1/lend", {"action": "return", "inventory_no": "INV-1"})
    assert r.status_code == 422 and "not lent" in r.text
    assert (
        op.post(
            "/equipment/school/S1/lend", {"student": str(pk), "inventory_no": "QAQPA-INV:S1/INV-1"}
        ).status_code
        == 303
    )
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Loan)) == 1
    assert "INV-1" in op.get(f"/equipment/student/{pk}").text
    labels = op.get("/equipment/school/S1/labels").text
    assert "data:image/svg+xml;base64," in labels
    parent = make_browser("parent1")
    assert "INV-1" in parent.get("/equipment/parent").text
    assert parent.get(f"/equipment/student/{other}").status_code == 404
    final = op.get(f"/equipment/campaign?region=R1&campaign={camp}").text
    assert 'id="signals"' in final and "Delivered devices did not match the specification" in final
    check_final_files(op, camp, final)


def page_number(cell: str) -> float:
    """'160\u00a0000,00\u00a0₸' or '1' as the page prints it -> a number."""
    return float(cell.replace("\u00a0", "").replace("₸", "").replace(",", ".").strip())


def check_final_files(op, camp: str, page: str) -> None:  # type: ignore[no-untyped-def]
    """The final report's XLSX has the page's lines and numbers (money in tenge); the PDF is a
    PDF; another region's campaign is not found."""
    table = page.split('id="final"', 1)[1].split("</table>", 1)[0]
    on_page = [
        (label, page_number(value))
        for label, value in re.findall(r"<th>([^<]+)</th><td class=\"num\">([^<]*)</td>", table)
    ]
    assert len(on_page) == 8 and on_page[1] == ("Accepted", 1.0)
    assert on_page[7] == ("Money spent", 160_000.0)  # one accepted device at 160,000 tenge
    x = op.get(f"/equipment/campaign/final.xlsx?region=R1&campaign={camp}")
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxml")
    ws = openpyxl.load_workbook(io.BytesIO(x.content)).active
    rows = [r for r in ws.iter_rows(values_only=True) if r and r[0] in dict(on_page)]
    assert [(r[0], float(r[1])) for r in rows] == on_page
    pdf = op.get(f"/equipment/campaign/final.pdf?region=R1&campaign={camp}")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert op.get(f"/equipment/campaign/final.xlsx?region=R2&campaign={camp}").status_code == 404


def test_parent_answers_with_consent_and_withdraws(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    from server.clock import Clock
    from server.equipment import service as svc
    from server.equipment.models import SurveyAnswer

    today = Clock().today_in(None)
    camp = svc.create_campaign(
        db,
        "R1",
        name="Open now",
        period=str(today.year),
        goal_tiyn=100,
        planned_unit_price_tiyn=10,
        starts_on=today - dt.timedelta(days=1),
        deadline=today + dt.timedelta(days=30),
        fund_name="",
        now=1,
    )
    db.commit()
    child = world.students["s1-3a-1"]
    p = make_browser("parent1")
    p.post("/lang", {"lang": "en", "next": "/"})
    assert "Open now" in p.get("/equipment/parent").text
    url = f"/equipment/parent/{child}/survey"
    r = p.post(url, {"campaign": str(camp.pk), "has_computer": "no"})
    assert r.status_code == 422 and "consent" in r.text  # no agreement ticked: nothing kept
    p.get("/equipment/parent")
    r = p.post(
        url, {"campaign": str(camp.pk), "has_computer": "no", "low_income": "1", "agree": "1"}
    )
    assert r.status_code == 303
    db.rollback()
    ans = db.scalars(select(SurveyAnswer)).one()
    assert (ans.student_pk, ans.has_computer, ans.low_income, ans.source) == (
        child,
        False,
        True,
        "parent",
    )
    assert db.scalars(select(Consent).where(Consent.kind == "equipment_survey")).one().granted
    other = world.students["s1-3a-2"]
    p.get("/equipment/parent")
    assert (
        p.post(f"/equipment/parent/{other}/survey", {"campaign": str(camp.pk)}).status_code == 404
    )
    p.get("/equipment/parent")
    assert p.post(url, {"action": "withdraw"}).status_code == 303
    db.rollback()
    assert db.scalar(select(func.count()).select_from(SurveyAnswer)) == 0
