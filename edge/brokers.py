"""The broker nodes an edge knows: parsing their URLs, and which one to try next.

One broker (Mosquitto) or the nodes of a cluster (RabbitMQ): ``mqtt_brokers`` in the edge's
config or enrolment. Pure: no I/O.
"""

from __future__ import annotations

from protocol.link import parse_broker_url

__all__ = ["BrokerRotation", "parse_broker_url"]


class BrokerRotation:
    """Which cluster node to try next: a random first node (so a fleet spreads over the nodes),
    then the next one in the list after every failed or dropped connection."""

    def __init__(self, nodes: list[tuple[str, int]], rand: float) -> None:
        self.nodes = nodes
        self.index = int(rand * len(nodes)) % len(nodes)

    @property
    def current(self) -> tuple[str, int]:
        return self.nodes[self.index]

    def advance(self) -> tuple[str, int]:
        self.index = (self.index + 1) % len(self.nodes)
        return self.current
