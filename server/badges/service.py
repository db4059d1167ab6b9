"""Badge module operations: applications, agreements, schedules, the journal (idempotent
uploads), decisions, overturns, reassignments, ratings, proposals, commission and awards.

Every function takes the session and the actor; the caller commits. Refusals raise
``BadgeError`` with a message safe to show (an English msgid the console translates).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.accounts.access import Principal, Role
from server.audit.service import audit
from server.badges import integrity, rules, scoring, working_days
from server.badges.models import (
    Agreement,
    Application,
    Award,
    Centre,
    CentreStatus,
    CommissionMember,
    Decision,
    Direction,
    Entry,
    EntryStatus,
    Level,
    Media,
    MentorRating,
    Participant,
    ParticipantStatus,
    Proposal,
    RatingGiven,
    Reassignment,
    Requirement,
    Schedule,
    Section,
    Staff,
    StaffKind,
)

N_ = str  # marks a message for the catalogues (translated where it is shown)

AGREEMENT_VERSION = "2026-1"  # the voluntary-participation agreement's text version
APPLICATION_DAYS = 14  # working days to decide an application
CENTRE_SIGN_DAYS = 10  # working days for an approved centre to sign its agreement
MAX_TEXT = 10_000
MAX_HOURS = Decimal(168)
MAX_DAYS = 366
MIN_AGE, MAX_AGE = 14, 29
MIN_AGE_OF = {"bronze": 14, "silver": 15, "gold": 16}
HERITAGE_MONTHS = {"bronze": (3,), "silver": (3, 6), "gold": (6, 9)}


class BadgeError(ValueError):
    """A refused operation; ``message`` is an English msgid, ``field`` the input at fault."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# --------------------------------------------------------------------------- calendar


# Kazakh working days (weekends, public holidays and their transfers): server.badges.working_days
is_working_day = working_days.is_working_day
add_working_days = working_days.add_working_days


# ------------------------------------------------------------------------------ helpers


def title_key(title: str) -> str:
    return unicodedata.normalize("NFC", title).strip().casefold()


