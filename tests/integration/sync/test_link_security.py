"""Attacks on the link from the centre to a school, against real Mosquitto and PostgreSQL.

An attacker on the school's network path (or with a stolen broker login) publishes on the edge's
own downlink and ack topics: forged deltas, deltas signed by another key or for another device,
replays of real signed messages, acks far beyond what the edge sent. Each changes nothing at the
school and raises a ``downlink_refused`` alarm; the real next change still applies; and an edge
ahead of the centre cannot start a snapshot loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from edge.store import EdgeStore
from edge.sync import EdgeSync, SyncSettings
from protocol import topics
from protocol.centre import Refusal, sign_for_device
from protocol.codec import encode, open_envelope
from protocol.messages import (
    AlarmCode,
    AlarmEvent,
    BalanceCredit,
    CardBind,
    CardBinding,
    CardBlock,
    EventAck,
    OwnerKind,
    StudentRecord,
    StudentUpsert,
    SyncDelta,
)
from protocol.signing import generate_key
from server.db import make_engine, session_factory
from server.ingest import IngestWorker
from server.models import Device
from server.settings import ServerSettings
from server.sync import DownlinkService
from tests.integration.sync.test_uplink import sync_settings
from tests.support.centre import CENTRE_KEY
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import (
    Probe,
    enrolled_device,
    journal_rush,
    server_seqs,
    wait_until,
)

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

CARD = "EM:0000000777"
FORGED_CARD = "EM:0000000666"


def student(sid: str) -> StudentUpsert:
    return StudentUpsert(student=StudentRecord(id=sid, grade=5, class_name="5A", shift=1))


def bind(cred: str, sid: str) -> CardBind:
    return CardBind(card=CardBinding(credential=cred, owner_kind=OwnerKind.STUDENT, owner_id=sid))


async def until(pred: Callable[[], bool], within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.02)
    return pred()


async def alarms(store: EdgeStore) -> list[AlarmEvent]:
    return [
        e
        for e in await store.journal_rows()
        if isinstance(e, AlarmEvent) and e.code == AlarmCode.DOWNLINK_REFUSED
    ]


@contextlib.asynccontextmanager
async def school_edge(
    tmp: Path, key: Any, prefix: str, **overrides: Any
) -> AsyncIterator[tuple[EdgeStore, EdgeSync]]:
    store = await EdgeStore.open(tmp / "edge.db", school="S1", device="d1")
    settings: SyncSettings = sync_settings(prefix, SYSTEM_BROKER[1]).model_copy(
        update={"alarm_interval_s": 0.0, **overrides}
    )
    try:
        async with EdgeSync(store, settings, key) as sync:
            assert await until(lambda: sync.online)
            yield store, sync
    finally:
        await store.close()


def forged_delta(version: int) -> SyncDelta:
    """What the attack published: a new card for a student and 900,000,000 tiyn."""
    return SyncDelta(
        school="S1",
        version=version,
        base_version=version - 1,
        changes=[
            bind(FORGED_CARD, "st1"),
            BalanceCredit(ledger_id="forged-1", student_id="st1", amount_tiyn=900_000_000),
        ],
    )


async def test_forged_deltas_change_nothing_and_the_real_next_change_applies(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    attacker = Probe(SYSTEM_BROKER[1])
    sync_topic = topics.sync("S1", "d1", prefix)
    with DownlinkService(settings, engine) as downlink:
        async with school_edge(tmp_path, key, prefix) as (store, sync):
            await asyncio.to_thread(
                downlink.publish_changes, "S1", [student("st1"), bind(CARD, "st1")]
            )
            assert await until(lambda: sync.applied_version == 1)
            forged = forged_delta(2)
            attacks = {
                Refusal.UNSIGNED: encode(forged),
                Refusal.UNKNOWN_KEY: sign_for_device(
                    forged, generate_key(), school="S1", device="d1", issued_at_ms=_now()
                ),
                # the centre's real signature, but made for another device of the school
                Refusal.BAD_SIGNATURE: sign_for_device(
                    forged, CENTRE_KEY, school="S1", device="d2", issued_at_ms=_now()
                ),
                Refusal.MALFORMED: b"\xa1\x61v\x01garbage",
            }
            for payload in attacks.values():
                await asyncio.to_thread(attacker.publish, sync_topic, payload)
            assert await until(lambda: all(sync.refused.get(r) for r in attacks))
            # nothing moved: the version, the cards, the balances
            assert sync.applied_version == 1 and await store.sync_version() == 1
            assert FORGED_CARD not in store.state.cards
            assert store.state.balances.get("st1", 0) == 0
            # the real next change (a lost card blocked) takes version 2 and applies
            await asyncio.to_thread(
                downlink.publish_changes, "S1", [CardBlock(credential=CARD, reason="lost")]
            )
            assert await until(lambda: sync.applied_version == 2)
            assert store.state.cards[CARD].blocked_reason == "lost"
            assert downlink.snapshots_sent == 0  # no version mismatch, so no snapshot at all
            raised = await alarms(store)
            assert {a.detail.split(" ")[0] for a in raised} >= {r.value for r in attacks}
            assert all(a.active for a in raised)
    attacker.close()
    engine.dispose()


async def test_replayed_and_reordered_downlink_and_acks_change_nothing(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    attacker = Probe(SYSTEM_BROKER[1])
    sync_topic = topics.sync("S1", "d1", prefix)
    ack_topic = topics.ack("S1", "d1", prefix)
    attacker.subscribe(sync_topic)  # records the centre's real, signed messages
    attacker.subscribe(ack_topic)
    # a replay window of 1 ms: whatever was issued before the newest accepted is a replay
    with DownlinkService(settings, engine) as downlink, IngestWorker(settings, engine):
        async with school_edge(tmp_path, key, prefix, replay_window_s=0.001) as (store, sync):
            await journal_rush(store, 50)
            assert await until(lambda: len(attacker.received(ack_topic)) > 0)
            assert await until(lambda: store.last_seq == 50 and sync._window.acked == 50)
            first_ack = attacker.received(ack_topic)[0]
            for v, change in enumerate(
                [student("st1"), bind(CARD, "st1"), CardBlock(credential=CARD, reason="lost")],
                start=1,
            ):
                await asyncio.to_thread(downlink.publish_changes, "S1", [change])
                assert await until(lambda v=v: sync.applied_version == v)  # type: ignore[misc]
            deltas = [
                p
                for p in attacker.received(sync_topic)
                if open_envelope(p).type_name == "sync_delta"
            ]
            assert len(deltas) >= 3
            # replay the delta that bound the card, then the ones before and after it reordered
            for payload in (deltas[1], deltas[2], deltas[0]):
                await asyncio.to_thread(attacker.publish, sync_topic, payload)
            # replay an old ack, and send an ack far beyond what was sent (signed by the real
            # key: even a centre that signs a wrong ack cannot stop the uplink)
            await asyncio.to_thread(attacker.publish, ack_topic, first_ack)
            huge = EventAck(school="S1", device="d1", committed_through=10**9)
            # issued a minute ahead: a genuine ack the centre sends meanwhile (the window is
            # 1 ms) must not make it a replay, so that it is refused for what it says
            ahead = _now() + 60_000
            await asyncio.to_thread(
                attacker.publish,
                ack_topic,
                sign_for_device(huge, CENTRE_KEY, school="S1", device="d1", issued_at_ms=ahead),
            )
            await asyncio.to_thread(attacker.publish, ack_topic, encode(huge))
            # replays: the two older deltas and the old ack. The newest delta sent again is a
            # replay only if the centre's next message was accepted before it arrived; else it
            # is a duplicate delivery (as QoS 1 may make), applied already: nothing changes.
            assert await until(
                lambda: (
                    sync.refused.get(Refusal.REPLAY, 0) >= 3
                    and sync.refused.get(Refusal.ACK_BEYOND_SENT, 0) >= 1
                    and sync.refused.get(Refusal.UNSIGNED, 0) >= 1
                )
            )
            assert sync.applied_version == 3
            assert store.state.cards[CARD].blocked_reason == "lost"  # not unblocked by replays
            # the uplink goes on: 200 more events reach the server, each once
            last = await journal_rush(store, 200)
            assert await until(lambda: sync._window.acked == last, 30)
            assert await asyncio.to_thread(
                wait_until, lambda: server_seqs(engine, "S1", "d1") == list(range(1, last + 1)), 10
            )
            reasons = {a.detail.split(" ")[0] for a in await alarms(store)}
            assert reasons >= {"replay", "ack_beyond_sent", "unsigned"}
    attacker.close()
    engine.dispose()


async def test_an_edge_ahead_of_the_centre_cannot_start_a_snapshot_loop(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    """The version a forged delta took before this release (or a centre restored from an old
    backup) leaves the edge ahead of the centre: the centre answers with a snapshot, the edge
    refuses it as older than what it has, and does not answer it (the loop seen in the attack
    ran at ~10 snapshots/s)."""
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    await store.apply_delta(forged_delta(5).model_copy(update={"base_version": 0}))
    await store.close()
    with DownlinkService(settings, engine) as downlink:
        await asyncio.to_thread(downlink.publish_changes, "S1", [student("st1")])

        def last_seen() -> int:
            with engine.connect() as c:
                return int(c.execute(select(Device.last_seen_ms)).scalar() or 0)

        async with school_edge(tmp_path, key, prefix, status_interval_s=0.2) as (store, _sync):
            assert await until(lambda: downlink.snapshots_sent >= 1)
            # Every status the edge publishes after the snapshot was handled follows any answer
            # it sent on the same connection, so three of them are the proof of no answer.
            seen = []
            for _ in range(3):
                before = await asyncio.to_thread(last_seen)
                assert await until(lambda b=before: last_seen() > b)  # type: ignore[misc]
                seen.append(downlink.snapshots_sent)
            assert seen == [1, 1, 1]
            assert await store.sync_version() == 5  # not rolled back either: an operator decides
    engine.dispose()


def _now() -> int:
    return time.time_ns() // 1_000_000


def test_a_revoked_device_is_refused_and_a_replacement_enrols(
    sqlite_url: str, make_settings: Callable[..., ServerSettings], tmp_path: Path
) -> None:
    from protocol.signing import public_key_raw
    from server.broker_auth import write_broker_files
    from server.devices import enrol, reissue_token, revoke
    from server.ingest.core import IngestStore, RejectReason
    from tests.support.sync import signed

    settings = make_settings(
        sqlite_url,
        mosquitto_password_file=tmp_path / "passwd",
        mosquitto_acl_file=tmp_path / "acl",
    )
    engine = make_engine(sqlite_url)
    events = topics.events("S1", "d1", settings.topic_prefix)
    with session_factory(engine)() as s:
        key, user, _ = enrolled_device(s, settings, "S1", "d1")
        write_broker_files(s, settings)
        assert user in (tmp_path / "passwd").read_text()
        revoke(s, "S1", "d1")
        s.commit()
        write_broker_files(s, settings)
    assert user not in (tmp_path / "passwd").read_text()
    assert user not in (tmp_path / "acl").read_text()
    out = IngestStore(engine, topic_prefix=settings.topic_prefix).ingest(
        [(events, signed("S1", "d1", key, 1, 3))]
    )
    assert [r.reason for r in out.rejections] == [RejectReason.NOT_ENROLLED]
    # the school enrols a replacement under the same device id, with a new key and login
    new_key = generate_key()
    with session_factory(engine)() as s:
        token = reissue_token(s, settings, "S1", "d1")
        creds = enrol(s, settings, token, "d1", public_key_raw(new_key), pins_centre_key=True)
        s.commit()
        row = s.execute(select(Device)).scalar_one()
        assert row.revoked_at_ms is None and row.centre_key_pinned_ms is not None
    store = IngestStore(engine, topic_prefix=settings.topic_prefix)
    assert store.ingest([(events, signed("S1", "d1", new_key, 1, 3))]).events_inserted == 3
    old = store.ingest([(events, signed("S1", "d1", key, 4, 1))])
    assert [r.reason for r in old.rejections] == [RejectReason.SIGNATURE]  # the stolen key
    assert creds.mqtt_username == user
    engine.dispose()


async def test_key_rotation_next_key_announced_then_used_old_key_refused(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    from protocol.centre import key_id
    from tests.support.centre import centre_key_file, write_key_file

    nxt = generate_key()
    next_file = write_key_file(nxt, tmp_path / "next.key")
    rotating = make_settings(pg_url, centre_next_key_file=next_file)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, rotating, "S1", "d1")
    attacker = Probe(SYSTEM_BROKER[1])
    sync_topic = topics.sync("S1", "d1", prefix)
    async with school_edge(tmp_path, key, prefix) as (store, sync):
        # 1. the downlink announces the next key under the current one, at the edge's sync ack
        async with DownlinkService(rotating, engine) as downlink:
            await asyncio.to_thread(downlink.publish_changes, "S1", [student("st1")])
            assert await until(lambda: sync.applied_version == 1)
            assert await until(lambda: sync._centre.keys().get(key_id(nxt)) is not None)
            assert sync._centre.is_current(key_id(CENTRE_KEY))
        # 2. the operator makes the next key the current one
        switched = make_settings(pg_url, centre_key_file=next_file)
        assert switched.centre_key_file != centre_key_file()
        async with DownlinkService(switched, engine) as downlink:
            await asyncio.to_thread(downlink.publish_changes, "S1", [student("st2")])
            assert await until(lambda: sync.applied_version == 2)
            assert sync._centre.is_current(key_id(nxt))
            assert sync._centre.keys().keys() == {key_id(nxt)}
        # 3. the old key is retired: a delta it signs (a leaked old key) is refused
        old = SyncDelta(school="S1", version=3, base_version=2, changes=[student("evil")])
        await asyncio.to_thread(
            attacker.publish,
            sync_topic,
            sign_for_device(old, CENTRE_KEY, school="S1", device="d1", issued_at_ms=_now()),
        )
        assert await until(lambda: sync.refused.get(Refusal.UNKNOWN_KEY, 0) >= 1)
        assert sync.applied_version == 2 and "evil" not in store.state.students
    attacker.close()
    engine.dispose()
