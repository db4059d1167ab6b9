"""The registry's pure rules against hand-computed values: target groups on a date, a roadmap's
plan versus fact, the reminders due, the annual statistics by region, the teachers of
prize-winners."""

from __future__ import annotations

import datetime as dt

import pytest

from server.gifted import rules
from server.gifted.rules import (
    ActivityFact,
    EntryYear,
    Membership,
    Prize,
    SupportFact,
    TargetGroup,
)
from server.gifted.service import GiftedError, parse_nomination, parse_result, parse_tenge

D = dt.date
LARGE = Membership("large_family", D(2026, 1, 1), D(2026, 6, 30))
POOR = Membership("targeted_assistance", D(2026, 9, 1), D(2027, 5, 31))
ORPHAN = Membership("orphan", D(2020, 1, 1), D(2030, 1, 1))


def test_target_groups_on_a_date() -> None:
    tg = rules.target_groups
    # rural: whatever the family
    assert tg("rural", [], D(2026, 3, 1)) == {TargetGroup.RURAL}
    assert tg("rural", [LARGE], D(2026, 3, 1)) == {TargetGroup.RURAL}
    # urban: while a category of that kind is valid (inclusive dates)
    assert tg("urban", [LARGE], D(2026, 6, 30)) == {TargetGroup.URBAN_LARGE_FAMILY}
    assert tg("urban", [LARGE], D(2026, 7, 1)) == frozenset()
    assert tg("urban", [LARGE, POOR], D(2026, 9, 1)) == {TargetGroup.URBAN_LOW_INCOME}
    # an orphan's category is not one of the decree's family groups
    assert tg("urban", [ORPHAN], D(2026, 3, 1)) == frozenset()
    # a period: any day of it counts
    assert tg("urban", [LARGE, POOR], D(2026, 1, 1), D(2026, 12, 31)) == {
        TargetGroup.URBAN_LARGE_FAMILY,
        TargetGroup.URBAN_LOW_INCOME,
    }
    # a school of unknown locality: no group until it is set
    assert tg(None, [LARGE], D(2026, 3, 1)) == frozenset()


def test_percent_rounds_half_up() -> None:
    assert rules.percent(1, 8) == 12.5
    assert rules.percent(1, 3) == 33.3
    assert rules.percent(2, 3) == 66.7
    assert rules.percent(1, 16) == 6.3  # 6.25 -> 6.3 (half up, not to even)
    assert rules.percent(0, 0) is None


def _a(
    kind: str, start: D, end: D, status: str, done: D | None = None, place: int | None = None
) -> ActivityFact:
    return ActivityFact(kind, start, end, status, done, place, title=f"{kind} {start}")


def test_plan_versus_fact() -> None:
    today = D(2026, 5, 15)
    acts = [
        _a(
            "olympiad", D(2026, 2, 10), D(2026, 2, 12), "done", D(2026, 2, 12), 2
        ),  # due, done, prize
        _a("camp", D(2026, 3, 1), D(2026, 3, 10), "done", D(2026, 3, 10), None),  # due, done
        _a("technopark", D(2026, 4, 1), D(2026, 4, 30), "planned"),  # due, overdue
        _a("contest", D(2026, 4, 5), D(2026, 4, 5), "missed"),  # due, missed
        _a("summer_school", D(2026, 6, 1), D(2026, 6, 20), "planned"),  # not yet due
        _a("olympiad", D(2026, 1, 10), D(2026, 1, 10), "cancelled"),  # left out
    ]
    sup = [
        SupportFact("stipend", D(2026, 1, 31), 2_000_000, D(2026, 2, 2), 2_000_000),
        SupportFact("trip", D(2026, 4, 1), 15_000_000, None, None),  # due, not paid
        SupportFact("grant", D(2026, 9, 1), 50_000_000, None, None),  # not due
    ]
    pf = rules.plan_fact(acts, sup, today)
    assert pf.activities_planned == 5
    assert pf.activities_due == 4
    assert pf.activities_done == 2
    assert pf.activities_overdue == 1
    assert pf.activities_missed == 1
    assert pf.prizes == 1
    assert pf.done_percent == 50.0  # 2 of 4 due
    assert pf.support_planned_tiyn == 67_000_000
    assert pf.support_due_tiyn == 17_000_000
    assert pf.support_paid_tiyn == 2_000_000
    assert pf.support_overdue == 1
    assert pf.paid_percent == 11.8  # 2 / 17 = 11.76...


