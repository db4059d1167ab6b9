"""Downlink over MQTT: the per-school change log (``server.sync.changelog``) sent as deltas to every device of the school, SyncAck handling
(catch-up deltas, or a snapshot when a device is too far behind or asks), and device status.

Deltas go only to the sync topics of devices registered to the school whose log changed, so
card bindings never reach another school's edge (DESIGN invariant 5; the broker ACL also stops
a device from reading another device's topics).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine, column, select, table, update
from sqlalchemy.orm import Session

from protocol import topics
from protocol.codec import open_envelope
from protocol.errors import ProtocolError
from protocol.messages import (
    FEATURE_BALANCE_TOTALS,
    Change,
    DeviceStatus,
    EdgeFeatures,
    SyncAck,
    SyncDelta,
)
from server.centre_key import CentreSigner
from server.clock import now_ms
from server.db import is_unreachable, make_engine, session_factory
from server.models import Device, School
from server.mqtt import connect_and_wait, make_client, reason_failed, shared
from server.people.models import Student
from server.service import DatabasePacing, StartAbandoned, ThreadedService
from server.settings import ServerSettings
from server.staffpins import service as staffpins
from server.sync.cardmove import finish_move
from server.sync.changelog import append_changes, changes_after, legacy_money, load_state

log = logging.getLogger(__name__)

_STOP = ("", b"")

__all__ = ["DownlinkService"]


class DownlinkService(ThreadedService):
    """Publishes deltas, answers SyncAcks, records DeviceStatus. Thread-safe ``publish_changes``."""

    def __init__(self, settings: ServerSettings, engine: Engine | None = None) -> None:
        self._settings = settings
        self._signer = CentreSigner.from_settings(settings)  # raises before anything starts
        self._engine = engine if engine is not None else make_engine(settings.database_url)
        self._own_engine = engine is None
        self._sessions = session_factory(self._engine)
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=10_000)
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = make_client(settings, "downlink")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self.snapshots_sent = 0
        self.deltas_sent = 0
        # school -> the newest version already sent to its devices. Versions appended by another
        # process (the console) are found by _watch and sent from here.
        self._sent: dict[str, int] = {}
        self._sent_lock = threading.Lock()
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------------------ publishing

    def publish_changes(self, school: str, changes: Sequence[Change]) -> int:
        """Append the changes as a new version and publish the delta; returns the version."""
        with self._sent_lock, self._sessions() as session:
            delta = append_changes(session, school, changes)
            session.commit()
            self._send_delta(session, school, delta)
        return delta.version

    def _send_delta(self, session: Session, school: str, delta: SyncDelta) -> None:
        devices = self._school_devices(session, school)
        for device in devices:  # signed for each device: it verifies its own address
            self._send(school, device, self._signer.sign(delta, school, device))
            self.deltas_sent += 1
        self._sent[school] = max(self._sent.get(school, 0), delta.version)
        log.info(
            "school %s at version %d, sent to %d device(s)", school, delta.version, len(devices)
        )

    def _school_heads(self, session: Session) -> dict[str, int]:
        return {sid: v for sid, v in session.execute(select(School.id, School.sync_version))}

    def _watch(self) -> None:
        """Send the versions other processes appended (console edits, the due-policy job) to
        the school's devices."""
        interval = self._settings.downlink_poll_s
        pacing = DatabasePacing("downlink", log)  # the database away: a line, not a flood
        pause = interval
        while not self._stop_watch.wait(pause):
            pause = interval
            ok = True
            for step in (self._send_new_versions, self._send_due_pins):  # each on its own
                try:
                    step()
                except Exception as err:
                    ok = False
                    pause = max(pause, pacing.failed(err))
            if ok:
                pacing.succeeded()

    def _send_pins(self, school: str, device: str, *, resend: bool) -> None:
        """Sealed staff PINs the device has not acknowledged (centre-signed, like the rest)."""
        with self._sessions() as session:
            msg = staffpins.due(session, school, device, now=now_ms(), resend=resend)
            if msg is None:
                return
            session.commit()
        self._send(school, device, self._signer.sign(msg, school, device))
        log.info("downlink: %d sealed staff PIN(s) to %s/%s", len(msg.pins), school, device)

    def _send_due_pins(self) -> None:
        """PINs set by the console since the last look (or not acknowledged for a while), to
        the devices that are online."""
        with self._sessions() as session:
            targets = staffpins.devices_with_due_pins(session, now=now_ms())
        for school, device in targets:
            self._send_pins(school, device, resend=False)

    def _send_new_versions(self) -> None:
        with self._sent_lock, self._sessions() as session:
            for school, head in self._school_heads(session).items():
                sent = self._sent.get(school, 0)
                if head <= sent:
                    continue
                delta = SyncDelta(
                    school=school,
                    version=head,
                    base_version=sent,
                    changes=changes_after(session, school, sent),
                )
                self._send_delta(session, school, delta)

    @staticmethod
    def _school_devices(session: Session, school: str) -> list[str]:
        return list(
            session.execute(
                select(Device.device_id).where(
                    Device.school_id == school,
                    Device.public_key.is_not(None),
                    Device.revoked_at_ms.is_(None),
                )
            ).scalars()
        )

    def _send(self, school: str, device: str, payload: bytes) -> None:
        self._client.publish(
            topics.sync(school, device, self._settings.topic_prefix), payload, qos=1
        )

    # ------------------------------------------------------------------------ inbound

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        if reason_failed(reason_code):
            log.error("downlink: broker refused the connection: %s", reason_code)
            return
        p = self._settings.topic_prefix
        st = self._settings
        client.subscribe(
            [
                (shared(st, "downlink", f"{p}/school/+/device/+/sync/ack"), 1),
                (shared(st, "downlink", f"{p}/school/+/device/+/status"), 1),
            ]
        )

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        # Ready only once the broker has the subscription: nothing published after start()
        # returns can be missed.
        if any(getattr(c, "is_failure", False) for c in codes):
            log.error("subscription refused by the broker: %s", codes)
            return
        self._connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put((msg.topic, bytes(msg.payload)))

    def _run(self) -> None:
        while True:
            topic, payload = self._queue.get()
            if (topic, payload) == _STOP:
                return
            try:
                self._handle(topic, payload)
            except ProtocolError as err:
                log.warning("downlink: ignored an invalid message on %s: %s", topic, err)
            except Exception:
                log.exception("downlink: failed to handle a message on %s", topic)

    def _handle(self, topic: str, payload: bytes) -> None:
        school, device, rest = topics.parse_device_topic(topic, self._settings.topic_prefix)
        env = open_envelope(payload)
        if rest == "sync/ack" and env.type_name == "edge_box_key":
            with self._sessions() as session:
                if staffpins.register_box_key(session, school, device, env):
                    session.commit()
        elif rest == "sync/ack" and env.type_name == "staff_pins_ack":
            with self._sessions() as session:
                if staffpins.record_receipts(session, school, device, env):
                    session.commit()
        elif rest == "sync/ack" and env.type_name == "edge_features":
            self._handle_features(school, device, env.message(EdgeFeatures))
        elif rest == "sync/ack":
            self._handle_sync_ack(school, device, env.message(SyncAck))
            self._send_pins(school, device, resend=True)
        elif rest == "status":
            self._handle_status(school, device, env.message(DeviceStatus))

    def _handle_features(self, school: str, device: str, msg: EdgeFeatures) -> None:
        """What the edge reads beyond the release before (sent ahead of its SyncAck)."""
        if msg.school != school or msg.device != device:
            log.warning("downlink: EdgeFeatures for another device on %s/%s", school, device)
            return
        with self._sessions() as session:
            session.execute(
                update(Device)
                .where(Device.school_id == school, Device.device_id == device)
                .values(downlink_features=sorted(set(msg.features)))
            )
            session.commit()

    def _handle_sync_ack(self, school: str, device: str, ack: SyncAck) -> None:
        if ack.school != school or ack.device != device:
            log.warning("downlink: SyncAck for another device on %s/%s", school, device)
            return
        with self._sessions() as session:
            row = session.execute(
                select(Device).where(Device.school_id == school, Device.device_id == device)
            ).scalar_one_or_none()
            if row is None:
                log.warning("downlink: SyncAck from unknown device %s/%s", school, device)
                return
            totals = FEATURE_BALANCE_TOTALS in (row.downlink_features or [])
            row.applied_version = ack.applied_version
            row.applied_at_ms = now_ms()
            session.flush()
            finish_move(session, school)  # every edge now holds the school's numbers?
            announcement = self._signer.announcement(school, device)
            if announcement is not None:  # a rotation: first, the next key under the current
                self._send(school, device, announcement)
            head = (
                session.execute(
                    select(School.sync_version).where(School.id == school)
                ).scalar_one_or_none()
                or 0
            )
            session.commit()
            behind = head - ack.applied_version
            if ack.need_snapshot or behind > self._settings.snapshot_threshold or behind < 0:
                # the money as one net per student, or, to an edge of the release before, as
                # every credit and debit ever sent (the lists it reads)
                legacy = None if totals else legacy_money(session, school, head)
                snap = load_state(session, school, head).snapshot(
                    school, head, legacy, leave_out=_erased(session, school)
                )
                self._send(school, device, self._signer.sign(snap, school, device))
                self.snapshots_sent += 1
                log.info(
                    "downlink: snapshot v%d to %s/%s (money %s)",
                    head,
                    school,
                    device,
                    "as lists" if legacy is not None else "as nets",
                )
            elif behind > 0:
                delta = SyncDelta(
                    school=school,
                    version=head,
                    base_version=ack.applied_version,
                    changes=changes_after(session, school, ack.applied_version),
                )
                self._send(school, device, self._signer.sign(delta, school, device))
                self.deltas_sent += 1

    def _handle_status(self, school: str, device: str, status: DeviceStatus) -> None:
        if status.school != school or status.device != device:
            return
        with self._sessions() as session:
            row = session.execute(
                select(Device.online).where(Device.school_id == school, Device.device_id == device)
            ).first()
            if row is None:
                return
            values: dict[str, Any] = {
                "last_status": status.model_dump(mode="json"),
                "last_seen_ms": now_ms(),
                "online": status.online,
            }
            if row.online != status.online:
                values["online_changed_ms"] = status.at_ms
            session.execute(
                update(Device)
                .where(Device.school_id == school, Device.device_id == device)
                .values(**values)
            )
            session.commit()

    # ------------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> None:
        self._sent = self._first_heads()  # first: a stop while it waits leaves nothing running
        self._thread = threading.Thread(target=self._run, name="downlink", daemon=True)
        self._thread.start()
        connect_and_wait(self._client, self._settings, self._connected, timeout)
        self._stop_watch.clear()
        self._watcher = threading.Thread(target=self._watch, name="downlink-watch", daemon=True)
        self._watcher.start()

    def _first_heads(self) -> dict[str, int]:
        """The schools' versions at start; started while the database is down, it waits for it
        (a line when it is found away, one when it answers) instead of exiting, until it is asked
        to stop (``StartAbandoned``)."""
        pacing = DatabasePacing("downlink", log)
        while True:
            try:
                with self._sessions() as session:
                    heads = self._school_heads(session)
            except Exception as err:
                if not is_unreachable(err):
                    raise
                if self.stop_requested.wait(pacing.failed(err)):
                    raise StartAbandoned(
                        "downlink: stopped while waiting for the database; not started"
                    ) from err
                continue
            pacing.succeeded()
            return heads

    def stop(self) -> None:
        self._stop_watch.set()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
            self._watcher = None
        self._client.disconnect()
        self._client.loop_stop()
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None
        if self._own_engine:
            self._engine.dispose()


# server.retention's table of erasures, by name (retention imports the sync side)
_ERASURES = table("retention_erasures", column("student_pk"), column("school_id"))


def _erased(session: Session, school: str) -> set[str]:
    """The ids (tokens) of the school's erased students: the log renamed their money to them,
    and the edge holds it under the old id, so a snapshot's nets leave them out (the edge then
    leaves what it has)."""
    return set(
        session.scalars(
            select(Student.ref)
            .join(_ERASURES, _ERASURES.c.student_pk == Student.pk)
            .where(_ERASURES.c.school_id == school)
        )
    )
