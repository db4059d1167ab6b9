"""Money across the network gap, with the real edge store and the server's own ingest path:
top-ups published while the school is offline, paid meals journaled at the school meanwhile,
then the school reconnects (applies the credits, acknowledges, uploads its events) and the
server's ledger equals the sum of top-ups and debits, to the tiyn, and equals the school's
balances. Also: a meal poster killed mid-run and rerun books nothing twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge.core.model import Purchase
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from protocol import topics
from protocol.messages import (
    ConsentKind,
    ConsentRecord,
    EventBatch,
    MealServedEvent,
    PolicyDoc,
    StudentRecord,
    SyncDelta,
    SyncSnapshot,
)
from protocol.signing import sign_batch
from server.canteen import service
from server.canteen.models import LedgerEntry, Posting
from server.db import make_engine
from server.ingest.core import IngestStore
from server.models import ChangeLogEntry, Device, School
from server.settings import ServerSettings
from server.sync.changelog import load_changes
from simulators.payment_provider import PaymentProviderSimulator
from tests.support.canteen import add_device, add_meal
from tests.support.console import World
from tests.support.sync import enrolled_device

ROOT = Path(__file__).resolve().parents[3]
PAYING = ("s1-7b-1", "s1-7b-2")


def deltas_since(db: Session, school: str, applied: int) -> list[SyncDelta]:
    db.expire_all()
    rows = db.execute(
        select(ChangeLogEntry.version, ChangeLogEntry.changes)
        .where(ChangeLogEntry.school_id == school, ChangeLogEntry.version > applied)
        .order_by(ChangeLogEntry.version)
    ).all()
    return [
        SyncDelta(school=school, version=v, base_version=v - 1, changes=load_changes([c]))
        for v, c in rows
    ]


class SchoolEdge:
    """The S1 edge: its real store, a pipeline selling at the canteen, and its link to the
    server (downlink deltas + ack, uplink events through the server's ingest code)."""

    def __init__(self, store: EdgeStore, db: Session, settings: ServerSettings, key: Any) -> None:
        self.store, self.db, self.settings, self.key = store, db, settings, key
        self.uploaded = 0
        self.ingest = IngestStore(
            make_engine(settings.database_url), topic_prefix=settings.topic_prefix
        )

    async def sync_down(self) -> None:
        applied = await self.store.sync_version()
        for d in deltas_since(self.db, "S1", applied):
            assert await self.store.apply_delta(d)
        dev = self.db.scalar(
            select(Device).where(Device.school_id == "S1", Device.device_id == "edge-1")
        )
        assert dev is not None
        dev.applied_version = await self.store.sync_version()  # the edge's SyncAck
        self.db.commit()

    async def sync_up(self) -> int:
        events = await self.store.outbox_batch(self.uploaded, 1000)
        if not events:
            return 0
        batch = EventBatch(school="S1", device="edge-1", sent_at_ms=1, events=events)
        out = self.ingest.ingest(
            [
                (
                    topics.events("S1", "edge-1", self.settings.topic_prefix),
                    sign_batch(batch, self.key),
                )
            ]
        )
        assert out.rejections == [], out.rejections
        self.uploaded = events[-1].seq
        await self.store.outbox_ack(self.uploaded)
        return out.events_inserted

    async def sell(self, sid: str, *items: str) -> MealServedEvent | None:
        async with Pipeline(self.store) as p:
            sold = await p.sell(
                Purchase(
                    at=dt.datetime.now(dt.UTC), terminal="canteen-1", student_id=sid, items=items
                )
            )
        return sold.event if sold.decision.granted else None  # type: ignore[return-value]


def midday_zone() -> str:
    """A fixed-offset zone where it is about noon now, so that "today" is one date for the
    server and the school during the test, whatever the hour of the run."""
    offset = 12 - dt.datetime.now(dt.UTC).hour  # -11 .. +12 hours
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def policy(zone: str) -> PolicyDoc:
    return PolicyDoc.model_validate(
        {
            "timezone": zone,
            "free_meal_grades": [1, 2, 3, 4],
            "shift": [{"number": 1, "entry_from": "00:00", "entry_to": "23:59"}],
            "meal_period": [{"name": "lunch", "shifts": [1], "from": "00:00", "to": "23:59"}],
        },
        strict=False,
    )


def roster() -> list[StudentRecord]:
    consent = ConsentRecord(
        kind=ConsentKind.DATA, granted=True, given_by="parent", at_ms=0, document="d"
    )
    return [
        StudentRecord(
            id=sid, grade=7, class_name="7B", shift=1, display_name=sid, consents=[consent]
        )
        for sid in PAYING
    ]


def test_offline_then_reconcile(
    tmp_path: Path,
    world: World,
    db: Session,
    settings: ServerSettings,
    cs: Any,
    provider: PaymentProviderSimulator,
    make_browser: Any,
) -> None:
    asyncio.run(_offline_then_reconcile(tmp_path, world, db, settings, cs, provider, make_browser))


async def _offline_then_reconcile(
    tmp_path: Path,
    world: World,
    db: Session,
    settings: ServerSettings,
    cs: Any,
    provider: PaymentProviderSimulator,
    make_browser: Any,
) -> None:
    zone = midday_zone()
    s1 = db.get(School, "S1")
    assert s1 is not None
    s1.timezone = zone
    db.commit()
    key, _, _ = enrolled_device(db, settings, "S1", "edge-1")
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="edge-1")
    await store.apply_snapshot(
        SyncSnapshot(
            school="S1", version=0, policy=policy(zone), students=roster(), staff=[], cards=[]
        )
    )
    school = SchoolEdge(store, db, settings, key)
    try:
        manager = make_browser("canteen1")
        today = service.local_date(service.now_ms(), service.zone_of(db, "S1")).isoformat()
        r = manager.post(
            "/canteen/menu",
            {"school": "S1", "date": today, "menu": "soup; Сорпа; 300\ntea; Шай; 50"},
        )
        assert r.status_code == 303
        topups = {sid: 0 for sid in PAYING}

        def pay(sid: str, amount: int) -> None:
            assert provider.pay(sid, amount).status_code == 200
            topups[sid] += amount

        # online: top-ups reach the school, it sells, events come back
        pay("s1-7b-1", 100_000)
        pay("s1-7b-2", 40_000)
        await school.sync_down()
        assert store.state.balance("s1-7b-1") == 100_000
        assert await school.sell("s1-7b-1", "soup", "tea") is not None
        assert await school.sell("s1-7b-2", "soup") is not None
        await school.sync_up()
        assert service.post_meals(db, cs) == 2
        db.commit()

        # offline: two top-ups published, the school keeps selling from what it has
        pay("s1-7b-2", 50_000)
        pay("s1-7b-1", 20_000)
        offline_sales = [
            await school.sell("s1-7b-2", "tea"),  # 10 000 - 5 000
            await school.sell(
                "s1-7b-2", "soup"
            ),  # refused: 5 000 < 30 000 (the top-up has not arrived)
            await school.sell("s1-7b-1", "soup", "soup"),
        ]
        assert (
            offline_sales[1] is None
            and offline_sales[0] is not None
            and offline_sales[2] is not None
        )
        rows = {r.student_ref: r for r in service.reconciliation(db, "S1")}
        assert {d.code: d.amount_tiyn for d in rows["s1-7b-2"].recon.differences} == {
            "unacked": 50_000
        }
        assert all(r.recon.agrees for r in rows.values())

        # reconnect: credits applied and acknowledged, events uploaded and posted
        await school.sync_down()
        assert await school.sync_up() == 3  # two sales and the refusal
        assert service.post_meals(db, cs) == 2
        db.commit()
        assert service.post_meals(db, cs) == 0

        debits: dict[str, int] = {sid: 0 for sid in PAYING}
        for ev in await store.journal_rows():
            if isinstance(ev, MealServedEvent) and ev.meal == "paid":
                debits[ev.student_id] += ev.amount_tiyn
        db.expire_all()
        for sid in PAYING:
            pk = world.students[sid]
            expected = topups[sid] - debits[sid]
            assert service.balance(db, pk) == expected == store.state.balance(sid), sid
        assert topups == {"s1-7b-1": 120_000, "s1-7b-2": 90_000}
        assert debits == {"s1-7b-1": 95_000, "s1-7b-2": 35_000}
        assert db.scalar(select(func.sum(Posting.amount_tiyn))) == 0
        rows = {r.student_ref: r for r in service.reconciliation(db, "S1")}
        assert all(r.recon.agrees for r in rows.values())
        # s1-7b-1's last sale came before its 20 000 top-up was applied: explained, not lost
        assert {d.code: d.amount_tiyn for d in rows["s1-7b-1"].recon.differences} == {
            "after_sale": 20_000
        }
        page = manager.get("/canteen/reconcile?school=S1")
        assert page.status_code == 200 and 'class="badge ok" id="unexplained"' in page.text
    finally:
        await store.close()