def age_on(birth: dt.date, day: dt.date) -> int:
    """Completed years (a 29 February birthday is reached on 1 March in common years)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def staff_of(db: Session, user_pk: int, *kinds: StaffKind) -> list[Staff]:
    return list(
        db.scalars(
            select(Staff)
            .where(Staff.user_pk == user_pk, Staff.kind.in_([k.value for k in kinds]))
            .order_by(Staff.pk)
        )
    )


def _clean(text: str, field: str, limit: int) -> str:
    text = text.strip()
    if len(text) > limit:
        raise BadgeError(N_("The text is too long."), field)
    if any(unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\r\t" for c in text):
        raise BadgeError(N_("Invisible or control characters are not allowed."), field)
    return text


# -------------------------------------------------------------------------------- scope


def participants_in_scope(db: Session, who: Principal) -> Select[Participant]:
    """The participants this user reaches: operator all; coordinator their region; centre head
    their centre; expert the participants of the mentors they oversee and those handed to them;
    mentor their assigned participants; participant themself; representative their minors."""
    q = select(Participant)
    roles = who.roles
    if Role.OPERATOR in roles:
        return q
    conds: list[Any] = []
    for g in who.grants:
        if g.role is Role.BADGE_COORDINATOR and g.region_id is not None:
            conds.append(Participant.region_id == g.region_id)
    mine = staff_of(db, who.user_pk, *StaffKind)
    for s in mine:
        if s.kind == StaffKind.CENTRE_HEAD.value and s.centre_pk is not None:
            conds.append(Participant.centre_pk == s.centre_pk)
        if s.kind == StaffKind.COORDINATOR.value:
            conds.append(Participant.region_id == s.region_id)
            conds.append(Participant.mentor_pk == s.pk)
        if s.kind == StaffKind.EXPERT.value:
            overseen = select(Staff.pk).where(Staff.expert_pk == s.pk)
            conds.append(Participant.mentor_pk.in_(overseen))
            conds.append(Participant.mentor_pk == s.pk)
        if s.kind == StaffKind.MENTOR.value:
            conds.append(Participant.mentor_pk == s.pk)
    if Role.BADGE_PARTICIPANT in roles:
        conds.append(Participant.user_pk == who.user_pk)
    if Role.BADGE_REPRESENTATIVE in roles:
        conds.append(Participant.representative_user_pk == who.user_pk)
    if not conds:
        return q.where(Participant.pk == -1)
    from sqlalchemy import or_

    return q.where(or_(*conds))


def participant_in_scope(db: Session, who: Principal, pk: int) -> Participant | None:
    return db.scalars(participants_in_scope(db, who).where(Participant.pk == pk)).first()


def own_participant(db: Session, who: Principal) -> Participant | None:
    """The participant's own record, or a representative's (first) minor."""
    found = db.scalars(select(Participant).where(Participant.user_pk == who.user_pk)).first()
    if found is None:
        found = db.scalars(
            select(Participant)
            .where(Participant.representative_user_pk == who.user_pk)
            .order_by(Participant.pk)
        ).first()
    return found


def supervisor_of(db: Session, who: Principal, p: Participant) -> Staff | None:
    """The user's staff row if they are the participant's current supervisor (mentor, or the
    expert / coordinator it was handed to)."""
    if p.mentor_pk is None:
        return None
    s = db.get(Staff, p.mentor_pk)
    return s if s is not None and s.user_pk == who.user_pk else None


def may_review(db: Session, who: Principal, p: Participant) -> bool:
    """An expert over the participant's mentor, the region's coordinator, or the operator."""
    if Role.OPERATOR in who.roles:
        return True
    mentor = db.get(Staff, p.mentor_pk) if p.mentor_pk is not None else None
    for s in staff_of(db, who.user_pk, StaffKind.EXPERT, StaffKind.COORDINATOR):
        if s.kind == StaffKind.COORDINATOR.value and s.region_id == p.region_id:
            return True
        if s.kind == StaffKind.EXPERT.value and mentor is not None and mentor.expert_pk == s.pk:
            return True
    return any(g.role is Role.BADGE_COORDINATOR and g.region_id == p.region_id for g in who.grants)


# ------------------------------------------------------------------------- applications


@dataclass(frozen=True, slots=True)
class ApplicationForm:
    full_name: str
    birth_date: dt.date
    region_id: str
    residence: str
    study_place: str
    about: str
    hobbies: str
    level: str
    directions: tuple[str, ...]
    plan_long: str | None
    heritage_mode: str
    heritage_months: int | None
    representative_name: str = ""


def parse_application(raw: dict[str, Any], today: dt.date) -> ApplicationForm:
    """A precise refusal for each field; nothing is stored on a refusal."""
    name = _clean(str(raw.get("full_name", "")), "full_name", 200)
    if not name:
        raise BadgeError(N_("Enter the full name."), "full_name")
    try:
        birth = dt.date.fromisoformat(str(raw.get("birth_date", "")))
    except ValueError as err:
        raise BadgeError(N_("Enter the birth date as YYYY-MM-DD."), "birth_date") from err
    level = str(raw.get("level", ""))
    if level not in {lv.value for lv in Level}:
        raise BadgeError(N_("Choose a level."), "level")
    age = age_on(birth, today)
    if age < MIN_AGE_OF[level] or age > MAX_AGE:
        raise BadgeError(
            N_("The age does not fit the level (14-29; silver 15+, gold 16+)."), "birth_date"
        )
    dirs = tuple(sorted({str(d) for d in raw.get("directions", []) or []}))
    if not dirs or any(d not in {x.value for x in Direction} for d in dirs):
        raise BadgeError(N_("Choose at least one direction."), "directions")
    plan_long = str(raw.get("plan_long") or "") or None
    if level != "bronze" and plan_long not in ("sport", "talents"):
        raise BadgeError(N_("Choose the longer of sport and talents."), "plan_long")
    mode = str(raw.get("heritage_mode") or "weeks")
    if mode not in ("weeks", "book"):
        raise BadgeError(N_("Choose how heritage is done."), "heritage_mode")
    months: int | None = None
    if mode == "weeks":
        try:
            months = int(str(raw.get("heritage_months") or HERITAGE_MONTHS[level][0]))
        except ValueError as err:
            raise BadgeError(
                N_("Heritage months are not allowed for the level."), "heritage_months"
            ) from err
        if months not in HERITAGE_MONTHS[level]:
            raise BadgeError(
                N_("Heritage months are not allowed for the level."), "heritage_months"
            )
    rep = _clean(str(raw.get("representative_name", "")), "representative_name", 200)
    if age < 18 and not rep:
        raise BadgeError(
            N_("A participant under 18 names a legal representative."), "representative_name"
        )
    return ApplicationForm(
        full_name=name,
        birth_date=birth,
        region_id=_clean(str(raw.get("region_id", "")), "region_id", 64),
        residence=_clean(str(raw.get("residence", "")), "residence", 200),
        study_place=_clean(str(raw.get("study_place", "")), "study_place", 200),
        about=_clean(str(raw.get("about", "")), "about", 2000),
        hobbies=_clean(str(raw.get("hobbies", "")), "hobbies", 500),
        level=level,
        directions=dirs,
        plan_long=plan_long if level != "bronze" else (plan_long or None),
        heritage_mode=mode,
        heritage_months=months,
        representative_name=rep,
    )


def propose_by_place(db: Session, region_id: str, place: str) -> tuple[Centre | None, Staff | None]:
    """A registered centre of the region (one serving the same place first) and its mentor
    with the fewest participants."""
    centres = list(
        db.scalars(
            select(Centre)
            .where(Centre.region_id == region_id, Centre.status == CentreStatus.REGISTERED.value)
            .order_by(Centre.pk)
        )
    )
    if not centres:
        return None, None
    key = title_key(place)
    centre = next((c for c in centres if key and title_key(c.place) == key), centres[0])
    load = (
        select(func.count(Participant.pk))
        .where(Participant.mentor_pk == Staff.pk)
        .scalar_subquery()
    )
    mentor = db.scalars(
        select(Staff)
        .where(
            Staff.centre_pk == centre.pk,
            Staff.kind == StaffKind.MENTOR.value,
            Staff.absent.is_(False),
        )
        .order_by(load, Staff.pk)
    ).first()
    return centre, mentor


def submit_application(
    db: Session, form: ApplicationForm, today: dt.date, now_ms: int, *, user_pk: int | None = None
) -> Application:
    from server.models import Region

    if db.get(Region, form.region_id) is None:
        raise BadgeError(N_("Choose a region."), "region_id")
    centre, mentor = propose_by_place(db, form.region_id, form.residence)
    p = Participant(
        user_pk=user_pk,
        full_name=form.full_name,
        birth_date=form.birth_date,
        region_id=form.region_id,
        residence=form.residence,
        study_place=form.study_place,
        about=form.about,
        hobbies=form.hobbies,
        level=form.level,
        directions=",".join(form.directions),
        plan_long=form.plan_long,
        heritage_mode=form.heritage_mode,
        heritage_months=form.heritage_months,
        representative_name=form.representative_name,
        centre_pk=centre.pk if centre else None,
        status=ParticipantStatus.APPLIED.value,
        created_at_ms=now_ms,
    )
    db.add(p)
    db.flush()
    a = Application(
        participant_pk=p.pk,
        level=form.level,
        directions=p.directions,
        proposed_centre_pk=centre.pk if centre else None,
        proposed_mentor_pk=mentor.pk if mentor else None,
        submitted_on=today,
        due_on=add_working_days(today, APPLICATION_DAYS),
    )
    db.add(a)
    db.flush()
    audit(db, None, "create", "badge_application", summary=f"application {a.pk} ({form.level})")
    return a


def applications_in_scope(db: Session, who: Principal) -> list[tuple[Application, Participant]]:
    ids = participants_in_scope(db, who).with_only_columns(Participant.pk)
    return [
        (a, p)
        for a, p in db.execute(
            select(Application, Participant)
            .join(Participant, Participant.pk == Application.participant_pk)
            .where(Participant.pk.in_(ids.scalar_subquery()))
            .order_by(Application.due_on, Application.pk)
        )
    ]


def is_overdue(a: Application, today: dt.date) -> bool:
    return a.status == "submitted" and today > a.due_on


def decide_application(
    db: Session, who: Principal, a: Application, approve: bool, reason: str, now_ms: int
) -> None:
    if a.status != "submitted":
        raise BadgeError(N_("The application is already decided."), "decision")
    p = db.get_one(Participant, a.participant_pk)
    reason = _clean(reason, "reason", 500)
    if not approve and not reason:
        raise BadgeError(N_("Give the reason of the refusal."), "reason")
    a.status = "approved" if approve else "rejected"
    a.reason = reason
    a.decided_by = who.user_pk
    a.decided_at_ms = now_ms
    if approve:
        p.status = ParticipantStatus.APPROVED.value
        p.centre_pk = a.proposed_centre_pk
        p.mentor_pk = a.proposed_mentor_pk
    else:
        p.status = ParticipantStatus.REJECTED.value
    audit(db, who, "decide", "badge_application", summary=f"application {a.pk}: {a.status}")


# ---------------------------------------------------------------------------- centres


def centre_state(c: Centre, today: dt.date) -> str:
    """Lapsed when approved and not signed by its due day (shown before the nightly lapse)."""
    if (
        c.status == CentreStatus.APPROVED.value
        and c.sign_due_on is not None
        and today > c.sign_due_on
    ):
        return CentreStatus.LAPSED.value
    return c.status


def approve_centre(db: Session, who: Principal, c: Centre, today: dt.date) -> None:
    if c.status != CentreStatus.APPLIED.value:
        raise BadgeError(N_("The centre is not waiting for approval."), "centre")
    c.status = CentreStatus.APPROVED.value
    c.approved_on = today
    c.sign_due_on = add_working_days(today, CENTRE_SIGN_DAYS)
    audit(db, who, "approve", "badge_centre", summary=f"centre {c.pk}")


def sign_centre_agreement(
    db: Session, who: Principal, c: Centre, signer: str, today: dt.date, now_ms: int
) -> None:
    if centre_state(c, today) != CentreStatus.APPROVED.value:
        raise BadgeError(
            N_("The centre cannot sign: it is not approved or its time ran out."), "centre"
        )
    c.status = CentreStatus.REGISTERED.value
    c.agreement_signed_on = today
    db.add(
        Agreement(
            centre_pk=c.pk,
            signer_role="centre",
            signer_user_pk=who.user_pk,
            signer_name=_clean(signer, "signer", 200) or who.full_name,
            text_version=AGREEMENT_VERSION,
            signed_at_ms=now_ms,
        )
    )
    audit(db, who, "sign", "badge_centre", summary=f"centre {c.pk} agreement {AGREEMENT_VERSION}")


def lapse_centres(db: Session, today: dt.date) -> int:
    """Centres approved but unsigned past their 10 working days lose their registration."""
    n = 0
    for c in db.scalars(select(Centre).where(Centre.status == CentreStatus.APPROVED.value)):
        if centre_state(c, today) == CentreStatus.LAPSED.value:
            c.status = CentreStatus.LAPSED.value
            n += 1
    return n


# ------------------------------------------------------------- agreements and schedules


def agreements_of(db: Session, p: Participant) -> list[Agreement]:
    return list(
        db.scalars(select(Agreement).where(Agreement.participant_pk == p.pk).order_by(Agreement.pk))
    )


def needs_representative(p: Participant, today: dt.date) -> bool:
    return age_on(p.birth_date, today) < 18


def sign_agreement(
    db: Session, who: Principal, p: Participant, signer_name: str, now_ms: int
) -> Agreement:
    """The participant or (for a minor) the representative signs the current text version."""
    if p.user_pk == who.user_pk:
        role = "participant"
    elif p.representative_user_pk == who.user_pk:
        role = "representative"
    else:
        raise BadgeError(N_("Only the participant or their representative signs."), "signer")
    if any(
        a.signer_role == role and a.text_version == AGREEMENT_VERSION for a in agreements_of(db, p)
    ):
        raise BadgeError(N_("Already signed."), "signer")
    a = Agreement(
        participant_pk=p.pk,
        signer_role=role,
        signer_user_pk=who.user_pk,
        signer_name=_clean(signer_name, "signer_name", 200) or who.full_name,
        text_version=AGREEMENT_VERSION,
        signed_at_ms=now_ms,
    )
    db.add(a)
    audit(db, who, "sign", "badge_agreement", summary=f"participant {p.pk} as {role}")
    return a


def agreement_complete(db: Session, p: Participant, today: dt.date) -> bool:
    roles = {a.signer_role for a in agreements_of(db, p) if a.text_version == AGREEMENT_VERSION}
    return "participant" in roles and (
        "representative" in roles or not needs_representative(p, today)
    )


def schedules_of(db: Session, p: Participant) -> list[Schedule]:
    return list(
        db.scalars(select(Schedule).where(Schedule.participant_pk == p.pk).order_by(Schedule.pk))
    )


def set_schedule(
    db: Session, who: Principal, p: Participant, direction: str, plan: str, hours: str, now_ms: int
) -> Schedule:
    """The mentor writes (or changes) a direction's schedule; the participant agrees again."""
    if supervisor_of(db, who, p) is None:
        raise BadgeError(N_("Only the participant's mentor sets the schedule."), "direction")
    if (
        direction not in p.directions.split(",")
        and direction not in scoring.LEVEL_DIRECTIONS[p.level]
    ):
        raise BadgeError(N_("Choose one of the participant's directions."), "direction")
    plan = _clean(plan, "plan", 1000)
    if not plan:
        raise BadgeError(N_("Describe the schedule."), "plan")
    h = parse_amount(hours, "hours_per_week", MAX_HOURS)
    s = db.scalars(
        select(Schedule).where(Schedule.participant_pk == p.pk, Schedule.direction == direction)
    ).first()
    if s is None:
        s = Schedule(participant_pk=p.pk, direction=direction, plan=plan)
        db.add(s)
    s.plan = plan
    s.hours_per_week = h
    s.mentor_agreed_ms = now_ms
    s.participant_agreed_ms = None
    db.flush()
    return s


