"""The duty roster and the alarms routed to the person on duty.

``route_alarms`` turns what the edges report into ``DutyAlert`` rows, exactly once per alarm
and recipient: an edge's ``alarm`` events (reader offline, outbox 80 % full, gate fault, secure
channel or downlink refused), read per device up to what ingest has stored without gaps, and the
centre's own ``edge_offline`` when an enrolled edge has been offline (its last will, or no
status at all: a damaged store stops the daemon) for longer than the grace period.
``deliver_alerts`` sends them through the notification module's gateways (SMS, e-mail).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts.access import Principal, Role
from server.accounts.models import RoleGrant, User
from server.audit.service import audit
from server.clock import zone
from server.console import i18n
from server.duty import rules
from server.duty.models import DutyAlert, DutyCursor, DutyShift
from server.models import Device, IngestProgress, School, StoredEvent

log = logging.getLogger(__name__)

OFFLINE_GRACE_MS = 5 * 60_000
BATCH = 500
MAX_ATTEMPTS = 5
# The gateways drop a repeated Idempotency-Key; the notification outbox uses its own ids, so
# duty alerts use ids far above them.
IDEMPOTENCY_BASE = 9 * 10**15
ELIGIBLE = (Role.DUTY_DEPUTY.value, Role.SCHOOL_ADMIN.value)


def staff_of(session: Session, school: str, roles: Sequence[str] = ELIGIBLE) -> list[User]:
    """Active console users holding one of ``roles`` at the school, by name."""
    return list(
        session.scalars(
            select(User)
            .join(RoleGrant, RoleGrant.user_pk == User.pk)
            .where(
                RoleGrant.school_id == school,
                RoleGrant.role.in_(list(roles)),
                User.active.is_(True),
            )
            .order_by(User.full_name, User.pk)
            .distinct()
        )
    )


def plan(
    session: Session, school: str, days: Sequence[dt.date]
) -> dict[tuple[dt.date, int], DutyShift]:
    rows = session.scalars(
        select(DutyShift).where(DutyShift.school_id == school, DutyShift.day.in_(list(days)))
    )
    return {(r.day, r.shift): r for r in rows}


def set_shift(
    session: Session,
    who: Principal,
    school: str,
    day: dt.date,
    shift: int,
    user_pk: int,
    starts: str,
    ends: str,
    now: int,
) -> DutyShift:
    """Name the responsible person of a shift (replacing whoever was named)."""
    starts, ends = rules.check_window(shift, starts, ends)
    if user_pk not in {u.pk for u in staff_of(session, school)}:
        raise rules.DutyError(
            "user", rules.N_("Choose a deputy director or an administrator of this school.")
        )
    row = session.execute(
        select(DutyShift).where(
            DutyShift.school_id == school, DutyShift.day == day, DutyShift.shift == shift
        )
    ).scalar_one_or_none()
    if row is None:
        row = DutyShift(school_id=school, day=day, shift=shift, user_pk=user_pk, updated_at_ms=now)
        session.add(row)
    row.user_pk = user_pk
    row.starts = starts
    row.ends = ends
    row.updated_at_ms = now
    row.updated_by = who.user_pk
    audit(
        session,
        who,
        "change",
        "duty",
        school_id=school,
        summary=f"duty {day.isoformat()} shift {shift} {starts}-{ends}: user #{user_pk}",
    )
    session.flush()
    return row


def clear_shift(session: Session, who: Principal, school: str, day: dt.date, shift: int) -> bool:
    row = session.execute(
        select(DutyShift).where(
            DutyShift.school_id == school, DutyShift.day == day, DutyShift.shift == shift
        )
    ).scalar_one_or_none()
    if row is None:
        return False
    session.delete(row)
    audit(
        session,
        who,
        "change",
        "duty",
        school_id=school,
        summary=f"duty {day.isoformat()} shift {shift}: nobody named",
    )
    session.flush()
    return True


def on_duty_now(session: Session, school: School, now: int) -> tuple[DutyShift, User] | None:
    """Who answers for the school's system at ``now`` (its local time), if anyone is named."""
    local = dt.datetime.fromtimestamp(now / 1000, zone(school.timezone))
    rows = list(
        session.scalars(
            select(DutyShift).where(DutyShift.school_id == school.id, DutyShift.day == local.date())
        )
    )
    slot = rules.on_duty(
        [rules.Slot(r.day, r.shift, r.starts, r.ends, r.user_pk) for r in rows], local
    )
    if slot is None:
        return None
    row = next(r for r in rows if r.shift == slot.shift)
    user = session.get(User, row.user_pk)
    if user is None or not user.active:
        return None
    return row, user


# ------------------------------------------------------------------------------ alarms


