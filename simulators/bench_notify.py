"""Notification benchmark: tap -> SMS gateway latency over the real path.

A simulated edge publishes each entry (a signed batch of one event, QoS 1) to Mosquitto as the
tap happens; an ingest worker stores it in a fresh PostgreSQL database; the notify service
(planner + workers) plans and sends it through apprise to the local SMS gateway sink, which
notes the arrival time. Latency = arrival - tap time (one clock: same machine). In the same run
the baseline is a bare apprise send to the same sink, so the ratio shows what the pipeline adds.

    python -m simulators.bench_notify [--seconds 10] [--rate 20] [--notify-workers N]
                                      [--gateway-ms 0] [--mqtt-port 1883] [--json]

``--gateway-ms`` makes the sink answer slowly, as a real gateway over the internet does: then
the number of workers decides the throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import time
import uuid
from typing import Any

import apprise
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from protocol import topics
from protocol.messages import ConsentKind, EntryEvent, Event, EventBatch
from protocol.signing import generate_key, public_key_raw, sign_batch
from server.centre_key import temporary_key_file
from server.clock import now_ms
from server.db import make_engine, session_factory
from server.devices import add_device, enrol
from server.ingest.worker import IngestWorker
from server.models import StoredEvent
from server.notify.models import OutboxMessage
from server.notify.service import NotifyService
from server.notify.settings import NotifySettings
from server.people.models import Consent, Guardian, SchoolClass, Student, StudentGuardian
from server.people.service import add_school
from server.settings import ServerSettings
from simulators.bench_ingest import scratch_database
from simulators.notify_sinks import SmsSink

SCHOOL, DEVICE = "BN001", "gate-edge"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _summary(ms: list[float]) -> dict[str, Any]:
    return {
        "n": len(ms),
        "p50_ms": round(_pct(ms, 0.50), 1),
        "p95_ms": round(_pct(ms, 0.95), 1),
        "max_ms": round(max(ms), 1) if ms else None,
    }


def _setup(url: str, settings: ServerSettings, students: int) -> tuple[Any, list[str]]:
    """A school with ``students`` children, each with a parent (phone) and consent; a device."""
    engine = make_engine(url)
    key = generate_key()
    phones: list[str] = []
    with session_factory(engine)() as s:
        add_school(s, SCHOOL, "Bench School", region="BR", region_name="Bench region")
        cls = SchoolClass(school_id=SCHOOL, name="1A", grade=1, shift=1)
        s.add(cls)
        s.flush()
        now = now_ms()
        for i in range(students):
            st = Student(
                ref=f"bn-{i}",
                school_id=SCHOOL,
                class_pk=cls.pk,
                surname="Bench",
                given_name=f"Child{i}",
                created_at_ms=now,
                updated_at_ms=now,
            )
            phone = f"+7700{i:07d}"
            g = Guardian(full_name=f"Parent {i}", phone=phone)
            s.add_all([st, g])
            s.flush()
            s.add(StudentGuardian(student_pk=st.pk, guardian_pk=g.pk))
            s.add(
                Consent(
                    student_pk=st.pk,
                    kind=ConsentKind.NOTIFICATIONS.value,
                    granted=True,
                    given_by="bench",
                    document="bench",
                    signed_on=dt.date.today(),
                    recorded_at_ms=now,
                )
            )
            phones.append(phone)
        token = add_device(s, settings, SCHOOL, DEVICE)
        enrol(s, settings, token, DEVICE, public_key_raw(key))
        s.commit()
    engine.dispose()
    return key, phones


def _baseline(sms: SmsSink, n: int) -> list[float]:
    """Bare apprise sends to the same sink: call start -> arrival."""
    out: list[float] = []
    for i in range(n):
        a = apprise.Apprise()
        a.add(sms.url() + f"?%3Ato=%2B7799{i:07d}&%2BIdempotency-Key=base-{i}")
        t0 = time.time()
        a.notify(body=f"baseline {i}", title="Qaqpa")
        arrived = next(r.at for r in reversed(sms.requests) if r.key == f"base-{i}")
        out.append((arrived - t0) * 1000)
    return out


def bench_notify(
    *,
    seconds: float = 10.0,
    rate: float = 20.0,
    workers: int | None = None,
    gateway_ms: float = 0.0,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    database_url: str | None = None,
) -> dict[str, Any]:
    taps = max(1, int(seconds * rate))
    prefix = f"qaqpa-bench/{uuid.uuid4().hex[:8]}/v1"
    with contextlib.ExitStack() as stack:
        url = database_url if database_url is not None else stack.enter_context(scratch_database())
        settings = ServerSettings(
            database_url=url,
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            topic_prefix=prefix,
            centre_key_file=stack.enter_context(temporary_key_file()),
        )
        key, phones = _setup(url, settings, taps)
        sms = stack.enter_context(SmsSink())
        sms.slow(gateway_ms / 1000)
        nset = NotifySettings(sms_url=sms.url())
        if workers is not None:
            nset.workers = workers
        stack.enter_context(IngestWorker(settings))
        stack.enter_context(NotifyService(url, nset))
        edge = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-notify-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        edge.connect(mqtt_host, mqtt_port)
        edge.loop_start()
        stack.callback(edge.loop_stop)
        stack.callback(edge.disconnect)
        tap_at: dict[str, int] = {}
        topic = topics.events(SCHOOL, DEVICE, prefix)
        t_start = time.monotonic()
        for i in range(taps):
            # open loop: tap i happens at start + i / rate, whatever the pipeline does
            delay = t_start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            at = now_ms()
            ev = EntryEvent(seq=i + 1, at_ms=at, terminal="gate-1", student_id=f"bn-{i}")
            batch = EventBatch(
                school=SCHOOL, device=DEVICE, sent_at_ms=at, events=list[Event]([ev])
            )
            edge.publish(topic, sign_batch(batch, key), qos=1)
            tap_at[phones[i]] = at
        delivered = sms.wait_for(taps, timeout=120)
        latencies = [r.at * 1000 - tap_at[r.to] for r in delivered if r.to in tap_at]
        # where the time went, from the rows themselves
        engine = make_engine(url)
        with session_factory(engine)() as s:
            rows = s.execute(
                select(
                    StoredEvent.at_ms,
                    StoredEvent.received_at_ms,
                    OutboxMessage.created_at_ms,
                    OutboxMessage.sent_at_ms,
                ).join(
                    OutboxMessage,
                    (OutboxMessage.device_pk == StoredEvent.device_pk)
                    & (OutboxMessage.seq == StoredEvent.seq),
                )
            ).all()
        engine.dispose()
        baseline = _baseline(sms, 50)  # through the same (possibly slow) gateway
    p95 = _pct(latencies, 0.95)
    base_p95 = _pct(baseline, 0.95)
    return {
        "benchmark": "notify",
        "path": "edge publish (Mosquitto) -> ingest -> PostgreSQL -> planner -> worker -> apprise json:// -> SMS sink",
        "taps": taps,
        "rate_per_s": rate,
        "workers": nset.workers,
        "gateway_ms": gateway_ms,
        "delivered": len(latencies),
        "tap_to_gateway": _summary(latencies),
        "stages_p50_ms": {
            "tap_to_stored": round(_pct([r[1] - r[0] for r in rows], 0.5), 1),
            "stored_to_planned": round(_pct([r[2] - r[1] for r in rows], 0.5), 1),
            "planned_to_sent": round(_pct([r[3] - r[2] for r in rows if r[3]], 0.5), 1),
        },
        "baseline_bare_apprise_send": _summary(baseline),
        "p95_ratio_to_baseline": round(p95 / base_p95, 1) if base_p95 else None,
        "target_p95_ms": 5000,
        "meets_target": bool(latencies) and len(latencies) == taps and p95 <= 5000,
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    return bench_notify(
        seconds=getattr(args, "seconds", 10.0),
        rate=getattr(args, "rate", 20.0),
        workers=getattr(args, "notify_workers", None),
        gateway_ms=getattr(args, "gateway_ms", 0.0),
        mqtt_port=getattr(args, "mqtt_port", 1883),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.bench_notify")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=20.0, help="taps per second")
    p.add_argument("--notify-workers", type=int, default=None, help="default: QAQPA_NOTIFY_WORKERS")
    p.add_argument("--gateway-ms", type=float, default=0.0, help="the SMS gateway's answer time")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--json", action="store_true", help="one line of JSON")
    args = p.parse_args(argv)
    print(json.dumps(bench(args), indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