def agree_schedule(db: Session, who: Principal, p: Participant, s: Schedule, now_ms: int) -> None:
    if p.user_pk != who.user_pk or s.participant_pk != p.pk:
        raise BadgeError(N_("Only the participant agrees to their schedule."), "schedule")
    s.participant_agreed_ms = now_ms


def activate(db: Session, who: Principal, p: Participant, today: dt.date) -> None:
    """The mentor activates the participant once the agreement is signed and every schedule
    is agreed by both."""
    if supervisor_of(db, who, p) is None:
        raise BadgeError(N_("Only the participant's mentor activates them."), "participant")
    if p.status != ParticipantStatus.APPROVED.value:
        raise BadgeError(N_("The participant is not waiting for activation."), "participant")
    if not agreement_complete(db, p, today):
        raise BadgeError(
            N_("The agreement is not signed by everyone who must sign it."), "agreement"
        )
    sched = schedules_of(db, p)
    if not sched or any(
        s.mentor_agreed_ms is None or s.participant_agreed_ms is None for s in sched
    ):
        raise BadgeError(
            N_("Every schedule must be agreed by the mentor and the participant."), "schedule"
        )
    p.status = ParticipantStatus.ACTIVE.value
    p.start = today
    audit(db, who, "activate", "badge_participant", summary=f"participant {p.pk}")


