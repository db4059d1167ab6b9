"""The fleet bench's RabbitMQ cluster can run beside the tests' cluster: its own node names,
ports and data directory (a shared name makes the second cluster fail with
duplicate_node_name, a shared port makes it fail to listen). Nothing is started here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from simulators.broker_cluster import NATS_PORTS, RABBIT_PORTS, Ports, RabbitCluster
from simulators.fleet_brokers import (
    CLUSTER_AUTH_PORT,
    CLUSTER_NODE_PREFIX,
    CLUSTER_PORTS,
    ClusterTarget,
    TargetUnavailable,
)
from tests.support.broker_cluster import AUTH_PORT


def _ports(p: Ports) -> set[int]:
    return {*p.native, *p.mqtt, *p.mqtt_tls, *p.internal}


pytestmark = pytest.mark.exclusive  # the fleet cluster's fixed names and ports


def test_the_fleet_cluster_has_names_and_ports_of_its_own(tmp_path: Path) -> None:
    tests_cluster = RabbitCluster(tmp_path / "tests", RABBIT_PORTS)
    fleet_cluster = RabbitCluster(
        tmp_path / "fleet", CLUSTER_PORTS, node_prefix=CLUSTER_NODE_PREFIX
    )
    tests_nodes = {tests_cluster.node(i) for i in range(3)}
    fleet_nodes = {fleet_cluster.node(i) for i in range(3)}
    assert tests_nodes == {"qaqpa-c1@localhost", "qaqpa-c2@localhost", "qaqpa-c3@localhost"}
    assert fleet_nodes == {"qaqpa-f1@localhost", "qaqpa-f2@localhost", "qaqpa-f3@localhost"}
    # each node's configuration names its own cluster's peers only
    conf = fleet_cluster._conf(0)
    assert all(n in conf for n in fleet_nodes) and not any(n in conf for n in tests_nodes)
    assert fleet_cluster._env(1)["RABBITMQ_NODENAME"] == "qaqpa-f2@localhost"
    assert fleet_cluster._env(1)["RABBITMQ_MNESIA_BASE"].startswith(str(tmp_path / "fleet"))

    fleet = _ports(CLUSTER_PORTS) | {CLUSTER_AUTH_PORT}
    assert len(fleet) == 13  # no two of the bench's own collide either
    assert not fleet & (_ports(RABBIT_PORTS) | _ports(NATS_PORTS) | {AUTH_PORT})


def test_the_fleet_target_refuses_only_its_own_names_already_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mp = monkeypatch
    names = ["epmd: up and running on port 4369 with data:", "name rabbit at port 25672"]
    names += [f"name qaqpa-c{i} at port 2568{i}" for i in (1, 2, 3)]

    def epmd(argv: list[str], **_kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, "\n".join(names) + "\n", "")

    mp.setattr("simulators.fleet_brokers._listens", lambda _port: False)
    mp.setattr("simulators.fleet_brokers.Path.exists", lambda _self: True)
    mp.setattr("simulators.fleet_brokers.subprocess.run", epmd)
    target = ClusterTarget(tmp_path)
    target.preflight()  # the tests' qaqpa-c1..3 and the machine's own RabbitMQ: no matter

    names.append("name qaqpa-f2 at port 18892")
    with pytest.raises(TargetUnavailable, match="qaqpa-f2"):
        target.preflight()
