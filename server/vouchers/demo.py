"""Demo vouchers: the social wallet gives every eleventh student a lunch voucher for today,
spent by card at the demo school's canteen before the balance. The same grants go to the demo
edge directly (``qaqpa demo``) and through the downlink; the edge applies each id once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import VoucherGrant
from server.canteen import service as canteen
from server.clock import now_ms
from server.people.models import Student
from server.sync.changelog import append_changes
from server.vouchers import service
from server.vouchers.models import Voucher

ISSUER = "social-wallet"
AMOUNT_TIYN = 60_000  # 600 tenge: a lunch


def voucher_refs(refs: Sequence[str]) -> list[str]:
    return list(refs[3::11])


def grants(refs: Sequence[str], today: dt.date) -> list[VoucherGrant]:
    return [
        VoucherGrant(
            voucher_id=f"demo-voucher-{ref}",
            issuer=ISSUER,
            student_id=ref,
            amount_tiyn=AMOUNT_TIYN,
            valid_from=today.isoformat(),
            valid_to=today.isoformat(),
        )
        for ref in voucher_refs(refs)
    ]


def seed_demo(db: Session, school: str, refs: Sequence[str], today: dt.date) -> None:
    """The issuer (a key made for the demo: its private half is not kept, so the demo mints
    no QR voucher) and the card vouchers, booked and sent to the school."""
    if db.get(Voucher, f"demo-voucher-{refs[3]}" if len(refs) > 3 else "") is not None:
        return
    key = Ed25519PrivateKey.generate()
    service.add_issuer(db, ISSUER, "Social wallet (demo)", service.public_b64(key))
    sent = []
    for grant in grants(refs, today):
        st = db.scalar(
            select(Student).where(Student.school_id == school, Student.ref == grant.student_id)
        )
        if st is None or not st.active:
            continue
        v = Voucher(
            id=grant.voucher_id,
            kind="card",
            issuer_id=ISSUER,
            school_id=school,
            student_pk=st.pk,
            student_ref=st.ref,
            amount_tiyn=grant.amount_tiyn,
            valid_from=today,
            valid_to=today,
            meal_periods=[],
            created_at_ms=now_ms(),
            source="demo",
        )
        db.add(v)
        db.flush()
        entry = canteen.book_voucher_fund(db, st, v.amount_tiyn, f"voucher:{v.id}", v.created_at_ms)
        v.ledger_entry_id = entry.id
        sent.append((v, grant))
    if sent:
        delta = append_changes(db, school, [g for _, g in sent])
        for v, _ in sent:
            v.sync_version = delta.version
