"""Console side of device revocation: the checks of the form, then ``server.devices`` does the
work; the broker files are rewritten after the commit so Mosquitto drops the login at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.accounts.access import Principal
from server.audit.service import audit
from server.broker_auth import BrokerFilesError, write_broker_files
from server.devices import EnrolmentError, reissue_token, revoke
from server.models import Device, School
from server.settings import ServerSettings
from server.text_safety import hidden_at

log = logging.getLogger(__name__)

N_ = str
MAX_REASON = 200


class DeviceActionError(ValueError):
    """A refused console action on a device; ``message`` is an English msgid."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class Revoked:
    device: str
    broker_files_written: bool


def school_devices(session: Session, school: str) -> list[Device]:
    return list(
        session.scalars(select(Device).where(Device.school_id == school).order_by(Device.device_id))
    )


def device_counts(session: Session, schools: list[School]) -> dict[str, int]:
    ids = [s.id for s in schools]
    rows = session.execute(
        select(Device.school_id, func.count())
        .where(Device.school_id.in_(ids))
        .group_by(Device.school_id)
    ).all()
    return {str(k): int(n) for k, n in rows}


def _device(session: Session, school: str, device: str) -> Device:
    row = session.execute(
        select(Device).where(Device.school_id == school, Device.device_id == device)
    ).scalar_one_or_none()
    if row is None:
        raise DeviceActionError(N_("No such device at this school."), "device")
    return row


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())  # one line in the audit log
    if not reason:
        raise DeviceActionError(N_("Give the reason (stolen, retired, ...)."), "reason")
    if hidden_at(reason) is not None:
        raise DeviceActionError(N_("The reason contains an invisible character."), "reason")
    return reason[:MAX_REASON]


def revoke_device(
    session: Session,
    settings: ServerSettings,
    who: Principal,
    school: str,
    device: str,
    reason: str,
    *,
    confirmed: bool,
) -> Revoked:
    """Revoke ``device`` of ``school`` (in scope: the route checked it), audit it with the
    reason, commit, then rewrite the broker files. Ingest refuses its next batch at once
    (``server.devices.KEY_CHANNEL``); the downlink stops sending to it."""
    _device(session, school, device)
    why = _reason(reason)
    if not confirmed:
        raise DeviceActionError(N_("Tick the confirmation: the device stops at once."), "confirm")
    try:
        revoke(session, school, device)
    except EnrolmentError as err:
        raise DeviceActionError(N_("No such device at this school."), "device") from err
    audit(session, who, "revoke", "device", school_id=school, summary=f"{device}: {why}")
    session.commit()
    try:
        written = write_broker_files(session, settings)
    except BrokerFilesError:
        # Revoked in the database (ingest refuses it); the broker learns it at the next rewrite.
        log.exception("device revoked but the broker files could not be rewritten")
        msg = N_("The device is revoked; rewrite the broker files: qaqpa server broker-files.")
        raise DeviceActionError(msg) from None
    return Revoked(device, written)


def replacement_token(
    session: Session, settings: ServerSettings, who: Principal, school: str, device: str
) -> str:
    """A one-time enrolment token for the device (its replacement), audited without the token;
    shown once by the caller, stored only as a hash."""
    _device(session, school, device)
    token = reissue_token(session, settings, school, device)
    audit(
        session,
        who,
        "issue",
        "device_token",
        school_id=school,
        summary=f"{device}: one-time enrolment token",
    )
    session.commit()
    return token
