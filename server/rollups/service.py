"""Daily roll-ups kept at ingest, in the ingest transaction, from the events stored for the first
time (so a re-sent event never counts twice); rebuilt from the events by ``rebuild``; read by
the meal statements and the dashboards instead of the events.

Meals: a counter per (school, day, period, meal, grade, categories held) is added to.
Attendance: for every (school, day, student) a batch touches with a pass (or a turnstile's
``not_passed`` that cancels one), the student's arrival that day is computed again from the
stored events of that student and day (one indexed query per school and day), and the presence
set and the per-class counter follow. Rows are written in key order, so concurrent ingest
workers lock them in one order and never deadlock.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from server import clock
from server.clock import DEFAULT_ZONE
from server.consents.models import StudentCategory
from server.models import School, StoredEvent
from server.people.models import SchoolClass, Student
from server.reports import calc
from server.rollups.models import RollupAttendance, RollupMeal, RollupPresence

E = StoredEvent
ARRIVAL_KINDS = ("entry", "manual_pass", "not_passed")
MealKey = tuple[str, dt.date, str, str, int, str]  # school, day, period, meal, grade, categories


@dataclass(frozen=True, slots=True)
class Pupil:
    class_pk: int
    grade: int
    categories: tuple[tuple[str, dt.date, dt.date], ...]

    def held(self, day: dt.date) -> str:
        return ",".join(sorted({c for c, f, t in self.categories if f <= day <= t}))


UNKNOWN = Pupil(0, 0, ())


# ------------------------------------------------------------------------------- pure parts


def meal_day(payload: Mapping[str, Any], at_ms: int, zone: str) -> dt.date:
    """The edge's ``local_date`` of a meal, else the local day of its time (``calc``)."""
    return calc._meal_day(calc.Ev(at_ms, "meal_served", payload=payload), zone)


def meal_counts(
    rows: Iterable[Mapping[str, Any]],
    zones: Mapping[str, str],
    pupils: Mapping[tuple[str, str], Pupil],
) -> dict[MealKey, list[int]]:
    """(count, amount) per roll-up key of the ``meal_served`` rows with a student."""
    out: dict[MealKey, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["kind"] != "meal_served" or r["student_id"] is None:
            continue
        p = r["payload"] or {}
        school = r["school_id"]
        day = meal_day(p, r["at_ms"], zones.get(school, DEFAULT_ZONE))
        pupil = pupils.get((school, r["student_id"]), UNKNOWN)
        key = (
            school,
            day,
            str(p.get("period", ""))[:32],
            str(p.get("meal", ""))[:16],
            pupil.grade,
            pupil.held(day)[:200],
        )
        acc = out[key]
        acc[0] += 1
        acc[1] += int(p.get("amount_tiyn", 0) or 0) if p.get("meal") == "paid" else 0
    return dict(out)


def arrivals(events: Iterable[calc.Ev], zone: str) -> set[tuple[dt.date, str]]:
    """(local day, student) of every effective arrival (``calc.arrivals_by_day``)."""
    return {(d, ref) for d, refs in calc.arrivals_by_day(events, zone).items() for ref in refs}


def statement(
    rows: Iterable[tuple[dt.date, str, str, int, str, int, int]],
    free_grades: Iterable[int],
    free_categories: Sequence[str],
) -> calc.MealReport:
    """A school's ``calc.MealReport`` from its roll-up rows (day, period, meal, grade,
    categories, count, amount): the policy picks the free meal's column as ``calc`` does."""
    rep = calc.MealReport()
    grades = set(free_grades)
    for day, period, meal, grade, cats, n, amount in rows:
        if meal == "free":
            held = [calc.Membership(c, day, day) for c in cats.split(",") if c]
            col = calc.free_category(grade or None, held, day, grades, free_categories)
            rep.free[(day, period, col)] += n
        elif meal == "paid":
            rep.paid[day] += n
            rep.paid_tiyn[day] += amount
        elif meal == "voucher":
            rep.voucher[day] += n
    return rep


# ------------------------------------------------------------------------------ the database


def _insert(conn: Connection, table: Any) -> Any:
    return pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)


# A school's zone, read at most once a minute per process (a zone changes once in years; the
# days of the events of that minute follow ``rebuild --since``).
ZONE_TTL_S = 60.0
_zone_cache: dict[tuple[str, str], tuple[str, float]] = {}  # (database, school)


