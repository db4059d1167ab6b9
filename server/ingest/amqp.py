"""Ingest from a RabbitMQ cluster: the edges publish MQTT 3.1.1 QoS 1 to any node (the
``rabbitmq_mqtt`` plugin routes each batch to ``amq.topic``), a replicated quorum queue bound to
the events topics holds them, and this worker consumes it over AMQP 0-9-1 (pika).

Same interface and store as the MQTT worker (``IngestStore``); what changes is the order of the
acknowledgements: a delivery is acknowledged to the queue only after its batch's PostgreSQL
transaction committed and the edge's ack was handed to the broker. A worker killed before that
leaves the deliveries unacknowledged, the queue gives them to another worker (or this one again),
and the idempotent insert stores each event once. A node that dies takes no acknowledged batch
with it: the quorum queue confirmed it on a majority of nodes before the edge got its PUBACK.

RabbitMQ's MQTT plugin swaps ``/`` and ``.`` between topic and routing key; ``to_routing_key``
and ``to_topic`` do the same (school and device ids may contain dots).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import ssl
import threading
import time
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from protocol import topics
from server.centre_key import CentreSigner
from server.db import is_unreachable, make_engine
from server.ingest.core import IngestOutcome, IngestStore
from server.service import ThreadedService
from server.settings import ServerSettings

log = logging.getLogger(__name__)

EXCHANGE = "amq.topic"  # where rabbitmq_mqtt publishes and delivers
OTHER_ERROR_TRIES = (
    3  # an error of the work itself (a refused message, a deadlock) is tried this often
)
_SWAP = str.maketrans({"/": ".", ".": "/"})


def to_routing_key(topic: str) -> str:
    """The AMQP routing key RabbitMQ's MQTT plugin uses for an MQTT topic (and the reverse)."""
    return topic.translate(_SWAP)


to_topic = to_routing_key  # the swap is its own inverse


def events_binding(prefix: str) -> str:
    """The routing-key pattern of every device's events under ``prefix``."""
    return to_routing_key(f"{prefix}/school/+/device/+/events").replace("+", "*")


def declare(channel: BlockingChannel, settings: ServerSettings) -> None:
    """The quorum queue and its binding (idempotent: every worker declares them at start)."""
    channel.queue_declare(settings.amqp_queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(
        settings.amqp_queue, EXCHANGE, routing_key=events_binding(settings.topic_prefix)
    )


def connection_parameters(settings: ServerSettings) -> list[pika.URLParameters]:
    """One node's connection parameters per ``amqp_urls`` entry; over TLS (``amqps://``, the
    settings refuse plain AMQP then) with ``amqp_ca_file`` as the only CA trusted and the node's
    host name checked against its certificate."""
    ctx = settings.amqp_tls_context()
    out = []
    for url in settings.amqp_urls:
        p = pika.URLParameters(url)
        if ctx is not None:
            p.ssl_options = pika.SSLOptions(ctx, server_hostname=p.host)
        p.heartbeat = 10
        p.blocked_connection_timeout = 30
        p.connection_attempts = 1
        p.socket_timeout = 5
        out.append(p)
    return out


def tls_failure(err: BaseException) -> ssl.SSLError | None:
    """The TLS error of a failed connection: raised as it is by the handshake, or wrapped in one
    of pika's errors; None for any other failure."""
    seen: set[int] = set()
    todo: list[object] = [err]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLError):
            return e
        todo += [*e.args, e.__cause__, e.__context__]
    return None


