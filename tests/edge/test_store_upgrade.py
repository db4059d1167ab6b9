"""Upgrading a store in place: a store written by the release before numbered migrations (kept as
``fixtures/release1_store.sql``, see ``fixtures/make_release1_store.py``) opens with today's code
with nothing lost and its outbox intact; a failing migration leaves the old version; a store of a
newer release is refused untouched, and ``qaqpa run`` exits 3 on it."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import edge.store.migrations as migrations
from edge.core.model import Tap
from edge.pipeline import Pipeline
from edge.store import EVENT_ADAPTER, SCHEMA_VERSION, EdgeStore, StoreError
from edge.store.migrations import Migration
from protocol.codec import loads_plain
from protocol.messages import LibraryVisitEvent, TerminalKind
from tests.support.edge_harness import School

FIXTURE = Path(__file__).parent / "fixtures" / "release1_store.sql"
SCHOOL, DEVICE = "S1", "edge-1"
ACKED, LAST = 2, 8  # the fixture's acknowledged and last seq


def release1_store(root: Path) -> Path:
    """The fixture loaded into a store file, in WAL mode as the release left its stores."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "edge.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(FIXTURE.read_text(encoding="utf-8"))
        db.execute("PRAGMA journal_mode=WAL")
    return path


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as stored."""
    with closing(sqlite3.connect(path)) as db:
        names = [
            n
            for (n,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {n: db.execute(f"SELECT * FROM {n} ORDER BY rowid").fetchall() for n in names}


def schema(path: Path) -> set[tuple[str, str, str]]:
    with closing(sqlite3.connect(path)) as db:
        return {
            (kind, name, re.sub(r"\s+", " ", sql or ""))
            for kind, name, sql in db.execute("SELECT type, name, sql FROM sqlite_master")
        }


def pragma(path: Path, name: str) -> Any:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(f"PRAGMA {name}").fetchone()[0]


def meta(path: Path) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())


async def open_store(path: Path, device: str = DEVICE) -> EdgeStore:
    return await EdgeStore.open(path, school=SCHOOL, device=device, create=False)


def library_tap(card: str) -> Tap:
    return Tap(
        at=dt.datetime.now(dt.UTC), terminal="lib-1", kind=TerminalKind.LIBRARY, credential=card
    )


async def test_fixture_is_a_store_of_the_release_before_migrations(tmp_path: Path) -> None:
    path = release1_store(tmp_path)
    assert pragma(path, "user_version") == 0
    assert meta(path)["schema_version"] == "1"
    assert meta(path)["acked_through"] == str(ACKED)
    assert [seq for seq, *_ in rows(path)["journal"]] == list(range(1, LAST + 1))


async def test_release1_store_upgrades_with_nothing_lost_and_the_seq_continuing(
    tmp_path: Path,
) -> None:
    path = release1_store(tmp_path)
    before = rows(path)
    pending = [(seq, blob) for seq, _at, _k, _t, blob, _c in before["journal"] if seq > ACKED]

    store = await open_store(path)
    try:
        assert pragma(path, "user_version") == SCHEMA_VERSION
        assert meta(path)["schema_version"] == str(SCHEMA_VERSION)
        after = rows(path)
        assert {t: r for t, r in after.items() if t in before and t not in ("meta", "cards")} == {
            t: r for t, r in before.items() if t not in ("meta", "cards")
        }
        # migration 4: each card keeps its row, with no record and no desk seq yet (opened
        # without the card key here, so the numbers stay as they were; see test_card_store)
        assert [r[:4] for r in after["cards"]] == before["cards"]
        assert {r[4:] for r in after["cards"]} == {(None, None)}
        new_tables = ("web_sessions", "staff_pins", "vouchers", "voucher_spends", "voucher_tokens")
        new_tables += ("voucher_issuers", "server_debits")  # migration 5: empty at first
        new_tables += ("lending_items", "lending_approvals")  # migration 6: empty at first
        new_tables += ("balance_adjustments",)  # migration 7: empty at first, and the nets
        nets = {"downlink_money": [("s0", 100_000), ("s2", 50_000)]}  # of the credits applied
        assert {t: r for t, r in after.items() if t not in before} == {
            **{t: [] for t in new_tables},
            **nets,
        }
        assert {k: v for k, v in meta(path).items() if k != "schema_version"} == {
            k: v for k, v in dict(before["meta"]).items() if k != "schema_version"
        }
        fresh = tmp_path / "fresh"
        await (await EdgeStore.open(fresh / "edge.sqlite", school=SCHOOL, device=DEVICE)).close()
        assert schema(path) == schema(fresh / "edge.sqlite"), "migrated schema != a new store's"

        # Every event the server has not acknowledged is still in the outbox, unchanged.
        stats = await store.outbox_stats()
        assert (stats.acked_through, stats.last_seq, stats.backlog) == (ACKED, LAST, LAST - ACKED)
        outbox = await store.outbox_batch(0, 100)
        assert [(e.seq, e) for e in outbox] == [
            (seq, EVENT_ADAPTER.validate_python(loads_plain(blob, context="fixture")))
            for seq, blob in pending
        ]
        # Memory is what the release left: roster, policy, sync version, money.
        assert await store.sync_version() == 2
        assert store.policy_doc is not None and store.policy_doc.timezone == "Asia/Almaty"
        card = store.state.card("EM:4000000099")
        assert card is not None and card.blocked_reason == "lost"
        assert store.state.balance("s0") == 70_000
        assert store.state.limits("s2").daily_cap_tiyn == 40_000
        assert await store.receipt(7) is not None

        # The next event takes the next seq: no gap, no reuse.
        async with Pipeline(store) as p:
            out = await p.submit(library_tap("EM:4000000005"))
        assert isinstance(out.event, LibraryVisitEvent) and out.event.seq == LAST + 1
        journal = await store.journal_rows()
        assert [e.seq for e in journal] == list(range(1, LAST + 2))
        assert [e.seq for e in await store.outbox_batch(0, 100)] == list(range(ACKED + 1, LAST + 2))
    finally:
        await store.close()

    reopened = await open_store(path)  # a second open finds nothing to migrate
    try:
        assert reopened.last_seq == LAST + 1
        assert pragma(path, "user_version") == SCHEMA_VERSION
    finally:
        await reopened.close()


def write_daemon_config(school: School) -> None:
    """The harness's config without its roster import: the store is the fixture as it is."""
    lines = [f'school = "{SCHOOL}"', f'device = "{DEVICE}"', 'store = "edge.sqlite"']
    for tid, (kind, _direction) in school.terminals.items():
        fifo = school.fifo(tid)
        if not fifo.exists():
            os.mkfifo(fifo)
        lines += [
            "[[terminal]]",
            f'id = "{tid}"',
            f'kind = "{kind}"',
            f'reader = {{ type = "line", path = "{fifo}" }}',
            f'gate = {{ type = "log", path = "{school.actuations}" }}',
        ]
    school.config.write_text("\n".join(lines) + "\n")