def _zones(conn: Connection, schools: Iterable[str]) -> dict[str, str]:
    now = time.monotonic()
    db = str(conn.engine.url)
    out: dict[str, str] = {}
    for school in set(schools):
        hit = _zone_cache.get((db, school))
        if hit is not None and now - hit[1] < ZONE_TTL_S:
            out[school] = hit[0]
    missing = sorted(set(schools) - out.keys())
    if missing:
        q = select(School.id, School.timezone).where(School.id.in_(missing))
        for s, z in conn.execute(q):
            out[s] = z or DEFAULT_ZONE
            _zone_cache[(db, s)] = (out[s], now)
    return out


def _pupils(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Pupil]:
    """Class, grade and categories of these (school, student ref) as the centre knows them."""
    if not keys:
        return {}
    refs = sorted({ref for _s, ref in keys})
    base: dict[tuple[str, str], tuple[int, int, int]] = {}
    for pk, school, ref, class_pk, grade in conn.execute(
        select(Student.pk, Student.school_id, Student.ref, Student.class_pk, SchoolClass.grade)
        .join(SchoolClass, SchoolClass.pk == Student.class_pk)
        .where(Student.ref.in_(refs))
    ):
        if (school, ref) in keys:
            base[(school, ref)] = (pk, class_pk, grade)
    cats: dict[int, list[tuple[str, dt.date, dt.date]]] = defaultdict(list)
    pks = sorted(pk for pk, _c, _g in base.values())
    if pks:
        for spk, code, f, t in conn.execute(
            select(
                StudentCategory.student_pk,
                StudentCategory.code,
                StudentCategory.valid_from,
                StudentCategory.valid_to,
            ).where(StudentCategory.student_pk.in_(pks))
        ):
            cats[spk].append((code, f, t))
    return {k: Pupil(c, g, tuple(sorted(cats.get(pk, ())))) for k, (pk, c, g) in base.items()}


def _add_meals(conn: Connection, counts: Mapping[MealKey, list[int]]) -> None:
    if not counts:
        return
    t = RollupMeal.__table__
    values = [
        {
            "school_id": k[0],
            "day": k[1],
            "period": k[2],
            "meal": k[3],
            "grade": k[4],
            "categories": k[5],
            "count": n,
            "amount_tiyn": amount,
        }
        for k, (n, amount) in sorted(counts.items())
    ]
    ins = _insert(conn, t).values(values)
    conn.execute(
        ins.on_conflict_do_update(
            index_elements=["school_id", "day", "period", "meal", "grade", "categories"],
            set_={
                "count": t.c.count + ins.excluded.count,
                "amount_tiyn": t.c.amount_tiyn + ins.excluded.amount_tiyn,
            },
        )
    )


def _day_events(
    conn: Connection, school: str, refs: Sequence[str], start: int, end: int
) -> list[calc.Ev]:
    q = select(E.at_ms, E.kind, E.student_id, E.payload, E.device_pk, E.seq).where(
        E.school_id == school,
        E.student_id.in_(refs),
        E.at_ms >= start,
        E.at_ms < end,
        E.kind.in_(ARRIVAL_KINDS),
    )
    return [
        calc.Ev(r.at_ms, r.kind, r.student_id, None, r.payload or {}, r.device_pk, r.seq)
        for r in conn.execute(q)
    ]


def _set_presence(
    conn: Connection,
    school: str,
    day: dt.date,
    refs: Sequence[str],
    arrived: set[str],
    pupils: Mapping[tuple[str, str], Pupil],
    have: Mapping[str, int],
) -> None:
    """Make the presence rows of ``refs`` on ``day`` say ``arrived`` (``have``: the rows there
    now, ref -> class); move the class counters."""
    add = sorted(arrived - have.keys())
    gone = sorted((set(refs) - arrived) & have.keys())
    delta: Counter[int] = Counter()
    if add:
        classes = {ref: pupils.get((school, ref), UNKNOWN).class_pk for ref in add}
        rows = [
            {"school_id": school, "day": day, "student_id": ref, "class_pk": classes[ref]}
            for ref in add
        ]
        conn.execute(_insert(conn, RollupPresence.__table__).values(rows))
        for ref in add:
            delta[classes[ref]] += 1
    if gone:
        conn.execute(
            delete(RollupPresence).where(
                RollupPresence.school_id == school,
                RollupPresence.day == day,
                RollupPresence.student_id.in_(gone),
            )
        )
        for ref in gone:
            delta[have[ref]] -= 1
    _add_attendance(conn, {(school, day, c): n for c, n in delta.items() if n})


