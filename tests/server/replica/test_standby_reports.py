"""Reports read from the streaming hot standby: events ingested on the primary show on the
report once the standby has replayed them, the page names how far behind its data is, writes
(the audit of a class view) go to the primary, and a stopped standby sends the pages to the
primary with a notice, never a 500."""

from __future__ import annotations

import re
from types import SimpleNamespace

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from server.accounts.models import User
from server.api.app import create_app
from server.audit.models import AuditEntry
from server.db import make_engine, session_factory
from server.replica import ReadOnlySessionError, Replica, read_db
from server.settings import ServerSettings
from tests.support.console import Browser, World
from tests.support.event_rows import DAY, at, ingest_entries
from tests.support.pg_pair import PgPair
from tests.support.sync import enrolled_device

pytestmark = [pytest.mark.postgres, pytest.mark.exclusive]  # its own pair on fixed ports

KID = "s1-3a-1"


def source(html: str) -> dict[str, str]:
    """The read-source notice's data attributes and text."""
    m = re.search(r'<p class="(\w+)" id="read-source"([^>]*)>(.*?)</p>', html, re.S)
    assert m is not None, "the page names where its data came from"
    attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', m.group(2)))
    return {**attrs, "text": m.group(3)}


def arrival(html: str) -> str:
    """The arrival time in the first student's row of the class's day report."""
    rows = re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", html, re.S)
    first = [r for r in rows if "Surname1" in r[0]]
    assert first, "the class report lists the student"
    return first[0][1]


def ingest_entry(settings: ServerSettings, key: object, seq: int, hhmm: str) -> None:
    """An entry of the student, through the real ingest code, committed on the primary."""
    out = ingest_entries(settings, key, "S1", "edge-1", [(seq, at(DAY, hhmm), KID)])
    assert out.rejections == [] and out.events_inserted == 1


def _standby(pair: PgPair, db_name: str, statement: str) -> None:
    with psycopg.connect(pair.standby.dsn(db_name), autocommit=True) as conn:
        conn.execute(statement)


def test_report_reads_the_standby_names_its_lag_and_falls_back_to_the_primary(
    db: Session, world: World, settings: ServerSettings, pg_pair: PgPair, pg_db_name: str
) -> None:
    key, _, _ = enrolled_device(db, settings, "S1", "edge-1")
    db.commit()
    pg_pair.wait_replayed()
    url = f"/reports/attendance?school=S1&class={world.classes['S1/3A']}&day={DAY.isoformat()}"
    with TestClient(create_app(settings)) as client:
        b = Browser(client)
        b.login("admin1")

        # Replay paused: the entry is committed on the primary, not yet on the standby.
        _standby(pg_pair, pg_db_name, "SELECT pg_wal_replay_pause()")
        try:
            ingest_entry(settings, key, 1, "07:50")
            r = b.get(url)
            assert r.status_code == 200, r.text
            # absent on the standby's data (the primary has the entry)
            assert "07:50" not in arrival(r.text) and "badge bad" in arrival(r.text)
            src = source(r.text)
            assert src["source"] == "standby" and int(src["lag-s"]) >= 1
            assert re.search(r"Деректер \d\d:\d\d:\d\d кезіндегі, \d+ с кешігумен", src["text"])
        finally:
            _standby(pg_pair, pg_db_name, "SELECT pg_wal_replay_resume()")

        # The page's write (its audit entry: a class list was viewed) went to the primary.
        db.rollback()
        audited = db.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "view", AuditEntry.subject == "reports.attendance")
        )
        assert audited == 1

        # Replayed: the entry is on the report and the page says the data is current.
        pg_pair.wait_replayed()
        r = b.get(url)
        assert r.status_code == 200 and arrival(r.text) == "07:50"
        src = source(r.text)
        assert src["source"] == "standby" and src["lag-s"] == "0"
        assert "кешігусіз (резервтік серверден оқылды)" in src["text"]

        # A page that writes (the user's language) writes on the primary, the standby serving on.
        assert b.post("/lang", {"lang": "en", "next": url}).status_code == 303
        db.rollback()
        assert db.scalar(select(User.lang).where(User.login == "admin1")) == "en"
        src = source(b.get(url).text)
        assert re.fullmatch(
            r"Data as of \d\d:\d\d:\d\d, (up to date|\d+ s behind) \(read from the standby\)\.",
            src["text"],
        )

        # The standby stops: the same page reads from the primary, with a notice, no 500.
        pg_pair.standby.stop()
        ingest_entry(settings, key, 2, "13:05")  # the exit is only on the primary
        for path in (url, "/", "/reports/meals?school=S1", "/canteen/reports?school=S1"):
            r = b.get(path)
            assert r.status_code == 200, (path, r.text[:300])
            src = source(r.text)
            assert src["source"] == "primary" and src["reason"] == "unreachable", path
        assert arrival(b.get(url).text) == "07:50"


def test_the_standby_session_and_the_standby_refuse_writes(
    settings: ServerSettings, pg_pair: PgPair
) -> None:
    assert settings.database_replica_url is not None
    pg_pair.wait_replayed()
    replica = Replica(
        settings.database_replica_url, make_engine(settings.database_url), max_lag_s=60, zone="UTC"
    )
    try:
        with replica.sessions() as session:
            session.add(AuditEntry(at_ms=0, action="view", subject="x", summary=""))
            with pytest.raises(ReadOnlySessionError):
                session.flush()
        with replica.engine.connect() as conn, pytest.raises(Exception, match="read-only"):
            conn.execute(text("DELETE FROM audit_log"))

        # A page whose query on the standby failed after the probe (the standby went away, or
        # a recovery conflict cancelled it): the next pages read from the primary.
        primary = session_factory(make_engine(settings.database_url))
        request = SimpleNamespace(
            app=SimpleNamespace(state=SimpleNamespace(replica=replica, sessions=primary)),
            state=SimpleNamespace(),
        )
        assert replica.probe().standby
        pages = read_db(request)  # type: ignore[arg-type]
        next(pages)
        with pytest.raises(OperationalError):
            pages.throw(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
        assert replica.probe().reason == "unreachable"
    finally:
        replica.dispose()


def test_a_standby_too_far_behind_is_not_read(
    db: Session, world: World, settings: ServerSettings, pg_pair: PgPair, pg_db_name: str
) -> None:
    key, _, _ = enrolled_device(db, settings, "S1", "edge-1")
    db.commit()
    pg_pair.wait_replayed()
    strict = settings.model_copy(update={"database_replica_max_lag_s": 0.001})
    url = f"/reports/attendance?school=S1&class={world.classes['S1/3A']}&day={DAY.isoformat()}"
    with TestClient(create_app(strict)) as client:
        b = Browser(client)
        b.login("admin1")
        _standby(pg_pair, pg_db_name, "SELECT pg_wal_replay_pause()")
        try:
            ingest_entry(settings, key, 1, "07:50")
            r = b.get(url)
        finally:
            _standby(pg_pair, pg_db_name, "SELECT pg_wal_replay_resume()")
    assert r.status_code == 200
    assert source(r.text)["reason"] == "lagging"
    assert arrival(r.text) == "07:50", "read from the primary: the entry is there"
