"""``qaqpa server vouchers ...``: the social wallet's issuer key, card vouchers (one, or an import
file), a single-use QR voucher (text and SVG), and a school's settlement."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI is built on every ``qaqpa`` start: SQLAlchemy only when a command runs
    from sqlalchemy.orm import Session

MAX_IMPORT_BYTES = 5 * 1024 * 1024


@contextmanager
def _session(args: argparse.Namespace) -> Iterator[Session]:
    from server.db import make_engine, session_factory

    engine = make_engine(args.server_settings(args).database_url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _form(args: argparse.Namespace) -> Any:
    from server.canteen.ledger import parse_tenge
    from server.vouchers.rules import IssueForm

    return IssueForm(
        amount_tiyn=parse_tenge(args.amount),
        valid_from=dt.date.fromisoformat(args.valid_from),
        valid_to=dt.date.fromisoformat(args.valid_to),
        meal_periods=tuple(p for p in (args.periods or "").split(",") if p),
    )


def _fail(what: str, err: Exception) -> int:
    print(f"qaqpa server vouchers {what}: {err}", file=sys.stderr)
    return 2


def _issuer(args: argparse.Namespace) -> int:
    from server.vouchers import service

    path = Path(args.key_file)
    try:
        key = service.new_issuer_key(path) if args.new else service.load_issuer_key(path)
    except (OSError, ValueError) as err:
        return _fail("issuer", err)
    with _session(args) as db:
        try:
            service.add_issuer(db, args.id, args.name, service.public_b64(key))
        except ValueError as err:
            return _fail("issuer", err)
        db.commit()
    print(f"issuer {args.id}: public key recorded and sent to every school")
    return 0


def _issue(args: argparse.Namespace) -> int:
    from server.vouchers import service

    with _session(args) as db:
        try:
            v = service.issue(
                db,
                issuer_id=args.issuer,
                school_id=args.school,
                student_ref=args.student,
                form=_form(args),
                today=dt.date.today(),
                source="cli",
            )
        except ValueError as err:
            return _fail("issue", err)
        db.commit()
        print(f"voucher {v.id}: {v.amount_tiyn} tiyn, sent to school {v.school_id}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from server.vouchers import service

    try:
        raw = Path(args.file).read_bytes()[: MAX_IMPORT_BYTES + 1]
        if len(raw) > MAX_IMPORT_BYTES:
            raise ValueError(f"the file is larger than {MAX_IMPORT_BYTES} bytes")
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    except (OSError, ValueError) as err:
        return _fail("import", err)
    with _session(args) as db:
        result = service.import_rows(db, args.issuer, rows, dt.date.today())
        if result.errors:
            for line, msg in result.errors:
                print(f"line {line}: {msg}", file=sys.stderr)
            print("nothing was issued", file=sys.stderr)
            return 2
        db.commit()
    print(f"{len(result.issued)} vouchers issued")
    return 0


def _qr(args: argparse.Namespace) -> int:
    from server.vouchers import service

    try:
        key = service.load_issuer_key(Path(args.key_file))
    except (OSError, ValueError) as err:
        return _fail("qr", err)
    with _session(args) as db:
        try:
            v, text = service.mint_qr(
                db,
                key,
                issuer_id=args.issuer,
                school_id=args.school,
                student_ref=args.student,
                form=_form(args),
                today=dt.date.today(),
            )
        except ValueError as err:
            return _fail("qr", err)
        db.commit()
    if args.svg:
        Path(args.svg).write_text(service.qr_svg(text), encoding="utf-8")
    print(text)
    print(f"QR voucher {v.id}", file=sys.stderr)
    return 0


def _settlement(args: argparse.Namespace) -> int:
    from server.vouchers import service

    with _session(args) as db:
        result, meals = service.settlement(db, args.school)
        twice = service.redeemed_twice(db)
        db.commit()
    print(
        json.dumps(
            {
                "school": args.school,
                "issued_tiyn": result.issued_tiyn,
                "spent_tiyn": result.spent_tiyn,
                "remaining_tiyn": result.remaining_tiyn,
                "meals_voucher_tiyn": result.meals_tiyn,
                "matches": result.matches,
                "problems": list(result.problems),
                "qr_redeemed_twice": [{"voucher": v, "schools": s} for v, s in twice],
                "vouchers": [
                    {
                        "id": v.voucher_id,
                        "kind": v.kind,
                        "student": v.student_ref,
                        "issued_tiyn": v.issued_tiyn,
                        "spent_tiyn": v.spent_tiyn,
                        "remaining_tiyn": v.remaining_tiyn,
                        "meals": v.meals,
                    }
                    for v in result.lines
                ],
                "meals": [
                    {
                        "date": m.local_date.isoformat(),
                        "period": m.period,
                        "meals": m.meals,
                        "voucher_tiyn": m.voucher_tiyn,
                    }
                    for m in meals
                ],
            },
            ensure_ascii=False,
            indent=1,
        )
    )
    return 0 if result.matches else 1


def add_commands(
    subparsers: Any,
    common: argparse.ArgumentParser,
    settings: Callable[[argparse.Namespace], Any],
) -> None:
    """Register ``vouchers`` under ``qaqpa server`` (``settings``: the server's settings from
    the command's arguments)."""
    top = subparsers.add_parser("vouchers", help="social-wallet vouchers")
    sub = top.add_subparsers(dest="vouchers_command", required=True)

    def cmd(name: str, func: Callable[[argparse.Namespace], int], what: str) -> Any:
        p = sub.add_parser(name, parents=[common], help=what)
        p.set_defaults(func=func, server_settings=settings)
        return p

    p = cmd("issuer", _issuer, "record a voucher issuer's public key and send it to every school")
    p.add_argument("--id", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--key-file", required=True, help="the issuer's private key (PEM)")
    p.add_argument("--new", action="store_true", help="create the key file (never overwrites)")

    def voucher_args(p: Any) -> None:
        p.add_argument("--issuer", required=True)
        p.add_argument("--school", required=True)
        p.add_argument("--student", required=True, help="the student's id at the school")
        p.add_argument("--amount", required=True, help="tenge, e.g. 12000 or 450,50")
        p.add_argument("--from", dest="valid_from", required=True, help="YYYY-MM-DD")
        p.add_argument("--to", dest="valid_to", required=True, help="YYYY-MM-DD, inclusive")
        p.add_argument("--periods", default="", help="meal periods, e.g. lunch (empty: any)")

    voucher_args(cmd("issue", _issue, "issue a card voucher (spent by card tap at the school)"))
    p = cmd("import", _import, "issue card vouchers from a CSV file (all or none)")
    p.add_argument("--issuer", required=True)
    p.add_argument(
        "--file",
        required=True,
        help="CSV: school,student,amount_tenge,valid_from,valid_to,meal_periods",
    )
    p = cmd("qr", _qr, "a single-use QR voucher signed with the issuer's key")
    voucher_args(p)
    p.add_argument("--key-file", required=True, help="the issuer's private key (PEM)")
    p.add_argument("--svg", default=None, help="write the QR code here (SVG)")
    p = cmd("settlement", _settlement, "a school's vouchers against the meals it served")
    p.add_argument("--school", required=True)
