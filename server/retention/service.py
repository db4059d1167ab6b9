"""Erase a student's personal data at the centre, and the retention job that finds who is due.

``erase_students`` runs in the caller's transaction (the withdrawal of data consent, or a
retention run) and leaves of each student the row reduced to school, class and social categories
under a random token, with the events the budget needs (``rules.KEPT_KINDS``) pseudonymised to
that token, so the monthly meal statements add up before and after. Everything that names the
child or the family goes: names, birth date, guardians and their contacts, the parent's account
when it has no other child, consents' and categories' signatories and documents, notification
texts and preferences, canteen limits (allergies), import previews, and the same fields in the
school's downlink log. Each erasure is audited with counts, never values.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import column, delete, func, select, table, update
from sqlalchemy.orm import Session

from protocol.messages import Change, StudentRemove
from server.accounts.access import Principal
from server.accounts.models import Invitation, RoleGrant, User, WebSession
from server.audit.service import audit
from server.cards.models import Card, CardStatus
from server.cards.service import unbind_change
from server.models import ChangeLogCheckpoint, ChangeLogEntry, School, StoredEvent
from server.notify.models import NotifyPreference, OutboxMessage
from server.people.models import Consent, Guardian, Student, StudentGuardian
from server.retention import rules
from server.retention.models import Erasure, InactiveSince, RetentionSetting
from server.sync.changelog import append_changes, load_state

log = logging.getLogger(__name__)

PREVIEW_TTL_MS = 3_600_000
# The consents module's table of social categories, named here without importing that module
# (it calls this one when data consent is withdrawn).
_categories = table("student_categories", column("student_pk"), column("document"))
# The canteen's ledger entries and parents' limits (the canteen module imports the card fees,
# which import the cards module, which imports the consents module, which calls this one).
_entries = table("canteen_entries", column("student_pk"), column("student_ref"), column("reason"))
_limits = table("canteen_limits", column("student_pk"))
# The daily roll-ups' presence set names the pupil by ref (the counts beside it name nobody).
_presence = table("rollup_presence", column("school_id"), column("student_id"))
# The roster's previews of uploads (the roster module imports the consents module too).
_previews = table("roster_import_previews", column("school_id"), column("created_at_ms"))
CONSENT_WITHDRAWN = "consent_withdrawn"
RETENTION_PERIOD = "retention_period"


def _n(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _unlink_from_edges(session: Session, school: str, students: list[Student], now: int) -> int:
    """Cards still bound and students still on the edges leave them first (a leaver whose
    cards the roster left bound); returns the cards unbound."""
    state = load_state(session, school)
    changes: list[Change] = []
    unbound = 0
    for st in students:
        for card in session.scalars(
            select(Card).where(Card.student_pk == st.pk, Card.status != CardStatus.UNBOUND.value)
        ):
            card.status = CardStatus.UNBOUND.value
            card.unbound_at_ms = now
            changes.append(unbind_change(session, card))  # by record once numbers moved
            unbound += 1
        if st.ref in state.students:
            changes.append(StudentRemove(student_id=st.ref))
    if changes:
        append_changes(session, school, changes)
    return unbound


def _erase_guardians(session: Session, student_pk: int, counts: Counter[str]) -> None:
    links = list(
        session.scalars(select(StudentGuardian).where(StudentGuardian.student_pk == student_pk))
    )
    for link in links:
        session.delete(link)
    session.flush()
    counts["student_guardians"] += len(links)
    for link in links:
        still = session.execute(
            select(func.count())
            .select_from(StudentGuardian)
            .where(StudentGuardian.guardian_pk == link.guardian_pk)
        ).scalar_one()
        if still:
            continue  # the parent of another child at a school: kept for that child
        g = session.get(Guardian, link.guardian_pk)
        if g is None:
            continue
        counts["notify_outbox"] += _n(
            session.execute(delete(OutboxMessage).where(OutboxMessage.guardian_pk == g.pk))
        )
        counts["notify_preferences"] += _n(
            session.execute(delete(NotifyPreference).where(NotifyPreference.guardian_pk == g.pk))
        )
        user_pk = g.user_pk
        session.delete(g)
        session.flush()
        counts["guardians"] += 1
        if user_pk is not None:
            _erase_parent_account(session, user_pk, counts)


def _erase_parent_account(session: Session, user_pk: int, counts: Counter[str]) -> None:
    """A parent's account with no child left: closed, its name and contacts gone. An account
    that also holds a staff role keeps its person (it is a staff member's)."""
    if session.execute(
        select(func.count()).select_from(Guardian).where(Guardian.user_pk == user_pk)
    ).scalar_one():
        return
    roles = set(session.scalars(select(RoleGrant.role).where(RoleGrant.user_pk == user_pk)))
    session.execute(
        delete(RoleGrant).where(RoleGrant.user_pk == user_pk, RoleGrant.role == "parent")
    )
    if roles - {"parent"}:
        return
    u = session.get(User, user_pk)
    if u is None:
        return
    u.login = f"erased-{u.pk}"
    u.full_name = ""
    u.email = ""
    u.phone = ""
    u.password_hash = None
    u.active = False
    session.execute(delete(WebSession).where(WebSession.user_pk == user_pk))
    session.execute(delete(Invitation).where(Invitation.user_pk == user_pk))
    counts["parent_accounts"] += 1


def _erase_one(session: Session, st: Student, token: str, now: int, counts: Counter[str]) -> None:
    old = st.ref
    # events: the kept kinds under the token, the others as tombstones
    for ev in session.scalars(
        select(StoredEvent).where(
            StoredEvent.student_id == old, StoredEvent.school_id == st.school_id
        )
    ):
        if ev.kind in rules.KEPT_KINDS:
            ev.payload = rules.pseudonymised(ev.payload, token)
            ev.student_id = token
            counts["events_pseudonymised"] += 1
        else:
            ev.payload = rules.tombstone(ev.payload)
            ev.student_id = None
            counts["events_tombstoned"] += 1
    counts["rollup_presence"] += _n(
        session.execute(
            delete(_presence).where(
                _presence.c.school_id == st.school_id, _presence.c.student_id == old
            )
        )
    )
    counts["canteen_entries"] += _n(
        session.execute(
            update(_entries)
            .where(_entries.c.student_pk == st.pk)
            .values(student_ref=token, reason="")
        )
    )
    counts["notify_outbox"] += _n(
        session.execute(delete(OutboxMessage).where(OutboxMessage.student_pk == st.pk))
    )
    counts["notify_preferences"] += _n(
        session.execute(delete(NotifyPreference).where(NotifyPreference.student_pk == st.pk))
    )
    counts["canteen_limits"] += _n(
        session.execute(delete(_limits).where(_limits.c.student_pk == st.pk))
    )
    counts["consents"] += _n(
        session.execute(
            update(Consent).where(Consent.student_pk == st.pk).values(given_by="", document="")
        )
    )
    counts["student_categories"] += _n(
        session.execute(
            update(_categories).where(_categories.c.student_pk == st.pk).values(document="")
        )
    )
    for card in session.scalars(select(Card).where(Card.student_pk == st.pk)):
        card.credential = f"ERASED:{card.pk}"  # the record (status, fee, dates) stays
        counts["cards"] += 1
    _erase_guardians(session, st.pk, counts)
    session.execute(delete(InactiveSince).where(InactiveSince.student_pk == st.pk))
    st.ref = token
    st.surname = ""
    st.given_name = ""
    st.patronymic = ""
    st.birth_date = None
    st.active = False
    st.updated_at_ms = now


@dataclass(slots=True)
class Erased:
    student_pks: list[int] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


def erase_students(
    session: Session,
    who: Principal | None,
    school: str,
    students: list[Student],
    reason: str,
    now: int,
) -> Erased:
    """Erase the personal data of these students of one school (caller commits)."""
    out = Erased()
    todo = [st for st in students if st.school_id == school and session.get(Erasure, st.pk) is None]
    if not todo:
        return out
    out.counts["cards_unbound"] += _unlink_from_edges(session, school, todo, now)
    refs: dict[str, str] = {}
    for st in todo:
        before = Counter(out.counts)
        token = rules.new_token()
        refs[st.ref] = token
        _erase_one(session, st, token, now, out.counts)
        mine = out.counts - before
        session.add(
            Erasure(
                student_pk=st.pk,
                school_id=school,
                reason=reason,
                erased_at_ms=now,
                counts=", ".join(f"{k} {v}" for k, v in sorted(mine.items()))[:500],
            )
        )
        audit(
            session,
            who,
            "erase",
            "student",
            student_pk=st.pk,
            school_id=school,
            summary=(
                f"personal data erased ({reason}): names, birth date, guardians, contacts, "
                f"consent signatories; {', '.join(f'{k} {v}' for k, v in sorted(mine.items()))}"
            ),
        )
        out.student_pks.append(st.pk)
    session.flush()
    # the school's downlink log: names, signatories and documents of these students go
    for entry in session.scalars(select(ChangeLogEntry).where(ChangeLogEntry.school_id == school)):
        changes, n = rules.scrub_changes(entry.changes, refs)
        if n:
            entry.changes = changes
            out.counts["change_log_changes"] += n
    checkpoint = session.get(ChangeLogCheckpoint, school)  # the compacted state, likewise
    if checkpoint is not None:
        changes, n = rules.scrub_changes(checkpoint.changes, refs)
        if n:
            checkpoint.changes = changes
    # previews of roster uploads past their hour (they hold children's rows)
    out.counts["import_previews"] += _n(
        session.execute(
            delete(_previews).where(
                _previews.c.school_id == school,
                _previews.c.created_at_ms < now - PREVIEW_TTL_MS,
            )
        )
    )
    session.flush()
    log.info("retention: %d student(s) of %s erased (%s)", len(out.student_pks), school, reason)
    return out


# ---------------------------------------------------------------------------- the job


def days_for(session: Session, region_id: str | None) -> int:
    if region_id is None:
        return rules.DEFAULT_DAYS_AFTER_LEAVING
    row = session.get(RetentionSetting, region_id)
    return row.days_after_leaving if row is not None else rules.DEFAULT_DAYS_AFTER_LEAVING


def set_days(
    session: Session, who: Principal | None, region_id: str, days: int, basis: str, now: int
) -> RetentionSetting:
    rules.check_days(days)
    basis = " ".join(basis.split())
    if len(basis) > 300:
        raise rules.RetentionError("basis", "At most 300 characters.")
    row = session.get(RetentionSetting, region_id)
    if row is None:
        row = RetentionSetting(region_id=region_id, days_after_leaving=days, updated_at_ms=now)
        session.add(row)
    row.days_after_leaving = days
    row.basis = basis
    row.updated_at_ms = now
    row.updated_by = who.user_pk if who is not None else None
    audit(session, who, "change", "retention", summary=f"region {region_id}: {days} day(s)")
    session.flush()
    return row


@dataclass(slots=True)
class RunReport:
    started: int = 0  # inactive students whose retention clock started in this run
    restarted: int = 0  # students active again: their clock was dropped
    waiting: int = 0  # inactive, not yet due
    due: dict[str, list[int]] = field(default_factory=dict)  # school -> student pks
    counts: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    @property
    def due_total(self) -> int:
        return sum(len(v) for v in self.due.values())


def run(session: Session, now: int, *, dry_run: bool = False) -> RunReport:
    """One retention run: start the clock of newly inactive students, drop it for students
    active again, erase those past their region's period. ``dry_run``: count, change nothing
    (the caller rolls back)."""
    rep = RunReport(dry_run=dry_run)
    erased = select(Erasure.student_pk)
    inactive = list(
        session.execute(
            select(Student.pk, Student.school_id, School.region_id, InactiveSince.since_ms)
            .join(School, School.id == Student.school_id)
            .outerjoin(InactiveSince, InactiveSince.student_pk == Student.pk)
            .where(Student.active.is_(False), Student.pk.not_in(erased))
        )
    )
    active_again = session.execute(
        select(InactiveSince.student_pk)
        .join(Student, Student.pk == InactiveSince.student_pk)
        .where(Student.active.is_(True))
    ).scalars()
    gone = list(active_again)
    rep.restarted = len(gone)
    if gone and not dry_run:
        session.execute(delete(InactiveSince).where(InactiveSince.student_pk.in_(gone)))
    periods: dict[str | None, int] = {}
    for pk, school, region, since in inactive:
        if since is None:
            rep.started += 1
            if not dry_run:
                session.add(InactiveSince(student_pk=pk, since_ms=now))
            since = now
        if region not in periods:
            periods[region] = days_for(session, region)
        if rules.is_due(since, periods[region], now):
            rep.due.setdefault(school, []).append(pk)
        else:
            rep.waiting += 1
    if dry_run:
        return rep
    for school, pks in sorted(rep.due.items()):
        students = list(session.scalars(select(Student).where(Student.pk.in_(pks))))
        done = erase_students(session, None, school, students, RETENTION_PERIOD, now)
        rep.counts.update(done.counts)
    audit(
        session,
        None,
        "erase",
        "retention",
        summary=(
            f"retention run: {rep.due_total} erased, {rep.started} started, "
            f"{rep.waiting} waiting, {rep.restarted} active again"
        ),
    )
    session.flush()
    return rep


def is_erased(session: Session, student_pk: int) -> bool:
    return session.get(Erasure, student_pk) is not None
