"""Canteen bookings against the database. Callers commit; every function books in the caller's
transaction, so a booking, its postings, its downlink change and its audit entry commit together.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import uuid
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol.messages import BalanceCredit, BalanceDebit, MenuItem, MenuSet, ParentLimitsSet
from server import clock
from server.accounts.access import Principal
from server.audit.service import audit
from server.canteen import ledger
from server.canteen.ledger import AccountKind, EntryKind, MoneyError
from server.canteen.models import LedgerEntry, LowBalance, Menu, ParentLimits, Posting
from server.canteen.provider import ProviderPayment
from server.canteen.settings import CanteenSettings
from server.canteen.wallet import SocialWallet, WalletError
from server.clock import now_ms
from server.models import Device, School, StoredEvent
from server.people.models import SchoolClass, Student
from server.sync.changelog import append_changes

log = logging.getLogger(__name__)


class CanteenError(ValueError):
    """A booking that is refused; ``status`` is the HTTP answer, ``code`` stable, the message
    an English msgid."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def zone_of(db: Session, school_id: str) -> zoneinfo.ZoneInfo:
    return clock.zone(db.scalar(select(School.timezone).where(School.id == school_id)))


local_date = clock.local_date


# --------------------------------------------------------------------------------- booking


def _book(
    db: Session,
    *,
    school_id: str,
    student: Student | None,
    student_ref: str,
    kind: EntryKind,
    amount: int,
    postings: Sequence[ledger.Posting],
    external_ref: str,
    at_ms: int,
    **extra: object,
) -> LedgerEntry:
    ledger.balanced(postings)
    entry = LedgerEntry(
        school_id=school_id,
        student_pk=student.pk if student is not None else None,
        student_ref=student_ref,
        kind=kind.value,
        amount_tiyn=amount,
        at_ms=at_ms,
        external_ref=external_ref,
        **extra,
    )
    db.add(entry)
    db.flush()
    db.add_all(
        Posting(
            entry_id=entry.id,
            school_id=school_id,
            account=p.account.kind.value,
            student_pk=p.account.student_pk,
            amount_tiyn=p.amount_tiyn,
        )
        for p in postings
    )
    db.flush()
    return entry


def _publish_credit(db: Session, entry: LedgerEntry) -> None:
    """Send the credit to the school; the edge applies one ledger id once."""
    delta = append_changes(
        db,
        entry.school_id,
        [
            BalanceCredit(
                ledger_id=ledger_id(entry),
                student_id=entry.student_ref,
                amount_tiyn=entry.amount_tiyn,
            )
        ],
    )
    entry.sync_version = delta.version


def _publish_debit(db: Session, entry: LedgerEntry) -> None:
    """Send a manager's negative correction to the school; the edge applies one ledger id once,
    in full (a balance below the overdraft then sells nothing until topped up)."""
    delta = append_changes(
        db,
        entry.school_id,
        [
            BalanceDebit(
                ledger_id=ledger_id(entry),
                student_id=entry.student_ref,
                amount_tiyn=entry.amount_tiyn,
            )
        ],
    )
    entry.sync_version = delta.version


def book_voucher_fund(
    db: Session, student: Student, amount: int, external_ref: str, at_ms: int
) -> LedgerEntry:
    """The social wallet paid ``amount`` into the child's voucher account (caller commits)."""
    return _book(
        db,
        school_id=student.school_id,
        student=student,
        student_ref=student.ref,
        kind=EntryKind.VOUCHER_FUND,
        amount=amount,
        postings=ledger.voucher_fund(student.pk, amount),
        external_ref=external_ref,
        at_ms=at_ms,
    )


def ledger_id(entry: LedgerEntry) -> str:
    return f"L{entry.id}"


def balance(
    db: Session, student_pk: int, account: AccountKind = AccountKind.STUDENT_BALANCE
) -> int:
    total = db.scalar(
        select(func.coalesce(func.sum(Posting.amount_tiyn), 0)).where(
            Posting.account == account.value, Posting.student_pk == student_pk
        )
    )
    return int(total or 0)


def balances(db: Session, student_pks: Iterable[int]) -> dict[int, tuple[int, int]]:
    """student pk -> (balance, voucher balance)."""
    pks = list(student_pks)
    out = {pk: (0, 0) for pk in pks}
    if not pks:
        return out
    rows = db.execute(
        select(Posting.student_pk, Posting.account, func.sum(Posting.amount_tiyn))
        .where(Posting.student_pk.in_(pks))
        .group_by(Posting.student_pk, Posting.account)
    )
    for pk, account, total in rows:
        if pk is None:
            continue
        b, v = out[pk]
        if account == AccountKind.STUDENT_BALANCE.value:
            b = int(total)
        elif account == AccountKind.STUDENT_VOUCHER.value:
            v = int(total)
        out[pk] = (b, v)
    return out


