"""Badge module records for tests: a registered centre in R1 with a mentor, an active
participant with a schedule and an entry, an application, a proposal whose commission has
``member_pk`` in it, and an issued credential."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from server.accounts.access import Grant, Role
from server.accounts.service import create_user
from server.badges import awards, service
from server.badges.models import (
    Application,
    Award,
    Centre,
    CommissionMember,
    Entry,
    Media,
    Participant,
    Proposal,
    Schedule,
)
from server.clock import now_ms


def badge_targets(db: Session, region: str, member_pk: int, tag: str = "m") -> dict[str, Any]:
    now = now_ms()
    today = dt.date.today()
    centre = Centre(
        name=f"Centre {tag}",
        region_id=region,
        place="Town",
        status="registered",
        created_at_ms=now,
    )
    db.add(centre)
    db.flush()
    mentor = awards.add_staff(
        db, None, centre, f"{tag}-mentor", "Mentor M", "mentor", password="Passw0rd-mentor"
    )
    user = create_user(
        db,
        f"{tag}-participant",
        "Participant M",
        [Grant(Role.BADGE_PARTICIPANT)],
        password="Passw0rd-p1",
    )
    p = Participant(
        user_pk=user.pk,
        full_name="Participant M",
        birth_date=today.replace(year=today.year - 20),
        region_id=region,
        level="bronze",
        directions="sport",
        centre_pk=centre.pk,
        mentor_pk=mentor.pk,
        status="active",
        start=today - dt.timedelta(days=30),
        created_at_ms=now,
    )
    db.add(p)
    db.flush()
    schedule = Schedule(
        participant_pk=p.pk, direction="sport", plan="weekly", hours_per_week=Decimal(1)
    )
    entry = Entry(
        participant_pk=p.pk,
        idem_key=f"{tag}-entry-1",
        direction="sport",
        entry_date=today,
        written_at_ms=now,
        received_at_ms=now,
        hours=Decimal(1),
    )
    application = Application(
        participant_pk=p.pk,
        level="bronze",
        directions="sport",
        submitted_on=today,
        due_on=service.add_working_days(today, 14),
    )
    proposal = Proposal(
        participant_pk=p.pk, level="bronze", proposed_by=member_pk, proposed_at_ms=now
    )
    db.add_all([schedule, entry, application, proposal])
    db.flush()
    db.add(CommissionMember(proposal_pk=proposal.pk, user_pk=member_pk))
    media = Media(entry_pk=entry.pk, content_type="image/png", data=b"png", sha256="0" * 64)
    db.add(media)
    award = Award(participant_pk=p.pk, level="silver", awarded_on=today)
    db.add(award)
    db.flush()
    cred = awards.issue(db, award, "http://testserver", now)
    db.flush()
    return {
        "pk": p.pk,
        "participant_pk": p.pk,
        "schedule_pk": schedule.pk,
        "entry_pk": entry.pk,
        "staff_pk": mentor.pk,
        "media_pk": media.pk,
        "application_pk": application.pk,
        "proposal_pk": proposal.pk,
        "centre_pk": centre.pk,
        "credential_id": awards.short_id(cred.id),
    }