def _add_alerts(
    session: Session,
    school: School,
    source: str,
    device: str,
    terminal: str,
    code: str,
    detail: str,
    at_ms: int,
    now: int,
    push: bool,
) -> int:
    duty = on_duty_now(session, school, now)
    admins = [u.pk for u in staff_of(session, school.id, (Role.SCHOOL_ADMIN.value,))]
    added = 0
    clock = dt.datetime.fromtimestamp(at_ms / 1000, zone(school.timezone)).strftime("%d.%m %H:%M")
    for rec in rules.recipients(duty[1].pk if duty else None, admins):
        user = session.get(User, rec.user_pk) if rec.user_pk is not None else None
        lang = user.lang if user is not None else "kk"
        text = i18n.gettext(rules.ALARM_TEXT.get(code, code), lang)
        body = rules.alarm_body(text, school.name or school.id, device, terminal, detail, clock)
        where = (
            rules.channel_for(user.phone, user.email, user.pk, push) if user is not None else None
        )
        channel = where[0] if where else "none"
        exists = session.execute(
            select(DutyAlert.id).where(
                DutyAlert.source == source,
                DutyAlert.user_pk == rec.user_pk
                if rec.user_pk is not None
                else DutyAlert.user_pk.is_(None),
                DutyAlert.channel == channel,
            )
        ).first()
        if exists:
            continue
        session.add(
            DutyAlert(
                source=source,
                school_id=school.id,
                device=device,
                code=code,
                user_pk=rec.user_pk,
                routed_to=rec.routed_to,
                channel=channel,
                body=body,
                at_ms=at_ms,
                created_at_ms=now,
                status="queued" if where else "none",
                last_error="" if where else "no phone or e-mail for this person",
            )
        )
        added += 1
    return added


def route_alarms(
    session: Session, now: int, offline_grace_ms: int = OFFLINE_GRACE_MS, push: bool = False
) -> int:
    """Route what is new since the last run; returns the alerts added (caller commits).
    ``push``: the centre has a push service (staff without a phone are reached by push)."""
    added = 0
    schools = {s.id: s for s in session.scalars(select(School))}
    devices = list(
        session.scalars(select(Device).where(Device.revoked_at_ms.is_(None)).order_by(Device.pk))
    )
    for dev in devices:
        school = schools.get(dev.school_id)
        if school is None:
            continue
        cursor = session.get(DutyCursor, dev.pk)
        if cursor is None:
            cursor = DutyCursor(device_pk=dev.pk, through=0)
            session.add(cursor)
        stored = session.execute(
            select(IngestProgress.committed_through).where(IngestProgress.device_pk == dev.pk)
        ).scalar_one_or_none()
        upto = min(stored or 0, cursor.through + BATCH)
        if upto > cursor.through:
            for ev in session.scalars(
                select(StoredEvent)
                .where(
                    StoredEvent.device_pk == dev.pk,
                    StoredEvent.seq > cursor.through,
                    StoredEvent.seq <= upto,
                    StoredEvent.kind == "alarm",
                )
                .order_by(StoredEvent.seq)
            ):
                if not ev.payload.get("active", False):
                    continue  # a clearance: shown on the status page, nobody is woken
                added += _add_alerts(
                    session,
                    school,
                    f"ev:{dev.pk}:{ev.seq}",
                    dev.device_id,
                    ev.terminal,
                    str(ev.payload.get("code", "")),
                    str(ev.payload.get("detail", "")),
                    ev.at_ms,
                    now,
                    push,
                )
            cursor.through = upto
        # an enrolled edge silent for longer than the grace period
        if dev.enrolled_at_ms is not None and not dev.online:
            since = dev.online_changed_ms or dev.last_seen_ms or dev.enrolled_at_ms
            if since is not None and now - since >= offline_grace_ms:
                added += _add_alerts(
                    session,
                    school,
                    f"offline:{dev.pk}:{since}",
                    dev.device_id,
                    dev.device_id,
                    rules.EDGE_OFFLINE,
                    "",
                    since,
                    now,
                    push,
                )
    session.flush()
    return added


Send = Callable[[str, str, int, str], str | None]  # channel, address, key, body -> error


def deliver_alerts(
    session: Session, send: Send, now: int, limit: int = 100, push: bool = False
) -> tuple[int, int]:
    """Send queued alerts; returns (sent, failed). A failure is retried up to MAX_ATTEMPTS."""
    sent = failed = 0
    rows = list(
        session.scalars(
            select(DutyAlert)
            .where(DutyAlert.status == "queued")
            .order_by(DutyAlert.id)
            .limit(limit)
        )
    )
    for alert in rows:
        user = session.get(User, alert.user_pk) if alert.user_pk is not None else None
        where = (
            rules.channel_for(user.phone, user.email, user.pk, push) if user is not None else None
        )
        if where is None:
            alert.status = "none"
            alert.last_error = "no phone or e-mail for this person"
            continue
        alert.attempts += 1
        error = send(where[0], where[1], IDEMPOTENCY_BASE + alert.id, alert.body)
        if error is None:
            alert.status = "sent"
            alert.sent_at_ms = now
            alert.last_error = ""
            sent += 1
        else:
            alert.last_error = error[:300]
            if alert.attempts >= MAX_ATTEMPTS:
                alert.status = "failed"
            failed += 1
            log.warning("duty alert %d not sent (attempt %d)", alert.id, alert.attempts)
    session.flush()
    return sent, failed


def recent_alerts(session: Session, school: str, limit: int = 50) -> list[DutyAlert]:
    return list(
        session.scalars(
            select(DutyAlert)
            .where(DutyAlert.school_id == school)
            .order_by(DutyAlert.created_at_ms.desc(), DutyAlert.id.desc())
            .limit(limit)
        )
    )