def _low_balance_check(
    db: Session, settings: CanteenSettings, entry: LedgerEntry, before: int, after: int
) -> None:
    if entry.student_pk is None or not ledger.crossed_low(before, after, settings.low_balance_tiyn):
        return
    row = LowBalance(
        entry_id=entry.id,
        student_pk=entry.student_pk,
        school_id=entry.school_id,
        balance_tiyn=after,
        threshold_tiyn=settings.low_balance_tiyn,
        at_ms=now_ms(),
    )
    db.add(row)
    hook = _notify_hook()
    if hook is not None:
        hook(db, student_pk=entry.student_pk, balance_tiyn=after, at_ms=row.at_ms)
        row.notified_ms = row.at_ms


def _notify_hook() -> Any:
    """``server.notify.service.enqueue_low_balance`` once the notification outbox offers it."""
    try:
        module = importlib.import_module("server.notify.service")
    except ModuleNotFoundError:
        return None
    return getattr(module, "enqueue_low_balance", None)


# --------------------------------------------------------------------------------- top-ups


@dataclass(frozen=True, slots=True)
class TopupResult:
    entry_id: int
    duplicate: bool


def book_topup(db: Session, payment: ProviderPayment, provider: str) -> TopupResult:
    """Book a provider's payment once per transaction id and send the credit to the school."""
    ref = f"{provider}:{payment.txid}"
    found = db.scalar(select(LedgerEntry).where(LedgerEntry.external_ref == ref))
    if found is not None:
        if found.amount_tiyn != payment.amount_tiyn or found.student_ref != payment.student_ref:
            raise CanteenError(
                409, "txid_conflict", "This transaction id was booked with another amount or child."
            )
        return TopupResult(found.id, duplicate=True)
    student = db.scalar(select(Student).where(Student.ref == payment.student_ref))
    if student is None or not student.active:
        raise CanteenError(404, "unknown_student", "No active student has this id.")
    entry = _book(
        db,
        school_id=student.school_id,
        student=student,
        student_ref=student.ref,
        kind=EntryKind.TOPUP,
        amount=payment.amount_tiyn,
        postings=ledger.topup(student.pk, payment.amount_tiyn),
        external_ref=ref,
        at_ms=payment.paid_at_ms or now_ms(),
        reason=f"{provider} {payment.txid}"[:300],
    )
    _publish_credit(db, entry)
    return TopupResult(entry.id, duplicate=False)


def book_cash_topup(
    db: Session, who: Principal, student: Student, amount: int, external_ref: str
) -> TopupResult:
    """Money paid in at the school's office (and the demo's top-ups): booked once per
    ``external_ref`` as a top-up, sent to the school as a credit, audited."""
    if amount <= 0:
        raise CanteenError(422, "bad_amount", "The amount must be positive.")
    ref = f"cash:{external_ref}"[:200]
    found = db.scalar(select(LedgerEntry).where(LedgerEntry.external_ref == ref))
    if found is not None:
        if found.amount_tiyn != amount or found.student_pk != student.pk:
            raise CanteenError(
                409, "txid_conflict", "This transaction id was booked with another amount or child."
            )
        return TopupResult(found.id, duplicate=True)
    entry = _book(
        db,
        school_id=student.school_id,
        student=student,
        student_ref=student.ref,
        kind=EntryKind.TOPUP,
        amount=amount,
        postings=ledger.topup(student.pk, amount),
        external_ref=ref,
        at_ms=now_ms(),
        created_by=who.user_pk,
        reason="cash",
    )
    _publish_credit(db, entry)
    audit(
        db,
        who,
        "canteen.book",
        f"student:{student.pk}",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"topup {ledger_id(entry)}: {amount:+d} tiyn, cash",
    )
    return TopupResult(entry.id, duplicate=False)


def _refundable(db: Session, student_pk: int) -> int:
    # The student's row is locked, so two refunds at once cannot both pass the cap.
    db.execute(select(Student.pk).where(Student.pk == student_pk).with_for_update())
    sums = dict(
        db.execute(
            select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.amount_tiyn), 0))
            .where(
                LedgerEntry.student_pk == student_pk,
                LedgerEntry.kind.in_([EntryKind.MEAL.value, EntryKind.REFUND.value]),
            )
            .group_by(LedgerEntry.kind)
        ).all()
    )
    return ledger.refundable(
        int(sums.get(EntryKind.MEAL.value, 0)), int(sums.get(EntryKind.REFUND.value, 0))
    )


