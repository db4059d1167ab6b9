"""A week of national traffic COPYed into the primary, and the region's meal statement and the
national dashboard timed on the hot standby as the days pile up (``qaqpa bench fleet``, part 2).

The rows: ``schools`` schools in 20 regions, sized like Kazakhstan's (log-normal: many small
rural schools, a few urban ones of 2,000-3,000), ``students`` students shared out by size, one
device per school; each school day ``events_per_day`` events nationally, shared out by size:
entries (42 %; first shift 07:30-08:30, second 13:00-13:45), exits (38 %) and meals (20 %, free
for about half, the rest paid), at local times (UTC+5), with the payloads the edges send.

What is timed, on the standby, at 1, 3 and ``days`` days loaded:
- ``region_meal_statement``: a region's meals for the month by school, day and kind. No
  region-wide statement exists as a function (server/reports has one school's ``meal_month``):
  this is the SQL such a page would run (``REGION_MEAL_STATEMENT``).
- ``national_dashboard``: today's schools reporting, students present, meals and last event per
  region. No national dashboard exists as a function (server/dashboard shows one school): this
  is the SQL such a page would run (``NATIONAL_DASHBOARD``).
- ``status_of_all_schools``: ``server.reports.service.school_status`` for every school, the
  existing console page an operator opens (devices, alarms, last event per school).
- ``one_school_day``: ``server.reports.service.events`` of one large school's day (existing).

"With roll-ups" (``Rollups``): the COPY bypasses the ingest that keeps the daily roll-ups
(server/rollups), so after each day's COPY ``refresh`` brings them up to date with the product's
own rebuild from that day (``rebuild_sql``, the set-based path for bulk loads; ``--rollup-refresh
python``: ``rebuild``, one school at a time), timed on the primary; then, on the standby:
- ``region_meal_statement``: ``server.rollups.service.region_meals`` (meals per school of the
  region over the month: free, paid, voucher, paid tiyn),
- ``national_dashboard``: ``server.rollups.service.national_dashboard`` (per region: schools
  reporting, pupils present, meals by kind; no last event: roll-ups keep no times),
- ``presence_of_all_schools``: ``server.rollups.service.region_presence(None, day)`` (what
  /reports/schools reads),
and the dashboard's meals and pupils present per region are checked against the raw query's.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from server.db import make_engine, make_read_engine, session_factory
from server.reports import service as reports
from server.rollups import service as rollup_service
from simulators.fleet_common import caveat, scratch_database
from simulators.pg_pair import BenchPair

REGIONS = 20
FIRST_DAY = dt.date(2026, 9, 7)  # a Monday
UTC_OFFSET_MS = 5 * 3_600_000  # Kazakhstan, one zone (UTC+5) since 2024
BYTES_PER_EVENT_EST = 700  # table + indexes, on the primary; the standby holds as much again

REGION_MEAL_STATEMENT = """
SELECT e.school_id, e.payload->>'local_date' AS day, e.payload->>'meal' AS meal,
       count(*) AS meals, coalesce(sum((e.payload->>'amount_tiyn')::bigint), 0) AS tiyn
FROM events e JOIN schools s ON s.id = e.school_id
WHERE s.region_id = %(region)s AND e.kind = 'meal_served'
  AND e.at_ms >= %(start)s AND e.at_ms < %(end)s
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""

NATIONAL_DASHBOARD = """
SELECT s.region_id, count(DISTINCT e.school_id) AS schools_reporting,
       count(DISTINCT e.student_id) FILTER (WHERE e.kind IN ('entry', 'manual_pass')) AS present,
       count(*) FILTER (WHERE e.kind = 'meal_served') AS meals,
       max(e.at_ms) AS last_event_ms
FROM events e JOIN schools s ON s.id = e.school_id
WHERE e.at_ms >= %(start)s AND e.at_ms < %(end)s
GROUP BY s.region_id ORDER BY 1
"""


