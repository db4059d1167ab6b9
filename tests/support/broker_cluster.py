"""The three-node RabbitMQ cluster of the cluster tests: TLS on the MQTT listeners (a throwaway
CA, as the TLS tests make), device logins and topics through the server's HTTP auth backend, the
quorum queue read by ``AmqpIngestWorker``. Started once per session (about 30 s here), stopped
at exit.

The auth backend's URL is fixed when the nodes start, but each test has its own database: the
session serves a small dispatcher on a fixed port that forwards to the current test's app
(``ClusterEnv.serve_auth``).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from edge.sync import SyncSettings
from server.db import make_engine, session_factory
from server.settings import ServerSettings
from simulators.broker_cluster import RABBIT_PORTS, ClusterTls, RabbitCluster, listens
from tests.support.centre import CENTRE_PUBLIC_B64
from tests.support.tls import ThrowawayCA
from tests.support.wait import wait_until

AUTH_PORT = 18710  # this helper's range: 18700-18799


class _Dispatch:
    """An ASGI app forwarding to whichever app is current (503 when none)."""

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        target = self.target
        if target is None:
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b"deny"})
            return
        await target(scope, receive, send)


@dataclass
class ClusterEnv:
    cluster: RabbitCluster
    ca: ThrowawayCA
    directory: Path
    _dispatch: _Dispatch = field(default_factory=_Dispatch)
    _server: uvicorn.Server | None = None
    _engines: list[Any] = field(default_factory=list)

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    def mqtt_urls(self) -> list[str]:
        return self.cluster.mqtt_urls()

    def server_settings(self, base: ServerSettings) -> ServerSettings:
        """``base`` pointed at the cluster: ingest from the quorum queue over AMQPS (the
        cluster's CA), the server's MQTT clients (downlink) on node 1 over TLS as the admin
        user."""
        return base.model_copy(
            update={
                "ingest_source": "amqp",
                "amqp_urls": self.cluster.amqp_urls(),
                "amqp_ca_file": self.ca_file,
                "mqtt_port": self.cluster.mqtt_port(0),
                "mqtt_protocol": "3.1.1",
                "mqtt_username": self.cluster.admin_user,
                "mqtt_password": self.cluster.admin_password,
                "mqtt_ca_file": self.ca_file,
                "broker_http_auth": True,
            }
        )

    @contextlib.contextmanager
    def serve_auth(self, settings: ServerSettings) -> Iterator[None]:
        """The broker asks this test's database who may log in and use which topic."""
        from server.rabbit_auth import http as rabbit_http

        engine = make_engine(settings.database_url)
        app = FastAPI()
        app.state.settings = settings
        app.state.sessions = session_factory(engine)
        app.include_router(rabbit_http.router)
        rabbit_http._cache.clear()
        self._dispatch.target = app
        try:
            yield
        finally:
            self._dispatch.target = None
            rabbit_http._cache.clear()
            engine.dispose()

    def start(self) -> None:
        server = uvicorn.Server(
            uvicorn.Config(self._dispatch, host="127.0.0.1", port=AUTH_PORT, log_level="warning")
        )
        threading.Thread(target=server.run, daemon=True).start()
        wait_until(lambda: listens(AUTH_PORT), 10, "the broker auth dispatcher listens")
        self._server = server
        self.cluster.start()

    def stop(self) -> None:
        self.cluster.stop()
        if self._server is not None:
            self._server.should_exit = True
            self._server = None
        shutil.rmtree(self.directory, ignore_errors=True)


def start_cluster() -> ClusterEnv:
    amqps = RABBIT_PORTS.amqp_tls or ()
    taken = [
        p for p in (*RABBIT_PORTS.mqtt_tls, *RABBIT_PORTS.native, *amqps, AUTH_PORT) if listens(p)
    ]
    if taken:
        raise RuntimeError(f"ports {taken} are taken: another cluster test or bench runs here")
    directory = Path(tempfile.mkdtemp(prefix="qaqpa-cluster-"))
    ca = ThrowawayCA(directory, "cluster")
    leaf = ca.issue("broker", server=True)
    cluster = RabbitCluster(
        directory / "rabbit",
        RABBIT_PORTS,
        tls=ClusterTls(ca.ca_file, leaf.cert_file, leaf.key_file),
        http_auth_url=f"http://127.0.0.1:{AUTH_PORT}/broker-auth/rabbitmq",
    )
    env = ClusterEnv(cluster, ca, directory)
    atexit.register(env.stop)  # also when the session ends abnormally
    try:
        env.start()
    except BaseException:
        env.stop()
        raise
    return env


def cluster_sync_settings(
    env: ClusterEnv, prefix: str, user: str, password: str, **kw: Any
) -> SyncSettings:
    """An edge of the cluster: every node's URL, TLS with the cluster's CA, MQTT 3.1.1, the
    centre's key pinned (the downlink and acks must be signed)."""
    values: dict[str, Any] = {
        "mqtt_brokers": env.mqtt_urls(),
        "mqtt_protocol": "3.1.1",
        "mqtt_ca_file": env.ca_file,
        "mqtt_username": user,
        "mqtt_password": password,
        "topic_prefix": prefix,
        "ack_timeout_s": 3.0,
        "gap_grace_s": 0.5,
        "backoff_min_s": 0.2,
        "backoff_max_s": 2.0,
        "centre_key": CENTRE_PUBLIC_B64,
    }
    values.update(kw)
    return SyncSettings.model_validate(values)