def book_manual(
    db: Session,
    settings: CanteenSettings,
    who: Principal,
    student: Student,
    kind: EntryKind,
    amount: int,
    reason: str,
) -> LedgerEntry:
    """A manager's refund (+) or correction (+/−) with a reason, audited. A credit goes to the
    school as a ``balance_credit``, a negative correction as a ``balance_debit``."""
    reason = reason.strip()
    if not reason:
        raise CanteenError(422, "no_reason", "Give a reason.")
    if len(reason) > 300:
        raise CanteenError(422, "long_reason", "The reason is longer than 300 characters.")
    if kind == EntryKind.REFUND:
        postings = ledger.refund(student.pk, amount)
        if amount > _refundable(db, student.pk):
            raise CanteenError(
                422,
                "refund_exceeds_paid",
                "A refund cannot exceed what was paid for meals less the earlier refunds.",
            )
    elif kind == EntryKind.CORRECTION:
        postings = ledger.correction(student.pk, amount)
    else:
        raise CanteenError(422, "bad_kind", "Choose a refund or a correction.")
    before = balance(db, student.pk)
    entry = _book(
        db,
        school_id=student.school_id,
        student=student,
        student_ref=student.ref,
        kind=kind,
        amount=abs(amount),
        postings=postings,
        external_ref=f"manual:{uuid.uuid4().hex}",
        at_ms=now_ms(),
        created_by=who.user_pk,
        reason=reason,
    )
    if amount > 0:
        _publish_credit(db, entry)
    else:
        _publish_debit(db, entry)
    _low_balance_check(db, settings, entry, before, before + amount)
    audit(
        db,
        who,
        "canteen.book",
        f"student:{student.pk}",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"{kind.value} {ledger_id(entry)}: {amount:+d} tiyn, reason recorded",
    )
    return entry


# ----------------------------------------------------------------------------- meal poster


def _meal_events(limit: int, school_id: str | None = None):  # type: ignore[no-untyped-def]
    meal = StoredEvent.payload["meal"].as_string()
    amount = StoredEvent.payload["amount_tiyn"].as_integer()
    booked = exists().where(
        and_(LedgerEntry.device_pk == StoredEvent.device_pk, LedgerEntry.seq == StoredEvent.seq)
    )
    q = select(StoredEvent)
    if school_id is not None:
        q = q.where(StoredEvent.school_id == school_id)
    return (
        q.where(
            StoredEvent.kind == "meal_served",
            meal.in_(("paid", "voucher")),
            amount > 0,
            ~booked,
        )
        .order_by(StoredEvent.device_pk, StoredEvent.seq)
        .limit(limit)
    )


def waiting_meals(db: Session, school_id: str, cap: int = 1000) -> int:
    """How many of the school's paid / voucher meals wait to be posted (counted up to ``cap``)."""
    sub = _meal_events(cap, school_id).with_only_columns(StoredEvent.seq).subquery()
    return int(db.scalar(select(func.count()).select_from(sub)) or 0)


def post_waiting_meals(db: Session, settings: CanteenSettings, school_id: str) -> int:
    """Post all the school's waiting meals now, batch by batch (committed); a poster booking
    the same meals at the same moment is fine: they are booked once. Returns how many here."""
    total = 0
    try:
        while n := post_meals(db, settings, school_id=school_id):
            db.commit()
            total += n
    except IntegrityError:  # a poster booked them at the same moment: they are booked
        db.rollback()
    return total


def school_students(db: Session, school_id: str) -> list[tuple[Student, str]]:
    """The school's active students with their class's name, by class then name."""
    return [
        (st, name)
        for st, name in db.execute(
            select(Student, SchoolClass.name)
            .join(SchoolClass, SchoolClass.pk == Student.class_pk)
            .where(Student.school_id == school_id, Student.active.is_(True))
            .order_by(SchoolClass.grade, SchoolClass.name, Student.surname, Student.given_name)
        ).all()
    ]


def students_by_pk(db: Session, pks: Sequence[int]) -> list[Student]:
    """These students (a parent's children), by given name."""
    if not pks:
        return []
    return list(
        db.scalars(select(Student).where(Student.pk.in_(list(pks))).order_by(Student.given_name))
    )


