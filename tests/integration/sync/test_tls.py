"""MQTT over TLS against a private Mosquitto with a TLS listener (certificates made here).

An edge and the ingest worker exchange events over TLS exactly once; a client trusting the wrong
CA is refused and the edge keeps its journal; with client certificates required, a client
without one (or with one from another CA) is refused and one the CA signed gets in. A plain
connection to a broker off loopback is refused by the settings, before any socket exists (no
test here connects anywhere but 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from edge.store import EdgeStore
from edge.sync import EdgeSync, SyncError, SyncSettings, enrol_device
from protocol.link import is_loopback
from server.api import create_app
from server.db import make_engine, session_factory
from server.devices import add_device
from server.ingest import IngestWorker
from server.mqtt import make_client
from server.settings import ServerSettings
from tests.support.centre import CENTRE_PUBLIC_B64
from tests.support.services import PrivateBroker, free_port, wait_port
from tests.support.sync import enrolled_device, journal_rush, server_seqs, write_key_dir
from tests.support.tls import Issued, ThrowawayCA

OFF_LOOPBACK = ["192.0.2.10", "10.0.0.5", "broker.example.kz", "2001:db8::1", "[2001:db8::1]"]
LOOPBACK = ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST."]


@dataclass
class Pki:
    ca: ThrowawayCA
    broker: Issued
    edge: Issued
    server: Issued
    other_ca: ThrowawayCA
    other_edge: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    d = tmp_path / "pki"
    d.mkdir()
    ca = ThrowawayCA(d, "centre")
    other = ThrowawayCA(d, "other")
    return Pki(
        ca=ca,
        broker=ca.issue("broker", server=True),
        edge=ca.issue("S1.d1", server=False),
        server=ca.issue("qaqpa-server", server=False),
        other_ca=other,
        other_edge=other.issue("S1.d1", server=False),
    )


def edge_settings(port: int, prefix: str, **tls: Any) -> SyncSettings:
    return SyncSettings(
        mqtt_host="127.0.0.1",
        mqtt_port=port,
        topic_prefix=prefix,
        ack_timeout_s=2.0,
        gap_grace_s=0.5,
        backoff_min_s=0.1,
        backoff_max_s=0.5,
        connect_timeout_s=5.0,
        centre_key=CENTRE_PUBLIC_B64,
        **tls,
    )


def try_connect(
    port: int,
    ctx: ssl.SSLContext | None,
    timeout: float = 10.0,
    login: tuple[str, str] | None = None,
) -> str:
    """One paho client's fate: "connected" (CONNACK), "closed" (dropped before it) or the
    exception of the TLS handshake."""
    outcome: list[str] = []
    done = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"tls-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    if ctx is not None:
        client.tls_set_context(ctx)
    if login is not None:
        client.username_pw_set(*login)

    def on_connect(*args: Any) -> None:
        outcome.append("refused" if args[3].is_failure else "connected")
        done.set()

    def on_disconnect(*_: Any) -> None:
        outcome.append("closed")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect("127.0.0.1", port)
    except (ssl.SSLError, OSError) as err:
        return type(err).__name__
    client.loop_start()
    try:
        assert done.wait(timeout), "neither CONNACK nor a closed connection"
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0]


def client_ctx(ca: Path, client: Issued | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(client.cert_file, client.key_file)
    return ctx


async def wait_for(pred: Callable[[], Any], what: str, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not await pred():
            await asyncio.sleep(0.05)
    assert await pred(), what


async def drained(sync: EdgeSync, last: int) -> bool:
    st = await sync.status()
    return st.backlog == 0 and st.committed_through >= last


# ------------------------------------------------------------------ over TLS, exactly once


@pytest.mark.mosquitto
@pytest.mark.postgres
async def test_edge_and_ingest_exchange_events_over_tls_exactly_once(
    pki: Pki,
    private_broker: Callable[[str], PrivateBroker],
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    tmp_path: Path,
) -> None:
    broker = private_broker(pki.ca.listener_conf(pki.broker))
    # the listener speaks TLS only: a plain client never gets a CONNACK
    assert try_connect(broker.port, None) == "closed"
    assert try_connect(broker.port, client_ctx(pki.ca.ca_file)) == "connected"

    settings = make_settings(pg_url, mqtt_port=broker.port, mqtt_ca_file=pki.ca.ca_file)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    last = await journal_rush(store, 3000)  # journaled while offline
    sync_settings = edge_settings(broker.port, prefix, mqtt_ca_file=pki.ca.ca_file)
    async with IngestWorker(settings, engine), EdgeSync(store, sync_settings, key) as sync:
        last = await journal_rush(store, 2000)  # and while online
        await wait_for(lambda: drained(sync, last), "the outbox drained over TLS")
        assert sync.online and sync.failed_connections == 0
    await store.close()
    assert server_seqs(engine, "S1", "d1") == list(range(1, last + 1))  # each once, none lost
    engine.dispose()


@pytest.mark.mosquitto
def test_the_host_name_is_checked_and_tls_is_at_least_1_2(
    pki: Pki,
    private_broker: Callable[[str], PrivateBroker],
    make_settings: Callable[..., ServerSettings],
) -> None:
    """A certificate the pinned CA signed for another name is refused too."""
    elsewhere = pki.ca.issue("elsewhere", server=True, names=("broker.example.kz",))
    broker = private_broker(pki.ca.listener_conf(elsewhere))
    settings = make_settings("sqlite://", mqtt_port=broker.port, mqtt_ca_file=pki.ca.ca_file)
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        make_client(settings, "probe").connect("127.0.0.1", broker.port)
    edge = edge_settings(broker.port, "p", mqtt_ca_file=pki.ca.ca_file)
    for ctx in (settings.mqtt_tls_context(), edge.tls_context()):
        assert ctx is not None and ctx.check_hostname and ctx.verify_mode is ssl.CERT_REQUIRED
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2


# --------------------------------------------------------------------------- the wrong CA


@pytest.mark.mosquitto
@pytest.mark.postgres
async def test_the_wrong_ca_is_refused_and_the_edge_keeps_journaling(
    pki: Pki,
    private_broker: Callable[[str], PrivateBroker],
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    tmp_path: Path,
) -> None:
    broker = private_broker(pki.ca.listener_conf(pki.broker))
    assert try_connect(broker.port, client_ctx(pki.other_ca.ca_file)) == "SSLCertVerificationError"
    # the server's clients are built the same way: the wrong CA fails the handshake
    wrong_server = make_settings(pg_url, mqtt_port=broker.port, mqtt_ca_file=pki.other_ca.ca_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        make_client(wrong_server, "probe").connect("127.0.0.1", broker.port)

    settings = make_settings(pg_url, mqtt_port=broker.port, mqtt_ca_file=pki.ca.ca_file)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    await journal_rush(store, 1000)
    wrong = edge_settings(broker.port, prefix, mqtt_ca_file=pki.other_ca.ca_file)
    async with IngestWorker(settings, engine):
        async with EdgeSync(store, wrong, key) as sync:
            last = await journal_rush(store, 1000)  # the school goes on deciding and journaling

            async def refused_twice() -> bool:
                return sync.failed_connections >= 2

            await wait_for(refused_twice, "two refused connections")
            st = await sync.status()
            assert not sync.online
            assert st.backlog == last and st.committed_through == 0
        assert server_seqs(engine, "S1", "d1") == []
        # the right CA: everything journaled meanwhile arrives, once
        right = edge_settings(broker.port, prefix, mqtt_ca_file=pki.ca.ca_file)
        async with EdgeSync(store, right, key) as sync:
            await wait_for(lambda: drained(sync, last), "the outbox drained after the fix")
    await store.close()
    assert server_seqs(engine, "S1", "d1") == list(range(1, last + 1))
    engine.dispose()


# ------------------------------------------------------------ client certificates required


@pytest.mark.mosquitto
@pytest.mark.postgres
async def test_required_client_certificates(
    pki: Pki,
    private_broker: Callable[[str], PrivateBroker],
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    tmp_path: Path,
) -> None:
    broker = private_broker(pki.ca.listener_conf(pki.broker, require_certificate=True))
    ca = pki.ca.ca_file
    assert try_connect(broker.port, client_ctx(ca)) != "connected"
    assert try_connect(broker.port, client_ctx(ca, pki.other_edge)) != "connected"
    assert try_connect(broker.port, client_ctx(ca, pki.edge)) == "connected"

    settings = make_settings(
        pg_url,
        mqtt_port=broker.port,
        mqtt_ca_file=ca,
        mqtt_cert_file=pki.server.cert_file,
        mqtt_key_file=pki.server.key_file,
    )
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    last = await journal_rush(store, 500)
    async with IngestWorker(settings, engine):
        # no certificate: refused, and the events stay in the outbox
        async with EdgeSync(
            store, edge_settings(broker.port, prefix, mqtt_ca_file=ca), key
        ) as sync:

            async def refused_twice() -> bool:
                return sync.failed_connections >= 2

            await wait_for(refused_twice, "two refused connections")
            assert not sync.online and (await sync.status()).backlog == last
        with_cert = edge_settings(
            broker.port,
            prefix,
            mqtt_ca_file=ca,
            mqtt_cert_file=pki.edge.cert_file,
            mqtt_key_file=pki.edge.key_file,
        )
        async with EdgeSync(store, with_cert, key) as sync:
            await wait_for(lambda: drained(sync, last), "the outbox drained with a certificate")
    await store.close()
    assert server_seqs(engine, "S1", "d1") == list(range(1, last + 1))
    engine.dispose()


@pytest.mark.mosquitto
@pytest.mark.postgres
async def test_enrolment_records_the_ca_and_the_client_certificate(
    pki: Pki,
    private_broker: Callable[[str], PrivateBroker],
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    tmp_path: Path,
) -> None:
    """``qaqpa edge enrol --mqtt-ca-file --mqtt-cert-file --mqtt-key-file`` copies the files
    beside the login; the daemon's sync then connects over TLS with them and drains."""
    broker = private_broker(pki.ca.listener_conf(pki.broker, require_certificate=True))
    settings = make_settings(
        pg_url,
        mqtt_port=broker.port,
        mqtt_ca_file=pki.ca.ca_file,
        mqtt_cert_file=pki.server.cert_file,
        mqtt_key_file=pki.server.key_file,
    )
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        token = add_device(s, settings, "S1", "d1")
        s.commit()
    key_dir = tmp_path / "key"
    with api_server(settings) as url:
        creds = await asyncio.to_thread(
            enrol_device,
            url,
            token,
            "d1",
            key_dir,
            mqtt_port=broker.port,
            mqtt_ca_file=pki.ca.ca_file,
            mqtt_cert_file=pki.edge.cert_file,
            mqtt_key_file=pki.edge.key_file,
        )
    assert creds["mqtt_ca_file"] == "broker-ca.pem"
    assert (key_dir / "broker-ca.pem").read_bytes() == pki.ca.ca_file.read_bytes()
    assert stat.S_IMODE((key_dir / "mqtt-client.key").stat().st_mode) == 0o600
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    last = await journal_rush(store, 300)
    async with (
        IngestWorker(settings, engine),
        EdgeSync.from_key_dir(store, key_dir, ack_timeout_s=2.0) as sync,
    ):
        await wait_for(lambda: drained(sync, last), "the outbox drained with the enrolled files")
    await store.close()
    assert server_seqs(engine, "S1", "d1") == list(range(1, last + 1))
    engine.dispose()


