"""``POST /broker-auth/rabbitmq/{user,vhost,resource,topic}``: the endpoints that RabbitMQ's
``rabbitmq_auth_backend_http`` calls (form fields in, ``allow`` / ``deny`` as plain text out).

Served only when ``broker_http_auth`` is on; put the server's API on a network the broker
nodes reach and the edges do not (the answers reveal nothing but allow and deny). A login is
checked against the Mosquitto-style hash the server keeps (never the password); a revoked
device has no hash and is denied.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import select

from server.broker_auth import mosquitto_verify
from server.models import Device
from server.rabbit_auth.rules import (
    ALLOW,
    DENY,
    DeviceLogin,
    resource_decision,
    topic_decision,
    vhost_decision,
)
from server.settings import ServerSettings

router = APIRouter(prefix="/broker-auth/rabbitmq", include_in_schema=False)

# Known logins for a few seconds: RabbitMQ asks about the vhost, exchange, queues and topics
# right after each login. A revoked device is refused at its next login.
_CACHE_S = 5.0
_cache: dict[str, tuple[float, DeviceLogin | None]] = {}


def _login(request: Request, username: str) -> DeviceLogin | None:
    hit = _cache.get(username)
    now = time.monotonic()
    if hit is not None and now - hit[0] < _CACHE_S:
        return hit[1]
    with request.app.state.sessions() as session:
        row = session.execute(
            select(Device.school_id, Device.device_id).where(
                Device.mqtt_username == username,
                Device.mqtt_password_hash.is_not(None),
                Device.revoked_at_ms.is_(None),
            )
        ).first()
    login = DeviceLogin(row.school_id, row.device_id) if row is not None else None
    if len(_cache) > 50_000:
        _cache.clear()
    _cache[username] = (now, login)
    return login


def _text(decision: str) -> PlainTextResponse:
    return PlainTextResponse(decision)


@router.post("/user")
def user(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()] = "",
) -> PlainTextResponse:
    with request.app.state.sessions() as session:
        row = session.execute(
            select(Device.mqtt_password_hash, Device.school_id, Device.device_id).where(
                Device.mqtt_username == username, Device.revoked_at_ms.is_(None)
            )
        ).first()
    if row is None or row.mqtt_password_hash is None or not password:
        return _text(DENY)
    if not mosquitto_verify(password, row.mqtt_password_hash):
        return _text(DENY)
    _cache[username] = (time.monotonic(), DeviceLogin(row.school_id, row.device_id))
    return _text(ALLOW)


@router.post("/vhost")
def vhost(
    request: Request, username: Annotated[str, Form()], vhost: Annotated[str, Form()]
) -> PlainTextResponse:
    return _text(vhost_decision(_login(request, username), vhost))


@router.post("/resource")
def resource(
    request: Request,
    username: Annotated[str, Form()],
    vhost: Annotated[str, Form()],
    resource: Annotated[str, Form()],
    name: Annotated[str, Form()],
    permission: Annotated[str, Form()],
) -> PlainTextResponse:
    return _text(resource_decision(_login(request, username), vhost, resource, name, permission))


@router.post("/topic")
def topic(
    request: Request,
    username: Annotated[str, Form()],
    vhost: Annotated[str, Form()],
    name: Annotated[str, Form()],
    permission: Annotated[str, Form()],
    routing_key: Annotated[str, Form()],
) -> PlainTextResponse:
    settings: ServerSettings = request.app.state.settings
    login = _login(request, username)
    return _text(topic_decision(login, settings.topic_prefix, vhost, name, permission, routing_key))