def post_meals(
    db: Session, settings: CanteenSettings, limit: int | None = None, school_id: str | None = None
) -> int:
    """Post up to ``limit`` paid / voucher meals from the schools' events (or one school's) as
    ledger debits, each exactly once per (device_pk, seq) (a unique key); the caller commits.
    Returns how many."""
    events = list(db.scalars(_meal_events(limit or settings.post_batch, school_id)))
    students: dict[tuple[str, str], Student | None] = {}
    zones: dict[str, zoneinfo.ZoneInfo] = {}
    for ev in events:
        ref = ev.student_id or ""
        key = (ev.school_id, ref)
        if key not in students:
            students[key] = db.scalar(
                select(Student).where(Student.ref == ref, Student.school_id == ev.school_id)
            )
        student = students[key]
        amount = int(ev.payload["amount_tiyn"])
        voucher = ev.payload.get("meal") == "voucher"
        # the school spent vouchers first and the balance only the rest
        from_vouchers = amount if voucher else voucher_part(ev.payload, amount)
        zone = zones.setdefault(ev.school_id, zone_of(db, ev.school_id))
        try:
            day = dt.date.fromisoformat(str(ev.payload.get("local_date")))
        except ValueError:
            day = local_date(ev.at_ms, zone)
        pk = student.pk if student is not None else None
        before = balance(db, pk) if pk is not None and not voucher else 0
        if not voucher and from_vouchers:
            postings = ledger.split_meal(pk, amount, from_vouchers)
        else:
            postings = (ledger.voucher_meal if voucher else ledger.meal)(pk, amount)
        entry = _book(
            db,
            school_id=ev.school_id,
            student=student,
            student_ref=ref or "-",
            kind=EntryKind.VOUCHER_MEAL if voucher else EntryKind.MEAL,
            amount=amount,
            postings=postings,
            external_ref=f"meal:{ev.device_pk}:{ev.seq}",
            at_ms=ev.at_ms,
            local_date=day,
            device_pk=ev.device_pk,
            seq=ev.seq,
        )
        if not voucher:
            _low_balance_check(db, settings, entry, before, before - (amount - from_vouchers))
    return len(events)


def voucher_part(payload: dict[str, Any], amount: int) -> int:
    """What the vouchers named in a meal event paid of ``amount`` (bounded by it)."""
    spent = 0
    for v in payload.get("vouchers") or []:
        if isinstance(v, dict) and isinstance(v.get("amount_tiyn"), int):
            spent += int(v["amount_tiyn"])
    return max(0, min(spent, amount))


# -------------------------------------------------------------------------- reconciliation


@dataclass(frozen=True, slots=True)
class ReconRow:
    student_pk: int | None
    student_ref: str
    name: str
    class_name: str
    recon: ledger.Reconciliation
    last_sale_ms: int | None


def school_ack_version(db: Session, school_id: str) -> int:
    """The downlink version the school's edge has applied (the most advanced edge of the
    school: one daemon per school holds the balances)."""
    v = db.scalar(select(func.max(Device.applied_version)).where(Device.school_id == school_id))
    return int(v or 0)


def school_synced_ms(db: Session, school_id: str) -> int | None:
    """When the school's edge last took the server's changes (its last ``SyncAck``): the
    balances the school holds are the server's as of then, less the meals sold since."""
    v = db.scalar(select(func.max(Device.applied_at_ms)).where(Device.school_id == school_id))
    return int(v) if v is not None else None


