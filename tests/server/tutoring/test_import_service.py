"""The import and the growth table against the database: a good project through the CLI, a bad
file refused whole (nothing imported), the demo reproducing seed 001's table, a live project
taking only consented roster students, and withdrawal removing what the consent covered."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.accounts.access import Grant, Principal, Role
from server.cli import main
from server.consents.service import ConsentInput, record_consent
from server.people.models import Consent, Student
from server.tutoring import demo
from server.tutoring.models import Participant, Project, TestResult
from server.tutoring.service import (
    TutoringError,
    award_ranking,
    council_ranking,
    course_results_for_student,
    enrol_student,
    get_project,
    growth_report,
    import_project,
)
from tests.support.console import World

DIRECTIONS = "direction,hours\nEnglish,48\nLaw,8\n"
ASSIGN = "volunteer,direction\nV1,English\nV2,English\nV2,Law\n"
TESTS = (
    "student,direction,test,score\n"
    "P1,English,pre,40\nP1,English,post,70\n"
    "P2,English,pre,50\nP2,English,post,75\n"
    "P3,English,pre,60\nP3,English,post,95\n"
    "P4,English,pre,10\n"
    'P1,Law,pre,"46,5"\nP1,Law,post,60.5\nP2,Law,pre,46\nP2,Law,post,60\n'
)


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_bytes(text.encode())
    return str(p)


def test_cli_import_and_report(
    tmp_path: Path, pg_console_url: str, db: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--database-url", pg_console_url]
    args = [
        "tutoring",
        "import",
        *url,
        "--project",
        "P",
        "--directions",
        write(tmp_path, "d.csv", DIRECTIONS),
        "--assignments",
        write(tmp_path, "a.csv", ASSIGN),
        "--tests",
        write(tmp_path, "t.csv", TESTS),
    ]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["tutoring", "report", *url, "--project", "P", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table == [
        {
            "direction": "English",
            "hours": 48,
            "volunteers": 2,
            "students": 4,
            "paired": 3,
            "only_pre": 1,
            "only_post": 0,
            "before": 50.0,
            "after": 80.0,
            "growth": 30.0,
            "normalised_gain": 0.6,
            "growth_ci95": [17.6, 42.4],
        },
        {
            "direction": "Law",
            "hours": 8,
            "volunteers": 1,
            "students": 2,
            "paired": 2,
            "only_pre": 0,
            "only_post": 0,
            "before": 46.3,  # 46.25 rounded half up
            "after": 60.3,
            "growth": 14.0,
            "normalised_gain": 0.26,  # 14 / 53.75 = 0.26046... -> 0.260
            "growth_ci95": [14.0, 14.0],
        },
    ]
    # the same code again is refused (a project is imported once)
    assert main(args) == 1
    assert "exists already" in capsys.readouterr().err


def test_bad_file_refused_whole(
    tmp_path: Path, pg_console_url: str, db: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = TESTS + "P9,English,pre,100.5\nP9,Chemistry,post,50\nP1,English,pre,41\n"
    args = [
        "tutoring",
        "import",
        "--database-url",
        pg_console_url,
        "--project",
        "P",
        "--directions",
        write(tmp_path, "d.csv", DIRECTIONS),
        "--tests",
        write(tmp_path, "t.csv", bad),
    ]
    assert main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[:3] == [
        "t.csv\t13\tscore\ta score from 0 to 100 (e.g. 75 or 75,5)",
        "t.csv\t14\tdirection\tunknown direction",
        "t.csv\t15\tstudent\tthe same student, direction and test are on line 2",
    ]
    assert "nothing was imported" in err[3]
    assert db.scalar(select(func.count()).select_from(Project)) == 0
    assert db.scalar(select(func.count()).select_from(TestResult)) == 0


def test_demo_reproduces_seed_001(db: Session) -> None:
    assert demo.seed_demo(db) is not None
    assert demo.seed_demo(db) is None  # once
    project = get_project(db, demo.PROJECT)
    assert project is not None
    rows = [r.as_json() for r in growth_report(db, project)]
    got = [
        (
            r["direction"],
            r["hours"],
            r["volunteers"],
            r["students"],
            r["before"],
            r["after"],
            r["growth"],
        )
        for r in rows
    ]
    assert got == [
        ("Ағылшын тілі", 48, 21, 378, 46.0, 75.0, 29.0),
        ("Компьютерлік сауаттылық", 8, 20, 258, 68.0, 93.0, 25.0),
        ("ҰБТ-ға дайындық", 48, 25, 469, 70.0, 85.0, 15.0),
        ("Құқықтық сауаттылық", 8, 27, 385, 66.0, 90.0, 24.0),
        ("Олимпиадалар мен ғылыми жобаларға дайындық", 48, 17, 128, 56.0, 81.0, 25.0),
    ]
    assert sum(r["students"] for r in rows) == 1618
    # the council chose 110 of 203 applicants; member B's conflict is left out of V001's mean
    ranking = council_ranking(db, project, 110)
    assert len(ranking) == 203 and sum(r.ranked.selected for r in ranking) == 110
    assert {r.volunteer.code[0] for r in ranking if r.ranked.selected} == {"V"}
    v001 = next(r for r in ranking if r.volunteer.code == "V001")
    assert v001.excluded_names == ["Council Member B"] and len(v001.ranked.members) == 4
    # awards on the published criteria: the groups' journals and tests give every volunteer a score
    awards = award_ranking(db, project, 35)
    assert len(awards) == 110 and sum(a.awarded for a in awards) == 35


def _consent(db: Session, world: World, ref: str, kind: ConsentKind, granted: bool) -> None:
    who = Principal(
        world.users["operator"], "operator", "Operator", "en", "", [Grant(Role.OPERATOR)]
    )
    st = db.get_one(Student, world.students[ref])
    record_consent(
        db,
        who,
        st,
        ConsentInput(kind, granted, "Parent", "Application 1", dt.date(2026, 1, 1)),
    )
    db.flush()


def test_live_project_consent_and_withdrawal(db: Session, world: World) -> None:
    _consent(db, world, "s1-7b-1", ConsentKind.TUTORING, True)
    files = {
        "directions": ("d.csv", DIRECTIONS.encode()),
        "tests": (
            "t.csv",
            b"student,direction,test,score\ns1-7b-1,English,pre,40\ns1-7b-1,English,post,70\n"
            b"s1-7b-2,English,pre,50\n",
        ),
    }
    # s1-7b-2 has no tutoring consent: the whole file is refused
    problems = import_project(db, None, "LIVE", files, status="live")
    assert isinstance(problems, list)
    assert [p.as_tuple()[:3] for p in problems] == [("t.csv", 4, "student")]
    files["tests"] = ("t.csv", files["tests"][1].rsplit(b"\n", 2)[0] + b"\n")
    result = import_project(db, None, "LIVE", files, status="live")
    assert not isinstance(result, list) and result.tests == 2
    pk = world.students["s1-7b-1"]
    project = get_project(db, "LIVE")
    assert project is not None
    other = db.get_one(Student, world.students["s1-7b-2"])
    with pytest.raises(TutoringError):
        enrol_student(db, None, project, other)
    results = course_results_for_student(db, pk)
    assert [(r.direction, r.hours, r.before, r.after, r.subject) for r in results] == [
        ("English", 48, 40.0, 70.0, None)
    ]
    # withdrawal removes the participation and its tests
    _consent(db, world, "s1-7b-1", ConsentKind.TUTORING, False)
    assert db.scalar(select(func.count()).select_from(Participant)) == 0
    assert db.scalar(select(func.count()).select_from(TestResult)) == 0
    assert course_results_for_student(db, pk) == []
    # the tutoring consent is recorded in the ledger and never sent to the edges
    kinds = db.execute(select(Consent.kind).where(Consent.student_pk == pk)).scalars().all()
    assert kinds.count("tutoring") == 2
