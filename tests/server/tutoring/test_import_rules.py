"""Reading a project's spreadsheets: good files in every accepted form, bad files refused with
every problem as (file, line, column, reason)."""

from __future__ import annotations

import io

import openpyxl

from server.tutoring.rules import check_files, parse_score

DIRECTIONS = "direction,hours,subject\nEnglish,48,\nҰБТ,48,Математика\nҰБТ,48,Тарих\n"
ASSIGNMENTS = "volunteer,direction,subject\nV1,English,\nV2,ұбт,математика\n"
TESTS = 'student,direction,test,score\nP1,English,pre,46\nP1,English,post,"75,5"\nP2,ҰБТ,до,70.25\n'


def files(
    directions: bytes = DIRECTIONS.encode(),
    assignments: bytes = ASSIGNMENTS.encode(),
    tests: bytes = TESTS.encode(),
) -> dict[str, tuple[str, bytes]]:
    return {
        "directions": ("directions.csv", directions),
        "assignments": ("assignments.csv", assignments),
        "tests": ("tests.csv", tests),
    }


def test_good_files() -> None:
    out = check_files(files())
    assert out.problems == []
    assert [(d.name, d.hours, d.subjects) for d in out.directions] == [
        ("English", 48, ()),
        ("ҰБТ", 48, ("Математика", "Тарих")),
    ]
    assert [(a.volunteer, a.direction, a.subject) for a in out.assignments] == [
        ("V1", "English", None),
        ("V2", "ҰБТ", "математика"),
    ]
    assert [(t.student, t.direction, t.phase, t.score_centi) for t in out.tests] == [
        ("P1", "English", "pre", 4600),
        ("P1", "English", "post", 7550),
        ("P2", "ҰБТ", "pre", 7025),
    ]


def test_kz1048_and_semicolons_and_russian_headers() -> None:
    text = "Направление;Часы;Предмет\nҚұқық;8;\n"
    out = check_files({"directions": ("d.csv", text.encode("kz1048"))})
    assert out.problems == [] and out.directions[0].name == "Құқық"


def test_windows_1251_without_kazakh_letters() -> None:
    text = "направление;часы\nАнглийский;48\n"
    out = check_files({"directions": ("d.csv", text.encode("cp1251"))})
    assert out.problems == [] and out.directions[0].name == "Английский"


def test_xlsx() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    for row in (["direction", "hours"], ["Олимпиада", 48]):
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    out = check_files({"directions": ("d.xlsx", buf.getvalue())})
    assert out.problems == [] and out.directions[0].hours == 48


def test_scores() -> None:
    assert parse_score("0") == 0 and parse_score("100") == 10000
    assert parse_score("75,5") == 7550 and parse_score("75.25") == 7525
    for bad in ("100.01", "-1", "101", "1,2.3", "abc", "", "75.255", "1e2"):
        assert parse_score(bad) is None, bad


def test_bad_file_lists_every_problem() -> None:
    tests = (
        "student,direction,test,score\n"
        "P1,English,pre,101\n"  # out of range
        "P2,Chemistry,pre,50\n"  # unknown direction
        "P3,English,post,40\n"
        "P3,English,post,41\n"  # the same student, direction and test twice
        "P4,English,middle,40\n"  # neither pre nor post
    )
    out = check_files(files(tests=tests.encode()))
    assert [p.as_tuple() for p in out.problems] == [
        ("tests.csv", 2, "score", "a score from 0 to 100 (e.g. 75 or 75,5)"),
        ("tests.csv", 3, "direction", "unknown direction"),
        ("tests.csv", 5, "student", "the same student, direction and test are on line 4"),
        ("tests.csv", 6, "test", "pre or post"),
    ]


def test_broken_encoding_and_bad_header() -> None:
    # a UTF-8 file with one Windows byte pasted in (line 3): refused, nothing read from it
    broken = "direction,hours\nАғылшын тілі,48\nҚұқықтық сауаттылық,8\n".encode().replace(
        "Құқықтық".encode(), "Құқ".encode() + b"\xab"
    )
    out = check_files(files(directions=broken))
    assert [p.as_tuple()[:3] for p in out.problems] == [("directions.csv", 3, "")]
    assert out.directions == [] and "UTF-8" in out.problems[0].reason
    out = check_files(files(assignments=b"teacher,direction\nV1,English\n"))
    assert [p.as_tuple() for p in out.problems] == [
        ("assignments.csv", 1, "teacher", "unknown column"),
        ("assignments.csv", 1, "volunteer", "the column is missing"),
    ]


def test_hours_disagree() -> None:
    out = check_files(files(directions=b"direction,hours,subject\nA,8,x\nA,48,y\n"))
    assert [p.as_tuple() for p in out.problems] == [
        ("directions.csv", 3, "hours", "the direction has 8 hours on line 2")
    ]


def test_volunteer_training_scores() -> None:
    assignments = (
        "volunteer,direction,subject,training_pre,training_post\n"
        'V1,English,,55,"80,5"\n'
        "V2,ұбт,математика,,\n"
        "V3,English,,50,70\n"
        "V3,ұбт,тарих,51,70\n"  # V3 again with other scores
        "V4,English,,101,70\n"
    )
    out = check_files(files(assignments=assignments.encode()))
    assert [p.as_tuple() for p in out.problems] == [
        ("assignments.csv", 5, "training_pre", "other training scores on line 4"),
        ("assignments.csv", 6, "training_pre", "a score from 0 to 100 (e.g. 75 or 75,5)"),
    ]
    out = check_files(files(assignments=assignments.encode().rsplit(b"\n", 3)[0] + b"\n"))
    assert out.problems == []
    assert out.training == {"V1": (5500, 8050), "V3": (5000, 7000)}
