"""The canteen benchmark runs end to end on a small rush and reports its figures (no timing is
asserted: a benchmark prints its ratio to the baseline, tests do not judge speed)."""

from __future__ import annotations

from pathlib import Path

from simulators.bench_canteen import run_rush


async def test_bench_canteen_small_rush(tmp_path: Path) -> None:
    result = await run_rush(tmp_path, students=60)
    assert result["students"] == 60 and result["terminals"] == 3
    screens = result["screens"]
    assert screens["free_meal"] == sum(1 for i in range(60) if 1 + i % 11 <= 4)  # grades 1-4
    assert screens["pay"] + screens.get("insufficient_balance", 0) == 60 - screens["free_meal"]
    assert screens["served"] == screens["pay"] == result["sales"]
    for key in ("tap_to_screen_ms", "purchase_to_screen_ms", "bare_decision_ms"):
        assert set(result[key]) == {"p50", "p95", "max"}
    assert result["p95_ratio_to_bare_decision"] > 0
