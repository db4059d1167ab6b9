"""Report tables as export sheets (translated headers, plain cells). Pure: data in, sheets out."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence

from server.reports import calc
from server.reports.export import Cell, Sheet
from server.reports.labels import N_, Translate, category_label, direction_label
from server.reports.service import Headcount, MealMonth, MonthAttendance


def _kv(label: str, value: str) -> str:
    return f"{label}: {value}"


def _yes(t: Translate, flag: bool) -> str:
    return t(N_("yes")) if flag else ""


def attendance_day_sheet(
    t: Translate, school: str, class_name: str, day: dt.date, rows: Sequence[calc.DayRow], zone: str
) -> Sheet:
    out: list[list[Cell]] = []
    for r in rows:
        passes = "; ".join(
            f"{calc.local_clock(m.at_ms, zone)} {direction_label(t, m.direction)} ({m.authorised_by})"
            for m in r.manual_passes
        )
        out.append(
            [
                r.pupil.name,
                r.pupil.class_name,
                calc.local_clock(r.arrival_ms, zone),
                calc.local_clock(r.departure_ms, zone),
                _yes(t, r.late),
                _yes(t, r.absent),
                passes,
            ]
        )
    present = sum(not r.absent for r in rows)
    return Sheet(
        title=t(N_("Attendance")),
        name=t(N_("Attendance")),
        subtitle=[
            school,
            _kv(t(N_("Class")), f"{class_name}"),
            _kv(t(N_("Day")), f"{day.isoformat()}"),
        ],
        headers=[
            t(N_("Student")),
            t(N_("Class")),
            t(N_("Arrival")),
            t(N_("Departure")),
            t(N_("Late")),
            t(N_("Absent")),
            t(N_("Manual passes (authorised by)")),
        ],
        rows=out,
        totals=[
            t(N_("Total")),
            len(rows),
            present,
            None,
            sum(r.late for r in rows),
            len(rows) - present,
            sum(len(r.manual_passes) for r in rows),
        ],
    )


def class_summary(rows: Sequence[calc.DayRow]) -> list[tuple[str, int, int, int, int, int]]:
    """(class, students, present, late, absent, manual passes) per class, in the rows' order."""
    order: list[str] = []
    acc: dict[str, Counter[str]] = {}
    for r in rows:
        c = r.pupil.class_name
        if c not in acc:
            order.append(c)
            acc[c] = Counter()
        acc[c]["students"] += 1
        acc[c]["present"] += not r.absent
        acc[c]["late"] += r.late
        acc[c]["absent"] += r.absent
        acc[c]["manual"] += len(r.manual_passes)
    return [
        (
            c,
            acc[c]["students"],
            acc[c]["present"],
            acc[c]["late"],
            acc[c]["absent"],
            acc[c]["manual"],
        )
        for c in order
    ]


def attendance_summary_sheet(
    t: Translate, school: str, day: dt.date, rows: Sequence[calc.DayRow]
) -> Sheet:
    summary = class_summary(rows)
    return Sheet(
        title=t(N_("Attendance by class")),
        name=t(N_("Attendance")),
        subtitle=[school, _kv(t(N_("Day")), f"{day.isoformat()}")],
        headers=[
            t(N_("Class")),
            t(N_("Students")),
            t(N_("Present")),
            t(N_("Late")),
            t(N_("Absent")),
            t(N_("Manual passes")),
        ],
        rows=[list(s) for s in summary],
        totals=[t(N_("Total")), *[sum(int(s[i]) for s in summary) for i in range(1, 6)]],
    )


def attendance_month_sheet(
    t: Translate, school: str, class_name: str, month: dt.date, data: MonthAttendance
) -> Sheet:
    return Sheet(
        title=t(N_("Attendance over the month")),
        name=t(N_("Month")),
        subtitle=[
            school,
            _kv(t(N_("Class")), f"{class_name}"),
            _kv(t(N_("Month")), f"{month:%Y-%m}"),
            _kv(t(N_("School days")), f"{len(data.school_days)}"),
        ],
        headers=[
            t(N_("Student")),
            t(N_("Class")),
            t(N_("Days present")),
            t(N_("Days late")),
            t(N_("Days absent")),
        ],
        rows=[[r.pupil.name, r.pupil.class_name, r.present, r.late, r.absent] for r in data.rows],
        totals=[
            t(N_("Total")),
            None,
            sum(r.present for r in data.rows),
            sum(r.late for r in data.rows),
            sum(r.absent for r in data.rows),
        ],
    )


def meal_period_rows(m: MealMonth) -> list[tuple[dt.date, str, list[int]]]:
    """(day, period, counts per statement column) for each day and period with free meals."""
    out = []
    for d in m.days:
        for p in m.report.periods():
            counts = [m.report.free.get((d, p, c), 0) for c in m.categories]
            if any(counts):
                out.append((d, p, counts))
    return out


