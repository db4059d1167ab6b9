"""One balance on every screen, through real Mosquitto and PostgreSQL: a top-up, today's menu
and a parent's limits are entered at the server -> signed downlink -> the school's edge sells a
paid lunch by card tap -> uplink -> the meal is posted to the ledger. Then the edge store, the
kiosk's PAY screen, the console's student page and list and the parent's page show the same
balance, with the time of the school's last sync, and the reconciliation has nothing
unexplained (issue 14: "Canteen numbers disagree")."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from edge.core.model import Purchase, Tap
from edge.kiosk.hub import KioskHub
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from edge.sync import EdgeSync
from protocol.messages import (
    CardBinding,
    ConsentKind,
    ConsentRecord,
    MealKind,
    OwnerKind,
    PolicyDoc,
    Reason,
    StudentRecord,
    SyncSnapshot,
    TerminalKind,
)
from server.accounts.access import Principal
from server.canteen import service as canteen
from server.canteen.ledger import MenuLine
from server.canteen.settings import CanteenSettings
from server.console.web import _datetime, _money
from server.db import make_engine
from server.ingest import IngestWorker
from server.models import School
from server.people.models import Student
from server.settings import ServerSettings
from server.sync import DownlinkService
from simulators.edge_school import midday_zone
from tests.support.console import Browser, World
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import enrolled_device, sync_settings

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

CHILD = "s1-3a-1"  # parent1's child in the console's test world
CARD = "UID:04ABCDEF"
BALANCE_RE = re.compile(r'<strong id="balance">([^<]*)</strong>')
SYNCED_RE = re.compile(r'<p class="muted" id="synced">.*?</p>', re.S)


async def until(pred: Callable[[], bool], within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


def school_roster(zone: str) -> SyncSnapshot:
    """What the school imported itself: the child (paying: no free meals), the card."""
    consent = ConsentRecord(
        kind=ConsentKind.DATA, granted=True, given_by="p", at_ms=0, document="d"
    )
    policy = PolicyDoc.model_validate(
        {
            "timezone": zone,
            "free_meal_grades": [],
            "shift": [{"number": 1, "entry_from": "00:00", "entry_to": "23:59"}],
            "meal_period": [{"name": "lunch", "shifts": [1], "from": "00:00", "to": "23:59"}],
        },
        strict=False,
    )
    return SyncSnapshot(
        school="S1",
        version=0,
        policy=policy,
        students=[StudentRecord(id=CHILD, grade=3, class_name="3A", shift=1, consents=[consent])],
        staff=[],
        cards=[CardBinding(credential=CARD, owner_kind=OwnerKind.STUDENT, owner_id=CHILD)],
    )


def test_one_balance_on_every_screen(
    tmp_path: Path,
    world: World,
    db: Session,
    settings: ServerSettings,
    make_settings: Callable[..., ServerSettings],
    make_browser: Callable[..., Browser],
) -> None:
    asyncio.run(_run(tmp_path, world, db, make_settings(settings.database_url), make_browser))


async def _run(
    tmp_path: Path,
    world: World,
    db: Session,
    srv: ServerSettings,
    make_browser: Callable[..., Browser],
) -> None:
    zone = midday_zone()
    row = db.get(School, "S1")
    assert row is not None
    row.timezone = zone
    db.commit()
    today = canteen.local_date(canteen.now_ms(), canteen.zone_of(db, "S1"))
    key, _, _ = enrolled_device(db, srv, "S1", "edge-1")
    st = db.get(Student, world.students[CHILD])
    assert st is not None
    who = Principal(world.users["canteen1"], "canteen1", "Canteen Manager", "en", "x", [])

    # the centre: 15,000 tenge paid in, today's menu, the parent's limits (milk, 800 tenge)
    canteen.book_cash_topup(db, who, st, 1_500_000, "e2e-1")
    again = canteen.book_cash_topup(db, who, st, 1_500_000, "e2e-1")
    assert again.duplicate  # booked once
    canteen.set_menu(
        db,
        who,
        "S1",
        today,
        [
            MenuLine("plov", "Палау", 65_000, ()),
            MenuLine("botqa", "Сүт ботқасы", 30_000, ("milk",)),
        ],
    )
    canteen.set_limits(db, who, st, ["milk"], 80_000)
    db.commit()
    assert canteen.school_synced_ms(db, "S1") is None  # the school has not synced yet

    engine = make_engine(srv.database_url)
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="edge-1")
    await store.apply_snapshot(school_roster(zone))
    try:
        with DownlinkService(srv, engine), IngestWorker(srv, engine):
            edge_settings = sync_settings(srv.topic_prefix, SYSTEM_BROKER[1])
            async with EdgeSync(store, edge_settings, key) as sync, Pipeline(store) as p:
                head = db.get(School, "S1")
                assert head is not None
                assert await until(lambda: sync.applied_version == head.sync_version)
                # money, menu and limits reached the school by the downlink
                assert store.state.balance(CHILD) == 1_500_000
                assert [d.id for d in store.state.menu(today)] == ["plov", "botqa"]
                assert store.state.limits(CHILD).daily_cap_tiyn == 80_000
                assert store.state.limits(CHILD).allergen_blocks == {"milk"}

                hub = KioskHub(store, p, ["canteen-1"])
                now = dt.datetime.now(dt.UTC)
                tap = Tap(at=now, terminal="canteen-1", kind=TerminalKind.CANTEEN, credential=CARD)
                tapped = await p.submit(tap)
                assert tapped.decision.reason is Reason.PAY
                hub.show_tap(tapped)
                assert hub.current("canteen-1")["balance_tiyn"] == 1_500_000
                # a plov (65,000 tiyn, within the parent's daily cap of 80,000) is sold
                sold = await p.sell(Purchase(now, "canteen-1", CHILD, ("plov",)))
                assert sold.decision.meal is MealKind.PAID
                assert sold.decision.balance_after_tiyn == 1_435_000
                last = store.last_seq
                assert await until(lambda: sync._window.acked == last, 30)
                # the next tap's PAY screen: the balance after the sale
                hub.show_tap(await p.submit(tap))
                kiosk_pay = hub.current("canteen-1")["balance_tiyn"]
                at_school = store.state.balance(CHILD)
    finally:
        await store.close()
        engine.dispose()

    # the centre posts the synced meal to the ledger
    while canteen.post_meals(db, CanteenSettings()):
        db.commit()
    db.expire_all()
    at_server = canteen.balance(db, st.pk)
    assert at_school == kiosk_pay == at_server == 1_435_000

    console = make_browser("canteen1")
    page = console.get(f"/canteen/student/{st.pk}")
    assert page.status_code == 200
    (console_balance,) = BALANCE_RE.findall(page.text)
    assert console_balance == _money(1_435_000)
    synced = canteen.school_synced_ms(db, "S1")
    assert synced is not None
    # next to the balance: the time of the school's last sync (its last downlink ack)
    when = f"<time>{_datetime(synced)}</time>"
    assert when in SYNCED_RE.search(page.text).group(0)  # type: ignore[union-attr]
    listing = console.get("/canteen?school=S1")
    assert listing.status_code == 200 and _money(1_435_000) in listing.text
    assert when in SYNCED_RE.search(listing.text).group(0)  # type: ignore[union-attr]

    parent = make_browser("parent1")
    home = parent.get("/canteen/parent")
    assert home.status_code == 200
    assert _money(1_435_000) in home.text
    assert when in home.text  # the time of the school's last sync next to the balance
    child = parent.get(f"/parent/child/{st.pk}")
    assert child.status_code == 200
    (parent_balance,) = BALANCE_RE.findall(child.text)
    assert parent_balance == console_balance
    assert f"<time>{_datetime(synced, zone)}</time>" in SYNCED_RE.search(child.text).group(0)  # type: ignore[union-attr]

    # and the reconciliation has nothing unexplained
    (recon,) = [r for r in canteen.reconciliation(db, "S1") if r.student_ref == CHILD]
    assert recon.recon.agrees and recon.recon.unexplained_tiyn == 0, recon.recon
    print(
        f"balances: edge {at_school}, kiosk PAY {kiosk_pay}, ledger {at_server}, "
        f"console {console_balance!r}, parent {parent_balance!r}"
    )
