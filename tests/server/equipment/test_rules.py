"""The pure core: coverage against seed 000's district table (hand-computed), the priority list
(properties), approval steps, acceptance against the specification, risk signals, lending."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.equipment.calc import (
    Counts,
    Row,
    StudentFact,
    coverage,
    report_json,
    row_problems,
    school_counts,
)
from server.equipment.rules import (
    ORDER_79_MINIMUMS,
    Applicant,
    ContractState,
    EquipmentError,
    LendCheck,
    ListStatus,
    Signal,
    Step,
    applicant_key,
    check_lend,
    check_return,
    new_version_allowed,
    next_status,
    parse_lending_event,
    parse_properties,
    priority_list,
    risk_signals,
    spec_mismatches,
)
from server.equipment.seed000 import DISTRICTS


def seed_rows() -> list[Row]:
    return [Row(d, Counts(*nums)) for d, *nums in DISTRICTS]


# -------------------------------------------------------------------------------- coverage


def test_seed_table_reproduced_with_ridder_flagged_not_summed() -> None:
    order = [d[0] for d in DISTRICTS]
    rep = coverage("VKO", "2020", seed_rows(), order=order)
    assert [d.district for d in rep.districts] == order
    abai = rep.districts[0]
    assert abai.counts == Counts(12, 2483, 1717, 766, 163, 47, 22, 5)
    urzhar = next(d for d in rep.districts if d.district == "Үржар")
    assert urzhar.counts == Counts(51, 12328, 9344, 2984, 771, 221, 100, 26)
    # Ridder: 6,993 students, 7,051 with a computer, -58 without: flagged with its reasons.
    assert len(rep.flagged) == 1
    ridder = rep.flagged[0]
    assert ridder.district == "Риддер"
    assert "with_computer (7051) exceeds students (6993)" in ridder.problems
    assert "without_computer is negative (-58)" in ridder.problems
    assert "needy_students (9) exceeds without_computer (-58)" in ridder.problems
    assert next(d for d in rep.districts if d.district == "Риддер").counts == Counts()
    # Hand-computed: the seed's printed total minus Ridder's row.
    assert rep.total == Counts(
        647 - 15,
        193_212 - 6_993,
        156_682 - 7_051,
        36_530 + 58,
        4_021 - 9,
        1_154 - 4,
        530,
        132,
    )
    # The total as submitted is the seed's printed "барлығы" row.
    assert rep.total_as_submitted == Counts(647, 193_212, 156_682, 36_530, 4_021, 1_154, 530, 132)
    js = report_json(rep)
    assert js["total"] == {
        "schools": 632,
        "students": 186_219,
        "with_computer": 149_631,
        "without_computer": 36_588,
        "needy_students": 4_012,
        "needy_families": 1_150,
        "uncovered_students": 530,
        "uncovered_families": 132,
    }


def test_every_other_seed_row_is_valid() -> None:
    rep = coverage("VKO", "2020", seed_rows())
    assert sum(len(d.flagged) for d in rep.districts) == 1


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        (
            Counts(1, 10, 4, 5, 0, 0, 0, 0),
            "with_computer + without_computer (4 + 5) is not students (10)",
        ),
        (Counts(1, 10, 5, 5, 6, 2, 0, 0), "needy_students (6) exceeds without_computer (5)"),
        (Counts(1, 10, 5, 5, 3, 4, 0, 0), "needy_families (4) exceeds needy_students (3)"),
        (Counts(1, 10, 5, 5, 3, 2, 4, 1), "uncovered_students (4) exceeds needy_students (3)"),
        (Counts(1, 10, 5, 5, 3, 1, 2, 2), "uncovered_families (2) exceeds needy_families (1)"),
        (Counts(0, 10, 5, 5, 0, 0, 0, 0), "students (10) without a school"),
    ],
)
def test_impossible_rows_are_flagged_with_the_reason(counts: Counts, reason: str) -> None:
    rep = coverage("R", "p", [Row("D", counts, "S1")])
    assert rep.total == Counts()
    assert reason in rep.flagged[0].problems


def test_per_student_records_replace_the_schools_aggregate() -> None:
    rows = [
        Row("D", Counts(1, 100, 60, 40, 10, 4, 5, 2), "S1"),
        Row("D", Counts(1, 50, 30, 20, 5, 2, 1, 1), "S2"),
    ]
    facts = [
        StudentFact(1, "f1", False, True, False),
        StudentFact(2, "f1", False, True, True),
        StudentFact(3, "f2", True, False, False),
        StudentFact(4, "f3", False, False, False),
    ]
    own = school_counts(facts)
    assert own == Counts(1, 4, 1, 3, 2, 1, 1, 1)
    rep = coverage("R", "p", rows, per_student={"S1": ("D", own)})
    assert rep.total == Counts(2, 54, 31, 23, 7, 3, 2, 2)
    assert rep.per_student_schools == ("S1",)


# --------------------------------------------------------------------------- priority list

applicants = st.lists(
    st.builds(
        Applicant,
        student=st.integers(1, 60),
        family=st.sampled_from(["a", "b", "c", "d", "e"]),
        has_computer=st.booleans(),
        needy=st.booleans(),
        applied_at_ms=st.integers(0, 1000),
    ),
    max_size=40,
)


@given(applicants)
def test_priority_list_one_place_per_child_without_a_computer(apps: list[Applicant]) -> None:
    ranked = priority_list(apps)
    students = [r.student for r in ranked]
    assert len(students) == len(set(students))
    first = {}
    for a in sorted(apps, key=applicant_key):
        first.setdefault(a.student, a)
    assert set(students) == {s for s, a in first.items() if not a.has_computer}
    assert [r.rank for r in ranked] == list(range(1, len(ranked) + 1))


@given(applicants)
def test_priority_order_needy_then_family_size_then_time_then_id(apps: list[Applicant]) -> None:
    ranked = priority_list(apps)
    first = {}
    for a in sorted(apps, key=applicant_key):
        first.setdefault(a.student, a)
    keys = [
        (not r.priority, -r.family_uncovered, first[r.student].applied_at_ms, r.student)
        for r in ranked
    ]
    assert keys == sorted(keys)
    # needy children all come before the others
    flags = [r.priority for r in ranked]
    assert flags == sorted(flags, reverse=True)


@given(applicants, st.randoms())
def test_priority_list_never_depends_on_input_order(apps: list[Applicant], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(apps)
    rnd.shuffle(shuffled)
    assert priority_list(shuffled) == priority_list(apps)


def test_priority_hand_example_and_already_covered() -> None:
    apps = [
        Applicant(10, "small", False, True, 5),
        Applicant(11, "big", False, True, 9),
        Applicant(12, "big", False, True, 8),
        Applicant(13, "other", False, False, 1),
        Applicant(14, "rich", True, True, 1),
    ]
    assert [r.student for r in priority_list(apps)] == [12, 11, 10, 13]
    assert [r.student for r in priority_list(apps, already_covered=[12])] == [10, 11, 13]


# ------------------------------------------------------------------------------- approvals


def test_approval_flow_and_frozen_versions() -> None:
    s = next_status("draft", Step.PROPOSE)
    assert s is ListStatus.PROPOSED
    with pytest.raises(EquipmentError, match="not possible"):
        next_status(s, Step.REGION)  # the district approves first
    s = next_status(s, Step.DISTRICT)
    s = next_status(s, Step.REGION)
    assert s is ListStatus.APPROVED
    with pytest.raises(EquipmentError, match="frozen"):
        next_status(s, Step.RETURN)
    with pytest.raises(EquipmentError, match="needs a reason"):
        new_version_allowed("approved", "  ")
    new_version_allowed("approved", "a family moved in")
    with pytest.raises(EquipmentError, match="in approval"):
        new_version_allowed("proposed", "x")
    assert next_status("district_approved", Step.RETURN) is ListStatus.DRAFT


# ------------------------------------------------------------------------------ acceptance


def test_acceptance_against_order_79() -> None:
    good = parse_properties(
        "cpu_cores=4; ram_gb=8; storage_gb=128; screen_in=14; warranty_months=24; os=Windows 11"
    )
    assert spec_mismatches(ORDER_79_MINIMUMS, good) == []
    bad = dict(good, ram_gb=2, os="DOS")
    assert spec_mismatches(ORDER_79_MINIMUMS, bad) == [
        "ram_gb: 2 is below the minimum 4",
        "os: 'DOS' is not one of Windows 10, Windows 11, Android, Linux, ChromeOS",
    ]
    missing = {k: v for k, v in good.items() if k != "storage_gb"}
    assert spec_mismatches(ORDER_79_MINIMUMS, missing) == [
        "storage_gb: missing (needs at least 64)"
    ]
    with pytest.raises(EquipmentError, match="Unknown device property"):
        parse_properties("gpu=yes")
    with pytest.raises(EquipmentError, match="number"):
        parse_properties("ram_gb=lots")


# ---------------------------------------------------------------------------- risk signals


def test_risk_signals() -> None:
    today = dt.date(2021, 9, 1)
    sigs = risk_signals(
        today=today,
        goal_tiyn=79_500_000_00,
        paid_tiyn=60_000_000_00,
        pledged_tiyn=70_000_000_00,
        planned_unit_price_tiyn=150_000_00,
        contracts=[
            ContractState("K-1", 160_000_00, 100, 100, dt.date(2021, 8, 1)),
            ContractState("K-2", 140_000_00, 100, 90, dt.date(2021, 8, 20)),
        ],
        rejected=1,
        deadline=dt.date(2021, 8, 20),
    )
    assert [s.signal for s in sigs] == [
        Signal.MONEY_SHORT,
        Signal.PRICE_ABOVE_PLAN,
        Signal.LATE_DELIVERY,
        Signal.SPEC_MISMATCH,
    ]
    assert sigs[2].detail == "K-2: 90/100, 2021-08-20"
    assert sigs[0].detail == "70\u00a0000\u00a0000 / 79\u00a0500\u00a0000 ₸"
    assert (
        risk_signals(
            today=dt.date(2021, 3, 1),
            goal_tiyn=100,
            paid_tiyn=100,
            pledged_tiyn=0,
            planned_unit_price_tiyn=10,
            contracts=[ContractState("K", 10, 5, 0, dt.date(2021, 8, 1))],
            rejected=0,
            deadline=dt.date(2021, 8, 20),
        )
        == []
    )


# ---------------------------------------------------------------------------------- lending


def test_lending_rules() -> None:
    ok = LendCheck("device", "in_stock", "S1", "S1", True, False)
    check_lend(ok)
    for bad, msg in [
        (LendCheck("device", "in_stock", "S1", "S1", False, False), "not on the approved list"),
        (LendCheck("device", "in_stock", "S1", "S1", True, True), "already holds a device"),
        (LendCheck("device", "lent", "S1", "S1", True, False), "not in stock"),
        (LendCheck("book", "in_stock", "S2", "S1", False, False), "another school"),
    ]:
        with pytest.raises(EquipmentError, match=msg):
            check_lend(bad)
    check_lend(LendCheck("textbook", "in_stock", "S1", "S1", False, False))  # no list for books
    with pytest.raises(EquipmentError, match="not lent"):
        check_return("in_stock", False)
    check_return("lent", True)


def test_lending_event_shape() -> None:
    ev = parse_lending_event(
        "equipment_lend", "st-1", {"inventory_no": "INV-1", "at_ms": 5, "act_ref": "act-7"}
    )
    assert (ev.student_id, ev.inventory_no, ev.at_ms, ev.act_ref) == ("st-1", "INV-1", 5, "act-7")
    with pytest.raises(EquipmentError):
        parse_lending_event("equipment_lend", None, {"inventory_no": "X", "at_ms": 5})
    with pytest.raises(EquipmentError):
        parse_lending_event("meal", "s", {"inventory_no": "X", "at_ms": 5})
    with pytest.raises(EquipmentError):
        parse_lending_event("equipment_return", "s", {"inventory_no": "X", "at_ms": True})


counts = st.builds(Counts, *[st.integers(-5, 60) for _ in range(8)])


@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), counts), max_size=30))
def test_coverage_sums_exactly_the_valid_rows(rows: list[tuple[str, Counts]]) -> None:
    rep = coverage("R", "p", [Row(d, c) for d, c in rows])
    valid = [c for _d, c in rows if not row_problems(c)]
    total = Counts()
    for c in valid:
        total = total + c
    assert rep.total == total
    assert len(rep.flagged) == len(rows) - len(valid)
    assert all(r.problems for r in rep.flagged)
    everything = Counts()
    for _d, c in rows:
        everything = everything + c
    assert rep.total_as_submitted == everything


def test_xlsx_import_reads_the_seed_table() -> None:
    import io

    import openpyxl

    from server.equipment.importer import parse_rows, read_table
    from server.equipment.seed000 import HEADER

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADER.split(","))
    for d, *nums in DISTRICTS:
        ws.append([d, None, *nums])
    buf = io.BytesIO()
    wb.save(buf)
    rows = parse_rows(read_table("seed.xlsx", buf.getvalue()))
    assert len(rows) == 20
    assert rows[14].district == "Риддер" and rows[14].counts.without_computer == -58
    assert rows[0].school_id is None and rows[0].counts == Counts(
        12, 2483, 1717, 766, 163, 47, 22, 5
    )
