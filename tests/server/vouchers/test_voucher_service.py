"""Vouchers at the centre, on PostgreSQL: the issuer's key (public part only in the database),
card vouchers booked and sent to the school, an import that issues all rows or none, a QR
voucher whose SVG is a QR code, a negative correction sent as a debit, and the command line."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.messages import BalanceDebit, VoucherGrant, VoucherIssuerKey
from protocol.signing import load_public_key
from protocol.vouchers import verify_token
from server.accounts.access import Principal
from server.canteen import service as canteen
from server.canteen.ledger import AccountKind, EntryKind
from server.canteen.settings import CanteenSettings
from server.cli import main
from server.models import ChangeLogEntry
from server.people.models import Student
from server.sync.changelog import load_changes
from server.vouchers import service
from server.vouchers.models import Voucher, VoucherIssuer
from server.vouchers.rules import IssueForm, VoucherError
from tests.support.console import World

TODAY = dt.date.today()


def changes(db: Session, school: str) -> list[object]:
    rows = db.scalars(
        select(ChangeLogEntry.changes)
        .where(ChangeLogEntry.school_id == school)
        .order_by(ChangeLogEntry.version)
    )
    return [c for row in rows for c in load_changes([row])]


def test_issue_books_and_sends_the_voucher_and_the_key_is_public_only(
    world: World, db: Session, tmp_path: Path
) -> None:
    key = service.new_issuer_key(tmp_path / "wallet.pem")
    with pytest.raises(FileExistsError):
        service.new_issuer_key(tmp_path / "wallet.pem")  # never overwritten
    service.add_issuer(db, "social-wallet", "Social wallet", service.public_b64(key))
    v = service.issue(
        db,
        issuer_id="social-wallet",
        school_id="S1",
        student_ref="s1-7b-1",
        form=IssueForm(120_000, TODAY, TODAY + dt.timedelta(days=30), ("lunch",)),
        today=TODAY,
    )
    db.commit()
    sent = changes(db, "S1")
    assert any(isinstance(c, VoucherIssuerKey) and c.issuer == "social-wallet" for c in sent)
    grants = [c for c in sent if isinstance(c, VoucherGrant)]
    assert [(g.voucher_id, g.student_id, g.amount_tiyn, g.meal_periods) for g in grants] == [
        (v.id, "s1-7b-1", 120_000, ["lunch"])
    ]
    assert any(isinstance(c, VoucherIssuerKey) for c in changes(db, "S3"))  # every school
    pk = world.students["s1-7b-1"]
    assert canteen.balance(db, pk, AccountKind.STUDENT_VOUCHER) == 120_000
    row = db.get(VoucherIssuer, "social-wallet")
    assert row is not None and len(row.public_key) == 44  # 32 raw bytes, base64: no secret
    with pytest.raises(VoucherError) as err:
        service.issue(
            db,
            issuer_id="social-wallet",
            school_id="S2",  # not this student's school
            student_ref="s1-7b-1",
            form=IssueForm(1_000, TODAY, TODAY),
            today=TODAY,
        )
    assert err.value.code == "unknown_student"


def test_an_import_issues_all_rows_or_none(world: World, db: Session, tmp_path: Path) -> None:
    key = service.new_issuer_key(tmp_path / "wallet.pem")
    service.add_issuer(db, "social-wallet", "", service.public_b64(key))
    db.commit()
    good = {
        "school": "S1",
        "student": "s1-7b-1",
        "amount_tenge": "1200",
        "valid_from": TODAY.isoformat(),
        "valid_to": (TODAY + dt.timedelta(days=10)).isoformat(),
        "meal_periods": "lunch",
    }
    bad = {**good, "student": "nobody"}
    result = service.import_rows(
        db, "social-wallet", [good, bad, {**good, "amount_tenge": "x"}], TODAY
    )
    assert [line for line, _ in result.errors] == [3, 4] and result.issued == []
    db.commit()
    assert db.scalar(select(func.count()).select_from(Voucher)) == 0
    assert not any(isinstance(c, VoucherGrant) for c in changes(db, "S1"))
    result = service.import_rows(db, "social-wallet", [good, {**good, "student": "s1-3a-1"}], TODAY)
    db.commit()
    assert len(result.issued) == 2 and result.errors == []


def test_a_qr_voucher_is_signed_by_the_issuer_and_drawn_as_a_qr_code(
    world: World, db: Session, tmp_path: Path
) -> None:
    key = service.new_issuer_key(tmp_path / "wallet.pem")
    service.add_issuer(db, "social-wallet", "", service.public_b64(key))
    v, text = service.mint_qr(
        db,
        key,
        issuer_id="social-wallet",
        school_id="S1",
        student_ref="s1-7b-1",
        form=IssueForm(80_000, TODAY, TODAY),
        today=TODAY,
    )
    db.commit()
    issuer = db.get(VoucherIssuer, "social-wallet")
    assert issuer is not None
    import base64

    public = load_public_key(base64.b64decode(issuer.public_key))
    token = verify_token(text, {"social-wallet": public}, TODAY)
    assert (token.token_id, token.amount_tiyn, token.student_id) == (v.id, 80_000, "s1-7b-1")
    assert not any(isinstance(c, VoucherGrant) for c in changes(db, "S1"))  # never on the wire
    svg = service.qr_svg(text)
    assert svg.startswith("<svg") and "path" in svg
    other = service.new_issuer_key(tmp_path / "other.pem")
    with pytest.raises(VoucherError) as err:
        service.mint_qr(
            db,
            other,
            issuer_id="social-wallet",
            school_id="S1",
            student_ref="s1-7b-1",
            form=IssueForm(80_000, TODAY, TODAY),
            today=TODAY,
        )
    assert err.value.code == "wrong_key"


def test_a_negative_correction_goes_to_the_school_as_a_debit(world: World, db: Session) -> None:
    st = db.get(Student, world.students["s1-7b-1"])
    assert st is not None
    who = Principal(world.users["canteen1"], "canteen1", "C", "en", "x", [])
    canteen.book_manual(db, CanteenSettings(), who, st, EntryKind.CORRECTION, 30_000, "opening")
    entry = canteen.book_manual(
        db, CanteenSettings(), who, st, EntryKind.CORRECTION, -7_000, "double top-up"
    )
    db.commit()
    debits = [c for c in changes(db, "S1") if isinstance(c, BalanceDebit)]
    assert [(d.ledger_id, d.student_id, d.amount_tiyn) for d in debits] == [
        (canteen.ledger_id(entry), "s1-7b-1", 7_000)
    ]
    assert entry.sync_version is not None
    assert canteen.balance(db, st.pk) == 23_000


def test_the_command_line(
    world: World,
    db: Session,
    pg_console_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = ["--database-url", pg_console_url]
    pem = str(tmp_path / "wallet.pem")
    day = TODAY.isoformat()
    assert (
        main(["vouchers", "issuer", *url, "--id", "social-wallet", "--key-file", pem, "--new"]) == 0
    )
    when = ["--from", day, "--to", day, "--periods", "lunch"]
    who = ["--issuer", "social-wallet", "--school", "S1", "--student", "s1-7b-1"]
    assert main(["vouchers", "issue", *url, *who, "--amount", "1500", *when]) == 0
    assert main(["vouchers", "issue", *url, *who, "--amount", "-5", *when]) == 2
    svg = tmp_path / "qr.svg"
    assert (
        main(
            [
                "vouchers",
                "qr",
                *url,
                *who,
                "--amount",
                "800",
                *when,
                "--key-file",
                pem,
                "--svg",
                str(svg),
            ]
        )
        == 0
    )
    assert svg.read_text().startswith("<svg")
    capsys.readouterr()
    assert main(["vouchers", "settlement", *url, "--school", "S1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["issued_tiyn"], report["spent_tiyn"], report["matches"]) == (230_000, 0, True)
    csv = tmp_path / "v.csv"
    csv.write_text(
        "school,student,amount_tenge,valid_from,valid_to,meal_periods\n"
        f"S1,s1-7b-2,500,{day},{day},lunch\nS1,ghost,500,{day},{day},lunch\n"
    )
    assert main(["vouchers", "import", *url, "--issuer", "social-wallet", "--file", str(csv)]) == 2
    assert "line 3" in capsys.readouterr().err
