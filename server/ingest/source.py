"""The switch between ingest sources: an MQTT subscription (Mosquitto) or a RabbitMQ quorum
queue (``ingest_source = "amqp"``, README "The broker cluster"). Both store through
``IngestStore`` and acknowledge an edge only after the commit."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from server.service import ThreadedService
from server.settings import ServerSettings


def make_ingest_worker(settings: ServerSettings, engine: Engine | None = None) -> ThreadedService:
    if settings.ingest_source == "amqp":
        from server.ingest.amqp import AmqpIngestWorker

        return AmqpIngestWorker(settings, engine)
    from server.ingest.worker import IngestWorker

    return IngestWorker(settings, engine)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    make_ingest_worker(ServerSettings()).run_forever()
