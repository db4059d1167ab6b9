"""The simulated fleet of ``qaqpa bench fleet``: thousands of schools in one asyncio process.

Each school is one MQTT client with its own login (the device's, as enrolled at the server) and
the edge's uplink behaviour: its journal's events wait in an outbox, are sent in signed batches
(``protocol.signing.sign_batch``, at most ``batch_events`` per message, QoS 1) within a window of
unacknowledged events, and are sent again from the last ack after an ack timeout, a reported gap
or a reconnect; the decisions are ``edge.sync.UplinkWindow``'s, the edge's own. Acks are accepted
only under the centre's signature for this device (``protocol.centre.verify_centre``), as an edge
in ``require`` mode does. What the bench leaves out of the edge: the status and sync-ack messages
and the downlink (no downlink service runs in the bench).

paho's network loop would need a thread per client; here every client runs on the one event loop
through paho's external-loop API (the socket's reader and writer callbacks of asyncio, and one
timer calling ``loop_misc`` for keepalives), as paho's ``loop_asyncio`` example does.

A tap is due at a moment drawn from a Poisson process per school; the event is appended to the
outbox then and the school's uplink is woken, as an edge's journal append wakes its uplink.
Events due in the same tick of the scheduler (``TICK_S``) go out in one batch, as they would at an
edge whose uplink was busy. Tap-to-stored is measured from the moment the tap was due to the moment
the signed ack covering it arrived: the server acks only after the PostgreSQL commit, so this is
tap -> stored -> the school knows, an upper bound of tap -> stored.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import ssl
import time
import uuid
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

from edge.sync import UplinkWindow
from edge.tls import mqtt_tls_context
from protocol import topics
from protocol.centre import verify_centre
from protocol.codec import open_envelope
from protocol.errors import ProtocolError
from protocol.messages import EntryEvent, Event, EventAck, EventBatch
from protocol.signing import sign_batch
from simulators.fleet_brokers import Node

TICK_S = 0.05
MISC_S = 1.0
YIELD_S = 0.05  # blocking connects at most this long before the event loop runs again


@dataclass(frozen=True, slots=True)
class Login:
    school: str
    device: str
    username: str
    password: str
    key: Ed25519PrivateKey


@dataclass(slots=True)
class UplinkParams:
    """The edge's defaults (edge/sync.py SyncSettings)."""

    batch_events: int = 1000
    window_events: int = 20_000
    ack_timeout_s: float = 5.0
    gap_grace_s: float = 1.0
    keepalive_s: int = 30