def test_the_daemon_starts_on_a_release1_store(tmp_path: Path) -> None:
    """The real daemon (``qaqpa run``) opens the fixture, migrates it, and journals the next tap
    with the next seq; the events of the release are still there, unacknowledged."""
    release1_store(tmp_path)
    school = School(tmp_path, terminals={"lib-1": ("library", None)})
    write_daemon_config(school)
    daemon = school.start()
    try:
        assert daemon.tap_and_wait("lib-1", "EM:4000000005"), daemon.proc.stderr
    finally:
        rc = daemon.stop()
    assert rc == 0
    assert school.actuation_lines() == [("lib-1", LAST + 1, "open")]
    assert [e.seq for e in school.journal()] == list(range(1, LAST + 2))
    assert pragma(tmp_path / "edge.sqlite", "user_version") == SCHEMA_VERSION
    assert meta(tmp_path / "edge.sqlite")["acked_through"] == str(ACKED)


async def test_a_migration_failing_half_way_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = release1_store(tmp_path)
    before, shape = rows(path), schema(path)

    def fails(db: sqlite3.Connection) -> None:
        db.execute("UPDATE students SET nickname = 'x'")
        raise sqlite3.OperationalError("disk I/O error (injected)")

    broken = Migration(
        SCHEMA_VERSION + 1,
        "nicknames",
        sql="CREATE TABLE extra (x INTEGER);\nALTER TABLE students ADD COLUMN nickname TEXT;",
        run=fails,
    )
    never = Migration(SCHEMA_VERSION + 2, "never reached", sql="CREATE TABLE never (x INTEGER);")
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken, never))
    failed = rf"migration {SCHEMA_VERSION + 1} \(nicknames\) failed; .*version 1.*inject"
    with pytest.raises(StoreError, match=failed):
        await open_store(path)
    # Everything rolled back, the release-1 mark included: the file is as the release left it.
    assert pragma(path, "user_version") == 0
    assert (rows(path), schema(path)) == (before, shape)

    monkeypatch.undo()  # this code's own migrations: the store opens and upgrades
    store = await open_store(path)
    await store.close()
    assert pragma(path, "user_version") == SCHEMA_VERSION


