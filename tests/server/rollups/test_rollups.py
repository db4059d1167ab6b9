"""The daily roll-ups kept at ingest equal a count from scratch over the stored events, for a
seeded random stream delivered out of order, with re-sent and overlapping batches, late events
(gaps filled later), events of previous days and cancelled passes; ``rebuild`` gives the same
tables; the meal statement read from the roll-ups equals the one counted from the events."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from protocol import topics
from protocol.messages import (
    EntryEvent,
    Event,
    EventBatch,
    ExitEvent,
    ManualPassEvent,
    MealServedEvent,
    NotPassedEvent,
)
from protocol.signing import sign_batch
from server.consents.models import StudentCategory
from server.db import make_engine
from server.ingest.core import IngestStore
from server.models import School
from server.people.models import Student
from server.reports import calc
from server.rollups import service as rollups
from server.rollups.models import RollupAttendance, RollupMeal, RollupPresence
from server.settings import ServerSettings
from tests.support.console import World
from tests.support.sync import enrolled_device

pytestmark = [pytest.mark.postgres]

GRADES = [1, 2, 3, 4]
CATS = ["large_family", "disabled"]


def _tables(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as c:
        meals = sorted(tuple(r) for r in c.execute(select(RollupMeal.__table__)))
        presence = sorted(tuple(r) for r in c.execute(select(RollupPresence.__table__)))
        attendance = sorted(
            tuple(r) for r in c.execute(select(RollupAttendance.__table__)) if r.present != 0
        )
    return meals, presence, attendance


def _stream(rng: random.Random, refs: list[str], days: list[dt.date], zone: str) -> list[Event]:
    """Passes, cancelled passes and meals over several days, in seq order."""
    out: list[Event] = []
    seq = 0
    for day in days:
        start, _end = calc.day_bounds(day, zone)
        entries: list[int] = []
        for _ in range(rng.randint(30, 50)):
            seq += 1
            at = start + rng.randint(6, 16) * 3_600_000 + seq
            who = rng.choice([*refs, "st-unknown"])
            pick = rng.random()
            ev: Event
            if pick < 0.15:
                ev = EntryEvent(seq=seq, at_ms=at, terminal="t1", student_id=who)
                entries.append(seq)
            elif pick < 0.35 and entries:  # the same day's pass, often a pupil's only one
                granted = rng.choice(entries)
                prev = next(e for e in out if e.seq == granted)
                ev = NotPassedEvent(
                    seq=seq,
                    at_ms=at,
                    terminal="t1",
                    granted_seq=granted,
                    student_id=getattr(prev, "student_id", None),
                )
            elif pick < 0.42:
                ev = ManualPassEvent(
                    seq=seq,
                    at_ms=at,
                    terminal="t1",
                    student_id=who,
                    authorised_by="tc1",
                    direction=rng.choice(["in", "out"]),
                )
            elif pick < 0.5:
                ev = ExitEvent(seq=seq, at_ms=at, terminal="t1", student_id=who)
            else:
                meal = rng.choice(["free", "free", "paid", "voucher"])
                ev = MealServedEvent(
                    seq=seq,
                    at_ms=at,
                    terminal="c1",
                    student_id=who,
                    period=rng.choice(["breakfast", "lunch"]),
                    local_date=day.isoformat(),
                    meal=meal,
                    amount_tiyn=rng.randint(1, 9) * 10_000 if meal == "paid" else 0,
                )
            out.append(ev)
    return out


def _signed(key: Any, prefix: str, events: list[Event]) -> tuple[str, bytes]:
    batch = EventBatch(school="S1", device="d1", sent_at_ms=events[-1].at_ms, events=events)
    return topics.events("S1", "d1", prefix), sign_batch(batch, key)


def test_rollups_equal_a_count_from_scratch(
    world: World, db: Session, settings: ServerSettings
) -> None:
    rng = random.Random(1919)
    key, _, _ = enrolled_device(db, settings, "S1", "d1")
    st = db.scalars(select(Student).where(Student.ref == "s1-7b-1")).one()
    db.add(
        StudentCategory(
            student_pk=st.pk,
            school_id="S1",
            code="large_family",
            document="cert",
            valid_from=dt.date(2027, 3, 3),
            valid_to=dt.date(2027, 12, 31),
            recorded_at_ms=0,
        )
    )
    db.commit()
    zone = db.get(School, "S1").timezone  # type: ignore[union-attr]
    refs = sorted(r for r in world.students if r.startswith("s1-"))
    days = [dt.date(2027, 3, d) for d in (1, 2, 3, 4, 5)]
    events = _stream(rng, refs, days, zone)
    # batches of 1-12 events; each delivered once, some twice; out of order within a window
    batches: list[list[Event]] = []
    i = 0
    while i < len(events):
        n = rng.randint(1, 12)
        batches.append(events[i : i + n])
        i += n
    deliveries: list[list[Event]] = []
    for b in batches:
        deliveries.append(b)
        if rng.random() < 0.3:
            deliveries.append(b)  # re-sent whole
        if rng.random() < 0.2 and len(b) > 2:
            deliveries.append(b[1:])  # re-sent in part
    for j in range(0, len(deliveries) - 3, 3):  # late: later batches overtake earlier ones
        if rng.random() < 0.4:
            deliveries[j], deliveries[j + 3] = deliveries[j + 3], deliveries[j]
    late_day = [e for e in events if e.at_ms < calc.day_bounds(days[1], zone)[0]]
    deliveries.append(late_day[:10])  # a previous day's events again, at the end
    engine = make_engine(settings.database_url)
    store = IngestStore(engine, topic_prefix=settings.topic_prefix)
    try:
        for k in range(0, len(deliveries), 2):  # two messages per transaction at times
            store.ingest([_signed(key, settings.topic_prefix, d) for d in deliveries[k : k + 2]])
        incremental = _tables(engine)

        # from scratch, over the events as sent (each seq once)
        evs = [
            calc.Ev(
                e.at_ms,
                e.kind,
                getattr(e, "student_id", None),
                None,
                e.model_dump(mode="json"),
                1,
                e.seq,
            )
            for e in events
        ]
        with engine.connect() as c:
            dev = c.execute(select(rollups.E.device_pk).limit(1)).scalar_one()
        evs = [calc.Ev(e.at_ms, e.kind, e.student_id, None, e.payload, dev, e.seq) for e in evs]
        came = rollups.arrivals([e for e in evs if e.kind in rollups.ARRIVAL_KINDS], zone)
        class_of = {ref: cls for ref, cls in db.execute(select(Student.ref, Student.class_pk))}
        presence = sorted(("S1", d, ref, class_of.get(ref, 0)) for d, ref in came)
        attendance = sorted(
            ("S1", d, c, n)
            for (d, c), n in Counter((d, class_of.get(ref, 0)) for d, ref in came).items()
        )
        meals, got_presence, got_attendance = incremental
        assert got_presence == presence
        assert got_attendance == attendance
        assert sum(r[6] for r in meals) == sum(1 for e in events if e.kind == "meal_served")
        # the statement from the roll-ups equals calc's count over the events
        grade_of = {ref: 3 if "-3a-" in ref else 7 for ref in refs}
        members = {
            "s1-7b-1": [calc.Membership("large_family", dt.date(2027, 3, 3), dt.date(2027, 12, 31))]
        }
        want = calc.meal_report(evs, zone, grade_of, members, GRADES, CATS)
        with engine.connect() as c:
            got = rollups.school_meal_report(c, "S1", dt.date(2027, 3, 1), GRADES, CATS)
        assert got.free == want.free and got.free  # grades, a category and "other" columns
        assert {c for (_d, _p, c) in got.free} >= {calc.GRADES, "large_family"}
        assert (got.paid, got.paid_tiyn, got.voucher) == (want.paid, want.paid_tiyn, want.voucher)

        # a rebuild from the events gives the same tables; from a date, the same too
        rollups.rebuild(engine)
        assert _tables(engine) == incremental
        rollups.rebuild(engine, since=days[2])
        assert _tables(engine) == incremental
    finally:
        store.close()
        engine.dispose()


def test_the_schools_page_counts_from_the_rollups_in_scope(
    world: World, db: Session, settings: ServerSettings, make_browser: Any
) -> None:
    """A regional operator sees their region's schools, an operator every school, a school's
    admin their own; the numbers are the roll-ups' (meals of the month, pupils present)."""
    day = dt.date(2027, 3, 2)
    keys = {s: enrolled_device(db, settings, s, "d1")[0] for s in ("S1", "S3")}
    engine = make_engine(settings.database_url)
    store = IngestStore(engine, topic_prefix=settings.topic_prefix)
    try:
        for school, n in (("S1", 3), ("S3", 5)):
            start = calc.day_bounds(day, "Asia/Almaty")[0] + 9 * 3_600_000
            ref = f"{school.lower()}-3a-1"
            evs: list[Event] = [EntryEvent(seq=1, at_ms=start, terminal="t1", student_id=ref)]
            evs += [
                MealServedEvent(
                    seq=1 + i,
                    at_ms=start + i,
                    terminal="c1",
                    student_id=ref,
                    period="lunch",
                    local_date=day.isoformat(),
                    meal="paid",
                    amount_tiyn=50_000,
                )
                for i in range(1, n + 1)
            ]
            batch = EventBatch(school=school, device="d1", sent_at_ms=start, events=evs)
            msg = (
                topics.events(school, "d1", settings.topic_prefix),
                sign_batch(batch, keys[school]),
            )
            store.ingest([msg, msg])  # sent twice: counted once
    finally:
        store.close()
        engine.dispose()
    url = "/reports/schools?month=2027-03&day=2027-03-02"
    regional = make_browser("regional").get(url)
    assert regional.status_code == 200
    assert "School No. 1" in regional.text and "School No. 2" in regional.text
    assert "School No. 3" not in regional.text
    assert '<td class="num">3</td>' in regional.text and "1500.00" in regional.text
    national = make_browser("operator").get(url)
    assert "School No. 3" in national.text and '<th class="num">8</th>' in national.text
    assert '<th class="num">2</th>' in national.text  # present: one pupil in S1, one in S3
    own = make_browser("admin1").get(url)
    assert "School No. 1" in own.text and "School No. 2" not in own.text
    assert make_browser("operator").get("/reports/schools?month=2027-13").status_code == 400


