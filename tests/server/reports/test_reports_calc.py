"""The reports' arithmetic on hand-made events (no database): local days, late arrivals, absences,
manual passes, passes not taken, free-meal categories, the evacuation rule, exports and charts."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from server.reports import calc
from server.reports.calc import Ev, Membership, Pupil
from server.reports.export import Sheet, disposition, filename, to_pdf, to_xlsx
from server.reports.svg import day_chart

ALMATY = "Asia/Almaty"  # UTC+5 (no DST)
UTC = dt.UTC


def ms(y: int, mo: int, d: int, h: int, mi: int = 0, tz: dt.tzinfo = UTC) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp() * 1000)


def local_ms(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return ms(y, mo, d, h, mi, ZoneInfo(ALMATY))


A = Pupil(1, "a", "Abai A", 10, "3A", 3, 1)
B = Pupil(2, "b", "Bota B", 10, "3A", 3, 1)
C = Pupil(3, "c", "Chingiz C", 20, "7B", 7, 2)
STARTS = {1: "08:00", 2: "13:30"}
DAY = dt.date(2026, 11, 20)


def test_an_event_at_2330_utc_belongs_to_the_next_local_day() -> None:
    at = ms(2026, 11, 19, 23, 30)
    assert calc.local_day(at, ALMATY) == DAY
    assert calc.local_clock(at, ALMATY) == "04:30"
    start, end = calc.day_bounds(DAY, ALMATY)
    assert start == ms(2026, 11, 19, 19, 0) and end == ms(2026, 11, 20, 19, 0)
    rows = calc.attendance_day([A], [Ev(at, "entry", "a")], ALMATY, DAY, STARTS)
    assert rows[0].arrival_ms == at and not rows[0].absent
    rows = calc.attendance_day([A], [Ev(at, "entry", "a")], ALMATY, DAY - dt.timedelta(1), STARTS)
    assert rows[0].absent


def test_first_arrival_last_departure_late_and_absent() -> None:
    evs = [
        Ev(local_ms(2026, 11, 20, 7, 55), "entry", "a", seq=1),
        Ev(local_ms(2026, 11, 20, 10, 0), "exit", "a", seq=2),
        Ev(local_ms(2026, 11, 20, 10, 20), "entry", "a", seq=3),
        Ev(local_ms(2026, 11, 20, 14, 5), "exit", "a", seq=4),
        Ev(local_ms(2026, 11, 20, 8, 1), "entry", "b", seq=5),  # a minute late
        Ev(local_ms(2026, 11, 20, 13, 30), "entry", "x-unknown", seq=6),
    ]
    rows = {r.pupil.ref: r for r in calc.attendance_day([A, B, C], evs, ALMATY, DAY, STARTS)}
    assert calc.local_clock(rows["a"].arrival_ms, ALMATY) == "07:55"
    assert calc.local_clock(rows["a"].departure_ms, ALMATY) == "14:05"
    assert not rows["a"].late
    assert rows["b"].late and rows["b"].departure_ms is None
    assert rows["c"].absent and not rows["c"].late


def test_late_is_against_the_pupils_own_shift_and_on_the_minute() -> None:
    on_time = [Ev(local_ms(2026, 11, 20, 8, 0) + 59_000, "entry", "a")]
    assert not calc.attendance_day([A], on_time, ALMATY, DAY, STARTS)[0].late
    second_shift = [Ev(local_ms(2026, 11, 20, 13, 0), "entry", "c")]
    assert not calc.attendance_day([C], second_shift, ALMATY, DAY, STARTS)[0].late
    assert not calc.attendance_day([C], second_shift, ALMATY, DAY, {})[0].late  # no start known


def test_manual_passes_name_who_authorised_them() -> None:
    evs = [
        Ev(
            local_ms(2026, 11, 20, 8, 10),
            "manual_pass",
            "a",
            payload={"authorised_by": "t-1", "direction": "in", "student_id": "a"},
        ),
        Ev(
            local_ms(2026, 11, 20, 12, 0),
            "manual_pass",
            "a",
            payload={"authorised_by": "t-9", "direction": "out", "student_id": "a"},
        ),
    ]
    row = calc.attendance_day([A], evs, ALMATY, DAY, STARTS, {"t-1": "Teacher One"})[0]
    assert row.late and calc.local_clock(row.arrival_ms, ALMATY) == "08:10"
    assert calc.local_clock(row.departure_ms, ALMATY) == "12:00"
    assert [(m.direction, m.authorised_by) for m in row.manual_passes] == [
        ("in", "Teacher One"),
        ("out", "t-9"),  # unknown staff: their ref
    ]


def test_a_granted_pass_not_taken_does_not_count() -> None:
    evs = [
        Ev(local_ms(2026, 11, 20, 7, 50), "entry", "a", device_pk=1, seq=7),
        Ev(
            local_ms(2026, 11, 20, 7, 50),
            "not_passed",
            "a",
            payload={"granted_seq": 7},
            device_pk=1,
            seq=8,
        ),
        Ev(local_ms(2026, 11, 20, 8, 20), "entry", "a", device_pk=1, seq=9),
    ]
    row = calc.attendance_day([A], evs, ALMATY, DAY, STARTS)[0]
    assert calc.local_clock(row.arrival_ms, ALMATY) == "08:20" and row.late
    # the same seq on another device is another event
    evs[1] = Ev(evs[1].at_ms, "not_passed", "a", payload={"granted_seq": 7}, device_pk=2, seq=8)
    assert (
        calc.local_clock(calc.attendance_day([A], evs, ALMATY, DAY, STARTS)[0].arrival_ms, ALMATY)
        == "07:50"
    )


def test_month_counts_school_days_only() -> None:
    d1, d2, d3 = dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 4)
    evs = [
        Ev(local_ms(2026, 11, 2, 7, 40), "entry", "a"),
        Ev(local_ms(2026, 11, 3, 8, 30), "entry", "a"),  # late
        Ev(local_ms(2026, 11, 2, 7, 45), "entry", "b"),
        Ev(local_ms(2026, 11, 4, 7, 45), "entry", "c"),
    ]
    days = calc.open_days(evs, ALMATY)
    assert days == {d1, d2, d3}
    rows = {r.pupil.ref: r for r in calc.attendance_month([A, B], evs, ALMATY, days, STARTS)}
    assert (rows["a"].present, rows["a"].late, rows["a"].absent) == (2, 1, 1)
    assert (rows["b"].present, rows["b"].late, rows["b"].absent) == (1, 0, 2)
    per_day = calc.present_per_day(["a", "b"], evs, ALMATY, [d1, d2, d3])
    assert per_day == [(d1, 2), (d2, 1), (d3, 0)]


def test_month_days_and_bounds() -> None:
    assert len(calc.month_days(dt.date(2028, 2, 1))) == 29
    assert calc.parse_month("2026-11") == dt.date(2026, 11, 1)
    with pytest.raises(ValueError, match="not YYYY-MM"):
        calc.parse_month("11/2026")


def test_free_meal_categories() -> None:
    day = dt.date(2026, 11, 20)
    orphan = Membership("orphan", dt.date(2026, 9, 1), dt.date(2027, 5, 31))
    expired = Membership("large_family", dt.date(2025, 9, 1), dt.date(2026, 5, 31))
    cats = ["large_family", "orphan"]
    assert calc.free_category(3, [orphan], day, [1, 2, 3, 4], cats) == calc.GRADES
    assert calc.free_category(7, [orphan], day, [1, 2, 3, 4], cats) == "orphan"
    assert calc.free_category(7, [expired], day, [1, 2, 3, 4], cats) == calc.OTHER
    assert calc.free_category(7, [orphan], day, [1, 2, 3, 4], ["large_family"]) == calc.OTHER


def test_meal_report_counts_per_day_period_category_and_paid_revenue() -> None:
    def meal(ref: str, meal: str, period: str, local_date: str, at: int, amount: int = 0) -> Ev:
        return Ev(
            at,
            "meal_served",
            ref,
            payload={
                "meal": meal,
                "period": period,
                "local_date": local_date,
                "amount_tiyn": amount,
            },
        )

    # 23:50 UTC on the 19th is the 20th at the school: the edge's local_date says so too.
    late_utc = ms(2026, 11, 19, 23, 50)
    evs = [
        meal("a", "free", "breakfast", "2026-11-20", late_utc),
        meal("b", "free", "breakfast", "2026-11-20", late_utc),
        meal("c", "free", "lunch", "2026-11-20", local_ms(2026, 11, 20, 13, 0)),
        meal("d", "paid", "lunch", "2026-11-20", local_ms(2026, 11, 20, 13, 0), 45_000),
        meal("d", "paid", "lunch", "2026-11-21", local_ms(2026, 11, 21, 13, 0), 50_050),
        meal("e", "voucher", "lunch", "2026-11-21", local_ms(2026, 11, 21, 13, 0)),
    ]
    grades = {"a": 1, "b": 4, "c": 8, "d": 9, "e": 9}
    members = {"c": [Membership("orphan", dt.date(2026, 9, 1), dt.date(2027, 5, 31))]}
    rep = calc.meal_report(evs, ALMATY, grades, members, [1, 2, 3, 4], ["large_family", "orphan"])
    assert rep.free == {(DAY, "breakfast", calc.GRADES): 2, (DAY, "lunch", "orphan"): 1}
    assert rep.paid[DAY] == 1 and rep.paid_tiyn[DAY] == 45_000
    assert rep.paid[DAY + dt.timedelta(1)] == 1 and rep.paid_tiyn[DAY + dt.timedelta(1)] == 50_050
    assert rep.voucher[DAY + dt.timedelta(1)] == 1
    assert rep.categories(["large_family", "orphan"]) == [calc.GRADES, "large_family", "orphan"]
    assert rep.free_by_day()[DAY] == {calc.GRADES: 2, "orphan": 1}
    assert rep.free_total() == 3


def test_evacuation_rule_last_pass_decides() -> None:
    moves = [
        calc.LastMove("a", None, "entry", None, 1),
        calc.LastMove("b", None, "exit", None, 2),
        calc.LastMove("c", None, "manual_pass", "in", 3),
        calc.LastMove("d", None, "manual_pass", "out", 4),
        calc.LastMove(None, "t-1", "entry", None, 5),
    ]
    assert calc.inside(moves) == ({"a", "c"}, {"t-1"})


def test_active_alarms_newest_per_code_wins() -> None:
    def alarm(at: int, code: str, active: bool, terminal: str = "gate-1") -> Ev:
        return Ev(
            at,
            "alarm",
            payload={"code": code, "active": active, "terminal": terminal},
            device_pk=1,
            seq=at,
        )

    evs = [
        alarm(1, "reader_offline", True),
        alarm(2, "reader_offline", False),
        alarm(3, "gate_fault", True),
        alarm(4, "reader_offline", True, "gate-2"),
    ]
    active = calc.active_alarms(evs)
    assert sorted((e.payload["code"], e.payload["terminal"]) for e in active) == [
        ("gate_fault", "gate-1"),
        ("reader_offline", "gate-2"),
    ]


def test_library_counts() -> None:
    evs = [
        Ev(1, "library_visit", "a"),
        Ev(2, "library_visit", "a"),
        Ev(3, "library_visit", "b"),
        Ev(4, "entry", "a"),
    ]
    assert calc.library_counts(evs) == {"a": 2, "b": 1}


def test_device_line_reads_the_status_document() -> None:
    line = calc.device_line(
        "edge-1", False, 5, 6, {"backlog": 12, "readers_offline": ["gate-2"]}, [[3, 4]]
    )
    assert (line.backlog, line.readers_offline, line.gaps, line.online) == (
        12,
        ("gate-2",),
        1,
        False,
    )
    assert calc.device_line("e", True, None, None, None, None).backlog == 0


def test_exports_xlsx_numbers_and_pdf_with_kazakh_letters() -> None:
    sheet = Sheet(
        title="Тегін тамақ: ӘҒҚҢӨҰҮҺІ әғқңөұүһі",
        subtitle=["№1 мектеп"],
        headers=["Күн", "Сыныптар 1–4", "Барлығы"],
        rows=[["2026-11-20", 5, 5], ["2026-11-21", 7, 7]],
        totals=["Барлығы", 12, 12],
        signatures=["Директор"],
    )
    wb = load_workbook(io.BytesIO(to_xlsx([sheet])))
    ws = wb.active
    assert ws is not None
    values = [r for r in ws.iter_rows(values_only=True)]
    assert values[0][0] == sheet.title
    assert ("2026-11-20", 5, 5) in values and ("Барлығы", 12, 12) in values
    pdf = to_pdf([sheet], subject="School No. 1")
    assert pdf.startswith(b"%PDF") and b"School No. 1" in pdf
    assert b"DejaVu" in pdf  # the Unicode font is embedded (Kazakh letters have glyphs)
    assert (
        filename("attendance", "S1", "3A", "2026-11-20", ext="pdf")
        == "attendance_S1_3A_2026-11-20.pdf"
    )
    cyrillic = disposition("attendance", "S1", "Ә", "2026-11-20", ext="pdf")
    assert 'filename="attendance_S1_2026-11-20.pdf"' in cyrillic
    assert "filename*=UTF-8''attendance_S1_%D3%98_2026-11-20.pdf" in cyrillic


def test_pdf_refuses_clearly_without_its_font(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from server.reports import export

    monkeypatch.setattr(export, "FONT", tmp_path / "missing.ttf")
    with pytest.raises(export.FontMissing, match="DejaVu Sans font"):
        to_pdf([Sheet(title="x")])


def test_chart_is_accessible_svg() -> None:
    svg = str(
        day_chart("c1", "Present <per> day", "1: 3, 2: 5", [(1, 3), (2, 5), (3, 0)], "present")
    )
    assert svg.startswith("<svg") and 'role="img"' in svg and 'aria-labelledby="c1-t c1-d"' in svg
    assert '<title id="c1-t">Present &lt;per&gt; day</title>' in svg
    assert svg.count("<rect") == 3 and "2: 5 present" in svg
    assert "style=" not in svg  # the CSP forbids inline styles


_MOVE = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["entry", "exit", "manual_in", "manual_out"]),
    st.integers(min_value=-6 * 60, max_value=30 * 60),  # minutes from local midnight of DAY
)


@given(st.lists(_MOVE, max_size=30))
def test_attendance_day_properties(moves: list[tuple[str, str, int]]) -> None:
    base = local_ms(2026, 11, 20, 0, 0)
    evs = []
    for i, (ref, what, minute) in enumerate(moves):
        kind = "manual_pass" if what.startswith("manual") else what
        payload = (
            {"direction": what.removeprefix("manual_"), "authorised_by": "t"}
            if kind == "manual_pass"
            else {}
        )
        evs.append(Ev(base + minute * 60_000, kind, ref, payload=payload, seq=i + 1))
    rows = calc.attendance_day([A, B, C], evs, ALMATY, DAY, STARTS)
    assert len(rows) == 3
    start, end = calc.day_bounds(DAY, ALMATY)
    for r in rows:
        ins = [
            e.at_ms
            for e in evs
            if e.student_id == r.pupil.ref and calc.direction(e) == "in" and start <= e.at_ms < end
        ]
        assert r.absent == (not ins)
        if ins:
            assert r.arrival_ms == min(ins)
            assert r.late == calc.is_late(min(ins), ALMATY, STARTS[r.pupil.shift])
        if r.departure_ms is not None:
            # a departure without an arrival stays visible (came in without a pass: absent
            # by the record, yet seen leaving), but never one from before the arrival
            assert start <= r.departure_ms < end
            assert r.arrival_ms is None or r.departure_ms >= r.arrival_ms
        assert len(r.manual_passes) == sum(
            1
            for e in evs
            if e.student_id == r.pupil.ref and e.kind == "manual_pass" and start <= e.at_ms < end
        )
