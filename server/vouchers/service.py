"""Social-wallet vouchers at the centre: issuers, issuing (by the console, an import or the
command line), the dynamic QR code, and the settlement against the meals the schools served.

The social wallet is modelled as an issuer with an Ed25519 key pair: the centre stores only the
public key and sends it to the schools through the signed downlink (``VoucherIssuerKey``); a
card voucher travels as a ``VoucherGrant``; a QR voucher is signed with the issuer's private key
(a key file read by the issuer's command) and never travels by the downlink. Every voucher is
booked in the canteen ledger as wallet funding (``voucher_fund``), so the canteen's balances and
reports see it; the meals the school paid from vouchers are posted by the meal poster.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from protocol.messages import VoucherGrant, VoucherIssuerKey
from protocol.signing import load_private_key, private_key_pem, public_key_raw
from protocol.vouchers import VoucherToken, sign_token
from server.audit.service import audit
from server.canteen import ledger as canteen_ledger
from server.canteen import service as canteen
from server.clock import now_ms
from server.models import School, StoredEvent
from server.people.models import Student
from server.sync.changelog import append_changes
from server.vouchers import rules
from server.vouchers.models import Voucher, VoucherIssuer, VoucherUse
from server.vouchers.rules import IssueForm, VoucherError

log = logging.getLogger(__name__)

MAX_IMPORT_ROWS = 20_000


# ------------------------------------------------------------------------------- issuers


def new_issuer_key(path: Path) -> Ed25519PrivateKey:
    """Create the issuer's private key file (0600); refuses to overwrite one."""
    key = Ed25519PrivateKey.generate()
    with path.open("xb") as f:  # never overwrite: vouchers signed by the old key would die
        path.chmod(0o600)
        f.write(private_key_pem(key))
    return key


def load_issuer_key(path: Path) -> Ed25519PrivateKey:
    return load_private_key(path.read_bytes())


def public_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(public_key_raw(key)).decode("ascii")


def add_issuer(db: Session, issuer_id: str, name: str, public_key: str) -> VoucherIssuer:
    """Record an issuer's public key (or replace it) and send it to every school."""
    VoucherIssuerKey(issuer=issuer_id, public_key=public_key)  # validates id and key shape
    row = db.get(VoucherIssuer, issuer_id)
    if row is None:
        row = VoucherIssuer(id=issuer_id, name=name, public_key=public_key, created_at_ms=now_ms())
        db.add(row)
    else:
        row.name, row.public_key, row.revoked_at_ms = name or row.name, public_key, None
    db.flush()
    for school in db.scalars(select(School.id).order_by(School.id)):
        publish_issuer_keys(db, school)
    return row


def publish_issuer_keys(db: Session, school_id: str) -> None:
    """Send the issuers' public keys to a school (a new school, or after a key change)."""
    changes = [
        VoucherIssuerKey(issuer=i.id, public_key=i.public_key, revoked=i.revoked_at_ms is not None)
        for i in db.scalars(select(VoucherIssuer).order_by(VoucherIssuer.id))
    ]
    if changes:
        append_changes(db, school_id, changes)


# --------------------------------------------------------------------------------- issue


def _student(db: Session, school_id: str, ref: str) -> Student:
    st = db.scalar(select(Student).where(Student.school_id == school_id, Student.ref == ref))
    if st is None or not st.active:
        raise VoucherError("unknown_student", "No active student with this id at this school.")
    return st


def _issuer(db: Session, issuer_id: str) -> VoucherIssuer:
    row = db.get(VoucherIssuer, issuer_id)
    if row is None or row.revoked_at_ms is not None:
        raise VoucherError("unknown_issuer", "No such voucher issuer.")
    return row


def _record(
    db: Session,
    *,
    kind: str,
    issuer_id: str,
    student: Student,
    form: IssueForm,
    who: Any,
    source: str,
) -> Voucher:
    prefix = "V" if kind == "card" else "Q"
    voucher = Voucher(
        id=f"{prefix}-{secrets.token_hex(8)}",
        kind=kind,
        issuer_id=issuer_id,
        school_id=student.school_id,
        student_pk=student.pk,
        student_ref=student.ref,
        amount_tiyn=form.amount_tiyn,
        valid_from=form.valid_from,
        valid_to=form.valid_to,
        meal_periods=list(form.meal_periods),
        created_at_ms=now_ms(),
        created_by=getattr(who, "user_pk", None),
        source=source,
    )
    db.add(voucher)
    db.flush()
    entry = canteen.book_voucher_fund(
        db, student, form.amount_tiyn, f"voucher:{voucher.id}", voucher.created_at_ms
    )
    voucher.ledger_entry_id = entry.id
    audit(
        db,
        who,
        "vouchers.issue",
        f"student:{student.pk}",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"{kind} voucher {voucher.id}: {form.amount_tiyn} tiyn by {issuer_id} ({source})",
    )
    return voucher


