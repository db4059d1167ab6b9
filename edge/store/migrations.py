"""The store's schema as numbered migrations, applied at open in ONE transaction.

The version of a store file is SQLite's ``PRAGMA user_version``: migration N brings a store from
version N - 1 to N. Opening a store applies every migration above its version, sets the version
and mirrors it in ``meta.schema_version`` (the only mark the releases before migrations check, so
they refuse a store they cannot read), all in one transaction: a migration that fails leaves the
store exactly at its old version. A store of a newer version than this code knows is refused,
untouched.

The releases before migrations (up to commit f2614fb) wrote schema version 1: they created the
schema in one go, marked ``meta.schema_version = '1'``, left ``user_version`` at 0, and added the
canteen tables with ``IF NOT EXISTS`` at every open. Such a store is recognised as version 1: the
canteen tables are created if it lacks them (as those releases did) and ``user_version`` is set
to 1; nothing else changes.

Adding a migration: append ``Migration(N + 1, "what it changes", sql=...)`` (or ``run=`` a
function of the connection, for data that needs Python) to ``MIGRATIONS``. Never edit a released
migration: stores in the field already ran it. A migration must not commit (no ``executescript``,
no ``BEGIN``/``COMMIT``); foreign keys are off while migrations run and checked before the commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.store.errors import StoreError

# Schema version 1, as the releases before migrations created it.
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE students (
  id TEXT PRIMARY KEY, grade INTEGER NOT NULL, class_name TEXT NOT NULL,
  shift INTEGER NOT NULL, display_name TEXT NOT NULL DEFAULT '');
CREATE TABLE staff (
  id TEXT PRIMARY KEY, roles TEXT NOT NULL, classes TEXT NOT NULL,
  pin_hash TEXT NOT NULL DEFAULT '', display_name TEXT NOT NULL DEFAULT '');
CREATE TABLE cards (
  credential TEXT PRIMARY KEY, owner_kind TEXT NOT NULL, owner_id TEXT NOT NULL,
  blocked_reason TEXT);
CREATE INDEX cards_owner ON cards (owner_id);
CREATE TABLE consents (
  student_id TEXT NOT NULL REFERENCES students (id) ON DELETE CASCADE,
  kind TEXT NOT NULL, granted INTEGER NOT NULL, given_by TEXT NOT NULL,
  at_ms INTEGER NOT NULL, document TEXT NOT NULL, PRIMARY KEY (student_id, kind));
CREATE TABLE categories (
  student_id TEXT NOT NULL REFERENCES students (id) ON DELETE CASCADE,
  code TEXT NOT NULL, valid_from TEXT NOT NULL, valid_to TEXT NOT NULL,
  document TEXT NOT NULL, PRIMARY KEY (student_id, code, valid_from));
CREATE TABLE menu (local_date TEXT PRIMARY KEY, items TEXT NOT NULL);
CREATE TABLE meal_ledger (
  student_id TEXT NOT NULL, local_date TEXT NOT NULL, period TEXT NOT NULL,
  meal TEXT NOT NULL, amount_tiyn INTEGER NOT NULL, terminal TEXT NOT NULL,
  at_ms INTEGER NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (student_id, local_date, period));
CREATE TABLE presence (
  person_id TEXT PRIMARY KEY, local_date TEXT NOT NULL, state TEXT NOT NULL,
  at_ms INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE journal (
  seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,
  terminal TEXT NOT NULL, event BLOB NOT NULL,
  credential TEXT);  -- the raw credential of a tap: stays at the school, never sent
"""