def reconciliation(
    db: Session, school_id: str, student_pks: set[int] | None = None
) -> list[ReconRow]:
    """Per student of the school with any money: ledger, the school's last known balance, and
    each difference explained (``ledger.reconcile``)."""
    from server.people.models import SchoolClass

    ack = school_ack_version(db, school_id)
    # ledger balances
    led: dict[int, int] = {}
    for pk, total in db.execute(
        select(Posting.student_pk, func.sum(Posting.amount_tiyn))
        .where(Posting.school_id == school_id, Posting.account == AccountKind.STUDENT_BALANCE.value)
        .group_by(Posting.student_pk)
    ):
        if pk is not None:
            led[int(pk)] = int(total)
    # credits sent, split by acknowledgement; unsent = negative corrections (every credit is sent)
    unacked: dict[int, int] = {}
    acked: dict[int, int] = {}
    unsent: dict[int, int] = {}
    debit_ids = set(
        db.scalars(
            select(Posting.entry_id).where(
                Posting.school_id == school_id,
                Posting.account == AccountKind.STUDENT_BALANCE.value,
                Posting.amount_tiyn < 0,
                Posting.entry_id.in_(
                    select(LedgerEntry.id).where(
                        LedgerEntry.school_id == school_id,
                        LedgerEntry.kind == EntryKind.CORRECTION.value,
                    )
                ),
            )
        )
    )
    debits: list[tuple[int, int, int | None, int]] = []  # pk, amount, version, booked at
    for entry_pk, pk, _kind, amount, version, at_ms in db.execute(
        select(
            LedgerEntry.id,
            LedgerEntry.student_pk,
            LedgerEntry.kind,
            LedgerEntry.amount_tiyn,
            LedgerEntry.sync_version,
            LedgerEntry.at_ms,
        ).where(
            LedgerEntry.school_id == school_id,
            LedgerEntry.kind.in_([k.value for k in ledger.CREDIT_KINDS]),
        )
    ):
        if pk is None:
            continue
        if entry_pk in debit_ids:  # a negative correction: a balance_debit at the school
            debits.append((pk, amount, version, at_ms))
            continue
        if version is None:
            unsent[pk] = unsent.get(pk, 0) + amount
        elif version > ack:
            unacked[pk] = unacked.get(pk, 0) + amount
        else:
            acked[pk] = acked.get(pk, 0) + amount
    # the school's newest paid sale per student, and sales not yet posted
    meal = StoredEvent.payload["meal"].as_string()
    ranked = (
        select(
            StoredEvent.student_id,
            StoredEvent.at_ms,
            StoredEvent.payload,
            func.row_number()
            .over(
                partition_by=StoredEvent.student_id,
                order_by=(StoredEvent.at_ms.desc(), StoredEvent.seq.desc()),
            )
            .label("rn"),
        )
        .where(
            StoredEvent.school_id == school_id, StoredEvent.kind == "meal_served", meal == "paid"
        )
        .subquery()
    )
    last: dict[str, tuple[int, int | None]] = {}
    for ref, at, payload, _rn in db.execute(select(ranked).where(ranked.c.rn == 1)):
        b = payload.get("balance_after_tiyn")
        last[ref] = (at, int(b) if isinstance(b, int) else None)
    booked = exists().where(
        and_(LedgerEntry.device_pk == StoredEvent.device_pk, LedgerEntry.seq == StoredEvent.seq)
    )
    unposted: dict[str, int] = {}
    for ref, payload in db.execute(
        select(StoredEvent.student_id, StoredEvent.payload).where(
            StoredEvent.school_id == school_id,
            StoredEvent.kind == "meal_served",
            meal == "paid",
            ~booked,
        )
    ):
        amount = int(payload.get("amount_tiyn") or 0)
        unposted[ref] = unposted.get(ref, 0) + amount - voucher_part(payload, amount)
    # a debit is in the school's last balance once acknowledged, unless booked after that sale
    refs = dict(
        db.execute(
            select(Student.pk, Student.ref).where(Student.pk.in_({d[0] for d in debits}))
        ).all()
    )
    for pk, amount, version, at_ms in debits:
        sale_at = last.get(refs.get(pk, ""), (None, None))[0]
        if version is None or version > ack or sale_at is None or at_ms > sale_at:
            unsent[pk] = unsent.get(pk, 0) + amount

    q = (
        select(Student, SchoolClass.name)
        .join(SchoolClass, SchoolClass.pk == Student.class_pk)
        .where(Student.school_id == school_id)
    )
    rows: list[ReconRow] = []
    for st, class_name in db.execute(
        q.order_by(SchoolClass.grade, SchoolClass.name, Student.surname)
    ):
        if student_pks is not None and st.pk not in student_pks:
            continue
        if st.pk not in led and st.ref not in last and st.ref not in unposted:
            continue
        at, school_balance = last.get(st.ref, (None, None))
        recon = ledger.reconcile(
            ledger_tiyn=led.get(st.pk, 0),
            school_tiyn=school_balance,
            unacked_credits_tiyn=unacked.get(st.pk, 0),
            acked_credits_tiyn=acked.get(st.pk, 0),
            unposted_meals_tiyn=unposted.get(st.ref, 0),
            unsent_debits_tiyn=unsent.get(st.pk, 0),
        )
        rows.append(ReconRow(st.pk, st.ref, st.full_name, class_name, recon, at))
    # sales for students the server does not know: in suspense, shown, never lost
    suspense = db.scalar(
        select(func.coalesce(func.sum(Posting.amount_tiyn), 0)).where(
            Posting.school_id == school_id, Posting.account == AccountKind.SUSPENSE.value
        )
    )
    if suspense and student_pks is None:
        rows.append(
            ReconRow(
                None,
                "-",
                "",
                "",
                ledger.Reconciliation(
                    int(suspense),
                    None,
                    (
                        ledger.Difference(
                            "suspense", "Sales for students unknown to the server", int(suspense)
                        ),
                    ),
                ),
                None,
            )
        )
    return rows