@contextlib.contextmanager
def api_server(settings: ServerSettings) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_port(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# ----------------------------------------------------------------- the shipped configuration

DEPLOY_CONF = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto" / "mosquitto.conf"


@pytest.mark.mosquitto
def test_the_shipped_mosquitto_conf_serves_tls_and_loopback_only(pki: Pki, tmp_path: Path) -> None:
    """deploy/mosquitto/mosquitto.conf with this test's paths and ports: TLS with a password on
    the schools' listener (plain refused there), plain on the loopback one, and the message size
    limit of the protocol (as max_packet_size: tests/server/test_broker_limits.py)."""
    from server.broker_auth import mosquitto_hash

    text = DEPLOY_CONF.read_text()
    assert "\nmax_packet_size " in text and "\nmessage_size_limit " not in text
    assert "\ntls_version tlsv1.2\n" in text
    tls_port, plain_port = free_port(), free_port()
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    passwd.write_text(f"edge:{mosquitto_hash('edge-secret')}\n")
    acl.write_text("user edge\ntopic readwrite t/#\n")
    for old, new in {
        "/run/mosquitto/mosquitto.pid": str(tmp_path / "mosquitto.pid"),
        "/etc/mosquitto/qaqpa.passwd": str(passwd),
        "/etc/mosquitto/qaqpa.acl": str(acl),
        "/etc/mosquitto/certs/ca.pem": str(pki.ca.ca_file),
        "/etc/mosquitto/certs/broker.pem": str(pki.broker.cert_file),
        "/etc/mosquitto/certs/broker.key": str(pki.broker.key_file),
        "\nlistener 8883\n": f"\nlistener {tls_port} 127.0.0.1\n",
        "\nlistener 1883 127.0.0.1\n": f"\nlistener {plain_port} 127.0.0.1\n",
        "\npersistence true\n": "\npersistence false\n",
        "\npersistence_location /var/lib/mosquitto/\n": "\n",
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    conf = tmp_path / "mosquitto.conf"
    log = tmp_path / "mosquitto.log"
    conf.write_text(f"user {getpass.getuser()}\nlog_dest file {log}\n{text}")
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)])
    try:
        wait_port(tls_port)
        wait_port(plain_port)
        login = ("edge", "edge-secret")
        assert try_connect(tls_port, client_ctx(pki.ca.ca_file), login=login) == "connected"
        assert try_connect(tls_port, client_ctx(pki.ca.ca_file)) == "refused"  # no password
        assert try_connect(tls_port, None, login=login) == "closed"  # plain: no CONNACK
        assert try_connect(plain_port, None, login=login) == "connected"
    finally:
        proc.terminate()
        proc.wait(10)


