"""Ingest benchmark: K simulated schools publish signed batches through Mosquitto to N ingest
workers (separate processes) writing PostgreSQL; in the same run the same rows are loaded by a
plain COPY with no MQTT, and the ratio is reported.

    python -m simulators.bench_ingest [--schools 20] [--events 10000] [--workers 2] [--json]
    python -m simulators.bench_ingest --small [--devices 300] [--messages 5] [--json]

``--small`` (and ``qaqpa bench ingest``, as its second part): the morning peak's single-event
messages from many devices, through the per-message path and the batched path in the same run.

The simulated edges follow the edge's protocol (window of unacknowledged batches, re-send from
the last ack on timeout), so a broker that drops messages does not lose events.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from protocol import topics
from protocol.codec import decode
from protocol.messages import EntryEvent, Event, EventAck, EventBatch
from protocol.signing import generate_key, public_key_raw, sign_batch
from server.centre_key import temporary_key_file
from server.db import make_engine, session_factory
from server.devices import add_device, enrol
from server.migrate import upgrade
from server.settings import ServerSettings

PG_ADMIN = os.environ.get("QAQPA_BENCH_PG_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres")
PG_URL_BASE = os.environ.get("QAQPA_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A new PostgreSQL database at the latest schema, dropped afterwards."""
    name = f"qaqpa_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_URL_BASE}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def worker_processes(
    settings: ServerSettings,
    n: int,
    extra_env: dict[str, str] | None = None,
    log_file: Path | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` ingest workers; with ``log_file`` their log goes there and the start waits until
    every one has subscribed (a busy machine takes longer than the usual pause)."""
    env = {
        **os.environ,
        **(extra_env or {}),
        "QAQPA_SERVER_DATABASE_URL": settings.database_url,
        "QAQPA_SERVER_MQTT_HOST": settings.mqtt_host,
        "QAQPA_SERVER_MQTT_PORT": str(settings.mqtt_port),
        "QAQPA_SERVER_TOPIC_PREFIX": settings.topic_prefix,
        "QAQPA_SERVER_CENTRE_KEY_FILE": str(settings.centre_key_file),
    }
    with contextlib.ExitStack() as stack:
        err: Any = subprocess.DEVNULL
        if log_file is not None:
            err = stack.enter_context(log_file.open("ab"))
        procs = [
            subprocess.Popen([sys.executable, "-m", "server.ingest"], cwd=ROOT, env=env, stderr=err)
            for _ in range(n)
        ]
    try:
        if log_file is None:
            time.sleep(1.5)  # connect and subscribe
        else:
            deadline = time.monotonic() + 60
            while log_file.read_text(errors="replace").count("subscribed to") < n:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"the ingest workers did not start; see {log_file}")
                time.sleep(0.1)
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


@dataclass
class _School:
    school: str
    device: str
    batches: list[bytes]
    last_seqs: list[int]
    total: int
    acked: int = 0
    next_batch: int = 0
    last_progress: float = field(default_factory=time.monotonic)


class SimulatedSchools:
    """One paho client publishing for every school, with a per-school ack window."""

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        schools: list[_School],
        window: int,
        rewind_after_s: float = 10.0,
    ) -> None:
        self._schools = {(s.school, s.device): s for s in schools}
        self._rewind_after_s = rewind_after_s
        self._prefix = prefix
        self._window = window
        self._cond = threading.Condition()
        self.rewinds = 0
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.max_inflight_messages_set(1000)
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.subscribe(f"{prefix}/school/+/device/+/ack", qos=1)
        self._client.loop_start()
        time.sleep(0.3)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        ack = decode(bytes(msg.payload), EventAck)
        with self._cond:
            s = self._schools.get((ack.school, ack.device))
            if s is not None and ack.committed_through > s.acked:
                s.acked = ack.committed_through
                s.last_progress = time.monotonic()
            self._cond.notify()

    def run(self, timeout: float = 300.0) -> float:
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        with self._cond:
            for s in self._schools.values():
                s.last_progress = time.monotonic()
            while True:
                pending = False
                now = time.monotonic()
                for s in self._schools.values():
                    if s.acked >= s.total:
                        continue
                    pending = True
                    # go back to the first unacknowledged batch after a silence
                    if now - s.last_progress > self._rewind_after_s:
                        s.next_batch = next(
                            i for i, last in enumerate(s.last_seqs) if last > s.acked
                        )
                        s.last_progress = now
                        self.rewinds += 1
                    while s.next_batch < len(s.batches):
                        first_unacked = next(
                            i for i, last in enumerate(s.last_seqs) if last > s.acked
                        )
                        if s.next_batch - first_unacked >= self._window:
                            break
                        topic = topics.events(s.school, s.device, self._prefix)
                        self._client.publish(topic, s.batches[s.next_batch], qos=1)
                        s.next_batch += 1
                if not pending:
                    return time.perf_counter() - t0
                if time.monotonic() > deadline:
                    raise TimeoutError("the ingest benchmark did not finish in time")
                self._cond.wait(0.2)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _events(first: int, n: int, base_ms: int) -> list[EntryEvent]:
    return [
        EntryEvent(seq=s, at_ms=base_ms + s, terminal="gate-1", student_id=f"st{s % 800}")
        for s in range(first, first + n)
    ]


def _copy_baseline(url: str, schools: int, events: int, batch: int, base_ms: int) -> float:
    """Load the same rows with COPY straight into ``events`` (no MQTT, no verification)."""
    from sqlalchemy import text

    engine = make_engine(url)
    with engine.begin() as conn:
        pks = list(conn.execute(text("SELECT pk, school_id FROM devices ORDER BY pk")))
        conn.execute(text("TRUNCATE events"))
    engine.dispose()
    rows: list[tuple[Any, ...]] = []
    for pk, school in pks[:schools]:
        for ev in _events(1, events, base_ms):
            d = ev.model_dump(mode="json")
            rows.append(
                (
                    pk,
                    ev.seq,
                    school,
                    ev.at_ms,
                    ev.kind,
                    ev.terminal,
                    ev.student_id,
                    None,
                    json.dumps(d, separators=(",", ":")),
                    base_ms,
                )
            )
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    cols = "device_pk, seq, school_id, at_ms, kind, terminal, student_id, staff_id, payload, received_at_ms"
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY events ({cols}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        conn.commit()
    return time.perf_counter() - t0


def bench_ingest(
    *,
    schools: int = 20,
    events_per_school: int = 10_000,
    batch_events: int = 1000,
    workers: int = 2,
    window_batches: int = 4,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Sustained events/s through MQTT into PostgreSQL, and the raw COPY rate of the same rows."""
    prefix = f"qaqpa-bench/{uuid.uuid4().hex[:8]}/v1"
    base_ms = 1_760_000_000_000
    with contextlib.ExitStack() as stack:
        url = database_url if database_url is not None else stack.enter_context(scratch_database())
        settings = ServerSettings(
            database_url=url,
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            topic_prefix=prefix,
            centre_key_file=stack.enter_context(temporary_key_file()),
        )
        engine = make_engine(url)
        sims: list[_School] = []
        with session_factory(engine)() as session:
            for i in range(schools):
                school, device = f"B{i:04d}", "edge"
                key = generate_key()
                token = add_device(session, settings, school, device)
                enrol(session, settings, token, device, public_key_raw(key))
                batches, lasts = [], []
                for first in range(1, events_per_school + 1, batch_events):
                    n = min(batch_events, events_per_school - first + 1)
                    batch = EventBatch(
                        school=school,
                        device=device,
                        sent_at_ms=base_ms,
                        events=list[Event](_events(first, n, base_ms)),
                    )
                    batches.append(sign_batch(batch, key))
                    lasts.append(first + n - 1)
                sims.append(_School(school, device, batches, lasts, events_per_school))
            session.commit()
        engine.dispose()
        total = schools * events_per_school
        with worker_processes(settings, workers):
            sim = SimulatedSchools(mqtt_host, mqtt_port, prefix, sims, window_batches)
            try:
                seconds = sim.run()
            finally:
                sim.close()
        raw_seconds = _copy_baseline(url, schools, events_per_school, batch_events, base_ms)
    rate = total / seconds
    raw_rate = total / raw_seconds
    return {
        "benchmark": "ingest",
        "schools": schools,
        "workers": workers,
        "events": total,
        "batch_events": batch_events,
        "seconds": round(seconds, 2),
        "events_per_s": round(rate),
        "raw_copy_seconds": round(raw_seconds, 2),
        "raw_copy_events_per_s": round(raw_rate),
        "ratio_to_raw": round(rate / raw_rate, 3),
        "rewinds": sim.rewinds,
        "target_events_per_s": 20_000,
        "target_ratio": 0.5,
    }


# The national morning peak: every gate sends each tap as it happens, one event a message.
# The per-message path (one transaction a message, as a worker with nothing waiting does) is the
# baseline; the batched path waits ingest_batch_wait_ms and writes what came in one transaction.
PER_MESSAGE_ENV = {
    "QAQPA_SERVER_INGEST_MAX_MESSAGES_PER_TX": "1",
    "QAQPA_SERVER_INGEST_BATCH_WAIT_MS": "0",
}


def _cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    import psutil

    total = 0.0
    for p in procs:
        t = psutil.Process(p.pid).cpu_times()
        total += t.user + t.system
    return total


def _small_phase(
    *,
    devices: int,
    per_device: int,
    workers: int,
    window: int,
    mqtt_host: str,
    mqtt_port: int,
    extra_env: dict[str, str],
) -> dict[str, Any]:
    """One scratch database, ``devices`` gates sending ``per_device`` single-event messages
    each (a different pupil per tap), through Mosquitto to ``workers`` worker processes."""
    from sqlalchemy import func, select

    from server.models import Device, StoredEvent

    prefix = f"qaqpa-bench/{uuid.uuid4().hex[:8]}/v1"
    base_ms = 1_760_000_000_000
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(scratch_database())
        settings = ServerSettings(
            database_url=url,
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            topic_prefix=prefix,
            centre_key_file=stack.enter_context(temporary_key_file()),
        )
        engine = make_engine(url)
        sims: list[_School] = []
        with session_factory(engine)() as session:
            for i in range(devices):
                school, device = f"G{i:05d}", "gate-1"
                key = generate_key()
                add_device(session, settings, school, device)
                session.flush()
                row = session.execute(
                    select(Device).where(Device.school_id == school, Device.device_id == device)
                ).scalar_one()
                row.public_key = public_key_raw(key)  # enrolled (the broker is anonymous here)
                batches = []
                for seq in range(1, per_device + 1):
                    ev = EntryEvent(
                        seq=seq,
                        at_ms=base_ms + seq * 7_000 + i,
                        terminal="gate-1",
                        student_id=f"p{(i * per_device + seq) % 900_000}",
                    )
                    batch = EventBatch(
                        school=school, device=device, sent_at_ms=base_ms, events=[ev]
                    )
                    batches.append(sign_batch(batch, key))
                sims.append(
                    _School(school, device, batches, list(range(1, per_device + 1)), per_device)
                )
            session.commit()
        total = devices * per_device
        log_file = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "ingest.log"
        with worker_processes(settings, workers, extra_env, log_file) as procs:
            cpu0 = _cpu_seconds(procs)
            # a slow path on a busy machine is not a lost message: re-send only after a minute
            sim = SimulatedSchools(mqtt_host, mqtt_port, prefix, sims, window, rewind_after_s=60)
            try:
                seconds = sim.run(timeout=900)
            finally:
                sim.close()
            cpu = _cpu_seconds(procs) - cpu0
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(StoredEvent)).scalar()
        engine.dispose()
    return {
        "messages": total,
        "events_stored": stored,
        "seconds": round(seconds, 2),
        "events_per_s": round(total / seconds),
        "workers_cpu_seconds": round(cpu, 2),
        "cpu_ms_per_message": round(cpu / total * 1000, 3),
        "rewinds": sim.rewinds,
    }


def bench_ingest_small(
    *,
    devices: int = 300,
    per_device: int = 5,
    workers: int = 2,
    window: int = 2,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
) -> dict[str, Any]:
    """Single-event messages from many devices: the per-message path (baseline) and the
    batched path, in the same run, on fresh databases."""
    common: dict[str, Any] = {
        "devices": devices,
        "per_device": per_device,
        "workers": workers,
        "window": window,
        "mqtt_host": mqtt_host,
        "mqtt_port": mqtt_port,
    }
    baseline = _small_phase(**common, extra_env=PER_MESSAGE_ENV)
    batched = _small_phase(**common, extra_env={})
    return {
        "benchmark": "ingest_small_messages",
        "devices": devices,
        "messages_per_device": per_device,
        "events_per_message": 1,
        "workers": workers,
        "window_messages_per_device": window,
        "per_message_path": baseline,
        "batched_path": batched,
        "cpu_per_message_ratio": round(
            batched["cpu_ms_per_message"] / baseline["cpu_ms_per_message"], 3
        ),
        "throughput_ratio": round(batched["events_per_s"] / baseline["events_per_s"], 2),
        "machine": "2 cores shared with other engineers' work; compare only within this run",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.bench_ingest")
    p.add_argument("--schools", type=int, default=20)
    p.add_argument("--events", type=int, default=10_000, help="events per school")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument(
        "--small", action="store_true", help="single-event messages of many devices instead"
    )
    p.add_argument("--devices", type=int, default=300, help="devices (--small)")
    p.add_argument("--messages", type=int, default=5, help="messages per device (--small)")
    args = p.parse_args(argv)
    if args.small:
        small = bench_ingest_small(
            devices=args.devices,
            per_device=args.messages,
            workers=args.workers,
            mqtt_port=args.mqtt_port,
        )
        print(json.dumps(small, indent=None if args.json else 2))
        return 0
    result = bench_ingest(
        schools=args.schools,
        events_per_school=args.events,
        batch_events=args.batch,
        workers=args.workers,
        mqtt_port=args.mqtt_port,
    )
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