@dataclass(slots=True)
class Counters:
    batches: int = 0
    events_sent: int = 0  # every send, re-sends included
    rewinds: int = 0
    acks: int = 0
    acks_refused: int = 0
    connects: int = 0
    disconnects: int = 0
    refused_logins: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    acked_events: int = 0
    last_ack_at: float = 0.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SimSchool:
    """One school's edge, as far as the uplink goes."""

    def __init__(
        self,
        fleet: Fleet,
        login: Login,
        node: Node,
        nodes: Sequence[Node],
    ) -> None:
        self.f = fleet
        self.login = login
        self.school, self.device = login.school, login.device
        self.nodes = list(nodes)
        self.node_i = self.nodes.index(node)
        self.window = UplinkWindow()
        self.outbox: list[EntryEvent] = []  # events with seq > self.base
        self.taps: array[float] = array("d")  # due moment of each seq > self.base
        self.base = 0  # seqs <= base are acknowledged and dropped from the outbox
        self.last_seq = 0
        self.online = False
        self.connecting = False
        self.next_attempt = float("inf")  # the first connection is Fleet.connect's
        self.attempts = 0
        prefix = fleet.prefix
        self.t_events = topics.events(self.school, self.device, prefix)
        self.t_ack = topics.ack(self.school, self.device, prefix)
        self.client = self._make_client()

    # ------------------------------------------------------------------ connection

    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"qaqpa-edge-{self.school}-{self.device}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5 if self.f.mqtt_protocol == "5" else mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        c.username_pw_set(self.login.username, self.login.password)
        node = self.nodes[self.node_i]
        if node.ca_file is not None:
            c.tls_set_context(self.f.tls_context(node.ca_file))
        c.max_inflight_messages_set(100)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        loop = self.f.loop
        c.on_socket_open = lambda cl, _u, sock: loop.add_reader(sock, cl.loop_read)

        def closed(_c: mqtt.Client, _u: Any, sock: Any) -> None:
            loop.remove_reader(sock)

        def no_more_writes(_c: mqtt.Client, _u: Any, sock: Any) -> None:
            loop.remove_writer(sock)

        c.on_socket_close = closed
        c.on_socket_register_write = lambda cl, _u, sock: loop.add_writer(sock, cl.loop_write)
        c.on_socket_unregister_write = no_more_writes
        return c

    def connect(self) -> None:
        """Start a connection to the current node (the TCP connect is quick on loopback); the
        CONNACK arrives through the event loop."""
        node = self.nodes[self.node_i]
        self.connecting = True
        try:
            self.client.connect(node.host, node.port, keepalive=self.f.params.keepalive_s)
        except OSError:
            self.connecting = False
            self._failed()

    def _failed(self) -> None:
        # the next node, with the edge's capped backoff
        self.attempts += 1
        self.node_i = (self.node_i + 1) % len(self.nodes)
        delay = min(30.0, 0.5 * 2 ** min(self.attempts - 1, 6))
        self.next_attempt = time.monotonic() + delay / 2 + random.random() * delay / 2

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connecting = False
        if rc.is_failure:
            self.f.counters.refused_logins += 1
            self._failed()
            return
        client.subscribe(self.t_ack, qos=1)
        self.online = True
        self.attempts = 0
        self.f.counters.connects += 1
        # what was in flight on an old connection may be lost: from the last ack again
        self.window.rewind(time.monotonic())
        self.f.wake(self)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        if self.online:
            self.f.counters.disconnects += 1
        self.online = False
        self.connecting = False
        self._failed()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        try:
            env = open_envelope(bytes(msg.payload))
            verify_centre(env, self.f.centre_keys, school=self.school, device=self.device)
            ack = env.message(EventAck)
        except ProtocolError:
            self.f.counters.acks_refused += 1
            return
        if (
            ack.school != self.school
            or ack.device != self.device
            or ack.committed_through > self.window.sent_high
        ):
            self.f.counters.acks_refused += 1
            return
        self.f.counters.acks += 1
        before = self.window.acked
        self.window.on_ack(ack.committed_through, bool(ack.missing), now)
        if self.window.acked > before:
            self._acked(before, self.window.acked, now)
        self.f.wake(self)

    def _acked(self, before: int, through: int, now: float) -> None:
        c = self.f.counters
        taps = self.taps
        first = before - self.base  # index of seq before + 1
        last = through - self.base
        lat = c.latencies
        for i in range(max(first, 0), last):
            lat.append(now - taps[i])
        c.acked_events += through - before
        c.last_ack_at = now
        drop = through - self.base
        if drop >= 64 or through == self.last_seq:
            del self.outbox[:drop]
            del self.taps[:drop]
            self.base = through

    # ---------------------------------------------------------------------- uplink

    def tap(self, due: float, students: int) -> None:
        self.last_seq += 1
        self.outbox.append(
            EntryEvent(
                seq=self.last_seq,
                at_ms=_now_ms(),
                terminal="gate-1",
                student_id=f"s{random.randrange(students)}",
            )
        )
        self.taps.append(due)

    def uplink(self, now: float) -> None:
        """edge.sync.EdgeSync._uplink_step, as many times as the window allows."""
        if not self.online:
            return
        p, w, c = self.f.params, self.window, self.f.counters
        reason = w.rewind_reason(now, ack_timeout=p.ack_timeout_s, gap_grace=p.gap_grace_s)
        if reason is not None:
            w.rewind(now, reason)
            c.rewinds += 1
        while True:
            room = p.window_events - w.outstanding()
            start = w.sent_through - self.base
            events = self.outbox[start : start + min(p.batch_events, room)] if room > 0 else []
            if not events:
                return
            batch = EventBatch(
                school=self.school,
                device=self.device,
                sent_at_ms=_now_ms(),
                events=list[Event](events),
            )
            info = self.client.publish(self.t_events, sign_batch(batch, self.login.key), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return
            w.on_sent(events[-1].seq, now)
            c.batches += 1
            c.events_sent += len(events)

    @property
    def all_acked(self) -> bool:
        return self.window.acked >= self.last_seq


async def _yield_now_and_then(since: float) -> float:
    """Let the event loop run once ``YIELD_S`` has passed since ``since``; the new moment.

    paho's ``connect`` is blocking up to the CONNECT packet (over TLS: the whole handshake), and
    the packet itself is written by the event loop's writer callback. Connecting hundreds of
    schools in a row against a slow broker (three RabbitMQ nodes under load: tens of ms a
    handshake) held their CONNECTs unsent for longer than the broker's login timeout (10 s), so
    it closed them, they all came back after their backoff and the fleet never connected. Every
    ``YIELD_S`` of blocking work the loop writes what is queued and reads CONNACKs."""
    now = time.monotonic()
    if now - since < YIELD_S:
        return since
    await asyncio.sleep(0)
    return time.monotonic()


class Fleet:
    """The schools, the scheduler of taps, and the one event loop they all run on."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        nodes: Sequence[Node],
        prefix: str,
        centre_keys: dict[str, Ed25519PublicKey],
        mqtt_protocol: str,
        params: UplinkParams | None = None,
        students_per_school: int = 513,
    ) -> None:
        self.loop = loop
        self.nodes = list(nodes)
        self.prefix = prefix
        self.centre_keys = centre_keys
        self.mqtt_protocol = mqtt_protocol
        self.params = params or UplinkParams()
        self.students = students_per_school
        self.schools: list[SimSchool] = []
        self.counters = Counters()
        self._dirty: set[SimSchool] = set()
        self._misc: asyncio.Task[None] | None = None
        # called every tick while playing or draining (the bench restarts killed workers)
        self.every_tick: list[Callable[[], None]] = []
        self._tls: dict[Path, ssl.SSLContext] = {}

    def tls_context(self, ca_file: Path) -> ssl.SSLContext:
        """The edge's TLS settings (edge/tls.py), one context shared by every school."""
        if ca_file not in self._tls:
            self._tls[ca_file] = mqtt_tls_context(ca_file)
        return self._tls[ca_file]

    def wake(self, s: SimSchool) -> None:
        self._dirty.add(s)

    async def connect(self, logins: Sequence[Login], within: float = 300.0) -> tuple[float, int]:
        """Add and connect these schools (spread over the nodes); the seconds it took and how
        many were still not connected when ``within`` ran out (they keep trying)."""
        t0 = time.monotonic()
        if self._misc is None:
            self._misc = asyncio.ensure_future(self._misc_loop())
        new = []
        for login in logins:
            node = self.nodes[len(self.schools) % len(self.nodes)]
            s = SimSchool(self, login, node, self.nodes)
            self.schools.append(s)
            new.append(s)
        yielded = time.monotonic()
        for s in new:
            s.connect()
            yielded = await _yield_now_and_then(yielded)
        deadline = t0 + within
        while not all(s.online for s in new):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        return time.monotonic() - t0, sum(1 for s in new if not s.online)

    async def _misc_loop(self) -> None:
        while True:
            await asyncio.sleep(MISC_S)
            now = time.monotonic()
            yielded = now
            for s in self.schools:
                if s.online or s.connecting:
                    s.client.loop_misc()
                elif now >= s.next_attempt:
                    s.connect()
                    yielded = await _yield_now_and_then(yielded)
                if s.online and s.window.outstanding():
                    self._dirty.add(s)  # for the ack timeout

    async def play(
        self,
        active: int,
        rate_per_school: float,
        seconds: float,
        *,
        on_tick: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """The first ``active`` schools tap at ``rate_per_school`` each for ``seconds``."""
        schools = self.schools[:active]
        t0 = time.monotonic()
        heap = [(t0 + random.expovariate(rate_per_school), i) for i in range(len(schools))]
        heapq.heapify(heap)
        taps = 0
        end = t0 + seconds
        lag_max = 0.0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            while heap and heap[0][0] <= now:
                due, i = heapq.heappop(heap)
                if due >= end:
                    heapq.heappush(heap, (due, i))
                    break
                lag_max = max(lag_max, now - due)
                s = schools[i]
                s.tap(due, self.students)
                taps += 1
                self._dirty.add(s)
                heapq.heappush(heap, (due + random.expovariate(rate_per_school), i))
            self._flush(now)
            for fn in self.every_tick:
                fn()
            if on_tick is not None:
                on_tick()
            await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - now)))
        return {"taps": taps, "offered_seconds": seconds, "scheduler_lag_max_s": round(lag_max, 3)}

    def _flush(self, now: float) -> None:
        dirty, self._dirty = self._dirty, set()
        for s in dirty:
            s.uplink(now)

    async def drain(self, active: int, within: float) -> bool:
        """Keep the uplinks going until every tap of the first ``active`` schools is acked."""
        schools = self.schools[:active]
        deadline = time.monotonic() + within
        while not all(s.all_acked for s in schools):
            if time.monotonic() > deadline:
                return False
            self._flush(time.monotonic())
            for fn in self.every_tick:
                fn()
            await asyncio.sleep(TICK_S)
        return True

    async def close(self) -> None:
        if self._misc is not None:
            self._misc.cancel()
        for s in self.schools:
            if s.online or s.connecting:
                s.client.disconnect()
        await asyncio.sleep(0.2)
        for s in self.schools:
            sock = s.client.socket()
            if sock is not None:
                self.loop.remove_reader(sock)
                self.loop.remove_writer(sock)
                sock.close()
