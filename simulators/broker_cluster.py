"""Three-node broker clusters on one machine, for the cluster tests and ``qaqpa bench brokers``.

``RabbitCluster``: three RabbitMQ nodes (Debian's ``rabbitmq-server``, the ``rabbitmq_mqtt``
plugin, quorum queues) formed by classic peer discovery. ``NatsCluster``: three ``nats-server``
nodes with JetStream and MQTT, joined by routes. Each node has its own ports and data directory
under ``directory``, so they never touch the machine's own RabbitMQ (5672) and NATS (4222).

A node can be SIGKILLed (``kill``) and started again on the same data (``restart``); ``stop``
ends every node this object started. Nothing here is used by the server or the edge.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import psutil

RABBIT_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
NATS_SERVER = "/usr/sbin/nats-server"


class ClusterError(RuntimeError):
    """A node did not start or the nodes did not form a cluster in time."""


@dataclass(frozen=True)
class ClusterTls:
    """The broker side of TLS: CA, certificate and key (PEM files), as the TLS tests make them."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Ports:
    """Ports of the three nodes (index 0..2)."""

    native: tuple[int, int, int]  # AMQP (RabbitMQ) or NATS client port
    mqtt: tuple[int, int, int]
    mqtt_tls: tuple[int, int, int]
    internal: tuple[int, int, int]  # Erlang distribution (RabbitMQ) or cluster routes (NATS)
    # RabbitMQ with ``tls``: AMQP over TLS only, on these ports (None: AMQP stays plain)
    amqp_tls: tuple[int, int, int] | None = None


RABBIT_PORTS = Ports(
    native=(5681, 5682, 5683),
    mqtt=(1891, 1892, 1893),
    mqtt_tls=(8891, 8892, 8893),
    internal=(25681, 25682, 25683),
    amqp_tls=(5691, 5692, 5693),
)
NATS_PORTS = Ports(
    native=(4231, 4232, 4233),
    mqtt=(1894, 1895, 1896),
    mqtt_tls=(8894, 8895, 8896),
    internal=(6231, 6232, 6233),
)


def listens(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def _wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.1)
    raise ClusterError(f"not in {timeout:.0f} s: {what}")


