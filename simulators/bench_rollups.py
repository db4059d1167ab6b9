"""Ingest with and without the daily roll-ups, on the partitioned and the unpartitioned events
table, in the same run: ``qaqpa bench rollups --json``.

Four scratch PostgreSQL databases (the unpartitioned table is the schema before migration 0017,
the baseline): ``flat`` (no roll-ups: what ingest was), ``flat+rollups``, ``partitioned`` and
``partitioned+rollups``; plus ``partitioned+follower``: ingest without roll-ups and a follower
that reads the stored events back after the commit and adds them to the roll-ups in its own
transaction every 10 transactions (its cost reported apart). The same pre-signed batches (entries, exits, meals of 20
schools' 400 pupils each, 100 events a batch, two batches a transaction) go into each database
in turn, transaction by transaction (the first variant rotating), through ``IngestStore.ingest`` (signature check, COPY, progress, acks;
no MQTT: the broker's share is the same for every variant and is measured by
``qaqpa bench ingest``). Every figure shares the machine's cores with everything else running.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import statistics
import time
from collections.abc import Iterator
from typing import Any

from alembic import command
from sqlalchemy import Engine, select

from protocol import topics
from protocol.messages import (
    EntryEvent,
    Event,
    EventBatch,
    ExitEvent,
    MealKind,
    MealServedEvent,
)
from protocol.signing import generate_key, public_key_raw, sign_batch
from server.centre_key import temporary_key_file
from server.db import make_engine, session_factory
from server.devices import add_device, enrol
from server.ingest import core
from server.migrate import alembic_config
from server.models import StoredEvent
from server.rollups import service as rollups
from server.rollups.models import RollupAttendance, RollupMeal, RollupPresence
from server.settings import ServerSettings
from simulators.bench_ingest import scratch_database

PREFIX = "qaqpa-bench/rollups/v1"
VARIANTS = ("flat", "flat+rollups", "partitioned", "partitioned+rollups", "partitioned+follower")


def _noop(_conn: Any, _rows: Any) -> None:
    return None


@contextlib.contextmanager
def _rollups(on: bool) -> Iterator[None]:
    saved = getattr(core, "apply_rollups")  # noqa: B009
    setattr(core, "apply_rollups", rollups.apply_rollups if on else _noop)  # noqa: B010
    try:
        yield
    finally:
        setattr(core, "apply_rollups", saved)  # noqa: B010


def _flatten(url: str) -> None:
    """Back to the unpartitioned events table (migration 0016) with the roll-ups' tables."""
    command.downgrade(alembic_config(url), "0016")
    engine = make_engine(url)
    for model in (RollupMeal, RollupPresence, RollupAttendance):
        model.__table__.create(engine)  # type: ignore[attr-defined]
    engine.dispose()


def _stream(
    schools: int, pupils: int, rounds: int, per_round: int, day: dt.date
) -> list[list[Event]]:
    """Per school: the events of ``rounds`` rounds, each ``per_round`` events, in seq order."""
    rng = random.Random(19)
    start = int(dt.datetime.combine(day, dt.time(8), dt.UTC).timestamp() * 1000)
    out: list[list[Event]] = []
    for s in range(schools):
        evs: list[Event] = []
        for seq in range(1, rounds * per_round + 1):
            who = f"s{s}-p{rng.randrange(pupils)}"
            at = start + seq * 50
            r = rng.random()
            if r < 0.55:
                evs.append(EntryEvent(seq=seq, at_ms=at, terminal="t1", student_id=who))
            elif r < 0.7:
                evs.append(ExitEvent(seq=seq, at_ms=at, terminal="t1", student_id=who))
            else:
                evs.append(
                    MealServedEvent(
                        seq=seq,
                        at_ms=at,
                        terminal="c1",
                        student_id=who,
                        period="lunch",
                        local_date=day.isoformat(),
                        meal=rng.choice([MealKind.FREE, MealKind.PAID]),
                        amount_tiyn=50_000,
                    )
                )
        out.append(evs)
    return out


def _prepare(url: str, keys: list[Any], settings: ServerSettings) -> None:
    engine = make_engine(url)
    with session_factory(engine)() as s:
        for i, key in enumerate(keys):
            token = add_device(s, settings, f"S{i}", "d1")
            enrol(s, settings, token, "d1", public_key_raw(key))
        s.commit()
    engine.dispose()