# Canteen money (created on open when missing before migrations). The balance is held at the
# school for spending; every change of it is a row: a credit from the server's ledger (idempotent
# on ledger_id) or a debit by a sale (with its receipt, same transaction).
CANTEEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (
  student_id TEXT PRIMARY KEY, balance_tiyn INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS balance_credits (
  ledger_id TEXT PRIMARY KEY, student_id TEXT NOT NULL, amount_tiyn INTEGER NOT NULL,
  sync_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS debits (
  seq INTEGER PRIMARY KEY, student_id TEXT NOT NULL, amount_tiyn INTEGER NOT NULL,
  balance_after_tiyn INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
  seq INTEGER PRIMARY KEY, student_id TEXT NOT NULL, local_date TEXT NOT NULL,
  period TEXT NOT NULL, terminal TEXT NOT NULL, at_ms INTEGER NOT NULL, lines TEXT NOT NULL,
  amount_tiyn INTEGER NOT NULL, balance_after_tiyn INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS receipts_day ON receipts (student_id, local_date);
CREATE TABLE IF NOT EXISTS parent_limits (
  student_id TEXT PRIMARY KEY, allergen_blocks TEXT NOT NULL, daily_cap_tiyn INTEGER);
"""

# Staff PINs (migration 3): only a keyed verifier (edge.staff.pins), never the PIN; the count of
# wrong entries in a row and the time before which no attempt is compared.
STAFF_PINS_SCHEMA = """
CREATE TABLE staff_pins (
  staff_id TEXT PRIMARY KEY, verifier TEXT NOT NULL, version INTEGER NOT NULL,
  set_ms INTEGER NOT NULL, failures INTEGER NOT NULL DEFAULT 0,
  not_before_ms INTEGER NOT NULL DEFAULT 0);
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """Brings a store from ``version - 1`` to ``version``: SQL statements, then ``run``."""

    version: int
    summary: str
    sql: str = ""
    run: Callable[[sqlite3.Connection], None] | None = None

    def apply(self, db: sqlite3.Connection) -> None:
        for statement in statements(self.sql):
            db.execute(statement)
        if self.run is not None:
            self.run(db)


# Staff sessions of the edge's own web pages (the canteen kiosk; later the teacher's pass page
# and the card desk). The cookie's secret is never stored, only its SHA-256; the public id is
# what `qaqpa edge kiosk-sessions` lists and revokes.
WEB_SESSIONS_SCHEMA = """
CREATE TABLE web_sessions (
  id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, page TEXT NOT NULL, staff_id TEXT,
  address TEXT NOT NULL, agent TEXT NOT NULL, created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL, seen_ms INTEGER NOT NULL, revoked_ms INTEGER, revoked_why TEXT);
CREATE INDEX web_sessions_page ON web_sessions (page, expires_ms);
"""

# Cards bound at the school (DESIGN invariant 5): each row keeps its number as the store's key of
# it (``card_key``: a keyed hash, ``edge.core.cardkey``; the rows of older stores are hashed at
# the first open with the card key), the centre's record of it (``card_ref``: none for a card the
# centre bound before the move, until the move names it) and, for a card issued at this school's
# desk, the journal seq of its ``card_issued`` event (a snapshot keeps a card whose event the
# centre has not acknowledged yet).
CARD_RECORDS_SCHEMA = """
ALTER TABLE cards RENAME COLUMN credential TO card_key;
ALTER TABLE cards ADD COLUMN card_ref TEXT;
ALTER TABLE cards ADD COLUMN issued_seq INTEGER;
CREATE UNIQUE INDEX cards_ref ON cards (card_ref);
"""

# Social-wallet vouchers and server debits (issue 13, part 4). A voucher is applied once per id;
# each sale's voucher spends commit with its event (journal first); a QR voucher's id is kept
# with the sale that used it, so a second redemption is refused even after a crash; the issuers'
# public keys verify QR vouchers (no secret at the school); a server debit is applied once.
VOUCHERS_SCHEMA = """
CREATE TABLE vouchers (
  voucher_id TEXT PRIMARY KEY, issuer TEXT NOT NULL, student_id TEXT NOT NULL,
  amount_tiyn INTEGER NOT NULL, valid_from TEXT NOT NULL, valid_to TEXT NOT NULL,
  meal_periods TEXT NOT NULL, sync_version INTEGER NOT NULL);
CREATE INDEX vouchers_student ON vouchers (student_id);
CREATE TABLE voucher_spends (
  seq INTEGER NOT NULL, voucher_id TEXT NOT NULL, student_id TEXT NOT NULL,
  amount_tiyn INTEGER NOT NULL, PRIMARY KEY (seq, voucher_id));
CREATE INDEX voucher_spends_voucher ON voucher_spends (voucher_id);
CREATE TABLE voucher_tokens (
  token_id TEXT PRIMARY KEY, issuer TEXT NOT NULL, student_id TEXT NOT NULL,
  seq INTEGER NOT NULL);
CREATE TABLE voucher_issuers (
  issuer TEXT PRIMARY KEY, public_key TEXT NOT NULL, revoked INTEGER NOT NULL);
CREATE TABLE server_debits (
  ledger_id TEXT PRIMARY KEY, student_id TEXT NOT NULL, amount_tiyn INTEGER NOT NULL,
  balance_after_tiyn INTEGER NOT NULL, sync_version INTEGER NOT NULL);
"""

# The library desk (migration 6): the school's lendable items and approved lists from the centre
# (``lending_set``), and who holds each item. ``holder_seq`` is the journal seq of the desk's
# ``lending`` event that set the holder here: until the centre acknowledges it, a list from the
# centre does not overwrite it (the centre has not seen it yet); ``away``: reported lost or
# damaged here (not lendable until the centre lists it again).
LENDING_SCHEMA = """
CREATE TABLE lending_items (
  inventory_no TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL,
  campaign TEXT, holder TEXT, holder_seq INTEGER, away INTEGER NOT NULL DEFAULT 0);
CREATE INDEX lending_items_holder ON lending_items (holder);
CREATE TABLE lending_approvals (
  campaign TEXT NOT NULL, campaign_name TEXT NOT NULL, student_id TEXT NOT NULL,
  rank INTEGER NOT NULL, PRIMARY KEY (campaign, student_id));
CREATE INDEX lending_approvals_student ON lending_approvals (student_id);
"""

# Canteen money as nets (migration 7): per student, the net of the money the downlink has
# applied (credits less server debits, each ledger id once, and the snapshots' adjustments), so a
# snapshot can carry one net per student instead of every credit ever sent: the edge moves the
# balance by the difference and records it in ``balance_adjustments`` (the audit of money that
# came without a ledger id). Initialised from the credits and debits already applied (exact: each
# applied one is a row).
MONEY_NETS_SCHEMA = """
CREATE TABLE downlink_money (student_id TEXT PRIMARY KEY, net_tiyn INTEGER NOT NULL);
CREATE TABLE balance_adjustments (
  id INTEGER PRIMARY KEY, sync_version INTEGER NOT NULL, student_id TEXT NOT NULL,
  amount_tiyn INTEGER NOT NULL);
INSERT INTO downlink_money (student_id, net_tiyn)
  SELECT student_id, SUM(amount) FROM (
    SELECT student_id, amount_tiyn AS amount FROM balance_credits
    UNION ALL SELECT student_id, -amount_tiyn FROM server_debits)
  GROUP BY student_id;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "roster, policy, journal and canteen money", SCHEMA + CANTEEN_SCHEMA),
    Migration(2, "staff sessions of the edge's web pages", WEB_SESSIONS_SCHEMA),
    Migration(3, "staff PIN verifiers (keyed, set through sealed downlink)", STAFF_PINS_SCHEMA),
    Migration(4, "cards by keyed hash and card record", CARD_RECORDS_SCHEMA),
    Migration(5, "social-wallet vouchers, QR redemptions, server debits", VOUCHERS_SCHEMA),
    Migration(6, "the library desk's items, approved lists and holders", LENDING_SCHEMA),
    Migration(
        7, "canteen money applied from the downlink, as a net per student", MONEY_NETS_SCHEMA
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version  # the version this code writes and reads


def statements(sql: str) -> list[str]:
    """The statements of a script, to run one by one inside a transaction."""
    out: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    rest = "\n".join(
        ln for ln in buf.splitlines() if ln.strip() and not ln.strip().startswith("--")
    )
    if rest:
        raise ValueError(f"unterminated SQL statement: {rest[:60]!r}")
    return out


def migrate(
    path: Path,
    *,
    school: str,
    device: str,
    fresh: bool,
    migrations: Sequence[Migration] | None = None,
) -> int:
    """Bring the store at ``path`` to the latest version in one transaction; returns the version
    it had (0 for a new store). A new store is created here, with its ``meta`` rows. Raises
    ``StoreError`` (and changes nothing) for a store that is not ours, of a newer version, or
    whose migration fails. Blocking: run it in a thread."""
    steps = MIGRATIONS if migrations is None else tuple(migrations)
    latest = steps[-1].version
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set it before
        db.execute("BEGIN IMMEDIATE")
        try:
            (marked,) = db.execute("PRAGMA user_version").fetchone()
            if marked > latest:
                raise StoreError(
                    f"{path}: the store is at schema version {marked}, written by a newer "
                    f"release; this release supports schema versions up to {latest}. Run the "
                    f"release that wrote it or a newer one (a store is never downgraded)"
                )
            before = _check(db, path, marked, school=school, device=device, fresh=fresh)
            if fresh:
                _upgrade(db, path, 0, steps)
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("school", school),
                        ("device", device),
                        ("acked_through", "0"),
                        ("sync_version", "0"),
                    ],
                )
            else:
                if marked == 0:  # schema version 1 before migrations: add what it added at open
                    for statement in statements(CANTEEN_SCHEMA):
                        db.execute(statement)
                _upgrade(db, path, before, steps)
            if marked != latest:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(latest),)
                )
                db.execute(f"PRAGMA user_version = {int(latest)}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{path}: not a usable edge store ({err})") from err
    finally:
        db.close()
    return before


def _check(
    db: sqlite3.Connection, path: Path, marked: int, *, school: str, device: str, fresh: bool
) -> int:
    """The store's schema version, after checking it is a store of this school and device (a
    new store: 0, and it must be empty)."""
    if fresh:
        (tables,) = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        if marked != 0 or tables != 0:
            raise StoreError(f"{path}: expected a new store, found a database")
        return 0
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if marked == 0 and meta.get("schema_version") != "1":  # before migrations: meta only
        raise StoreError(f"{path}: schema version {meta.get('schema_version')!r} is not ours")
    if meta.get("school") != school or meta.get("device") != device:
        raise StoreError(
            f"{path}: belongs to school {meta.get('school')!r} device {meta.get('device')!r}, "
            f"not {school!r} {device!r}"
        )
    return max(marked, 1)


def _upgrade(
    db: sqlite3.Connection, path: Path, version: int, migrations: Sequence[Migration]
) -> None:
    """Apply the migrations above ``version`` (inside the caller's transaction)."""
    pending = [m for m in migrations if m.version > version]
    for m in pending:
        try:
            m.apply(db)
        except Exception as err:
            raise StoreError(
                f"{path}: migration {m.version} ({m.summary}) failed; the store stays at "
                f"schema version {version}: {err}"
            ) from err
    if pending:
        broken = db.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreError(
                f"{path}: after migration {pending[-1].version}, {len(broken)} rows break a "
                f"foreign key (first: {broken[0]}); the store stays at schema version {version}"
            )
