"""An ingest worker SIGKILLed in the middle of a transaction of many devices' single-event
messages (the morning peak): once before the commit, once after it and before the acks. The
gates send again what has no signed ack; in the end every event is stored once, no device has a
gap, and the roll-ups counted each pupil once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from protocol.messages import EntryEvent, Event, EventBatch
from protocol.signing import sign_batch
from server.db import make_engine, session_factory
from server.models import Device, IngestProgress, StoredEvent
from server.rollups.models import RollupAttendance, RollupPresence
from server.settings import ServerSettings
from simulators.bench_ingest import SimulatedSchools, _School
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import enrolled_device

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
DEVICES = 40
PER_DEVICE = 6
NOW = 1_790_000_000_000


async def run_worker(
    settings: ServerSettings, log: Path, **extra: str
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "QAQPA_SERVER_DATABASE_URL": settings.database_url,
        "QAQPA_SERVER_MQTT_PORT": str(settings.mqtt_port),
        "QAQPA_SERVER_TOPIC_PREFIX": settings.topic_prefix,
        "QAQPA_SERVER_CENTRE_KEY_FILE": str(settings.centre_key_file),
        # a wide window: the transaction killed holds many devices' messages
        "QAQPA_SERVER_INGEST_BATCH_WAIT_MS": "300",
        **extra,
    }
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.ingest", cwd=ROOT, env=env, stderr=err
        )


@pytest.mark.parametrize(
    "fault", ["QAQPA_SERVER_FAULT_KILL_BEFORE_COMMIT", "QAQPA_SERVER_FAULT_KILL_AFTER_INSERT"]
)
async def test_worker_killed_mid_batch_stores_every_event_once(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    tmp_path: Path,
    fault: str,
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    gates: list[_School] = []
    with session_factory(engine)() as s:
        for i in range(DEVICES):
            school = f"S{i:03d}"
            key, _, _ = enrolled_device(s, settings, school, "gate")
            signed = []
            for seq in range(1, PER_DEVICE + 1):
                ev: Event = EntryEvent(
                    seq=seq, at_ms=NOW + seq * 1000, terminal="gate-1", student_id=f"p{seq}"
                )
                batch = EventBatch(school=school, device="gate", sent_at_ms=NOW, events=[ev])
                signed.append(sign_batch(batch, key))
            gates.append(
                _School(school, "gate", signed, list(range(1, PER_DEVICE + 1)), PER_DEVICE)
            )
    log = tmp_path / "ingest.log"
    sim = SimulatedSchools(SYSTEM_BROKER[0], SYSTEM_BROKER[1], prefix, gates, 2, rewind_after_s=3)
    done: list[float] = []
    failed: list[BaseException] = []

    def send() -> None:
        try:
            done.append(sim.run(timeout=240))
        except BaseException as err:
            failed.append(err)

    worker = await run_worker(settings, log, **{fault: "2"})
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        async with asyncio.timeout(120):
            await worker.wait()
        assert worker.returncode == -signal.SIGKILL
        worker = await run_worker(settings, log)
        while sender.is_alive():
            await asyncio.sleep(0.2)
    finally:
        if worker.returncode is None:
            worker.terminate()
            await worker.wait()
        sim.close()
    assert not failed, failed
    killed = re.search(
        r"fault injection: SIGKILL (before|after) commit 2 \((\d+) message", log.read_text()
    )
    assert killed is not None, log.read_text()[-2000:]
    print(f"\nworker killed {killed.group(1)} the commit of {killed.group(2)} messages")
    assert int(killed.group(2)) > 1  # killed with many messages in the transaction

    with engine.connect() as c:
        stored = c.execute(
            select(Device.school_id, func.count(), func.count(func.distinct(StoredEvent.seq)))
            .join(Device, Device.pk == StoredEvent.device_pk)
            .group_by(Device.school_id)
        ).all()
        progress = c.execute(select(IngestProgress.committed_through, IngestProgress.gaps)).all()
        present = c.execute(select(func.count()).select_from(RollupPresence)).scalar()
        counted = c.execute(select(func.sum(RollupAttendance.present))).scalar()
    assert len(stored) == DEVICES
    assert all(n == distinct == PER_DEVICE for _school, n, distinct in stored)
    assert all(through == PER_DEVICE and gaps == [] for through, gaps in progress)
    assert len(progress) == DEVICES
    # each (school, pupil) arrived once on its day, counted once in spite of the re-sends
    assert present == counted == DEVICES * PER_DEVICE
    engine.dispose()