class Rollups:
    """The daily roll-ups (server/rollups), filled after each COPY and read on the standby."""

    TABLES = ("rollup_meals", "rollup_presence", "rollup_attendance")
    METHODS = ("sql", "python")

    def __init__(self, method: str = "sql") -> None:
        if method not in self.METHODS:
            raise SystemExit(f"--rollup-refresh {method!r}: one of {', '.join(self.METHODS)}")
        self.method = method

    def available(self, conn: psycopg.Connection[Any]) -> str | None:
        """None when the roll-ups can be timed; else why not."""
        row = conn.execute("SELECT to_regclass(%s)", (self.TABLES[0],)).fetchone()
        if not row or row[0] is None:
            return "no daily roll-ups in this schema (server/rollups)"
        return None

    def refresh(self, url: str, day: dt.date) -> dict[str, Any]:
        """Recompute the roll-ups from ``day`` on (the day just COPYed) on the primary."""
        engine = make_engine(url)
        try:
            t0 = time.perf_counter()
            if self.method == "sql":
                done = rollup_service.rebuild_sql(engine, since=day)
            else:
                done = rollup_service.rebuild(engine, since=day)
            took = time.perf_counter() - t0
        finally:
            engine.dispose()
        return {
            "day": day.isoformat(),
            "s": round(took, 1),
            "events_read": done.events,
            "meal_rows": done.meal_rows,
            "presence_rows": done.presence_rows,
        }

    def size_gb(self, conn: psycopg.Connection[Any]) -> float:
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(t))::bigint FROM unnest(%s::regclass[]) t",
            (list(self.TABLES),),
        ).fetchone()
        return round(int(row[0] or 0) / 1e9, 3) if row else 0.0

    def queries(
        self, conn: Any, region: str, first: dt.date, last: dt.date, today: dt.date
    ) -> dict[str, Callable[[], Any]]:
        """The pages over the roll-ups, with the product's functions, on ``conn`` (standby)."""
        return {
            "region_meal_statement": lambda: rollup_service.region_meals(conn, region, first, last),
            "national_dashboard": lambda: rollup_service.national_dashboard(conn, today),
            "presence_of_all_schools": lambda: rollup_service.region_presence(conn, None, today),
        }


def _day_start_ms(day: dt.date) -> int:
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return int(midnight.timestamp() * 1000) - UTC_OFFSET_MS


def _school_days(n: int) -> list[dt.date]:
    out: list[dt.date] = []
    d = FIRST_DAY
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


@dataclass
class Country:
    schools: list[str]
    regions: list[str]
    region_of: list[int]
    size: np.ndarray[Any, Any]  # students per school
    device_pk: list[int]


def _make_country(
    conn: psycopg.Connection[Any], n: int, students: int, rng: np.random.Generator
) -> Country:
    raw = rng.lognormal(mean=0.0, sigma=0.9, size=n)
    size = np.maximum(20, np.round(raw / raw.sum() * students)).astype(np.int64)
    regions = [f"R{r:02d}" for r in range(REGIONS)]
    region_of = [int(x) for x in rng.integers(0, REGIONS, size=n)]
    schools = [f"L{i:05d}" for i in range(n)]
    now = int(time.time() * 1000)
    with conn.cursor() as cur:
        with cur.copy("COPY regions (id, name) FROM STDIN") as cp:
            for r in regions:
                cp.write_row((r, f"Region {r}"))
        with cur.copy(
            "COPY schools (id, name, created_at_ms, sync_version, region_id, timezone, "
            "card_price_tiyn) FROM STDIN"
        ) as cp:
            for i, s in enumerate(schools):
                cp.write_row(
                    (s, f"School {s}", now, 0, regions[region_of[i]], "Asia/Almaty", 10000)
                )
        with cur.copy(
            "COPY devices (school_id, device_id, created_at_ms, enrol_token_used, online, "
            "applied_version) FROM STDIN"
        ) as cp:
            for s in schools:
                cp.write_row((s, "edge-1", now, True, True, 0))
    conn.commit()
    pk_of = dict(conn.execute("SELECT school_id, pk FROM devices").fetchall())
    return Country(schools, regions, region_of, size, [int(pk_of[s]) for s in schools])


