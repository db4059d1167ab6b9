"""The decisions of the broker's HTTP auth backend, without HTTP or a database.

RabbitMQ asks four questions (``rabbitmq_auth_backend_http``): may this user log in, use this
virtual host, use this exchange or queue, read or write this topic (routing key). A device may
write its own events, status and sync ack and read its own ack and downlink, nothing else; the
server's own processes use RabbitMQ's internal users and never reach this backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import topics

ALLOW = "allow"
DENY = "deny"
VHOST = "/"
EXCHANGE = "amq.topic"
# The queues rabbitmq_mqtt declares for a client's subscriptions (3.10: per client id).
MQTT_QUEUE_PREFIX = "mqtt-subscription-"
_SWAP = str.maketrans({"/": ".", ".": "/"})


@dataclass(frozen=True, slots=True)
class DeviceLogin:
    school: str
    device: str


def routing_key(topic: str) -> str:
    """The routing key rabbitmq_mqtt makes of an MQTT topic (``/`` and ``.`` swapped)."""
    return topic.translate(_SWAP)


def device_topics(login: DeviceLogin, prefix: str) -> tuple[frozenset[str], frozenset[str]]:
    """(routing keys the device may write, routing keys it may read)."""
    s, d = login.school, login.device
    write = {
        topics.events(s, d, prefix),
        topics.status(s, d, prefix),
        topics.sync_ack(s, d, prefix),
    }
    read = {topics.ack(s, d, prefix), topics.sync(s, d, prefix)}
    return frozenset(map(routing_key, write)), frozenset(map(routing_key, read))


def vhost_decision(login: DeviceLogin | None, vhost: str) -> str:
    return ALLOW if login is not None and vhost == VHOST else DENY


def resource_decision(
    login: DeviceLogin | None, vhost: str, resource: str, name: str, permission: str
) -> str:
    """The exchange the MQTT plugin publishes to, and the device's own subscription queues."""
    if login is None or vhost != VHOST:
        return DENY
    if resource == "exchange" and name == EXCHANGE and permission in ("read", "write"):
        return ALLOW
    if resource == "queue" and name.startswith(MQTT_QUEUE_PREFIX):
        # Which messages reach the queue is decided by the topic check on subscribe.
        return ALLOW
    return DENY


def topic_decision(
    login: DeviceLogin | None, prefix: str, vhost: str, name: str, permission: str, key: str
) -> str:
    """Publishing (write) or subscribing (read) one routing key: exact names only, no wildcards."""
    if login is None or vhost != VHOST or name != EXCHANGE:
        return DENY
    write, read = device_topics(login, prefix)
    if permission == "write":
        return ALLOW if key in write else DENY
    if permission == "read":
        return ALLOW if key in read else DENY
    return DENY
