"""Events partitioned by month on PostgreSQL: exactly-once across partitions (a re-send across a
month boundary, a re-sent seq under another time), events far in the past or future stored once
in the default partition and moved when their month is made, the migration that moves an
existing table's rows (and back), and the retirement of months past the retention period."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from protocol import topics
from protocol.messages import EntryEvent, Event, EventBatch, MealServedEvent
from protocol.signing import sign_batch
from server.db import make_engine, session_factory
from server.ingest.core import IngestStore
from server.migrate import alembic_config, upgrade
from server.models import Device, StoredEvent
from server.partitions import rules, service
from server.partitions.rules import Month
from server.settings import ServerSettings
from tests.support.centre import centre_key_file
from tests.support.services import fresh_pg_database
from tests.support.sync import enrolled_device

pytestmark = [pytest.mark.postgres]

PREFIX = "qaqpa-test/partitions/v1"


def _ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)  # type: ignore[misc]


def _settings(url: str) -> ServerSettings:
    return ServerSettings(database_url=url, topic_prefix=PREFIX, centre_key_file=centre_key_file())


def _batch(key: object, events: Sequence[Event], device: str = "d1") -> tuple[str, bytes]:
    batch = EventBatch(school="S1", device=device, sent_at_ms=events[0].at_ms, events=list(events))
    return topics.events("S1", device, PREFIX), sign_batch(batch, key)  # type: ignore[arg-type]


def _entry(seq: int, at_ms: int) -> EntryEvent:
    return EntryEvent(seq=seq, at_ms=at_ms, terminal="t1", student_id=f"st{seq}")


def _where(engine: Engine) -> dict[int, str]:
    """seq -> the partition its row is in."""
    with engine.connect() as c:
        return {
            seq: part
            for seq, part in c.execute(text("SELECT seq, tableoid::regclass::text FROM events"))
        }


@pytest.fixture
def setup(pg_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, _settings(pg_url), "S1", "d1")
    store = IngestStore(engine, topic_prefix=PREFIX)
    yield engine, key, store
    store.close()
    engine.dispose()


def test_a_resend_across_a_month_boundary_is_stored_once(setup) -> None:  # type: ignore[no-untyped-def]
    engine, key, store = setup
    jan_end, feb_start = _ms(2027, 1, 31, 23, 59, 59), _ms(2027, 2, 1, 0, 0, 1)
    service.ensure(engine, 0, [Month(2027, 1), Month(2027, 2)])
    batch = _batch(key, [_entry(1, jan_end - 5), _entry(2, jan_end), _entry(3, feb_start)])
    assert store.ingest([batch]).events_inserted == 3
    # the same batch again, and an overlapping one: the journaled times come back unchanged
    again = store.ingest([batch, _batch(key, [_entry(3, feb_start), _entry(4, feb_start + 9)])])
    assert again.events_inserted == 1
    where = _where(engine)
    assert where == {
        1: "events_p202701",
        2: "events_p202701",
        3: "events_p202702",
        4: "events_p202702",
    }
    # a seq already stored, signed again under another time (another month): still once
    odd = store.ingest([_batch(key, [_entry(2, feb_start + 1), _entry(5, feb_start)])])
    assert odd.events_inserted == 1
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(StoredEvent)).scalar() == 5
        assert c.execute(select(StoredEvent.at_ms).where(StoredEvent.seq == 2)).scalars().all() == [
            jan_end
        ]
    # a gap filled late, whose seq sits below the device's highest: the staging path
    late = store.ingest([_batch(key, [_entry(7, feb_start)])])
    fill = store.ingest(
        [_batch(key, [_entry(6, jan_end - 1)]), _batch(key, [_entry(6, jan_end - 1)])]
    )
    assert (late.events_inserted, fill.events_inserted) == (1, 1)
    assert _where(engine)[6] == "events_p202701"
    assert fill.acks[-1].committed_through == 7


def test_events_far_in_the_past_or_future_are_stored_once(setup) -> None:  # type: ignore[no-untyped-def]
    engine, key, store = setup
    past, future = _ms(1985, 3, 1), _ms(2150, 7, 1)
    batch = _batch(key, [_entry(1, past), _entry(2, future)])
    assert store.ingest([batch]).events_inserted == 2
    assert store.ingest([batch]).events_inserted == 0
    assert _where(engine) == {1: rules.DEFAULT, 2: rules.DEFAULT}
    # the month of the future event is made: its row moves out of the default partition
    made = service.ensure(engine, 0, [Month(2150, 7)])
    assert made.created == ["events_p215007"] and made.moved_from_default == 1
    assert _where(engine) == {1: rules.DEFAULT, 2: "events_p215007"}
    assert store.ingest([batch]).events_inserted == 0
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(StoredEvent)).scalar() == 2


def test_ensure_makes_the_coming_months_once(pg_url: str) -> None:
    engine = make_engine(pg_url)
    now = _ms(2031, 12, 15)
    try:
        first = service.ensure(engine, now)
        assert first.created == [
            "events_p203111",
            "events_p203112",
            "events_p203201",
            "events_p203202",
            "events_p203203",
        ]
        assert service.ensure(engine, now).created == []
    finally:
        engine.dispose()


def _insert_raw(engine: Engine, rows: list[tuple[int, int]]) -> None:
    with session_factory(engine)() as s:
        s.add(Device(school_id="S1", device_id="d1", created_at_ms=0))
        s.commit()
    with engine.begin() as c:
        pk = c.execute(text("SELECT pk FROM devices")).scalar_one()
        for seq, at in rows:
            c.execute(
                text(
                    "INSERT INTO events (device_pk, seq, school_id, at_ms, kind, terminal, "
                    "student_id, payload, received_at_ms) VALUES "
                    "(:pk, :seq, 'S1', :at, 'entry', 't1', 'st1', CAST(:p AS JSONB), 0)"
                ),
                {"pk": pk, "seq": seq, "at": at, "p": f'{{"seq": {seq}}}'},
            )


def test_the_migration_moves_every_row_and_back() -> None:
    from alembic import command

    with fresh_pg_database() as url:  # at head: down to the unpartitioned table first
        command.downgrade(alembic_config(url), "0016")
        engine = create_engine(url)
        try:
            with engine.begin() as c:
                c.execute(
                    text(
                        "INSERT INTO schools (id, name, created_at_ms, sync_version, "
                        "timezone, card_price_tiyn) VALUES ('S1', '', 0, 0, 'UTC', 0)"
                    )
                )
            rows = [(i, _ms(2024, 1 + i % 12, 1 + i % 27, 8)) for i in range(1, 301)]
            rows += [(301, 5), (302, _ms(2400, 1, 1))]  # a broken clock, both ways
            _insert_raw(engine, rows)
            upgrade(url, "0017_partitions")
            where = _where(engine)
            assert sorted(where) == list(range(1, 303))
            assert {where[i] for i in range(1, 301)} == {
                f"events_p2024{m:02d}" for m in range(1, 13)
            }
            assert where[301] == where[302] == rules.DEFAULT
            with engine.connect() as c:
                stored = {tuple(r) for r in c.execute(text("SELECT seq, at_ms FROM events"))}
            assert stored == set(rows)
            command.downgrade(alembic_config(url), "0016")
            with engine.connect() as c:
                assert {tuple(r) for r in c.execute(text("SELECT seq, at_ms FROM events"))} == set(
                    rows
                )
                kind = c.execute(
                    text("SELECT relkind FROM pg_class WHERE relname = 'events'")
                ).scalar_one()
            assert kind == "r"  # an ordinary table again
            upgrade(url)
            assert len(_where(engine)) == 302
        finally:
            engine.dispose()


def _meal(seq: int, at_ms: int, day: str) -> MealServedEvent:
    return MealServedEvent(
        seq=seq,
        at_ms=at_ms,
        terminal="c1",
        student_id="st1",
        period="lunch",
        local_date=day,
        meal="paid",
        amount_tiyn=50_000,
    )


def test_months_past_the_period_are_archived_and_the_rest_untouched(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from server.rollups.service import region_meals

    engine, key, store = setup
    now = _ms(2028, 3, 10)
    months = [
        Month(2026, 12),
        *(Month(2027, m) for m in range(1, 13)),
        Month(2028, 1),
        Month(2028, 2),
        Month(2028, 3),
    ]
    service.ensure(engine, now, months)
    events: list[Event] = []
    seq = 0
    for m in months:
        for day in (3, 17):
            seq += 1
            at = _ms(m.year, m.month, day, 6)
            events.append(_meal(seq, at, f"{m.year:04d}-{m.month:02d}-{day:02d}"))
    for i in range(0, len(events), 10):
        store.ingest([_batch(key, events[i : i + 10])])

    def counts() -> dict[str, int]:
        with engine.connect() as c:
            return {p.name: p.rows for p in service.partitions(c, exact=True)}

    def meals(first: dt.date, last: dt.date) -> int:
        with engine.connect() as c:
            return sum(r.paid for r in region_meals(c, None, first, last))

    before = counts()
    kept_before = meals(dt.date(2027, 3, 1), dt.date(2028, 3, 31))
    all_before = meals(dt.date(2026, 1, 1), dt.date(2028, 12, 31))
    due = service.retire(engine, now, archive_dir=None, days=365, dry_run=True)
    # a month is retired when it ended 365 days ago or more: up to Feb 2027 (with any empty
    # month the migration made before the data's)
    with engine.connect() as c:
        months_kept = [p.month for p in service.partitions(c) if p.month is not None]
    assert [r.month for r in due] == [m for m in months_kept if m <= Month(2027, 2)]
    assert [r.name for r in due if r.rows][-3:] == [
        "events_p202612",
        "events_p202701",
        "events_p202702",
    ]
    done = service.retire(engine, now, archive_dir=tmp_path / "archive", days=365)
    assert [r.name for r in done] == [r.name for r in due]
    after = counts()
    assert set(before) - set(after) == {r.name for r in done}
    assert {n: after[n] for n in after} == {n: before[n] for n in after}  # the rest untouched
    for r in done:
        assert r.archive is not None and r.rows == (2 if r.month >= Month(2026, 12) else 0)
        data = r.archive.read_bytes()
        line = (r.archive.parent / f"{r.name}.csv.gz.sha256").read_text()
        assert line == f"{hashlib.sha256(data).hexdigest()}  {r.archive.name}\n"
        lines = gzip.decompress(data).decode().splitlines()
        assert lines[0].startswith("device_pk,seq,") and len(lines) == r.rows + 1
    # the remaining months' reports are unchanged; the roll-ups keep the retired months' counts
    assert meals(dt.date(2027, 3, 1), dt.date(2028, 3, 31)) == kept_before
    assert meals(dt.date(2026, 1, 1), dt.date(2028, 12, 31)) == all_before == len(events)
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(StoredEvent)).scalar() == len(events) - 6
    # a re-send of a retired month (an edge restored from an old backup) is not stored again
    assert store.ingest([_batch(key, events[:4])]).events_inserted == 0
    assert service.retire(engine, now, archive_dir=None, days=365) == []


def test_the_commands(pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import main

    db = ["--database-url", pg_url]
    assert main(["partitions", "ensure", "--month", "2031-05", *db]) == 0
    assert "events_p203105" in capsys.readouterr().out
    assert main(["partitions", "ensure", "--month", "2031-13", *db]) == 2
    assert "not YYYY-MM" in capsys.readouterr().err
    assert main(["partitions", "list", "--json", "--exact", *db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {
        k: v
        for k, v in next(p for p in listed if p["name"] == "events_p203105").items()
        if k != "bytes"
    } == {"name": "events_p203105", "month": "2031-05", "rows": 0}
    assert listed[-1]["name"] == rules.DEFAULT
    assert main(["partitions", "retire", *db]) == 2  # neither --archive nor --drop
    assert "--archive DIR" in capsys.readouterr().err
    assert main(["partitions", "retire", "--dry-run", "--days", "36500", *db]) == 0
    assert "would retire 0 month(s)" in capsys.readouterr().out
    assert main(["rollups", "rebuild", "--since", "2031-02-30", *db]) == 2
    assert main(["rollups", "rebuild", *db]) == 0
    assert main(["rollups", "rebuild", "--sql", "--since", "2031-02-01", *db]) == 0
    assert "0 event(s) read" in capsys.readouterr().out


def test_a_region_with_a_shorter_period_loses_its_rows_first(pg_url: str, tmp_path: Path) -> None:
    """Months go whole when the longest period has passed; before that, the rows of a region
    whose own period is shorter are archived and deleted, the other regions' stay."""
    from server.people.service import add_school
    from server.retention.service import set_days

    engine = make_engine(pg_url)
    try:
        with session_factory(engine)() as s:
            add_school(s, "S1", region="R1")
            add_school(s, "S2", region="R2")
            set_days(s, None, "R1", 100, "order No. 1", 0)  # R2: the default, 365
            s.commit()
            k1, _, _ = enrolled_device(s, _settings(pg_url), "S1", "d1")
            k2, _, _ = enrolled_device(s, _settings(pg_url), "S2", "d1")
        store = IngestStore(engine, topic_prefix=PREFIX)
        months = [Month(2027, m) for m in range(1, 13)] + [Month(2028, m) for m in (1, 2, 3)]
        service.ensure(engine, 0, months)
        for school, key in (("S1", k1), ("S2", k2)):
            evs: list[Event] = [
                _entry(i + 1, _ms(m.year, m.month, 5, 6)) for i, m in enumerate(months)
            ]
            batch = EventBatch(school=school, device="d1", sent_at_ms=evs[0].at_ms, events=evs)
            store.ingest([(topics.events(school, "d1", PREFIX), sign_batch(batch, key))])
        store.close()
        now = _ms(2028, 3, 10)
        done = service.retire(engine, now, archive_dir=tmp_path)
        whole = sorted(r.month.label for r in done if r.region is None and r.rows)
        by_r1 = sorted(r.month.label for r in done if r.region == "R1")
        assert whole == ["2027-01", "2027-02"]  # 365 days after the month's end
        assert by_r1 == [f"2027-{m:02d}" for m in range(3, 12)]  # 100 days: to November
        assert all(r.archive is not None and r.archive.exists() for r in done if r.rows)
        with engine.connect() as c:
            left = {
                school: sorted(
                    rules.month_of(at).label
                    for (at,) in c.execute(
                        text("SELECT at_ms FROM events WHERE school_id = :s"), {"s": school}
                    )
                )
                for school in ("S1", "S2")
            }
        assert left["S1"] == ["2027-12", "2028-01", "2028-02", "2028-03"]
        assert left["S2"] == [m.label for m in months[2:]]
        assert service.retire(engine, now, archive_dir=tmp_path) == []  # nothing twice
    finally:
        engine.dispose()
