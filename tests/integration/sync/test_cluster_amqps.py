"""Ingest's AMQP link to the cluster is TLS only: the nodes listen for AMQPS alone (the MQTT
listeners' certificate), a worker with the cluster's CA consumes the quorum queue, and one that
pins another CA is refused at start with an error that says what to check."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from server.db import make_engine
from server.ingest.amqp import AmqpIngestWorker
from server.settings import ServerSettings
from simulators.broker_cluster import listens
from tests.support.broker_cluster import ClusterEnv
from tests.support.tls import ThrowawayCA

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def test_ingest_reaches_the_cluster_over_amqps_only_with_its_ca(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    rabbit_cluster: ClusterEnv,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = rabbit_cluster.cluster
    settings = rabbit_cluster.server_settings(make_settings(pg_url))
    assert all(u.startswith("amqps://") for u in settings.amqp_urls)
    for i in range(3):  # no plain AMQP listener beside the TLS one
        assert listens(cluster.amqp_port(i)) and not listens(cluster.ports.native[i])
    engine = make_engine(pg_url)
    try:
        with AmqpIngestWorker(settings, engine) as worker:
            assert worker.connected_node in [f"127.0.0.1:{cluster.amqp_port(i)}" for i in range(3)]

        stranger = ThrowawayCA(tmp_path, "stranger")  # a CA that signed nothing of the cluster's
        wrong = settings.model_copy(update={"amqp_ca_file": stranger.ca_file})
        worker = AmqpIngestWorker(wrong, engine)
        with (
            caplog.at_level(logging.ERROR, "server.ingest.amqp"),
            pytest.raises(ConnectionError) as err,
        ):
            worker.start(timeout=60)
        message = str(err.value)
        assert "TLS with RabbitMQ node 127.0.0.1:" in message
        assert "check amqp_ca_file" in message and "certificate verify failed" in message
        assert cluster.admin_password not in message + caplog.text
    finally:
        engine.dispose()
