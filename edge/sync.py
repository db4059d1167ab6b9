"""Edge <-> server synchronisation over MQTT (DESIGN invariants 2, 3, 4 and 8).

Uplink: the outbox is published in signed batches (many events per message, QoS 1) within a
window of unacknowledged events; an event leaves the outbox only when the server's ``EventAck``
says it is committed. Broker QoS is not trusted: when an ack shows a gap that persists, or no ack
arrives in time, or the connection drops, sending goes back to ``committed_through + 1``.

Downlink: deltas and snapshots are applied through the store and acknowledged with ``SyncAck``
(``need_snapshot`` when a delta does not follow the local version). Everything from the centre
(deltas, snapshots, key announcements, acks) must carry the centre's signature for this device
by a pinned key (``protocol.centre``, ``edge.centre``); a refused message changes nothing and
raises a ``downlink_refused`` alarm. An ack beyond the last seq this edge sent is refused too. On every connection the edge
publishes a retained online ``DeviceStatus`` (the broker publishes the offline will on loss) and a
``SyncAck`` of its version, so the server can catch it up.

paho's network loop runs in its own thread; its callbacks only hop into the event loop with
``call_soon_threadsafe``. The connection is driven from asyncio (paho's own reconnect is off) so
that reconnection uses capped, jittered backoff.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import random
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.brokers import BrokerRotation, failback_delay, parse_broker_url
from edge.centre import (
    CENTRE_FILE,
    CentreKeyError,
    CentreTrust,
    DownlinkSignatures,
    write_private,
)
from edge.staff.delivery import BOX_KEY_FILE, BoxKeyError, PinInstaller, load_box_key
from edge.tls import TlsSetupError, link_error, link_problem, mqtt_tls_context
from protocol import topics
from protocol.centre import (
    CentreSignature,
    DownlinkRefused,
    Refusal,
    key_id,
    load_public_key_b64,
    verify_centre,
)
from protocol.codec import Envelope, encode, open_envelope
from protocol.errors import ProtocolError
from protocol.link import plain_refusal
from protocol.messages import (
    FEATURE_BALANCE_TOTALS,
    AlarmCode,
    CentreKeyAnnounce,
    DeviceStatus,
    EdgeBoxKey,
    EdgeFeatures,
    Event,
    EventAck,
    EventBatch,
    StaffPins,
    StaffPinsAck,
    SyncAck,
    SyncDelta,
    SyncSnapshot,
)
from protocol.sealing import b64, raw_public
from protocol.signing import (
    generate_key,
    load_private_key,
    private_key_pem,
    public_key_raw,
    sign_batch,
    sign_message,
)

if TYPE_CHECKING:
    from edge.store import EdgeStore

log = logging.getLogger(__name__)

KEY_FILE = "device.key"
CREDENTIALS_FILE = "mqtt.json"
# The broker's CA, this device's client certificate and key: names in mqtt.json, files beside it
TLS_FILES = {
    "mqtt_ca_file": "broker-ca.pem",
    "mqtt_cert_file": "mqtt-client.pem",
    "mqtt_key_file": "mqtt-client.key",
}


class SyncError(RuntimeError):
    """Sync cannot start: missing credentials or key, or a refused enrolment."""


class SyncSettings(BaseSettings):
    """How an edge reaches the broker and paces its uplink (env ``QAQPA_EDGE_SYNC_*``)."""

    model_config = SettingsConfigDict(env_prefix="QAQPA_EDGE_SYNC_", extra="forbid")

    mqtt_host: str = Field(default="127.0.0.1", description="MQTT broker host")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port")
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version: 3.1.1 for a RabbitMQ or NATS cluster and the demo's embedded "
        "amqtt broker (the edge uses nothing of MQTT 5 that 3.1.1 lacks)",
    )
    mqtt_brokers: list[str] = Field(
        default_factory=list,
        description='The nodes of a broker cluster, e.g. ["mqtts://node1:8883", '
        '"node2:8883"]; when set, mqtt_host/mqtt_port are not used: the edge starts at its '
        "preferred node (a stable hash of school and device over the list) and moves to the "
        "next one whenever a connection fails or drops",
    )
    failback_s: float = Field(
        default=60.0,
        ge=0,
        description="On a node other than its preferred one, the edge probes the preferred node "
        "about this often (0.75-1.25x) and moves back once it accepts a login (0: stay put)",
    )
    mqtt_username: str | None = Field(default=None, description="This device's MQTT user")
    mqtt_password: str | None = Field(default=None, description="This device's MQTT password")
    mqtt_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed the broker's certificate, the only CA "
        "trusted; set: TLS 1.2 or newer, certificate and host name checked (README, link "
        "security). Required for a broker off loopback unless mqtt_allow_plain",
    )
    mqtt_cert_file: Path | None = Field(
        default=None,
        description="This device's client certificate (PEM) for a broker that requires one; "
        "needs mqtt_key_file and mqtt_ca_file",
    )
    mqtt_key_file: Path | None = Field(
        default=None, description="The unencrypted private key (PEM, 0600) of mqtt_cert_file"
    )
    mqtt_allow_plain: bool = Field(
        default=False,
        description="Allow a plain (unencrypted) connection to a broker off loopback: a private "
        "network only. A loopback broker (127.0.0.1, ::1, localhost) may always be plain",
    )
    topic_prefix: str = Field(default=topics.PREFIX, description="MQTT topic prefix")
    batch_events: int = Field(default=1000, ge=1, le=10_000, description="Events per message")
    window_events: int = Field(
        default=20_000, ge=1, description="Events sent and not yet acknowledged, at most"
    )
    ack_timeout_s: float = Field(
        default=5.0, gt=0, description="Re-send from the last ack when no ack progress this long"
    )
    small_batch_hold_ms: float = Field(
        default=100.0,
        ge=0,
        le=5_000,
        description="While a batch is unacknowledged, fewer new events than batch_events wait "
        "up to this long (or for the ack, or a full batch), so that a school at its morning "
        "rush sends few larger messages, not one per tap; with nothing unacknowledged an "
        "event goes at once (0: always at once)",
    )
    gap_grace_s: float = Field(
        default=1.0, ge=0, description="Re-send when the server reports a gap for this long"
    )
    status_interval_s: float = Field(
        default=30.0, gt=0, description="Period of the retained DeviceStatus updates"
    )
    backoff_min_s: float = Field(default=0.5, gt=0, description="First reconnect delay")
    backoff_max_s: float = Field(default=30.0, gt=0, description="Longest reconnect delay")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="TCP connect + CONNACK limit")
    keepalive_s: int = Field(default=30, ge=5, description="MQTT keepalive")
    downlink_signatures: DownlinkSignatures = Field(
        default=DownlinkSignatures.REQUIRE,
        description="off: verify nothing; accept: verify what is signed, apply unsigned "
        "messages (edges enrolled before signed downlink); require: apply only what the "
        "pinned centre key signed for this device",
    )
    centre_key: str | None = Field(
        default=None,
        description="The centre's Ed25519 public key (base64), pinned at enrolment; "
        "centre.json in the enrolment directory takes precedence",
    )
    replay_window_s: float = Field(
        default=300.0,
        gt=0,
        description="A centre message issued this long before the newest one accepted is a replay",
    )
    alarm_interval_s: float = Field(
        default=60.0, ge=0, description="At most one downlink_refused alarm per reason this often"
    )
    snapshot_request_interval_s: float = Field(
        default=5.0, ge=0, description="At most one snapshot request this often"
    )

    @model_validator(mode="after")
    def _link_is_safe(self) -> SyncSettings:
        """Off loopback TLS only, and TLS files that load: checked before any connection."""
        try:
            nodes = self.brokers()
        except ValueError as err:
            raise link_error(f"mqtt_brokers: {err}") from err
        for host, _port in nodes:
            refusal = plain_refusal(
                host, tls=self.mqtt_ca_file is not None, allow_plain=self.mqtt_allow_plain
            )
            if refusal is not None:
                name = "mqtt_brokers" if self.mqtt_brokers else "mqtt_host"
                raise link_error(f"{name}: {refusal}")
        if self.mqtt_ca_file is None:
            if self.mqtt_cert_file is not None or self.mqtt_key_file is not None:
                raise link_error(
                    "mqtt_cert_file: a client certificate is sent over TLS only: set mqtt_ca_file"
                )
        else:
            try:
                self.tls_context()
            except TlsSetupError as err:
                raise link_error(str(err)) from err
        return self

    def brokers(self) -> list[tuple[str, int]]:
        """(host, port) of each node: ``mqtt_brokers``, or ``mqtt_host:mqtt_port`` alone."""
        if not self.mqtt_brokers:
            return [(self.mqtt_host, self.mqtt_port)]
        return [
            parse_broker_url(url, tls=self.mqtt_ca_file is not None) for url in self.mqtt_brokers
        ]

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context of the broker connection; None for a plain one."""
        if self.mqtt_ca_file is None:
            return None
        return mqtt_tls_context(self.mqtt_ca_file, self.mqtt_cert_file, self.mqtt_key_file)


