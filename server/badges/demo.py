"""The badge module's demo: a registered programme centre with its head, two mentors, an
expert and a coordinator, approved books, participants at each level with journals in
progress, one minor waiting for activation with a legal representative, one application
waiting for a decision, and one bronze participant whose level is complete and awarded, with
a signed, verifiable credential."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts.access import Grant, Principal, Role
from server.accounts.models import User
from server.accounts.service import create_user
from server.badges import awards, service
from server.badges.models import (
    Agreement,
    Centre,
    CentreStatus,
    CommissionMember,
    Entry,
    MentorRating,
    Participant,
    ParticipantStatus,
    Schedule,
    Staff,
)
from server.clock import Clock, now_ms
from server.models import Region

DEMO_LOGINS = {
    "centre": "head of the demo programme centre",
    "mentor": "mentor (bronze and silver participants)",
    "mentor2": "mentor (gold participant)",
    "expert": "expert over both mentors",
    "coordinator": "regional coordinator",
    "participant": "bronze participant, level complete and awarded",
    "participant2": "silver participant, journal in progress",
    "representative": "legal representative of a 15-year-old",
}


def _years_ago(today: dt.date, n: int) -> dt.date:
    """The same day ``n`` years before (28 February for a 29 February)."""
    try:
        return today.replace(year=today.year - n)
    except ValueError:
        return today.replace(year=today.year - n, day=28)


def _user(db: Session, login: str, name: str, grant: Grant, password: str) -> User:
    u = create_user(db, login, name, [grant], password=password)
    u.must_change_password = False
    return u


def _principal(u: User, role: Role) -> Principal:
    return Principal(u.pk, u.login, u.full_name, u.lang, "", [Grant(role)])


def _weekly(
    p: Participant, direction: str, start: dt.date, weeks: int, hours: str, now: int
) -> list[Entry]:
    return [
        Entry(
            participant_pk=p.pk,
            idem_key=f"demo-{p.pk}-{direction}-{i}",
            direction=direction,
            entry_date=start + dt.timedelta(weeks=i, days=1),
            written_at_ms=now,
            received_at_ms=now,
            hours=Decimal(hours),
            text=f"Week {i + 1}: {direction}",
            status="confirmed",
        )
        for i in range(weeks)
    ]


def seed_demo(
    db: Session,
    *,
    region: str = "DEMO-REGION",
    password: str,
    base_url: str = "http://127.0.0.1:8000",
    today: dt.date | None = None,
) -> dict[str, str]:
    """Fill the badge module (idempotent: nothing is added when the centre exists)."""
    if db.scalars(select(Centre).where(Centre.name == "Demo programme centre")).first():
        return DEMO_LOGINS
    today = today or Clock().today_in(None)
    now = now_ms()
    if db.get(Region, region) is None:
        db.add(Region(id=region, name="Demo region"))
        db.flush()
    centre = Centre(
        name="Demo programme centre",
        region_id=region,
        place="Demo town",
        status=CentreStatus.REGISTERED.value,
        approved_on=today - dt.timedelta(days=200),
        sign_due_on=service.add_working_days(today - dt.timedelta(days=200), 10),
        agreement_signed_on=today - dt.timedelta(days=195),
        created_at_ms=now,
    )
    db.add(centre)
    db.flush()
    head = awards.add_staff(
        db, None, centre, "centre", "Demo centre head", "centre_head", password=password
    )
    expert = awards.add_staff(
        db, None, centre, "expert", "Demo expert", "expert", password=password
    )
    mentor = awards.add_staff(
        db, None, centre, "mentor", "Demo mentor", "mentor", expert_pk=expert.pk, password=password
    )
    mentor2 = awards.add_staff(
        db,
        None,
        centre,
        "mentor2",
        "Demo mentor 2",
        "mentor",
        expert_pk=expert.pk,
        password=password,
    )
    awards.add_staff(
        db, None, centre, "coordinator", "Demo coordinator", "coordinator", password=password
    )
    for u in db.scalars(
        select(User).where(User.login.in_(["centre", "expert", "mentor", "mentor2", "coordinator"]))
    ):
        u.must_change_password = False
    operator_u = (
        _user(db, "badge-operator", "Demo medal operator", Grant(Role.OPERATOR), password)
        if db.scalars(select(User).where(User.login == "operator")).first() is None
        else db.scalars(select(User).where(User.login == "operator")).one()
    )
    op = _principal(operator_u, Role.OPERATOR)
    for section, title in (
        ("kazakh", "Абай жолы"),
        ("kazakh", "Көшпенділер"),
        ("world", "Дон Кихот"),
        ("world", "Соғыс және бейбітшілік"),
        ("growth", "Краткая история времени"),
    ):
        awards.add_book(db, op, section, title, now)

    def participant(
        login: str | None,
        name: str,
        birth: dt.date,
        level: str,
        mentor_s: Staff,
        start: dt.date | None,
        status: str,
        plan_long: str | None = None,
    ) -> Participant:
        u = _user(db, login, name, Grant(Role.BADGE_PARTICIPANT), password) if login else None
        p = Participant(
            user_pk=u.pk if u else None,
            full_name=name,
            birth_date=birth,
            region_id=region,
            residence="Demo town",
            study_place="College No. 1",
            about="",
            hobbies="",
            level=level,
            directions="sport,talents,volunteering,reading,heritage,trip"
            + (",work" if level == "gold" else ""),
            plan_long=plan_long,
            heritage_mode="weeks",
            heritage_months=service.HERITAGE_MONTHS[level][0],
            centre_pk=centre.pk,
            mentor_pk=mentor_s.pk,
            status=status,
            start=start,
            created_at_ms=now,
        )
        db.add(p)
        db.flush()
        for role in ("participant",):  # the demo's active participants are adults
            db.add(
                Agreement(
                    participant_pk=p.pk,
                    signer_role=role,
                    signer_user_pk=p.user_pk,
                    signer_name=name,
                    text_version=service.AGREEMENT_VERSION,
                    signed_at_ms=now,
                )
            )
        for d in p.directions.split(","):
            db.add(
                Schedule(
                    participant_pk=p.pk,
                    direction=d,
                    plan=f"{d}: weekly, agreed with the mentor",
                    hours_per_week=Decimal(1),
                    mentor_agreed_ms=now,
                    participant_agreed_ms=now,
                )
            )
        return p

    # bronze, complete and awarded
    start = today - dt.timedelta(days=140)
    start = start - dt.timedelta(days=start.weekday())
    done = participant(
        "participant",
        "Айдана Серікова",
        _years_ago(today, 19),
        "bronze",
        mentor,
        start,
        ParticipantStatus.ACTIVE.value,
    )
    rows: list[Entry] = []
    for d in ("sport", "talents", "volunteering", "heritage"):
        rows += _weekly(done, d, start, 13, "1.5", now)
    for i, (section, title) in enumerate(
        (("kazakh", "Абай жолы"), ("world", "Дон Кихот"), ("world", "Соғыс және бейбітшілік"))
    ):
        rows.append(
            Entry(
                participant_pk=done.pk,
                idem_key=f"demo-{done.pk}-book-{i}",
                direction="reading",
                entry_date=start + dt.timedelta(days=10 + 20 * i),
                written_at_ms=now,
                received_at_ms=now,
                book_title=title,
                book_section=section,
                text=f"An essay about {title}.",
                status="confirmed",
            )
        )
    rows.append(
        Entry(
            participant_pk=done.pk,
            idem_key=f"demo-{done.pk}-trip",
            direction="trip",
            entry_date=start + dt.timedelta(days=50),
            written_at_ms=now,
            received_at_ms=now,
            days=2,
            text="Two days in the mountains with the partner club.",
            status="confirmed",
        )
    )
    db.add_all(rows)
    # silver in progress (some pending, one rejected)
    start2 = today - dt.timedelta(days=60)
    silver = participant(
        "participant2",
        "Ерлан Нұрланов",
        _years_ago(today, 19),
        "silver",
        mentor,
        start2,
        ParticipantStatus.ACTIVE.value,
        plan_long="sport",
    )
    more = _weekly(silver, "sport", start2, 8, "2", now) + _weekly(
        silver, "volunteering", start2, 5, "1", now
    )
    more[-1].status = "pending"
    more[-2].status = "rejected"
    more[-2].reason = "No photo of the action"
    db.add_all(more)
    # gold in progress, with the second mentor
    start3 = today - dt.timedelta(days=90)
    gold = participant(
        None,
        "Томирис Әлиева",
        _years_ago(today, 22),
        "gold",
        mentor2,
        start3,
        ParticipantStatus.ACTIVE.value,
        plan_long="talents",
    )
    db.add_all(
        _weekly(gold, "talents", start3, 12, "3", now) + _weekly(gold, "sport", start3, 6, "1", now)
    )
    # a minor approved, waiting for the representative's signature and activation
    minor_u = None
    minor = Participant(
        full_name="Данияр Қасымов",
        birth_date=_years_ago(today, 15),
        region_id=region,
        residence="Demo town",
        study_place="School No. 7",
        level="bronze",
        directions="sport,talents,volunteering,reading,heritage,trip",
        centre_pk=centre.pk,
        mentor_pk=mentor.pk,
        status=ParticipantStatus.APPROVED.value,
        representative_name="Асель Қасымова",
        created_at_ms=now,
    )
    db.add(minor)
    db.flush()
    rep = _user(db, "representative", "Асель Қасымова", Grant(Role.BADGE_REPRESENTATIVE), password)
    minor.representative_user_pk = rep.pk
    del minor_u
    # an application waiting for a decision
    form = service.ApplicationForm(
        full_name="Әлихан Омаров",
        birth_date=_years_ago(today, 16),
        region_id=region,
        residence="Demo town",
        study_place="School No. 3",
        about="",
        hobbies="chess",
        level="bronze",
        directions=("reading", "sport", "talents"),
        plan_long=None,
        heritage_mode="weeks",
        heritage_months=3,
        representative_name="Омар Омаров",
    )
    service.submit_application(db, form, today - dt.timedelta(days=3), now)
    # anonymous mentor ratings (5, so the average shows)
    for score in (5, 4, 5, 5, 4):
        db.add(MentorRating(mentor_pk=mentor.pk, score=score, day=today))
    db.flush()
    # the award: proposal by the centre head, a commission of two, both for
    head_u = db.get_one(User, head.user_pk)
    pr = service.propose(db, _principal(head_u, Role.BADGE_CENTRE), done, today, now)
    coord_u = db.scalars(select(User).where(User.login == "coordinator")).one()
    service.set_commission(
        db,
        op,
        pr,
        [operator_u.pk, coord_u.pk],
        f"{today.isoformat()} 10:00",
        "https://meet.example/demo",
    )
    for m in db.scalars(select(CommissionMember).where(CommissionMember.proposal_pk == pr.pk)):
        m.vote = "for"
        m.voted_at_ms = now
    award = service.decide_proposal(db, op, pr, today, now)
    if award is not None:
        awards.issue(db, award, base_url, now)
    db.flush()
    return DEMO_LOGINS