def _day_rows(
    country: Country,
    day: dt.date,
    events_per_day: int,
    seqs: list[int],
    rng: np.random.Generator,
) -> Any:
    """Yield COPY text chunks (one per school) of one school day."""
    total = int(country.size.sum())
    base = _day_start_ms(day)
    iso = day.isoformat()
    for i, school in enumerate(country.schools):
        size = int(country.size[i])
        n = round(events_per_day * size / total)
        if n == 0:
            continue
        kinds = rng.choice(3, size=n, p=[0.42, 0.38, 0.20])
        studs = rng.integers(0, size, size=n)
        second = rng.random(n) < 0.3
        minute = rng.random(n)
        # local minutes after midnight by kind and shift
        start = np.where(
            kinds == 0,
            np.where(second, 13 * 60, 7 * 60 + 30),
            np.where(kinds == 1, np.where(second, 18 * 60, 13 * 60), 10 * 60),
        )
        span = np.where(kinds == 0, np.where(second, 45, 60), np.where(kinds == 1, 90, 150))
        at = base + ((start + minute * span) * 60_000).astype(np.int64)
        at.sort()
        free = rng.random(n) < 0.5
        pk = country.device_pk[i]
        seq = seqs[i]
        lines = []
        for k, st, t, fr in zip(
            kinds.tolist(), studs.tolist(), at.tolist(), free.tolist(), strict=True
        ):
            seq += 1
            sid = f"{school}-{st}"
            if k == 0:
                kind, term = "entry", "gate-1"
                payload = (
                    f'{{"seq":{seq},"at_ms":{t},"terminal":"gate-1","kind":"entry",'
                    f'"student_id":"{sid}","staff_id":null,"passback_violation":false}}'
                )
            elif k == 1:
                kind, term = "exit", "gate-2"
                payload = (
                    f'{{"seq":{seq},"at_ms":{t},"terminal":"gate-2","kind":"exit",'
                    f'"student_id":"{sid}","staff_id":null,"passback_violation":false}}'
                )
            else:
                kind, term = "meal_served", "canteen-1"
                meal, amount = ("free", 0) if fr else ("paid", 85000)
                payload = (
                    f'{{"seq":{seq},"at_ms":{t},"terminal":"canteen-1","kind":"meal_served",'
                    f'"student_id":"{sid}","period":"lunch","local_date":"{iso}",'
                    f'"meal":"{meal}","amount_tiyn":{amount},"items":[]}}'
                )
            lines.append(
                f"{pk}\t{seq}\t{school}\t{t}\t{kind}\t{term}\t{sid}\t\\N\t{payload}\t{t + 800}\n"
            )
        seqs[i] = seq
        yield "".join(lines)


def _time(fn: Callable[[], object], runs: int) -> dict[str, float]:
    first = time.perf_counter()
    fn()
    cold = time.perf_counter() - first
    times = [cold]
    if cold < 10:  # a slow query is not run again: the trend is what matters
        for _ in range(runs - 1):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return {
        "first_ms": round(cold * 1000, 1),
        "median_ms": round(statistics.median(times) * 1000, 1),
    }


def _biggest_region(country: Country) -> int:
    return max(
        range(REGIONS),
        key=lambda r: sum(int(country.size[i]) for i, x in enumerate(country.region_of) if x == r),
    )


