"""Device identity end to end: token, HTTP enrolment, key file, Mosquitto password/ACL files and
reload, and a private broker proving a device cannot act for another school."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn

from edge.store import EdgeStore
from edge.sync import EdgeSync, SyncError, enrol_device
from protocol import topics
from server.api import create_app
from server.broker_auth import write_broker_files
from server.db import make_engine, session_factory
from server.devices import add_device
from server.ingest import IngestWorker
from server.settings import ServerSettings
from tests.support.services import PrivateBroker, free_port, wait_port
from tests.support.sync import Probe, journal_rush, server_seqs, signed
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
    server = Probe(broker.port, "qaqpa-server", "server-secret")
    assert wait_until(server.connected.is_set, 5)
    server.subscribe(f"{prefix}/#")
    # a wrong password is refused
    intruder = Probe(broker.port, "S1.a", "wrong")
    assert wait_until(lambda: intruder.refused is not None, 5)
    intruder.close()

    dev_a = Probe(broker.port, login_a["mqtt_username"], login_a["mqtt_password"])
    assert wait_until(dev_a.connected.is_set, 5)
    # A may not read school 2's downlink (nor another device's of its own school)
    dev_a.subscribe(topics.sync("S2", "b", prefix))
    dev_a.subscribe(topics.ack("S2", "b", prefix))
    dev_a.subscribe(topics.sync("S1", "a", prefix))
    server.publish(topics.sync("S2", "b", prefix), b"school-2-secret")
    server.publish(topics.ack("S2", "b", prefix), b"school-2-ack")
    server.publish(topics.sync("S1", "a", prefix), b"mine")
    assert wait_until(lambda: bool(dev_a.received(topics.sync("S1", "a", prefix))), 5)
    # A may not publish as school 2 (nor under its own school as device b)
    dev_a.publish(topics.events("S2", "b", prefix), signed("S2", "b", key_a, 1, 1))
    dev_a.publish(topics.events("S1", "b", prefix), signed("S1", "b", key_a, 1, 1))
    dev_a.publish(topics.events("S1", "a", prefix), signed("S1", "a", key_a, 1, 1))
    # Each client's messages arrive in the order they were sent: once the last one (allowed) is
    # in, the refused ones before it would have been too.
    assert wait_until(lambda: bool(server.received(topics.events("S1", "a", prefix))), 5)
    assert dev_a.received(topics.sync("S2", "b", prefix)) == []
    assert dev_a.received(topics.ack("S2", "b", prefix)) == []
    assert server.received(topics.events("S2", "b", prefix)) == []
    assert server.received(topics.events("S1", "b", prefix)) == []
    dev_a.close()
    server.close()

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
