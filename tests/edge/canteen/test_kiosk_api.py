"""The kiosk served from the edge's own loop: sign-in, screens pushed over SSE after the commit,
menu -> confirm -> debit -> receipt, refusals shown with the menu again."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.core.model import Tap
from edge.kiosk.hub import KioskHub
from edge.kiosk.server import KioskServer
from edge.kiosk.sse import ScreenStream, sign_in
from edge.pipeline import Pipeline
from protocol.messages import TerminalKind
from tests.support.canteen_school import money_invariants, open_school

TOKEN = "kiosk-test-7f3a"


@pytest.fixture
async def kiosk(tmp_path: Path) -> AsyncIterator[tuple[KioskHub, KioskServer]]:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        async with Pipeline(store) as pipeline:
            hub = KioskHub(store, pipeline, ["canteen-1", "canteen-2"])
            async with KioskServer(hub, "127.0.0.1", 0, TOKEN) as server:
                yield hub, server
    finally:
        await store.close()


async def tap(hub: KioskHub, credential: str, terminal: str = "canteen-1") -> dict[str, Any]:
    at = dt.datetime.now(dt.UTC)
    outcome = await hub.pipeline.submit(
        Tap(at=at, terminal=terminal, kind=TerminalKind.CANTEEN, credential=credential)
    )
    return hub.show_tap(outcome)


async def test_sign_in_is_required(kiosk: tuple[KioskHub, KioskServer]) -> None:
    _, server = kiosk
    async with httpx.AsyncClient(base_url=server.url) as c:
        assert (await c.get("/")).status_code == 401
        assert (await c.get("/api/screen", params={"terminal": "canteen-1"})).status_code == 401
        r = await c.post(
            "/api/purchase", json={"terminal": "canteen-1", "tap_id": "x", "items": ["soup"]}
        )
        assert r.status_code == 401
        await sign_in(c, TOKEN)
        page = await c.get("/")
        assert page.status_code == 200 and "canteen-1" in page.text
        assert (await c.get("/api/screen", params={"terminal": "nope"})).status_code == 404


async def test_screens_follow_taps_and_a_sale_debits_with_a_receipt(
    kiosk: tuple[KioskHub, KioskServer],
) -> None:
    hub, server = kiosk
    async with httpx.AsyncClient(base_url=server.url) as signed_in:
        login = await sign_in(signed_in, TOKEN)
    async with ScreenStream("127.0.0.1", server.port, "canteen-1", login.cookie) as stream:
        assert (await stream.next())["screen"] == "idle"
        await tap(hub, "UID:04A1B2C3")
        free = await stream.next()
        assert (free["screen"], free["colour"]) == ("free_meal", "green")
        assert free["student"] == {
            "name": "Айгерім Сейітова",
            "class": "2A",
            "photo": None,  # photos are not stored
            "initials": "АС",  # stand in for the photo, for everyone
        }
        assert re.fullmatch(r"\d\d:\d\d", free["at"])  # when it happened, beside the result
        assert free["headline"]["kk"] == "ТЕГІН ТАМАҚ"
        await tap(hub, "UID:04A1B2C3", terminal="canteen-2")
        await tap(hub, "UID:04A1B2C3")
        again = await stream.next()
        assert again["screen"] == "already_served"
        assert again["served_before"]["terminal"] == "canteen-1"
        assert again["message"]["ru"] == "В этот период питание уже выдано"
        await tap(hub, "UID:04DEAD00")
        assert (await stream.next())["screen"] == "blocked_card"
        await tap(hub, "UID:0411AA22")
        poor = await stream.next()
        assert (poor["screen"], poor["balance_tiyn"]) == ("insufficient_balance", 3_000)
        await tap(hub, "UID:04D4E5F6")
        pay = await stream.next()
        assert pay["screen"] == "pay" and pay["student"]["photo"] is None
        assert pay["hold_s"] > again["hold_s"]  # a menu waits longer than a result
        assert [d["id"] for d in pay["offer"]["dishes"]] == ["soup", "porridge", "bun", "tea"]
        async with httpx.AsyncClient(base_url=server.url) as c:
            await sign_in(c, TOKEN)
            r = await c.post(
                "/api/purchase",
                json={"terminal": "canteen-2", "tap_id": pay["tap_id"], "items": ["soup"]},
            )
            assert r.status_code == 409  # another terminal's tap
            r = await c.post(
                "/api/purchase",
                json={"terminal": "canteen-1", "tap_id": pay["tap_id"], "items": ["soup", "tea"]},
            )
            assert r.status_code == 200
            served = await stream.next()
            assert served == r.json()
            assert (served["screen"], served["colour"]) == ("served", "green")
            assert served["receipt"]["amount_tiyn"] == 35_000
            assert served["receipt"]["balance_after_tiyn"] == 65_000
            r = await c.post(
                "/api/purchase",
                json={"terminal": "canteen-1", "tap_id": pay["tap_id"], "items": ["soup"]},
            )
            assert r.status_code == 409  # paid already: the same tap never pays twice
            # a parent's allergen block: the menu again, with the reason
            await tap(hub, "UID:0433BB44")
            allergic = await stream.next()
            porridge = next(d for d in allergic["offer"]["dishes"] if d["id"] == "porridge")
            assert porridge["blocked_allergens"] == ["milk"] and not porridge["allowed"]
            r = await c.post(
                "/api/purchase",
                json={"terminal": "canteen-1", "tap_id": allergic["tap_id"], "items": ["porridge"]},
            )
            refused = r.json()
            assert refused["screen"] == "pay" and refused["error"]["reason"] == "allergen_blocked"
            assert (await stream.next())["error"]["reason"] == "allergen_blocked"
    assert await money_invariants(hub.store) == {"debits": 1, "debited_tiyn": 35_000}


async def test_two_kiosk_terminals_confirm_one_balance_at_once(
    kiosk: tuple[KioskHub, KioskServer],
) -> None:
    """The same student at canteen-1 and canteen-2, both confirmed over HTTP at the same
    moment for more than half the balance each: one sale, one refusal, never both."""
    hub, server = kiosk
    first = await tap(hub, "UID:04D4E5F6", "canteen-1")
    second = await tap(hub, "UID:04D4E5F6", "canteen-2")
    assert first["screen"] == second["screen"] == "pay"
    async with httpx.AsyncClient(base_url=server.url) as c:
        await sign_in(c, TOKEN)
        results = await asyncio.gather(
            *(
                c.post(
                    "/api/purchase",
                    json={"terminal": s["terminal"], "tap_id": s["tap_id"], "items": ["soup"] * 2},
                )
                for s in (first, second)
            )
        )
    screens = sorted(r.json()["screen"] for r in results)
    assert screens == ["pay", "served"]  # the refused one shows the menu again, with the reason
    refused = next(r.json() for r in results if r.json()["screen"] == "pay")
    assert refused["error"]["reason"] == "insufficient_balance"
    assert refused["balance_tiyn"] == 40_000
    assert await money_invariants(hub.store) == {"debits": 1, "debited_tiyn": 60_000}