# ------------------------------------------------------------------------------ journal


def parse_amount(text: Any, field: str, upper: Decimal) -> Decimal:
    try:
        value = Decimal(str(text).strip())
    except (InvalidOperation, ValueError) as err:
        raise BadgeError(N_("Enter a number."), field) from err
    if not value.is_finite() or value < 0 or value > upper:
        raise BadgeError(N_("The number is out of range."), field)
    return value.quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class EntryForm:
    idem_key: str
    direction: str
    entry_date: dt.date
    written_at_ms: int
    hours: Decimal | None = None
    days: int | None = None
    book_title: str | None = None
    book_section: str | None = None
    text: str = ""
    employer_confirmation: str = ""


def parse_entry(raw: Any, now_ms: int) -> EntryForm:
    """An uploaded entry (JSON from the offline page): every field bounded, precise errors."""
    if not isinstance(raw, dict):
        raise BadgeError(N_("An entry is an object."), "entry")
    key = raw.get("key")
    if not isinstance(key, str) or not 8 <= len(key) <= 64 or not key.isascii():
        raise BadgeError(N_("The entry's key must be 8-64 ASCII characters."), "key")
    direction = raw.get("direction")
    if direction not in {d.value for d in Direction}:
        raise BadgeError(N_("Unknown direction."), "direction")
    try:
        day = dt.date.fromisoformat(str(raw.get("date")))
    except ValueError as err:
        raise BadgeError(N_("The date must be YYYY-MM-DD."), "date") from err
    if len(str(raw.get("date"))) != 10:
        raise BadgeError(N_("The date must be YYYY-MM-DD."), "date")
    written = raw.get("written_at_ms")
    if (
        not isinstance(written, int)
        or isinstance(written, bool)
        or not 0 < written <= now_ms + 86_400_000
    ):
        raise BadgeError(N_("The time the entry was written is not valid."), "written_at_ms")
    text = _clean(str(raw.get("text", "") or ""), "text", MAX_TEXT)
    form: dict[str, Any] = {}
    if direction in ("sport", "talents", "volunteering") or (
        direction == "heritage" and not raw.get("book")
    ):
        form["hours"] = parse_amount(raw.get("hours"), "hours", MAX_HOURS)
    elif direction in ("reading", "heritage"):
        title = _clean(str(raw.get("book", "") or ""), "book", 300)
        if not title:
            raise BadgeError(N_("Name the book."), "book")
        section = raw.get("section")
        if section not in {s.value for s in Section}:
            raise BadgeError(N_("Unknown section."), "section")
        form["book_title"] = title
        form["book_section"] = section
    else:  # trip, work
        d = raw.get("days")
        if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= MAX_DAYS:
            raise BadgeError(N_("The number of days is out of range."), "days")
        form["days"] = d
        if direction == "work":
            form["employer_confirmation"] = _clean(
                str(raw.get("employer", "") or ""), "employer", 300
            )
    return EntryForm(
        idem_key=key,
        direction=str(direction),
        entry_date=day,
        written_at_ms=written,
        text=text,
        **form,
    )