def test_due_soon_lists_starts_ahead_results_waiting_and_unpaid_support() -> None:
    today = D(2026, 5, 15)
    acts = [
        (1, _a("camp", D(2026, 5, 20), D(2026, 5, 30), "planned")),  # starts in 5 days
        (2, _a("camp", D(2026, 6, 20), D(2026, 6, 30), "planned")),  # too far
        (3, _a("olympiad", D(2026, 5, 1), D(2026, 5, 2), "planned")),  # ended: result awaited
        (4, _a("olympiad", D(2026, 5, 16), D(2026, 5, 16), "done", D(2026, 5, 16))),  # done
    ]
    sup = [
        (7, SupportFact("trip", D(2026, 5, 18), 100, None, None)),
        (8, SupportFact("trip", D(2026, 5, 10), 100, D(2026, 5, 10), 100)),  # paid
        (9, SupportFact("grant", D(2026, 4, 1), 100, None, None)),  # overdue
    ]
    due = rules.due_soon(acts, sup, today, 7)
    assert [(d.item, d.item_pk, d.due_on) for d in due] == [
        ("support", 9, D(2026, 4, 1)),
        ("activity", 3, D(2026, 5, 2)),
        ("support", 7, D(2026, 5, 18)),
        ("activity", 1, D(2026, 5, 20)),
    ]


def test_annual_statistics_by_region() -> None:
    olymp = _a("olympiad", D(2026, 3, 1), D(2026, 3, 1), "done", D(2026, 3, 1), 1)
    camp = _a("camp", D(2026, 7, 1), D(2026, 7, 10), "done", D(2026, 7, 10))
    old = _a("olympiad", D(2025, 3, 1), D(2025, 3, 1), "done", D(2025, 3, 1), 2)  # other year
    stipend = SupportFact("stipend", D(2026, 2, 1), 5_000_000, D(2026, 2, 1), 5_000_000)
    trip = SupportFact("trip", D(2026, 12, 20), 9_000_000, D(2027, 1, 5), 9_000_000)  # paid 2027
    entries = [
        EntryYear(
            "R1", D(2025, 9, 1), frozenset({TargetGroup.RURAL}), (olymp, camp, old), (stipend,)
        ),
        EntryYear("R1", D(2026, 2, 1), frozenset({TargetGroup.RURAL}), (camp,), (trip,)),
        EntryYear(
            "R1",
            D(2026, 3, 1),
            frozenset({TargetGroup.URBAN_LARGE_FAMILY, TargetGroup.URBAN_LOW_INCOME}),
            (olymp,),
        ),
        EntryYear("R2", D(2026, 1, 10), frozenset({TargetGroup.URBAN_LOW_INCOME})),
        EntryYear("R2", D(2026, 5, 1), frozenset()),
        EntryYear("R2", D(2027, 1, 10), frozenset({TargetGroup.RURAL})),  # entered next year
    ]
    r1, r2 = rules.annual_statistics(entries, 2026)
    assert (r1.region, r1.gifted, r1.rural, r1.urban_large_or_low_income) == ("R1", 3, 2, 1)
    assert (r1.urban_large_family, r1.urban_low_income, r1.other) == (1, 1, 0)
    assert dict(r1.activities_done) == {"olympiad": 2, "camp": 2}
    assert r1.activities_total == 4
    assert dict(r1.support_paid_tiyn) == {"stipend": 5_000_000}
    assert (r1.prizes, r1.prize_winners) == (2, 2)
    assert (r2.region, r2.gifted, r2.rural, r2.urban_large_or_low_income, r2.other) == (
        "R2",
        2,
        0,
        1,
        1,
    )
    assert r2.activities_total == 0 and r2.support_total_tiyn == 0
    total = rules.statistics_total([r1, r2])
    assert (total.gifted, total.rural, total.urban_large_or_low_income, total.other) == (5, 2, 2, 1)
    assert total.prizes == 2