async def test_a_new_migration_runs_once_and_marks_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How a later release adds a migration: SQL then Python, in the same transaction as the
    versions before it; run once; the version in ``user_version`` and in ``meta``."""
    path = release1_store(tmp_path)
    runs: list[int] = []

    def backfill(db: sqlite3.Connection) -> None:
        runs.append(1)
        db.execute("UPDATE students SET nickname = 'n-' || id")

    added = Migration(
        SCHEMA_VERSION + 1,
        "nicknames",
        sql="ALTER TABLE students ADD COLUMN nickname TEXT;",
        run=backfill,
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, added))
    for _ in range(2):
        store = await open_store(path)
        assert store.last_seq == LAST
        await store.close()
    assert runs == [1]
    assert pragma(path, "user_version") == SCHEMA_VERSION + 1
    assert meta(path)["schema_version"] == str(SCHEMA_VERSION + 1)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT nickname FROM students WHERE id = 's3'").fetchone() == ("n-s3",)

    # The release before that migration refuses the store, leaving it as it is.
    monkeypatch.undo()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        await open_store(path)


async def test_a_store_of_another_device_is_refused_before_any_migration(tmp_path: Path) -> None:
    path = release1_store(tmp_path)
    before = rows(path)
    with pytest.raises(StoreError, match="belongs to school 'S1' device 'edge-1'"):
        await open_store(path, device="edge-2")
    assert pragma(path, "user_version") == 0
    assert rows(path) == before


async def test_a_new_store_is_created_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    store = await EdgeStore.open(path, school=SCHOOL, device=DEVICE)
    await store.close()
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "journal_mode") == "wal"
    assert meta(path) == {
        "schema_version": str(SCHEMA_VERSION),
        "school": SCHOOL,
        "device": DEVICE,
        "acked_through": "0",
        "sync_version": "0",
    }


def newer_store(root: Path) -> Path:
    """A store as a later release would leave it: this code's schema, a higher version."""
    path = release1_store(root)
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_store_of_a_newer_release_is_refused_untouched(tmp_path: Path) -> None:
    path = newer_store(tmp_path)
    before = digest(path)
    with pytest.raises(StoreError) as err:
        await open_store(path)
    message = str(err.value)
    assert str(path) in message
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"supports schema versions up to {SCHEMA_VERSION}" in message
    assert digest(path) == before
    assert pragma(path, "user_version") == SCHEMA_VERSION + 1


def test_qaqpa_run_exits_3_on_a_store_of_a_newer_release(tmp_path: Path) -> None:
    path = newer_store(tmp_path)
    before = digest(path)
    school = School(tmp_path, terminals={"lib-1": ("library", None)})
    write_daemon_config(school)
    qaqpa = Path(sys.executable).with_name("qaqpa")
    done = subprocess.run(
        [str(qaqpa), "run", "--config", str(school.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert "the edge store cannot be used" in done.stderr
    assert f"{path}: the store is at schema version {SCHEMA_VERSION + 1}" in done.stderr
    assert f"supports schema versions up to {SCHEMA_VERSION}" in done.stderr
    assert digest(path) == before
    assert school.actuation_lines() == []