# ------------------------------------------------------------------------------ menus, limits


def set_menu(
    db: Session, who: Principal, school_id: str, day: dt.date, items: Sequence[ledger.MenuLine]
) -> Menu:
    wire = [
        MenuItem(id=i.id, name=i.name, price_tiyn=i.price_tiyn, allergens=list(i.allergens))
        for i in items
    ]
    delta = append_changes(db, school_id, [MenuSet(local_date=day.isoformat(), items=wire)])
    row = db.get(Menu, (school_id, day))
    dumped = [w.model_dump(mode="json") for w in wire]
    if row is None:
        row = Menu(
            school_id=school_id,
            local_date=day,
            items=dumped,
            updated_at_ms=now_ms(),
            sync_version=delta.version,
        )
        db.add(row)
    else:
        row.items = dumped
        row.updated_at_ms = now_ms()
        row.sync_version = delta.version
    row.updated_by = who.user_pk
    audit(
        db,
        who,
        "canteen.menu",
        f"school:{school_id}",
        school_id=school_id,
        summary=f"menu of {day}: {len(items)} dishes",
    )
    return row


def set_limits(
    db: Session, who: Principal, student: Student, allergens: list[str], cap: int | None
) -> ParentLimits:
    if cap is not None and cap < 0:
        raise CanteenError(422, "negative_cap", "The daily cap must not be negative.")
    delta = append_changes(
        db,
        student.school_id,
        [ParentLimitsSet(student_id=student.ref, allergen_blocks=allergens, daily_cap_tiyn=cap)],
    )
    row = db.get(ParentLimits, student.pk)
    if row is None:
        row = ParentLimits(
            student_pk=student.pk, updated_at_ms=now_ms(), sync_version=delta.version
        )
        db.add(row)
    row.allergen_blocks = allergens
    row.daily_cap_tiyn = cap
    row.updated_at_ms = now_ms()
    row.updated_by = who.user_pk
    row.sync_version = delta.version
    audit(
        db,
        who,
        "canteen.limits",
        f"student:{student.pk}",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"allergen blocks ({len(allergens)}), daily cap {'set' if cap is not None else 'none'}",
    )
    return row


# ---------------------------------------------------------------------------- social wallet


@dataclass(frozen=True, slots=True)
class FundResult:
    funded: int
    already: int
    unknown: int  # eligible children the server does not know (another system's list)
    tiyn: int


def fund_vouchers(
    db: Session, wallet: SocialWallet, month: str, schools: set[str] | None
) -> FundResult:
    """Pay the month's eligibility list into the children's voucher accounts, once per child
    and month; only the given schools (None: all)."""
    ledger.month_bounds(month)
    funded = already = unknown = tiyn = 0
    for el in wallet.eligibility(month):
        student = db.scalar(select(Student).where(Student.ref == el.student_ref))
        if student is None or (schools is not None and student.school_id not in schools):
            unknown += student is None
            continue
        ref = f"wallet:{month}:{student.ref}"
        if db.scalar(select(LedgerEntry.id).where(LedgerEntry.external_ref == ref)) is not None:
            already += 1
            continue
        try:
            postings = ledger.voucher_fund(student.pk, el.amount_tiyn)
        except MoneyError:
            unknown += 1
            continue
        _book(
            db,
            school_id=student.school_id,
            student=student,
            student_ref=student.ref,
            kind=EntryKind.VOUCHER_FUND,
            amount=el.amount_tiyn,
            postings=postings,
            external_ref=ref,
            at_ms=now_ms(),
            reason=f"social wallet {month}",
        )
        funded += 1
        tiyn += el.amount_tiyn
    return FundResult(funded, already, unknown, tiyn)


def issue_qr(settings: CanteenSettings, student: Student, now: int) -> tuple[str, ledger.QrClaim]:
    if settings.qr_secret is None:
        raise CanteenError(503, "qr_off", "Voucher QR codes are not configured.")
    claim = ledger.QrClaim(
        student_ref=student.ref,
        amount_tiyn=settings.voucher_meal_tiyn,
        nonce=uuid.uuid4().hex,
        expires_ms=now + settings.qr_ttl_s * 1000,
    )
    return ledger.qr_sign(claim, settings.qr_secret.get_secret_value().encode()), claim


