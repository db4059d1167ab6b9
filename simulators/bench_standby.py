"""``qaqpa bench standby``: how far a streaming hot standby falls behind under ``qaqpa bench
ingest``'s load, and the report queries' time on the standby beside the primary (the baseline,
measured in the same run).

Needs a running primary and its standby (deploy/DEPLOYMENT.md, "The standby"): their server URLs
in ``QAQPA_BENCH_PRIMARY_URL`` and ``QAQPA_BENCH_STANDBY_URL`` (any database name; a scratch
database is made on the primary, reaches the standby by replication and is dropped after), or
``python -m simulators.bench_standby --primary-url ... --standby-url ...``.

Lag is measured the way the console names it, but exactly: every 100 ms the primary's WAL
position is noted with the time; a position's lag is the time until the standby has replayed it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from server.db import make_engine, make_read_engine, session_factory
from server.migrate import upgrade
from server.reports import service as reports
from simulators.bench_ingest import bench_ingest

SAMPLE_S = 0.1


def _dsn(url: str) -> str:
    u = make_url(url).set(drivername="postgresql")
    return u.render_as_string(hide_password=False)


def _with_db(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


class LagSampler(threading.Thread):
    """Notes the primary's WAL position every ``SAMPLE_S`` and when the standby replayed it."""

    def __init__(self, primary_dsn: str, standby_dsn: str) -> None:
        super().__init__(daemon=True)
        self.primary_dsn, self.standby_dsn = primary_dsn, standby_dsn
        self.stop = threading.Event()
        self.lags_s: list[float] = []
        self.max_bytes = 0

    def run(self) -> None:
        pending: list[tuple[float, str]] = []
        with (
            psycopg.connect(self.primary_dsn, autocommit=True) as p,
            psycopg.connect(self.standby_dsn, autocommit=True) as s,
        ):
            while not self.stop.is_set() or pending:
                row = p.execute("SELECT pg_current_wal_lsn()::text").fetchone()
                assert row is not None
                if not self.stop.is_set():
                    pending.append((time.monotonic(), str(row[0])))
                replay = s.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
                assert replay is not None
                gap = p.execute(
                    "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", (row[0], replay[0])
                ).fetchone()
                self.max_bytes = max(self.max_bytes, int(gap[0]) if gap else 0)
                done = s.execute(
                    "SELECT x FROM unnest(%s::pg_lsn[]) AS x WHERE x <= pg_last_wal_replay_lsn()",
                    ([lsn for _, lsn in pending],),
                ).fetchall()
                replayed = {str(r[0]) for r in done}
                now = time.monotonic()
                self.lags_s += [now - t for t, lsn in pending if lsn in replayed]
                pending = [(t, lsn) for t, lsn in pending if lsn not in replayed]
                time.sleep(SAMPLE_S)


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


def _report_times(url: str, read: bool, schools: list[str], runs: int) -> dict[str, float]:
    engine = make_read_engine(url) if read else make_engine(url)
    day_start = 1_760_000_000_000 - 3_600_000
    day_end = day_start + 86_400_000
    try:
        with session_factory(engine)() as db:
            return {
                "school_day_events_ms": _median_ms(
                    lambda: reports.events(db, schools[0], day_start, day_end, ["entry"]), runs
                ),
                "status_of_all_schools_ms": _median_ms(
                    lambda: reports.school_status(db, schools, day_end), runs
                ),
                "meal_month_ms": _median_ms(
                    lambda: reports.meal_month(db, schools[0], dt.date(2025, 10, 1)), runs
                ),
            }
    finally:
        engine.dispose()


def bench_standby(
    primary_url: str,
    standby_url: str,
    *,
    schools: int = 20,
    events_per_school: int = 5000,
    workers: int = 2,
    mqtt_port: int = 1883,
    runs: int = 7,
    synchronous: bool = False,
) -> dict[str, Any]:
    """``synchronous``: for this run the primary's commits wait for the standby
    (``synchronous_standby_names = '*'``, ``synchronous_commit = on``), reset after."""
    name = f"qaqpa_bench_standby_{uuid.uuid4().hex[:8]}"
    admin = _dsn(_with_db(primary_url, "postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    primary, standby = _with_db(primary_url, name), _with_db(standby_url, name)
    try:
        upgrade(primary)
        if synchronous:
            _set_sync(admin, "'*'")
        sampler = LagSampler(_dsn(primary), _dsn(standby))
        sampler.start()
        ingest = bench_ingest(
            schools=schools,
            events_per_school=events_per_school,
            workers=workers,
            mqtt_port=mqtt_port,
            database_url=primary,
        )
        sampler.stop.set()
        sampler.join(120)
        with psycopg.connect(_dsn(primary), autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_total_relation_size('events'), (SELECT count(*) FROM events)"
            ).fetchone()
            bytes_per_event = round(row[0] / row[1]) if row and row[1] else None
        ids = [f"B{i:04d}" for i in range(schools)]
        on_primary = _report_times(primary, False, ids, runs)
        on_standby = _report_times(standby, True, ids, runs)
    finally:
        if synchronous:
            _set_sync(admin, None)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    lags = sorted(sampler.lags_s)
    return {
        "benchmark": "standby",
        "machine": f"{os.cpu_count()} cores, shared with everything else running",
        "ingest_events": ingest["events"],
        "ingest_events_per_s": ingest["events_per_s"],
        "ingest_seconds": ingest["seconds"],
        "replication": "synchronous (commits wait for the standby)"
        if synchronous
        else "asynchronous",
        "events_bytes_per_event": bytes_per_event,
        "load": "qaqpa bench ingest (MQTT ingest, then its COPY baseline) on the primary",
        "lag_samples": len(lags),
        "replay_lag_p50_s": round(lags[len(lags) // 2], 3) if lags else None,
        "replay_lag_p99_s": round(lags[int(len(lags) * 0.99)], 3) if lags else None,
        "replay_lag_max_s": round(lags[-1], 3) if lags else None,
        "replay_gap_max_bytes": sampler.max_bytes,
        "report_ms_primary": on_primary,  # the baseline
        "report_ms_standby": on_standby,
        "runs": runs,
    }


def _set_sync(admin_dsn: str, names: str | None) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if names is None:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
        else:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = {names}")
        conn.execute("SELECT pg_reload_conf()")
        want = "async" if names is None else "sync"
        for _ in range(100):
            row = conn.execute("SELECT sync_state FROM pg_stat_replication").fetchone()
            if row and row[0] == want:
                return
            time.sleep(0.1)
        raise SystemExit(f"the standby did not become {want}")


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """``qaqpa bench standby``: the URLs from the environment."""
    try:
        primary = os.environ["QAQPA_BENCH_PRIMARY_URL"]
        standby = os.environ["QAQPA_BENCH_STANDBY_URL"]
    except KeyError as err:
        raise SystemExit(f"qaqpa bench standby: set {err.args[0]} (deploy/DEPLOYMENT.md)") from err
    return bench_standby(primary, standby, workers=args.workers, mqtt_port=args.mqtt_port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.bench_standby")
    p.add_argument("--primary-url", required=True)
    p.add_argument("--standby-url", required=True)
    p.add_argument("--schools", type=int, default=20)
    p.add_argument("--events", type=int, default=5000, help="events per school")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--synchronous", action="store_true", help="commits wait for the standby")
    a = p.parse_args(argv)
    result = bench_standby(
        a.primary_url,
        a.standby_url,
        schools=a.schools,
        events_per_school=a.events,
        workers=a.workers,
        mqtt_port=a.mqtt_port,
        synchronous=a.synchronous,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
