"""Properties of the pure matcher (no models needed)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.faces.matcher import Gallery, MatchParams, MatchReason, identify, verify
from tests.support.faces import unit_encoding

params_st = st.builds(
    MatchParams,
    tolerance=st.floats(0.2, 0.9),
    margin=st.floats(0.0, 0.2),
)


@st.composite
def galleries(draw: st.DrawFn) -> tuple[Gallery, np.ndarray]:
    n_students = draw(st.integers(1, 12))
    rows = []
    for s in range(n_students):
        for t in range(draw(st.integers(1, 3))):
            rows.append((f"s{s}", unit_encoding(draw(st.integers(0, 10_000)) * 7 + t) * 0.6))
    probe = unit_encoding(draw(st.integers(10_001, 20_000))) * draw(st.floats(0.0, 0.8))
    return Gallery.build(rows), probe


@settings(max_examples=200, deadline=None)
@given(galleries(), params_st)
def test_identify_respects_tolerance_and_margin(
    gp: tuple[Gallery, np.ndarray], p: MatchParams
) -> None:
    gallery, probe = gp
    r = identify(gallery, probe, p)
    per = gallery.per_student(probe)
    ranked = sorted(per.values())
    best = ranked[0]
    second = ranked[1] if len(ranked) > 1 else None
    assert np.isclose(r.distance, best)
    if r.matched:
        assert r.student_id is not None and np.isclose(per[r.student_id], best)
        assert best <= p.tolerance
        assert second is None or second - best > p.margin
    else:
        assert r.student_id is None
        assert best > p.tolerance or (second is not None and second - best <= p.margin)
    # Consistency: the brute-force answer
    expect = best <= p.tolerance and (second is None or second - best > p.margin)
    assert r.matched == expect


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 10_000),
    st.floats(0.0, 0.2),
    st.floats(0.0, 0.09),  # strictly inside the 0.1 margin (float rounding at the edge)
    st.floats(0.25, 0.7),
)
def test_two_students_within_the_margin_is_no_match(
    seed: int, d1: float, extra: float, tolerance: float
) -> None:
    """Two students equally near the probe (a twin enrolled): never a match, whatever else."""
    margin = 0.1
    rng = np.random.default_rng(seed)
    probe = unit_encoding(seed) * 0.6
    u, v = rng.normal(size=128), rng.normal(size=128)
    a = probe + d1 * u / np.linalg.norm(u)
    b = probe + (d1 + extra) * v / np.linalg.norm(v)  # within the margin of a
    gallery = Gallery.build([("twin-a", a), ("twin-b", b), ("far", -probe)])
    p = MatchParams(tolerance=tolerance, margin=margin)
    r = identify(gallery, probe, p)
    assert r.student_id is None
    assert r.reason in (MatchReason.AMBIGUOUS, MatchReason.ABOVE_TOLERANCE)
    for claimed in ("twin-a", "twin-b"):  # card + face: the twin's card does not help either
        assert not verify(gallery, claimed, probe, p).matched


def test_one_student_many_templates_is_not_ambiguous() -> None:
    base = unit_encoding(3) * 0.6
    gallery = Gallery.build([("s1", base), ("s1", base + 0.001), ("s2", -base)])
    r = identify(gallery, base, MatchParams(tolerance=0.5, margin=0.1))
    assert r.student_id == "s1" and r.reason is MatchReason.MATCH


def test_verify_rejects_another_student_using_the_card() -> None:
    owner, friend = unit_encoding(1) * 0.6, unit_encoding(2) * 0.6
    gallery = Gallery.build([("owner", owner), ("friend", friend)])
    p = MatchParams()
    assert verify(gallery, "owner", owner, p).matched
    assert verify(gallery, "owner", friend, p).reason is MatchReason.ABOVE_TOLERANCE
    assert verify(gallery, "nobody", owner, p).reason is MatchReason.NO_TEMPLATES


def test_empty_gallery_and_without() -> None:
    empty = Gallery.build([])
    assert identify(empty, unit_encoding(1), MatchParams()).reason is MatchReason.NO_TEMPLATES
    g = Gallery.build([("a", unit_encoding(1)), ("b", unit_encoding(2))])
    assert g.without({"a"}).students == {"b"}


def test_distances_equal_face_recognition_formula() -> None:
    rows = [(f"s{i}", unit_encoding(i) * 0.7) for i in range(50)]
    g = Gallery.build(rows)
    probe = unit_encoding(99) * 0.7
    expect = np.linalg.norm(np.stack([r[1] for r in rows]) - probe, axis=1)
    assert np.allclose(g.distances(probe), expect, atol=1e-9)
