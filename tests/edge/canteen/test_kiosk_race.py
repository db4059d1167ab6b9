"""A sale confirmed at the kiosk while the next student taps the same terminal: the sale is
recorded and shown; the confirmation does not fail because the new tap replaced its menu (a
KeyError here stopped `qaqpa demo`'s cashier and would have answered 500 for a recorded sale)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.core.model import Tap
from edge.kiosk.hub import KioskHub
from edge.kiosk.screens import KioskScreen
from edge.pipeline import Pipeline
from protocol.messages import TerminalKind
from tests.support.canteen_school import open_school


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[KioskHub]:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        async with Pipeline(store) as pipeline:
            yield KioskHub(store, pipeline, ["canteen-1", "canteen-2"])
    finally:
        await store.close()


async def tap(hub: KioskHub, credential: str, terminal: str = "canteen-1") -> KioskScreen:
    at = dt.datetime.now(dt.UTC)
    outcome = await hub.pipeline.submit(
        Tap(at=at, terminal=terminal, kind=TerminalKind.CANTEEN, credential=credential)
    )
    return hub.show_tap(outcome)


async def test_a_new_tap_during_the_sale_does_not_fail_the_sale(
    hub: KioskHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    pay = await tap(hub, "UID:04D4E5F6")
    assert pay["screen"] == "pay"
    real_sell = hub.pipeline.sell
    next_tap: list[KioskScreen] = []

    async def sell_while_the_next_student_taps(purchase):  # type: ignore[no-untyped-def]
        sale = asyncio.ensure_future(real_sell(purchase))
        next_tap.append(await tap(hub, "UID:04D4E5F6"))  # replaces the open menu
        return await sale

    monkeypatch.setattr(hub.pipeline, "sell", sell_while_the_next_student_taps)
    sold = await hub.purchase("canteen-1", str(pay["tap_id"]), ["soup"])
    assert sold["screen"] == "served" and sold["receipt"]
    assert next_tap and next_tap[0]["screen"] == "pay"
    debits = (await hub.store.money_rows())["debits"]
    assert len(debits) == 1  # recorded once