def test_an_erasure_takes_the_pupil_out_of_the_presence_set(
    world: World, db: Session, settings: ServerSettings
) -> None:
    """The presence set names pupils by ref: an erasure deletes their rows; the per-class
    counts, which name nobody, stay."""
    from server.retention.service import erase_students

    key, _, _ = enrolled_device(db, settings, "S1", "d1")
    start = calc.day_bounds(dt.date(2027, 3, 2), "Asia/Almaty")[0] + 9 * 3_600_000
    evs: list[Event] = [
        EntryEvent(seq=i + 1, at_ms=start + i, terminal="t1", student_id=ref)
        for i, ref in enumerate(["s1-3a-1", "s1-3a-2"])
    ]
    batch = EventBatch(school="S1", device="d1", sent_at_ms=start, events=evs)
    engine = make_engine(settings.database_url)
    store = IngestStore(engine, topic_prefix=settings.topic_prefix)
    try:
        store.ingest([(topics.events("S1", "d1", settings.topic_prefix), sign_batch(batch, key))])
        before = _tables(engine)
        assert [r[2] for r in before[1]] == ["s1-3a-1", "s1-3a-2"]
        st = db.get(Student, world.students["s1-3a-1"])
        assert st is not None
        erase_students(db, None, "S1", [st], "consent_withdrawn", start + 60_000)
        db.commit()
        after = _tables(engine)
        assert [r[2] for r in after[1]] == ["s1-3a-2"]
        assert after[2] == before[2]  # 2 present in 3A that day, still
    finally:
        store.close()
        engine.dispose()