def issue(
    db: Session,
    *,
    issuer_id: str,
    school_id: str,
    student_ref: str,
    form: IssueForm,
    today: dt.date,
    who: Any = None,
    source: str = "console",
) -> Voucher:
    """A card voucher: booked, then sent to the school (signed downlink) to spend by card tap.
    The caller commits."""
    form = rules.check_issue(form, today)
    _issuer(db, issuer_id)
    student = _student(db, school_id, student_ref)
    voucher = _record(
        db, kind="card", issuer_id=issuer_id, student=student, form=form, who=who, source=source
    )
    delta = append_changes(
        db,
        school_id,
        [
            VoucherGrant(
                voucher_id=voucher.id,
                issuer=issuer_id,
                student_id=student.ref,
                amount_tiyn=form.amount_tiyn,
                valid_from=form.valid_from.isoformat(),
                valid_to=form.valid_to.isoformat(),
                meal_periods=list(form.meal_periods),
            )
        ],
    )
    voucher.sync_version = delta.version
    return voucher


@dataclass(frozen=True, slots=True)
class ImportResult:
    issued: list[str]
    errors: list[tuple[int, str]]  # (line, message)


def import_rows(
    db: Session, issuer_id: str, rows: Sequence[dict[str, str]], today: dt.date, who: Any = None
) -> ImportResult:
    """Issue card vouchers from rows (``school, student, amount_tenge, valid_from, valid_to,
    meal_periods``): all of them, or none if any row is wrong (every error is listed)."""
    if len(rows) > MAX_IMPORT_ROWS:
        return ImportResult([], [(0, f"at most {MAX_IMPORT_ROWS} rows per import")])
    errors: list[tuple[int, str]] = []
    issued: list[str] = []
    savepoint = db.begin_nested()  # a wrong row undoes the rows before it
    for n, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            form = IssueForm(
                amount_tiyn=canteen_ledger.parse_tenge(row.get("amount_tenge", "")),
                valid_from=dt.date.fromisoformat(row.get("valid_from", "").strip()),
                valid_to=dt.date.fromisoformat(row.get("valid_to", "").strip()),
                meal_periods=tuple(row.get("meal_periods", "").replace(";", ",").split(",")),
            )
            v = issue(
                db,
                issuer_id=issuer_id,
                school_id=row.get("school", "").strip(),
                student_ref=row.get("student", "").strip(),
                form=form,
                today=today,
                who=who,
                source="import",
            )
            issued.append(v.id)
        except (ValueError, canteen_ledger.MoneyError) as err:
            errors.append((n, str(err)))
    if errors:
        savepoint.rollback()
        return ImportResult([], errors)
    savepoint.commit()
    return ImportResult(issued, [])


def mint_qr(
    db: Session,
    key: Ed25519PrivateKey,
    *,
    issuer_id: str,
    school_id: str,
    student_ref: str,
    form: IssueForm,
    today: dt.date,
    who: Any = None,
) -> tuple[Voucher, str]:
    """A single-use QR voucher signed by the issuer's key (which must be the one on record):
    booked as a voucher, its text returned for the parent's QR code. The caller commits."""
    form = rules.check_issue(form, today)
    issuer = _issuer(db, issuer_id)
    if issuer.public_key != public_b64(key):
        raise VoucherError("wrong_key", "This key is not the issuer's key on record.")
    student = _student(db, school_id, student_ref)
    voucher = _record(
        db, kind="qr", issuer_id=issuer_id, student=student, form=form, who=who, source="qr"
    )
    token = VoucherToken(
        token_id=voucher.id,
        issuer=issuer_id,
        student_id=student.ref,
        amount_tiyn=form.amount_tiyn,
        valid_from=form.valid_from,
        valid_to=form.valid_to,
        meal_periods=form.meal_periods,
    )
    text = sign_token(token, key)
    voucher.token = text  # shown to the child's parent as the QR code (a bearer voucher)
    return voucher, text


def qr_svg(text: str) -> str:
    """The QR code of a voucher's text, as an SVG document (medium error correction)."""
    import segno

    return str(segno.make(text, error="m", micro=False).svg_inline(scale=4))


# ---------------------------------------------------------------------------- settlement