# ------------------------------------------------- plain off loopback: refused, no traffic


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup from here on fails the test: validation sends nothing."""

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("host", OFF_LOOPBACK)
def test_plain_off_loopback_is_refused_by_the_settings(
    host: str, no_sockets: None, pki: Pki
) -> None:
    assert not is_loopback(host)
    for model in (SyncSettings, ServerSettings):
        with pytest.raises(ValidationError) as info:
            model(mqtt_host=host)
        message = str(info.value)
        assert f"mqtt_host: a plain (unencrypted) MQTT connection to {host!r}" in message
        assert "mqtt_ca_file" in message and "mqtt_allow_plain" in message
        # TLS, or an explicit allowance, is accepted
        assert model(mqtt_host=host, mqtt_ca_file=pki.ca.ca_file).mqtt_ca_file == pki.ca.ca_file
        assert model(mqtt_host=host, mqtt_allow_plain=True).mqtt_allow_plain


@pytest.mark.parametrize("host", LOOPBACK)
def test_plain_to_loopback_stays_allowed(host: str, no_sockets: None) -> None:
    assert is_loopback(host)
    assert SyncSettings(mqtt_host=host).mqtt_ca_file is None
    assert ServerSettings(mqtt_host=host).mqtt_ca_file is None


def test_settings_refuse_unusable_tls_files(tmp_path: Path, pki: Pki) -> None:
    for model in (SyncSettings, ServerSettings):
        with pytest.raises(ValidationError, match=r"mqtt_ca_file: .*/nope.pem: cannot read"):
            model(mqtt_ca_file=tmp_path / "nope.pem")
        with pytest.raises(ValidationError, match="mqtt_cert_file: a client certificate is sent"):
            model(mqtt_cert_file=pki.edge.cert_file, mqtt_key_file=pki.edge.key_file)
        with pytest.raises(ValidationError, match="mqtt_cert_file and mqtt_key_file: set both"):
            model(mqtt_ca_file=pki.ca.ca_file, mqtt_cert_file=pki.edge.cert_file)
        with pytest.raises(ValidationError, match=r"mqtt_ca_file: .*: not a PEM CA certificate"):
            model(mqtt_ca_file=pki.edge.key_file)


async def test_an_enrolment_for_a_plain_broker_off_loopback_is_refused(
    tmp_path: Path, pki: Pki, no_sockets: None
) -> None:
    """mqtt.json names a broker off loopback and no CA: the edge refuses before connecting; with
    the CA recorded at enrolment (a file beside it) the same enrolment is accepted."""
    from protocol.signing import generate_key

    key_dir = tmp_path / "key"
    write_key_dir(key_dir, generate_key(), "S1", "d1", 8883, "qaqpa/v1")
    creds = json.loads((key_dir / "mqtt.json").read_text())
    creds["mqtt_host"] = "192.0.2.10"
    (key_dir / "mqtt.json").write_text(json.dumps(creds))
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    try:
        with pytest.raises(
            SyncError, match=r"mqtt.json: mqtt_host: a plain .* refused off loopback"
        ):
            EdgeSync.from_key_dir(store, key_dir)
        (key_dir / "broker-ca.pem").write_bytes(pki.ca.ca_file.read_bytes())
        (key_dir / "mqtt.json").write_text(json.dumps({**creds, "mqtt_ca_file": "broker-ca.pem"}))
        sync = EdgeSync.from_key_dir(store, key_dir)
        assert sync.settings.mqtt_ca_file == key_dir / "broker-ca.pem"
    finally:
        await store.close()


def test_enrolment_for_a_plain_broker_off_loopback_is_refused_first(
    tmp_path: Path, no_sockets: None
) -> None:
    """Refused before the server is asked, so the one-time token is not spent."""
    with pytest.raises(SyncError, match=r"mqtt_host: a plain .* 'centre\.example\.kz'"):
        enrol_device("https://centre.example.kz", "token", "d1", tmp_path / "key")
    assert not (tmp_path / "key").exists()


def test_server_commands_refuse_a_plain_broker_off_loopback(tmp_path: Path) -> None:
    """``qaqpa server ingest`` stops at its settings: exit 2, the field named, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QAQPA_SERVER_")}
    env["QAQPA_SERVER_MQTT_HOST"] = "192.0.2.10"
    done = subprocess.run(
        [sys.executable, "-m", "qaqpa.cli", "server", "ingest"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        "qaqpa server: refusing to start: settings: mqtt_host: a plain (unencrypted)"
    )
    assert "Traceback" not in done.stderr