# ------------------------------------------------------------------------------ pure helpers


def backoff_delay(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """Capped exponential backoff with "equal jitter": in [d/2, d), d = min(cap, base * 2**n).

    ``rand`` in [0, 1) is passed in so the function stays pure.
    """
    d: float = min(cap, base * 2.0 ** min(max(attempt - 1, 0), 30))
    return d / 2 + rand * d / 2


@dataclass(slots=True)
class UplinkWindow:
    """What has been sent and acknowledged; decides when to go back to the last ack.

    Consecutive ack timeouts double the wait (up to 8x), so an overloaded server is not buried
    under re-sends; any ack progress resets it.
    """

    acked: int = 0
    sent_through: int = 0
    # the highest seq ever sent (never rewound): an ack beyond it is refused
    sent_high: int = 0
    last_progress: float = 0.0
    gap_since: float | None = None
    timeouts: int = 0

    def outstanding(self) -> int:
        return max(self.sent_through - self.acked, 0)

    def on_sent(self, last_seq: int, now: float) -> None:
        if self.outstanding() == 0:
            self.last_progress = now  # the ack timeout runs from the first unacked send
        self.sent_through = max(self.sent_through, last_seq)
        self.sent_high = max(self.sent_high, last_seq)

    def on_ack(self, committed_through: int, has_gap: bool, now: float) -> None:
        if committed_through > self.acked:
            self.acked = committed_through
            self.last_progress = now
            self.timeouts = 0
        self.sent_through = max(self.sent_through, self.acked)
        if has_gap and committed_through >= self.acked:
            if self.gap_since is None:
                self.gap_since = now
        elif not has_gap:
            self.gap_since = None

    def rewind_reason(self, now: float, *, ack_timeout: float, gap_grace: float) -> str | None:
        """ "gap", "timeout", or None when sending can go on."""
        if self.outstanding() == 0:
            return None
        if self.gap_since is not None and now - self.gap_since >= gap_grace:
            return "gap"
        if now - self.last_progress >= ack_timeout * 2 ** min(self.timeouts, 3):
            return "timeout"
        return None

    def rewind(self, now: float, reason: str = "reconnect") -> None:
        if reason == "timeout":
            self.timeouts += 1
        self.sent_through = self.acked
        self.gap_since = None
        self.last_progress = now


@dataclass(frozen=True, slots=True)
class SyncStatus:
    online: bool
    backlog: int
    oldest_unsent_ms: int | None
    committed_through: int
    last_seq: int
    applied_version: int
    high_water_alarm: bool


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------------------------ EdgeSync


class EdgeSync:
    """Owns the device's MQTT connection; use as ``async with EdgeSync(store, settings, key)``."""

    def __init__(
        self,
        store: EdgeStore,
        settings: SyncSettings,
        key: Ed25519PrivateKey,
        centre: CentreTrust | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._key = key
        # staff PINs sealed to this edge (set by ``from_key_dir``): None, and they are refused
        self.box: X25519PrivateKey | None = None
        self.pins: PinInstaller | None = None
        if centre is None and settings.centre_key is not None:
            try:
                centre = CentreTrust.from_b64(settings.centre_key)
            except CentreKeyError as err:
                raise SyncError(f"centre_key: {err}") from err
        self._centre = centre if centre is not None else CentreTrust()
        self._mode = settings.downlink_signatures
        if self._mode is DownlinkSignatures.REQUIRE and not self._centre.pinned:
            raise SyncError(
                "downlink_signatures is 'require' but no centre key is pinned: enrol again "
                "with a token from `qaqpa server device token` (README, link security)"
            )
        if self._mode is not DownlinkSignatures.REQUIRE:
            log.warning(
                "downlink signatures are %r: messages from the centre are not all verified",
                self._mode.value,
            )
        self._newest_issued_ms = 0
        self._alarmed_at: dict[Refusal, float] = {}
        self._snapshot_request: asyncio.TimerHandle | None = None
        self._last_snapshot_request = -1e9
        self.refused: dict[Refusal, int] = {}
        self._school = store.school
        self._device = store.device
        p = settings.topic_prefix
        self._t_events = topics.events(self._school, self._device, p)
        self._t_ack = topics.ack(self._school, self._device, p)
        self._t_sync = topics.sync(self._school, self._device, p)
        self._t_sync_ack = topics.sync_ack(self._school, self._device, p)
        self._t_status = topics.status(self._school, self._device, p)
        self._window = UplinkWindow()
        self._online = False
        self._applied_version = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._link_changed = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._applied_listeners: list[Callable[[int], None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._client = self._make_client()
        self.batches_sent = 0
        self.rewinds = 0
        # the uplink's small-batch hold: since when events wait unsent, until when it holds
        self._unsent_since: float | None = None
        self._hold_until: float | None = None
        # told the centre's time (issued_at_ms) from each fresh signed ack
        self.on_centre_time: Callable[[int], None] | None = None
        # connection attempts that did not end online (refused, unreachable, TLS failed)
        self.failed_connections = 0
        self._rotation = BrokerRotation(settings.brokers(), f"{self._school}/{self._device}")
        # moves back to the preferred node once it answered a probe again
        self.failbacks = 0
        # (node, seconds from losing the link to the next CONNACK) of each reconnection
        self.reconnections: list[tuple[str, float]] = []
        self._lost_at: float | None = None
        self.disconnect_reason = ""

    @classmethod
    def from_key_dir(
        cls, store: EdgeStore, key_dir: Path, *, pin_key: bytes | None = None, **overrides: Any
    ) -> EdgeSync:
        """Key and MQTT login from ``qaqpa edge enrol``'s directory; ``overrides`` win. With
        ``pin_key`` (the staff PIN verifiers' key) the edge announces its box key (``box.key``
        in the directory, created when absent) and installs PINs sealed to it."""
        key, creds = load_enrolment(key_dir)
        try:
            centre = CentreTrust.load(key_dir / CENTRE_FILE)
        except CentreKeyError as err:
            raise SyncError(str(err)) from err
        # An enrolment without a centre key (before signed downlink) accepts unsigned messages
        # until the edge is enrolled again; a new enrolment records "require".
        mode = creds.get("downlink_signatures") or ("require" if centre else "accept")
        values: dict[str, Any] = {
            "downlink_signatures": mode,
            "mqtt_host": creds["mqtt_host"],
            "mqtt_port": creds["mqtt_port"],
            "mqtt_username": creds["mqtt_username"],
            "mqtt_password": creds["mqtt_password"],
            "topic_prefix": creds["topic_prefix"],
        }
        for name in TLS_FILES:  # recorded by `qaqpa edge enrol`, relative to the key directory
            if creds.get(name):
                values[name] = key_dir / creds[name]
        if creds.get("mqtt_allow_plain"):
            values["mqtt_allow_plain"] = True
        for name in ("mqtt_brokers", "mqtt_protocol"):  # a cluster deployment's enrolment
            if creds.get(name):
                values[name] = creds[name]
        values.update(overrides)
        try:
            settings = SyncSettings.model_validate(values)
        except ValidationError as err:
            raise SyncError(f"{key_dir / CREDENTIALS_FILE}: {link_problem(err)}") from err
        sync = cls(store, settings, key, centre)
        if pin_key is not None:
            try:
                sync.box = load_box_key(key_dir / BOX_KEY_FILE)
            except (OSError, BoxKeyError) as err:
                raise SyncError(f"{key_dir / BOX_KEY_FILE}: {err}") from err
            sync.pins = PinInstaller(store, sync.box, pin_key)
        return sync

    # ------------------------------------------------------------------------- public API

    async def status(self) -> SyncStatus:
        st = await self._store.outbox_stats()
        return SyncStatus(
            online=self._online,
            backlog=st.backlog,
            oldest_unsent_ms=st.oldest_unsent_ms,
            committed_through=st.acked_through,
            last_seq=st.last_seq,
            applied_version=await self._store.sync_version(),
            high_water_alarm=st.high_water_alarm,
        )

    @property
    def settings(self) -> SyncSettings:
        return self._settings

    @property
    def online(self) -> bool:
        return self._online

    @property
    def applied_version(self) -> int:
        """The downlink version applied through this sync, once the store has fully applied it."""
        return self._applied_version

    def add_applied_listener(self, cb: Callable[[int], None]) -> None:
        """Called in the loop with the new version after a delta or snapshot is applied."""
        self._applied_listeners.append(cb)

    # -------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> EdgeSync:
        self._loop = asyncio.get_running_loop()
        self._applied_version = await self._store.sync_version()
        st = await self._store.outbox_stats()
        # Everything journaled before this start may have been sent by the previous run.
        self._window = UplinkWindow(
            acked=st.acked_through, sent_through=st.acked_through, sent_high=st.last_seq
        )
        self._store.add_append_listener(self._on_append)
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._tasks = [
            self._tg.create_task(self._connection(), name=f"sync-connection-{self._device}"),
            self._tg.create_task(self._uplink(), name=f"sync-uplink-{self._device}"),
            self._tg.create_task(self._dispatch(), name=f"sync-dispatch-{self._device}"),
            self._tg.create_task(self._status_loop(), name=f"sync-status-{self._device}"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._snapshot_request is not None:
            self._snapshot_request.cancel()
            self._snapshot_request = None
        for task in [*self._tasks, *self._pending]:
            task.cancel()
        assert self._tg is not None
        try:
            await self._tg.__aexit__(None, None, None)
        finally:
            if self._online:
                try:
                    info = self._client.publish(
                        self._t_status, encode(self._device_status(False)), qos=1, retain=True
                    )
                    async with asyncio.timeout(2):
                        await asyncio.to_thread(info.wait_for_publish, 2)
                except (TimeoutError, RuntimeError, ValueError) as err:
                    log.info("offline status not confirmed on exit: %s", err)
            self._online = False
            self._client.disconnect()
            await asyncio.to_thread(self._client.loop_stop)

    # ---------------------------------------------------------------------- paho -> loop

    def _new_client(self, kind: str) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"qaqpa-{kind}-{self._school}-{self._device}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5 if self._settings.mqtt_protocol == "5" else mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        if self._settings.mqtt_username is not None:
            client.username_pw_set(self._settings.mqtt_username, self._settings.mqtt_password)
        tls = self._settings.tls_context()
        if tls is not None:
            client.tls_set_context(tls)
        client.connect_timeout = self._settings.connect_timeout_s
        return client

    def _make_client(self) -> mqtt.Client:
        client = self._new_client("edge")
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _hop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            self._hop(self._set_link, False)
            return
        # Subscribed before anything is published on this connection, so the answers to our
        # SyncAck and batches cannot be missed.
        client.subscribe([(self._t_ack, 1), (self._t_sync, 1)])
        self._hop(self._set_link, True)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        self.disconnect_reason = str(reason_code)
        self._hop(self._set_link, False)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._hop(self._inbox.put_nowait, (msg.topic, bytes(msg.payload)))

    def _on_append(self, _last_seq: int) -> None:
        if self._unsent_since is None:
            self._unsent_since = time.monotonic()
        self._wake.set()

    def _set_link(self, up: bool) -> None:
        if up:
            self._online = True
            self._disconnected.clear()
        else:
            self._online = False
            self._disconnected.set()
        self._link_changed.set()

    # ------------------------------------------------------------------------- connection

    def _device_status(self, online: bool, stats: Any = None) -> DeviceStatus:
        return DeviceStatus(
            school=self._school,
            device=self._device,
            online=online,
            at_ms=_now_ms(),
            backlog=stats.backlog if stats is not None else 0,
            oldest_unsent_ms=stats.oldest_unsent_ms if stats is not None else None,
            outbox_capacity=stats.capacity if stats is not None else 0,
        )

    @property
    def broker(self) -> tuple[str, int]:
        """The node this edge is connected to, or will try next."""
        return self._rotation.current

    @property
    def preferred_broker(self) -> tuple[str, int]:
        """The node this edge goes back to when it answers (a stable hash of its identity)."""
        return self._rotation.preferred_node

    def _probe(self, host: str, port: int) -> bool:
        """In a worker thread: does ``host:port`` accept this device's login now? A separate,
        short MQTT connection (its own client id, no will, no subscription), closed at once."""
        answered = threading.Event()
        accepted: list[bool] = []

        def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
            accepted.append(not reason_code.is_failure)
            answered.set()

        def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
            answered.set()

        client = self._new_client("probe")
        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        try:
            client.connect(host, port, self._settings.keepalive_s)
        except (OSError, ValueError):  # refused, unreachable, TLS failed
            return False
        client.loop_start()
        try:
            answered.wait(self._settings.connect_timeout_s)
            return accepted == [True]
        finally:
            client.disconnect()
            client.loop_stop()

    async def _hold(self) -> bool:
        """While connected: wait for the link to drop (False), or, on a node other than the
        preferred one, probe the preferred node now and then and return True once it answers
        (the caller moves back to it)."""
        rotation, interval = self._rotation, self._settings.failback_s
        while True:
            if rotation.on_preferred or interval <= 0:
                await self._disconnected.wait()
                return False
            try:
                async with asyncio.timeout(failback_delay(interval, random.random())):
                    await self._disconnected.wait()
                return False
            except TimeoutError:
                pass
            host, port = rotation.preferred_node
            # The probe may take up to connect_timeout_s (a node that does not answer at all):
            # a drop of the current connection meanwhile is not kept waiting for it.
            probe = asyncio.ensure_future(asyncio.to_thread(self._probe, host, port))
            lost = asyncio.ensure_future(self._disconnected.wait())
            try:
                await asyncio.wait({probe, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                lost.cancel()
                if not probe.done():  # left to finish in its thread; its result is not wanted
                    probe.add_done_callback(lambda f: f.cancelled() or f.exception())
            if not probe.done():
                return False
            if probe.exception() is not None:
                log.warning("probing the preferred broker node failed: %r", probe.exception())
                continue
            if probe.result() and self._online:
                log.info("the preferred broker node %s:%d answers again: moving back", host, port)
                return True

    async def _connection(self) -> None:
        s = self._settings
        attempt = 0
        first = True
        while True:
            self._link_changed.clear()
            went_online = failback = False
            host, port = self._rotation.current
            if not first and len(self._rotation.nodes) > 1:
                # A new client id for every connection to a cluster: RabbitMQ keeps a client
                # id's subscription queue on the node it was made on, and a reconnection with
                # the same id fails while that node is down (seen: every edge of the dead node
                # flapping from node to node until it came back).
                self._client = self._make_client()
            first = False
            self._client.will_set(
                self._t_status, encode(self._device_status(False)), qos=1, retain=True
            )
            try:
                async with asyncio.timeout(s.connect_timeout_s + 1):
                    await asyncio.to_thread(self._client.connect, host, port, s.keepalive_s)
            except ssl.SSLError as err:
                # A wrong CA, host name or client certificate does not heal by retrying: said
                # once per run of failures, and the journal keeps every event meanwhile.
                if attempt == 0:
                    log.warning(
                        "TLS with the broker %s:%d failed (check mqtt_ca_file and the client "
                        "certificate): %s",
                        host,
                        port,
                        err,
                    )
            except (OSError, TimeoutError, ValueError) as err:
                if attempt == 0:
                    log.warning("broker %s:%d unreachable: %s", host, port, err)
            else:
                self._client.loop_start()
                try:
                    async with asyncio.timeout(s.connect_timeout_s):
                        await self._link_changed.wait()
                except TimeoutError:
                    log.warning("no CONNACK within %.1f s", s.connect_timeout_s)
                if not self._online and attempt == 0 and self._link_changed.is_set():
                    # e.g. a broker that requires a client certificate this edge lacks
                    log.warning("the broker closed the connection before accepting it")
                if self._online:
                    went_online = True
                    if self._lost_at is not None:
                        took = time.monotonic() - self._lost_at
                        self.reconnections.append((f"{host}:{port}", took))
                        self._lost_at = None
                    if attempt > 0:
                        log.info("connected to the broker again after %d attempt(s)", attempt)
                    attempt = 0
                    try:
                        await self._on_online()
                    except Exception:
                        log.exception("connection set-up failed; the uplink re-sends anyway")
                        self._window.rewind(time.monotonic())
                    failback = await self._hold()
                    if not failback:
                        self._lost_at = time.monotonic()
                        log.warning(
                            "lost the broker connection to %s:%d (%s)",
                            host,
                            port,
                            self.disconnect_reason,
                        )
                self._client.disconnect()
                await asyncio.to_thread(self._client.loop_stop)
                self._online = False
            if not went_online:
                self.failed_connections += 1
            if failback:
                # A clean move: what was in flight is re-sent from the last ack on the preferred
                # node (stored once by the idempotent insert), the downlink resumes from the
                # applied version this edge reports there.
                self.failbacks += 1
                self._rotation.return_to_preferred()
                attempt = 0
                continue
            # a failed or dropped connection: the next node of a cluster (the same single broker)
            self._rotation.advance()
            # a connection that dropped is retried at once on the next node; a failed attempt
            # waits the bounded backoff first
            if went_online and len(self._rotation.nodes) > 1:
                attempt = 0
                continue
            attempt += 1
            await asyncio.sleep(
                backoff_delay(
                    attempt, base=s.backoff_min_s, cap=s.backoff_max_s, rand=random.random()
                )
            )

    async def _on_online(self) -> None:
        stats = await self._store.outbox_stats()
        self._publish(self._t_status, encode(self._device_status(True, stats)), retain=True)
        # what this release reads, ahead of the ack that may bring a snapshot (a server of the
        # release before logs it as unknown and sends the lists it has always sent)
        features = EdgeFeatures(
            school=self._school, device=self._device, features=[FEATURE_BALANCE_TOTALS]
        )
        self._publish(self._t_sync_ack, encode(features))
        await self._publish_sync_ack(need_snapshot=False)
        if self.box is not None:
            announce = EdgeBoxKey(
                school=self._school, device=self._device, public_key=b64(raw_public(self.box))
            )
            self._publish(self._t_sync_ack, sign_message(announce, self._key))
        # What was in flight on the old connection may be lost: start again from the last ack.
        self._window.rewind(time.monotonic())
        self._wake.set()

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    async def _publish_sync_ack(self, *, need_snapshot: bool) -> None:
        ack = SyncAck(
            school=self._school,
            device=self._device,
            applied_version=await self._store.sync_version(),
            need_snapshot=need_snapshot,
        )
        self._publish(self._t_sync_ack, encode(ack))

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.status_interval_s)
            if not self._online:
                continue
            try:
                stats = await self._store.outbox_stats()
            except Exception:
                log.exception("cannot read the outbox for the status message")
                continue
            self._publish(self._t_status, encode(self._device_status(True, stats)), retain=True)

    # ----------------------------------------------------------------------------- uplink

    def _sign(self, events: list[Event]) -> bytes:
        batch = EventBatch(
            school=self._school, device=self._device, sent_at_ms=_now_ms(), events=events
        )
        return sign_batch(batch, self._key)

    def _decode_and_sign(self, blobs: list[bytes]) -> tuple[int, bytes]:
        """In a worker thread: a batch's stored rows -> (its last seq, the signed message)."""
        events = self._store.decode_events(blobs)
        return events[-1].seq, self._sign(events)

    async def _uplink(self) -> None:
        while True:
            self._wake.clear()
            try:
                sent = await self._uplink_step()
            except Exception:
                # Sync trouble must never take the daemon (and its turnstiles) down with it.
                log.exception("uplink step failed; retrying in 1 s")
                await asyncio.sleep(1.0)
                continue
            if sent:
                continue
            w, s = self._window, self._settings
            tick = max(
                min(s.ack_timeout_s, s.gap_grace_s if w.gap_since is not None else 1e9) / 2, 0.05
            )
            if self._hold_until is not None:  # a small batch held: send it when the hold ends
                tick = min(tick, max(self._hold_until - time.monotonic(), 0.001))
            try:
                async with asyncio.timeout(tick):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _uplink_step(self) -> bool:
        """Send the next batch if the window allows; True if one was sent."""
        s = self._settings
        w = self._window
        if not self._online:
            return False
        now = time.monotonic()
        reason = w.rewind_reason(now, ack_timeout=s.ack_timeout_s, gap_grace=s.gap_grace_s)
        if reason is not None:
            log.info(
                "re-sending from seq %d (%d unacknowledged, %s)",
                w.acked + 1,
                w.outstanding(),
                reason,
            )
            w.rewind(now, reason)
            self.rewinds += 1
        room = s.window_events - w.outstanding()
        if room <= 0:
            return False
        self._hold_until = None
        if self._holds_small_batch(now, min(s.batch_events, room)):
            return False
        blobs = await self._store.outbox_blobs(w.sent_through, min(s.batch_events, room))
        if not blobs:
            self._unsent_since = None
            return False
        # decoding and signing a large batch is CPU work: not on the loop that serves taps
        last_seq, payload = await asyncio.to_thread(self._decode_and_sign, blobs)
        if not self._publish(self._t_events, payload):
            return False
        w.on_sent(last_seq, time.monotonic())
        self.batches_sent += 1
        if last_seq >= self._store.last_seq:
            self._unsent_since = None  # all sent; the next event starts the clock again
        return True

    def _holds_small_batch(self, now: float, full: int) -> bool:
        """Nagle's rule for the uplink: while a batch is unacknowledged, a batch smaller than
        ``full`` waits (for the ack, which wakes the uplink, for more events, or for
        ``small_batch_hold_ms`` since its oldest event was journaled)."""
        hold = self._settings.small_batch_hold_ms / 1000
        since = self._unsent_since
        if hold <= 0 or since is None or self._window.outstanding() == 0:
            return False
        if not 0 < self._store.last_seq - self._window.sent_through < full:
            return False
        if now - since >= hold:
            return False
        self._hold_until = since + hold
        return True

    # --------------------------------------------------------------------------- inbound

    async def _dispatch(self) -> None:
        while True:
            topic, payload = await self._inbox.get()
            try:
                await self._receive(topic, payload)
            except DownlinkRefused as err:
                await self._refuse(err.reason, str(err))
            except ProtocolError as err:
                log.warning("ignored an invalid message on %s: %s", topic, err)
            except Exception:
                log.exception("failed to handle a message on %s", topic)

    async def _receive(self, topic: str, payload: bytes) -> None:
        try:
            env = open_envelope(payload)
        except ProtocolError as err:
            raise DownlinkRefused(Refusal.MALFORMED, str(err)) from err
        sig = self._check_signature(env)
        if topic == self._t_ack and env.type_name == "event_ack":
            progressed = await self._handle_ack(env.message(EventAck))
            # The centre's clock, from a signed ack of events sent on this connection (fresh,
            # not a replay): the edge's clock guard trusts it (``edge.clock_guard``).
            if progressed and sig is not None and self.on_centre_time is not None:
                self.on_centre_time(sig.issued_at_ms)
        elif topic == self._t_sync and env.type_name == "sync_delta":
            await self._handle_delta(env.message(SyncDelta))
        elif topic == self._t_sync and env.type_name == "sync_snapshot":
            await self._handle_snapshot(env.message(SyncSnapshot))
        elif topic == self._t_sync and env.type_name == "centre_key":
            self._handle_key_announcement(env.message(CentreKeyAnnounce), sig)
        elif topic == self._t_sync and env.type_name == "staff_pins":
            await self._handle_staff_pins(env.message(StaffPins), sig)
        else:
            raise DownlinkRefused(Refusal.MALFORMED, f"{env.type_name} on the wrong topic")
        if sig is not None:  # applied: the newest accepted, and a next key now in use
            self._newest_issued_ms = max(self._newest_issued_ms, sig.issued_at_ms)
            self._centre.used(sig.key_id)

    def _check_signature(self, env: Envelope) -> CentreSignature | None:
        """The verified signature; None for an unsigned message this mode lets through."""
        if self._mode is DownlinkSignatures.OFF:
            return None
        if self._mode is DownlinkSignatures.ACCEPT and (
            env.signature is None or not self._centre.pinned
        ):
            return None
        sig = verify_centre(env, self._centre.keys(), school=self._school, device=self._device)
        window_ms = int(self._settings.replay_window_s * 1000)
        if sig.issued_at_ms < self._newest_issued_ms - window_ms:
            raise DownlinkRefused(
                Refusal.REPLAY,
                f"{env.type_name} issued {self._newest_issued_ms - sig.issued_at_ms} ms "
                "before the newest accepted",
            )
        return sig

    async def _refuse(self, reason: Refusal, detail: str) -> None:
        """Count, log and (at most once per ``alarm_interval_s`` per reason) raise an alarm.
        Nothing else: the version, the outbox and the window stay as they were."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        log.warning("refused a message from the centre: %s", detail)
        now = time.monotonic()
        last = self._alarmed_at.get(reason)
        if last is not None and now - last < self._settings.alarm_interval_s:
            return
        self._alarmed_at[reason] = now
        await self._store.journal_alarm(
            self._device,
            AlarmCode.DOWNLINK_REFUSED,
            True,
            f"{reason.value} ({self.refused[reason]} so far): {detail}"[:500],
        )

    def _handle_key_announcement(self, msg: CentreKeyAnnounce, sig: CentreSignature | None) -> None:
        if msg.school != self._school or msg.device != self._device:
            raise DownlinkRefused(Refusal.WRONG_ADDRESS, "key announcement for another device")
        if sig is None or not self._centre.is_current(sig.key_id):
            raise DownlinkRefused(
                Refusal.UNKNOWN_KEY, "a next key must be announced under the pinned key"
            )
        public = load_public_key_b64(msg.public_key)
        if key_id(public) != msg.key_id:
            raise DownlinkRefused(Refusal.MALFORMED, "announced key id does not match the key")
        self._centre.announce(public)

    async def _handle_staff_pins(self, msg: StaffPins, sig: CentreSignature | None) -> None:
        """PINs only under a verified centre signature, whatever the downlink mode: anyone who
        can publish here could seal a PIN to this edge's public key."""
        if msg.school != self._school or msg.device != self._device:
            raise DownlinkRefused(Refusal.WRONG_ADDRESS, "staff PINs for another device")
        if sig is None:
            raise DownlinkRefused(Refusal.UNSIGNED, "staff PINs must be signed by the centre")
        if self.pins is None:
            log.warning("staff PINs arrived but this edge has no PIN key: not installed")
            return
        receipts = await self.pins.install(msg)
        ack = StaffPinsAck(school=self._school, device=self._device, receipts=receipts)
        self._publish(self._t_sync_ack, sign_message(ack, self._key))

    async def _handle_ack(self, ack: EventAck) -> bool:
        """Apply an ack; True when it acknowledged events not acknowledged before."""
        if ack.school != self._school or ack.device != self._device:
            raise DownlinkRefused(Refusal.WRONG_ADDRESS, "an ack for another device")
        if ack.committed_through > self._window.sent_high:
            raise DownlinkRefused(
                Refusal.ACK_BEYOND_SENT,
                f"ack through seq {ack.committed_through}, sent only through "
                f"{self._window.sent_high}",
            )
        progressed = ack.committed_through > self._window.acked
        self._window.on_ack(ack.committed_through, bool(ack.missing), time.monotonic())
        await self._store.outbox_ack(ack.committed_through)
        self._wake.set()
        return progressed

    async def _handle_delta(self, delta: SyncDelta) -> None:
        from edge.store import SyncGap

        if delta.school != self._school:
            raise DownlinkRefused(Refusal.WRONG_ADDRESS, "a delta for another school")
        try:
            applied = await self._store.apply_delta(delta)
        except SyncGap as err:
            log.info("downlink gap (%s): asking for a snapshot", err)
            self._request_snapshot()
            return
        if applied:
            self._notify_applied(delta.version)
        await self._publish_sync_ack(need_snapshot=False)

    def _request_snapshot(self) -> None:
        """Ask for a snapshot at most once per ``snapshot_request_interval_s``: a stream of
        deltas that do not follow cannot turn into a stream of snapshots."""
        if self._snapshot_request is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_snapshot_request + self._settings.snapshot_request_interval_s
        delay = max(0.0, wait - time.monotonic())

        def fire() -> None:
            self._snapshot_request = None
            self._last_snapshot_request = time.monotonic()
            task = loop.create_task(self._publish_sync_ack(need_snapshot=True))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        self._snapshot_request = loop.call_later(delay, fire)

    async def _handle_snapshot(self, snap: SyncSnapshot) -> None:
        if snap.school != self._school:
            raise DownlinkRefused(Refusal.WRONG_ADDRESS, "a snapshot for another school")
        if snap.version < await self._store.sync_version():
            # Not answered: an answer would ask the centre again, and a centre behind this
            # edge would answer with the same snapshot (the loop seen in the attack).
            log.warning("ignored a snapshot at version %d, older than ours", snap.version)
            return
        await self._store.apply_snapshot(snap)
        self._notify_applied(snap.version)
        await self._publish_sync_ack(need_snapshot=False)

    def _notify_applied(self, version: int) -> None:
        self._applied_version = version
        for cb in self._applied_listeners:
            cb(version)


# --------------------------------------------------------------------------------- enrolment


def _write_private(path: Path, data: bytes) -> None:
    write_private(path, data)


def load_enrolment(key_dir: Path) -> tuple[Ed25519PrivateKey, dict[str, Any]]:
    try:
        key = load_private_key((key_dir / KEY_FILE).read_bytes())
        creds: dict[str, Any] = json.loads((key_dir / CREDENTIALS_FILE).read_text())
    except (OSError, ValueError) as err:
        raise SyncError(f"{key_dir}: no usable enrolment (run `qaqpa edge enrol`): {err}") from err
    return key, creds


def enrol_device(
    server_url: str,
    token: str,
    device: str,
    key_dir: Path,
    *,
    mqtt_host: str | None = None,
    mqtt_port: int | None = None,
    mqtt_ca_file: Path | None = None,
    mqtt_cert_file: Path | None = None,
    mqtt_key_file: Path | None = None,
    mqtt_allow_plain: bool = False,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """Generate the key pair here, enrol at the server, save key (0600) and MQTT login (0600).

    The broker link is checked before the token is spent (TLS off loopback, files that load);
    the CA, certificate and key are copied beside the login and named in it."""
    import httpx

    tls_sources = {
        "mqtt_ca_file": mqtt_ca_file,
        "mqtt_cert_file": mqtt_cert_file,
        "mqtt_key_file": mqtt_key_file,
    }
    link: dict[str, Any] = {
        "mqtt_host": mqtt_host or httpx.URL(server_url).host,
        "mqtt_port": mqtt_port or (8883 if mqtt_ca_file is not None else 1883),
    }
    try:
        SyncSettings.model_validate({**link, **tls_sources, "mqtt_allow_plain": mqtt_allow_plain})
    except ValidationError as err:
        raise SyncError(link_problem(err)) from err
    key_dir.mkdir(parents=True, exist_ok=True)
    key_path = key_dir / KEY_FILE
    if key_path.exists():
        key = load_private_key(key_path.read_bytes())
    else:
        key = generate_key()
        _write_private(key_path, private_key_pem(key))
    body = {
        "token": token,
        "device": device,
        "public_key": base64.b64encode(public_key_raw(key)).decode(),
        "pins_centre_key": True,
    }
    try:
        resp = httpx.post(f"{server_url.rstrip('/')}/api/v1/enrol", json=body, timeout=timeout_s)
    except httpx.HTTPError as err:
        raise SyncError(f"cannot reach {server_url}: {err}") from err
    if resp.status_code != 200:
        raise SyncError(f"enrolment refused ({resp.status_code}): {resp.text[:200]}")
    data: dict[str, Any] = resp.json()
    creds = {
        "school": data["school"],
        "device": data["device"],
        "mqtt_username": data["mqtt_username"],
        "mqtt_password": data["mqtt_password"],
        "topic_prefix": data["topic_prefix"],
        **link,
    }
    for name, source in tls_sources.items():
        if source is not None:
            target = key_dir / TLS_FILES[name]
            if source.resolve() != target.resolve():
                pem = source.read_bytes()
                if name == "mqtt_key_file":
                    _write_private(target, pem)
                else:
                    target.write_bytes(pem)
            creds[name] = TLS_FILES[name]
    if mqtt_allow_plain:
        creds["mqtt_allow_plain"] = True
    centre_key = data.get("centre_key")
    if centre_key:
        # Pinned here, over the HTTPS enrolment the one-time token authorises; from now on this
        # edge applies only what this key (or a next key it announces) signed.
        try:
            trust = CentreTrust.from_b64(centre_key, key_dir / CENTRE_FILE)
        except CentreKeyError as err:
            raise SyncError(f"the server sent a bad centre key: {err}") from err
        if data.get("centre_key_id") not in (None, trust.current_id()):
            raise SyncError("the server's centre key id does not match its key")
        trust.save()
        creds["downlink_signatures"] = DownlinkSignatures.REQUIRE.value
        creds["centre_key_id"] = trust.current_id()
    else:
        creds["downlink_signatures"] = DownlinkSignatures.ACCEPT.value
    _write_private(key_dir / CREDENTIALS_FILE, json.dumps(creds, indent=2).encode())
    return creds


def _enrol_command(args: argparse.Namespace) -> int:
    try:
        creds = enrol_device(
            args.server,
            args.token,
            args.device,
            Path(args.key_dir),
            mqtt_host=args.mqtt_host,
            mqtt_port=args.mqtt_port,
            mqtt_ca_file=args.mqtt_ca_file,
            mqtt_cert_file=args.mqtt_cert_file,
            mqtt_key_file=args.mqtt_key_file,
            mqtt_allow_plain=args.mqtt_allow_plain,
        )
    except (SyncError, ValidationError, KeyError, OSError) as err:
        print(f"qaqpa edge enrol: {err}")
        return 2
    print(
        f"enrolled device {creds['device']} of school {creds['school']} "
        f"as MQTT user {creds['mqtt_username']}; key and login in {args.key_dir}"
    )
    link = "plain" if not creds.get("mqtt_ca_file") else "TLS, broker CA pinned"
    if creds.get("mqtt_cert_file"):
        link += ", client certificate"
    print(f"broker {creds['mqtt_host']}:{creds['mqtt_port']} ({link})")
    if creds.get("centre_key_id"):
        print(f"centre key {creds['centre_key_id']} pinned: the downlink must be signed by it")
    else:
        print("the server sent no centre key: downlink signatures are not verified (README)")
    return 0


def add_commands(subparsers: Any) -> None:
    """Register ``enrol`` on an argparse subparsers object (under ``qaqpa edge``)."""
    p = subparsers.add_parser("enrol", help="create this device's key pair and enrol at the server")
    p.add_argument("--server", required=True, help="server base URL, e.g. https://qaqpa.example.kz")
    p.add_argument("--token", required=True, help="one-time token from `qaqpa server device add`")
    p.add_argument("--device", required=True, help="this device's id")
    p.add_argument("--key-dir", required=True, help="directory for the key and the MQTT login")
    p.add_argument("--mqtt-host", default=None, help="broker host (default: the server's host)")
    p.add_argument(
        "--mqtt-port", type=int, default=None, help="broker port (default 8883 with TLS, else 1883)"
    )
    p.add_argument(
        "--mqtt-ca-file",
        type=Path,
        default=None,
        help="PEM of the CA that signed the broker's certificate: TLS, this CA only (copied "
        "into the key directory); required for a broker off loopback",
    )
    p.add_argument(
        "--mqtt-cert-file",
        type=Path,
        default=None,
        help="this device's client certificate (PEM), when the broker requires one",
    )
    p.add_argument(
        "--mqtt-key-file", type=Path, default=None, help="the unencrypted key of --mqtt-cert-file"
    )
    p.add_argument(
        "--mqtt-allow-plain",
        action="store_true",
        help="allow a plain connection to a broker off loopback (a private network only)",
    )
    p.set_defaults(func=_enrol_command)
