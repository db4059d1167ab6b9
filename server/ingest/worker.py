"""The ingest worker: a shared MQTT 5 subscription feeding ``IngestStore`` from a thread.

paho's network loop runs in its own thread and only enqueues messages; one processing thread
drains whatever has queued up (up to ``ingest_max_messages_per_tx``), writes it in one
transaction and publishes the acks. Workers keep no state that matters: run as many as needed.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from protocol import topics
from server.centre_key import CentreSigner
from server.db import make_engine
from server.ingest.core import PARKED, IngestOutcome, IngestStore
from server.mqtt import connect_and_wait, make_client, reason_failed
from server.service import ThreadedService
from server.settings import ServerSettings

log = logging.getLogger(__name__)

_STOP = ("", b"")


class IngestWorker(ThreadedService):
    """Start with ``start()`` (or ``with``/``async with``); ``stop()`` drains and disconnects."""

    def __init__(self, settings: ServerSettings, engine: Engine | None = None) -> None:
        self._settings = settings
        self._signer = CentreSigner.from_settings(settings)  # raises before anything starts
        self._engine = engine if engine is not None else make_engine(settings.database_url)
        self._own_engine = engine is None
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=2000)
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._commits = 0
        self._client = make_client(settings, "ingest")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._store = IngestStore(
            self._engine, topic_prefix=settings.topic_prefix, after_commit=self._fault_hook
        )
        self.events_inserted = 0
        self.batches_rejected = 0

    # paho thread ------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason_code: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason_failed(reason_code):
            log.error("ingest: broker refused the connection: %s", reason_code)
            return
        if self._settings.mqtt_protocol == "5":
            sub = topics.shared_events_subscription(
                self._settings.ingest_group, self._settings.topic_prefix
            )
        else:
            sub = f"{self._settings.topic_prefix}/school/+/device/+/events"
        client.subscribe(sub, qos=1)
        log.info("ingest: connected, subscribed to %s", sub)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _f: Any, reason_code: ReasonCode, _p: Properties | None
    ) -> None:
        log.warning("ingest: disconnected from the broker: %s", reason_code)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        # Ready only once the broker has the subscription: nothing published after start()
        # returns can be missed.
        if any(getattr(c, "is_failure", False) for c in codes):
            log.error("subscription refused by the broker: %s", codes)
            return
        self._connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # Blocking here when the queue is full pushes back on the broker (which may drop: the
        # edges re-send what is not acknowledged).
        self._queue.put((msg.topic, bytes(msg.payload)))

    # processing thread -------------------------------------------------------------

    def _fault_hook(self) -> None:
        self._commits += 1
        limit = self._settings.fault_kill_after_insert
        if limit and self._commits >= limit:
            log.error("fault injection: SIGKILL after commit %d, before the acks", self._commits)
            os.kill(os.getpid(), signal.SIGKILL)

    def _run(self) -> None:
        limit = self._settings.ingest_max_messages_per_tx
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            messages = [first]
            stop = False
            while len(messages) < limit:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                messages.append(item)
            self._process(messages)
            if stop:
                return

    def _process(self, messages: list[tuple[str, bytes]]) -> None:
        try:
            outcome = self._store.ingest(messages)
        except SQLAlchemyError:
            # Nothing acknowledged: the edges re-send after their ack timeout.
            log.exception("ingest: database error, %d message(s) not stored", len(messages))
            return
        self._publish_acks(outcome)

    def _publish_acks(self, outcome: IngestOutcome) -> None:
        self.events_inserted += outcome.events_inserted
        self.batches_rejected += sum(
            1 for r in outcome.rejections if r.reason != "duplicate" and r.reason not in PARKED
        )
        for ack in outcome.acks:
            self._client.publish(
                topics.ack(ack.school, ack.device, self._settings.topic_prefix),
                self._signer.sign(ack, ack.school, ack.device),
                qos=1,
            )

    # lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest-db", daemon=True)
        self._thread.start()
        connect_and_wait(self._client, self._settings, self._connected, timeout)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None
        self._store.close()
        if self._own_engine:
            self._engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    IngestWorker(ServerSettings()).run_forever()
