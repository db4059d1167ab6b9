"""Cards blocked at the school (``cards_blocked`` events from the staff page) become blocks at
the centre, in the ingest transaction that stores the event: every active card of the student
issued before the event is blocked and the block goes to every edge of the school (the change
log), audited as done by the staff member the event names.

A resent event blocks nothing twice (only active cards are blocked), and never a card issued
after the event (a replacement handed over later)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from server.audit.service import audit
from server.cards.models import BlockReason, Card, CardStatus
from server.cards.service import block_card
from server.people.models import Student

log = logging.getLogger(__name__)

KIND = "cards_blocked"


def apply_card_blocks(conn: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Apply the ``cards_blocked`` rows (as ingest stores them) inside ``conn``'s transaction;
    returns how many cards were blocked."""
    blocks = [r for r in rows if r["kind"] == KIND]
    if not blocks:
        return 0
    done = 0
    with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
        for r in blocks:
            payload = r["payload"]
            student = session.execute(
                select(Student).where(
                    Student.ref == r["student_id"], Student.school_id == r["school_id"]
                )
            ).scalar_one_or_none()
            if student is None:
                continue
            cards = session.execute(
                select(Card).where(
                    Card.student_pk == student.pk,
                    Card.status == CardStatus.ACTIVE.value,
                    Card.issued_at_ms <= r["at_ms"],
                )
            ).scalars()
            reason = BlockReason(payload.get("reason", "lost"))
            for card in list(cards):
                block_card(session, None, card, reason)
                audit(
                    session,
                    None,
                    "change",
                    "card",
                    student_pk=student.pk,
                    school_id=student.school_id,
                    summary=f"card #{card.pk} blocked at the school by staff "
                    f"{payload.get('authorised_by', '?')} (staff page, event {r['seq']})",
                )
                done += 1
        session.commit()  # releases the savepoint: the ingest transaction commits it all
    if done:
        log.info("ingest: %d card(s) blocked at the schools' request", done)
    return done
