"""Small helpers around paho-mqtt shared by the server's MQTT components."""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from server.settings import ServerSettings


class BrokerUnavailable(ConnectionError):
    """The broker did not accept the connection within the time allowed."""


def make_client(settings: ServerSettings, role: str) -> mqtt.Client:
    """An MQTT 5 client with paho's automatic reconnect and a unique id, over TLS when the
    settings name a CA."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"qaqpa-server-{role}-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5 if settings.mqtt_protocol == "5" else mqtt.MQTTv311,
    )
    if settings.mqtt_username is not None:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
    tls = settings.mqtt_tls_context()  # None: plain, which the settings allow on loopback only
    if tls is not None:
        client.tls_set_context(tls)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    nodes = settings.mqtt_nodes()
    if len(nodes) > 1:
        _rotate_on_reconnect(client, nodes)
    return client


def _rotate_on_reconnect(client: mqtt.Client, nodes: list[tuple[str, int]]) -> None:
    """A broker cluster: the first connection goes to a random node (``first_node``), every
    reconnection of paho's loop to the next one, so a dead node is left at once."""
    state = {"index": -1, "n": 0}
    base = client_id_of(client)

    def pre_connect(c: mqtt.Client, _userdata: Any) -> None:
        if state["index"] < 0:  # the first connection: where connect_async pointed it
            state["index"] = nodes.index((c.host, c.port)) if (c.host, c.port) in nodes else 0
            return
        state["index"] = (state["index"] + 1) % len(nodes)
        state["n"] += 1
        # paho's setters refuse while its old socket is being replaced; reconnect() reads
        # these right after this callback. A new client id too: RabbitMQ keeps a client id's
        # subscription queue on the node that made it, and a reconnection under the same id
        # fails while that node is down (seen: the downlink service stuck for a minute).
        c._host, c._port = nodes[state["index"]]
        c._client_id = f"{base}-{state['n']}".encode()

    client.on_pre_connect = pre_connect


def client_id_of(client: mqtt.Client) -> str:
    raw = client._client_id
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def first_node(settings: ServerSettings) -> tuple[str, int]:
    nodes = settings.mqtt_nodes()
    return nodes[random.randrange(len(nodes))]


def connect_and_wait(
    client: mqtt.Client, settings: ServerSettings, connected: threading.Event, timeout: float = 10.0
) -> None:
    """Start the network thread and wait for the first CONNACK (``connected`` set by on_connect)."""
    props: Properties | None = None
    if settings.mqtt_receive_maximum is not None and settings.mqtt_protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.ReceiveMaximum = settings.mqtt_receive_maximum
    host, port = first_node(settings)
    client.connect_async(host, port, keepalive=30, properties=props)
    client.loop_start()
    if not connected.wait(timeout):
        client.loop_stop()
        raise BrokerUnavailable(f"no connection to {host}:{port} within {timeout} s")


def shared(settings: ServerSettings, group: str, topic_filter: str) -> str:
    """A shared subscription on MQTT 5; the plain filter on 3.1.1 (one consumer only)."""
    return f"$share/{group}/{topic_filter}" if settings.mqtt_protocol == "5" else topic_filter


def reason_failed(reason_code: Any) -> bool:
    return bool(getattr(reason_code, "is_failure", False))
