"""Cards at the school (``edge.cards``) and how the store keeps them: a keyed hash of each number
under the school's card key (0600, a changed key refused), bound with its ``card_issued`` event in
one transaction; refusals change nothing; the downlink follows records by ref; a snapshot keeps
the cards issued here; a store of the release before is upgraded (migration 4) and hashed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

import edge.store.migrations as migrations
from edge.cards import (
    CardKeyError,
    CardRefused,
    block_card,
    import_cards,
    issue_card,
    load_card_key,
    unbind_card,
)
from edge.store import SCHEMA_VERSION, EdgeStore, StoreError
from protocol.messages import (
    CardIssuedEvent,
    CardRecord,
    CardRecordBlock,
    CardRecordSet,
    CardRecordUnbind,
    CardRefAssign,
    CardRefsAssign,
    OwnerKind,
    SyncDelta,
)
from tests.support.canteen_school import SCHOOL, snapshot

KEY = b"k" * 32
S = OwnerKind.STUDENT


async def open_store(path: Path, key: bytes | None = KEY) -> EdgeStore:
    return await EdgeStore.open(path, school=SCHOOL, device="edge-1", card_key=key)


def stored_keys(path: Path) -> list[tuple[str, str | None]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT card_key, card_ref FROM cards ORDER BY rowid").fetchall()


async def school(path: Path) -> EdgeStore:
    store = await open_store(path)
    snap = snapshot()
    await store.apply_snapshot(snap.model_copy(update={"cards": snap.cards[:2]}))
    return store


async def test_issue_keeps_a_keyed_hash_and_journals_the_record(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    store = await school(path)
    try:
        card = await issue_card(store, S, "s-poor", "uid: 0411 aa22")
        ev = (await store.journal_rows())[-1]
        assert isinstance(ev, CardIssuedEvent) and ev.seq == card.seq
        assert (ev.card_ref, ev.student_id, ev.staff_id) == (card.card_ref, "s-poor", None)
        assert "0411AA22" not in ev.model_dump_json()
        bound = store.state.card("UID:0411AA22")
        assert bound is not None and bound.owner_id == "s-poor"
        keys = stored_keys(path)
        assert all(k.startswith("h1:") for k, _ in keys) and len(keys) == 3
        assert (store.card_key_of("UID:0411AA22"), card.card_ref) in keys
        assert await store.cards_of("student", "s-poor") == [(card.card_ref, None)]
        with closing(sqlite3.connect(path)) as db:
            dump = "\n".join(db.iterdump())
        assert "0411AA22" not in dump  # nowhere in the file: not even the journal
    finally:
        await store.close()


async def test_refusals_change_nothing(tmp_path: Path) -> None:
    store = await school(tmp_path / "edge.sqlite")
    try:
        before = store.last_seq
        cases = [
            ((S, "s-free", "UID:04A1B2C3"), "already bound"),  # the number is someone's
            ((S, "s-free", "UID:0499"), "already has an active card"),
            ((S, "nobody", "UID:0499"), "no student"),
            ((OwnerKind.STAFF, "nobody", "UID:0499"), "no staff member"),
            ((S, "s-poor", "0499"), "type, a colon"),
            ((S, "s-poor", "UID:04-99"), "type, a colon"),
        ]
        for (kind, owner, number), words in cases:
            with pytest.raises(CardRefused, match=words):
                await issue_card(store, kind, owner, number)
        with pytest.raises(CardRefused, match="no card"):
            await block_card(store, "k-nope", "lost")
        with pytest.raises(CardRefused, match="lost or damaged"):
            await block_card(store, "k-nope", "stolen")
        assert store.last_seq == before
        assert store.state.card("UID:0499") is None
    finally:
        await store.close()


async def test_no_card_without_a_data_consent(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "edge.sqlite")
    try:
        snap = snapshot()
        bare = snap.students[0].model_copy(update={"id": "s-bare", "consents": []})
        await store.apply_snapshot(snap.model_copy(update={"students": [bare], "cards": []}))
        with pytest.raises(CardRefused, match="no data consent"):
            await issue_card(store, S, "s-bare", "UID:0499")
        assert store.last_seq == 0
    finally:
        await store.close()


async def test_replace_block_unbind_by_record(tmp_path: Path) -> None:
    store = await school(tmp_path / "edge.sqlite")
    try:
        first = await issue_card(store, S, "s-poor", "UID:0411AA22")
        second = await issue_card(
            store, S, "s-poor", "UID:0411AA23", replaces_ref=first.card_ref, reason="damaged"
        )
        assert store.state.card("UID:0411AA22").blocked_reason == "damaged"  # type: ignore[union-attr]
        kinds = [e.kind for e in await store.journal_rows()]
        assert kinds[-3:] == ["card_issued", "card_changed", "card_issued"]
        await block_card(store, second.card_ref, "lost")
        with pytest.raises(CardRefused, match="already blocked"):
            await block_card(store, second.card_ref, "lost")
        await unbind_card(store, second.card_ref)
        assert store.state.card("UID:0411AA23") is None
        assert await store.cards_of("student", "s-poor") == [(first.card_ref, "damaged")]
    finally:
        await store.close()


async def test_import_binds_each_row_and_reports_the_rest(tmp_path: Path) -> None:
    store = await school(tmp_path / "edge.sqlite")
    try:
        data = (
            "\ufeffstudent_id,card\n"
            "s-poor,UID:0411AA22\n"
            "s-allergy,uid:0433bb44\n"
            "s-free,UID:04000001\n"  # already has a card
            "nobody,UID:04000002\n"
            "s-pay,not a number\n"
            "s-pay,\n"
        ).encode()
        done = await import_cards(store, data, S)
        assert len(done.issued) == 2
        assert [p.split(":")[0] for p in done.problems] == ["line 4", "line 5", "line 6"]
        assert store.state.card("UID:0433BB44").owner_id == "s-allergy"  # type: ignore[union-attr]
        with pytest.raises(CardRefused, match="student_id"):
            await import_cards(store, b"name,number\nx,y\n", S)
        with pytest.raises(CardRefused, match="bytes"):
            await import_cards(store, b"student_id,card\n" + b"x" * 2_000_001, S)
    finally:
        await store.close()


async def test_the_downlink_follows_records_and_a_snapshot_keeps_desk_cards(
    tmp_path: Path,
) -> None:
    store = await school(tmp_path / "edge.sqlite")
    try:
        await issue_card(store, S, "s-poor", "UID:0411AA22")
        # The move: the record of a number the centre had bound here.
        v = await store.sync_version()
        moved = [
            CardRefsAssign(refs=[CardRefAssign(credential="UID:04A1B2C3", card_ref="c-1")]),
            CardRecordBlock(card_ref="c-1", reason="lost"),
        ]
        await store.apply_delta(
            SyncDelta(school=SCHOOL, version=v + 1, base_version=v, changes=moved)
        )  # type: ignore[arg-type]
        assert store.state.card("UID:04A1B2C3").blocked_reason == "lost"  # type: ignore[union-attr]
        # A record this store holds no number for changes nothing; a record unbind removes.
        other = CardRecord(card_ref="k-else", owner_kind=S, owner_id="s-pay", issued_at_ms=1)
        changes = [CardRecordSet(record=other), CardRecordUnbind(card_ref="c-1")]
        await store.apply_delta(
            SyncDelta(school=SCHOOL, version=v + 2, base_version=v + 1, changes=changes)
        )  # type: ignore[arg-type]
        assert store.state.card("UID:04A1B2C3") is None
        assert len(store.state.cards) == 2
        # A snapshot of a moved school (records, no numbers): the numbers held here stay when
        # their record is in it, or when the desk's event is not acknowledged yet.
        snap = snapshot().model_copy(
            update={"version": v + 5, "cards": [], "card_refs": [], "card_records": []}
        )
        await store.apply_snapshot(snap)
        assert store.state.card("UID:0411AA22") is not None  # desk card, event not acked
        assert store.state.card("UID:04D4E5F6") is None  # no record, not from the desk
        await store.outbox_ack(store.last_seq)
        await store.apply_snapshot(snap.model_copy(update={"version": v + 6}))
        assert store.state.card("UID:0411AA22") is None  # acked and gone from the centre
        # A snapshot of a school not moved (numbers, no records) keeps the desk's cards too.
        kept = await issue_card(store, S, "s-poor", "UID:0411AA99")
        legacy = snapshot().model_copy(update={"version": v + 7})
        await store.apply_snapshot(legacy)
        assert store.state.card("UID:0411AA99") is not None and kept.card_ref
        assert store.state.card("UID:04A1B2C3") is not None  # the centre's numbers, wholesale
    finally:
        await store.close()


async def test_card_key_file_is_private_and_a_changed_key_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "card.key"
    key = load_card_key(key_file)
    assert len(key) == 32 and (key_file.stat().st_mode & 0o777) == 0o600
    assert load_card_key(key_file) == key
    os.chmod(key_file, 0o640)
    with pytest.raises(CardKeyError, match="group/others"):
        load_card_key(key_file)
    path = tmp_path / "edge.sqlite"
    store = await school(path)
    await store.close()
    with pytest.raises(StoreError, match="card key is not the one"):
        await open_store(path, key=b"x" * 32)
    again = await open_store(path)  # the right key: opens, cards found
    try:
        assert again.state.card("UID:04A1B2C3") is not None
    finally:
        await again.close()


async def test_a_store_of_the_release_before_is_upgraded_and_its_numbers_hashed(
    tmp_path: Path,
) -> None:
    """A store written by the release before card records (schema version 2, numbers kept as
    they are) opens with the card key: migration 4 runs once and the numbers become keyed
    hashes, every card still found by its number, its outbox untouched."""
    path = tmp_path / "edge.sqlite"
    before = [m for m in migrations.MIGRATIONS if m.version <= 2]
    migrations.migrate(path, school=SCHOOL, device="edge-1", fresh=True, migrations=before)
    with closing(sqlite3.connect(path)) as db:
        db.executemany(
            "INSERT INTO cards VALUES (?, 'student', ?, ?)",
            [("UID:04A1B2C3", "s-free", None), ("UID:04D4E5F6", "s-pay", "lost")],
        )
        db.commit()
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
    store = await open_store(path)
    try:
        with closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            rows = db.execute("SELECT * FROM cards ORDER BY rowid").fetchall()
        assert [r[1:] for r in rows] == [
            ("student", "s-free", None, None, None),
            ("student", "s-pay", "lost", None, None),
        ]
        assert all(r[0].startswith("h1:") for r in rows)
        assert store.state.card("uid:04a1b2c3").owner_id == "s-free"  # type: ignore[union-attr]
        assert store.state.card("UID:04D4E5F6").blocked_reason == "lost"  # type: ignore[union-attr]
        assert store.state.card("UID:04A1B2C4") is None
    finally:
        await store.close()


def test_cli_import_and_list(tmp_path: Path) -> None:
    import asyncio

    async def setup() -> None:
        store = await EdgeStore.open(tmp_path / "edge.sqlite", school=SCHOOL, device="edge-1")
        snap = snapshot()
        await store.apply_snapshot(snap.model_copy(update={"cards": snap.cards[:1]}))
        await store.close()

    asyncio.run(setup())
    config = tmp_path / "edge.toml"
    config.write_text(f'school = "{SCHOOL}"\ndevice = "edge-1"\nstore = "edge.sqlite"\n')
    csv_file = tmp_path / "cards.csv"
    csv_file.write_text("student_id,card\ns-poor,UID:0411AA22\nnobody,UID:0411AA23\n")
    qaqpa = str(Path(sys.executable).with_name("qaqpa"))
    done = subprocess.run(
        [qaqpa, "edge", "cards", "import", "--config", str(config), str(csv_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "1 card(s) bound" and "line 3" in done.stdout
    assert (tmp_path / "card.key").stat().st_mode & 0o777 == 0o600  # made beside the store
    listed = subprocess.run(
        [qaqpa, "edge", "cards", "list", "--config", str(config), "--student", "s-poor"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and listed.stdout.startswith("k-")
    assert "0411AA22" not in listed.stdout
    assert all(k.startswith("h1:") for k, _ in stored_keys(tmp_path / "edge.sqlite"))
    card = ["--card", "UID:04A1B2C3"]
    refused = subprocess.run(
        [qaqpa, "edge", "cards", "issue", "--config", str(config), "--student", "s-poor", *card],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "refused" in refused.stderr
