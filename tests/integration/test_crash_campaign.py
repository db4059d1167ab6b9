"""The crash campaign, short: the real daemon SIGKILLed at random moments during a rush, a few
dozen times, with the uplink to the real Mosquitto and ingest into PostgreSQL; then count.

The long run is ``qaqpa bench crash --cycles 1000``; this one asserts the invariants only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.bench_crash import BROKEN, run_campaign
from tests.support.services import SYSTEM_BROKER

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.slow]


def test_daemon_killed_dozens_of_times_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    result = run_campaign(
        cycles=30,
        seed=1818,
        cold_every=10,
        baseline_cycles=0,
        rush_max_s=0.4,
        startup_kill_share=0.2,
        students=120,
        mqtt_port=SYSTEM_BROKER[1],
        database_url=pg_url,
        workdir=tmp_path,
    )
    print(f"\n{ {k: result[k] for k in ('kills', 'journal_events', 'actuations', 'meals')} }")
    assert result["kills"] == 30
    assert result["cold_starts"] == 3  # the real `qaqpa run` is killed too, not only forks
    assert result["kills_during_startup"] > 0
    # the campaign did something: decisions were actuated, meals served, events shipped
    assert result["actuations"] > 100 and result["meals"] > 10
    assert result["drained"], "the server never acknowledged every journaled event"
    assert result["server_events"] == result["journal_events"]
    broken = {k: result[k] for k in BROKEN if result[k]}
    assert not broken, broken
