"""The kiosk's typed screens on the wire: each kind of screen goes out with the keys, key order
and plain JSON values the page (kiosk.html) has always received; enums serialise as their value."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.encoders import jsonable_encoder

from edge.core.model import Purchase, Tap
from edge.kiosk.hub import RESULT_HOLD_S, KioskHub
from edge.kiosk.screens import KioskScreen
from edge.pipeline import Pipeline
from protocol.messages import TerminalKind
from tests.support.canteen_school import open_school

BASE = [
    "id",
    "terminal",
    "screen",
    "colour",
    "headline",
    "reason",
    "message",
    "t_ms",
    "at",
    "hold_s",
]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[KioskHub]:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        async with Pipeline(store) as pipeline:
            yield KioskHub(store, pipeline, ["canteen-1", "canteen-2"])
    finally:
        await store.close()


def on_the_wire(screen: KioskScreen) -> str:
    """As the SSE stream sends it; the HTTP routes' encoder must give the same bytes."""
    sent = json.dumps(screen, ensure_ascii=False, separators=(",", ":"))
    assert json.dumps(jsonable_encoder(screen), ensure_ascii=False, separators=(",", ":")) == sent
    return sent


async def tap(hub: KioskHub, credential: str, terminal: str = "canteen-1") -> KioskScreen:
    at = dt.datetime.now(dt.UTC)
    outcome = await hub.pipeline.submit(
        Tap(at=at, terminal=terminal, kind=TerminalKind.CANTEEN, credential=credential)
    )
    return hub.show_tap(outcome)


async def test_screens_keep_their_keys_in_order(hub: KioskHub) -> None:
    idle = on_the_wire(hub.current("canteen-1"))
    assert idle == '{"id":0,"terminal":"canteen-1","screen":"idle","colour":"grey"}'

    free = json.loads(on_the_wire(await tap(hub, "UID:04A1B2C3")))
    assert list(free) == [*BASE, "seq", "student", "meal_period"]
    assert (free["screen"], free["colour"], free["reason"]) == ("free_meal", "green", "ok")
    assert list(free["student"]) == ["name", "class", "photo", "initials"]

    again = json.loads(on_the_wire(await tap(hub, "UID:04A1B2C3", "canteen-2")))
    assert list(again) == [*BASE, "seq", "student", "meal_period", "served_before"]
    assert list(again["served_before"]) == ["at", "terminal"]

    pay = await tap(hub, "UID:04D4E5F6")
    pay_json = json.loads(on_the_wire(pay))
    offer_keys = ["balance_tiyn", "offer", "tap_id"]
    assert list(pay_json) == [*BASE, "seq", "student", "meal_period", *offer_keys]
    assert list(pay_json["offer"]) == [
        "spendable_tiyn",
        "cap_left_tiyn",
        "overdraft_tiyn",
        "dishes",
    ]
    dish_keys = ["id", "name", "price_tiyn", "allergens", "blocked_allergens", "allowed"]
    assert [list(d) for d in pay_json["offer"]["dishes"]] == [dish_keys] * 4

    assert "tap_id" in pay
    sold = json.loads(on_the_wire(await hub.purchase("canteen-1", str(pay["tap_id"]), ["soup"])))
    assert list(sold) == [*BASE, "receipt", "balance_tiyn", "seq", "student", "meal_period"]
    assert list(sold["receipt"]) == [
        "seq",
        "student_id",
        "local_date",
        "period",
        "terminal",
        "at_ms",
        "lines",
        "amount_tiyn",
        "balance_after_tiyn",
    ]

    refused_sale = await hub.pipeline.sell(
        Purchase(
            at=dt.datetime.now(dt.UTC),
            terminal="canteen-2",
            student_id="s-allergy",
            items=("porridge",),
        )
    )
    refused = json.loads(on_the_wire(await hub.show_sale(refused_sale, "tap-1")))
    assert list(refused) == [*BASE, "error", *offer_keys, "seq", "student", "meal_period"]
    assert refused["error"]["reason"] == "allergen_blocked"
    assert list(refused["error"]) == ["reason", "message"]


async def test_an_old_result_is_not_shown_to_a_page_opened_later(hub: KioskHub) -> None:
    """At opening the kiosk showed the morning's ALREADY SERVED: a result goes stale."""
    shown = await tap(hub, "UID:04A1B2C3")
    hub.publish("canteen-1", shown)
    assert hub.current("canteen-1")["screen"] == "free_meal"
    assert hub.subscribe("canteen-1").get_nowait()["screen"] == "free_meal"
    hub._shown_at["canteen-1"] -= RESULT_HOLD_S + 1  # as if shown half a minute ago
    assert hub.current("canteen-1") == {
        "id": 0,
        "terminal": "canteen-1",
        "screen": "idle",
        "colour": "grey",
    }
    assert hub.subscribe("canteen-1").get_nowait()["screen"] == "idle"
