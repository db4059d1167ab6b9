"""``qaqpa bench soak`` on a school day compressed into 12 s: every tap decided, the kiosk's
screens delivered, and everything journaled acknowledged by the server through the real broker
and ingest by the end (the figures themselves are the bench's business, not the test's)."""

from __future__ import annotations

import pytest

from simulators.bench_soak import bench_soak

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


def test_a_compressed_day_is_decided_shown_and_uploaded() -> None:
    result = bench_soak(minutes=0.2)
    assert result["errors"] == {}
    assert result["gate_taps"] > 0 and result["kiosk_taps"] > 0
    assert sum(result["screens"].values()) >= result["kiosk_taps"]
    assert result["uplink"]["backlog_left"] == 0
    assert result["uplink"]["journaled"] >= result["gate_taps"] + result["kiosk_taps"]
    assert [w["window"] for w in result["windows"]] == [0]
    assert set(result["rss_mb"]) == set(result["open_fds"]) == {"start", "end"}
