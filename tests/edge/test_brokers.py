"""The broker list of a cluster deployment: URLs parsed strictly, a preferred first node (a
stable hash of the device), rotation, and the spread of the failback probes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.brokers import BrokerRotation, failback_delay, parse_broker_url, preferred_index
from edge.sync import SyncSettings


def test_urls_parse_with_the_links_default_ports() -> None:
    assert parse_broker_url("mqtts://node1.kz:8893", tls=True) == ("node1.kz", 8893)
    assert parse_broker_url("node2.kz", tls=True) == ("node2.kz", 8883)
    assert parse_broker_url("mqtt://127.0.0.1", tls=False) == ("127.0.0.1", 1883)
    assert parse_broker_url("[::1]:1891", tls=False) == ("::1", 1891)


@pytest.mark.parametrize(
    ("url", "tls", "problem"),
    [
        ("mqtt://node1:1883", True, "needs mqtts://"),
        ("mqtts://node1:8883", False, "needs mqtt://"),
        ("http://node1", False, "scheme"),
        ("node1:port", False, "not a number"),
        ("node1:70000", False, "out of range"),
        ("mqtts://:8883", True, "no host"),
    ],
)
def test_a_wrong_url_is_refused_precisely(url: str, tls: bool, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_broker_url(url, tls=tls)


def test_each_device_prefers_its_own_node_and_a_fleet_spreads_over_them() -> None:
    nodes = [("a", 1), ("b", 2), ("c", 3)]
    counts = [0, 0, 0]
    for k in range(3000):
        ident = f"S{k:04d}/gate"
        rot = BrokerRotation(nodes, ident)
        assert rot.current == rot.preferred_node and rot.on_preferred  # it starts there
        assert BrokerRotation(nodes, ident).preferred == rot.preferred  # stable
        counts[rot.preferred] += 1
    assert min(counts) > 900  # about a third each
    assert preferred_index("S1/gate", 1) == 0
    # the known value: the same on every machine and start (not Python's salted hash)
    assert [preferred_index(f"S{k}/gate", 3) for k in range(6)] == [2, 2, 2, 0, 2, 2]


def test_rotation_visits_every_node_in_turn_and_returns_to_the_preferred_one() -> None:
    nodes = [("a", 1), ("b", 2), ("c", 3)]
    rot = BrokerRotation(nodes, "S1/gate")
    seen = [rot.current] + [rot.advance() for _ in range(3)]
    assert seen[0] == seen[3] and set(seen[:3]) == set(nodes)
    rot.advance()
    assert not rot.on_preferred and rot.current != rot.preferred_node
    assert rot.return_to_preferred() == rot.preferred_node and rot.on_preferred


def test_failback_probes_are_spread_around_the_interval() -> None:
    assert failback_delay(60, 0.0) == 45 and failback_delay(60, 1.0) == 75
    assert failback_delay(60, 0.5) == 60


def test_settings_check_every_node_of_the_list(tmp_path: Path) -> None:
    ok = SyncSettings(mqtt_brokers=["mqtt://127.0.0.1:1891", "localhost:1892"])
    assert ok.brokers() == [("127.0.0.1", 1891), ("localhost", 1892)]
    assert SyncSettings().brokers() == [("127.0.0.1", 1883)]  # one broker: mqtt_host/port
    # plain to a node off loopback is refused as for a single broker
    with pytest.raises(ValidationError, match="mqtt_brokers"):
        SyncSettings(mqtt_brokers=["mqtt://127.0.0.1:1891", "mqtt://10.0.0.7:1883"])


def test_the_servers_node_list_follows_the_same_rules() -> None:
    from server.settings import ServerSettings

    s = ServerSettings(mqtt_brokers=["mqtt://127.0.0.1:1891", "127.0.0.1:1892"])
    assert s.mqtt_nodes() == [("127.0.0.1", 1891), ("127.0.0.1", 1892)]
    assert ServerSettings().mqtt_nodes() == [("127.0.0.1", 1883)]
    with pytest.raises(ValidationError, match="mqtt_brokers"):
        ServerSettings(mqtt_brokers=["mqtt://10.0.0.7:1883"])
    with pytest.raises(ValidationError, match="mqtt_brokers"):
        ServerSettings(mqtt_brokers=["mqtts://127.0.0.1:8883"])  # TLS URL without a CA


def test_edge_toml_names_the_cluster_and_a_bad_node_stops_the_daemon_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from edge.config import ConfigError, load_config

    for name in list(os.environ):
        if name.startswith("QAQPA_EDGE_"):
            monkeypatch.delenv(name)
    base = 'school = "S1"\ndevice = "edge-1"\nstore = "edge.sqlite"\n'
    good = tmp_path / "good.toml"
    good.write_text(
        base
        + 'mqtt_protocol = "3.1.1"\nmqtt_brokers = ["mqtt://127.0.0.1:1891", "localhost:1892"]\n'
    )
    cfg = load_config(good)
    assert cfg.mqtt_brokers == ["mqtt://127.0.0.1:1891", "localhost:1892"]
    assert cfg.mqtt_protocol == "3.1.1"
    bad = tmp_path / "bad.toml"
    bad.write_text(base + 'mqtt_brokers = ["mqtt://127.0.0.1:1891", "mqtts://127.0.0.1:8892"]\n')
    with pytest.raises(ConfigError, match=r"mqtt_brokers\.1: .*needs mqtt://"):
        load_config(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text(base + "mqtt_brokers = []\n")
    with pytest.raises(ConfigError, match="mqtt_brokers: name at least one node"):
        load_config(empty)


async def test_the_daemon_hands_the_node_list_to_its_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from edge.config import load_config
    from edge.daemon import open_sync
    from edge.store import EdgeStore
    from protocol.signing import generate_key
    from tests.support.sync import write_key_dir

    for name in list(os.environ):
        if name.startswith("QAQPA_EDGE_"):
            monkeypatch.delenv(name)
    write_key_dir(tmp_path / "keys", generate_key(), "S1", "edge-1", 1883, "qaqpa/v1", "u", "p")
    path = tmp_path / "edge.toml"
    path.write_text(
        'school = "S1"\ndevice = "edge-1"\nstore = "edge.sqlite"\nsync_key_dir = "keys"\n'
        'mqtt_protocol = "3.1.1"\nmqtt_brokers = ["127.0.0.1:1891", "127.0.0.1:1892"]\n'
        "failback_s = 20\n"
    )
    cfg = load_config(path)
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="edge-1")
    try:
        sync = open_sync(path, cfg, store)
        assert sync.settings.brokers() == [("127.0.0.1", 1891), ("127.0.0.1", 1892)]
        assert sync.settings.mqtt_protocol == "3.1.1"
        assert sync.broker == sync.preferred_broker  # it starts on its own node
        assert sync.settings.failback_s == 20
    finally:
        await store.close()
