"""Retention end to end on PostgreSQL: data consent withdrawn in the console and a leaver past
the region's period in ``qaqpa server retention run``. Counted: every table before and after,
the month's meal statement (unchanged), and no name, contact, document or old id left anywhere
(every table dumped and searched)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind, MealPeriodDoc, PolicyDoc, PolicySet, ShiftDoc
from server.accounts.access import Grant, Role
from server.accounts.models import User
from server.accounts.service import create_user
from server.audit.models import AuditEntry
from server.canteen.models import LedgerEntry, ParentLimits
from server.clock import now_ms
from server.consents.models import StudentCategory
from server.models import Device, IngestProgress, StoredEvent
from server.notify.models import NotifyPreference, OutboxMessage
from server.people.models import Consent, Guardian, Student, StudentGuardian
from server.people.service import has_consent
from server.reports import service as reports
from server.retention import rules
from server.retention import service as retention
from server.retention.models import Erasure, InactiveSince
from server.schema import Base
from server.sync.changelog import append_changes
from tests.support.consents import give
from tests.support.console import World, add_student, password_of

ZONE = ZoneInfo("Asia/Almaty")
MONTH = dt.date(2026, 11, 1)
DAY_MS = 86_400_000

# Everything personal the two children and their families carry; none may survive.
PERSONAL = [
    "Сәрсенбаева",
    "Айгерім",
    "Жақыпов",
    "Нұрсұлтан",
    "Гүлнар Сәрсенбаева",
    "+77015550101",
    "gulnar@example.kz",
    "Бекзат Жақыпов",
    "+77015550202",
    "Өтініш №77",
    "Анықтама №5",
    "ret-aigerim",
    "ret-nursultan",
    "2015-03-08",
    "2013-11-30",
]


def at(day: int, hhmm: str) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    return int(dt.datetime(2026, 11, day, h, m, tzinfo=ZONE).timestamp() * 1000)


def counts(db: Session) -> dict[str, int]:
    db.expire_all()
    return {
        t.name: db.execute(select(func.count()).select_from(t)).scalar_one()
        for t in Base.metadata.sorted_tables
    }


def dump(db: Session) -> str:
    db.expire_all()
    return "\n".join(
        " | ".join(str(v) for v in row)
        for t in Base.metadata.sorted_tables
        for row in db.execute(select(t))
    )


def statement(db: Session) -> dict[str, Any]:
    m = reports.meal_month(db, "S1", MONTH)
    return {
        "free": dict(m.report.free),
        "paid": dict(m.report.paid),
        "paid_tiyn": dict(m.report.paid_tiyn),
        "free_total": m.report.free_total(),
        "columns": m.categories,
    }


@pytest.fixture
def school(db: Session, world: World) -> dict[str, Any]:
    """Two children with guardians, consents, a category, cards-free history: meals, entries,
    a notification, limits, a ledger entry; a third child whose data must stay."""
    append_changes(
        db,
        "S1",
        [
            PolicySet(
                policy=PolicyDoc(
                    timezone="Asia/Almaty",
                    free_meal_grades=[1, 2, 3, 4],
                    free_meal_categories=["large_family", "orphan"],
                    shifts=[
                        ShiftDoc(number=1, entry_from="07:00", entry_to="12:00"),
                        ShiftDoc(number=2, entry_from="12:00", entry_to="18:00"),
                    ],
                    meal_periods=[
                        MealPeriodDoc(name="lunch", shifts=[1, 2], from_="12:00", to="13:00")
                    ],
                )
            )
        ],
    )
    a = add_student(db, "S1", world.classes["S1/3A"], "ret-aigerim", "Сәрсенбаева", "Айгерім")
    a.birth_date = dt.date(2015, 3, 8)
    b = add_student(db, "S1", world.classes["S1/7B"], "ret-nursultan", "Жақыпов", "Нұрсұлтан")
    b.birth_date = dt.date(2013, 11, 30)
    db.add(
        StudentCategory(
            student_pk=b.pk,
            school_id="S1",
            code="orphan",
            document="Анықтама №5",
            valid_from=dt.date(2026, 9, 1),
            valid_to=dt.date(2027, 5, 31),
            recorded_at_ms=now_ms(),
        )
    )
    parent = create_user(
        db,
        "gulnar",
        "Гүлнар Сәрсенбаева",
        [Grant(Role.PARENT)],
        password=password_of("gulnar"),
    )
    parent.email = "gulnar@example.kz"
    parent.phone = "+77015550101"
    ga = Guardian(
        full_name="Гүлнар Сәрсенбаева",
        phone="+77015550101",
        email="gulnar@example.kz",
        user_pk=parent.pk,
    )
    gb = Guardian(full_name="Бекзат Жақыпов", phone="+77015550202")
    db.add_all([ga, gb])
    db.flush()
    db.add_all(
        [
            StudentGuardian(student_pk=a.pk, guardian_pk=ga.pk),
            StudentGuardian(student_pk=b.pk, guardian_pk=gb.pk),
            NotifyPreference(guardian_pk=ga.pk, student_pk=a.pk, subscriptions=[], updated_at_ms=0),
            ParentLimits(
                student_pk=a.pk, allergen_blocks=["nuts"], updated_at_ms=0, sync_version=0
            ),
        ]
    )
    db.commit()
    dev = Device(school_id="S1", device_id="s1-edge", created_at_ms=0)
    db.add(dev)
    db.flush()
    db.add(IngestProgress(device_pk=dev.pk, committed_through=0, gaps=[], updated_at_ms=0))
    seq = 0

    def event(kind: str, at_ms: int, **fields: Any) -> None:
        nonlocal seq
        seq += 1
        payload = {"seq": seq, "at_ms": at_ms, "terminal": "gate-1", "kind": kind, **fields}
        db.add(
            StoredEvent(
                device_pk=dev.pk,
                seq=seq,
                school_id="S1",
                at_ms=at_ms,
                kind=kind,
                terminal="gate-1",
                student_id=fields.get("student_id"),
                payload=payload,
                received_at_ms=at_ms,
            )
        )

    def meal(ref: str, day: int, meal: str, amount: int = 0) -> None:
        event(
            "meal_served",
            at(day, "12:10"),
            student_id=ref,
            period="lunch",
            local_date=f"2026-11-{day:02d}",
            meal=meal,
            amount_tiyn=amount,
        )

    for day in (18, 19, 20):
        event("entry", at(day, "07:50"), student_id="ret-aigerim")
        meal("ret-aigerim", day, "free")
        event("entry", at(day, "12:00"), student_id="ret-nursultan")
        meal("ret-nursultan", day, "free")  # an orphan in grade 7
        meal("s1-7b-2", day, "paid", 45_000)  # stays as it is
    meal("ret-nursultan", 23, "paid", 52_550)
    event("library_visit", at(20, "14:00"), student_id="ret-nursultan")
    db.add(
        OutboxMessage(
            device_pk=dev.pk,
            seq=1,
            guardian_pk=ga.pk,
            channel="sms",
            student_pk=a.pk,
            school_id="S1",
            kind="entry",
            lang="kk",
            body="Айгерім мектепке 07:50 келді",
            event_at_ms=at(18, "07:50"),
            created_at_ms=at(18, "07:50"),
            due_at_ms=at(18, "07:50"),
        )
    )
    db.add(
        LedgerEntry(
            school_id="S1",
            student_pk=b.pk,
            student_ref="ret-nursultan",
            kind="topup",
            amount_tiyn=100_000,
            at_ms=at(17, "09:00"),
            external_ref="provider:tx-1",
            reason="for Жақыпов Нұрсұлтан",
        )
    )
    db.commit()
    return {"a": a.pk, "b": b.pk, "ga": ga.pk, "gb": gb.pk, "parent": parent.pk}


def test_withdrawal_and_retention_erase_people_and_keep_the_budget(
    make_browser, db: Session, world: World, school: dict[str, Any]
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    for pk, who in ((school["a"], "Гүлнар Сәрсенбаева"), (school["b"], "Бекзат Жақыпов")):
        r = give(admin, pk, given_by=who, document="Өтініш №77")
        assert r.status_code == 200, r.text
    before_statement = statement(db)
    assert before_statement["free_total"] == 6
    # the orphan's meals are counted under "orphan" while the child is on the edges
    assert sum(n for (_d, _p, c), n in before_statement["free"].items() if c == "orphan") == 3
    before = counts(db)
    text = dump(db)
    assert [p for p in PERSONAL if p not in text] == []

    # 1. The mother withdraws data consent: erased at once, in the same transaction.
    r = give(admin, school["a"], decision="withdrawn", given_by="Гүлнар Сәрсенбаева")
    assert r.status_code == 200, r.text
    assert "personal data was erased" in r.text or "деректері" in r.text
    db.expire_all()
    assert db.get(Erasure, school["a"]) is not None
    # a consent given again for an erased row is refused, and records nothing
    n_consents = counts(db)["consents"]
    r = give(admin, school["a"])
    assert r.status_code == 400 and counts(db)["consents"] == n_consents

    # 2. Nursultan leaves (the roster's switch); region R1 keeps data 30 days after leaving.
    st = db.get_one(Student, school["b"])
    st.active = False
    db.commit()
    now = now_ms()
    retention.set_days(db, None, "R1", 30, "region's order No. 1 (example)", now)
    db.commit()
    rep = retention.run(db, now, dry_run=True)
    assert rep.started == 1 and rep.due_total == 0
    db.rollback()
    rep = retention.run(db, now)
    db.commit()
    assert rep.started == 1 and rep.due_total == 0 and db.get(InactiveSince, school["b"])
    rep = retention.run(db, now + 29 * DAY_MS)
    db.commit()
    assert rep.due_total == 0 and rep.waiting >= 1
    rep = retention.run(db, now + 30 * DAY_MS, dry_run=True)
    db.rollback()
    assert rep.due == {"S1": [school["b"]]}
    assert db.get(Erasure, school["b"]) is None  # a dry run changes nothing
    rep = retention.run(db, now + 30 * DAY_MS)
    db.commit()
    assert rep.due == {"S1": [school["b"]]}

    # The statement is the same, line by line; only people went.
    assert statement(db) == before_statement
    after = counts(db)
    changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
    assert changed.pop("guardians") == (before["guardians"], before["guardians"] - 2)
    assert changed.pop("student_guardians") == (
        before["student_guardians"],
        before["student_guardians"] - 2,
    )
    assert changed.pop("notify_outbox") == (1, 0)
    assert changed.pop("notify_preferences") == (1, 0)
    assert changed.pop("canteen_limits") == (1, 0)
    assert changed.pop("retention_erasures") == (0, 2)
    assert changed.pop("role_grants") == (before["role_grants"], before["role_grants"] - 1)
    assert changed.pop("retention_settings") == (0, 1)
    assert changed.pop("consents")[1] == before["consents"] + 1  # the withdrawal itself
    assert changed.pop("audit_log")[1] > before["audit_log"]
    assert changed.pop("change_log")[1] > before["change_log"]  # student_remove etc.
    # nothing else changed its number of rows: students, events and money all stay
    assert changed == {}, changed
    for t in ("students", "events", "canteen_entries", "student_categories", "users"):
        assert after[t] == before[t]

    text = dump(db)
    left = [p for p in PERSONAL if p in text]
    assert left == [], left

    # what stays: the rows reduced to school, class, category; meals under tokens
    for key in ("a", "b"):
        s = db.get_one(Student, school[key])
        assert (s.surname, s.given_name, s.birth_date, s.active) == ("", "", None, False)
        assert s.ref.startswith("erased-")
    assert not has_consent(db, school["a"], ConsentKind.DATA)
    tokens = {db.get_one(Student, school[k]).ref for k in ("a", "b")}
    kinds = {
        (e.kind, e.student_id in tokens)
        for e in db.scalars(select(StoredEvent).where(StoredEvent.student_id.in_(tokens)))
    }
    assert kinds == {("meal_served", True)}
    tomb = db.scalars(select(StoredEvent).where(StoredEvent.kind == "entry")).all()
    assert all(e.student_id is None and e.payload.get("erased") for e in tomb)
    assert db.scalar(select(LedgerEntry.student_ref)) in tokens
    parent = db.get_one(User, school["parent"])
    assert (parent.active, parent.full_name, parent.email) == (False, "", "")
    assert (
        db.scalar(
            select(func.count())
            .select_from(Consent)
            .where(Consent.given_by != "")
            .where(Consent.student_pk.in_([school["a"], school["b"]]))
        )
        == 0
    )
    erasures = db.scalars(
        select(AuditEntry).where(AuditEntry.action == "erase", AuditEntry.subject == "student")
    ).all()
    assert {e.student_pk for e in erasures} == {school["a"], school["b"]}
    assert all("Айгерім" not in e.summary for e in erasures)
    # the other children are untouched
    assert db.get_one(Student, world.students["s1-3a-2"]).surname == "Surname2"


def test_rules() -> None:
    assert rules.is_due(0, 30, 30 * DAY_MS) and not rules.is_due(0, 30, 30 * DAY_MS - 1)
    with pytest.raises(rules.RetentionError):
        rules.check_days(-1)
    with pytest.raises(rules.RetentionError):
        rules.check_days(rules.MAX_DAYS + 1)
    t = rules.new_token()
    assert t != rules.new_token() and len(t) <= 64
    log = [
        {
            "op": "student_upsert",
            "student": {
                "id": "x1",
                "display_name": "A B",
                "consents": [{"given_by": "M", "document": "D"}],
            },
        },
        {"op": "student_upsert", "student": {"id": "x2", "display_name": "C D"}},
    ]
    out, n = rules.scrub_changes(log, {"x1": "erased-1"})
    assert n == 1 and out[1] == log[1]
    assert out[0]["student"] == {
        "id": "erased-1",
        "display_name": "",
        "consents": [{"given_by": "", "document": ""}],
    }
    assert rules.tombstone(
        {"kind": "entry", "seq": 3, "at_ms": 5, "terminal": "g", "student_id": "x"}
    ) == {"kind": "entry", "seq": 3, "at_ms": 5, "terminal": "g", "erased": True}


def test_cli_run_dry_run_and_set(
    pg_console_url: str, db: Session, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    url = ["--database-url", pg_console_url]
    st = db.get_one(Student, world.students["s1-7b-2"])
    st.active = False
    db.commit()
    assert main(["retention", "set", *url, "--region", "R1", "--days", "0", "--basis", "test"]) == 0
    assert main(["retention", "set", *url, "--region", "NOPE", "--days", "10"]) == 2
    assert main(["retention", "set", *url, "--region", "R1", "--days", "99999"]) == 2
    capsys.readouterr()
    assert main(["retention", "run", *url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would erase 1 student(s)" in out and "S1: 1" in out
    db.expire_all()
    assert db.get_one(Student, st.pk).surname == "Surname2"  # the dry run changed nothing
    assert db.get(InactiveSince, st.pk) is None
    assert main(["retention", "run", *url]) == 0
    assert "erased 1 student(s)" in capsys.readouterr().out
    db.expire_all()
    assert db.get_one(Student, st.pk).surname == "" and db.get(Erasure, st.pk) is not None
