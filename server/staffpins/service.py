"""Set a staff member's PIN from the console: sealed to every edge of the school that announced
its box key, kept as ciphertexts only until each edge's receipt; edges' box keys (signed by the
device's key); what the downlink sends and what an edge acknowledged.

The PIN exists on the server only in the request that sets it: it is validated, sealed once
per edge, and dropped; nothing derived from it but the ciphertexts is stored (a 4-6 digit PIN's
hash is guessed in seconds)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from protocol.codec import Envelope
from protocol.errors import ProtocolError
from protocol.messages import EdgeBoxKey as EdgeBoxKeyMsg
from protocol.messages import SealedStaffPin, StaffPins, StaffPinsAck
from protocol.sealing import box_public_from_raw, load_box_public, pin_aad, seal, unb64
from protocol.signing import load_public_key, verify
from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import now_ms
from server.models import Device
from server.people.models import StaffMember
from server.staffpins.models import EdgeBoxKey, SealedPinDelivery, StaffPinVersion

log = logging.getLogger(__name__)

N_ = str
PIN_MIN, PIN_MAX = 4, 6
MAX_PER_MESSAGE = 200
RESEND_AFTER_MS = 30_000  # an unacknowledged PIN goes again after this long


class PinError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_pin(pin: str, again: str) -> None:
    """4-6 ASCII digits, typed twice alike, not all one digit. Pure."""
    if not (PIN_MIN <= len(pin) <= PIN_MAX and pin.isascii() and pin.isdigit()):
        raise PinError("pin", N_("A PIN is 4 to 6 digits."))
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        raise PinError("pin", N_("This PIN is too easy to guess: choose another."))
    if pin != again:
        raise PinError("pin_again", N_("The two PINs differ."))


def _edges(session: Session, school: str) -> list[tuple[Device, EdgeBoxKey]]:
    rows = session.execute(
        select(Device, EdgeBoxKey)
        .join(EdgeBoxKey, EdgeBoxKey.device_pk == Device.pk)
        .where(
            Device.school_id == school,
            Device.public_key.is_not(None),
            Device.revoked_at_ms.is_(None),
        )
        .order_by(Device.device_id)
    ).all()
    return [(d, k) for d, k in rows]


def set_pin(
    session: Session, who: Principal | None, member: StaffMember, pin: str, again: str
) -> int:
    """Seal a new PIN for ``member`` to every edge of the school; returns how many. Replaces any
    older PIN still on its way. ``PinError`` changes nothing."""
    check_pin(pin, again)
    if not member.active:
        raise PinError("pin", N_("This staff member is inactive."))
    edges = _edges(session, member.school_id)
    if not edges:
        raise PinError("pin", N_("No terminal of this school has announced its key yet."))
    at = now_ms()
    row = session.get(StaffPinVersion, member.pk)
    if row is None:
        row = StaffPinVersion(staff_pk=member.pk, version=0, set_at_ms=at)
        session.add(row)
    row.version += 1
    row.set_at_ms = at
    row.set_by_user_pk = who.user_pk if who is not None else None
    session.execute(delete(SealedPinDelivery).where(SealedPinDelivery.staff_pk == member.pk))
    for device, key in edges:
        aad = pin_aad(member.school_id, device.device_id, member.ref, row.version)
        enc, ct = seal(box_public_from_raw(key.public_key), pin.encode("ascii"), aad)
        session.add(
            SealedPinDelivery(
                school_id=member.school_id,
                device_pk=device.pk,
                staff_pk=member.pk,
                staff_ref=member.ref,
                version=row.version,
                enc=enc,
                ct=ct,
                created_at_ms=at,
            )
        )
    session.flush()
    audit(
        session,
        who,
        "change",
        "staff_pin",
        school_id=member.school_id,
        summary=f"staff #{member.pk} PIN version {row.version} sealed to {len(edges)} edge(s)",
    )
    return len(edges)


def register_box_key(session: Session, school: str, device: str, env: Envelope) -> bool:
    """Store an edge's box key if the envelope is signed by the device's enrolled key and names
    this device; False (nothing stored) otherwise."""
    row = session.execute(
        select(Device).where(Device.school_id == school, Device.device_id == device)
    ).scalar_one_or_none()
    if row is None or row.public_key is None or row.revoked_at_ms is not None:
        return False
    try:
        verify(env, load_public_key(row.public_key))
        msg = env.message(EdgeBoxKeyMsg)
        raw = unb64(msg.public_key, "box key")
        load_box_public(msg.public_key)
    except ProtocolError as err:
        log.warning("box key of %s/%s refused: %s", school, device, err)
        return False
    if msg.school != school or msg.device != device:
        return False
    key = session.get(EdgeBoxKey, row.pk)
    if key is None:
        session.add(EdgeBoxKey(device_pk=row.pk, public_key=raw, announced_at_ms=now_ms()))
    elif key.public_key != raw:
        key.public_key, key.announced_at_ms = raw, now_ms()
        log.info("box key of %s/%s changed", school, device)
    session.flush()
    return True


def due(session: Session, school: str, device: str, *, now: int, resend: bool) -> StaffPins | None:
    """Sealed PINs to send to the device (all unacknowledged, or only those never sent or sent
    more than RESEND_AFTER_MS ago when not ``resend``); marks them sent."""
    q = (
        select(SealedPinDelivery)
        .join(Device, Device.pk == SealedPinDelivery.device_pk)
        .where(
            Device.school_id == school,
            Device.device_id == device,
            Device.revoked_at_ms.is_(None),
            SealedPinDelivery.acked_at_ms.is_(None),
            SealedPinDelivery.ct.is_not(None),
        )
        .order_by(SealedPinDelivery.pk)
        .limit(MAX_PER_MESSAGE)
    )
    rows = [
        r
        for r in session.execute(q).scalars()
        if resend or r.sent_at_ms is None or r.sent_at_ms < now - RESEND_AFTER_MS
    ]
    if not rows:
        return None
    for r in rows:
        r.sent_at_ms = now
    return StaffPins(
        school=school,
        device=device,
        pins=[
            SealedStaffPin(staff_id=r.staff_ref, version=r.version, enc=r.enc or "", ct=r.ct or "")
            for r in rows
        ],
    )


def devices_with_due_pins(session: Session, *, now: int) -> list[tuple[str, str]]:
    """(school, device) of online devices with a sealed PIN never sent or not acknowledged
    RESEND_AFTER_MS after it was sent."""
    rows = session.execute(
        select(Device.school_id, Device.device_id)
        .join(SealedPinDelivery, SealedPinDelivery.device_pk == Device.pk)
        .where(
            Device.online.is_(True),
            Device.revoked_at_ms.is_(None),
            SealedPinDelivery.acked_at_ms.is_(None),
            SealedPinDelivery.ct.is_not(None),
            (SealedPinDelivery.sent_at_ms.is_(None))
            | (SealedPinDelivery.sent_at_ms < now - RESEND_AFTER_MS),
        )
        .distinct()
    ).all()
    return [(school, device) for school, device in rows]


def record_receipts(session: Session, school: str, device: str, env: Envelope) -> int:
    """An edge's signed receipt: drop the ciphertexts it handled. Returns how many."""
    row = session.execute(
        select(Device).where(Device.school_id == school, Device.device_id == device)
    ).scalar_one_or_none()
    if row is None or row.public_key is None:
        return 0
    try:
        verify(env, load_public_key(row.public_key))
        ack = env.message(StaffPinsAck)
    except ProtocolError as err:
        log.warning("staff PIN receipt of %s/%s refused: %s", school, device, err)
        return 0
    if ack.school != school or ack.device != device:
        return 0
    done = 0
    at = now_ms()
    for receipt in ack.receipts:
        delivery = session.execute(
            select(SealedPinDelivery).where(
                SealedPinDelivery.device_pk == row.pk,
                SealedPinDelivery.staff_ref == receipt.staff_id,
                SealedPinDelivery.version == receipt.version,
                SealedPinDelivery.acked_at_ms.is_(None),
            )
        ).scalar_one_or_none()
        if delivery is None:
            continue
        delivery.acked_at_ms = at
        delivery.opened = receipt.opened
        delivery.enc = delivery.ct = None  # the ciphertext is no longer needed anywhere
        done += 1
    session.flush()
    return done


@dataclass(frozen=True, slots=True)
class EdgeDelivery:
    device_id: str
    version: int | None
    state: str  # "delivered", "waiting", "not_opened", "no_pin"


def pin_status(
    session: Session, member: StaffMember
) -> tuple[StaffPinVersion | None, list[EdgeDelivery]]:
    version = session.get(StaffPinVersion, member.pk)
    out = []
    for device, _key in _edges(session, member.school_id):
        d = session.execute(
            select(SealedPinDelivery).where(
                SealedPinDelivery.device_pk == device.pk, SealedPinDelivery.staff_pk == member.pk
            )
        ).scalar_one_or_none()
        if d is None:
            out.append(EdgeDelivery(device.device_id, None, "no_pin"))
        elif d.acked_at_ms is None:
            out.append(EdgeDelivery(device.device_id, d.version, "waiting"))
        else:
            out.append(
                EdgeDelivery(device.device_id, d.version, "delivered" if d.opened else "not_opened")
            )
    return version, out