def add_entry(db: Session, p: Participant, form: EntryForm, now_ms: int) -> tuple[Entry, bool]:
    """Store the entry once: the same key again returns the stored entry (``False``). The
    database's unique (participant, key) decides, so two uploads racing store one row."""
    existing = db.scalars(
        select(Entry).where(Entry.participant_pk == p.pk, Entry.idem_key == form.idem_key)
    ).first()
    if existing is not None:
        return existing, False
    if p.status != ParticipantStatus.ACTIVE.value:
        raise BadgeError(
            N_("The journal opens when the mentor activates the participant."), "entry"
        )
    if form.direction == "work" and p.level != "gold":
        raise BadgeError(N_("Work experience belongs to the gold level."), "direction")
    listed = True
    if form.book_title is not None:
        from server.badges.models import Book

        listed = (
            db.scalars(
                select(Book.pk).where(
                    Book.section == form.book_section, Book.title_key == title_key(form.book_title)
                )
            ).first()
            is not None
        )
    entry = Entry(
        participant_pk=p.pk,
        idem_key=form.idem_key,
        direction=form.direction,
        entry_date=form.entry_date,
        written_at_ms=form.written_at_ms,
        received_at_ms=now_ms,
        hours=form.hours,
        days=form.days,
        book_title=form.book_title,
        book_section=form.book_section,
        book_listed=listed,
        text=form.text,
        employer_confirmation=form.employer_confirmation,
        status=EntryStatus.PENDING.value,
    )
    if len(form.text.split()) >= ESSAY_MIN_WORDS:
        entry.essay_signature = integrity.essay_signature(form.text)
        entry.integrity_note = essay_note(db, p, form.text)
    try:
        with db.begin_nested():
            db.add(entry)
    except IntegrityError:
        again = db.scalars(
            select(Entry).where(Entry.participant_pk == p.pk, Entry.idem_key == form.idem_key)
        ).one()
        return again, False
    return entry, True


ESSAY_MIN_WORDS = 20  # shorter texts (a line of a weekly report) are not compared
ESSAYS_COMPARED = 20_000  # the most recent essays of other participants


def essay_note(db: Session, p: Participant, text: str) -> str:
    """A suspected copy of another participant's earlier essay, named for the mentor (the
    entry is flagged, never rejected)."""
    earlier = [
        (str(pk), bytes(sig))
        for pk, sig in db.execute(
            select(Entry.pk, Entry.essay_signature)
            .where(Entry.participant_pk != p.pk, Entry.essay_signature.is_not(None))
            .order_by(Entry.pk.desc())
            .limit(ESSAYS_COMPARED)
        )
        if sig is not None
    ]
    found = integrity.suspected_copies(text, earlier)
    if not found:
        return ""
    return f"similar to entry {found[0].key} ({round(found[0].similarity * 100)} %)"


