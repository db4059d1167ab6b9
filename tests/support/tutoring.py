"""A small live tutoring project in region R1 of the ``world`` fixture: two directions, two
volunteers (volunteer1's account keeps group G1's journal), three consented roster students in
G1 and one in G2, tests, a council of council1 and two more members."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.clock import now_ms
from server.people.models import Consent, Student
from server.tutoring.models import (
    CouncilMember,
    Group,
    GroupMember,
    Lesson,
    Volunteer,
)
from server.tutoring.service import directions_of, enrol_student, get_project, import_project
from tests.support.console import World

DIRECTIONS = b"direction,hours,subject\nEnglish,48,\nUNT,48,Math\nUNT,48,History\n"
ASSIGNMENTS = b"volunteer,direction,subject,name\nV1,English,,Aruzhan Volunteer\nV2,UNT,Math,Bolat Volunteer\n"
STUDENTS = ["s1-3a-1", "s1-3a-2", "s1-7b-1", "s2-3a-1"]


@dataclass
class Tutoring:
    project: str
    group1: int
    group2: int
    lesson1: int
    participants: dict[str, int]
    volunteers: dict[str, int]
    members: dict[str, int]


def make_project(db: Session, world: World) -> Tutoring:
    now = now_ms()
    for ref in STUDENTS:
        db.add(
            Consent(
                student_pk=world.students[ref],
                kind=ConsentKind.TUTORING.value,
                granted=True,
                given_by="Parent",
                document="Tutoring application",
                signed_on=dt.date(2026, 1, 10),
                recorded_at_ms=now,
            )
        )
    db.flush()
    tests = (
        b"student,direction,test,score\n"
        b"s1-3a-1,English,pre,40\ns1-3a-1,English,post,70\n"
        b"s1-3a-2,English,pre,50\ns1-3a-2,English,post,75\n"
        b"s1-7b-1,English,pre,60\n"
        b"s2-3a-1,UNT,pre,70\ns2-3a-1,UNT,post,85\n"
    )
    result = import_project(
        db,
        None,
        "LIVE1",
        {
            "directions": ("d.csv", DIRECTIONS),
            "assignments": ("a.csv", ASSIGNMENTS),
            "tests": ("t.csv", tests),
        },
        name="Live project",
        status="live",
        region_id="R1",
    )
    assert not isinstance(result, list), result
    project = get_project(db, "LIVE1")
    assert project is not None
    vols = {v.code: v for v in db.query(Volunteer).filter_by(project_pk=project.pk)}
    vols["V1"].user_pk = world.users["volunteer1"]
    dirs = {d.name: d for d in directions_of(db, project.pk)}
    g1 = Group(
        direction_pk=dirs["English"].pk, volunteer_pk=vols["V1"].pk, name="G1", slot="mon-16"
    )
    g2 = Group(direction_pk=dirs["UNT"].pk, volunteer_pk=vols["V2"].pk, name="G2", slot="tue-16")
    db.add_all([g1, g2])
    db.flush()
    participants = {}
    for ref in STUDENTS:
        p = enrol_student(db, None, project, db.get_one(Student, world.students[ref]))
        participants[ref] = p.pk
        db.add(GroupMember(group_pk=(g2 if ref == "s2-3a-1" else g1).pk, participant_pk=p.pk))
    lesson = Lesson(group_pk=g1.pk, held_on=dt.date(2026, 3, 2), hours=2, topic="Greetings")
    db.add(lesson)
    members = {}
    for name, login in (("Council One", "council1"), ("Member Two", None), ("Member Three", None)):
        m = CouncilMember(
            project_pk=project.pk, full_name=name, user_pk=world.users[login] if login else None
        )
        db.add(m)
        db.flush()
        members[name] = m.pk
    db.commit()
    return Tutoring(
        "LIVE1",
        g1.pk,
        g2.pk,
        lesson.pk,
        participants,
        {k: v.pk for k, v in vols.items()},
        members,
    )