def test_prize_teachers_ranks_and_counts_each_prize_once() -> None:
    prizes = [
        Prize(10, 1, D(2026, 3, 1), 1, "Region maths olympiad"),
        Prize(10, 1, D(2026, 3, 1), 1, "Region maths olympiad"),  # the same result twice
        Prize(10, 2, D(2026, 4, 1), 3, "City physics olympiad"),
        Prize(20, 3, D(2026, 3, 1), 1, "Chess"),
        Prize(20, 4, D(2026, 3, 2), 2, "Chess"),
        Prize(30, 5, D(2026, 5, 1), 4, "Fourth place"),  # not a prize
        Prize(40, 6, D(2025, 5, 1), 1, "Last year"),  # another year
    ]
    out = rules.prize_teachers(prizes, 2026)
    # 10 and 20 tie on prizes, first places and children: the lower key first
    assert [(t.teacher_key, t.prizes, t.firsts, len(t.students)) for t in out] == [
        (10, 2, 1, 2),
        (20, 2, 1, 2),
    ]
    assert out[0].what == ["Region maths olympiad", "City physics olympiad"]


def test_parsers_name_the_bad_field() -> None:
    today = D(2026, 5, 15)
    ok = parse_nomination(
        "olympiad", "Maths", "Region olympiad", "region", "2", "", "", "2026-03-01", today
    )
    assert (ok.place, ok.level, ok.score) == (2, "region", None)
    bad = [
        (("magic", "Maths", "", "", "", "", "", "2026-03-01"), "basis"),
        (("olympiad", "Maths", "Olympiad", "", "", "", "", "2026-03-01"), "place"),
        (("test", "Maths", "Diagnostic", "", "", "101", "", "2026-03-01"), "score"),
        (("test", "Maths", "Diagnostic", "", "", "", "", "2026-03-01"), "score"),
        (("teacher", "", "", "", "", "", "", "2026-03-01"), "subject"),
        (("teacher", "Maths", "", "", "", "", "", "2026-06-01"), "nominated_on"),
        (("teacher", "Maths", "", "galactic", "", "", "", "2026-03-01"), "level"),
    ]
    for args, field in bad:
        with pytest.raises(GiftedError) as err:
            parse_nomination(*args, today)
        assert err.value.field == field, args
    assert parse_tenge("amount", "150 000,50") == 15_000_050
    assert parse_tenge("amount", "20000") == 2_000_000
    for text in ("0", "-5", "1e9", "NaN", "12,345", "99999999999999"):
        with pytest.raises(GiftedError):
            parse_tenge("amount", text)
    with pytest.raises(GiftedError) as err:
        parse_result("planned", "", "", "1", today)
    assert err.value.field == "status"
    assert parse_result("done", "2026-05-01", "2nd place", "2", today).place == 2


def test_tutoring_results_come_from_the_tutoring_module_when_it_is_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types
    from dataclasses import dataclass

    from server.gifted.service import tutoring_results

    if "server.tutoring" not in sys.modules:
        try:
            import server.tutoring  # noqa: F401
        except ModuleNotFoundError:
            assert tutoring_results(None, 1) == []  # type: ignore[arg-type]

    @dataclass
    class CourseResult:
        direction: str
        subject: str
        hours: int
        before: float | None
        after: float | None

    fake = types.ModuleType("server.tutoring.service")
    fake.course_results_for_student = lambda db, pk: (
        [  # type: ignore[attr-defined]
            CourseResult("English", "", 48, 46.0, 75.0)
        ]
        if pk == 7
        else []
    )
    monkeypatch.setitem(sys.modules, "server.tutoring", types.ModuleType("server.tutoring"))
    monkeypatch.setitem(sys.modules, "server.tutoring.service", fake)
    [got] = tutoring_results(None, 7)  # type: ignore[arg-type]
    assert (got.direction, got.hours, got.before, got.after) == ("English", 48, 46.0, 75.0)
    assert tutoring_results(None, 8) == []  # type: ignore[arg-type]