@dataclass
class _Cluster:
    directory: Path
    ports: Ports
    tls: ClusterTls | None = None
    procs: list[subprocess.Popen[bytes] | None] = field(default_factory=lambda: [None] * 3)
    engine: str = ""

    # -- what both engines offer ------------------------------------------------------
    def mqtt_port(self, i: int) -> int:
        return self.ports.mqtt_tls[i] if self.tls is not None else self.ports.mqtt[i]

    def mqtt_urls(self) -> list[str]:
        scheme = "mqtts" if self.tls is not None else "mqtt"
        return [f"{scheme}://127.0.0.1:{self.mqtt_port(i)}" for i in range(3)]

    def alive(self, i: int) -> bool:
        p = self.procs[i]
        return p is not None and p.poll() is None

    def pid(self, i: int) -> int | None:
        p = self.procs[i]
        return p.pid if p is not None and p.poll() is None else None

    def rss_bytes(self, i: int) -> int:
        """Resident memory of node ``i`` and its children (the Erlang VM under its script)."""
        pid = self.pid(i)
        if pid is None:
            return 0
        try:
            proc = psutil.Process(pid)
            return int(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
        except psutil.Error:
            return 0

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` and everything it started (no clean shutdown)."""
        p = self.procs[i]
        if p is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(p.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.send_signal(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGKILL)
        p.wait(10)
        self.procs[i] = None

    def stop(self) -> None:
        for i in range(3):
            p = self.procs[i]
            if p is None or p.poll() is not None:
                self.procs[i] = None
                continue
            with contextlib.suppress(psutil.Error):
                kids = psutil.Process(p.pid).children(recursive=True)
            p.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(15)
            self.kill(i)
            for child in kids:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            self.procs[i] = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _log(self, i: int) -> Path:
        return self.directory / f"node{i + 1}" / "stdout.log"

    def _popen(self, i: int, argv: list[str], env: dict[str, str] | None = None) -> None:
        node_dir = self.directory / f"node{i + 1}"
        node_dir.mkdir(parents=True, exist_ok=True)
        out = open(self._log(i), "ab")  # noqa: SIM115 - the child keeps it
        self.procs[i] = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()

    def tail(self, i: int, n: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return self._log(i).read_text(errors="replace")[-n:]
        return ""


# --------------------------------------------------------------------------------------------
# RabbitMQ


@dataclass
class RabbitCluster(_Cluster):
    """Three RabbitMQ nodes ``qaqpa-c1..3@localhost`` with the MQTT plugin.

    ``node_prefix``: the nodes' names without their number (another prefix, other ports and
    another ``directory`` let a second cluster run beside the tests': the fleet bench's).
    ``http_auth_url``: the server's broker-auth endpoint (``rabbitmq_auth_backend_http``);
    without it the internal user database holds ``admin_user`` only.
    """

    admin_user: str = "qaqpa-admin"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    http_auth_url: str | None = None
    engine: str = "rabbitmq"
    node_prefix: str = "qaqpa-c"

    def node(self, i: int) -> str:
        return f"{self.node_prefix}{i + 1}@localhost"

    @property
    def amqps(self) -> bool:
        """AMQP over TLS only (with ``tls`` and ``ports.amqp_tls``), on the MQTT listeners' cert."""
        return self.tls is not None and self.ports.amqp_tls is not None

    def amqp_port(self, i: int) -> int:
        return (
            self.ports.amqp_tls[i] if self.ports.amqp_tls and self.amqps else self.ports.native[i]
        )

    def amqp_url(self, i: int) -> str:
        scheme = "amqps" if self.amqps else "amqp"
        return (
            f"{scheme}://{self.admin_user}:{self.admin_password}@127.0.0.1:{self.amqp_port(i)}/%2F"
        )

    def amqp_urls(self) -> list[str]:
        return [self.amqp_url(i) for i in range(3)]

    def _home(self) -> Path:
        return self.directory / "home"

    def _env(self, i: int) -> dict[str, str]:
        node_dir = self.directory / f"node{i + 1}"
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._home()),
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node(i),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.ports.native[i]),
            "RABBITMQ_DIST_PORT": str(self.ports.internal[i]),
            "RABBITMQ_MNESIA_BASE": str(node_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node_dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(node_dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node_dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node_dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(node_dir / "rabbit.pid"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_SERVER_START_ARGS": "+sbwt none +sbwtdcpu none +sbwtdio none",
        }

    def _conf(self, i: int) -> str:
        lines = [
            "loopback_users = none",
            f"default_user = {self.admin_user}",
            f"default_pass = {self.admin_password}",
            *(
                ["listeners.tcp = none", f"listeners.ssl.default = 127.0.0.1:{self.amqp_port(i)}"]
                if self.amqps
                else [f"listeners.tcp.default = 127.0.0.1:{self.ports.native[i]}"]
            ),
            "cluster_formation.peer_discovery_backend = classic_config",
            *(f"cluster_formation.classic_config.nodes.{k + 1} = {self.node(k)}" for k in range(3)),
            "cluster_partition_handling = pause_minority",
            "mqtt.allow_anonymous = false",
            "mqtt.vhost = /",
            "mqtt.exchange = amq.topic",
            "mqtt.prefetch = 100",
            "log.console = true",
            "log.console.level = warning",
            "log.file = false",
        ]
        if self.tls is None:
            lines.append(f"mqtt.listeners.tcp.default = 127.0.0.1:{self.ports.mqtt[i]}")
        else:
            lines += [
                "mqtt.listeners.tcp = none",
                f"mqtt.listeners.ssl.default = 127.0.0.1:{self.ports.mqtt_tls[i]}",
                f"ssl_options.cacertfile = {self.tls.ca_file}",
                f"ssl_options.certfile = {self.tls.cert_file}",
                f"ssl_options.keyfile = {self.tls.key_file}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
                "ssl_options.versions.1 = tlsv1.3",
                "ssl_options.versions.2 = tlsv1.2",
            ]
        if self.http_auth_url is not None:
            base = self.http_auth_url.rstrip("/")
            lines += [
                # the admin (ingest, server) from the internal database; devices over HTTP
                "auth_backends.1 = internal",
                "auth_backends.2 = http",
                "auth_http.http_method = post",
                f"auth_http.user_path = {base}/user",
                f"auth_http.vhost_path = {base}/vhost",
                f"auth_http.resource_path = {base}/resource",
                f"auth_http.topic_path = {base}/topic",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 120.0) -> None:
        home = self._home()
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        plugins = "rabbitmq_mqtt" + (",rabbitmq_auth_backend_http" if self.http_auth_url else "")
        for i in range(3):
            node_dir = self.directory / f"node{i + 1}"
            node_dir.mkdir(parents=True, exist_ok=True)
            (node_dir / "rabbitmq.conf").write_text(self._conf(i))
            (node_dir / "advanced.config").write_text("[].\n")
            (node_dir / "enabled_plugins").write_text(f"[{plugins}].\n")
        # The first node forms the cluster; the others join it once it runs.
        self.start_node(0, timeout)
        for i in (1, 2):
            self._launch(i)
        for i in (1, 2):
            self._await(i, timeout)
        self.await_cluster(timeout)

    def _launch(self, i: int) -> None:
        self._popen(i, [RABBIT_SERVER], env=self._env(i))

    def _await(self, i: int, timeout: float) -> None:
        port = self.mqtt_port(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive(i):
                raise ClusterError(f"{self.node(i)} exited:\n{self.tail(i)}")
            if listens(port) and listens(self.amqp_port(i)):
                return
            time.sleep(0.3)
        raise ClusterError(f"{self.node(i)} not up in {timeout:.0f} s:\n{self.tail(i)}")

    def start_node(self, i: int, timeout: float = 120.0) -> None:
        self._launch(i)
        self._await(i, timeout)

    def restart(self, i: int, timeout: float = 120.0) -> None:
        self.start_node(i, timeout)

    def ctl(self, *args: str, node: int = 0, timeout: float = 60.0) -> str:
        out = subprocess.run(
            [RABBITMQCTL, "-n", self.node(node), "-q", *args],
            env=self._env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if out.returncode != 0:
            raise ClusterError(f"rabbitmqctl {' '.join(args)}: {out.stderr.strip()[-500:]}")
        return out.stdout

    def await_cluster(self, timeout: float = 60.0) -> None:
        def three() -> bool:
            try:
                status = self.ctl("cluster_status", "--formatter", "json", timeout=30)
            except (ClusterError, subprocess.TimeoutExpired):
                return False
            import json

            return len(json.loads(status).get("running_nodes", [])) == 3

        _wait(three, timeout, "three running RabbitMQ nodes")

    def stop(self) -> None:
        super().stop()


# --------------------------------------------------------------------------------------------
# NATS


@dataclass
class NatsCluster(_Cluster):
    """Three nats-server nodes ``qaqpa-n1..3`` with JetStream (R3) and MQTT.

    ``users_conf``: an ``authorization { ... }`` block; by default one admin user may do all.
    """

    admin_user: str = "qaqpa-admin"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    users_conf: str | None = None
    engine: str = "nats"

    def nats_url(self, i: int) -> str:
        return f"nats://{self.admin_user}:{self.admin_password}@127.0.0.1:{self.ports.native[i]}"

    def nats_urls(self) -> list[str]:
        return [self.nats_url(i) for i in range(3)]

    def _conf(self, i: int) -> str:
        node_dir = self.directory / f"node{i + 1}"
        routes = ", ".join(
            f"nats-route://127.0.0.1:{self.ports.internal[k]}" for k in range(3) if k != i
        )
        auth = self.users_conf or (
            "authorization { users: [ "
            f'{{ user: "{self.admin_user}", password: "{self.admin_password}" }} ] }}'
        )
        if self.tls is None:
            mqtt = f"mqtt {{ listen: 127.0.0.1:{self.ports.mqtt[i]}, stream_replicas: 3 }}"
        else:
            mqtt = (
                f"mqtt {{ listen: 127.0.0.1:{self.ports.mqtt_tls[i]}, stream_replicas: 3, "
                f'tls {{ cert_file: "{self.tls.cert_file}", key_file: "{self.tls.key_file}", '
                f'ca_file: "{self.tls.ca_file}" }} }}'
            )
        return "\n".join(
            [
                f"server_name: qaqpa-n{i + 1}",
                f"listen: 127.0.0.1:{self.ports.native[i]}",
                f'jetstream {{ store_dir: "{node_dir / "js"}", max_mem: 256M, max_file: 4G }}',
                f"cluster {{ name: qaqpa, listen: 127.0.0.1:{self.ports.internal[i]}, "
                f"routes: [ {routes} ] }}",
                mqtt,
                auth,
                "",
            ]
        )

    def start(self, timeout: float = 60.0) -> None:
        for i in range(3):
            node_dir = self.directory / f"node{i + 1}"
            node_dir.mkdir(parents=True, exist_ok=True)
            (node_dir / "nats.conf").write_text(self._conf(i))
        for i in range(3):
            self._launch(i)
        for i in range(3):
            self._await(i, timeout)

    def _launch(self, i: int) -> None:
        conf = self.directory / f"node{i + 1}" / "nats.conf"
        self._popen(i, [NATS_SERVER, "-c", str(conf)])

    def _await(self, i: int, timeout: float) -> None:
        # The MQTT listener opens once JetStream is ready (meta leader elected).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive(i):
                raise ClusterError(f"qaqpa-n{i + 1} exited:\n{self.tail(i)}")
            if listens(self.mqtt_port(i)):
                return
            time.sleep(0.2)
        raise ClusterError(f"qaqpa-n{i + 1} not up in {timeout:.0f} s:\n{self.tail(i)}")

    def restart(self, i: int, timeout: float = 60.0) -> None:
        self._launch(i)
        self._await(i, timeout)


def wipe(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
