"""The broker nodes an edge knows: parsing their URLs, which one to try next, and when to go back.

One broker (Mosquitto) or the nodes of a cluster (RabbitMQ): ``mqtt_brokers`` in the edge's
config or enrolment. Pure: no I/O.
"""

from __future__ import annotations

import hashlib

from protocol.link import parse_broker_url

__all__ = ["BrokerRotation", "failback_delay", "parse_broker_url", "preferred_index"]


def preferred_index(identity: str, n: int) -> int:
    """This device's own node among ``n``: a stable hash of its identity (the same on every
    start and every machine, unlike Python's ``hash``), so a fleet spreads evenly over the
    nodes and each edge returns to the same one."""
    digest = hashlib.sha256(identity.encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def failback_delay(interval: float, rand: float) -> float:
    """How long to stay on another node before probing the preferred one again: ``interval``
    on average, 0.75..1.25 of it so the edges of a node that returns do not all move at once."""
    return interval * (0.75 + 0.5 * rand)


class BrokerRotation:
    """Which cluster node to try next: first the device's preferred node, then the next one in
    the list after every failed or dropped connection, and back to the preferred one
    (``return_to_preferred``) once it answers again."""

    def __init__(self, nodes: list[tuple[str, int]], identity: str) -> None:
        self.nodes = nodes
        self.preferred = preferred_index(identity, len(nodes))
        self.index = self.preferred

    @property
    def current(self) -> tuple[str, int]:
        return self.nodes[self.index]

    @property
    def preferred_node(self) -> tuple[str, int]:
        return self.nodes[self.preferred]

    @property
    def on_preferred(self) -> bool:
        return self.index == self.preferred

    def advance(self) -> tuple[str, int]:
        self.index = (self.index + 1) % len(self.nodes)
        return self.current

    def return_to_preferred(self) -> tuple[str, int]:
        self.index = self.preferred
        return self.current
