"""The meal policy as data: the effective-date rule (pure), the form's validation (overlapping
meal periods, bad times), region versus school versions, publishing when a version takes effect."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import ChangeLogEntry
from server.policy.models import MealPolicy
from server.policy.service import (
    PolicyFormError,
    effective_policy,
    form_fields_from_values,
    load_policy_toml,
    local_today,
    parse_policy_form,
    publish_due_policies,
    save_policy,
)
from server.sync.changelog import load_state
from tests.support.consents import changes
from tests.support.console import World

D = dt.date


@dataclass(frozen=True)
class V:
    pk: int
    valid_from: dt.date
    region_id: str | None = None
    school_id: str | None = None


def test_effective_policy() -> None:
    r1 = V(1, D(2025, 9, 1), region_id="R1")
    r2 = V(2, D(2026, 1, 10), region_id="R1")
    s1 = V(3, D(2025, 12, 1), school_id="S1")
    s1_future = V(4, D(2026, 9, 1), school_id="S1")
    other = V(5, D(2025, 1, 1), region_id="R2")
    same_day = V(6, D(2026, 1, 10), region_id="R1")
    all_ = [r1, r2, s1, s1_future, other]
    # Nothing in force before the first date.
    assert effective_policy(all_, "S2", "R1", D(2025, 8, 31)) is None
    # A region's schools without their own policy follow the region's newest version in force.
    assert effective_policy(all_, "S2", "R1", D(2025, 9, 1)) is r1
    assert effective_policy(all_, "S2", "R1", D(2026, 1, 9)) is r1
    assert effective_policy(all_, "S2", "R1", D(2026, 1, 10)) is r2
    # A school's own version wins over the region's, from its date on.
    assert effective_policy(all_, "S1", "R1", D(2025, 11, 30)) is r1
    assert effective_policy(all_, "S1", "R1", D(2026, 2, 1)) is s1
    assert effective_policy(all_, "S1", "R1", D(2026, 9, 1)) is s1_future
    # Another region's policy never applies; a school with no region has only its own.
    assert effective_policy(all_, "S3", "R2", D(2026, 2, 1)) is other
    assert effective_policy(all_, "S9", None, D(2026, 2, 1)) is None
    # Two versions from the same day: the later-saved one.
    assert effective_policy([*all_, same_day], "S2", "R1", D(2026, 2, 1)) is same_day


_versions = st.lists(
    st.builds(
        lambda pk, days, own: V(
            pk,
            D(2025, 9, 1) + dt.timedelta(days=days),
            school_id="S1" if own else None,
            region_id=None if own else "R1",
        ),
        st.integers(1, 10_000),
        st.integers(0, 400),
        st.booleans(),
    ),
    max_size=12,
    unique_by=lambda v: v.pk,
)


@given(_versions, st.integers(0, 500))
def test_effective_policy_properties(versions: list[V], days: int) -> None:
    day = D(2025, 9, 1) + dt.timedelta(days=days)
    eff = effective_policy(versions, "S1", "R1", day)
    in_force = [v for v in versions if v.valid_from <= day]
    if not in_force:
        assert eff is None
        return
    assert eff is not None and eff.valid_from <= day
    own = [v for v in in_force if v.school_id == "S1"]
    # A school's own version in force always wins; among the candidates, the latest date.
    assert (eff.school_id == "S1") == bool(own)
    pool = own or in_force
    assert (eff.valid_from, eff.pk) == max((v.valid_from, v.pk) for v in pool)
    # Nothing dated after the day changes the answer.
    assert effective_policy(in_force, "S1", "R1", day) is eff


TODAY = D(2026, 3, 2)


def form(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "valid_from": "2026-03-02",
        "timezone": "Asia/Almaty",
        "free_meal_grades": [1, 2, 3, 4],
        "free_meal_categories": ["large_family", "orphan"],
        "anti_passback": "hard",
        "manual_pass_roles": ["class_teacher"],
        "shift1_entry_from": "07:00",
        "shift1_entry_to": "13:00",
        "shift1_starts_at": "08:00",
        "shift2_entry_from": "12:30",
        "shift2_entry_to": "18:30",
        "period0_name": "breakfast",
        "period0_shifts": "1",
        "period0_from": "9:30",
        "period0_to": "10:30",
        "period1_name": "lunch",
        "period1_shifts": "1, 2",
        "period1_from": "12:00",
        "period1_to": "13:30",
    }
    return base | kw


def test_parse_policy_form() -> None:
    day, doc = parse_policy_form(form_fields_from_values(form()), TODAY)
    assert day == TODAY and doc.valid_from == "2026-03-02"
    assert [p.from_ for p in doc.meal_periods] == ["09:30", "12:00"]
    assert doc.meal_periods[1].shifts == [1, 2]
    assert doc.shifts[1].starts_at is None and doc.anti_passback.value == "hard"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"period1_from": "10:00"}, "period1_from", "lunch 10:00–13:30"),  # overlaps breakfast
        ({"period1_from": "10:00", "period1_shifts": "2"}, None, ""),  # other shift: fine
        ({"period0_to": "25:00"}, "period0_to", "25:00"),
        ({"period0_to": "09:00"}, "period0_to", "breakfast 09:30–09:00"),
        ({"shift1_entry_to": "06:00"}, "shift1_entry_to", "07:00–06:00"),
        ({"period1_shifts": "3"}, "period1_shifts", "lunch: 3"),
        ({"period1_shifts": "4"}, "period1_shifts", ""),
        ({"period1_name": "breakfast", "period1_from": "11:00"}, "period1_name", "breakfast"),
        ({"period1_name": "обед"}, "period1_name", ""),
        ({"valid_from": "2026-03-01"}, "valid_from", ""),
        ({"valid_from": "soon"}, "valid_from", ""),
        ({"free_meal_categories": ["rich"]}, "free_meal_categories", "rich"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
        (
            {
                "shift1_entry_from": "",
                "shift1_entry_to": "",
                "shift1_starts_at": "",
                "shift2_entry_from": "",
                "shift2_entry_to": "",
                "period0_name": "",
                "period0_from": "",
                "period0_to": "",
                "period1_name": "",
                "period1_from": "",
                "period1_to": "",
            },
            "shift1_entry_from",
            "",
        ),
    ],
)
def test_bad_policy_forms(change: dict[str, Any], field: str | None, words: str) -> None:
    fields = form_fields_from_values(form(**change))
    if field is None:
        parse_policy_form(fields, TODAY)
        return
    with pytest.raises(PolicyFormError) as err:
        parse_policy_form(fields, TODAY)
    problems = err.value.problems
    assert any(p.field == field and words in p.detail for p in problems), problems


def post_form(**kw: Any) -> dict[str, Any]:
    today = local_today().isoformat()
    return form(valid_from=today) | kw


def test_region_and_school_versions_and_publishing(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    regional = make_browser("regional")
    regional.get("/policy/region/R1")
    r = regional.post("/policy/region/R1", post_form())
    assert r.status_code == 200, r.text
    # In force today: published to both schools of R1 at once, not to S3 (region R2).
    for school in ("S1", "S2"):
        assert [c["op"] for c in changes(db, school)] == ["policy_set"]
        assert load_state(db, school).policy is not None
    assert changes(db, "S3") == []
    # The school admin of S1 saves an own version from a future date: stored, not yet sent.
    admin = make_browser("admin1")
    admin.get("/policy/school/S1")
    future = (local_today() + dt.timedelta(days=5)).isoformat()
    r = admin.post("/policy/school/S1", post_form(valid_from=future, anti_passback="soft"))
    assert r.status_code == 200 and 'id="saved"' in r.text
    assert len(changes(db, "S1")) == 1
    page = admin.get("/policy").text
    assert future in page.split('id="school-S1"')[1].split("</tr>")[0]
    # Its day comes: the daily run publishes it, once.
    day = local_today() + dt.timedelta(days=5)
    assert publish_due_policies(db, day) == [
        ("S1", db.execute(select(MealPolicy.pk).where(MealPolicy.school_id == "S1")).scalar_one())
    ]
    assert publish_due_policies(db, day) == []
    state = load_state(db, "S1")
    assert state.policy is not None and state.policy.anti_passback.value == "soft"
    assert load_state(db, "S2").policy.anti_passback.value == "hard"  # type: ignore[union-attr]


def test_overlapping_periods_are_shown_on_the_form_and_nothing_is_saved(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    admin.get("/policy/school/S1")
    r = admin.post("/policy/school/S1", post_form(period1_from="10:00"))
    assert r.status_code == 400
    assert 'id="problems"' in r.text and 'data-field="period1_from"' in r.text
    assert "breakfast 09:30–10:30, lunch 10:00–13:30 (1)" in r.text
    assert 'value="10:00"' in r.text  # the input is kept
    assert db.execute(select(MealPolicy)).first() is None
    assert db.execute(select(ChangeLogEntry)).first() is None


def test_policy_scope(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    assert admin.get("/policy/school/S3").status_code == 404
    assert admin.get("/policy/region/R1").status_code == 404
    admin.get("/policy/school/S1")
    assert admin.post("/policy/school/S3", post_form()).status_code == 404
    assert admin.post("/policy/region/R1", post_form()).status_code == 404
    regional = make_browser("regional")
    assert regional.get("/policy/school/S3").status_code == 404
    regional.get("/policy")
    assert regional.post("/policy/region/R2", post_form()).status_code == 404
    teacher = make_browser("teacher1")  # may view its school's policy, not edit
    assert teacher.get("/policy/school/S1").status_code == 200
    assert 'action="/policy/school/S1"' not in teacher.get("/policy/school/S1").text
    assert teacher.post("/policy/school/S1", post_form()).status_code == 403
    parent = make_browser("parent1")
    assert parent.get("/policy").status_code == 403
    assert db.execute(select(MealPolicy)).first() is None


def test_a_region_version_leaves_a_school_with_its_own_policy_alone(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    admin.get("/policy/school/S1")
    assert admin.post("/policy/school/S1", post_form(anti_passback="off")).status_code == 200
    regional = make_browser("regional")
    regional.get("/policy/region/R1")
    r = regional.post("/policy/region/R1", post_form(anti_passback="hard"))
    assert r.status_code == 200
    assert "S2" in r.text.split('id="saved"')[1][:300]
    assert [c["op"] for c in changes(db, "S1")] == ["policy_set"]  # only the school's own
    assert load_state(db, "S1").policy.anti_passback.value == "off"  # type: ignore[union-attr]
    assert load_state(db, "S2").policy.anti_passback.value == "hard"  # type: ignore[union-attr]
    overview = regional.get("/policy").text
    assert "school-S1" in overview and "school-S2" in overview and "school-S3" not in overview


def test_seed_from_the_edge_policy_file(world: World, db: Session) -> None:
    doc = load_policy_toml(str(Path(__file__).resolve().parents[3] / "examples" / "policy.toml"))
    row, published = save_policy(db, None, school_id="S3", valid_from=local_today(), doc=doc)
    db.commit()
    assert published == ["S3"] and row.created_by is None
    state = load_state(db, "S3")
    assert state.policy is not None and [p.name for p in state.policy.meal_periods] == [
        "breakfast",
        "lunch",
    ]
