"""RabbitMQ's HTTP auth decisions for devices: own topics only, exact names, no wildcards."""

from __future__ import annotations

from protocol import topics
from server.rabbit_auth.rules import (
    DeviceLogin,
    resource_decision,
    routing_key,
    topic_decision,
    vhost_decision,
)

P = "qaqpa/v1"
A = DeviceLogin("S1", "a")


def rk(topic: str) -> str:
    return routing_key(topic)


def test_a_device_writes_and_reads_only_its_own_topics() -> None:
    for t in (topics.events("S1", "a", P), topics.status("S1", "a", P)):
        assert topic_decision(A, P, "/", "amq.topic", "write", rk(t)) == "allow"
    assert topic_decision(A, P, "/", "amq.topic", "read", rk(topics.ack("S1", "a", P))) == "allow"
    assert topic_decision(A, P, "/", "amq.topic", "read", rk(topics.sync("S1", "a", P))) == "allow"
    for school, device in (("S2", "b"), ("S1", "b"), ("S2", "a")):
        for t in (topics.events(school, device, P), topics.status(school, device, P)):
            assert topic_decision(A, P, "/", "amq.topic", "write", rk(t)) == "deny"
        for t in (topics.ack(school, device, P), topics.sync(school, device, P)):
            assert topic_decision(A, P, "/", "amq.topic", "read", rk(t)) == "deny"
    # its own downlink is not writable, its own events not readable; wildcards never match
    assert topic_decision(A, P, "/", "amq.topic", "write", rk(topics.sync("S1", "a", P))) == "deny"
    assert topic_decision(A, P, "/", "amq.topic", "read", rk(topics.events("S1", "a", P))) == "deny"
    assert topic_decision(A, P, "/", "amq.topic", "read", "qaqpa.v1.#") == "deny"
    assert (
        topic_decision(A, P, "/", "amq.topic", "read", "qaqpa.v1.school.S1.device.*.ack") == "deny"
    )
    # another exchange, another vhost, an unknown user
    own = rk(topics.events("S1", "a", P))
    assert topic_decision(A, P, "/", "amq.direct", "write", own) == "deny"
    assert topic_decision(A, P, "other", "amq.topic", "write", own) == "deny"
    assert topic_decision(None, P, "/", "amq.topic", "write", own) == "deny"


def test_dots_in_ids_follow_the_mqtt_plugins_swap() -> None:
    login = DeviceLogin("S.1", "gate.2")
    key = rk(topics.events("S.1", "gate.2", P))
    assert key == "qaqpa.v1.school.S/1.device.gate/2.events"
    assert topic_decision(login, P, "/", "amq.topic", "write", key) == "allow"


def test_resources_exchange_and_subscription_queues_only() -> None:
    assert vhost_decision(A, "/") == "allow"
    assert vhost_decision(A, "prod") == "deny" and vhost_decision(None, "/") == "deny"
    assert resource_decision(A, "/", "exchange", "amq.topic", "write") == "allow"
    assert resource_decision(A, "/", "exchange", "amq.topic", "configure") == "deny"
    assert resource_decision(A, "/", "queue", "mqtt-subscription-edge1qos1", "configure") == "allow"
    assert resource_decision(A, "/", "queue", "qaqpa.ingest", "read") == "deny"
    assert resource_decision(None, "/", "exchange", "amq.topic", "write") == "deny"
