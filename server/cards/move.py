"""Start the move of a school's card numbers to the school (``server.sync.cardmove`` finishes it).

Run it once the school's edges run a release that knows card records: the edges of the release
before cannot apply the ``card_refs`` version and stop at it (they keep deciding on what they
hold, but apply nothing newer) until they are upgraded.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import CardRecordSet, CardRefAssign, CardRefsAssign, Change
from server.cards.models import Card, CardStatus
from server.cards.service import owner_ref, record_of
from server.clock import now_ms
from server.devices import ensure_school
from server.sync.cardmove import CardMove, behind, edges, finish_move
from server.sync.changelog import append_changes


@dataclass(frozen=True, slots=True)
class MoveStatus:
    school: str
    version: int | None  # the version holding the bindings locally; None: not started
    done_at_ms: int | None
    numbers_here: int  # numbers the centre still holds for the school
    edges: int
    behind: list[tuple[str, int]]  # (device, applied version) not yet at ``version``


def start_move(session: Session, school: str) -> CardMove:
    """Append the version naming the record of every number the school's edges hold (and each
    record), once; then try to finish at once (every edge may already be there). Caller
    commits."""
    ensure_school(session, school)
    move = session.get(CardMove, school)
    if move is not None:
        return move
    cards = list(
        session.execute(
            select(Card)
            .where(Card.school_id == school, Card.status != CardStatus.UNBOUND.value)
            .order_by(Card.pk)
        ).scalars()
    )
    refs = [
        CardRefAssign(credential=c.credential, card_ref=c.card_ref)
        for c in cards
        if c.credential is not None
    ]
    changes: list[Change] = [CardRefsAssign(refs=refs)]
    changes += [CardRecordSet(record=record_of(c, owner_ref(session, c))) for c in cards]
    delta = append_changes(session, school, changes)
    move = CardMove(school_id=school, version=delta.version, started_at_ms=now_ms())
    session.add(move)
    session.flush()
    finish_move(session, school)
    return move


def move_status(session: Session, school: str) -> MoveStatus:
    move = session.get(CardMove, school)
    here = sum(
        1
        for _ in session.execute(
            select(Card.pk).where(Card.school_id == school, Card.credential.is_not(None))
        )
    )
    return MoveStatus(
        school=school,
        version=move.version if move else None,
        done_at_ms=move.done_at_ms if move else None,
        numbers_here=here,
        edges=edges(session, school),
        behind=behind(session, school, move.version) if move else [],
    )
