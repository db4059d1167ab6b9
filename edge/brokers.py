"""The broker nodes an edge knows: parsing their URLs, and which one to try next.

One broker (Mosquitto) or the nodes of a cluster (RabbitMQ): ``mqtt_brokers`` in the edge's
config or enrolment. Pure: no I/O.
"""

from __future__ import annotations


def parse_broker_url(url: str, *, tls: bool) -> tuple[str, int]:
    """``mqtts://host:port``, ``mqtt://host:port`` or ``host[:port]`` -> (host, port).

    The scheme must agree with the link (TLS when a CA is set): a plain URL on a TLS link, or
    the reverse, is refused rather than silently changed. The port defaults to 8883 / 1883.
    """
    text = url.strip()
    scheme = None
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"{url!r}: the scheme must be mqtt:// or mqtts://")
        if (scheme == "mqtts") != tls:
            want = "mqtts:// (mqtt_ca_file is set)" if tls else "mqtt:// (no mqtt_ca_file)"
            raise ValueError(f"{url!r}: this link needs {want}")
    text = text.rstrip("/")
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{url!r}: no host")
    try:
        port = int(port_text) if port_text else (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{url!r}: port {port} out of range")
    return host, port


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
