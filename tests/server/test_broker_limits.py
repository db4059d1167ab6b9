"""deploy/mosquitto/mosquitto.conf bounds message sizes: a real Mosquitto with that file's limits
forwards the largest message the protocol accepts and drops a larger one."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol.codec import MAX_MESSAGE_BYTES
from tests.support.services import PrivateBroker

CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


def limits() -> dict[str, int]:
    return {
        k: int(v)
        for k, v in re.findall(
            r"^(message_size_limit|max_packet_size)\s+(\d+)", CONF.read_text(), re.MULTILINE
        )
    }


def test_the_limit_is_set_above_what_the_protocol_accepts() -> None:
    found = limits()
    assert set(found) == {"max_packet_size"}
    assert MAX_MESSAGE_BYTES < found["max_packet_size"] <= 2 * MAX_MESSAGE_BYTES


def _client(port: int, protocol: int) -> tuple[mqtt.Client, threading.Event]:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)  # type: ignore[arg-type]
    connected, gone = threading.Event(), threading.Event()
    c.on_connect = lambda *_a: connected.set()
    c.on_disconnect = lambda *_a: gone.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(30)
    return c, gone


def test_a_real_broker_with_the_deploy_limit(
    private_broker: Callable[[str], PrivateBroker],
) -> None:
    conf = "\n".join(f"{k} {v}" for k, v in limits().items())
    broker = private_broker(conf)
    limit = limits()["max_packet_size"]
    got: list[int] = []
    arrived = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(len(msg.payload))
        arrived.set()

    sub, _ = _client(broker.port, mqtt.MQTTv5)
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.subscribe("t/#", qos=1)
    assert subscribed.wait(30)
    clients = [sub]
    try:
        # An MQTT 3.1.1 sender (it is not told the limit) of a packet over the limit is
        # disconnected and nothing is forwarded.
        big, big_gone = _client(broker.port, mqtt.MQTTv311)
        clients.append(big)
        big.publish("t/big", b"x" * limit, qos=0)
        assert big_gone.wait(60)
        # The largest message the protocol accepts is forwarded, and it is the first thing
        # the subscriber receives: the large one was dropped, not delayed.
        ok, _ = _client(broker.port, mqtt.MQTTv5)
        clients.append(ok)
        ok.publish("t/ok", b"x" * MAX_MESSAGE_BYTES, qos=1).wait_for_publish(60)
        assert arrived.wait(60)
        assert got == [MAX_MESSAGE_BYTES]
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