def _add_attendance(conn: Connection, delta: Mapping[tuple[str, dt.date, int], int]) -> None:
    if not delta:
        return
    if conn.dialect.name == "postgresql":  # one statement, compiled once (not per row count)
        keys = sorted(delta)
        conn.execute(
            text(
                "INSERT INTO rollup_attendance AS t (school_id, day, class_pk, present) "
                "SELECT * FROM unnest(CAST(:schools AS text[]), CAST(:days AS date[]), "
                "CAST(:classes AS bigint[]), CAST(:present AS bigint[])) "
                "ORDER BY 1, 2, 3 "
                "ON CONFLICT (school_id, day, class_pk) "
                "DO UPDATE SET present = t.present + excluded.present"
            ),
            {
                "schools": [k[0] for k in keys],
                "days": [k[1] for k in keys],
                "classes": [k[2] for k in keys],
                "present": [delta[k] for k in keys],
            },
        )
        return
    t = RollupAttendance.__table__
    ins = _insert(conn, t).values(
        [
            {"school_id": s, "day": d, "class_pk": c, "present": n}
            for (s, d, c), n in sorted(delta.items())
        ]
    )
    conn.execute(
        ins.on_conflict_do_update(
            index_elements=["school_id", "day", "class_pk"],
            set_={"present": t.c.present + ins.excluded.present},
        )
    )