def _follow(engine: Engine, since_ms: int) -> tuple[int, float]:
    """A follower's pass: the events stored since ``since_ms``, added to the roll-ups."""
    t0 = time.perf_counter()
    with engine.begin() as conn:
        rows = [
            r._asdict()
            for r in conn.execute(
                select(
                    StoredEvent.school_id,
                    StoredEvent.kind,
                    StoredEvent.student_id,
                    StoredEvent.at_ms,
                    StoredEvent.payload,
                    StoredEvent.seq,
                ).where(StoredEvent.received_at_ms >= since_ms)
            )
        ]
        rollups.apply_rollups(conn, rows)
    return len(rows), time.perf_counter() - t0


def bench(args: argparse.Namespace) -> dict[str, Any]:
    schools, pupils, rounds, per_round, batch = 20, 400, 3, 1000, 100
    day = dt.date(2027, 3, 1)
    keys = [generate_key() for _ in range(schools)]
    streams = _stream(schools, pupils, rounds, per_round, day)
    signed: list[list[list[tuple[str, bytes]]]] = []  # round -> transactions -> messages
    for r in range(rounds):
        msgs: list[tuple[str, bytes]] = []
        for b in range(0, per_round, batch):
            for i, evs in enumerate(streams):
                part = evs[r * per_round + b : r * per_round + b + batch]
                eb = EventBatch(school=f"S{i}", device="d1", sent_at_ms=part[-1].at_ms, events=part)
                msgs.append((topics.events(f"S{i}", "d1", PREFIX), sign_batch(eb, keys[i])))
        signed.append([msgs[k : k + 2] for k in range(0, len(msgs), 2)])
    spent: dict[str, list[float]] = {v: [] for v in VARIANTS}  # seconds per round
    stored: dict[str, int] = dict.fromkeys(VARIANTS, 0)
    follower_s = 0.0
    followed = 0
    with temporary_key_file() as key_file, contextlib.ExitStack() as stack:
        urls = {v: stack.enter_context(scratch_database()) for v in VARIANTS}
        for v, url in urls.items():
            if v.startswith("flat"):
                _flatten(url)
            _prepare(
                url,
                keys,
                ServerSettings(database_url=url, topic_prefix=PREFIX, centre_key_file=key_file),
            )
        engines = {v: make_engine(url) for v, url in urls.items()}
        stores = {v: core.IngestStore(e, topic_prefix=PREFIX) for v, e in engines.items()}
        try:
            # each transaction goes into every database in turn (the first one rotating), so
            # the variants share whatever load the machine has at that moment
            for r in range(rounds):
                secs = dict.fromkeys(VARIANTS, 0.0)
                mark = int(time.time() * 1000) - 1
                for k, tx in enumerate(signed[r]):
                    order = VARIANTS[k % len(VARIANTS) :] + VARIANTS[: k % len(VARIANTS)]
                    for v in order:
                        with _rollups(v.endswith("+rollups")):
                            t0 = time.perf_counter()
                            stored[v] += stores[v].ingest(tx).events_inserted
                            secs[v] += time.perf_counter() - t0
                    if (k + 1) % 10 == 0:  # the follower catches up every 10 transactions
                        m, took = _follow(engines["partitioned+follower"], mark)
                        mark = int(time.time() * 1000) - 1
                        follower_s += took
                        followed += m
                m, took = _follow(engines["partitioned+follower"], mark)
                follower_s += took
                followed += m
                for v in VARIANTS:
                    spent[v].append(secs[v])
        finally:
            for s in stores.values():
                s.close()
            for e in engines.values():
                e.dispose()
    round_events = schools * per_round
    rates = {v: [round_events / x for x in xs] for v, xs in spent.items()}
    counts = stored
    follower = [followed / follower_s] if follower_s else [0.0]
    med = {v: statistics.median(x) for v, x in rates.items()}
    base = med["flat"]
    return {
        "bench": "rollups",
        "events_per_variant": schools * per_round * rounds,
        "events_stored": counts,
        "batch_events": batch,
        "messages_per_transaction": 2,
        "rounds": rounds,
        "ingest_events_per_s": {v: round(x) for v, x in med.items()},
        "ratio_to_flat": {v: round(x / base, 3) for v, x in med.items()},
        "follower_events_per_s": round(statistics.median(follower)),
        "note": (
            "in-process IngestStore.ingest (verify, COPY, progress, roll-ups), no MQTT; each "
            "transaction into every variant in turn, median of the rounds' rates; the "
            "follower's rate is apart (its transactions add to the database's work); the "
            f"machine's {os.cpu_count()} cores are shared with everything else running"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.bench_rollups")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    print(json.dumps(bench(args), indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
