"""The edge store: one SQLite database per school daemon (aiosqlite, WAL, synchronous=FULL).

It holds the roster (students, staff, cards, consents, social categories), the policy, the meal
ledger, the anti-passback state and the journal of events. The journal is also the outbox: every
event gets the next ``seq`` of this device in the same transaction as the decision and its side
effects (DESIGN invariants 1 and 2), and stays unsent until the server acknowledges it.

The decision state is also kept in memory (``SchoolState``): decisions read memory, transactions
write the database, and memory is changed only after a transaction commits.

One object, ``EdgeStore``, with one writer (the journal thread); its code by concern:

- ``migrations``: the schema as numbered migrations (``PRAGMA user_version``), run at open;
- ``base``: open and close, the journal thread every write goes through, loading memory;
- ``journal``: events, their side effects, the gap-free seq, the outbox and its acknowledgement;
- ``downlink``: deltas and snapshots from the server, the sync version, local roster changes;
- ``canteen``: balances, debits and receipts;
- ``web_sessions``: staff sessions of the edge's own web pages (the kiosk, the staff page);
- ``staff_pins``: keyed verifiers of staff PINs and their wrong-entry counts;
- ``alarms``: the alarms journaled here, for the staff page's duty section.
- ``lending``: the library desk's items, approved lists and who holds what.
"""

from __future__ import annotations

from edge.store.alarms import AlarmsMixin
from edge.store.canteen import CanteenMixin, Sale
from edge.store.downlink import DownlinkMixin
from edge.store.errors import StoreError, SyncGap
from edge.store.journal import (
    EVENT_ADAPTER,
    HIGH_WATER,
    JournalEntry,
    JournalMixin,
    OutboxStats,
    PreparedJournal,
)
from edge.store.lending import DeskApproval, DeskItem, LendingMixin, LendingWrite
from edge.store.migrations import SCHEMA_VERSION
from edge.store.staff_pins import StaffPin, StaffPinsMixin
from edge.store.web_sessions import WebSession, WebSessionsMixin

__all__ = [
    "EVENT_ADAPTER",
    "HIGH_WATER",
    "SCHEMA_VERSION",
    "DeskApproval",
    "DeskItem",
    "EdgeStore",
    "JournalEntry",
    "LendingWrite",
    "OutboxStats",
    "PreparedJournal",
    "Sale",
    "StaffPin",
    "StoreError",
    "SyncGap",
    "WebSession",
]


class EdgeStore(
    JournalMixin,
    DownlinkMixin,
    CanteenMixin,
    WebSessionsMixin,
    StaffPinsMixin,
    AlarmsMixin,
    LendingMixin,
):
    """The school's store: open it with ``await EdgeStore.open(path, school=..., device=...)``."""
