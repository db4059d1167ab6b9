"""The hand-over act of a loan: printed for the parent to sign (page and PDF, with the student,
the item, its inventory number, the date and the signature lines), and the signed act's scan
kept with the loan: size-limited and checked by its content, refused with the reason, and only
for the school's own staff."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry
from server.equipment import service as svc
from server.equipment.models import Loan, LoanAct
from server.people.models import Student
from tests.support.console import World

NOW = 1_788_000_000_000
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


def book_loan(db: Session, world: World) -> Loan:
    import datetime as dt

    item = svc.add_item(
        db, None, "S1", kind="book", inventory_no="B-77", title="Абай жолы", now=NOW
    )
    st = db.get_one(Student, world.students["s1-3a-1"])
    loan = svc.lend(db, None, item, st, today=dt.date(2026, 9, 1), now=NOW)
    db.commit()
    return loan


def test_the_act_is_printed_and_its_scan_kept(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    loan = book_loan(db, world)
    lib = make_browser("librarian1")
    lib.post("/lang", {"lang": "ru", "next": "/"})
    desk = lib.get("/equipment/school/S1/desk").text
    assert f'href="/equipment/loan/{loan.pk}/act"' in desk  # each held item links its act
    page = lib.get(f"/equipment/loan/{loan.pk}/act")
    assert page.status_code == 200
    lines = page.text.split('id="act-lines"', 1)[1].split("</table>", 1)[0]
    assert "B-77" in lines and "Абай жолы" in lines and "3A" in lines
    assert "Акт приёма-передачи" in page.text and "Принял (родитель" in page.text
    assert 'id="no-scan"' in page.text
    pdf = lib.get(f"/equipment/loan/{loan.pk}/act.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    # Bad scans: refused with the reason, nothing kept.
    for body, reason in (
        (b"", "Файл пуст"),
        (b"<html>not a scan</html>", "PDF, JPEG или PNG"),
        (b"%PDF-" + b"0" * svc.MAX_ACT_BYTES, "больше 1 МБ"),
    ):
        r = lib.post(f"/equipment/loan/{loan.pk}/act", files={"file": ("act.pdf", body)})
        assert r.status_code == 422 and reason in r.text, r.text[-500:]
    db.rollback()
    assert db.scalars(select(LoanAct)).all() == []
    # A PNG from a phone's camera: kept with the loan, the act names it, audited.
    r = lib.post(f"/equipment/loan/{loan.pk}/act", files={"file": ("photo.png", PNG)})
    assert r.status_code == 303 and r.headers["location"] == f"/equipment/loan/{loan.pk}/act"
    assert 'id="scan"' in lib.get(f"/equipment/loan/{loan.pk}/act").text
    scan = lib.get(f"/equipment/loan/{loan.pk}/act/scan")
    assert scan.status_code == 200 and scan.content == PNG
    assert scan.headers["content-type"] == "image/png"
    assert scan.headers["x-content-type-options"] == "nosniff"
    db.rollback()
    assert db.get_one(Loan, loan.pk).act_ref.startswith("scan sha256:")
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "eq.act_scan")).one()
    # Another school's librarian and a parent see nothing of it.
    parent = make_browser("parent1")
    assert parent.get(f"/equipment/loan/{loan.pk}/act").status_code in (403, 404)
    assert parent.get(f"/equipment/loan/{loan.pk}/act/scan").status_code in (403, 404)
    assert lib.get("/equipment/loan/999999/act").status_code == 404


def test_bulk_textbooks_through_the_desk_page(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    """The start of the year hands a class its textbook set from the console's desk page (too
    few copies: refused, nothing lent); the end of the year takes everything back."""
    cls = world.classes["S1/3A"]
    active = db.scalars(select(Student).where(Student.class_pk == cls, Student.active)).all()
    for n in range(len(active) - 1):  # one copy short
        svc.add_item(
            db,
            None,
            "S1",
            kind="textbook",
            inventory_no=f"T-3-{n}",
            title="Math 3",
            grade=3,
            now=NOW,
        )
    db.commit()
    lib = make_browser("librarian1")
    lib.post("/lang", {"lang": "en", "next": "/"})
    lib.get(f"/equipment/school/S1/desk?class_pk={cls}")
    form = {"action": "textbooks_out", "class_pk": str(cls)}
    r = lib.post("/equipment/school/S1/bulk", form)
    assert r.status_code == 422 and "Not enough copies in stock" in r.text and "Math 3" in r.text
    db.rollback()
    assert db.scalars(select(Loan)).all() == []
    svc.add_item(
        db, None, "S1", kind="textbook", inventory_no="T-3-x", title="Math 3", grade=3, now=NOW
    )
    db.commit()
    r = lib.post("/equipment/school/S1/bulk", form)
    assert r.status_code == 303
    db.rollback()
    open_loans = select(Loan).where(Loan.returned_at_ms.is_(None))
    assert sorted(x.student_pk for x in db.scalars(open_loans)) == sorted(s.pk for s in active)
    page = lib.get(r.headers["location"]).text.split('id="outstanding"', 1)[1]
    assert page.count("Math 3") == len(active)
    r = lib.post("/equipment/school/S1/bulk", {"action": "return_class", "class_pk": str(cls)})
    assert r.status_code == 303
    db.rollback()
    assert db.scalars(open_loans).all() == []