def _timings(
    standby_dsn: str,
    standby_url: str,
    country: Country,
    days: list[dt.date],
    runs: int,
    raw_board: dict[str, Any],
) -> dict[str, Any]:
    """``raw_board``: the dashboard's rows are left there (to check the roll-ups against)."""
    region = _biggest_region(country)
    month_start = _day_start_ms(days[0].replace(day=1))
    nxt = (days[0].replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    month_end = _day_start_ms(nxt)
    today = days[-1]
    big = int(np.argmax(country.size))
    out: dict[str, Any] = {}
    with psycopg.connect(standby_dsn, autocommit=True) as conn:

        def statement() -> object:
            return conn.execute(
                REGION_MEAL_STATEMENT,
                {"region": country.regions[region], "start": month_start, "end": month_end},
            ).fetchall()

        def dashboard() -> object:
            rows = conn.execute(
                NATIONAL_DASHBOARD,
                {"start": _day_start_ms(today), "end": _day_start_ms(today) + 86_400_000},
            ).fetchall()
            raw_board["rows"] = rows
            return rows

        out["region_meal_statement"] = {
            **_time(statement, runs),
            "region_schools": sum(1 for x in country.region_of if x == region),
            "sql": "written here (no region-wide statement function exists): REGION_MEAL_STATEMENT",
        }
        out["national_dashboard"] = {
            **_time(dashboard, runs),
            "sql": "written here (no national dashboard function exists): NATIONAL_DASHBOARD",
        }
    engine = make_read_engine(standby_url, connect_timeout_s=10)
    try:
        with session_factory(engine)() as db:
            end = _day_start_ms(today) + 86_400_000
            out["status_of_all_schools"] = {
                **_time(lambda: reports.school_status(db, None, end), runs),
                "function": "server.reports.service.school_status (existing)",
            }
            out["one_school_day"] = {
                **_time(
                    lambda: reports.events(
                        db, country.schools[big], _day_start_ms(today), end, ["entry", "exit"]
                    ),
                    runs,
                ),
                "function": "server.reports.service.events (existing), the largest school",
            }
    finally:
        engine.dispose()
    return out


def _rollup_timings(
    hook: Rollups,
    standby_url: str,
    country: Country,
    days: list[dt.date],
    runs: int,
    raw_board: dict[str, Any],
) -> dict[str, Any]:
    """The pages over the roll-ups on the standby; the dashboard checked against the raw one's
    rows (meals and pupils present per region)."""
    region = country.regions[_biggest_region(country)]
    first = days[0].replace(day=1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    out: dict[str, Any] = {"available": True}
    engine = make_read_engine(standby_url, connect_timeout_s=10)
    try:
        with engine.connect() as conn:
            fns = hook.queries(conn, region, first, last, days[-1])
            for name, fn in fns.items():
                out[name] = {**_time(fn, runs), "function": f"server.rollups.service ({name})"}
            board = {r.region_id: r for r in fns["national_dashboard"]()}
            conn.rollback()
    finally:
        engine.dispose()
    raw = {r[0]: (int(r[2]), int(r[3])) for r in raw_board.get("rows", [])}
    got = {k: (v.present, v.free + v.paid + v.voucher) for k, v in board.items() if k in raw}
    out["dashboard_agrees_with_raw_events"] = bool(raw) and got == raw
    if not out["dashboard_agrees_with_raw_events"]:
        out["dashboard_differs"] = {
            str(k): {"raw": raw.get(k), "rollups": got.get(k)}
            for k in sorted(set(raw) | set(got), key=str)
            if raw.get(k) != got.get(k)
        }
    return out


def load_and_time(
    pair: BenchPair,
    *,
    days: int = 7,
    events_per_day: int = 4_300_000,
    schools: int = 7_800,
    students: int = 4_000_000,
    rollups: bool = True,
    runs: int = 3,
    seed: int = 19,
    budget_s: float = 0.0,
    rollup_refresh: str = "sql",
) -> dict[str, Any]:
    """``budget_s`` (0: none): stop adding days when the next would not fit; the last day loaded
    is timed too. ``rollup_refresh``: "sql" (``rebuild_sql``) or "python" (``rebuild``)."""
    need = days * events_per_day * BYTES_PER_EVENT_EST * 2
    with psycopg.connect(pair.primary.dsn(), autocommit=True) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    free = shutil.disk_usage(row[0] if row else "/").free
    out: dict[str, Any] = {
        "machine": caveat(),
        "disk_free_gb_before": round(free / 1e9, 1),
        "disk_needed_gb_estimate": round(need / 1e9, 1),
    }
    if need > free * 0.8:
        fit = max(1, int(free * 0.8 / (events_per_day * BYTES_PER_EVENT_EST * 2)))
        out["days_reduced"] = f"{days} days do not fit on this disk: {fit} loaded"
        days = fit
    checkpoints = sorted({d for d in (1, 3, days) if d <= days})
    rng = np.random.default_rng(seed)
    hook = Rollups(rollup_refresh)
    out.update(
        {
            "schools": schools,
            "students": students,
            "days": days,
            "events_per_day": events_per_day,
            "rollup_refresh": f"server.rollups.service.{'rebuild_sql' if rollup_refresh == 'sql' else 'rebuild'}"
            " from the day COPYed, after each COPY (the COPY bypasses the ingest that keeps them)",
            "rollup_refresh_per_day": [],
            "checkpoints": [],
        }
    )
    with scratch_database(pair, "load") as url:
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(dsn) as conn:
            country = _make_country(conn, schools, students, rng)
            no_rollups = hook.available(conn) if rollups else "not asked for"
            school_days = _school_days(days)
            seqs = [0] * schools
            loaded = 0
            copy_s = 0.0
            timed: set[int] = set()
            refresh_s = 0.0

            def checkpoint(n: int) -> None:
                timed.add(n)
                conn.execute("ANALYZE events")
                conn.commit()
                row = conn.execute(
                    "SELECT sum(pg_total_relation_size(relid))::bigint,"
                    " sum(pg_relation_size(relid))::bigint"
                    " FROM pg_partition_tree('events')"  # partitioned by month, or not
                ).fetchone()
                assert row is not None
                rollup_gb = hook.size_gb(conn) if not no_rollups else None
                conn.commit()
                replay_s = pair.wait_replayed()
                raw_board: dict[str, Any] = {}
                with psycopg.connect(pair.standby.dsn(name)) as sconn:
                    on_standby = sconn.execute("SELECT count(*) FROM events").fetchone()
                point: dict[str, Any] = {
                    "days_loaded": n,
                    "events_loaded": loaded,
                    "events_on_standby": int(on_standby[0]) if on_standby else 0,
                    "events_table_with_indexes_gb": round(row[0] / 1e9, 2),
                    "copy_events_per_s": round(loaded / copy_s),
                    "rollup_tables_with_indexes_gb": rollup_gb,
                    "rollup_refresh_s_total": round(refresh_s, 1) if not no_rollups else None,
                    "standby_caught_up_after_s": round(replay_s, 1),
                    "without_rollups": _timings(
                        pair.standby.dsn(name),
                        pair.standby.url(name),
                        country,
                        school_days[:n],
                        runs,
                        raw_board,
                    ),
                    "with_rollups": {"available": False, "reason": no_rollups}
                    if no_rollups
                    else _rollup_timings(
                        hook, pair.standby.url(name), country, school_days[:n], runs, raw_board
                    ),
                    "machine": caveat(),
                }
                out["checkpoints"].append(point)
                print("fleet load:", json.dumps(point), file=sys.stderr, flush=True)

            started = time.monotonic()
            day_s = 0.0
            n = 0
            for day in school_days:
                if budget_s and n and time.monotonic() - started + day_s * 1.2 > budget_s:
                    out["stopped_early"] = (
                        f"--load-minutes {budget_s / 60:g} spent after {n} of {days} days: "
                        "the growth is read off the days loaded"
                    )
                    break
                t0 = time.perf_counter()
                with (
                    conn.cursor() as cur,
                    cur.copy(
                        "COPY events (device_pk, seq, school_id, at_ms, kind, terminal, student_id,"
                        " staff_id, payload, received_at_ms) FROM STDIN"
                    ) as cp,
                ):
                    for chunk in _day_rows(country, day, events_per_day, seqs, rng):
                        cp.write(chunk)
                conn.commit()
                n += 1
                day_s = time.perf_counter() - t0
                copy_s += day_s
                if not no_rollups:
                    done = hook.refresh(url, day)
                    refresh_s += done["s"]
                    day_s += done["s"]
                    out["rollup_refresh_per_day"].append(done)
                    print("fleet load: roll-ups", json.dumps(done), file=sys.stderr, flush=True)
                loaded = sum(seqs)
                if n in checkpoints:
                    checkpoint(n)
            if n and n not in timed:
                checkpoint(n)  # the last day loaded, when the budget stopped the load
    out["growth"] = _growth(out["checkpoints"])
    return out


def _slopes(
    a: dict[str, Any], b: dict[str, Any], de: float, year_events: float, loaded: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q, tb in b.items():
        if not isinstance(tb, dict) or "median_ms" not in tb or q not in a:
            continue
        ta = a[q]["median_ms"]
        slope = max(0.0, (tb["median_ms"] - ta) / de) if de else 0.0  # noise below 0: flat
        out[q] = {
            "ms_per_million_events": round(slope, 2),
            "school_year_ms_if_linear": round(
                tb["median_ms"] + slope * (year_events - loaded) / 1e6
            ),
        }
    return out


def _growth(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Milliseconds per million events loaded, from the first and the last checkpoint, and what
    that gives for a school year (about 180 school days at this day's volume), if it stays
    linear: over the raw events (the keys of the pages) and over the roll-ups
    (``with_rollups``, with the refresh's seconds per day loaded)."""
    if len(points) < 2:
        return {}
    a, b = points[0], points[-1]
    de = (b["events_loaded"] - a["events_loaded"]) / 1e6
    per_day = b["events_loaded"] / b["days_loaded"]
    year_events = per_day * 180
    out: dict[str, Any] = {"school_year_events_at_this_volume": int(year_events)}
    out.update(
        _slopes(a["without_rollups"], b["without_rollups"], de, year_events, b["events_loaded"])
    )
    if a["with_rollups"].get("available") and b["with_rollups"].get("available"):
        with_r = _slopes(a["with_rollups"], b["with_rollups"], de, year_events, b["events_loaded"])
        if b.get("rollup_refresh_s_total") is not None:
            with_r["refresh_s_per_day_loaded"] = round(
                b["rollup_refresh_s_total"] / b["days_loaded"], 1
            )
        ga, gb = a.get("rollup_tables_with_indexes_gb"), b.get("rollup_tables_with_indexes_gb")
        if ga is not None and gb is not None:
            with_r["rollup_gb_per_day"] = round(
                (gb - ga) / (b["days_loaded"] - a["days_loaded"]), 4
            )
            with_r["school_year_rollup_gb_if_linear"] = round(
                gb + with_r["rollup_gb_per_day"] * (180 - b["days_loaded"]), 1
            )
        out["with_rollups"] = with_r
    out["machine"] = caveat()
    return out


def main() -> None:  # pragma: no cover - for a quick look by hand
    pair = BenchPair.on(25451, 25452)
    pair.ensure()
    try:
        print(
            json.dumps(
                load_and_time(pair, days=3, events_per_day=200_000, schools=500, students=200_000),
                indent=2,
            )
        )
    finally:
        pair.close()


if __name__ == "__main__":
    main()
