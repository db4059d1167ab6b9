"""The daemon's turnstile path through the real OSDP driver and a libosdp peripheral on a pty.

Secure channel on. Anti-passback is hard, so the presence state the daemon writes decides the
next tap: it must be written only when the turnstile reports that the student went through.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import TerminalConfig
from edge.daemon import run_terminal
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from hardware.config import OsdpBuses, OsdpOutputGateConfig, OsdpReaderConfig
from hardware.wiegand import decode, encode
from protocol.messages import (
    CardBinding,
    ConsentKind,
    ConsentRecord,
    DeniedEvent,
    EntryEvent,
    NotPassedEvent,
    OwnerKind,
    PolicyDoc,
    StudentRecord,
    SyncSnapshot,
)
from simulators.edge_school import midday_zone
from simulators.osdp_pd import PtyBus
from tests.support.wait import wait_until_async

KEY = bytes.fromhex("7c3a5e1f9b2d4c6a8e0f1a2b3c4d5e6f")


def snapshot(credentials: dict[str, str]) -> SyncSnapshot:
    consent = ConsentRecord(
        kind=ConsentKind.DATA, granted=True, given_by="parent", at_ms=0, document="d"
    )
    policy = PolicyDoc.model_validate(
        {
            "timezone": midday_zone(),
            "anti_passback": "hard",
            "shift": [{"number": 1, "entry_from": "00:00", "entry_to": "23:59"}],
        },
        strict=False,
    )
    return SyncSnapshot(
        school="S1",
        version=1,
        policy=policy,
        students=[
            StudentRecord(id=sid, grade=5, class_name="5A", shift=1, consents=[consent])
            for sid in credentials
        ],
        staff=[],
        cards=[
            CardBinding(credential=c, owner_kind=OwnerKind.STUDENT, owner_id=sid)
            for sid, c in credentials.items()
        ],
    )


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    await wait_until_async(predicate, timeout)


@pytest.mark.timeout(120)
async def test_turnstile_over_osdp_records_presence_only_after_passage(tmp_path: Path) -> None:
    creds = {"s1": decode(encode(26, 12, 345)), "s2": decode(encode(26, 12, 346))}
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="d1")
    await store.apply_snapshot(snapshot(creds))
    with PtyBus() as bus:
        pd = bus.attach(1, KEY, passage_delay=0.05)
        term = TerminalConfig(
            id="gate-1-in",
            kind="turnstile",  # type: ignore[arg-type]
            direction="in",  # type: ignore[arg-type]
            reader=OsdpReaderConfig(
                type="osdp", reader_id="gate-1-in", port=bus.port, address=1, scbk=KEY.hex()
            ),
            gate=OsdpOutputGateConfig(type="osdp_output"),
            passage_timeout=1.0,
        )
        buses = OsdpBuses()
        buses.add(term.reader)  # type: ignore[arg-type]

        async def events() -> list[object]:
            return list(await store.journal_rows())

        async with Pipeline(store) as pipeline, asyncio.TaskGroup() as tg:
            task = tg.create_task(run_terminal(term, pipeline, store, buses=buses))
            await wait_for(lambda: _true(pd.secure_channel_active), 15)

            # s1 walks through: entry journaled, presence set after the passage input
            pd.present_card(26, 12, 345)
            await wait_for(lambda: _has(events, EntryEvent, 1))
            await wait_for(lambda: _true(store.state.presence("s1", _today(store)) is not None))

            # s1 taps again: hard anti-passback refuses
            pd.present_card(26, 12, 345)
            await wait_for(lambda: _has(events, DeniedEvent, 1))

            # s2 is released but turns back: "not passed", and no presence
            pd.turn_back_next()
            pd.present_card(26, 12, 346)
            await wait_for(lambda: _has(events, NotPassedEvent, 1))
            assert store.state.presence("s2", _today(store)) is None
            # so s2 may tap again and go through
            pd.present_card(26, 12, 346)
            await wait_for(lambda: _has(events, EntryEvent, 3))
            await wait_for(lambda: _true(store.state.presence("s2", _today(store)) is not None))
            task.cancel()
    journal = await store.journal_rows()
    kinds = [type(e).__name__ for e in journal if not type(e).__name__.startswith("Alarm")]
    assert kinds == ["EntryEvent", "DeniedEvent", "EntryEvent", "NotPassedEvent", "EntryEvent"]
    denied = next(e for e in journal if isinstance(e, DeniedEvent))
    assert denied.reason == "passback" and denied.student_id == "s1"
    not_passed = next(e for e in journal if isinstance(e, NotPassedEvent))
    assert not_passed.granted_seq == journal[kinds.index("EntryEvent", 1)].seq
    outputs = [c for c in pd.commands if "output_no" in c]
    assert len([c for c in outputs if c.get("control_code") not in (0, 1)]) >= 3
    await store.close()


async def _true(value: bool) -> bool:
    return value


async def _has(events, cls, n: int) -> bool:  # type: ignore[no-untyped-def]
    return sum(isinstance(e, cls) for e in await events()) >= n


def _today(store: EdgeStore) -> dt.date:
    assert store.policy is not None
    return dt.datetime.now(store.policy.timezone).date()


def test_damaged_store_stops_the_daemon_untouched(tmp_path: Path) -> None:
    (tmp_path / "edge.toml").write_text('school = "S1"\ndevice = "d1"\nstore = "edge.sqlite"\n')
    db = tmp_path / "edge.sqlite"
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    before = db.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "qaqpa.cli", "run", "--config", str(tmp_path / "edge.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert "edge store cannot be used" in proc.stderr and str(db) in proc.stderr
    assert db.read_bytes() == before