MAX_MEDIA_BYTES = 900_000
MEDIA_TYPES = {"image/jpeg", "image/png", "video/mp4"}


def add_media(
    db: Session, who: Principal, p: Participant, e: Entry, content_type: str, data: bytes
) -> Media:
    """A photo (perceptual hash compared with every earlier photo of the platform) or a short
    video of the participant's own entry; a reused photo is flagged, never rejected."""
    if p.user_pk != who.user_pk or e.participant_pk != p.pk:
        raise BadgeError(N_("Only the participant adds media to their entries."), "file")
    if content_type not in MEDIA_TYPES:
        raise BadgeError(N_("A photo (JPEG, PNG) or a short MP4 video."), "file")
    if not data or len(data) > MAX_MEDIA_BYTES:
        raise BadgeError(N_("The file is empty or larger than 900 KB."), "file")
    phash = None
    if content_type.startswith("image/"):
        try:
            phash = integrity.media_hash(data)
        except integrity.IntegrityError as err:
            raise BadgeError(N_("The image cannot be read."), "file") from err
        earlier = [
            (str(ep), h)
            for ep, h in db.execute(
                select(Media.entry_pk, Media.phash).where(
                    Media.phash.is_not(None), Media.entry_pk != e.pk
                )
            )
            if h is not None
        ]
        found = integrity.reused_media(phash, earlier)
        if found:
            e.integrity_note = f"photo like entry {found[0].key} ({found[0].distance} bits)"[:300]
    m = Media(
        entry_pk=e.pk,
        content_type=content_type,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash,
    )
    db.add(m)
    db.flush()
    return m


def entries_of(db: Session, p: Participant) -> list[Entry]:
    return list(
        db.scalars(
            select(Entry)
            .where(Entry.participant_pk == p.pk)
            .order_by(Entry.entry_date.desc(), Entry.pk.desc())
        )
    )


ACTIONS = {
    "confirm": EntryStatus.CONFIRMED,
    "reject": EntryStatus.REJECTED,
    "task": EntryStatus.EXTRA_TASK,
}


def decide_entry(
    db: Session, who: Principal, e: Entry, action: str, note: str, now_ms: int
) -> None:
    """The supervisor confirms, rejects (with a reason) or sets an extra task. Confirming a
    book that is on no approved list is the mentor's approval of that book."""
    p = db.get_one(Participant, e.participant_pk)
    if supervisor_of(db, who, p) is None:
        raise BadgeError(N_("Only the participant's mentor decides their entries."), "entry")
    if action not in ACTIONS:
        raise BadgeError(N_("Unknown decision."), "action")
    note = _clean(note, "note", 500)
    if action in ("reject", "task") and not note:
        raise BadgeError(N_("Give the reason or the task."), "note")
    new = ACTIONS[action]
    db.add(
        Decision(
            entry_pk=e.pk,
            actor_user_pk=who.user_pk,
            actor_kind="mentor",
            old_status=e.status,
            new_status=new.value,
            note=note,
            at_ms=now_ms,
        )
    )
    e.status = new.value
    e.reason = note if action == "reject" else ""
    e.extra_task = note if action == "task" else ""
    e.decided_by = who.user_pk
    e.decided_at_ms = now_ms
    audit(db, who, "decide", "badge_entry", summary=f"entry {e.pk}: {new.value}")


def overturn(db: Session, who: Principal, e: Entry, status: str, note: str, now_ms: int) -> None:
    """An expert (or coordinator, operator) replaces the mentor's decision; audited."""
    p = db.get_one(Participant, e.participant_pk)
    if not may_review(db, who, p):
        raise BadgeError(N_("Only the expert over the mentor may overturn."), "entry")
    if status not in (EntryStatus.CONFIRMED.value, EntryStatus.REJECTED.value):
        raise BadgeError(N_("Unknown decision."), "status")
    note = _clean(note, "note", 500)
    if not note:
        raise BadgeError(N_("Give the reason of the overturn."), "note")
    if e.status == status:
        raise BadgeError(N_("The entry already has this status."), "status")
    db.add(
        Decision(
            entry_pk=e.pk,
            actor_user_pk=who.user_pk,
            actor_kind="review",
            old_status=e.status,
            new_status=status,
            note=note,
            at_ms=now_ms,
        )
    )
    e.status = status
    e.reason = note if status == EntryStatus.REJECTED.value else ""
    e.decided_by = who.user_pk
    e.decided_at_ms = now_ms
    audit(db, who, "overturn", "badge_entry", summary=f"entry {e.pk}: {status}")


def decisions_of(db: Session, e: Entry) -> list[Decision]:
    return list(db.scalars(select(Decision).where(Decision.entry_pk == e.pk).order_by(Decision.pk)))