class AmqpIngestWorker(ThreadedService):
    """Start with ``start()`` (or ``with``/``async with``); ``stop()`` finishes the batch in hand
    and closes. One thread owns the connection (pika is not thread-safe)."""

    def __init__(self, settings: ServerSettings, engine: Engine | None = None) -> None:
        if not settings.amqp_urls:
            raise ValueError("ingest_source is amqp but amqp_urls names no RabbitMQ node")
        self._settings = settings
        self._signer = CentreSigner.from_settings(settings)  # raises before anything starts
        self._engine = engine if engine is not None else make_engine(settings.database_url)
        self._own_engine = engine is None
        self._store = IngestStore(
            self._engine,
            topic_prefix=settings.topic_prefix,
            after_commit=self._fault_hook,
            before_commit=self._fault_before_commit,
        )
        self._params = connection_parameters(settings)
        self._node = int.from_bytes(os.urandom(2), "big") % len(self._params)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._failed: str | None = None  # why start() gives up before waiting its timeout
        self._thread: threading.Thread | None = None
        self._commits = 0
        self.events_inserted = 0
        self.batches_rejected = 0
        self.reconnects = 0

    # ---------------------------------------------------------------------------- thread

    def _fault_hook(self) -> None:
        self._commits += 1
        limit = self._settings.fault_kill_after_insert
        if limit and self._commits >= limit:
            log.error("fault injection: SIGKILL after commit %d, before the acks", self._commits)
            os.kill(os.getpid(), signal.SIGKILL)

    def _fault_before_commit(self) -> None:
        limit = self._settings.fault_kill_before_commit
        if limit and self._commits + 1 >= limit:
            log.error("fault injection: SIGKILL before commit %d", self._commits + 1)
            os.kill(os.getpid(), signal.SIGKILL)

    def _run(self) -> None:
        delay = 0.2
        tls_in_row = 0
        while not self._stop.is_set():
            params = self._params[self._node]
            try:
                conn = pika.BlockingConnection(params)
            except (pika.exceptions.AMQPError, OSError) as err:  # ssl.SSLError is an OSError
                tls = tls_failure(err)
                if tls is None:
                    tls_in_row = 0
                    log.warning(
                        "ingest: RabbitMQ node %s:%s unreachable: %s", params.host, params.port, err
                    )
                else:
                    # A wrong CA or host name does not heal by retrying: said plainly, and
                    # start() gives up once every node failed so in a row.
                    tls_in_row += 1
                    why = (
                        f"TLS with RabbitMQ node {params.host}:{params.port} failed (check "
                        f"amqp_ca_file and that the node's certificate names {params.host}): {tls}"
                    )
                    log.error("ingest: %s", why)
                    if tls_in_row >= len(self._params) and not self._ready.is_set():
                        self._failed = why
                        self._ready.set()
                        return
                self._node = (self._node + 1) % len(self._params)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            tls_in_row = 0
            try:
                self._consume(conn)
            except (pika.exceptions.AMQPError, OSError) as err:
                if self._stop.is_set():
                    break
                # Unacknowledged deliveries go back to the queue with the connection.
                log.warning("ingest: lost RabbitMQ node %s:%s: %s", params.host, params.port, err)
                self.reconnects += 1
                self._node = (self._node + 1) % len(self._params)
            finally:
                if conn.is_open:
                    with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                        conn.close()

    def _consume(self, conn: pika.BlockingConnection) -> None:
        limit = self._settings.ingest_max_messages_per_tx
        ch = conn.channel()
        declare(ch, self._settings)
        ch.basic_qos(prefetch_count=limit * 2)
        log.info("ingest: consuming %s on %s", self._settings.amqp_queue, conn)
        self._ready.set()
        batch: list[tuple[int, str, bytes]] = []
        deadline = 0.0
        for method, _props, body in ch.consume(self._settings.amqp_queue, inactivity_timeout=0.05):
            if method is not None and body is not None:
                if not batch:
                    deadline = time.monotonic() + 0.05
                batch.append((method.delivery_tag, to_topic(method.routing_key), body))
            if batch and (len(batch) >= limit or method is None or time.monotonic() >= deadline):
                self._process(ch, batch)
                batch = []
            if self._stop.is_set() and not batch:
                break
        ch.cancel()

    def _process(self, ch: BlockingChannel, batch: list[tuple[int, str, bytes]]) -> None:
        last_tag = batch[-1][0]
        try:
            outcome = self._store.ingest([(topic, body) for _tag, topic, body in batch])
        except SQLAlchemyError as err:
            if len(batch) > 1 and not is_unreachable(err):
                # Not the database's absence: maybe one message the database refuses; it must
                # not hold back the others, so each is stored in a transaction of its own.
                log.warning(
                    "ingest: a transaction of %d messages failed (%s); storing them one by one",
                    len(batch),
                    type(err).__name__,
                )
                for i, item in enumerate(batch):
                    if not self._process_one(ch, item):
                        time.sleep(1.0)
                        ch.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
                        log.warning("ingest: %d message(s) returned to the queue", len(batch) - i)
                        return
                return
            # Back to the queue, in order, for the next try (after a pause: the database is
            # probably down); nothing was acknowledged to the edge either.
            log.exception("ingest: database error, %d message(s) returned to the queue", len(batch))
            time.sleep(1.0)
            ch.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
            return
        self._publish_acks(ch, outcome)
        ch.basic_ack(delivery_tag=last_tag, multiple=True)

    def _process_one(self, ch: BlockingChannel, item: tuple[int, str, bytes]) -> bool:
        """Store one message and acknowledge it; False when the database is unreachable (the
        caller returns it to the queue). A message that fails otherwise, ``OTHER_ERROR_TRIES``
        times, is acknowledged to the queue unstored: the edge, with no signed ack, sends it
        again later, and the others go on meanwhile."""
        tag, topic, body = item
        for tries in range(1, OTHER_ERROR_TRIES + 1):
            try:
                outcome = self._store.ingest([(topic, body)])
            except SQLAlchemyError as err:
                if is_unreachable(err):
                    return False
                if tries == OTHER_ERROR_TRIES:
                    log.error("ingest: a message not stored after %d tries: %s", tries, err)
                    ch.basic_ack(delivery_tag=tag)
                    return True
                continue
            self._publish_acks(ch, outcome)
            ch.basic_ack(delivery_tag=tag)
            return True
        return True

    def _publish_acks(self, ch: BlockingChannel, outcome: IngestOutcome) -> None:
        self.events_inserted += outcome.events_inserted
        self.batches_rejected += sum(1 for r in outcome.rejections if r.reason != "duplicate")
        prefix = self._settings.topic_prefix
        for ack in outcome.acks:
            # An ack the broker loses costs a re-send by the edge, never an event.
            ch.basic_publish(
                EXCHANGE,
                to_routing_key(topics.ack(ack.school, ack.device, prefix)),
                self._signer.sign(ack, ack.school, ack.device),
            )

    # ------------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest-amqp", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise ConnectionError(f"no RabbitMQ node took the connection within {timeout} s")
        if self._failed is not None:
            why = self._failed
            self.stop()
            raise ConnectionError(f"ingest cannot connect to RabbitMQ: {why}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._store.close()
        if self._own_engine:
            self._engine.dispose()

    @property
    def connected_node(self) -> Any:
        p = self._params[self._node]
        return f"{p.host}:{p.port}"
