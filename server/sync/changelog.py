"""The per-school downlink change log in the database: append a version, fold it into a state.

No MQTT here: the domain services (roster, cards, consents, policy, canteen) append to the log
through this module, and the downlink service (``server.sync.service``) sends what was appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import BalanceCredit, BalanceDebit, Change, SyncDelta
from server.clock import now_ms
from server.devices import ensure_school
from server.models import ChangeLogCheckpoint, ChangeLogEntry, School
from server.sync.state import SchoolState, compacted, fold, legacy_money_of

_CHANGES = TypeAdapter(list[Change])
# A school's checkpoint is rewritten when the log has grown this many versions past it: reading
# the state folds the checkpoint (the roster) and at most this many versions.
CHECKPOINT_EVERY = 32


def dump_changes(changes: Sequence[Change]) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json", by_alias=True) for c in changes]


def load_changes(rows: Sequence[list[dict[str, Any]]]) -> list[Change]:
    out: list[Change] = []
    for payload in rows:
        out.extend(_CHANGES.validate_python(payload, strict=False))
    return out


def changes_after(session: Session, school: str, version: int) -> list[Change]:
    """Every change of the school's log above ``version``, in order."""
    rows = session.execute(
        select(ChangeLogEntry.changes)
        .where(ChangeLogEntry.school_id == school, ChangeLogEntry.version > version)
        .order_by(ChangeLogEntry.version)
    ).scalars()
    return load_changes(list(rows))


def legacy_money(
    session: Session, school: str, through: int
) -> tuple[list[BalanceCredit], list[BalanceDebit]]:
    """Every credit and server debit the school's log sent through ``through``: the money of a
    snapshot to an edge of the release before (it reads those lists, not the nets). Reads the
    whole log: only while such edges remain."""
    rows = session.execute(
        select(ChangeLogEntry.changes)
        .where(ChangeLogEntry.school_id == school, ChangeLogEntry.version <= through)
        .order_by(ChangeLogEntry.version)
    ).scalars()
    money = [
        [c for c in payload if c.get("op") in ("balance_credit", "balance_debit")]
        for payload in rows
    ]
    return legacy_money_of(load_changes([m for m in money if m]))


def load_state(session: Session, school: str, through: int | None = None) -> SchoolState:
    """The school's state at ``through`` (None: the head): its checkpoint folded with the
    versions after it; a version older than the checkpoint is folded from the beginning."""
    state, _rows = _load(session, school, through)
    return state


def _load(session: Session, school: str, through: int | None) -> tuple[SchoolState, int]:
    """The state and the number of log versions read beside the checkpoint."""
    cp = session.get(ChangeLogCheckpoint, school)
    q = select(ChangeLogEntry.changes).where(ChangeLogEntry.school_id == school)
    base: list[Change] = []
    if cp is not None and (through is None or through >= cp.version):
        base = load_changes([cp.changes])
        q = q.where(ChangeLogEntry.version > cp.version)
    if through is not None:
        q = q.where(ChangeLogEntry.version <= through)
    rows = list(session.execute(q.order_by(ChangeLogEntry.version)).scalars())
    return fold(load_changes(rows), fold(base)), len(rows)


def versions_read(session: Session, school: str) -> int:
    """How many log versions reading the head state folds beside the checkpoint (for tests and
    benches: bounded by ``CHECKPOINT_EVERY``, whatever the history)."""
    return _load(session, school, None)[1]


def append_changes(session: Session, school: str, changes: Sequence[Change]) -> SyncDelta:
    """Append one version to the school's log (caller commits); returns the delta to publish.

    Raises ``ChangeRejected`` when a change breaks an invariant (nothing is appended).
    """
    ensure_school(session, school)
    row = session.execute(select(School).where(School.id == school).with_for_update()).scalar_one()
    state = load_state(session, school)
    for change in changes:
        state.check(change)
        state.apply(change)
    version = row.sync_version + 1
    session.add(
        ChangeLogEntry(
            school_id=school, version=version, at_ms=now_ms(), changes=dump_changes(changes)
        )
    )
    row.sync_version = version
    cp = session.get(ChangeLogCheckpoint, school)
    if version - (cp.version if cp is not None else 0) >= CHECKPOINT_EVERY:
        compact = dump_changes(compacted(state))
        if cp is None:
            session.add(
                ChangeLogCheckpoint(
                    school_id=school, version=version, at_ms=now_ms(), changes=compact
                )
            )
        else:
            cp.version, cp.at_ms, cp.changes = version, now_ms(), compact
    session.flush()
    return SyncDelta(
        school=school, version=version, base_version=version - 1, changes=list(changes)
    )