def meal_sheets(t: Translate, school: str, month: dt.date, m: MealMonth) -> list[Sheet]:
    cols = [category_label(t, c, m.free_grades) for c in m.categories]
    rows = meal_period_rows(m)
    free = Sheet(
        title=t(N_("Free meals by day, meal period and category")),
        name=t(N_("Free meals")),
        subtitle=[school, _kv(t(N_("Month")), f"{month:%Y-%m}")],
        headers=[t(N_("Day")), t(N_("Meal period")), *cols, t(N_("Total"))],
        rows=[[d.isoformat(), p, *counts, sum(counts)] for d, p, counts in rows],
        totals=[
            t(N_("Total")),
            None,
            *[sum(r[2][i] for r in rows) for i in range(len(cols))],
            m.report.free_total(),
        ],
    )
    paid_days = sorted(set(m.report.paid) | set(m.report.voucher))
    paid = Sheet(
        title=t(N_("Paid meals and revenue")),
        name=t(N_("Paid meals")),
        subtitle=[school, _kv(t(N_("Month")), f"{month:%Y-%m}")],
        headers=[
            t(N_("Day")),
            t(N_("Paid meals")),
            t(N_("Revenue, tenge")),
            t(N_("Voucher meals")),
        ],
        rows=[
            [d.isoformat(), m.report.paid[d], m.report.paid_tiyn[d] / 100, m.report.voucher[d]]
            for d in paid_days
        ],
        totals=[
            t(N_("Total")),
            sum(m.report.paid.values()),
            sum(m.report.paid_tiyn.values()) / 100,
            sum(m.report.voucher.values()),
        ],
    )
    return [free, paid]


def statement_rows(m: MealMonth) -> list[tuple[dt.date, list[int]]]:
    by_day = m.report.free_by_day()
    return [(d, [by_day[d][c] for c in m.categories]) for d in m.days if d in by_day]


def statement_sheet(t: Translate, school: str, region: str, month: dt.date, m: MealMonth) -> Sheet:
    cols = [category_label(t, c, m.free_grades) for c in m.categories]
    rows = statement_rows(m)
    due = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=5)
    return Sheet(
        title=t(N_("Monthly statement of free hot meals served")),
        name=t(N_("Statement")),
        subtitle=[
            _kv(t(N_("School")), f"{school}"),
            *([_kv(t(N_("Region")), f"{region}")] if region else []),
            _kv(t(N_("Month")), f"{month:%Y-%m}"),
            t(N_("To the education department, due by")) + " " + due.isoformat(),
            t(
                N_(
                    "Counted from the meals served at the school's canteen terminals (one free meal per student per meal period)."
                )
            ),
        ],
        headers=[t(N_("Day")), *cols, t(N_("Total"))],
        rows=[[d.isoformat(), *counts, sum(counts)] for d, counts in rows],
        totals=[
            t(N_("Total")),
            *[sum(r[1][i] for r in rows) for i in range(len(cols))],
            sum(sum(r[1]) for r in rows),
        ],
        signatures=[t(N_("School director")), t(N_("Canteen manager")), t(N_("Social pedagogue"))],
    )


def library_sheet(
    t: Translate,
    school: str,
    class_name: str,
    month: dt.date,
    pupils: Sequence[calc.Pupil],
    visits: dict[str, int],
) -> Sheet:
    return Sheet(
        title=t(N_("Library visits")),
        name=t(N_("Library")),
        subtitle=[
            school,
            _kv(t(N_("Class")), f"{class_name}"),
            _kv(t(N_("Month")), f"{month:%Y-%m}"),
        ],
        headers=[t(N_("Student")), t(N_("Class")), t(N_("Visits"))],
        rows=[[p.name, p.class_name, visits.get(p.ref, 0)] for p in pupils],
        totals=[t(N_("Total")), None, sum(visits.get(p.ref, 0) for p in pupils)],
    )


def library_class_rows(
    pupils: Sequence[calc.Pupil], visits: dict[str, int]
) -> list[tuple[str, int, int, int]]:
    """(class, students, visits, students who visited)."""
    order: list[str] = []
    acc: dict[str, list[int]] = {}
    for p in pupils:
        if p.class_name not in acc:
            order.append(p.class_name)
            acc[p.class_name] = [0, 0, 0]
        n = visits.get(p.ref, 0)
        a = acc[p.class_name]
        a[0] += 1
        a[1] += n
        a[2] += n > 0
    return [(c, *acc[c]) for c in order]  # type: ignore[misc]


def library_summary_sheet(
    t: Translate, school: str, month: dt.date, pupils: Sequence[calc.Pupil], visits: dict[str, int]
) -> Sheet:
    rows = library_class_rows(pupils, visits)
    return Sheet(
        title=t(N_("Library visits by class")),
        name=t(N_("Library")),
        subtitle=[school, _kv(t(N_("Month")), f"{month:%Y-%m}")],
        headers=[t(N_("Class")), t(N_("Students")), t(N_("Visits")), t(N_("Students who visited"))],
        rows=[list(r) for r in rows],
        totals=[t(N_("Total")), *[sum(int(r[i]) for r in rows) for i in range(1, 4)]],
    )


def evacuation_sheet(t: Translate, school: str, when: str, h: Headcount) -> Sheet:
    rows: list[list[Cell]] = [[p.class_name, p.name, ""] for p in h.students]
    rows += [[t(N_("Staff")), name, ""] for _ref, name in h.staff]
    return Sheet(
        title=t(N_("Evacuation headcount")),
        name=t(N_("Headcount")),
        subtitle=[
            school,
            _kv(t(N_("At")), f"{when}"),
            _kv(t(N_("Students inside")), f"{len(h.students)}"),
            _kv(t(N_("Staff inside")), f"{len(h.staff)}"),
        ],
        headers=[t(N_("Class")), t(N_("Name")), t(N_("Checked"))],
        rows=rows,
        totals=[t(N_("Total")), len(h.students) + len(h.staff), None],
        signatures=[t(N_("Deputy director for emergencies"))],
    )
