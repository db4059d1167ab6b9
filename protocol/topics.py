"""MQTT topic names. Every topic starts with ``qaqpa/v1/``; schools and devices are path levels."""

from __future__ import annotations

import re

from protocol.errors import ProtocolError

PREFIX = "qaqpa/v1"
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _check(kind: str, value: str) -> str:
    if not _ID.fullmatch(value):
        raise ProtocolError(
            f"{kind} id {value!r} must be 1-64 of A-Z a-z 0-9 _ . -", context="topic"
        )
    return value


def device_base(school: str, device: str, prefix: str = PREFIX) -> str:
    return f"{prefix}/school/{_check('school', school)}/device/{_check('device', device)}"


def events(school: str, device: str, prefix: str = PREFIX) -> str:
    """Uplink: batches of events, QoS 1."""
    return f"{device_base(school, device, prefix)}/events"


def ack(school: str, device: str, prefix: str = PREFIX) -> str:
    """Server -> edge: the highest contiguous seq committed, and the gaps it lacks."""
    return f"{device_base(school, device, prefix)}/ack"


def sync(school: str, device: str, prefix: str = PREFIX) -> str:
    """Server -> edge: versioned deltas and snapshots."""
    return f"{device_base(school, device, prefix)}/sync"


def sync_ack(school: str, device: str, prefix: str = PREFIX) -> str:
    """Edge -> server: the downlink version the edge has applied."""
    return f"{device_base(school, device, prefix)}/sync/ack"


def status(school: str, device: str, prefix: str = PREFIX) -> str:
    """Edge -> server, retained, with a last will saying offline."""
    return f"{device_base(school, device, prefix)}/status"


def shared_events_subscription(group: str = "ingest", prefix: str = PREFIX) -> str:
    """MQTT 5 shared subscription for stateless ingest workers."""
    return f"$share/{group}/{prefix}/school/+/device/+/events"


def parse_device_topic(topic: str, prefix: str = PREFIX) -> tuple[str, str, str]:
    """Split ``{prefix}/school/S/device/D/<rest>`` into (school, device, rest)."""
    head = f"{prefix}/school/"
    if not topic.startswith(head):
        raise ProtocolError(f"topic {topic!r} is not under {head}", context="topic")
    parts = topic[len(head) :].split("/")
    if len(parts) < 4 or parts[1] != "device":
        raise ProtocolError(f"topic {topic!r} lacks school/device levels", context="topic")
    school, device = _check("school", parts[0]), _check("device", parts[2])
    return school, device, "/".join(parts[3:])