def apply_rollups(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add the events stored now (each once) to the roll-ups, in the caller's transaction."""
    relevant = [
        r
        for r in rows
        if r["student_id"] is not None and r["kind"] in (*ARRIVAL_KINDS, "meal_served")
    ]
    if not relevant:
        return
    zones = _zones(conn, {r["school_id"] for r in relevant})
    pupils = _pupils(conn, {(r["school_id"], r["student_id"]) for r in relevant})
    _add_meals(conn, meal_counts(relevant, zones, pupils))
    touched: dict[tuple[str, dt.date], list[Mapping[str, Any]]] = defaultdict(list)
    for r in relevant:
        if r["kind"] in ARRIVAL_KINDS:
            zone = zones.get(r["school_id"], DEFAULT_ZONE)
            touched[(r["school_id"], calc.local_day(r["at_ms"], zone))].append(r)
    # Passes above all their devices had stored (the peak's usual case): presence can only be
    # added, for every (school, day) at once in one statement; the others one by one.
    arrived: list[tuple[str, dt.date, str]] = []
    for (school, day), group in sorted(touched.items()):
        if _only_fresh(group):
            arrived.extend((school, day, ref) for ref in _inward(group))
        else:
            _presence_of_day(conn, school, day, group, zones.get(school, DEFAULT_ZONE), pupils)
    _add_presence(conn, arrived, pupils)


def _only_fresh(group: Sequence[Mapping[str, Any]]) -> bool:
    """No row of ``group`` needs its pupil's day counted again (see ``_presence_of_day``)."""
    return all(r.get("fresh") and r["kind"] != "not_passed" for r in group)


def _inward(group: Sequence[Mapping[str, Any]]) -> list[str]:
    """The pupils of ``group`` with a pass inwards, sorted."""
    return sorted(
        {
            r["student_id"]
            for r in group
            if calc.direction(calc.Ev(r["at_ms"], r["kind"], payload=r["payload"] or {})) == "in"
        }
    )


def _add_presence(
    conn: Connection,
    arrived: Sequence[tuple[str, dt.date, str]],
    pupils: Mapping[tuple[str, str], Pupil],
) -> None:
    """Mark these (school, day, pupil) present, in key order, where not yet; move the class
    counters by the rows added."""
    if not arrived:
        return
    if conn.dialect.name == "postgresql":  # one statement, compiled once (not per row count)
        keys = sorted(arrived)
        added = conn.execute(
            text(
                "INSERT INTO rollup_presence (school_id, day, student_id, class_pk) "
                "SELECT * FROM unnest(CAST(:schools AS text[]), CAST(:days AS date[]), "
                "CAST(:refs AS text[]), CAST(:classes AS bigint[])) "
                "ORDER BY 1, 2, 3 "
                "ON CONFLICT (school_id, day, student_id) DO NOTHING "
                "RETURNING school_id, day, class_pk"
            ),
            {
                "schools": [k[0] for k in keys],
                "days": [k[1] for k in keys],
                "refs": [k[2] for k in keys],
                "classes": [pupils.get((k[0], k[2]), UNKNOWN).class_pk for k in keys],
            },
        )
        _add_attendance(conn, Counter((school, day, int(c)) for school, day, c in added))
        return
    ins = _insert(conn, RollupPresence.__table__).values(
        [
            {
                "school_id": school,
                "day": day,
                "student_id": ref,
                "class_pk": pupils.get((school, ref), UNKNOWN).class_pk,
            }
            for school, day, ref in sorted(arrived)
        ]
    )
    added = conn.execute(
        ins.on_conflict_do_nothing(index_elements=["school_id", "day", "student_id"]).returning(
            RollupPresence.school_id, RollupPresence.day, RollupPresence.class_pk
        )
    )
    delta = Counter((school, day, int(c)) for school, day, c in added)
    _add_attendance(conn, delta)


def _presence_of_day(
    conn: Connection,
    school: str,
    day: dt.date,
    group: Sequence[Mapping[str, Any]],
    zone: str,
    pupils: Mapping[tuple[str, str], Pupil],
) -> None:
    """Presence can only change for a pupil not yet present who passed inwards, or one whose
    pass a ``not_passed`` cancels. A row above everything its device had stored (``fresh``)
    cannot be cancelled by an event already stored (a ``not_passed`` comes after its pass on
    the same device), so such a pupil is present at once; a cancellation, a late or re-filled
    row makes the pupil's day be counted again from the stored events."""
    refs = sorted({r["student_id"] for r in group})
    exact = {r["student_id"] for r in group if not r.get("fresh") or r["kind"] == "not_passed"}
    if not exact:  # only passes above all their devices had stored: presence can only be added
        _add_presence(conn, [(school, day, ref) for ref in _inward(group)], pupils)
        return
    have = {
        ref: int(cls)
        for ref, cls in conn.execute(
            select(RollupPresence.student_id, RollupPresence.class_pk).where(
                RollupPresence.school_id == school,
                RollupPresence.day == day,
                RollupPresence.student_id.in_(refs),
            )
        )
    }
    inward = {
        r["student_id"]
        for r in group
        if r["student_id"] not in exact
        and r["student_id"] not in have
        and calc.direction(calc.Ev(r["at_ms"], r["kind"], payload=r["payload"] or {})) == "in"
    }
    arrived = set(inward)
    if exact:
        start, end = calc.day_bounds(day, zone)
        evs = _day_events(conn, school, sorted(exact), start, end)
        arrived |= {ref for d, ref in arrivals(evs, zone) if d == day}
    _set_presence(conn, school, day, sorted(exact | inward), arrived, pupils, have)


# --------------------------------------------------------------------------------- rebuild


@dataclass(slots=True)
class Rebuilt:
    schools: int = 0
    events: int = 0
    meal_rows: int = 0
    presence_rows: int = 0


def rebuild(engine: Engine, since: dt.date | None = None, *, chunk: int = 20_000) -> Rebuilt:
    """Recompute the roll-ups from the events (all days, or the days from ``since``), one
    school per transaction; the days before ``since`` are left as they are."""
    out = Rebuilt()
    with engine.connect() as conn:
        schools = list(conn.execute(select(School.id, School.timezone).order_by(School.id)))
    for school, tz in schools:
        _rebuild_school(engine, school, tz or DEFAULT_ZONE, since, chunk, out)
    return out


def _rebuild_school(
    engine: Engine, school: str, zone: str, since: dt.date | None, chunk: int, out: Rebuilt
) -> None:
    lo = None if since is None else calc.day_bounds(since, zone)[0] - calc_margin_ms()
    with engine.begin() as conn:
        for table in (RollupMeal, RollupPresence, RollupAttendance):
            gone = delete(table).where(table.school_id == school)
            if since is not None:
                gone = gone.where(table.day >= since)
            conn.execute(gone)
        q = select(E.at_ms, E.kind, E.student_id, E.payload, E.device_pk, E.seq, E.school_id).where(
            E.school_id == school,
            E.kind.in_((*ARRIVAL_KINDS, "meal_served")),
            E.student_id.is_not(None),
        )
        if lo is not None:
            q = q.where(E.at_ms >= lo)
        rows = [r._asdict() for r in conn.execute(q.execution_options(yield_per=chunk))]
        out.events += len(rows)
        pupils = _pupils(conn, {(school, r["student_id"]) for r in rows})
        meals = meal_counts(rows, {school: zone}, pupils)
        if since is not None:
            meals = {k: v for k, v in meals.items() if k[1] >= since}
        for i in range(0, len(meals), 1000):
            _add_meals(conn, dict(list(sorted(meals.items()))[i : i + 1000]))
        evs = [
            calc.Ev(
                r["at_ms"],
                r["kind"],
                r["student_id"],
                None,
                r["payload"] or {},
                r["device_pk"],
                r["seq"],
            )
            for r in rows
            if r["kind"] in ARRIVAL_KINDS
        ]
        came = sorted((d, ref) for d, ref in arrivals(evs, zone) if since is None or d >= since)
        cls = {ref: pupils.get((school, ref), UNKNOWN).class_pk for _d, ref in came}
        presence = [
            {"school_id": school, "day": d, "student_id": ref, "class_pk": cls[ref]}
            for d, ref in came
        ]
        for i in range(0, len(presence), 1000):
            conn.execute(_insert(conn, RollupPresence.__table__).values(presence[i : i + 1000]))
        counts: Counter[tuple[str, dt.date, int]] = Counter(
            (school, d, cls[ref]) for d, ref in came
        )
        items = sorted(counts.items())
        for i in range(0, len(items), 1000):
            _add_attendance(conn, dict(items[i : i + 1000]))
        out.schools += 1
        out.meal_rows += len(meals)
        out.presence_rows += len(presence)


# The set-based rebuild: the same rows as ``rebuild``, computed by PostgreSQL. Each event's
# payload is read the way the Python path reads it only when it holds what the edges send
# (``_PLAIN``); a school with any other value (a ``local_date`` in another ISO form, a period
# that is not a string, an amount with a fraction, ...) goes through ``rebuild``'s path.
_P = "(CASE jsonb_typeof(e.payload) WHEN 'object' THEN e.payload ELSE '{}'::jsonb END)"
_ISO_DAY = f"""(CASE
  WHEN NOT ({_P}->>'local_date' ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$') THEN false
  WHEN substr({_P}->>'local_date', 1, 4)::int < 1
    OR substr({_P}->>'local_date', 6, 2)::int NOT BETWEEN 1 AND 12 THEN false
  ELSE substr({_P}->>'local_date', 9, 2)::int BETWEEN 1 AND extract(day FROM
    make_date(substr({_P}->>'local_date', 1, 4)::int, substr({_P}->>'local_date', 6, 2)::int, 1)
    + interval '1 month - 1 day')::int
END)"""
_STRING_OR_ABSENT = "(NOT {p} ? '{k}' OR jsonb_typeof({p}->'{k}') = 'string')"
_INT_OR_ABSENT = (
    "(NOT {p} ? '{k}'"
    " OR (jsonb_typeof({p}->'{k}') = 'number' AND {p}->>'{k}' ~ '^-?[0-9]{{1,18}}$'))"
)
_PLAIN = f"""(e.payload IS NULL OR jsonb_typeof(e.payload) IN ('object', 'null')) AND CASE e.kind
  WHEN 'meal_served' THEN
    (CASE WHEN jsonb_typeof({_P}->'local_date') = 'string' THEN {_ISO_DAY} ELSE true END)
    AND {_STRING_OR_ABSENT.format(p=_P, k="period")}
    AND {_STRING_OR_ABSENT.format(p=_P, k="meal")}
    AND ({_INT_OR_ABSENT.format(p=_P, k="amount_tiyn")}
         OR jsonb_typeof({_P}->'amount_tiyn') = 'null')
  WHEN 'not_passed' THEN {_INT_OR_ABSENT.format(p=_P, k="granted_seq")}
  ELSE true END"""
_LOCAL_DAY = (
    "((TIMESTAMPTZ 'epoch' + e.at_ms * INTERVAL '1 millisecond') AT TIME ZONE s.zone)::date"
)
_KINDS = "('entry', 'manual_pass', 'not_passed', 'meal_served')"
_SCOPE = "JOIN pg_temp.rollup_scope s ON s.school_id = e.school_id AND NOT s.odd"
_PUPIL = """LEFT JOIN (students st JOIN school_classes sc ON sc.pk = st.class_pk)
  ON st.ref = {x}.student_id AND st.school_id = {x}.school_id"""

_SQL_ODD = f"""
SELECT count(*), array_agg(DISTINCT e.school_id) FILTER (WHERE NOT ({_PLAIN}))
FROM events e {_SCOPE}
WHERE e.at_ms >= s.lo AND e.student_id IS NOT NULL AND e.kind IN {_KINDS}
"""
_SQL_MEALS = f"""
INSERT INTO rollup_meals (school_id, day, period, meal, grade, categories, count, amount_tiyn)
SELECT m.school_id, m.day, m.period, m.meal, m.grade, m.categories, count(*), sum(m.amount)
FROM (
  SELECT e.school_id, d.day,
    left(coalesce({_P}->>'period', ''), 32) AS period,
    left(coalesce({_P}->>'meal', ''), 16) AS meal,
    coalesce(sc.grade, 0) AS grade,
    CASE WHEN st.pk IS NULL THEN '' ELSE left(array_to_string(ARRAY(
      SELECT DISTINCT c.code COLLATE "C" FROM student_categories c
      WHERE c.student_pk = st.pk AND c.valid_from <= d.day AND d.day <= c.valid_to
      ORDER BY 1), ','), 200)
    END AS categories,
    CASE WHEN {_P}->>'meal' = 'paid' THEN coalesce(({_P}->>'amount_tiyn')::bigint, 0)
         ELSE 0 END AS amount
  FROM events e {_SCOPE}
  CROSS JOIN LATERAL (SELECT CASE WHEN jsonb_typeof({_P}->'local_date') = 'string'
    THEN ({_P}->>'local_date')::date ELSE {_LOCAL_DAY} END AS day) d
  {_PUPIL.format(x="e")}
  WHERE e.kind = 'meal_served' AND e.student_id IS NOT NULL AND e.at_ms >= s.lo
) m
WHERE m.day >= :since
GROUP BY 1, 2, 3, 4, 5, 6
"""
_SQL_CANCELLED = f"""
CREATE TEMP TABLE rollup_cancelled ON COMMIT DROP AS
SELECT DISTINCT e.school_id, e.device_pk, coalesce(({_P}->>'granted_seq')::bigint, 0) AS seq
FROM events e {_SCOPE}
WHERE e.kind = 'not_passed' AND e.student_id IS NOT NULL AND e.at_ms >= s.lo
"""
_SQL_PRESENCE = f"""
INSERT INTO rollup_presence (school_id, day, student_id, class_pk)
SELECT a.school_id, a.day, a.student_id, coalesce(st.class_pk, 0)
FROM (
  SELECT DISTINCT e.school_id, {_LOCAL_DAY} AS day, e.student_id
  FROM events e {_SCOPE}
  LEFT JOIN pg_temp.rollup_cancelled x
    ON e.kind = 'entry' AND x.school_id = e.school_id AND x.device_pk = e.device_pk
    AND x.seq = e.seq
  WHERE e.at_ms >= s.lo AND e.student_id IS NOT NULL AND x.school_id IS NULL
    AND (e.kind = 'entry' OR (e.kind = 'manual_pass'
         AND jsonb_typeof({_P}->'direction') = 'string' AND {_P}->>'direction' = 'in'))
) a
{_PUPIL.format(x="a")}
WHERE a.day >= :since
"""
_SQL_ATTENDANCE = f"""
INSERT INTO rollup_attendance (school_id, day, class_pk, present)
SELECT e.school_id, e.day, e.class_pk, count(*)
FROM rollup_presence e {_SCOPE}
WHERE e.day >= :since
GROUP BY 1, 2, 3
"""


def rebuild_sql(engine: Engine, since: dt.date | None = None) -> Rebuilt:
    """``rebuild``'s rows computed by PostgreSQL in a few set-based statements, in one
    transaction: for a bulk load that bypassed the ingest (COPY, a restore) where one school at
    a time through Python would take hours. The schools whose events hold payload values only
    the Python path reads the same way, or whose zone PostgreSQL does not know, are rebuilt by
    ``rebuild``'s path afterwards. Run it with the ingest stopped for those days (as
    ``rebuild``: a batch stored meanwhile may be counted by both). Another database than
    PostgreSQL: ``rebuild``."""
    if engine.dialect.name != "postgresql":
        return rebuild(engine, since)
    out = Rebuilt()
    first = since if since is not None else dt.date(1, 1, 1)
    with engine.begin() as conn:
        schools = list(conn.execute(select(School.id, School.timezone).order_by(School.id)))
        zones = {s: clock.zone(tz or DEFAULT_ZONE).key for s, tz in schools}
        known = {z: _pg_knows_zone(conn, z) for z in set(zones.values())}
        los = {
            s: -(2**62) if since is None else calc.day_bounds(since, z)[0] - calc_margin_ms()
            for s, z in zones.items()
        }
        conn.execute(
            text(
                "CREATE TEMP TABLE rollup_scope (school_id text PRIMARY KEY, zone text NOT NULL,"
                " lo bigint NOT NULL, odd boolean NOT NULL) ON COMMIT DROP"
            )
        )
        conn.execute(
            text(
                "INSERT INTO pg_temp.rollup_scope SELECT * FROM unnest("
                "CAST(:s AS text[]), CAST(:z AS text[]), CAST(:lo AS bigint[]),"
                " CAST(:odd AS boolean[]))"
            ),
            {
                "s": list(zones),
                "z": list(zones.values()),
                "lo": [los[s] for s in zones],
                "odd": [not known[z] for z in zones.values()],
            },
        )
        conn.execute(text("ANALYZE pg_temp.rollup_scope"))
        n, odd = conn.execute(text(_SQL_ODD)).one()
        if odd:
            conn.execute(
                text("UPDATE pg_temp.rollup_scope SET odd = true WHERE school_id = ANY(:odd)"),
                {"odd": list(odd)},
            )
        for table in ("rollup_meals", "rollup_presence", "rollup_attendance"):
            conn.execute(
                text(
                    f"DELETE FROM {table} r USING pg_temp.rollup_scope s"
                    " WHERE r.school_id = s.school_id AND NOT s.odd AND r.day >= :since"
                ),
                {"since": first},
            )
        out.meal_rows = conn.execute(text(_SQL_MEALS), {"since": first}).rowcount
        conn.execute(text(_SQL_CANCELLED))
        out.presence_rows = conn.execute(text(_SQL_PRESENCE), {"since": first}).rowcount
        conn.execute(text(_SQL_ATTENDANCE), {"since": first})
        rest = sorted(
            conn.execute(text("SELECT school_id FROM pg_temp.rollup_scope WHERE odd")).scalars()
        )
    out.events = int(n)
    out.schools = len(schools) - len(rest)
    for school in rest:
        _rebuild_school(engine, school, zones[school], since, 20_000, out)
    return out


def _pg_knows_zone(conn: Connection, zone: str) -> bool:
    with conn.begin_nested():
        try:
            conn.execute(text("SELECT now() AT TIME ZONE :z"), {"z": zone})
            return True
        except DBAPIError:
            return False


def calc_margin_ms() -> int:
    """Meals carry the edge's local date: a day's meals may be stamped either side of midnight."""
    return 86_400_000


# ----------------------------------------------------------------------------------- reading


def school_meal_report(
    conn: Connection | Any,
    school: str,
    month: dt.date,
    free_grades: Iterable[int],
    free_categories: Sequence[str],
) -> calc.MealReport:
    days = calc.month_days(month)
    rows = conn.execute(
        select(
            RollupMeal.day,
            RollupMeal.period,
            RollupMeal.meal,
            RollupMeal.grade,
            RollupMeal.categories,
            RollupMeal.count,
            RollupMeal.amount_tiyn,
        ).where(RollupMeal.school_id == school, RollupMeal.day.between(days[0], days[-1]))
    )
    return statement(rows, free_grades, free_categories)


@dataclass(frozen=True, slots=True)
class SchoolMeals:
    school_id: str
    free: int
    paid: int
    voucher: int
    paid_tiyn: int


def region_meals(
    conn: Connection | Any, region_id: str | None, first: dt.date, last: dt.date
) -> list[SchoolMeals]:
    """Meals per school of a region (None: the whole country) over [first, last], from the
    roll-ups: one grouped query over (school, day) keys, never over the events."""
    q = (
        select(
            RollupMeal.school_id,
            RollupMeal.meal,
            func.sum(RollupMeal.count),
            func.sum(RollupMeal.amount_tiyn),
        )
        .join(School, School.id == RollupMeal.school_id)
        .where(RollupMeal.day.between(first, last))
        .group_by(RollupMeal.school_id, RollupMeal.meal)
    )
    if region_id is not None:
        q = q.where(School.region_id == region_id)
    acc: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for school, meal, n, amount in conn.execute(q):
        acc[school][meal] += int(n)
        acc[school]["tiyn"] += int(amount or 0)
    return [
        SchoolMeals(s, v["free"], v["paid"], v["voucher"], v["tiyn"])
        for s, v in sorted(acc.items())
    ]


@dataclass(frozen=True, slots=True)
class SchoolPresence:
    school_id: str
    present: int
    by_class: dict[int, int]


def region_presence(
    conn: Connection | Any, region_id: str | None, day: dt.date
) -> list[SchoolPresence]:
    """Pupils present per school (and class) of a region (None: the country) on a day."""
    q = (
        select(RollupAttendance.school_id, RollupAttendance.class_pk, RollupAttendance.present)
        .join(School, School.id == RollupAttendance.school_id)
        .where(RollupAttendance.day == day, RollupAttendance.present != 0)
    )
    if region_id is not None:
        q = q.where(School.region_id == region_id)
    by: dict[str, dict[int, int]] = defaultdict(dict)
    for school, cls, n in conn.execute(q):
        by[school][int(cls)] = int(n)
    return [SchoolPresence(s, sum(c.values()), c) for s, c in sorted(by.items())]


@dataclass(frozen=True, slots=True)
class RegionDay:
    region_id: str | None
    schools: int
    schools_reporting: int  # a pupil present or a meal served that day
    present: int
    free: int
    paid: int
    voucher: int
    paid_tiyn: int


def national_dashboard(conn: Connection | Any, day: dt.date) -> list[RegionDay]:
    """The country on a day, region by region (None: schools in no region), from the roll-ups:
    one grouped query over (school, day) rows, never over the events."""
    att = (
        select(RollupAttendance.school_id, func.sum(RollupAttendance.present).label("present"))
        .where(RollupAttendance.day == day)
        .group_by(RollupAttendance.school_id)
        .subquery()
    )

    def kind(meal: str) -> Any:
        return func.coalesce(func.sum(RollupMeal.count).filter(RollupMeal.meal == meal), 0)

    meals = (
        select(
            RollupMeal.school_id,
            func.sum(RollupMeal.count).label("n"),
            kind("free").label("free"),
            kind("paid").label("paid"),
            kind("voucher").label("voucher"),
            func.sum(RollupMeal.amount_tiyn).label("tiyn"),
        )
        .where(RollupMeal.day == day)
        .group_by(RollupMeal.school_id)
        .subquery()
    )

    def total(col: Any) -> Any:
        return func.coalesce(func.sum(col), 0)

    q = (
        select(
            School.region_id,
            func.count(),
            func.count().filter((att.c.present > 0) | (meals.c.n > 0)),
            total(att.c.present),
            total(meals.c.free),
            total(meals.c.paid),
            total(meals.c.voucher),
            total(meals.c.tiyn),
        )
        .select_from(School)
        .outerjoin(att, att.c.school_id == School.id)
        .outerjoin(meals, meals.c.school_id == School.id)
        .group_by(School.region_id)
        .order_by(School.region_id)
    )
    return [RegionDay(r, *(int(x) for x in rest)) for r, *rest in conn.execute(q)]


def presence_keys(conn: Connection | Any, school: str) -> set[tuple[dt.date, str]]:
    return {
        (d, ref)
        for d, ref in conn.execute(
            select(RollupPresence.day, RollupPresence.student_id).where(
                RollupPresence.school_id == school
            )
        )
    }


__all__ = [
    "apply_rollups",
    "national_dashboard",
    "rebuild",
    "rebuild_sql",
    "region_meals",
    "region_presence",
    "school_meal_report",
]
