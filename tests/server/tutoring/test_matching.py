"""Properties of the matching of students to volunteers (hypothesis)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from server.tutoring.matching import Learner, Tutor, can_teach, match_students

DIRECTIONS = ["en", "it", "unt"]
SUBJECTS = ["math", "hist", "phys"]
DISTRICTS = ["d1", "d2", "d3"]
LANGS = ["kk", "ru"]
SLOTS = ["mon-16", "tue-16", "wed-18", "sat-10"]


def subset(items: list[str], min_size: int = 0) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(items), min_size=min_size)


tutors = st.lists(
    st.builds(
        Tutor,
        code=st.from_regex(r"V[0-9]{1,3}", fullmatch=True),
        direction=st.sampled_from(DIRECTIONS),
        subjects=subset(SUBJECTS),
        district=st.sampled_from(DISTRICTS),
        languages=subset(LANGS, 1),
        slots=subset(SLOTS, 1),
        capacity=st.integers(0, 4),
    ),
    max_size=12,
    unique_by=lambda t: t.code,
)
learners = st.lists(
    st.builds(
        Learner,
        code=st.from_regex(r"S[0-9]{1,3}", fullmatch=True),
        direction=st.sampled_from(DIRECTIONS),
        subject=st.none() | st.sampled_from(SUBJECTS),
        district=st.sampled_from(DISTRICTS),
        language=st.sampled_from(LANGS),
        slots=subset(SLOTS, 1),
    ),
    max_size=40,
    unique_by=lambda s: s.code,
)


@settings(max_examples=300, deadline=None)
@given(learners, tutors)
def test_every_match_is_allowed_and_capacity_holds(ls: list[Learner], ts: list[Tutor]) -> None:
    result = match_students(ls, ts)
    by_code = {t.code: t for t in ts}
    students = {s.code: s for s in ls}
    # every student at most once, either matched or unmatched
    placed = [m.learner for m in result.matches]
    assert len(placed) == len(set(placed))
    assert set(placed) | set(result.unmatched) == set(students)
    assert not set(placed) & set(result.unmatched)
    for m in result.matches:
        t, s = by_code[m.tutor], students[m.learner]
        assert can_teach(t, s)
        assert m.slot in t.slots & s.slots
        assert m.same_district == (t.district == s.district)
    load = Counter(m.tutor for m in result.matches)
    assert all(load[code] <= by_code[code].capacity for code in load)


@settings(max_examples=300, deadline=None)
@given(learners, tutors)
def test_maximal_nobody_left_out_who_could_be_placed(ls: list[Learner], ts: list[Tutor]) -> None:
    result = match_students(ls, ts)
    load = Counter(m.tutor for m in result.matches)
    students = {s.code: s for s in ls}
    for code in result.unmatched:
        for t in ts:
            assert not (can_teach(t, students[code]) and load[t.code] < t.capacity)


@settings(max_examples=200, deadline=None)
@given(learners, tutors, st.randoms(use_true_random=False))
def test_independent_of_input_order(ls: list[Learner], ts: list[Tutor], rnd) -> None:  # type: ignore[no-untyped-def]
    first = match_students(ls, ts)
    ls2, ts2 = list(ls), list(ts)
    rnd.shuffle(ls2)
    rnd.shuffle(ts2)
    assert match_students(ls2, ts2) == first


def test_own_district_first_and_scarce_first() -> None:
    slots = frozenset({"mon-16"})
    far = Tutor("V1", "en", frozenset(), "d2", frozenset({"kk"}), slots, 1)
    near = Tutor("V2", "en", frozenset(), "d1", frozenset({"kk", "ru"}), slots, 1)
    a = Learner("S1", "en", None, "d1", "kk", slots)  # could go to either; near is in d1
    b = Learner("S2", "en", None, "d3", "ru", slots)  # only V2 speaks Russian
    result = match_students([a, b], [far, near])
    # S2 has one option and is placed first (V2); S1 then takes V1 though V2 is in its district
    assert [(m.learner, m.tutor) for m in result.matches] == [("S1", "V1"), ("S2", "V2")]
    result = match_students([a], [far, near])
    assert [(m.learner, m.tutor, m.same_district) for m in result.matches] == [("S1", "V2", True)]
