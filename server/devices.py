"""Device identity: creation with a one-time enrolment token, and enrolment (key + MQTT login)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol.signing import load_public_key
from server.broker_auth import device_username, mosquitto_hash
from server.clock import now_ms
from server.models import Device, IngestProgress, School
from server.settings import ServerSettings

log = logging.getLogger(__name__)


# PostgreSQL NOTIFY channel: a device's key changed (revoked, enrolled again). The ingest workers
# LISTEN on it and drop the device from their key cache, so a revocation stops the very next
# batch without a query per batch. NOTIFY is delivered at commit, never for a rolled-back change.
KEY_CHANNEL = "qaqpa_device_keys"


def announce_key_change(session: Session, school: str, device: str) -> None:
    """Tell the ingest workers (at commit) that this device's key changed; no-op on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": KEY_CHANNEL, "payload": f"{school}/{device}"},
        )


class EnrolmentError(ValueError):
    """A token that is unknown, used, expired, or for another device; or a bad public key."""


class DeviceExists(ValueError):
    """The device (or its MQTT user name) is already registered."""


@dataclass(frozen=True, slots=True)
class Credentials:
    school: str
    device: str
    mqtt_username: str
    mqtt_password: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_school(session: Session, school: str, name: str = "") -> School:
    existing = session.get(School, school)
    if existing is not None:
        return existing
    created = School(id=school, name=name, created_at_ms=now_ms(), sync_version=0)
    session.add(created)
    session.flush()
    return created


def add_device(
    session: Session, settings: ServerSettings, school: str, device: str, *, now: int | None = None
) -> str:
    """Create the device; return its one-time enrolment token (only the hash is stored)."""
    at = now if now is not None else now_ms()
    ensure_school(session, school)
    token = secrets.token_urlsafe(24)
    row = Device(
        school_id=school,
        device_id=device,
        created_at_ms=at,
        enrol_token_hash=token_hash(token),
        enrol_token_expires_ms=at + settings.enrol_token_ttl_s * 1000,
        enrol_token_used=False,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as err:
        raise DeviceExists(f"device {device} of school {school} already exists") from err
    session.add(IngestProgress(device_pk=row.pk, committed_through=0, gaps=[], updated_at_ms=at))
    session.flush()
    log.info("device added school=%s device=%s", school, device)
    return token


def reissue_token(
    session: Session, settings: ServerSettings, school: str, device: str, *, now: int | None = None
) -> str:
    """A new one-time enrolment token for an existing device: an edge enrolled before signed
    downlink enrols again with it to pin the centre key, or a revoked device's replacement
    enrols with it. The device's key and MQTT login stay valid until the token is used."""
    at = now if now is not None else now_ms()
    row = session.execute(
        select(Device).where(Device.school_id == school, Device.device_id == device)
    ).scalar_one_or_none()
    if row is None:
        raise EnrolmentError(f"no device {device} at school {school}")
    token = secrets.token_urlsafe(24)
    row.enrol_token_hash = token_hash(token)
    row.enrol_token_expires_ms = at + settings.enrol_token_ttl_s * 1000
    row.enrol_token_used = False
    session.flush()
    log.info("enrolment token issued again school=%s device=%s", school, device)
    return token


def enrol(
    session: Session,
    settings: ServerSettings,
    token: str,
    device: str,
    public_key: bytes,
    *,
    pins_centre_key: bool = False,
    now: int | None = None,
) -> Credentials:
    """Consume the token, store the key and create the MQTT login (the caller commits, then
    calls ``server.broker_auth.write_broker_files`` so the broker learns the login)."""
    at = now if now is not None else now_ms()
    try:
        load_public_key(public_key)
    except ValueError as err:
        raise EnrolmentError(f"bad public key: {err}") from err
    row = session.execute(
        select(Device).where(Device.enrol_token_hash == token_hash(token)).with_for_update()
    ).scalar_one_or_none()
    if row is None or row.device_id != device:
        raise EnrolmentError("unknown enrolment token for this device")
    if row.enrol_token_used:
        raise EnrolmentError("enrolment token already used")
    if row.enrol_token_expires_ms is None or row.enrol_token_expires_ms < at:
        raise EnrolmentError("enrolment token expired")
    password = secrets.token_urlsafe(24)
    username = device_username(row.school_id, row.device_id)
    row.public_key = public_key
    row.mqtt_username = username
    row.mqtt_password_hash = mosquitto_hash(password)
    row.enrol_token_used = True
    row.enrolled_at_ms = at
    row.revoked_at_ms = None  # a replacement of a revoked device starts afresh
    row.centre_key_pinned_ms = at if pins_centre_key else None
    row.downlink_features = None  # a new install says again what it reads
    try:
        session.flush()
    except IntegrityError as err:
        raise DeviceExists(f"MQTT user {username} is taken by another device") from err
    announce_key_change(session, row.school_id, row.device_id)
    log.info("device enrolled school=%s device=%s", row.school_id, row.device_id)
    return Credentials(row.school_id, row.device_id, username, password)


def revoke(session: Session, school: str, device: str, *, now: int | None = None) -> None:
    """Revoke a stolen or retired device: its key, MQTT login and unused token are dropped, so
    ingest refuses its batches and the broker its login once the caller has committed and
    rewritten the broker files (``server.broker_auth.write_broker_files``). The device id
    stays, with its events; ``reissue_token`` lets the school enrol a replacement under it."""
    row = session.execute(
        select(Device).where(Device.school_id == school, Device.device_id == device)
    ).scalar_one_or_none()
    if row is None:
        raise EnrolmentError(f"no device {device} at school {school}")
    row.public_key = None
    row.mqtt_username = None
    row.mqtt_password_hash = None
    row.enrol_token_hash = None
    row.enrol_token_used = True
    row.centre_key_pinned_ms = None
    row.revoked_at_ms = now if now is not None else now_ms()
    session.flush()
    announce_key_change(session, school, device)
    log.warning("device revoked school=%s device=%s", school, device)