def redeem_qr(
    db: Session,
    settings: CanteenSettings,
    wallet: SocialWallet,
    who: Principal,
    token: str,
    now: int,
) -> LedgerEntry:
    """A voucher meal paid by a QR code: verified, once per nonce, confirmed by the wallet
    (idempotent on the nonce) and booked. A repeat after a crash between the wallet's answer
    and the booking books it then; a repeat after the booking is refused as already redeemed."""
    if settings.qr_secret is None:
        raise CanteenError(503, "qr_off", "Voucher QR codes are not configured.")
    try:
        claim = ledger.qr_verify(token, settings.qr_secret.get_secret_value().encode(), now)
    except ledger.QrError as err:
        raise CanteenError(
            410 if err.code == "expired" else 400, f"qr_{err.code}", str(err)
        ) from err
    ref = f"qr:{claim.nonce}"
    if db.scalar(select(LedgerEntry.id).where(LedgerEntry.external_ref == ref)) is not None:
        raise CanteenError(409, "qr_redeemed", "This QR code has already been redeemed.")
    student = db.scalar(select(Student).where(Student.ref == claim.student_ref))
    if student is None or not who.can("canteen.manage", school_id=student.school_id):
        raise CanteenError(404, "unknown_student", "No active student has this id.")
    if balance(db, student.pk, AccountKind.STUDENT_VOUCHER) < claim.amount_tiyn:
        raise CanteenError(409, "voucher_low", "The voucher balance is too low for this meal.")
    try:
        wallet.redeem(claim.nonce, student.ref, claim.amount_tiyn, now)
    except WalletError as err:
        raise CanteenError(
            502, f"wallet_{err.code}", "The social wallet refused the redemption."
        ) from err
    entry = _book(
        db,
        school_id=student.school_id,
        student=student,
        student_ref=student.ref,
        kind=EntryKind.VOUCHER_MEAL,
        amount=claim.amount_tiyn,
        postings=ledger.voucher_meal(student.pk, claim.amount_tiyn),
        external_ref=ref,
        at_ms=now,
        local_date=local_date(now, zone_of(db, student.school_id)),
        created_by=who.user_pk,
        wallet_confirmed_ms=now,
    )
    audit(
        db,
        who,
        "canteen.voucher",
        f"student:{student.pk}",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"voucher meal {ledger_id(entry)} by QR",
    )
    return entry


def redemption_id(entry: LedgerEntry) -> str:
    return (
        entry.external_ref.removeprefix("qr:")
        if entry.external_ref.startswith("qr:")
        else entry.external_ref.replace(":", "-")
    )


def confirm_voucher_meals(
    db: Session, wallet: SocialWallet, school_id: str, limit: int = 500
) -> int:
    """Card voucher meals journaled at the school: redeem each with the wallet (idempotent on
    its event's id), so that the settlement pays for every meal served."""
    entries = list(
        db.scalars(
            select(LedgerEntry)
            .where(
                LedgerEntry.school_id == school_id,
                LedgerEntry.kind == EntryKind.VOUCHER_MEAL.value,
                LedgerEntry.wallet_confirmed_ms.is_(None),
            )
            .limit(limit)
        )
    )
    for e in entries:
        wallet.redeem(redemption_id(e), e.student_ref, e.amount_tiyn, e.at_ms)
        e.wallet_confirmed_ms = now_ms()
    return len(entries)


@dataclass(frozen=True, slots=True)
class SettlementLine:
    redemption_id: str
    student_ref: str
    ours_tiyn: int | None
    wallet_tiyn: int | None

    @property
    def problem(self) -> str:
        if self.ours_tiyn is None:
            return "Paid by the wallet, not in the ledger"
        if self.wallet_tiyn is None:
            return "In the ledger, not confirmed by the wallet"
        if self.ours_tiyn != self.wallet_tiyn:
            return "Amounts differ"
        return ""


@dataclass(frozen=True, slots=True)
class Settlement:
    month: str
    meals: int
    ours_tiyn: int
    wallet_tiyn: int
    lines: tuple[SettlementLine, ...]  # only those that differ

    @property
    def matches(self) -> bool:
        return not self.lines and self.ours_tiyn == self.wallet_tiyn


