"""The demo's canteen: today's menu, top-ups and limits for a generated school, and the simulated
cashier that confirms a paying student's choice on the kiosk's PAY screen."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from edge.core.model import Tap
from edge.kiosk.hub import KioskHub
from edge.pipeline import Pipeline
from edge.roster import roster_records
from protocol.messages import TerminalKind, VoucherGrant
from qaqpa.demo import MENU, Cashier, canteen_day, canteen_plan
from simulators.school import make_roster
from tests.support.canteen_school import money_invariants, open_school, today
from tests.support.wait import wait_until_async


def test_canteen_plan_covers_every_student() -> None:
    """Money, the menu and the limits are entered at the server (the edge gets them by the
    downlink); the school itself holds only the card vouchers before the day."""
    roster = roster_records(make_roster(40, today=today()), source="t", now=None)
    plan = canteen_plan(roster)
    assert [m.id for m in plan.menu] == [m.id for m in MENU]
    assert {ref for ref, _ in plan.topups} == {s.id for s in roster.students}
    assert {amount for _, amount in plan.topups} == {2_000, 1_500_000}  # a few too small
    assert plan.limits and all(lim.allergens == ("milk",) for lim in plan.limits)
    local = canteen_day(roster, today())
    assert local and all(isinstance(c, VoucherGrant) for c in local)


async def test_the_cashier_sells_what_the_pay_screen_allows(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        async with Pipeline(store) as pipeline:
            hub = KioskHub(store, pipeline, ["canteen-1"])
            cashier = Cashier(hub)
            task = asyncio.create_task(cashier.run("canteen-1"))
            await asyncio.sleep(0)
            tap = Tap(
                at=dt.datetime.now(dt.UTC),
                terminal="canteen-1",
                kind=TerminalKind.CANTEEN,
                credential="UID:04D4E5F6",
            )
            hub.show_tap(await pipeline.submit(tap))
            await wait_until_async(
                lambda: hub.current("canteen-1")["screen"] == "served", 10, interval=0.01
            )
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert cashier.attempts == 1
        receipt = hub.current("canteen-1")["receipt"]
        assert [line["id"] for line in receipt["lines"]] == ["soup", "porridge"]
        assert await money_invariants(store) == {"debits": 1, "debited_tiyn": 65_000}
    finally:
        await store.close()
