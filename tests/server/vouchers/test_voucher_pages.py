"""The voucher pages: the social pedagogue issues a card voucher for a child of their school
(a wrong form is refused with the reason and issues nothing), the parent sees their child's
vouchers and the QR code of a QR voucher, a canteen manager cannot issue, and the school's
settlement page reads what was collected."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.clock import Clock
from server.models import School
from server.vouchers import service
from server.vouchers.models import Voucher
from server.vouchers.rules import IssueForm
from tests.support.console import World


def test_issue_by_the_social_pedagogue_and_the_parents_qr(
    world: World,
    db: Session,
    make_browser,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    key = service.new_issuer_key(tmp_path / "wallet.pem")
    service.add_issuer(db, "social-wallet", "Social wallet", service.public_b64(key))
    db.commit()
    child = world.students["s1-3a-1"]  # parent1's child
    social = make_browser("social1")
    page = social.get(f"/vouchers/student/{child}")
    assert page.status_code == 200 and "Social wallet" in page.text
    day = Clock().school_today(db.get(School, "S1"))  # the school's date, not UTC's
    today = day.isoformat()
    form = {"issuer": "social-wallet", "amount": "600", "valid_from": today, "valid_to": today}
    bad = social.post(f"/vouchers/student/{child}/issue", {**form, "valid_to": "2001-01-01"})
    assert (
        bad.status_code == 422 and "Ваучер басталмай тұрып аяқталады." in bad.text
    )  # kk: the first language
    assert db.scalar(select(func.count()).select_from(Voucher)) == 0
    ok = social.post(f"/vouchers/student/{child}/issue", {**form, "periods": "lunch"})
    assert ok.status_code in (200, 303)
    db.expire_all()
    (v,) = db.scalars(select(Voucher)).all()
    assert (v.amount_tiyn, v.meal_periods, v.student_pk) == (60_000, ["lunch"], child)
    canteen = make_browser("canteen1")
    refused = canteen.post(f"/vouchers/student/{child}/issue", form)
    assert refused.status_code == 403
    # a QR voucher for the child: the parent's page draws it
    qr, _ = service.mint_qr(
        db,
        key,
        issuer_id="social-wallet",
        school_id="S1",
        student_ref="s1-3a-1",
        form=IssueForm(50_000, day, day),
        today=day,
    )
    db.commit()
    parent = make_browser("parent1")
    mine = parent.get(f"/vouchers/student/{child}")
    assert mine.status_code == 200 and "<svg" in mine.text and qr.id in mine.text
    assert "/issue" not in mine.text  # the parent cannot issue
    other = parent.get(f"/vouchers/student/{world.students['s1-3a-2']}")
    assert other.status_code == 404
    report = social.get("/vouchers?school=S1")
    assert report.status_code == 200 and v.id in report.text
    assert "Ваучерлер берілген тамаққа сәйкес келеді." in report.text
