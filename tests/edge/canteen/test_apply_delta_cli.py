"""``qaqpa edge apply-delta``: the menu, credits and limits through the downlink code; bad input
(a negative credit, a dish without a price, another school's delta, a gap) refused with the file
and the field named, exit 2, nothing booked; a replayed delta credits nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from edge.store import EdgeStore
from qaqpa.cli import main
from tests.support.canteen_school import SCHOOL, money_delta, snapshot


@pytest.fixture
def school(tmp_path: Path) -> Path:
    async def setup() -> None:
        store = await EdgeStore.open(tmp_path / "edge.sqlite", school=SCHOOL, device="edge-1")
        await store.apply_snapshot(snapshot())
        await store.close()

    asyncio.run(setup())
    config = tmp_path / "edge.toml"
    config.write_text(f'school = "{SCHOOL}"\ndevice = "edge-1"\nstore = "edge.sqlite"\n')
    return config


def balance(config: Path, student: str) -> int:
    async def read() -> int:
        store = await EdgeStore.open(config.parent / "edge.sqlite", school=SCHOOL, device="edge-1")
        try:
            return store.state.balance(student)
        finally:
            await store.close()

    return asyncio.run(read())


def run(config: Path, delta: dict[str, Any]) -> int:
    path = config.parent / "delta.json"
    path.write_text(json.dumps(delta), encoding="utf-8")
    return main(["edge", "apply-delta", "--config", str(config), "--delta", str(path)])


def test_apply_then_replay(school: Path, capsys: pytest.CaptureFixture[str]) -> None:
    delta = json.loads(money_delta().model_dump_json(by_alias=True))
    assert run(school, delta) == 0
    assert "applied; store at version 2" in capsys.readouterr().out
    assert balance(school, "s-pay") == 100_000
    assert run(school, delta) == 0
    assert "already applied" in capsys.readouterr().out
    assert balance(school, "s-pay") == 100_000


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"op": "balance_credit", "ledger_id": "L1", "student_id": "s-pay", "amount_tiyn": -5},
            "changes.0.balance_credit.amount_tiyn",
        ),
        (
            {"op": "menu_set", "local_date": "2025-10-06", "items": [{"id": "x", "name": "X"}]},
            "changes.0.menu_set.items.0.price_tiyn",
        ),
        (
            {"op": "parent_limits_set", "student_id": "s-pay", "daily_cap_tiyn": -1},
            "changes.0.parent_limits_set.daily_cap_tiyn",
        ),
    ],
)
def test_bad_input_is_refused_and_nothing_is_booked(
    school: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], problem: str
) -> None:
    ok = {"op": "balance_credit", "ledger_id": "L0", "student_id": "s-pay", "amount_tiyn": 100}
    delta = {"school": SCHOOL, "version": 2, "base_version": 1, "changes": [change, ok]}
    assert run(school, delta) == 2
    err = capsys.readouterr().err
    assert "delta.json" in err and problem in err
    assert balance(school, "s-pay") == 0


def test_another_schools_delta_or_a_gap_is_refused(
    school: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credit = {"op": "balance_credit", "ledger_id": "L0", "student_id": "s-pay", "amount_tiyn": 9}
    other = {"school": "S2", "version": 2, "base_version": 1, "changes": [credit]}
    assert run(school, other) == 2
    assert "'S2'" in capsys.readouterr().err
    gap = {"school": SCHOOL, "version": 5, "base_version": 4, "changes": [credit]}
    assert run(school, gap) == 2
    assert "does not follow version 1" in capsys.readouterr().err
    assert balance(school, "s-pay") == 0
