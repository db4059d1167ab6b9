"""The library desk's items, approved lists and holders (``lending_items``, ``lending_approvals``,
migration 5).

The centre sends the school's lendable items and approved lists wholesale (``lending_set``); the
desk's acts (``edge.lending``) change an item's holder in the transaction of their ``lending``
event. A holder set here and not yet acknowledged by the centre stays when a list from the
centre arrives (the centre cannot know it yet)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.store.base import StoreBase
from protocol.messages import LendingSet


@dataclass(frozen=True, slots=True)
class LendingWrite:
    """An act's effect on its item: ``holder`` None when the item is back; ``away`` when it was
    reported lost or damaged (not lendable here until the centre lists it again)."""

    inventory_no: str
    holder: str | None
    away: bool = False


@dataclass(frozen=True, slots=True)
class DeskItem:
    inventory_no: str
    kind: str  # device / textbook / book
    title: str
    campaign: str | None
    holder: str | None
    away: bool = False


@dataclass(frozen=True, slots=True)
class DeskApproval:
    campaign: str
    campaign_name: str
    student_id: str
    rank: int


def _item(r: Any) -> DeskItem:
    return DeskItem(r[0], r[1], r[2], r[3], r[4], bool(r[5]))


def write_lending(db: sqlite3.Connection, seq: int, act: LendingWrite) -> None:
    db.execute(
        "UPDATE lending_items SET holder = ?, holder_seq = ?, away = ? WHERE inventory_no = ?",
        (act.holder, seq, int(act.away), act.inventory_no),
    )


def put_lending(db: sqlite3.Connection, lending: LendingSet) -> None:
    """Replace the items and approved lists with the centre's; holders set by a desk act the
    centre has not acknowledged yet stay."""
    row = db.execute("SELECT value FROM meta WHERE key = 'acked_through'").fetchone()
    acked = int(row[0]) if row else 0
    pending = {
        inv: (holder, seq, away)
        for inv, holder, seq, away in db.execute(
            "SELECT inventory_no, holder, holder_seq, away FROM lending_items "
            "WHERE holder_seq IS NOT NULL AND holder_seq > ?",
            (acked,),
        )
    }
    db.execute("DELETE FROM lending_items")
    db.executemany(
        "INSERT INTO lending_items VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                i.inventory_no,
                i.kind,
                i.title,
                i.campaign,
                *pending.get(i.inventory_no, (i.holder, None, 0)),
            )
            for i in lending.items
        ],
    )
    db.execute("DELETE FROM lending_approvals")
    db.executemany(
        "INSERT OR REPLACE INTO lending_approvals VALUES (?, ?, ?, ?)",
        [(a.campaign, a.campaign_name, a.student_id, a.rank) for a in lending.approvals],
    )


class LendingMixin(StoreBase):
    async def desk_item(self, inventory_no: str) -> DeskItem | None:
        async with self._db.execute(
            "SELECT inventory_no, kind, title, campaign, holder, away FROM lending_items "
            "WHERE inventory_no = ?",
            (inventory_no,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _item(row)

    async def desk_items_of(self, student_id: str) -> list[DeskItem]:
        """What the student holds, as this school knows it."""
        async with self._db.execute(
            "SELECT inventory_no, kind, title, campaign, holder, away FROM lending_items "
            "WHERE holder = ? ORDER BY kind, title, inventory_no",
            (student_id,),
        ) as cur:
            return [_item(r) async for r in cur]

    async def desk_approvals_of(self, student_id: str) -> list[DeskApproval]:
        """The approved lists the student is on (a device of each campaign is theirs)."""
        async with self._db.execute(
            "SELECT campaign, campaign_name, student_id, rank FROM lending_approvals "
            "WHERE student_id = ? ORDER BY campaign",
            (student_id,),
        ) as cur:
            return [DeskApproval(*r) async for r in cur]

    async def desk_in_stock(self, campaign: str, limit: int = 5) -> list[DeskItem]:
        """Devices of a campaign nobody holds (the desk suggests the first)."""
        async with self._db.execute(
            "SELECT inventory_no, kind, title, campaign, holder, away FROM lending_items "
            "WHERE campaign = ? AND kind = 'device' AND holder IS NULL AND away = 0 "
            "ORDER BY inventory_no LIMIT ?",
            (campaign, limit),
        ) as cur:
            return [_item(r) async for r in cur]
