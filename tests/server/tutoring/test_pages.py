"""The tutoring pages as each role uses them: a coordinator's project pages (and not another
region's), a volunteer's own journal only, the council's independent scores with a conflict of
interest, the decision and its PDF protocol, and the needs survey through one-time links."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.accounts.access import Grant, Role
from server.accounts.service import create_user
from server.audit.models import AuditEntry
from server.clock import now_ms
from server.people.models import Consent, Student
from server.tutoring.models import (
    Attendance,
    Award,
    CouncilScore,
    Criterion,
    Decision,
    Group,
    GroupMember,
    Project,
    SurveyAnswer,
    Volunteer,
)
from server.tutoring.service import TutoringError, enrol_student, get_project
from tests.support.console import World, password_of
from tests.support.tutoring import make_project


def test_coordinator_pages_and_region(db: Session, world: World, make_browser) -> None:  # type: ignore[no-untyped-def]
    t = make_project(db, world)
    b = make_browser("coord1")
    for url in (
        "/tutoring",
        "/tutoring/growth",
        "/tutoring/volunteers",
        "/tutoring/groups",
        "/tutoring/ranking",
        "/tutoring/indicators",
        "/tutoring/survey",
    ):
        r = b.get(f"{url}?project={t.project}")
        assert r.status_code == 200, url
    r = b.get(f"/tutoring/growth?project={t.project}")
    # English: pairs (40, 70), (50, 75) -> 45.0 -> 72.5, growth 27.5; one only-pre
    row = re.search(r"<td>English</td>(.*?)</tr>", r.text, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
    assert cells[:9] == ["48", "1", "3", "2", "1", "0", "45.0", "72.5", "27.5"]
    # a coordinator of another region sees nothing of it
    u = create_user(
        db,
        "coord2",
        "C2",
        [Grant(Role.TUTORING_COORDINATOR, region_id="R2")],
        password=password_of("coord2"),
    )
    u.must_change_password = False
    db.commit()
    other = make_browser("coord2")
    assert other.get(f"/tutoring/growth?project={t.project}").status_code == 404
    assert "Live project" not in other.get("/tutoring").text
    # a volunteer may not open the project pages at all
    assert make_browser("volunteer1").get("/tutoring").status_code == 403


def test_volunteer_journal_only_own_group(db: Session, world: World, make_browser) -> None:  # type: ignore[no-untyped-def]
    t = make_project(db, world)
    b = make_browser("volunteer1")
    r = b.get("/tutoring/journal")
    assert r.status_code == 200 and "G1" in r.text and "G2" not in r.text
    assert b.get(f"/tutoring/journal?group={t.group2}").status_code == 404
    r = b.get(f"/tutoring/journal?session={t.lesson1}")
    assert r.status_code == 200 and "Surname1" in r.text
    present = [t.participants["s1-3a-1"], t.participants["s1-7b-1"]]
    r = b.post(
        "/tutoring/journal/attendance",
        {"session": str(t.lesson1), "present": [str(p) for p in present]},
    )
    assert r.status_code == 303
    marks = dict(db.execute(select(Attendance.participant_pk, Attendance.present)).all())
    assert marks == {
        t.participants["s1-3a-1"]: True,
        t.participants["s1-3a-2"]: False,
        t.participants["s1-7b-1"]: True,
    }
    # a student of another group cannot be marked here; nothing changes
    r = b.post(
        "/tutoring/journal/attendance",
        {"session": str(t.lesson1), "present": [str(t.participants["s2-3a-1"])]},
    )
    assert r.status_code == 422
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Attendance)) == 3
    # a new session, then the journal shows it
    r = b.post(
        "/tutoring/journal/session", {"group": str(t.group1), "held_on": "2026-03-09", "hours": "2"}
    )
    assert r.status_code == 303
    assert (
        b.post(
            "/tutoring/journal/session", {"group": str(t.group2), "held_on": "2026-03-09"}
        ).status_code
        == 404
    )
    # viewing and marking a child's attendance is audited per child
    audited = db.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.subject == "tutoring_attendance")
    )
    assert audited == 3


def test_council_scores_conflict_decision_protocol(db: Session, world: World, make_browser) -> None:  # type: ignore[no-untyped-def]
    t = make_project(db, world)
    project = db.execute(select(Project).where(Project.code == t.project)).scalar_one()
    council = make_browser("council1")
    r = council.get(f"/tutoring/council?project={t.project}")
    assert r.status_code == 200
    criteria = re.findall(r'name="(c\d+)"', r.text)
    assert len(set(criteria)) == 4
    v1, v2 = t.volunteers["V1"], t.volunteers["V2"]
    form = {c: "8" for c in criteria} | {"volunteer": str(v1)}
    assert council.post("/tutoring/council/score", form).status_code == 303
    # out of range: refused, nothing stored
    bad = {c: "11" for c in criteria} | {"volunteer": str(v2)}
    assert council.post("/tutoring/council/score", bad).status_code == 422
    assert (
        council.post(
            "/tutoring/council/conflict", {"volunteer": str(v2), "reason": "my cousin"}
        ).status_code
        == 303
    )
    # after declaring, scoring that application is refused
    again = {c: "10" for c in criteria} | {"volunteer": str(v2)}
    assert council.post("/tutoring/council/score", again).status_code == 422
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(CouncilScore)) == 4
    # the other members' scores (entered for them here) make the ranking
    other = t.members["Member Two"]
    for c in db.execute(select(Criterion).where(Criterion.project_pk == project.pk)).scalars():
        db.add(CouncilScore(volunteer_pk=v2, member_pk=other, criterion_pk=c.pk, score=10, at_ms=1))
        db.add(CouncilScore(volunteer_pk=v1, member_pk=other, criterion_pk=c.pk, score=6, at_ms=1))
    db.commit()
    coord = make_browser("coord1")
    r = coord.get(f"/tutoring/ranking?project={t.project}&places=1")
    assert r.status_code == 200
    # V2: only Member Two counts (100 %); Council One is listed as excluded. V1: (80 + 60) / 2
    rows = re.findall(
        r"<tr><td class=\"num\">(\d+)</td><td><code>(V\d)</code>.*?<td class=\"num\">([^<]+)</td><td>([^<]*)</td><td>([^<]*)</td>",
        r.text,
    )
    assert rows == [
        ("1", "V2", "100.00", "Member Two", "Council One"),
        ("2", "V1", "70.00", "Council One, Member Two", ""),
    ]
    assert (
        coord.post("/tutoring/ranking/decide", {"project": t.project, "places": "1"}).status_code
        == 303
    )
    decision = db.execute(select(Decision)).scalar_one()
    assert [(x["code"], x["selected"], x["excluded"]) for x in decision.ranking] == [
        ("V2", True, ["Council One"]),
        ("V1", False, []),
    ]
    db.expire_all()
    assert db.get_one(Volunteer, v1).status == "rejected"
    pdf = coord.get(f"/tutoring/protocol?decision={decision.pk}")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # a council member cannot decide
    assert (
        council.post("/tutoring/ranking/decide", {"project": t.project, "places": "1"}).status_code
        == 403
    )


def test_survey_one_time_links(db: Session, world: World, make_browser) -> None:  # type: ignore[no-untyped-def]
    t = make_project(db, world)
    coord = make_browser("coord1")
    coord.get(f"/tutoring/survey?project={t.project}")
    r = coord.post(
        "/tutoring/survey/links",
        {
            "project": t.project,
            "district": "Ақжайық",
            "school": "School 5",
            "grade": "9",
            "count": "2",
        },
    )
    assert r.status_code == 200
    links = re.findall(r"<code>https?://[^/]+(/tutoring/s/[\w-]+)</code>", r.text)
    assert len(links) == 2
    student = make_browser()  # nobody signed in
    page = student.get(links[0])
    assert page.status_code == 200
    codes = re.findall(r'name="direction" value="([^"]+)"', page.text)
    r = student.post(links[0], {"direction": codes[:1], "time": ["mon-16"]})
    assert r.status_code == 200 and "Жауабыңыз тіркелді" in r.text  # Kazakh by default
    assert student.get(links[0]).status_code == 410  # used
    assert student.post(links[0], {"direction": codes[:1]}).status_code == 410
    # nothing chosen: refused, the link stays usable
    student.get(links[1])
    assert student.post(links[1], {"time": ["mon-16"]}).status_code == 422
    answers = db.execute(select(SurveyAnswer)).scalars().all()
    assert [(a.district, a.grade, a.directions) for a in answers] == [("Ақжайық", 9, codes[:1])]
    r = coord.get(f"/tutoring/survey?project={t.project}&by=district")
    assert "Ақжайық" in r.text and "English: 1" in r.text


def test_awards_ranked_and_recorded(db: Session, world: World, make_browser) -> None:  # type: ignore[no-untyped-def]
    t = make_project(db, world)
    # V1: G1 held one 2-hour session (no marks yet), its students grew 30 and 25 -> 27.5;
    # V2: G2 held none, its student grew 15. Relative to the best: V1 (1 + 0 + 1) / 3 = 0.667,
    # V2 (0 + 0 + 15/27.5) / 3 = 0.182.
    coord = make_browser("coord1")
    r = coord.get(f"/tutoring/indicators?project={t.project}&places=1")
    assert r.status_code == 200
    rows = re.findall(
        r'<tr><td class="num">(\d+)</td><td><code>(V\d)</code></td><td class="num">([^<]+)</td>',
        r.text,
    )
    assert rows == [("1", "V1", "0.667"), ("2", "V2", "0.182")]
    assert (
        coord.post("/tutoring/awards/decide", {"project": t.project, "places": "1"}).status_code
        == 303
    )
    awards = db.execute(select(Award)).scalars().all()
    assert [(a.volunteer_pk, a.rank, a.score_milli) for a in awards] == [
        (t.volunteers["V1"], 1, 667)
    ]
    r = coord.get(f"/tutoring/indicators?project={t.project}")
    assert "Марапатталған волонтерлер" in r.text


def test_place_students_by_matching(db: Session, world: World, make_browser) -> None:  # type: ignore[no-untyped-def]
    t = make_project(db, world)
    project = get_project(db, t.project)
    assert project is not None
    newcomer = db.get_one(Student, world.students["s2-7b-1"])
    with pytest.raises(TutoringError):  # no tutoring consent yet
        enrol_student(db, None, project, newcomer, directions=["english"])
    db.add(
        Consent(
            student_pk=newcomer.pk,
            kind=ConsentKind.TUTORING.value,
            granted=True,
            given_by="Parent",
            document="Application 7",
            signed_on=dt.date(2026, 1, 12),
            recorded_at_ms=now_ms(),
        )
    )
    db.flush()
    p = enrol_student(db, None, project, newcomer, directions=["english"], slots=["mon-16"])
    db.commit()
    coord = make_browser("coord1")
    coord.get(f"/tutoring/groups?project={t.project}")
    r = coord.post("/tutoring/groups/place", {"project": t.project})
    assert r.status_code == 303 and "placed=1" in r.headers["location"]
    # V1 teaches English on Monday 16:00 in G1: the newcomer joins G1
    g = db.execute(
        select(Group)
        .join(GroupMember, GroupMember.group_pk == Group.pk)
        .where(GroupMember.participant_pk == p.pk)
    ).scalar_one()
    assert g.pk == t.group1
    r = coord.post("/tutoring/groups/place", {"project": t.project})
    assert "placed=0" in r.headers["location"]  # nobody left to place
