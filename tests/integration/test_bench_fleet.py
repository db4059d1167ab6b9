"""``qaqpa bench fleet`` at a tiny scale: 20 schools with their own logins through Mosquitto over
TLS and the real ingest into a primary streaming to a standby, then two small days COPYed and
timed.
The ingest workers are SIGKILLed after every few commits, before their acks, and started again:
counts are asserted (every event sent is stored once), never timings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulators.bench_fleet import bench_fleet
from simulators.fleet_load import load_and_time
from simulators.pg_pair import BenchPair
from tests.support.pg_pair import PgPair

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.exclusive]

# a pair of this test's own (the standby tests' pair on 25441/25442 may be stopped by their
# session meanwhile): in the bench's port range, apart from the bench's own 25451/25452
PRIMARY_PORT, STANDBY_PORT = 18841, 18842
LOAD_PORTS = (18843, 18844)  # the load-only test's own pair


@pytest.fixture
def pair() -> Iterator[PgPair]:
    p = PgPair.on(PRIMARY_PORT, STANDBY_PORT)
    p.ensure()
    yield p
    p.close()


@pytest.fixture
def load_pair() -> Iterator[BenchPair]:
    p = PgPair.on(*LOAD_PORTS)
    p.ensure()
    bench = BenchPair.on(*LOAD_PORTS)
    bench.ensure()  # the running pair, reused
    yield bench
    p.close()


def test_fleet_stores_every_event_once_and_times_the_statements(pair: PgPair) -> None:
    out = bench_fleet(
        schools=20,
        brokers=("mosquitto",),  # the cluster target starts 3 RabbitMQ nodes: a minute here
        ramp=(20,),
        compression=20.0,
        max_compression=20.0,
        min_compression=20.0,  # no search for the compression here
        stage_seconds=3.0,
        workers=1,
        pg_ports=(PRIMARY_PORT, STANDBY_PORT),
        days=2,
        events_per_day=3_000,
        load_schools=12,
        students=2_000,
        ingest_fault=15,
        tls=True,
    )
    assert out["benchmark"] == "fleet" and "shared" in out["machine"]
    mosq = out["targets"]["mosquitto"]
    assert mosq["available"] is True and mosq["tls"] is True
    assert [s["schools"] for s in mosq["stages"]] == [20]
    for stage in mosq["stages"]:
        assert stage["events"] > 0 and stage["events_acknowledged"] == stage["events"]
        for field in ("tap_to_stored_p50_s", "tap_to_stored_p99_s", "sustained_events_per_s"):
            assert field in stage
        assert set(stage["resources"]) == {
            "broker",
            "database_primary",
            "database_standby",
            "ingest_workers",
            "fleet_process",
        }
        assert "shared" in stage["machine"]
    once = mosq["exactly_once"]
    assert once["events_sent"] == sum(
        s["events"] for s in mosq["stages"] + mosq["compression_stages"]
    )
    assert once["events_stored"] == once["events_sent"]
    assert (once["duplicates"], once["missing"], once["unexpected"]) == (0, 0, 0)
    assert once["events_acknowledged"] == once["events_sent"]
    assert once["acknowledged_not_stored"] == 0
    assert once["batches_rejected"] == 0
    conn = mosq["connections"]
    assert conn["refused_logins"] == 0 and conn["acks_refused"] == 0
    assert conn["connects"] == 20 and conn["disconnects"] == 0  # each school logged in once
    assert conn["ingest_workers_killed_and_restarted"] > 0  # the faults happened
    assert conn["all_acknowledged_at_end"] is True
    load = out["statements"]
    points = load["checkpoints"]
    assert [p["days_loaded"] for p in points] == [1, 2]
    for p in points:
        assert p["events_on_standby"] == p["events_loaded"] > 0
        assert set(p["without_rollups"]) == {
            "region_meal_statement",
            "national_dashboard",
            "status_of_all_schools",
            "one_school_day",
        }
        rollups = p["with_rollups"]
        assert rollups["available"] or "roll-ups" in rollups["reason"]
    # 3,000 a day shared out by school size: within rounding of one per school
    assert abs(points[-1]["events_loaded"] - 6_000) <= 2 * 12


def test_the_load_fills_the_rollups_after_each_copy_and_times_both_modes(
    load_pair: BenchPair,
) -> None:
    """The roll-ups, which the COPY bypasses, are rebuilt after each day; the pages over them
    agree with the raw events' dashboard; the growth is read off both modes."""
    out = load_and_time(load_pair, days=3, events_per_day=3_000, schools=12, students=2_000, runs=1)
    assert [p["days_loaded"] for p in out["checkpoints"]] == [1, 3]
    assert [r["day"] for r in out["rollup_refresh_per_day"]] == [
        "2026-09-07",
        "2026-09-08",
        "2026-09-09",
    ]
    for r in out["rollup_refresh_per_day"]:
        assert r["events_read"] > 0 and r["meal_rows"] > 0 and r["presence_rows"] > 0
    for p in out["checkpoints"]:
        with_r = p["with_rollups"]
        assert with_r["available"] is True
        assert with_r["dashboard_agrees_with_raw_events"] is True
        for q in ("region_meal_statement", "national_dashboard", "presence_of_all_schools"):
            assert with_r[q]["median_ms"] >= 0
        assert p["rollup_tables_with_indexes_gb"] is not None
    growth = out["growth"]["with_rollups"]
    assert {"region_meal_statement", "national_dashboard"} <= set(growth)
    assert "refresh_s_per_day_loaded" in growth
