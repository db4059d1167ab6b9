"""Durability is not traded for speed: the journal commits in WAL mode with synchronous=FULL, and
the edge bench's floors (the bare one-row and group commits) use exactly the same settings, so a
ratio between them compares like with like. This fails if either side changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.store import EdgeStore
from simulators.bench_edge import bare_commit_db, bare_commits, bare_group_commits, bare_pipeline

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def _durability(db: sqlite3.Connection) -> tuple[str, int, int]:
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = db.execute("PRAGMA synchronous").fetchone()[0]
    auto = db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    return str(mode).lower(), int(sync), int(auto)


async def test_the_journal_and_the_bench_floors_commit_alike(tmp_path: Path) -> None:
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="d1")
    try:
        assert store._writer is not None
        journal = await store._in_writer(_durability, store._writer)
    finally:
        await store.close()
    assert journal == ("wal", FULL, 0)  # no checkpoint inside a tap's commit

    bare = bare_commit_db(tmp_path)
    try:
        assert _durability(bare) == journal
        # the floors commit on that connection as it is: nothing relaxes it on the way
        bare_commits(bare, 3)
        bare_group_commits(bare, [2, 5])
        bare_group_commits(bare, [1, 1], [0.0, 0.005])  # paced, as the pipeline's groups began
        bare_pipeline(bare, [0.0, 0.001, 0.002])  # the ideal pipeline under the taps' arrivals
        assert _durability(bare) == journal
        assert bare.execute("SELECT count(*) FROM t").fetchone()[0] == 15
    finally:
        bare.close()
