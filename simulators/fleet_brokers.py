"""The broker targets of ``qaqpa bench fleet``: what the simulated schools connect to.

A target is started by the bench with the devices' logins already in the database, hands back
the list of its MQTT node addresses (schools are spread over them and fail over to the next),
the pids whose CPU and memory are reported, and the MQTT version the schools and ingest speak.

- ``mosquitto``: one Mosquitto of the bench's own, with the password and ACL files the server
  writes from the devices table (server/broker_auth.py, as deploy/mosquitto/ in production).
- ``cluster``: the three-node RabbitMQ cluster of issue 19 (``simulators/broker_cluster.py``),
  on this bench's own ports (18851-18893, its auth backend on 18810) and node names
  (``qaqpa-f1..3``, beside the tests' ``qaqpa-c1..3``): logins and topics from the
  devices table through the server's HTTP auth backend (``server/rabbit_auth``), ingest from the
  replicated quorum queue over AMQP.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from server.settings import ServerSettings
from simulators.broker_cluster import RABBIT_SERVER, ClusterError, ClusterTls, Ports, RabbitCluster
from simulators.fleet_tls import make_broker_certs


class BrokerTarget(Protocol):
    name: str
    mqtt_protocol: str  # "5" or "3.1.1": what the schools and the ingest speak to it

    def preflight(self) -> None: ...  # raises TargetUnavailable before the fleet is enrolled
    def auth_settings(self) -> dict[str, Any]: ...
    def start(self, settings: ServerSettings) -> list[Node]: ...  # the schools' nodes
    def ingest_settings(self, settings: ServerSettings) -> ServerSettings: ...  # after start
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

    def start(self, settings: ServerSettings) -> list[Node]:
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

    def ingest_settings(self, settings: ServerSettings) -> ServerSettings:
        return settings.model_copy(update={"mqtt_port": self.centre_port})

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


CLUSTER_PORTS = Ports(  # in this bench's range (18800-18899), apart from the tests' cluster
    native=(18851, 18852, 18853),
    mqtt=(18861, 18862, 18863),
    mqtt_tls=(18871, 18872, 18873),
    internal=(18891, 18892, 18893),
)
CLUSTER_AUTH_PORT = 18810
CLUSTER_NODE_PREFIX = "qaqpa-f"  # the tests' cluster is qaqpa-c1..3: both can run at once


@dataclass
class ClusterTarget:
    """The three-node RabbitMQ cluster of issue 19 (``simulators/broker_cluster.py``, chosen over
    NATS by measurement): the schools speak MQTT 3.1.1 to the three nodes (spread over them,
    failing over to the next), their logins and topics checked by the server's HTTP auth backend
    from the devices table, and ingest consumes the replicated quorum queue over AMQP
    (``server/ingest/amqp.py``), acknowledging after the PostgreSQL commit."""

    workdir: Path
    port: int = 0
    tls: bool = False
    name: str = "cluster"
    mqtt_protocol: str = "3.1.1"
    cluster: RabbitCluster | None = field(default=None, init=False)
    auth: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def preflight(self) -> None:
        if not Path(RABBIT_SERVER).exists():
            raise TargetUnavailable(f"{RABBIT_SERVER} is missing: install Debian's rabbitmq-server")
        p = CLUSTER_PORTS
        taken = [x for x in (*p.native, *p.mqtt, *p.mqtt_tls, CLUSTER_AUTH_PORT) if _listens(x)]
        if taken:
            raise TargetUnavailable(f"ports {taken} are taken: another cluster runs here")
        # the nodes have names of their own (qaqpa-f1..3@localhost, not the tests' qaqpa-c1..3):
        # only a second fleet bench running meanwhile would collide (duplicate_node_name)
        names = subprocess.run(["epmd", "-names"], capture_output=True, text=True, check=False)
        running = set(re.findall(r"^name (\S+) at port", names.stdout, re.MULTILINE))
        ours = {f"{CLUSTER_NODE_PREFIX}{i}" for i in (1, 2, 3)}
        if running & ours:
            raise TargetUnavailable(
                f"RabbitMQ nodes {sorted(running & ours)} already run here (another fleet bench?)"
            )

    def auth_settings(self) -> dict[str, Any]:
        return {}

    def start(self, settings: ServerSettings) -> list[Node]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **server_env(settings)}
        self.auth = subprocess.Popen(
            [sys.executable, "-m", "simulators.fleet_auth", str(CLUSTER_AUTH_PORT)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        tls = None
        ca_file = None
        if self.tls:
            certs = make_broker_certs(self.workdir)
            tls = ClusterTls(certs.ca_file, certs.cert_file, certs.key_file)
            ca_file = certs.ca_file
        self.cluster = RabbitCluster(
            self.workdir / "rabbit",
            CLUSTER_PORTS,
            tls=tls,
            node_prefix=CLUSTER_NODE_PREFIX,
            http_auth_url=f"http://127.0.0.1:{CLUSTER_AUTH_PORT}/broker-auth/rabbitmq",
        )
        try:
            self.cluster.start()
        except ClusterError as err:
            raise TargetUnavailable(f"the RabbitMQ cluster did not start: {err}") from err
        return [Node("127.0.0.1", self.cluster.mqtt_port(i), ca_file) for i in range(3)]

    def ingest_settings(self, settings: ServerSettings) -> ServerSettings:
        assert self.cluster is not None
        c = self.cluster
        return settings.model_copy(
            update={
                "ingest_source": "amqp",
                "amqp_urls": c.amqp_urls(),
                "mqtt_port": c.mqtt_port(0),
                "mqtt_protocol": "3.1.1",
                "mqtt_username": c.admin_user,
                "mqtt_password": c.admin_password,
                "mqtt_ca_file": c.tls.ca_file if c.tls else None,
            }
        )

    def pids(self) -> list[int]:
        """The nodes and the auth backend they ask (part of the broker's path here)."""
        if self.cluster is None:
            return []
        out = [self.auth.pid] if self.auth is not None and self.auth.poll() is None else []
        for i in range(3):
            pid = self.cluster.pid(i)
            if pid is not None:  # the Erlang VM runs under the node's start script
                out += [pid, *_children(pid)]
        return out

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
            shutil.rmtree(self.workdir / "rabbit", ignore_errors=True)
            self.cluster = None
        if self.auth is not None:
            self.auth.terminate()
            self.auth.wait(10)
            self.auth = None


def _children(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def server_env(settings: ServerSettings) -> dict[str, str]:
    """The server settings a bench's server process (ingest, broker auth) needs, as environment."""
    env = {
        "QAQPA_SERVER_DATABASE_URL": settings.database_url,
        "QAQPA_SERVER_MQTT_HOST": settings.mqtt_host,
        "QAQPA_SERVER_MQTT_PORT": str(settings.mqtt_port),
        "QAQPA_SERVER_MQTT_PROTOCOL": settings.mqtt_protocol,
        "QAQPA_SERVER_MQTT_USERNAME": settings.mqtt_username or "",
        "QAQPA_SERVER_MQTT_PASSWORD": settings.mqtt_password or "",
        "QAQPA_SERVER_TOPIC_PREFIX": settings.topic_prefix,
        "QAQPA_SERVER_CENTRE_KEY_FILE": str(settings.centre_key_file),
        "QAQPA_SERVER_INGEST_SOURCE": settings.ingest_source,
        "QAQPA_SERVER_AMQP_URLS": json.dumps(settings.amqp_urls),
    }
    if settings.mqtt_ca_file is not None:
        env["QAQPA_SERVER_MQTT_CA_FILE"] = str(settings.mqtt_ca_file)
    return env


def mosquitto(workdir: Path, port: int, tls: bool) -> BrokerTarget:
    return MosquittoTarget(workdir, port, tls)


def cluster(workdir: Path, port: int, tls: bool) -> BrokerTarget:
    return ClusterTarget(workdir, port, tls)


TARGETS: dict[str, Callable[[Path, int, bool], BrokerTarget]] = {
    "mosquitto": mosquitto,
    "cluster": cluster,
}
