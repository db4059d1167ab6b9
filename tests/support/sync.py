"""Helpers of the sync tests: events, signed batches, an MQTT probe client, edge sync settings,
downlink changes."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session

from edge.sync import SyncSettings
from protocol.codec import SCHEMA_VERSION, canonical, signed_bytes
from protocol.messages import (
    CardBind,
    CardBinding,
    EntryEvent,
    Event,
    EventBatch,
    OwnerKind,
    StudentRecord,
    StudentUpsert,
)
from protocol.signing import generate_key, public_key_raw, sign_batch
from server.devices import add_device, enrol
from server.models import Device
from server.settings import ServerSettings
from tests.support.centre import CENTRE_PUBLIC_B64
from tests.support.wait import wait_until


def entries(first: int, n: int, at_ms: int = 1_700_000_000_000) -> list[Event]:
    return [
        EntryEvent(seq=s, at_ms=at_ms + s, terminal="t1", student_id=f"st{s % 97}")
        for s in range(first, first + n)
    ]


def signed(school: str, device: str, key: Ed25519PrivateKey, first: int, n: int) -> bytes:
    batch = EventBatch(
        school=school, device=device, sent_at_ms=1_700_000_000_000, events=entries(first, n)
    )
    return sign_batch(batch, key)


def signed_raw(plain: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """An event batch as a newer release would sign it: the body as given, not as this
    release's models would write it."""
    body = canonical(plain)
    sig = key.sign(signed_bytes("event_batch", body))
    return canonical({"v": SCHEMA_VERSION, "t": "event_batch", "b": body, "s": sig})


def enrolled_device(
    session: Session, settings: ServerSettings, school: str, device: str
) -> tuple[Ed25519PrivateKey, str, str]:
    """Add and enrol a device; returns (key, mqtt username, mqtt password)."""
    key = generate_key()
    token = add_device(session, settings, school, device)
    creds = enrol(session, settings, token, device, public_key_raw(key))
    session.commit()
    return key, creds.mqtt_username, creds.mqtt_password


class Probe:
    """A paho client that records what it receives; for publishing and observing in tests."""

    def __init__(
        self,
        port: int,
        username: str | None = None,
        password: str | None = None,
        *,
        protocol: str = "5",
        ca_file: Any = None,
    ) -> None:
        """``protocol`` "3.1.1" for a RabbitMQ cluster; ``ca_file``: TLS, that CA only."""
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.refused: Any = None
        self.suback: list[Any] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"probe-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311,
        )
        if ca_file is not None:
            import ssl

            self.client.tls_set_context(ssl.create_default_context(cafile=str(ca_file)))
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            self.refused = rc
        else:
            self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not self.connected.is_set() and self.refused is None:
            self.refused = rc  # a broker that closes the socket instead of a refusing CONNACK

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, rcs: Any, _p: Any) -> None:
        self.suback.extend(rcs)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def subscribe(self, topic: str) -> None:
        before = len(self.suback)
        self.client.subscribe(topic, qos=1)
        wait_until(lambda: len(self.suback) > before, 5)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def received(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def journal_rush(store: Any, n: int, *, chunk: int = 2000, at_ms: int | None = None) -> int:
    """Journal ``n`` entry events through the store (the pipeline's path); returns the last seq."""
    from edge.store import JournalEntry

    base = at_ms if at_ms is not None else time.time_ns() // 1_000_000
    done = 0
    last = 0
    while done < n:
        k = min(chunk, n - done)
        entries_ = [
            JournalEntry(
                EntryEvent(
                    seq=1, at_ms=base + done + i, terminal="gate-1", student_id=f"st{i % 500}"
                )
            )
            for i in range(k)
        ]
        async with store.write_lock:
            evs = await store.journal(entries_)
        last = evs[-1].seq
        done += k
    return last


def server_seqs(engine: Any, school: str, device: str) -> list[int]:
    from sqlalchemy import select

    from server.models import StoredEvent

    with engine.connect() as c:
        return list(
            c.execute(
                select(StoredEvent.seq)
                .join(Device, Device.pk == StoredEvent.device_pk)
                .where(Device.school_id == school, Device.device_id == device)
                .order_by(StoredEvent.seq)
            ).scalars()
        )


def write_key_dir(
    key_dir: Any,
    key: Ed25519PrivateKey,
    school: str,
    device: str,
    port: int,
    prefix: str,
    username: str | None = None,
    password: str | None = None,
    centre_key: str | None = CENTRE_PUBLIC_B64,
) -> None:
    """What ``qaqpa edge enrol`` leaves behind, for tests that skip the HTTP enrolment
    (``centre_key`` None: an enrolment from before signed downlink)."""
    import json
    import os

    from protocol.signing import private_key_pem

    key_dir.mkdir(parents=True, exist_ok=True)
    (key_dir / "device.key").write_bytes(private_key_pem(key))
    os.chmod(key_dir / "device.key", 0o600)
    (key_dir / "mqtt.json").write_text(
        json.dumps(
            {
                "school": school,
                "device": device,
                "mqtt_username": username,
                "mqtt_password": password,
                "topic_prefix": prefix,
                "mqtt_host": "127.0.0.1",
                "mqtt_port": port,
            }
        )
    )
    if centre_key is not None:
        (key_dir / "centre.json").write_text(json.dumps({"current": centre_key, "next": None}))


def sync_settings(
    prefix: str, port: int, user: str | None = None, pw: str | None = None
) -> SyncSettings:
    return SyncSettings(
        mqtt_host="127.0.0.1",
        mqtt_port=port,
        mqtt_username=user,
        mqtt_password=pw,
        topic_prefix=prefix,
        ack_timeout_s=2.0,
        gap_grace_s=0.5,
        backoff_min_s=0.2,
        backoff_max_s=2.0,
        centre_key=CENTRE_PUBLIC_B64,
    )


def student(sid: str) -> StudentUpsert:
    return StudentUpsert(student=StudentRecord(id=sid, grade=5, class_name="5A", shift=1))


def bind(cred: str, sid: str) -> CardBind:
    return CardBind(card=CardBinding(credential=cred, owner_kind=OwnerKind.STUDENT, owner_id=sid))