def settlement(db: Session, wallet: SocialWallet, school_id: str, month: str) -> Settlement:
    """The month's voucher meals in the ledger against the wallet's settlement for them."""
    first, nxt = ledger.month_bounds(month)
    ours = {
        redemption_id(e): e
        for e in db.scalars(
            select(LedgerEntry).where(
                LedgerEntry.school_id == school_id,
                LedgerEntry.kind == EntryKind.VOUCHER_MEAL.value,
                LedgerEntry.local_date >= first,
                LedgerEntry.local_date < nxt,
            )
        )
    }
    refs = set(db.scalars(select(Student.ref).where(Student.school_id == school_id)))
    theirs = {r.redemption_id: r for r in wallet.settlement(month) if r.student_ref in refs}
    lines = []
    for rid in sorted(set(ours) | set(theirs)):
        o, t = ours.get(rid), theirs.get(rid)
        line = SettlementLine(
            rid,
            (o.student_ref if o is not None else t.student_ref if t is not None else ""),
            o.amount_tiyn if o is not None else None,
            t.amount_tiyn if t is not None else None,
        )
        if line.problem:
            lines.append(line)
    return Settlement(
        month,
        len(ours),
        sum(e.amount_tiyn for e in ours.values()),
        sum(r.amount_tiyn for r in theirs.values()),
        tuple(lines),
    )


# --------------------------------------------------------------------------------- reports


@dataclass(slots=True)
class DayRow:
    day: dt.date
    free: int = 0
    paid: int = 0
    voucher: int = 0
    paid_tiyn: int = 0
    voucher_tiyn: int = 0
    refunds_tiyn: int = 0

    @property
    def revenue_tiyn(self) -> int:
        return self.paid_tiyn + self.voucher_tiyn - self.refunds_tiyn


def meal_report(db: Session, school_id: str, start: dt.date, end: dt.date) -> list[DayRow]:
    """Per local day in [start, end]: meals served free / paid / voucher (events) and revenue
    (ledger: paid and voucher meals, less refunds)."""
    days: dict[dt.date, DayRow] = {}
    zone = zone_of(db, school_id)
    lo = int(dt.datetime.combine(start, dt.time(), zone).timestamp() * 1000) - 86_400_000
    hi = (
        int(dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone).timestamp() * 1000)
        + 86_400_000
    )
    meal = StoredEvent.payload["meal"].as_string()
    day_col = StoredEvent.payload["local_date"].as_string()
    for day_text, kind, count in db.execute(
        select(day_col, meal, func.count())
        .where(
            StoredEvent.school_id == school_id,
            StoredEvent.kind == "meal_served",
            StoredEvent.at_ms >= lo,
            StoredEvent.at_ms < hi,
        )
        .group_by(day_col, meal)
    ):
        try:
            day = dt.date.fromisoformat(str(day_text))
        except ValueError:
            continue
        if not start <= day <= end:
            continue
        row = days.setdefault(day, DayRow(day))
        if kind in ("free", "paid", "voucher"):
            setattr(row, kind, getattr(row, kind) + int(count))
    for e in db.scalars(
        select(LedgerEntry).where(
            LedgerEntry.school_id == school_id,
            LedgerEntry.kind.in_(
                (EntryKind.MEAL.value, EntryKind.VOUCHER_MEAL.value, EntryKind.REFUND.value)
            ),
            LedgerEntry.at_ms >= lo,
            LedgerEntry.at_ms < hi,
        )
    ):
        day = e.local_date or local_date(e.at_ms, zone)
        if not start <= day <= end:
            continue
        row = days.setdefault(day, DayRow(day))
        if e.kind == EntryKind.MEAL.value:
            row.paid_tiyn += e.amount_tiyn
        elif e.kind == EntryKind.VOUCHER_MEAL.value:
            row.voucher_tiyn += e.amount_tiyn
            if e.device_pk is None:  # a QR redemption has no school event: count the meal here
                row.voucher += 1
        else:
            row.refunds_tiyn += e.amount_tiyn
    return [days[d] for d in sorted(days)]


def student_entries(db: Session, student_pk: int, limit: int = 200) -> list[LedgerEntry]:
    return list(
        db.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.student_pk == student_pk)
            .order_by(LedgerEntry.at_ms.desc(), LedgerEntry.id.desc())
            .limit(limit)
        )
    )


def entry_delta(entry: LedgerEntry) -> int:
    """The entry's effect on the student's (balance or voucher) account."""
    if entry.kind in (EntryKind.MEAL.value, EntryKind.VOUCHER_MEAL.value):
        return -entry.amount_tiyn
    if entry.kind == EntryKind.CORRECTION.value and entry.sync_version is None:
        return -entry.amount_tiyn
    return entry.amount_tiyn
