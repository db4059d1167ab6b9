"""The demo's server: :class:`server.embedded.EmbeddedServer` (broker, ingest, downlink,
console) with the parents' notifications delivered to local SMS and e-mail sinks from
``simulators``, so that a console user sees them arrive."""

from __future__ import annotations

from pathlib import Path

from server.embedded import EmbeddedServer
from simulators.notify_sinks import demo_notifications


def demo_server(
    directory: Path,
    *,
    broker_port: int | None = None,
    database_url: str | None = None,
    console_port: int | None = None,
) -> EmbeddedServer:
    """The one-machine server: SQLite and an embedded amqtt broker unless told otherwise;
    ``broker_port`` is a running MQTT 5 broker (e.g. Mosquitto) on 127.0.0.1."""
    return EmbeddedServer(
        directory,
        mqtt_port=broker_port,
        database_url=database_url,
        external_broker=broker_port is not None,
        console_port=console_port,
        console_services=[demo_notifications],
    )
