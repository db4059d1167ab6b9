"""Vouchers end to end through real Mosquitto and PostgreSQL: the social wallet issues a card
voucher at the centre -> signed downlink -> the school's edge sells by card tap, offline-capable,
voucher first then balance -> uplink -> the centre's settlement matches the meals served; a
manager's negative correction reaches the school as a debit; a QR voucher signed with the
issuer's key pays once at the school, and the same QR redeemed at a second school is flagged."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from edge.core.model import Purchase, Tap
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from edge.sync import EdgeSync
from protocol import topics
from protocol.messages import (
    CardBinding,
    ConsentKind,
    ConsentRecord,
    EventBatch,
    MealKind,
    MealServedEvent,
    MenuItem,
    MenuSet,
    OwnerKind,
    PolicyDoc,
    Reason,
    StudentRecord,
    SyncSnapshot,
    TerminalKind,
    VoucherSpend,
)
from protocol.signing import sign_batch
from server.accounts.access import Principal
from server.canteen import service as canteen
from server.canteen.ledger import AccountKind, EntryKind
from server.canteen.settings import CanteenSettings
from server.db import make_engine
from server.ingest import IngestWorker
from server.models import School, StoredEvent
from server.settings import ServerSettings
from server.sync import DownlinkService
from server.sync.changelog import append_changes
from server.vouchers import service as vouchers
from server.vouchers.rules import IssueForm
from simulators.edge_school import midday_zone
from tests.integration.sync.test_uplink import sync_settings
from tests.support.console import World
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import Probe, enrolled_device

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

PAYER = "s1-7b-1"
CARD = "UID:04C0FFEE"


async def until(pred: Callable[[], bool], within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


def local_roster(zone: str) -> SyncSnapshot:
    consent = ConsentRecord(
        kind=ConsentKind.DATA, granted=True, given_by="p", at_ms=0, document="d"
    )
    policy = PolicyDoc.model_validate(
        {
            "timezone": zone,
            "free_meal_grades": [1, 2, 3, 4],
            "shift": [{"number": 1, "entry_from": "00:00", "entry_to": "23:59"}],
            "meal_period": [{"name": "lunch", "shifts": [1], "from": "00:00", "to": "23:59"}],
        },
        strict=False,
    )
    return SyncSnapshot(
        school="S1",
        version=0,
        policy=policy,
        students=[StudentRecord(id=PAYER, grade=7, class_name="7B", shift=1, consents=[consent])],
        staff=[],
        cards=[CardBinding(credential=CARD, owner_kind=OwnerKind.STUDENT, owner_id=PAYER)],
    )


def manager(world: World) -> Principal:
    return Principal(
        user_pk=world.users["canteen1"],
        login="canteen1",
        full_name="Canteen Manager",
        lang="en",
        csrf_token="x",
        grants=[],
    )


def test_voucher_by_card_and_by_qr_end_to_end(
    tmp_path: Path,
    world: World,
    db: Session,
    settings: ServerSettings,
    make_settings: Callable[..., ServerSettings],
) -> None:
    asyncio.run(_end_to_end(tmp_path, world, db, make_settings(settings.database_url)))


async def _end_to_end(tmp_path: Path, world: World, db: Session, srv: ServerSettings) -> None:
    zone = midday_zone()
    for school in ("S1", "S2"):
        row = db.get(School, school)
        assert row is not None
        row.timezone = zone
    db.commit()
    today = canteen.local_date(canteen.now_ms(), canteen.zone_of(db, "S1"))
    key, _, _ = enrolled_device(db, srv, "S1", "edge-1")
    key2, _, _ = enrolled_device(db, srv, "S2", "edge-2")
    issuer_key_file = tmp_path / "wallet.pem"
    wallet_key = vouchers.new_issuer_key(issuer_key_file)
    assert issuer_key_file.stat().st_mode & 0o077 == 0  # the issuer's key: owner only

    # the centre: the issuer's public key, a card voucher, today's menu, a top-up (credit)
    vouchers.add_issuer(db, "social-wallet", "Social wallet", vouchers.public_b64(wallet_key))
    card_voucher = vouchers.issue(
        db,
        issuer_id="social-wallet",
        school_id="S1",
        student_ref=PAYER,
        form=IssueForm(40_000, today - dt.timedelta(days=1), today + dt.timedelta(days=30)),
        today=today,
    )
    append_changes(
        db,
        "S1",
        [
            MenuSet(
                local_date=today.isoformat(),
                items=[
                    MenuItem(id="soup", name="Сорпа", price_tiyn=30_000),
                    MenuItem(id="tea", name="Шай", price_tiyn=5_000),
                ],
            )
        ],
    )
    student = world.students[PAYER]
    from server.people.models import Student

    st = db.get(Student, student)
    assert st is not None
    cs = CanteenSettings()
    canteen.book_manual(db, cs, manager(world), st, EntryKind.CORRECTION, 50_000, "opening")
    db.commit()

    engine = make_engine(srv.database_url)
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="edge-1")
    await store.apply_snapshot(local_roster(zone))
    try:
        with DownlinkService(srv, engine), IngestWorker(srv, engine):
            edge_settings = sync_settings(srv.topic_prefix, SYSTEM_BROKER[1])
            async with EdgeSync(store, edge_settings, key) as sync, Pipeline(store) as p:
                head = db.get(School, "S1")
                assert head is not None
                assert await until(lambda: sync.applied_version == head.sync_version)
                assert store.state.balance(PAYER) == 50_000
                assert [v.id for v in store.state.vouchers(PAYER)] == [card_voucher.id]

                # the card tap at the canteen: PAY (not a refusal), then two lunches sold
                now = dt.datetime.now(dt.UTC)
                tapped = await p.submit(
                    Tap(at=now, terminal="canteen-1", kind=TerminalKind.CANTEEN, credential=CARD)
                )
                assert tapped.decision.reason is Reason.PAY
                first = await p.sell(Purchase(now, "canteen-1", PAYER, ("soup",)))
                second = await p.sell(Purchase(now, "canteen-1", PAYER, ("soup",)))
                assert first.decision.meal is MealKind.VOUCHER
                assert first.decision.vouchers == ((card_voucher.id, 30_000),)
                assert second.decision.vouchers == ((card_voucher.id, 10_000),)
                assert second.decision.balance_after_tiyn == 30_000

                # a manager's negative correction reaches the school, once
                canteen.book_manual(
                    db, cs, manager(world), st, EntryKind.CORRECTION, -5_000, "wrong top-up"
                )
                db.commit()
                assert await until(lambda: store.state.balance(PAYER) == 25_000)

                # a QR voucher from the issuer pays a tea once; the same QR again is refused
                qr_voucher, text = vouchers.mint_qr(
                    db,
                    vouchers.load_issuer_key(issuer_key_file),
                    issuer_id="social-wallet",
                    school_id="S1",
                    student_ref=PAYER,
                    form=IssueForm(8_000, today, today),
                    today=today,
                )
                db.commit()
                assert "<svg" in vouchers.qr_svg(text)
                tea = await p.sell(Purchase(now, "canteen-1", PAYER, ("tea",), qr_token=text))
                again = await p.sell(Purchase(now, "canteen-1", PAYER, ("tea",), qr_token=text))
                assert tea.decision.vouchers == ((qr_voucher.id, 5_000),)
                assert again.decision.reason is Reason.VOUCHER_USED
                last = store.last_seq
                assert await until(lambda: sync._window.acked == last, 30)

            # the same QR shown at another school (a copy of the code): its edge reports it
            stolen = MealServedEvent(
                seq=1,
                at_ms=int(time.time() * 1000),
                terminal="canteen-9",
                student_id=PAYER,
                period="lunch",
                local_date=today.isoformat(),
                meal=MealKind.VOUCHER,
                amount_tiyn=5_000,
                items=["tea"],
                vouchers=[VoucherSpend(voucher_id=qr_voucher.id, amount_tiyn=5_000)],
                qr_token=qr_voucher.id,
            )
            batch = EventBatch(
                school="S2", device="edge-2", sent_at_ms=stolen.at_ms, events=[stolen]
            )
            probe = Probe(SYSTEM_BROKER[1])
            try:
                probe.publish(
                    topics.events("S2", "edge-2", srv.topic_prefix), sign_batch(batch, key2)
                )

                def stored() -> int:
                    db.expire_all()
                    return len(
                        db.scalars(
                            select(StoredEvent.seq).where(StoredEvent.kind == "meal_served")
                        ).all()
                    )

                assert await until(lambda: stored() == 4)
            finally:
                probe.close()
    finally:
        await store.close()
        engine.dispose()

    # the centre: meals posted to the ledger, the settlement matches the meals served
    while canteen.post_meals(db, cs):
        db.commit()
    result, meals = vouchers.settlement(db, "S1")
    db.commit()
    by_id = {v.voucher_id: v for v in result.lines}
    assert by_id[card_voucher.id].spent_tiyn == 40_000
    assert by_id[card_voucher.id].remaining_tiyn == 0 and by_id[card_voucher.id].meals == 2
    # the QR voucher: redeemed at S1 (5,000 of its 8,000) and its copy at S2 (5,000)
    assert by_id[qr_voucher.id].spent_tiyn == 10_000 and by_id[qr_voucher.id].meals == 2
    assert result.issued_tiyn == 48_000
    assert result.meals_tiyn == 45_000  # the voucher parts of the meals S1 served
    # flagged: redeemed twice, at two schools, beyond its amount; the settlement does not match
    assert not result.matches
    assert f"QR voucher {qr_voucher.id} redeemed 2 times (schools S1, S2)" in result.problems
    assert f"voucher {qr_voucher.id} spent 10000 of 8000 tiyn" in result.problems
    assert vouchers.redeemed_twice(db) == [(qr_voucher.id, ["S1", "S2"])]
    assert [(m.period, m.meals, m.voucher_tiyn) for m in meals] == [("lunch", 3, 45_000)]
    # the ledger agrees with the school: balance 50,000 - 20,000 (soup) - 5,000 (debit)
    assert canteen.balance(db, st.pk) == 25_000
    # vouchers: 48,000 funded - 40,000 (card) - 5,000 (QR at S1); the S2 copy is not this
    # child's at S2: it waits in suspense for the operator, never lost
    assert canteen.balance(db, st.pk, AccountKind.STUDENT_VOUCHER) == 3_000
    # and the reconciliation explains every difference with the school's last balance
    (row,) = [r for r in canteen.reconciliation(db, "S1") if r.student_ref == PAYER]
    assert row.recon.agrees and row.recon.unexplained_tiyn == 0, row.recon
