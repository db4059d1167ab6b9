"""The broker targets of ``qaqpa bench fleet``: what the simulated schools connect to.

A target is started by the bench with the devices' logins already in the database, hands back
the list of its MQTT node addresses (schools are spread over them and fail over to the next),
the pids whose CPU and memory are reported, and the MQTT version the schools and ingest speak.

- ``mosquitto``: one Mosquitto of the bench's own, with the password and ACL files the server
  writes from the devices table (server/broker_auth.py, as deploy/mosquitto/ in production).
- ``cluster``: the three-node broker cluster of issue 19 (branch ``cluster``, not merged when this
  bench was written). ``ClusterTarget.start`` is the hook: once the cluster's node helpers land,
  it starts the three nodes with the same per-device logins and returns their addresses; until
  then the bench reports the target as not available and goes on with the others.
"""

from __future__ import annotations

import getpass
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from simulators.fleet_tls import make_broker_certs


class BrokerTarget(Protocol):
    name: str
    mqtt_protocol: str  # "5" or "3.1.1": what the schools and the ingest speak to it

    def preflight(self) -> None: ...  # raises TargetUnavailable before the fleet is enrolled
    def auth_settings(self) -> dict[str, Any]: ...
    def start(self) -> list[Node]: ...  # the nodes the schools connect to
    def centre_node(self) -> Node: ...  # where the ingest workers connect (after start)
    def pids(self) -> list[int]: ...
    def stop(self) -> None: ...


class TargetUnavailable(RuntimeError):
    """The target cannot run on this checkout (said in the JSON; the other targets still run)."""


@dataclass(frozen=True, slots=True)
class Node:
    host: str
    port: int
    ca_file: Path | None = None  # set: TLS, the broker's certificate checked against this CA

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.ca_file else 'mqtt'}://{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listens(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class MosquittoTarget:
    """One Mosquitto on ``port`` (0: a free one), per-device logins and ACL from the server."""

    workdir: Path
    port: int = 0
    tls: bool = False
    name: str = "mosquitto"
    mqtt_protocol: str = "5"
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        # with TLS the schools' listener is TLS only and the centre's a plain loopback one, as
        # in deploy/mosquitto/mosquitto.conf
        self.centre_port = free_port() if self.tls else self.port
        self.ca_file: Path | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.passwd = self.workdir / "passwd"
        self.acl = self.workdir / "acl"
        self.pid_file = self.workdir / "mosquitto.pid"
        self.log = self.workdir / "mosquitto.log"

    def auth_settings(self) -> dict[str, Any]:
        """The ServerSettings fields that make the server write this broker's auth files."""
        return {"mosquitto_password_file": self.passwd, "mosquitto_acl_file": self.acl}

    def preflight(self) -> None:
        if _listens(self.port):
            raise TargetUnavailable(f"port {self.port} is taken: choose another --broker-port")

    def start(self) -> list[Node]:
        conf = self.workdir / "mosquitto.conf"
        listeners = f"listener {self.port} 127.0.0.1\n"
        if self.tls:
            certs = make_broker_certs(self.workdir)
            self.ca_file = certs.ca_file
            listeners += (
                f"cafile {certs.ca_file}\ncertfile {certs.cert_file}\nkeyfile {certs.key_file}\n"
                "tls_version tlsv1.2\nrequire_certificate false\n"
                f"listener {self.centre_port} 127.0.0.1\n"
            )
        conf.write_text(
            listeners + f"pid_file {self.pid_file}\n"
            "persistence false\n"
            f"user {getpass.getuser()}\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\n"
            "allow_anonymous false\n"
            f"password_file {self.passwd}\n"
            f"acl_file {self.acl}\n"
            # as deploy/mosquitto/mosquitto.conf
            "max_queued_messages 10000\n"
            "max_inflight_messages 100\n"
            "max_packet_size 16908288\n"
        )
        self.proc = subprocess.Popen(
            ["/usr/sbin/mosquitto", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (_listens(self.port) and _listens(self.centre_port)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text()[-500:] if self.log.exists() else ""
                raise TargetUnavailable(f"mosquitto did not start: {tail}")
            time.sleep(0.05)
        return [Node("127.0.0.1", self.port, self.ca_file)]

    def centre_node(self) -> Node:
        return Node("127.0.0.1", self.centre_port)

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


NOT_MERGED = (
    "the broker cluster (issue 19, branch 'cluster') is not merged yet: "
    "simulators/fleet_brokers.py ClusterTarget (preflight, start) is the hook that will start "
    "its nodes"
)


@dataclass
class ClusterTarget:
    """The three-node cluster (RabbitMQ or NATS, MQTT 3.1.1 at the nodes) of branch ``cluster``.

    The hook for the cluster engineer: make ``preflight`` check what the nodes need (free ports,
    the engine installed) and ``start`` start the nodes (their own ports and data
    directories under ``workdir``), give each device its login and topic permissions (as
    ``server/broker_auth.py`` does for Mosquitto: a device publishes only under its own school),
    and return the three node addresses; ``pids`` the nodes' pids; ``stop`` stops them and
    removes their data. If ingest consumes the engine's native protocol (AMQP / JetStream),
    ``ingest_env`` names the settings for that. Nothing else in the bench changes.
    """

    workdir: Path
    port: int = 0
    tls: bool = False
    name: str = "cluster"
    mqtt_protocol: str = "3.1.1"

    def auth_settings(self) -> dict[str, Any]:
        return {}

    def preflight(self) -> None:
        raise TargetUnavailable(NOT_MERGED)  # the hook: check the nodes' ports are free

    def start(self) -> list[Node]:
        raise TargetUnavailable(NOT_MERGED)  # the hook: start the three nodes

    def centre_node(self) -> Node:
        raise TargetUnavailable(NOT_MERGED)  # the hook: where ingest consumes

    def pids(self) -> list[int]:
        return []

    def stop(self) -> None:
        return None


def mosquitto(workdir: Path, port: int, tls: bool) -> BrokerTarget:
    return MosquittoTarget(workdir, port, tls)


def cluster(workdir: Path, port: int, tls: bool) -> BrokerTarget:
    return ClusterTarget(workdir, port, tls)


TARGETS: dict[str, Callable[[Path, int, bool], BrokerTarget]] = {
    "mosquitto": mosquitto,
    "cluster": cluster,
}
