"""``rebuild_sql`` (the set-based rebuild for bulk loads) writes exactly the rows ``rebuild``
writes, from scratch and from a date, on a varied set of stored events: meals free, paid and
voucher with and without the edge's local date (one just after local midnight), pupils of
several grades with social categories valid on some days only, unknown pupils, passes
cancelled by ``not_passed``, manual passes both ways, several days and schools in two zones;
and one school whose payloads only the Python path reads (a ``local_date`` in ISO's basic
form, a period that is not a string), which ``rebuild_sql`` hands to it. The national
dashboard over the roll-ups adds up per region."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from server.consents.models import StudentCategory
from server.db import make_engine
from server.models import Device, School, StoredEvent
from server.reports import calc
from server.rollups import service as rollups
from server.rollups.models import RollupAttendance, RollupMeal, RollupPresence
from server.settings import ServerSettings
from tests.support.console import World
from tests.support.sync import enrolled_device

pytestmark = [pytest.mark.postgres]

DAYS = [dt.date(2027, 3, d) for d in (1, 2, 3, 4)]
TABLES = (RollupMeal, RollupPresence, RollupAttendance)


def _tables(engine: Engine) -> tuple[list[tuple[Any, ...]], ...]:
    with engine.connect() as c:
        return tuple(sorted(tuple(r) for r in c.execute(select(t.__table__))) for t in TABLES)


def _wipe(engine: Engine) -> None:
    with engine.begin() as c:
        for t in TABLES:
            c.execute(delete(t))


def _events(rng: random.Random, school: str, device: int, zone: str, refs: list[str]) -> list[Any]:
    rows: list[dict[str, Any]] = []
    seq = 0

    def add(at: int, kind: str, who: str | None, payload: dict[str, Any] | None) -> int:
        nonlocal seq
        seq += 1
        body = None if payload is None else {"seq": seq, "at_ms": at, "kind": kind, **payload}
        rows.append(
            {
                "device_pk": device,
                "seq": seq,
                "school_id": school,
                "at_ms": at,
                "kind": kind,
                "terminal": "t1",
                "student_id": who,
                "staff_id": None,
                "payload": body,
                "received_at_ms": at + 500,
            }
        )
        return seq

    for day in DAYS:
        start, _end = calc.day_bounds(day, zone)
        entries: list[tuple[int, str]] = []
        for _ in range(60):
            at = start + rng.randint(6 * 60, 17 * 60) * 60_000 + rng.randint(0, 59_999)
            who = rng.choice([*refs, f"{school.lower()}-unknown"])
            pick = rng.random()
            if pick < 0.25:
                entries.append((add(at, "entry", who, {"student_id": who}), who))
            elif pick < 0.35 and entries:
                granted, whose = rng.choice(entries)
                add(at, "not_passed", whose, {"granted_seq": granted, "student_id": whose})
            elif pick < 0.45:
                d = rng.choice(["in", "out", "sideways"])
                add(at, "manual_pass", who, {"direction": d, "student_id": who})
            elif pick < 0.55:
                add(at, "exit", who, {"student_id": who})
            elif pick < 0.58:
                add(at, "entry", None, {"staff_id": "tc1"})  # staff: no student
            else:
                meal = rng.choice(["free", "free", "paid", "voucher"])
                body: dict[str, Any] = {
                    "student_id": who,
                    "period": rng.choice(["breakfast", "lunch"]),
                    "meal": meal,
                    "amount_tiyn": rng.randint(1, 9) * 10_000 if meal == "paid" else 0,
                }
                if rng.random() < 0.8:
                    body["local_date"] = day.isoformat()
                add(at, "meal_served", who, body)
        # a meal stamped after local midnight that the edge dates the day before
        late = calc.day_bounds(day + dt.timedelta(days=1), zone)[0] + 60_000
        add(
            late,
            "meal_served",
            refs[0],
            {
                "meal": "paid",
                "amount_tiyn": 70_000,
                "period": "dinner",
                "local_date": day.isoformat(),
            },
        )
        add(start + 9 * 3_600_000, "entry", refs[1], None)  # no payload at all
    return rows


@pytest.fixture
def loaded(world: World, db: Session, settings: ServerSettings) -> Iterator[Engine]:
    rng = random.Random(2019)
    db.execute(update(School).where(School.id == "S3").values(timezone="Asia/Tashkent"))
    for ref, code, first, last in (
        ("s1-3a-1", "large_family", DAYS[1], DAYS[2]),
        ("s1-3a-1", "disabled", DAYS[0], DAYS[3]),
        ("s1-7b-2", "disabled", DAYS[2], DAYS[3]),
        ("s3-7b-1", "large_family", DAYS[0], DAYS[0]),
    ):
        db.add(
            StudentCategory(
                student_pk=world.students[ref],
                school_id=ref[:2].upper(),
                code=code,
                document="cert",
                valid_from=first,
                valid_to=last,
                recorded_at_ms=0,
            )
        )
    db.commit()
    for school in ("S1", "S2", "S3"):
        enrolled_device(db, settings, school, "d1")
    engine = make_engine(settings.database_url)
    rows: list[dict[str, Any]] = []
    with engine.begin() as c:
        for school, zone in (("S1", "Asia/Almaty"), ("S2", "Asia/Almaty"), ("S3", "Asia/Tashkent")):
            device = c.execute(select(Device.pk).where(Device.school_id == school)).scalar_one()
            refs = sorted(r for r in world.students if r.startswith(school.lower() + "-"))
            got = _events(rng, school, device, zone, refs)
            if school == "S2":  # payloads only the Python path reads as it does
                for r in got:
                    if r["kind"] == "meal_served" and r["payload"].get("local_date"):
                        r["payload"]["local_date"] = r["payload"]["local_date"].replace("-", "")
                        break
                for r in got:
                    if r["kind"] == "meal_served":
                        r["payload"]["period"] = None
                        break
            rows += got
        c.execute(insert(StoredEvent), rows)
    yield engine
    engine.dispose()


def test_rebuild_sql_writes_the_rows_rebuild_writes(loaded: Engine) -> None:
    engine = loaded
    rollups.rebuild(engine)
    want = _tables(engine)
    meals, presence, attendance = want
    assert {m[3] for m in meals} == {"free", "paid", "voucher"}
    assert {m[4] for m in meals} >= {0, 3, 7}  # unknown pupils, grade 3 and 7
    assert {m[5] for m in meals} >= {"", "disabled", "disabled,large_family"}
    assert {m[2] for m in meals} >= {"dinner", "None"}  # S2's period that is not a string
    assert {p[0] for p in presence} == {"S1", "S2", "S3"} and attendance

    _wipe(engine)
    done = rollups.rebuild_sql(engine)
    assert _tables(engine) == want
    assert done.schools == 3 and done.presence_rows == len(presence)
    assert done.meal_rows == len(meals)

    # from a date: the days before are left as they are, the days after are recomputed
    with engine.begin() as c:
        c.execute(delete(RollupPresence).where(RollupPresence.day >= DAYS[2]))
        c.execute(update(RollupMeal).where(RollupMeal.day >= DAYS[2]).values(count=99))
        c.execute(update(RollupAttendance).values(present=RollupAttendance.present + 1))
    rollups.rebuild(engine, since=DAYS[2])
    want_since = _tables(engine)
    assert want_since != want  # the attendance before DAYS[2] was left as it was
    with engine.begin() as c:
        c.execute(delete(RollupPresence).where(RollupPresence.day >= DAYS[2]))
        c.execute(update(RollupMeal).where(RollupMeal.day >= DAYS[2]).values(count=99))
    rollups.rebuild_sql(engine, since=DAYS[2])
    assert _tables(engine) == want_since


def test_the_national_dashboard_adds_up_the_rollups_per_region(loaded: Engine) -> None:
    engine = loaded
    rollups.rebuild_sql(engine)
    day = DAYS[1]
    with engine.connect() as c:
        board = {r.region_id: r for r in rollups.national_dashboard(c, day)}
        region_of = {s: r for s, r in c.execute(select(School.id, School.region_id))}
        meals = c.execute(
            select(RollupMeal.school_id, RollupMeal.meal, RollupMeal.count).where(
                RollupMeal.day == day
            )
        ).all()
        present = rollups.region_presence(c, None, day)
    assert set(board) == {"R1", "R2"}
    assert board["R1"].schools == 2 and board["R2"].schools == 1
    for region, row in board.items():
        assert row.present == sum(p.present for p in present if region_of[p.school_id] == region)
        for kind in ("free", "paid", "voucher"):
            want = sum(n for s, m, n in meals if m == kind and region_of[s] == region)
            assert getattr(row, kind) == want
        assert row.schools_reporting == row.schools  # every school had passes and meals
