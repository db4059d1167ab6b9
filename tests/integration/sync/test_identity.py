"""Device identity end to end: token, HTTP enrolment, key file, Mosquitto password/ACL files and
reload, and a private broker proving a device cannot act for another school."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.store import EdgeStore
from edge.sync import EdgeSync, SyncError, enrol_device
from protocol import topics
from server.api import create_app
from server.broker_auth import write_broker_files
from server.db import make_engine, session_factory
from server.devices import add_device
from server.ingest import IngestWorker
from server.ingest.source import make_ingest_worker
from server.settings import ServerSettings
from tests.support.broker_cluster import ClusterEnv, cluster_sync_settings
from tests.support.services import PrivateBroker, free_port, wait_port
from tests.support.sync import Probe, enrolled_device, journal_rush, server_seqs, signed
from tests.support.wait import wait_until, wait_until_async

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


def logs_in(port: int, username: str, password: str) -> bool:
    """One login attempt: accepted (True) or refused (False)."""
    probe = Probe(port, username, password)
    try:
        wait_until(lambda: probe.connected.is_set() or probe.refused is not None, 5)
        return probe.connected.is_set()
    finally:
        probe.close()


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


def check_isolation(
    connect: Callable[[str, str], Probe],
    server_login: tuple[str, str],
    login_a: tuple[str, str],
    key_a: Ed25519PrivateKey,
    prefix: str,
) -> None:
    """Device S1/a may log in with its own password only, read only its own downlink, and publish
    only as itself; the server's user sees everything. Each forbidden publish goes on its own
    connection (RabbitMQ closes a connection that publishes where it may not; Mosquitto drops
    the message), and the allowed one follows once they are closed."""
    server = connect(*server_login)
    assert wait_until(server.connected.is_set, 10)
    server.subscribe(f"{prefix}/#")
    # a wrong password is refused
    intruder = connect(login_a[0], "wrong")
    assert wait_until(lambda: intruder.refused is not None, 10)
    assert not intruder.connected.is_set()
    intruder.close()

    # A may not read school 2's downlink (nor another device's of its own school). RabbitMQ
    # closes a connection that subscribes where it may not, Mosquitto grants nothing: one
    # connection per attempt, and the server's own copy of each message is the barrier.
    for school, device, kind in (("S2", "b", "sync"), ("S2", "b", "ack"), ("S1", "b", "sync")):
        topic = getattr(topics, kind)(school, device, prefix)
        spy = connect(*login_a)
        assert wait_until(spy.connected.is_set, 10)
        before = len(spy.suback)
        spy.client.subscribe(topic, qos=1)
        wait_until(lambda s=spy, n=before: len(s.suback) > n or not s.client.is_connected(), 5)  # type: ignore[misc]
        server.publish(topic, b"not-for-a")
        assert wait_until(lambda t=topic: bool(server.received(t)), 10)
        time.sleep(0.5)  # a delivery to the spy would have left the broker with the server's
        assert spy.received(topic) == []
        spy.close()
    dev_a = connect(*login_a)
    assert wait_until(dev_a.connected.is_set, 10)
    dev_a.subscribe(topics.sync("S1", "a", prefix))
    server.publish(topics.sync("S1", "a", prefix), b"mine")
    assert wait_until(lambda: bool(dev_a.received(topics.sync("S1", "a", prefix))), 10)
    dev_a.close()
    # A may not publish as school 2 (nor under its own school as device b)
    for school, device in (("S2", "b"), ("S1", "b")):
        bad = connect(*login_a)
        assert wait_until(bad.connected.is_set, 10)
        info = bad.client.publish(
            topics.events(school, device, prefix), signed(school, device, key_a, 1, 1), qos=1
        )
        wait_until(lambda b=bad, i=info: i.is_published() or not b.client.is_connected(), 5)  # type: ignore[misc]
        bad.close()
    good = connect(*login_a)
    assert wait_until(good.connected.is_set, 10)
    good.publish(topics.events("S1", "a", prefix), signed("S1", "a", key_a, 1, 1))
    # A client's messages reach the broker in order and the forbidden ones went first: once the
    # allowed one is in, the refused ones would have been too.
    assert wait_until(lambda: bool(server.received(topics.events("S1", "a", prefix))), 10)
    assert server.received(topics.events("S2", "b", prefix)) == []
    assert server.received(topics.events("S1", "b", prefix)) == []
    good.close()
    server.close()


async def test_enrolment_and_acl_isolate_schools(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    private_broker: Callable[[str], PrivateBroker],
    tmp_path: Path,
) -> None:
    auth = tmp_path / "auth"
    auth.mkdir()
    passwd, acl = auth / "passwd", auth / "acl"
    passwd.write_text("")
    acl.write_text("")
    broker = private_broker(f"allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n")
    settings = make_settings(
        pg_url,
        mqtt_port=broker.port,
        mqtt_username="qaqpa-server",
        mqtt_password="server-secret",
        mosquitto_password_file=passwd,
        mosquitto_acl_file=acl,
        mosquitto_pid_file=broker.pid_file,
    )
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        write_broker_files(s, settings)  # the server user only, then SIGHUP
        tok1 = add_device(s, settings, "S1", "a")
        tok2 = add_device(s, settings, "S2", "b")
        s.commit()
    with api_server(settings) as url:
        creds1 = await asyncio.to_thread(
            enrol_device, url, tok1, "a", tmp_path / "keys-a", mqtt_port=broker.port
        )
        await asyncio.to_thread(
            enrol_device, url, tok2, "b", tmp_path / "keys-b", mqtt_port=broker.port
        )
        with pytest.raises(SyncError, match="403"):  # one-time token
            await asyncio.to_thread(enrol_device, url, tok1, "a", tmp_path / "keys-x")
    key_mode = stat.S_IMODE((tmp_path / "keys-a" / "device.key").stat().st_mode)
    assert key_mode == 0o600
    assert stat.S_IMODE((tmp_path / "keys-a" / "mqtt.json").stat().st_mode) == 0o600
    assert creds1["mqtt_username"] == "S1.a" and "S1.a:$7$" in passwd.read_text()
    from edge.sync import load_enrolment

    key_a, login_a = load_enrolment(tmp_path / "keys-a")
    # the broker reloads its files on SIGHUP: wait until it knows the new device
    await asyncio.to_thread(
        wait_until,
        lambda: logs_in(broker.port, login_a["mqtt_username"], login_a["mqtt_password"]),
        10,
        "the broker accepts the enrolled device's login",
    )
    check_isolation(
        lambda user, pw: Probe(broker.port, user, pw),
        ("qaqpa-server", "server-secret"),
        (login_a["mqtt_username"], login_a["mqtt_password"]),
        key_a,
        prefix,
    )

    # And the whole uplink works through the ACL with the enrolled credentials.
    store = await EdgeStore.open(tmp_path / "a.db", school="S1", device="a")
    last = await journal_rush(store, 2000)
    async with (
        IngestWorker(settings, engine),
        EdgeSync.from_key_dir(store, tmp_path / "keys-a", ack_timeout_s=2.0) as sync,
    ):

        async def all_acked() -> bool:
            return (await sync.status()).committed_through >= last

        await wait_until_async(all_acked, 10, "every event acked")
    await store.close()
    assert server_seqs(engine, "S1", "a") == list(range(1, last + 1))
    engine.dispose()


@pytest.mark.rabbitmq
async def test_cluster_isolates_schools(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    rabbit_cluster: ClusterEnv,
    tmp_path: Path,
) -> None:
    """The same isolation on the three-node RabbitMQ cluster (MQTT 3.1.1 over TLS, device logins
    and topics from the server's HTTP auth backend), the device on one node and the server's
    user on another; then the device's uplink through the cluster and the quorum queue."""
    settings = rabbit_cluster.server_settings(make_settings(pg_url))
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key_a, user_a, pw_a = enrolled_device(s, settings, "S1", "a")
        enrolled_device(s, settings, "S2", "b")
    nodes = iter([0, 2, 1, 2, 0, 1, 2])

    def connect(user: str, pw: str) -> Probe:
        port = rabbit_cluster.cluster.mqtt_port(next(nodes, 0))
        return Probe(port, user, pw, protocol="3.1.1", ca_file=rabbit_cluster.ca_file)

    with rabbit_cluster.serve_auth(settings):
        await asyncio.to_thread(
            check_isolation,
            connect,
            (rabbit_cluster.cluster.admin_user, rabbit_cluster.cluster.admin_password),
            (user_a, pw_a),
            key_a,
            prefix,
        )
        store = await EdgeStore.open(tmp_path / "a.db", school="S1", device="a")
        last = await journal_rush(store, 2000)
        edge = cluster_sync_settings(rabbit_cluster, prefix, user_a, pw_a)
        async with (
            make_ingest_worker(settings, engine),
            EdgeSync(store, edge, key_a) as sync,
        ):

            async def all_acked() -> bool:
                return (await sync.status()).committed_through >= last

            # the acks come back signed by the centre and the edge verifies them ("require")
            await wait_until_async(all_acked, 30, "every event acked through the cluster")
        await store.close()
    assert server_seqs(engine, "S1", "a") == list(range(1, last + 1))
    engine.dispose()
