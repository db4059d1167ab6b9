"""Broker cluster bench: RabbitMQ (MQTT plugin, quorum queue) against NATS (MQTT, JetStream R3),
three nodes each on this machine, with one Mosquitto as the baseline measured in the same run.

    qaqpa bench brokers --json          (about 4 minutes here; --seconds sets the failover run)

For each engine, along the path Qaqpa uses (edges publish MQTT 3.1.1 QoS 1; ingest consumes the
replicated queue or stream through the engine's own protocol and acknowledges after its work):

* ``msgs_per_s``: 20 publishers (100 in flight each), 512-byte messages, until the consumer has
  them all;
* ``failover``: publishers at a steady rate spread over the three nodes, the consumer on node 1;
  SIGKILL the node holding the queue's / stream's leader. ``reconnect_s``: per publisher of the
  killed node, kill to its first acknowledged publish on another node; ``consumer_gap_s``: the
  longest pause in deliveries; ``lost``: publishes the broker acknowledged that never reached the
  consumer; ``duplicates``: deliveries beyond the first (publisher re-sends and redeliveries);
* ``rss_per_1000_connections_mb``: resident memory of the three nodes with 1,000 idle MQTT
  connections (spread over the nodes) minus without.

Everything shares the machine's 2 cores with the brokers and other work: the figures are for
comparison in one run, not capacities.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import itertools
import json
import random
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.broker_cluster import (
    NATS_PORTS,
    RABBIT_PORTS,
    NatsCluster,
    RabbitCluster,
    listens,
)

QUEUE = "qaqpa.ingest"
STREAM = "QAQPA_EVENTS"
SUBJECTS = "qaqpa.school.*.device.*.events"
PAYLOAD = 512
MOSQUITTO_PORT = 18700


def _topic(pub: int) -> str:
    return f"qaqpa/school/B{pub}/device/d/events"


def _payload(pub: int, seq: int) -> bytes:
    head = f"{pub}:{seq}:".encode()
    return head + b"x" * (PAYLOAD - len(head))


def _parse(body: bytes) -> tuple[int, int]:
    pub, seq, _ = body.split(b":", 2)
    return int(pub), int(seq)


class Publisher:
    """One simulated edge: MQTT 3.1.1 QoS 1, ``window`` in flight, re-sends what was not
    acknowledged after a reconnect, rotating through the node ports on failure."""

    def __init__(
        self,
        ident: int,
        ports: list[int],
        start: int,
        user: str,
        password: str,
        *,
        total: int,
        rate: float | None,
        window: int = 100,
    ) -> None:
        self.ident = ident
        self.ports = ports
        self.node = start
        self.user, self.password = user, password
        self.total = total
        self.rate = rate
        self.window = window
        self.next_seq = 1
        self.pending: dict[int, int] = {}  # mid -> seq
        self.early: set[int] = set()
        self.acked: set[int] = set()
        self.ack_times: list[tuple[float, int]] = []  # (time, node) of first acks per connection
        self.disconnected_at: float | None = None
        self.reconnects: list[float] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.client: mqtt.Client | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self) -> None:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-{self.ident}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        c.username_pw_set(self.user, self.password)
        c.max_inflight_messages_set(self.window)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self.connected.clear()
        self.client = c
        try:
            c.connect("127.0.0.1", self.ports[self.node], keepalive=5)
        except OSError:
            self._failed()
            return
        c.loop_start()
        if not self.connected.wait(5):
            c.loop_stop()
            with contextlib.suppress(Exception):
                c.disconnect()
            self._failed()
            return
        # what was in flight on the old connection is sent again (the outbox does the same)
        with self.lock:
            again = sorted(self.pending.values())
            self.pending.clear()
            self.early.clear()
        for seq in again:
            self._publish(seq)

    def _failed(self) -> None:
        self.client = None
        self.node = (self.node + 1) % len(self.ports)
        time.sleep(0.2)

    def _on_connect(self, *_a: Any) -> None:
        self.connected.set()

    def _on_disconnect(self, *_a: Any) -> None:
        if self.disconnected_at is None and not self.stop.is_set():
            self.disconnected_at = time.monotonic()
        self.connected.clear()

    def _on_publish(self, c: Any, _u: Any, mid: int, *_a: Any) -> None:
        # never call paho while holding self.lock: paho calls back here under its own lock
        with self.lock:
            if c is not self.client:
                return
            seq = self.pending.pop(mid, None)
            if seq is None:
                self.early.add(mid)  # acknowledged before _publish recorded it
                return
            self._acked(seq)

    def _acked(self, seq: int) -> None:
        self.acked.add(seq)
        if self.disconnected_at is not None:
            self.reconnects.append(time.monotonic() - self.disconnected_at)
            self.disconnected_at = None

    def _publish(self, seq: int) -> None:
        assert self.client is not None
        info = self.client.publish(_topic(self.ident), _payload(self.ident, seq), qos=1)
        with self.lock:
            if info.mid in self.early:
                self.early.discard(info.mid)
                self._acked(seq)
            else:
                self.pending[info.mid] = seq

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            if self.client is None or not self.connected.is_set():
                if self.client is not None:
                    self.client.loop_stop()
                    self.client = None
                    self.node = (self.node + 1) % len(self.ports)
                self._connect()
                continue
            if self.next_seq > self.total:
                if not self.pending:
                    break
                time.sleep(0.01)
                continue
            if self.rate is not None and self.next_seq > (time.monotonic() - t0) * self.rate:
                time.sleep(0.005)
                continue
            if len(self.pending) >= self.window:
                time.sleep(0.001)
                continue
            self._publish(self.next_seq)
            self.next_seq += 1
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(10)


class Received:
    def __init__(self) -> None:
        self.counts: Counter[tuple[int, int]] = Counter()
        self.times: list[float] = []
        self.lock = threading.Lock()

    def add(self, body: bytes) -> None:
        key = _parse(body)
        with self.lock:
            self.counts[key] += 1
            self.times.append(time.monotonic())

    def total(self) -> int:
        with self.lock:
            return len(self.counts)


# -- consumers -----------------------------------------------------------------------------


class RabbitConsumer:
    """pika on a thread: the quorum queue, manual acks, reconnect to the next node on failure."""

    def __init__(self, urls: list[str], start: int, received: Received) -> None:
        self.urls, self.node, self.received = urls, start, received
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import pika

        while not self.stop.is_set():
            try:
                conn = pika.BlockingConnection(pika.URLParameters(self.urls[self.node]))
                ch = conn.channel()
                ch.basic_qos(prefetch_count=500)
                for _m, _p, body in ch.consume(QUEUE, inactivity_timeout=0.2):
                    if self.stop.is_set():
                        break
                    if body is None:
                        continue
                    self.received.add(body)
                    ch.basic_ack(_m.delivery_tag)
                with contextlib.suppress(Exception):
                    conn.close()
            except Exception:
                self.node = (self.node + 1) % len(self.urls)
                time.sleep(0.2)

    def start(self) -> None:
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(10)


class NatsConsumer:
    """nats-py in its own event loop thread: a durable pull consumer on the R3 stream."""

    def __init__(self, urls: list[str], received: Received) -> None:
        self.urls, self.received = urls, received
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        import nats
        from nats.errors import TimeoutError as NatsTimeout

        nc = await nats.connect(
            servers=self.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2
        )
        js = nc.jetstream()
        sub = None
        while not self.stop.is_set():
            try:
                if sub is None:
                    sub = await js.pull_subscribe(SUBJECTS, durable="ingest", stream=STREAM)
                msgs = await sub.fetch(500, timeout=0.5)
                for m in msgs:
                    self.received.add(m.data)
                    await m.ack()
            except NatsTimeout:
                continue
            except Exception:
                await asyncio.sleep(0.2)
        await nc.close()

    def start(self) -> None:
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(10)


class MqttConsumer:
    """The Mosquitto baseline: one QoS 1 subscriber."""

    def __init__(self, port: int, received: Received) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-sub-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv311,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = lambda _c, _u, m: received.add(bytes(m.payload))
        self.port = port

    def start(self) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.connect("127.0.0.1", self.port)
        self.client.subscribe("qaqpa/school/+/device/+/events", qos=1)
        self.client.loop_start()
        done.wait(5)

    def halt(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- setups ----------------------------------------------------------------------------------


def _rabbit_setup(c: RabbitCluster) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(c.amqp_url(0)))
    ch = conn.channel()
    ch.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_bind(QUEUE, "amq.topic", routing_key=SUBJECTS)
    conn.close()


def _nats_setup(c: NatsCluster) -> str:
    """Create the R3 stream; return the name of the node that leads it."""

    async def go() -> str:
        import nats
        from nats.js.api import StorageType, StreamConfig

        nc = await nats.connect(servers=c.nats_urls())
        js = nc.jetstream()
        deadline = time.monotonic() + 30
        while True:
            try:
                await js.add_stream(
                    StreamConfig(
                        name=STREAM, subjects=[SUBJECTS], num_replicas=3, storage=StorageType.FILE
                    )
                )
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        info = await js.stream_info(STREAM)
        await nc.close()
        return str(info.cluster.leader if info.cluster else "")

    return asyncio.run(go())


# -- measurements ------------------------------------------------------------------------------


def _throughput(
    ports: list[int], user: str, password: str, consumer: Any, received: Received, n: int
) -> float:
    pubs = 20
    per = n // pubs
    consumer.start()
    t0 = time.monotonic()
    ps = [
        Publisher(k, ports, k % len(ports), user, password, total=per, rate=None)
        for k in range(pubs)
    ]
    for p in ps:
        p.start()
    deadline = t0 + 300
    while received.total() < per * pubs and time.monotonic() < deadline:
        time.sleep(0.05)
    dt = time.monotonic() - t0
    for p in ps:
        p.halt()
    consumer.halt()
    return round(received.total() / dt)


def _failover(
    ports: list[int],
    user: str,
    password: str,
    consumer: Any,
    received: Received,
    kill: Callable[[], None],
    killed_port: int,
    seconds: float,
) -> dict[str, Any]:
    pubs, rate = 12, 100.0
    total = int(rate * seconds)
    consumer.start()
    ps = [
        Publisher(1000 + k, ports, k % len(ports), user, password, total=total, rate=rate)
        for k in range(pubs)
    ]
    for p in ps:
        p.start()
    time.sleep(seconds / 3)
    on_killed = [p for p in ps if p.ports[p.node] == killed_port]
    t_kill = time.monotonic()
    kill()
    for p in ps:
        p.join(seconds * 3 + 60)
    deadline = time.monotonic() + 60
    acked = {(p.ident, s) for p in ps for s in p.acked}
    while time.monotonic() < deadline:
        with received.lock:
            if all(k in received.counts for k in acked):
                break
        time.sleep(0.2)
    time.sleep(1.0)  # late redeliveries count as duplicates
    for p in ps:
        p.halt()
    consumer.halt()
    with received.lock:
        counts = dict(received.counts)
        times = sorted(t for t in received.times if t >= t_kill - 1)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    reconnect = sorted(round(p.reconnects[0], 2) for p in on_killed if p.reconnects)
    return {
        "publishers": pubs,
        "on_killed_node": len(on_killed),
        "acknowledged": len(acked),
        "lost": sum(1 for k in acked if k not in counts),
        "duplicates": sum(v - 1 for v in counts.values()),
        "reconnect_s": reconnect,
        "reconnect_max_s": max(reconnect) if reconnect else None,
        "never_reconnected": len(on_killed) - len(reconnect),
        "consumer_gap_s": round(max(gaps), 2) if gaps else None,
    }


async def _idle_connections(ports: list[int], user: str, password: str, n: int) -> list[Any]:
    """``n`` bare MQTT 3.1.1 connections (CONNECT, CONNACK, then idle)."""

    def connect_packet(cid: str) -> bytes:
        def s(x: str) -> bytes:
            b = x.encode()
            return struct.pack("!H", len(b)) + b

        var = s("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 600)
        body = var + s(cid) + s(user) + s(password)
        rem = len(body)
        enc = bytearray()
        while True:
            byte, rem = rem % 128, rem // 128
            enc.append(byte | (0x80 if rem else 0))
            if not rem:
                break
        return bytes([0x10]) + bytes(enc) + body

    sem = asyncio.Semaphore(50)
    conns: list[Any] = []

    async def one(k: int) -> None:
        async with sem:
            r, w = await asyncio.open_connection("127.0.0.1", ports[k % len(ports)])
            w.write(connect_packet(f"idle-{k}-{uuid.uuid4().hex[:6]}"))
            await w.drain()
            ack = await asyncio.wait_for(r.readexactly(4), 30)
            if ack[3] != 0:
                raise RuntimeError(f"CONNACK refused: {ack[3]}")
            conns.append(w)

    await asyncio.gather(*(one(k) for k in range(n)))
    return conns


def _memory(ports: list[int], user: str, password: str, rss: Callable[[], int]) -> float:
    async def go() -> float:
        before = rss()
        conns = await _idle_connections(ports, user, password, 1000)
        await asyncio.sleep(3)
        after = rss()
        for w in conns:
            w.close()
        return round((after - before) / 2**20, 1)

    return asyncio.run(go())


# -- engines -----------------------------------------------------------------------------------


def _run_rabbit(root: Path, n: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"engine": "rabbitmq"}
    out["version"] = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True, text=True
    ).stdout
    ports = list(RABBIT_PORTS.mqtt)
    with RabbitCluster(root / "rabbit", RABBIT_PORTS) as c:
        t0 = time.monotonic()
        c.start()
        out["cluster_start_s"] = round(time.monotonic() - t0, 1)
        _rabbit_setup(c)
        out["rss_idle_mb"] = round(sum(c.rss_bytes(i) for i in range(3)) / 2**20)
        # memory first, on fresh nodes (after a load, freed memory is reused for connections)
        out["rss_per_1000_connections_mb"] = _memory(
            ports, c.admin_user, c.admin_password, lambda: sum(c.rss_bytes(i) for i in range(3))
        )
        rec = Received()
        out["msgs_per_s"] = _throughput(
            ports, c.admin_user, c.admin_password, RabbitConsumer(c.amqp_urls(), 1, rec), rec, n
        )
        rec = Received()
        # the quorum queue was declared through node 1: its leader is there; so is the consumer
        out["failover"] = _failover(
            ports,
            c.admin_user,
            c.admin_password,
            RabbitConsumer(c.amqp_urls(), 0, rec),
            rec,
            lambda: c.kill(0),
            ports[0],
            seconds,
        )
        t0 = time.monotonic()
        c.restart(0)
        out["node_restart_s"] = round(time.monotonic() - t0, 1)
    return out


def _run_nats(root: Path, n: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"engine": "nats"}
    out["version"] = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "nats-server"], capture_output=True, text=True
    ).stdout
    ports = list(NATS_PORTS.mqtt)
    with NatsCluster(root / "nats", NATS_PORTS) as c:
        t0 = time.monotonic()
        c.start()
        leader = _nats_setup(c)
        out["cluster_start_s"] = round(time.monotonic() - t0, 1)
        out["rss_idle_mb"] = round(sum(c.rss_bytes(i) for i in range(3)) / 2**20)
        out["rss_per_1000_connections_mb"] = _memory(
            ports, c.admin_user, c.admin_password, lambda: sum(c.rss_bytes(i) for i in range(3))
        )
        rec = Received()
        out["msgs_per_s"] = _throughput(
            ports, c.admin_user, c.admin_password, NatsConsumer(c.nats_urls(), rec), rec, n
        )
        idx = int(leader[-1]) - 1 if leader[-1:].isdigit() else 0
        rec = Received()
        out["failover"] = _failover(
            ports,
            c.admin_user,
            c.admin_password,
            NatsConsumer(c.nats_urls(), rec),
            rec,
            lambda: c.kill(idx),
            ports[idx],
            seconds,
        )
        out["failover"]["killed"] = f"stream leader {leader}"
        t0 = time.monotonic()
        c.restart(idx)
        out["node_restart_s"] = round(time.monotonic() - t0, 1)
    return out


def _run_mosquitto(root: Path, n: int) -> dict[str, Any]:
    import psutil

    d = root / "mosquitto"
    d.mkdir(parents=True)
    conf = d / "mosquitto.conf"
    conf.write_text(
        f"listener {MOSQUITTO_PORT} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"user {getpass.getuser()}\nmax_queued_messages 0\nmax_inflight_messages 0\n"
        "log_dest none\n"
    )
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not listens(MOSQUITTO_PORT) and time.monotonic() < deadline:
            time.sleep(0.1)
        out: dict[str, Any] = {"engine": "mosquitto (one node, baseline)"}
        p = psutil.Process(proc.pid)
        out["rss_per_1000_connections_mb"] = _memory(
            [MOSQUITTO_PORT], "u", "p", lambda: int(p.memory_info().rss)
        )
        rec = Received()
        out["msgs_per_s"] = _throughput(
            [MOSQUITTO_PORT], "u", "p", MqttConsumer(MOSQUITTO_PORT, rec), rec, n
        )
        return out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def bench_brokers(*, messages: int = 20_000, seconds: float = 15.0) -> dict[str, Any]:
    for port in (*RABBIT_PORTS.mqtt, *NATS_PORTS.mqtt, MOSQUITTO_PORT):
        if listens(port):
            raise RuntimeError(f"port {port} is taken: another bench or test cluster runs")
    random.seed(1)
    with tempfile.TemporaryDirectory(prefix="qaqpa-brokers-") as tmp:
        root = Path(tmp)
        base = _run_mosquitto(root, messages)
        rabbit = _run_rabbit(root, messages, seconds)
        nats_ = _run_nats(root, messages, seconds)
    return {
        "bench": "brokers",
        "machine": f"{socket.gethostname()}: 2 cores shared by brokers, clients and other work",
        "protocol": "MQTT 3.1.1 QoS 1 publish; consumer on the replicated queue / stream",
        "messages": messages,
        "payload_bytes": PAYLOAD,
        "baseline": base,
        "rabbitmq": rabbit,
        "nats": nats_,
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    seconds = getattr(args, "seconds", 10.0)
    return bench_brokers(seconds=max(seconds, 9.0))


if __name__ == "__main__":
    print(json.dumps(bench_brokers()))