def reassign(
    db: Session, who: Principal, p: Participant, to: Staff, reason: str, now_ms: int
) -> None:
    """Hand the participant to another supervisor while theirs is absent (audited)."""
    if not may_review(db, who, p):
        raise BadgeError(N_("Only the expert or the coordinator reassigns."), "participant")
    if to.kind == StaffKind.CENTRE_HEAD.value or to.absent:
        raise BadgeError(N_("Choose a present mentor, expert or coordinator."), "to")
    reason = _clean(reason, "reason", 300)
    if not reason:
        raise BadgeError(N_("Give the reason of the reassignment."), "reason")
    db.add(
        Reassignment(
            participant_pk=p.pk,
            from_staff_pk=p.mentor_pk,
            to_staff_pk=to.pk,
            by_user_pk=who.user_pk,
            reason=reason,
            at_ms=now_ms,
        )
    )
    audit(db, who, "reassign", "badge_participant", summary=f"participant {p.pk} to staff {to.pk}")
    p.mentor_pk = to.pk


def set_absent(db: Session, who: Principal, s: Staff, absent: bool) -> None:
    """An expert marks a mentor they oversee absent (or back); a coordinator anyone of their
    region; the operator anyone. An absent mentor is proposed to no new participant; their
    participants are handed over with ``reassign``."""
    allowed = Role.OPERATOR in who.roles or any(
        g.role is Role.BADGE_COORDINATOR and g.region_id == s.region_id for g in who.grants
    )
    for mine in staff_of(db, who.user_pk, StaffKind.EXPERT):
        allowed = allowed or s.expert_pk == mine.pk
    if not allowed:
        raise BadgeError(
            N_("Only the expert over the mentor or the coordinator marks an absence."), "staff"
        )
    s.absent = absent
    audit(db, who, "absent" if absent else "present", "badge_staff", summary=f"staff {s.pk}")


def set_requirements(
    db: Session, who: Principal, p: Participant, text: str, basis: str, now_ms: int
) -> None:
    """The operator's individual requirements (the rules' ``Requirements.as_dict`` JSON) with
    their basis; the evaluator uses them instead of the level's numbers."""
    basis = _clean(basis, "basis", 300)
    if not basis:
        raise BadgeError(N_("Give the basis (document)."), "basis")
    try:
        data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except ValueError as err:
        raise BadgeError(N_("The requirements must be JSON."), "requirements") from err
    try:
        data = rules.requirements_from_mapping(data).as_dict()
    except rules.JournalError as err:
        raise BadgeError(
            N_("The requirements do not fit the rules' JSON form."),
            "requirements",
        ) from err
    row = db.scalars(select(Requirement).where(Requirement.participant_pk == p.pk)).first()
    if row is None:
        row = Requirement(
            participant_pk=p.pk,
            requirements="",
            basis="",
            recorded_by=who.user_pk,
            recorded_at_ms=now_ms,
        )
        db.add(row)
    row.requirements = json.dumps(data, sort_keys=True)
    row.basis = basis
    row.recorded_by = who.user_pk
    row.recorded_at_ms = now_ms
    audit(db, who, "record", "badge_requirements", summary=f"participant {p.pk}")


# ------------------------------------------------------------------------------ ratings


def journal_doc(db: Session, p: Participant, today: dt.date) -> dict[str, Any]:
    """The evaluator's input (the ``qaqpa server badges evaluate`` format) from the tables."""
    plan: dict[str, Any] = {
        "heritage": {"mode": "book"}
        if p.heritage_mode == "book"
        else {"mode": "weeks", "months": p.heritage_months or HERITAGE_MONTHS[p.level][0]}
    }
    if p.level != "bronze":
        plan["long"] = p.plan_long or "sport"
    elif p.plan_long:
        plan["long"] = p.plan_long
    entries: list[dict[str, Any]] = []
    for e in sorted(entries_of(db, p), key=lambda x: (x.entry_date, x.pk)):
        status = e.status if e.status != EntryStatus.EXTRA_TASK.value else "pending"
        item: dict[str, Any] = {
            "direction": e.direction,
            "date": e.entry_date.isoformat(),
            "status": status,
        }
        if e.book_title is not None:
            item |= {"book": e.book_title, "section": e.book_section}
        elif e.days is not None:
            item["days"] = e.days
        else:
            item["hours"] = float(e.hours or 0)
        entries.append(item)
    return {
        "participant": f"p-{p.pk}",
        "birth_date": p.birth_date.isoformat(),
        "level": p.level,
        "start": (p.start or today).isoformat(),
        "plan": plan,
        "entries": entries,
    }


def evaluation(db: Session, p: Participant, today: dt.date) -> dict[str, Any]:
    """The rules' report; an individual set of requirements replaces the level's numbers."""
    req = db.scalars(select(Requirement).where(Requirement.participant_pk == p.pk)).first()
    individual = json.loads(req.requirements) if req is not None else None
    return scoring.evaluate(journal_doc(db, p, today), today, individual)


def rate_mentor(db: Session, who: Principal, p: Participant, score: int, today: dt.date) -> None:
    """One anonymous rating per participant and mentor: the score is stored without them."""
    if p.user_pk != who.user_pk or p.mentor_pk is None:
        raise BadgeError(N_("Only a participant with a mentor rates them."), "score")
    if not 1 <= score <= 5:
        raise BadgeError(N_("The score is 1 to 5."), "score")
    try:
        with db.begin_nested():
            db.add(RatingGiven(participant_pk=p.pk, mentor_pk=p.mentor_pk))
    except IntegrityError as err:
        raise BadgeError(N_("You have already rated your mentor."), "score") from err
    db.add(MentorRating(mentor_pk=p.mentor_pk, score=score, day=today))