def collect_uses(db: Session, school_id: str | None = None, limit: int = 5000) -> int:
    """Record the voucher parts of the meals the schools reported, once per (device, seq,
    voucher); returns how many rows were added. The caller commits."""
    seen = exists().where(
        and_(VoucherUse.device_pk == StoredEvent.device_pk, VoucherUse.seq == StoredEvent.seq)
    )
    q = select(StoredEvent).where(
        StoredEvent.kind == "meal_served",
        StoredEvent.payload["meal"].as_string().in_(("paid", "voucher")),
        ~seen,
    )
    if school_id is not None:
        q = q.where(StoredEvent.school_id == school_id)
    added = 0
    for ev in db.scalars(q.order_by(StoredEvent.device_pk, StoredEvent.seq).limit(limit)):
        p = ev.payload
        qr_id = p.get("qr_token")
        for v in p.get("vouchers") or []:
            if not isinstance(v, dict):
                continue
            db.add(
                VoucherUse(
                    voucher_id=str(v.get("voucher_id", ""))[:64],
                    school_id=ev.school_id,
                    device_pk=ev.device_pk,
                    seq=ev.seq,
                    student_ref=ev.student_id or "-",
                    amount_tiyn=int(v.get("amount_tiyn") or 0),
                    meal_tiyn=int(p.get("amount_tiyn") or 0),
                    local_date=dt.date.fromisoformat(str(p.get("local_date"))),
                    period=str(p.get("period", ""))[:64],
                    qr=v.get("voucher_id") == qr_id,
                    at_ms=ev.at_ms,
                )
            )
            added += 1
    db.flush()
    return added


@dataclass(frozen=True, slots=True)
class MealLine:
    local_date: dt.date
    period: str
    meals: int
    voucher_tiyn: int


def collect_all(db: Session) -> int:
    """Collect every school's voucher uses not yet recorded (the caller commits)."""
    total = 0
    while n := collect_uses(db):
        total += n
    return total


def settlement(
    db: Session, school_id: str, *, collect: bool = True
) -> tuple[rules.Settlement, list[MealLine]]:
    """The school's vouchers: issued, spent and remaining, checked against the meals it served
    (the voucher part of every meal event), with the meals per day and meal period. Uses are
    collected from every school first (``collect``): a copy of a QR voucher redeemed elsewhere
    shows here. A page reads with ``collect=False`` (no write in a GET)."""
    if collect:
        collect_all(db)
    vouchers = list(db.scalars(select(Voucher).where(Voucher.school_id == school_id)))
    ids = [v.id for v in vouchers]
    uses = list(
        db.scalars(
            select(VoucherUse).where(
                (VoucherUse.school_id == school_id) | VoucherUse.voucher_id.in_(ids)
            )
        )
    )
    meals_tiyn = 0
    per_meal: dict[tuple[dt.date, str], list[int]] = {}
    for payload in db.scalars(
        select(StoredEvent.payload).where(
            StoredEvent.school_id == school_id,
            StoredEvent.kind == "meal_served",
            StoredEvent.payload["meal"].as_string().in_(("paid", "voucher")),
        )
    ):
        part = sum(
            int(v.get("amount_tiyn") or 0)
            for v in payload.get("vouchers") or []
            if isinstance(v, dict)
        )
        if not part:
            continue
        meals_tiyn += part
        key = (dt.date.fromisoformat(str(payload.get("local_date"))), str(payload.get("period")))
        line = per_meal.setdefault(key, [0, 0])
        line[0] += 1
        line[1] += part
    result = rules.settle(
        (rules.Issued(v.id, v.kind, v.student_ref, v.amount_tiyn) for v in vouchers),
        [
            rules.Use(
                u.voucher_id, u.student_ref, u.amount_tiyn, u.school_id, u.device_pk, u.seq, u.qr
            )
            for u in uses
        ],
        meals_tiyn,
    )
    meals = [MealLine(d, p, n, t) for (d, p), (n, t) in sorted(per_meal.items())]
    return result, meals


def redeemed_twice(db: Session) -> list[tuple[str, list[str]]]:
    """QR vouchers redeemed by more than one meal (at two schools, or twice anywhere): the
    voucher id and the schools, for the operator to follow up."""
    collect_uses(db)
    found: dict[str, set[tuple[str, int, int]]] = {}
    for vid, school, device, seq in db.execute(
        select(
            VoucherUse.voucher_id, VoucherUse.school_id, VoucherUse.device_pk, VoucherUse.seq
        ).where(VoucherUse.qr.is_(True))
    ):
        found.setdefault(vid, set()).add((school, device, seq))
    return [
        (vid, sorted({s for s, _, _ in where}))
        for vid, where in sorted(found.items())
        if len(where) > 1
    ]


def student_vouchers(db: Session, student_pks: Iterable[int]) -> list[Voucher]:
    return list(
        db.scalars(
            select(Voucher)
            .where(Voucher.student_pk.in_(list(student_pks)))
            .order_by(Voucher.created_at_ms.desc())
        )
    )
