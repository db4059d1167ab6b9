"""The ingest worker: a shared MQTT 5 subscription feeding ``IngestStore`` from a thread.

paho's network loop runs in its own thread and only enqueues messages; one processing thread
drains whatever has queued up (up to ``ingest_max_messages_per_tx``), writes it in one
transaction and publishes the acks. Workers keep no state that matters: run as many as needed.

A message is acknowledged to the broker (QoS 1 PUBACK, paho's manual ack) only after the
transaction that stored it has committed, and the edge gets its signed ack only then too. When the
database cannot be reached (stopped, restarting, the connection cut mid-transaction) the same
messages are tried again with a growing pause, unacknowledged, until it answers: the worker
neither exits nor drops them, and needs no restart.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine

from protocol import topics
from server.centre_key import CentreSigner
from server.db import is_unreachable, make_engine
from server.ingest.core import PARKED, IngestOutcome, IngestStore
from server.mqtt import connect_and_wait, make_client, reason_failed
from server.service import DatabasePacing, ThreadedService
from server.settings import ServerSettings

log = logging.getLogger(__name__)

# Messages received and not yet stored. While the database is away the worker holds them
# unacknowledged; when the queue is full paho's network thread waits, the broker keeps the rest
# (or drops them past its queue limit: the edges send again what has no signed ack). A Receive
# Maximum (QAQPA_SERVER_MQTT_RECEIVE_MAXIMUM, MQTT 5) below this keeps the thread from waiting,
# at the cost of a round trip per window; none is set by default (as before).
QUEUE_SIZE = 2000
RETRY_FIRST_S = 0.2  # the first pause after a failed transaction; doubled up to RETRY_CAP_S
RETRY_CAP_S = 5.0
OTHER_ERROR_TRIES = 3  # an error of the work itself (deadlock, bug) is tried this often


class _Message(NamedTuple):
    topic: str
    payload: bytes
    mid: int
    qos: int
    link: int  # the broker connection it came on: a PUBACK goes back on that one only


_STOP = _Message("", b"", 0, 0, -1)


class IngestWorker(ThreadedService):
    """Start with ``start()`` (or ``with``/``async with``); ``stop()`` drains and disconnects."""

    def __init__(self, settings: ServerSettings, engine: Engine | None = None) -> None:
        self._settings = settings
        self._signer = CentreSigner.from_settings(settings)  # raises before anything starts
        self._engine = engine if engine is not None else make_engine(settings.database_url)
        self._own_engine = engine is None
        self._queue: queue.Queue[_Message] = queue.Queue(maxsize=QUEUE_SIZE)
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._commits = 0
        self._link = 0  # counts broker connections (paho's thread writes, ours reads)
        self._client = make_client(settings, "ingest")
        self._client.manual_ack_set(True)  # PUBACK after the commit, see _ack
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._in_hand = 0  # messages in the transaction being written (for the fault log)
        self._store = IngestStore(
            self._engine,
            topic_prefix=settings.topic_prefix,
            after_commit=self._fault_hook,
            before_commit=self._fault_before_commit,
        )
        self.events_inserted = 0
        self.batches_rejected = 0
        self._pacing = DatabasePacing("ingest", log, first_s=RETRY_FIRST_S, cap_s=RETRY_CAP_S)

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
        self._link += 1
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
        # edges re-send what is not acknowledged). With MQTT 5 the Receive Maximum keeps the
        # unacknowledged messages below the queue's size.
        self._queue.put(_Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._link))

    # processing thread -------------------------------------------------------------

    def _fault_hook(self) -> None:
        self._commits += 1
        limit = self._settings.fault_kill_after_insert
        if limit and self._commits >= limit:
            log.error(
                "fault injection: SIGKILL after commit %d (%d message(s)), before the acks",
                self._commits,
                self._in_hand,
            )
            os.kill(os.getpid(), signal.SIGKILL)

    def _fault_before_commit(self) -> None:
        limit = self._settings.fault_kill_before_commit
        if limit and self._commits + 1 >= limit:
            log.error(
                "fault injection: SIGKILL before commit %d (%d message(s))",
                self._commits + 1,
                self._in_hand,
            )
            os.kill(os.getpid(), signal.SIGKILL)

    def _run(self) -> None:
        limit = self._settings.ingest_max_messages_per_tx
        wait_s = self._settings.ingest_batch_wait_ms / 1000
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            messages = [first]
            stop = False
            # What is waiting, and what comes within ``wait_s`` of the first: one transaction
            # for them all (the acks go out after its commit, so waiting adds at most that).
            deadline = time.monotonic() + wait_s
            while len(messages) < limit:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=left)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop = True
                    break
                messages.append(item)
            self._process(messages)
            if stop:
                return

    def _process(self, messages: list[_Message]) -> bool:
        """Store ``messages`` and acknowledge them, trying again while the database is away;
        False when they were given up unstored.

        An error that is not the database's absence (a message whose content the database
        refuses, a deadlock) is not let to hold back the others: the messages are then stored
        one transaction each, so only the one at fault is left unstored. Two given up in a row
        (the work itself fails, whatever the message) give up the rest at once, as a whole
        transaction would be: the edges send them again, nothing is lost."""
        batch = [(m.topic, m.payload) for m in messages]
        self._in_hand = len(messages)
        tries = 0
        while True:
            tries += 1
            try:
                outcome = self._store.ingest(batch)
                break
            except Exception as err:  # the thread outlives any one batch
                if not is_unreachable(err) and len(messages) > 1:
                    log.warning(
                        "ingest: a transaction of %d messages failed (%s); storing them one by one",
                        len(messages),
                        type(err).__name__,
                    )
                    given_up = 0
                    for i, m in enumerate(messages):
                        if self._stopping.is_set():
                            return False  # the rest unacknowledged: sent again
                        given_up = 0 if self._process([m]) else given_up + 1
                        if given_up >= 2 and i + 1 < len(messages):
                            rest = messages[i + 1 :]
                            log.error("ingest: %d message(s) given up unstored", len(rest))
                            self._ack(rest)
                            return False
                    return True
                if not is_unreachable(err) and tries >= OTHER_ERROR_TRIES:
                    # Not the database's absence but the work itself: after a few tries the
                    # broker gets its PUBACK (so the message does not hold a slot of the window
                    # for ever) and the edge no signed ack: it sends the events again later.
                    log.error(
                        "ingest: %d message(s) not stored after %d tries", len(messages), tries
                    )
                    self._ack(messages)
                    return False
                if self._stopping.wait(self._pacing.failed(err)):
                    # Not acknowledged: the broker or the edges send them again.
                    log.warning("ingest: stopping; %d message(s) left unstored", len(messages))
                    return False
        self._pacing.succeeded()
        self._publish_acks(outcome)
        self._ack(messages)
        return True

    def _ack(self, messages: list[_Message]) -> None:
        """PUBACK to the broker, on the connection each message came on (after a reconnect a
        message id may name another message: those are left to the broker's and the edge's
        re-sending)."""
        link = self._link
        for m in messages:
            if m.qos > 0 and m.link == link:
                self._client.ack(m.mid, m.qos)

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

    @property
    def database_down(self) -> bool:
        """The last transaction found the database unreachable (and is being tried again)."""
        return self._pacing.database_down

    @property
    def database_outages(self) -> int:
        """Times the database went away and came back while this worker ran."""
        return self._pacing.outages

    # lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="ingest-db", daemon=True)
        self._thread.start()
        connect_and_wait(self._client, self._settings, self._connected, timeout)

    def stop(self) -> None:
        self._stopping.set()
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