MIN_RATINGS = 5


def mentor_average(db: Session, mentor_pk: int) -> float | None:
    """The mean score, only over at least 5 ratings (fewer could identify a rater)."""
    n, total = db.execute(
        select(func.count(MentorRating.pk), func.sum(MentorRating.score)).where(
            MentorRating.mentor_pk == mentor_pk
        )
    ).one()
    if n < MIN_RATINGS:
        return None
    return round(float(total) / n, 2)


# ------------------------------------------------------------------------------ awards


class DuplicateAward(BadgeError):
    pass


def propose(db: Session, who: Principal, p: Participant, today: dt.date, now_ms: int) -> Proposal:
    """The centre head proposes a candidate whose level is complete."""
    if not evaluation(db, p, today).get("complete"):
        raise BadgeError(N_("The level is not complete."), "participant")
    if db.scalars(
        select(Award.pk).where(Award.participant_pk == p.pk, Award.level == p.level)
    ).first():
        raise DuplicateAward(N_("The participant already holds this level."), "participant")
    pr = Proposal(
        participant_pk=p.pk, level=p.level, proposed_by=who.user_pk, proposed_at_ms=now_ms
    )
    db.add(pr)
    db.flush()
    audit(db, who, "propose", "badge_award", summary=f"participant {p.pk} {p.level}")
    return pr


def set_commission(
    db: Session, who: Principal, pr: Proposal, member_pks: list[int], slot: str, link: str
) -> None:
    if pr.decision is not None:
        raise BadgeError(N_("The commission has decided."), "proposal")
    if not member_pks:
        raise BadgeError(N_("Name the commission's members."), "members")
    slot = _clean(slot, "interview_at", 32)
    try:
        dt.datetime.strptime(slot, "%Y-%m-%d %H:%M")
    except ValueError as err:
        raise BadgeError(N_("The interview time is YYYY-MM-DD HH:MM."), "interview_at") from err
    pr.interview_at = slot
    pr.interview_link = _clean(link, "interview_link", 300)
    have = {
        m.user_pk
        for m in db.scalars(select(CommissionMember).where(CommissionMember.proposal_pk == pr.pk))
    }
    from server.accounts.models import User

    for u in member_pks:
        if db.get(User, u) is None:
            raise BadgeError(N_("Unknown member."), "members")
        if u not in have:
            db.add(CommissionMember(proposal_pk=pr.pk, user_pk=u))
    db.flush()


def vote(db: Session, who: Principal, pr: Proposal, choice: str, now_ms: int) -> None:
    if pr.decision is not None:
        raise BadgeError(N_("The commission has decided."), "proposal")
    if choice not in ("for", "against"):
        raise BadgeError(N_("Vote for or against."), "vote")
    m = db.scalars(
        select(CommissionMember).where(
            CommissionMember.proposal_pk == pr.pk, CommissionMember.user_pk == who.user_pk
        )
    ).first()
    if m is None:
        raise BadgeError(N_("Only a member of the commission votes."), "vote")
    m.vote = choice
    m.voted_at_ms = now_ms


def members_of(db: Session, pr: Proposal) -> list[CommissionMember]:
    return list(
        db.scalars(
            select(CommissionMember)
            .where(CommissionMember.proposal_pk == pr.pk)
            .order_by(CommissionMember.pk)
        )
    )


def decide_proposal(
    db: Session, who: Principal, pr: Proposal, today: dt.date, now_ms: int
) -> Award | None:
    """Every member has voted: a majority for awards the level (one award per level: the
    database refuses a second one), otherwise declined."""
    if pr.decision is not None:
        raise BadgeError(N_("The commission has decided."), "proposal")
    members = members_of(db, pr)
    if not members or any(m.vote is None for m in members):
        raise BadgeError(N_("Every member must vote first."), "proposal")
    yes = sum(m.vote == "for" for m in members)
    pr.decided_at_ms = now_ms
    if yes * 2 <= len(members):
        pr.decision = "decline"
        audit(db, who, "decide", "badge_award", summary=f"proposal {pr.pk}: declined")
        return None
    pr.decision = "award"
    award = award_level(db, pr.participant_pk, pr.level, today, proposal_pk=pr.pk)
    audit(db, who, "decide", "badge_award", summary=f"proposal {pr.pk}: awarded")
    return award


def award_level(
    db: Session, participant_pk: int, level: str, today: dt.date, *, proposal_pk: int | None = None
) -> Award:
    """Insert the award; the unique (participant, level) constraint refuses a second one."""
    award = Award(
        participant_pk=participant_pk, level=level, awarded_on=today, proposal_pk=proposal_pk
    )
    try:
        with db.begin_nested():
            db.add(award)
    except IntegrityError as err:
        raise DuplicateAward(
            N_("The participant already holds this level."), "participant"
        ) from err
    return award
