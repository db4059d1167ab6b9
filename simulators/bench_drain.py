"""Drain benchmark: an edge with a 100,000-event backlog reconnects; how long until its outbox is
empty (every event committed by the server and acknowledged). Target: <= 30 s.

    python -m simulators.bench_drain [--events 100000] [--workers 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.store import EdgeStore, JournalEntry
from edge.sync import EdgeSync, SyncSettings
from protocol.messages import EntryEvent
from protocol.signing import generate_key, public_key_raw
from server.centre_key import CentreSigner, temporary_key_file
from server.db import make_engine, session_factory
from server.devices import add_device, enrol
from server.settings import ServerSettings
from simulators.bench_ingest import scratch_database, worker_processes


async def _journal(store: EdgeStore, n: int, base_ms: int) -> None:
    done = 0
    while done < n:
        k = min(5000, n - done)
        entries = [
            JournalEntry(
                EntryEvent(
                    seq=1,
                    at_ms=base_ms + (done + i) * 6000,
                    terminal="gate-1",
                    student_id=f"st{i % 800}",
                )
            )
            for i in range(k)
        ]
        async with store.write_lock:
            await store.journal(entries)
        done += k


async def _drain(
    store: EdgeStore, settings: SyncSettings, key: Any, limit_s: float
) -> tuple[float, int]:
    t0 = time.perf_counter()
    async with EdgeSync(store, settings, key) as sync:
        async with asyncio.timeout(limit_s):
            while True:
                if (await sync.status()).backlog == 0:
                    break
                await asyncio.sleep(0.05)
        return time.perf_counter() - t0, sync.batches_sent


@dataclass(frozen=True)
class EnrolledEdge:
    """A device enrolled in the server's database: the server's settings, the edge's uplink
    settings (the centre's key pinned) and the device's private key."""

    server: ServerSettings
    sync: SyncSettings
    key: Any


@contextlib.contextmanager
def enrolled_edge(
    database_url: str,
    *,
    school: str,
    device: str,
    prefix: str,
    mqtt_port: int,
    mqtt_host: str = "127.0.0.1",
) -> Iterator[EnrolledEdge]:
    """Enrol ``device`` of ``school`` (a temporary centre key) as ``qaqpa edge enrol`` would."""
    with temporary_key_file() as centre_key_file:
        settings = ServerSettings(
            database_url=database_url,
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            topic_prefix=prefix,
            centre_key_file=centre_key_file,
        )
        key = generate_key()
        engine = make_engine(database_url)
        with session_factory(engine)() as session:
            token = add_device(session, settings, school, device)
            enrol(session, settings, token, device, public_key_raw(key))
            session.commit()
        engine.dispose()
        sync_settings = SyncSettings(
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            topic_prefix=prefix,
            centre_key=CentreSigner.from_settings(settings).public_b64,
        )
        yield EnrolledEdge(settings, sync_settings, key)


@contextlib.contextmanager
def bench_edge(
    name: str,
    school: str,
    *,
    mqtt_port: int,
    mqtt_host: str = "127.0.0.1",
    database_url: str | None = None,
) -> Iterator[tuple[Path, EnrolledEdge]]:
    """A scratch database (unless given), a temporary directory for the edge's store and an
    edge enrolled on a topic prefix of its own: what a bench of the uplink starts from."""
    with contextlib.ExitStack() as stack:
        url = database_url if database_url is not None else stack.enter_context(scratch_database())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"qaqpa-{name}-")))
        prefix = f"qaqpa-{name}/{uuid.uuid4().hex[:8]}/v1"
        edge = stack.enter_context(
            enrolled_edge(
                url,
                school=school,
                device="edge",
                prefix=prefix,
                mqtt_host=mqtt_host,
                mqtt_port=mqtt_port,
            )
        )
        yield tmp, edge


def bench_drain(
    *,
    events: int = 100_000,
    workers: int = 1,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    database_url: str | None = None,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Seconds for an edge to empty an ``events`` backlog after reconnecting."""
    with bench_edge(
        "drain", "D1", mqtt_port=mqtt_port, mqtt_host=mqtt_host, database_url=database_url
    ) as (tmp, edge):

        async def run() -> tuple[float, int, int]:
            store = await EdgeStore.open(
                tmp / "edge.db", school="D1", device="edge", outbox_capacity=max(events, 100_000)
            )
            try:
                await _journal(store, events, time.time_ns() // 1_000_000 - 7 * 86_400_000)
                backlog = (await store.outbox_stats()).backlog
                seconds, batches = await _drain(store, edge.sync, edge.key, timeout_s)
                return seconds, batches, backlog
            finally:
                await store.close()

        with worker_processes(edge.server, workers):
            seconds, batches, backlog = asyncio.run(run())
    return {
        "benchmark": "drain",
        "backlog_events": backlog,
        "workers": workers,
        "seconds": round(seconds, 2),
        "events_per_s": round(backlog / seconds),
        "batches_sent": batches,
        "target_seconds": 30,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.bench_drain")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = p.parse_args(argv)
    result = bench_drain(events=args.events, workers=args.workers, mqtt_port=args.mqtt_port)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