def test_poster_killed_and_rerun_books_nothing_twice(
    world: World, db: Session, settings: ServerSettings, cs: Any
) -> None:
    dev = add_device(db, "S1")
    for seq in range(1, 11):
        add_meal(db, dev, seq, PAYING[seq % 2], 1_000 * seq, 0)
    db.commit()
    cmd = [sys.executable, "-m", "server.canteen.poster", "--database-url", settings.database_url]
    env = {
        **os.environ,
        "QAQPA_CANTEEN_POST_BATCH": "3",
        "QAQPA_CANTEEN_FAULT_KILL_BEFORE_COMMIT": "2",
    }
    killed = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(LedgerEntry)) == 3  # the first batch only
    env.pop("QAQPA_CANTEEN_FAULT_KILL_BEFORE_COMMIT")
    for _ in range(2):  # rerun, and once more: nothing new the second time
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
    db.expire_all()
    entries = list(db.scalars(select(LedgerEntry).order_by(LedgerEntry.seq)))
    assert [(e.device_pk, e.seq) for e in entries] == [(dev.pk, s) for s in range(1, 11)]
    assert sum(e.amount_tiyn for e in entries) == sum(1_000 * s for s in range(1, 11))
    for sid in PAYING:
        paid = sum(1_000 * s for s in range(1, 11) if PAYING[s % 2] == sid)
        assert service.balance(db, world.students[sid]) == -paid
    assert db.scalar(select(func.sum(Posting.amount_tiyn))) == 0


