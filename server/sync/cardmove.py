"""The move of a school's card numbers from the centre to the school (DESIGN invariant 5).

``server.cards.move.start_move`` appends one version to the school's change log (``card_refs``:
the record of every number its edges hold, and each record). Nothing else changes for an edge
until it has applied that version: it keeps deciding on the numbers it holds, offline or not.
Here, at every SyncAck: once every edge of the school (enrolled, not revoked) has acknowledged
that version, the centre erases its copy of the numbers, in one transaction: the ``cards``
rows' ``credential`` and every number in the school's change log (the numbered card ops are
dropped; ``card_refs`` becomes ``refs=[]``, the mark that snapshots carry records). A school with
no enrolled edge keeps its numbers: no edge would hold them.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, column, func, select, table, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.clock import now_ms
from server.models import Base, ChangeLogCheckpoint, ChangeLogEntry, Device

log = logging.getLogger(__name__)

# the card ops that carry a number; dropped from the log when the move is done
NUMBERED_OPS = frozenset({"card_bind", "card_block", "card_unbind"})
_CARDS = table("cards", column("school_id"), column("credential"))  # server.cards owns it


class CardMove(Base):
    """The version of a school's change log that names the record of every number its edges
    hold; ``done_at_ms`` once every edge acknowledged it and the numbers were erased."""

    __tablename__ = "card_moves"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    started_at_ms: Mapped[int] = mapped_column(BigInteger)
    done_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    numbers_erased: Mapped[int] = mapped_column(BigInteger, default=0)


def behind(session: Session, school: str, version: int) -> list[tuple[str, int]]:
    """(device, applied version) of the school's edges that have not acknowledged ``version``."""
    rows = session.execute(
        select(Device.device_id, Device.applied_version).where(
            Device.school_id == school,
            Device.public_key.is_not(None),
            Device.revoked_at_ms.is_(None),
        )
    ).all()
    return [(d, v) for d, v in rows if v < version]


def edges(session: Session, school: str) -> int:
    return session.execute(
        select(func.count())
        .select_from(Device)
        .where(
            Device.school_id == school,
            Device.public_key.is_not(None),
            Device.revoked_at_ms.is_(None),
        )
    ).scalar_one()


def finish_move(session: Session, school: str) -> bool:
    """Erase the centre's copy of the school's numbers if its move is acknowledged by every
    edge (caller commits). True when it did now."""
    move = session.get(CardMove, school, with_for_update=True)
    if move is None or move.done_at_ms is not None:
        return False
    if edges(session, school) == 0 or behind(session, school, move.version):
        return False
    result = session.execute(
        update(_CARDS)
        .where(_CARDS.c.school_id == school, _CARDS.c.credential.is_not(None))
        .values(credential=None)
    )
    erased = int(getattr(result, "rowcount", 0) or 0)
    for entry in session.execute(
        select(ChangeLogEntry).where(ChangeLogEntry.school_id == school)
    ).scalars():
        kept = _without_numbers(entry.changes)
        if kept != entry.changes:
            entry.changes = kept
    checkpoint = session.get(ChangeLogCheckpoint, school)  # the compacted state, likewise
    if checkpoint is not None:
        checkpoint.changes = _without_numbers(checkpoint.changes)
    move.done_at_ms = now_ms()
    move.numbers_erased = erased
    session.flush()
    log.info("school %s: card numbers moved to the school; %d erased here", school, erased)
    return True


def _without_numbers(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in changes:
        if c.get("op") in NUMBERED_OPS:
            continue
        if c.get("op") == "card_refs":
            c = {**c, "refs": []}
        out.append(c)
    return out