def test_poster_service_posts_what_arrives(
    world: World, db: Session, settings: ServerSettings, cs: Any
) -> None:
    from server.canteen.poster import MealPosterService
    from tests.support.wait import wait_until

    dev = add_device(db, "S1")
    add_meal(db, dev, 1, PAYING[0], 1_000, 0)
    db.commit()
    with MealPosterService(settings.database_url, cs, poll_s=0.05) as poster:
        assert wait_until(lambda: poster.posted == 1, 30)
        add_meal(db, dev, 2, PAYING[0], 2_000, 0)
        db.commit()
        assert wait_until(lambda: poster.posted == 2, 30)
    db.expire_all()
    assert service.balance(db, world.students[PAYING[0]]) == -3_000


def test_a_snapshot_carries_every_credit_and_the_limits(
    tmp_path: Path,
    world: World,
    db: Session,
    settings: ServerSettings,
    cs: Any,
    provider: PaymentProviderSimulator,
    make_browser: Any,
) -> None:
    """An edge too far behind gets a snapshot instead of the deltas: it must not lose a credit
    of the deltas it skips, nor apply one twice when it had some of them already."""
    asyncio.run(_snapshot(tmp_path, world, db, provider, make_browser))


async def _snapshot(
    tmp_path: Path, world: World, db: Session, provider: PaymentProviderSimulator, make_browser: Any
) -> None:
    from server.sync.changelog import load_state

    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="edge-1")
    try:
        await store.apply_snapshot(
            SyncSnapshot(
                school="S1",
                version=0,
                policy=policy("Asia/Almaty"),
                students=roster(),
                staff=[],
                cards=[],
            )
        )
        assert provider.pay("s1-7b-1", 10_000).status_code == 200
        for d in deltas_since(db, "S1", 0):  # the edge has the first credit already
            await store.apply_delta(d)
        assert provider.pay("s1-7b-1", 20_000).status_code == 200
        assert provider.pay("s1-7b-2", 30_000).status_code == 200
        parent = make_browser("canteen1")
        r = parent.post(
            f"/canteen/student/{world.students['s1-7b-2']}/limits",
            {"allergens": "milk", "cap": "500"},
        )
        assert r.status_code == 303
        db.expire_all()
        head = db.get(School, "S1").sync_version  # type: ignore[union-attr]
        snap = load_state(db, "S1").snapshot("S1", head)
        await store.apply_snapshot(
            snap.model_copy(update={"policy": policy("Asia/Almaty"), "students": roster()})
        )
        for sid in PAYING:
            assert store.state.balance(sid) == service.balance(db, world.students[sid])
        assert store.state.balance("s1-7b-1") == 30_000 and store.state.balance("s1-7b-2") == 30_000
        assert store.state.limits("s1-7b-2").daily_cap_tiyn == 50_000
    finally:
        await store.close()
