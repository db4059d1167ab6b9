"""The roster through the console: import (preview, errors, confirm, idempotence, encodings,
scope), students (list scope, card with audit, edit / transfer / deactivate), guardians, classes
and staff, each reaching the school's edges through the downlink change log."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry
from server.clock import now_ms
from server.models import ChangeLogEntry
from server.people.models import Consent, Guardian, SchoolClass, StaffMember, Student
from server.roster import rules
from server.roster.models import ImportPreview
from server.roster.service import import_rows
from server.sync.changelog import load_state
from tests.support.console import Browser, World
from tests.support.roster import GOOD, csv_of, xlsx_of


def upload(b: Browser, school: str, name: str, data: bytes):  # type: ignore[no-untyped-def]
    b.get(f"/roster/import?school={school}")
    return b.post(
        "/roster/import",
        {"school": school},
        files={"file": (name, data, "application/octet-stream")},
    )


def confirm(b: Browser, preview_html: str):  # type: ignore[no-untyped-def]
    token = re.search(r'name="token" value="([^"]+)"', preview_html)
    sha = re.search(r'name="sha256" value="([^"]+)"', preview_html)
    assert token and sha, preview_html
    r = b.post("/roster/import/confirm", {"token": token.group(1), "sha256": sha.group(1)})
    if r.status_code != 303:
        return r
    # applied: redirected to the school's students with what was done (once; a refresh of
    # that page applies nothing again)
    assert r.headers["location"].startswith("/students?school="), r.headers["location"]
    shown = b.get(r.headers["location"])
    assert 'id="flash"' in shown.text
    return shown


def error_rows(html: str) -> list[tuple[str, str, str]]:
    table = html.split('id="errors"')[1].split("</table>")[0]
    cells = re.findall(
        r"<tr><td class=\"num\">([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", table
    )
    return [(a, b, c.replace("&#39;", "'")) for a, b, c in cells]


def n_students(db: Session) -> int:
    return db.execute(select(func.count()).select_from(Student)).scalar_one()


def test_csv_import_preview_confirm_publish_audit_and_idempotence(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    admin.post("/lang", {"lang": "en", "next": "/"})
    data = csv_of(GOOD)
    r = upload(admin, "S1", "roster.csv", data)
    assert r.status_code == 200, r.text
    assert 'id="encoding">UTF-8<' in r.text
    assert "New: <strong>2</strong>" in r.text and "5C" in r.text
    assert n_students(db) == 12  # nothing written by the preview
    r = confirm(admin, r.text)
    assert r.status_code == 200, r.text
    db.expire_all()
    new = {
        s.surname: s for s in db.execute(select(Student).where(Student.school_id == "S1")).scalars()
    }
    a, d = new["Ахметов"], new["Смагулова"]
    assert a.ref == "s1-new-1" and a.birth_date == dt.date(2016, 4, 12)
    assert d.ref.startswith("st-") and d.birth_date == dt.date(2014, 3, 12)
    cls = db.get_one(SchoolClass, d.class_pk)
    assert (cls.name, cls.grade, cls.shift) == ("5C", 5, 2)
    consents = list(
        db.execute(select(Consent).where(Consent.student_pk.in_([a.pk, d.pk]))).scalars()
    )
    assert {(c.kind, c.granted, c.document, c.recorded_by) for c in consents} == {
        ("data", True, "Өтініш №12", world.users["admin1"]),
        ("data", True, "Өтініш №13", world.users["admin1"]),
    }
    g = db.execute(select(Guardian).where(Guardian.email == "gulnar@example.kz")).scalar_one()
    assert g.phone == "+77012345678"
    state = load_state(db, "S1")
    assert state.students["s1-new-1"].class_name == "3A"
    assert state.students[d.ref].grade == 5 and state.students[d.ref].shift == 2
    assert [c.kind for c in state.students[d.ref].consents] == ["data"]
    versions = db.execute(
        select(func.count()).select_from(ChangeLogEntry).where(ChangeLogEntry.school_id == "S1")
    ).scalar_one()
    assert versions == 1  # one append for the whole import
    audits = list(db.execute(select(AuditEntry).where(AuditEntry.school_id == "S1")).scalars())
    assert next(e.summary for e in audits if e.action == "import").endswith(
        "created 2, updated 0, unchanged 0, classes created 1"
    )
    assert {e.student_pk for e in audits if e.action == "change"} == {a.pk, d.pk}
    assert all("Ахмет" not in e.summary for e in audits)

    # The same file again changes nothing (matched on student_ref, else name and birth date).
    r = upload(admin, "S1", "roster.csv", data)
    assert "New: <strong>0</strong>" in r.text and "Unchanged: <strong>2</strong>" in r.text
    r = confirm(admin, r.text)
    assert r.status_code == 200
    db.expire_all()
    assert n_students(db) == 14
    assert db.execute(select(func.count()).select_from(Consent)).scalar_one() == 2
    versions2 = db.execute(
        select(func.count()).select_from(ChangeLogEntry).where(ChangeLogEntry.school_id == "S1")
    ).scalar_one()
    assert versions2 == versions

    # A changed line is an update; an applied preview cannot be confirmed twice.
    changed = [GOOD[0] | {"class": "7B", "grade": "", "shift": ""}, GOOD[1]]
    r = upload(admin, "S1", "roster.csv", csv_of(changed))
    assert "Changed: <strong>1</strong>" in r.text
    html = r.text
    assert confirm(admin, html).status_code == 200
    assert confirm(admin, html).status_code == 409
    db.expire_all()
    assert load_state(db, "S1").students["s1-new-1"].class_name == "7B"


def test_xlsx_import(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    r = upload(admin, "S1", "roster.xlsx", xlsx_of(GOOD))
    assert r.status_code == 200, r.text
    assert confirm(admin, r.text).status_code == 200
    db.expire_all()
    assert n_students(db) == 14
    ops = [c["op"] for e in db.execute(select(ChangeLogEntry.changes)).scalars() for c in e]
    assert ops == ["student_upsert", "student_upsert"]


def test_windows_1251_csv_with_semicolons(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    russian = GOOD[1] | {
        "surname": "Иванова",
        "consent_given_by": "Иванов Пётр",
        "consent_document": "Заявление 7",
    }
    r = upload(admin, "S1", "roster.csv", csv_of([russian], "cp1251", ";"))
    assert r.status_code == 200 and 'id="encoding">Windows-1251<' in r.text
    assert confirm(admin, r.text).status_code == 200
    db.expire_all()
    st = db.execute(select(Student).where(Student.surname == "Иванова")).scalar_one()
    assert (
        db.execute(select(Consent.given_by).where(Consent.student_pk == st.pk)).scalar_one()
        == "Иванов Пётр"
    )


def test_a_broken_file_lists_every_error_and_cannot_be_confirmed(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    admin.post("/lang", {"lang": "en", "next": "/"})
    rows = [
        GOOD[0],
        GOOD[1] | {"class": "9Z", "grade": "", "shift": ""},
        GOOD[1] | {"given_name": "Б", "birth_date": "2016-13-01", "consent_document": ""},
        GOOD[0] | {"student_ref": "", "given_name": "В", "grade": "4", "guardian_phone": "12"},
        GOOD[0] | {"given_name": "Г", "student_ref": "s3-3a-1"},
    ]
    r = upload(admin, "S1", "broken.csv", csv_of(rows))
    assert r.status_code == 400
    assert error_rows(r.text) == [
        (
            "3",
            "class",
            "class 9Z does not exist: create it on the Classes page or fill grade and shift",
        ),
        ("4", "birth_date", "not a date (write YYYY-MM-DD or DD.MM.YYYY)"),
        ("4", "consent_document", "required field is empty"),  # the consent, written in part
        ("5", "grade", "grade 4 does not match class 3A (grade 3)"),
        ("5", "guardian_phone", "not a Kazakhstan phone number (+7 and 10 digits)"),
        ("6", "student_ref", "student_ref s3-3a-1 cannot be used: leave it empty or give another"),
    ]
    assert 'name="token"' not in r.text  # no confirm button
    preview = db.execute(select(ImportPreview)).scalar_one()
    assert preview.error_count == 6 and preview.rows == []
    r = admin.post(
        "/roster/import/confirm", {"token": preview.token, "sha256": preview.file_sha256}
    )
    assert r.status_code == 409
    db.expire_all()
    assert n_students(db) == 12
    assert db.execute(select(func.count()).select_from(ChangeLogEntry)).scalar_one() == 0
    assert db.execute(select(func.count()).select_from(SchoolClass)).scalar_one() == 6

    for name, data, reason in (
        ("roster.pdf", b"%PDF-1.4 ...", "Not a CSV or XLSX file."),
        (
            "roster.xls",
            b"\xd0\xcf\x11\xe0....",
            "An old Excel .xls file: save it as .xlsx or as CSV.",
        ),
        (
            "big.csv",
            b"a" * (rules.MAX_BYTES + 10),
            "The file is larger than 5 MB: split it or remove unused sheets.",
        ),
    ):
        r = upload(admin, "S1", name, data)
        assert r.status_code == 400 and error_rows(r.text) == [("", "", reason)], name


def test_confirm_is_bound_to_the_uploaded_file_and_its_user(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    r = upload(admin, "S1", "roster.csv", csv_of(GOOD))
    token = re.search(r'name="token" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    assert (
        admin.post("/roster/import/confirm", {"token": token, "sha256": "0" * 64}).status_code
        == 409
    )
    operator = make_browser("operator")
    sha = re.search(r'name="sha256" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    operator.get("/roster/import")
    assert (
        operator.post("/roster/import/confirm", {"token": token, "sha256": sha}).status_code == 409
    )
    # The roster changed after the preview: the plan shown is no longer what would happen.
    db.add(SchoolClass(school_id="S1", name="5C", grade=5, shift=1))
    db.commit()
    assert admin.post("/roster/import/confirm", {"token": token, "sha256": sha}).status_code == 409
    db.expire_all()
    assert n_students(db) == 12


def test_import_scope(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    r = upload(admin, "S3", "roster.csv", csv_of(GOOD))
    assert r.status_code == 404
    teacher = make_browser("teacher1")
    assert teacher.get("/roster/import").status_code == 403
    r = teacher.client.post(
        "/roster/import",
        data={"school": "S1", "csrf": teacher.csrf},
        files={"file": ("r.csv", csv_of(GOOD), "text/csv")},
    )
    assert r.status_code == 403
    db.expire_all()
    assert n_students(db) == 12


def test_students_list_and_card_scope_and_audit(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    teacher = make_browser("teacher1")
    r = teacher.get("/students")
    assert r.status_code == 200
    refs = set(re.findall(r"<code>([a-z0-9-]+)</code>", r.text))
    assert refs == {"s1-3a-1", "s1-3a-2"}
    assert teacher.get(f"/students?school=S1&class_pk={world.classes['S1/7B']}").status_code == 404
    assert teacher.get("/students?school=S3").status_code == 404
    # A class filter left over from another school is dropped, not an error.
    r = teacher.get(f"/students?school=S1&class_pk={world.classes['S3/7B']}")
    assert set(re.findall(r"<code>([a-z0-9-]+)</code>", r.text)) == {"s1-3a-1", "s1-3a-2"}
    assert teacher.get(f"/students/{world.students['s1-7b-1']}").status_code == 404
    assert teacher.get(f"/students/{world.students['s3-3a-1']}").status_code == 404
    r = teacher.get(f"/students/{world.students['s1-3a-1']}")
    assert r.status_code == 200 and "Parent One" in r.text
    assert f'action="/students/{world.students["s1-3a-1"]}"' not in r.text  # no edit form
    views = list(
        db.execute(
            select(AuditEntry).where(
                AuditEntry.action == "view", AuditEntry.student_pk.is_not(None)
            )
        ).scalars()
    )
    assert [(v.user_pk, v.student_pk) for v in views] == [
        (world.users["teacher1"], world.students["s1-3a-1"])
    ]
    # A class teacher may not edit.
    r = teacher.post(
        f"/students/{world.students['s1-3a-1']}",
        {"surname": "X", "given_name": "Y", "class_pk": world.classes["S1/3A"]},
    )
    assert r.status_code == 403

    parent = make_browser("parent1")
    assert parent.get("/students").status_code == 403
    assert parent.get(f"/students/{world.students['s1-3a-1']}").status_code == 403

    regional = make_browser("regional")
    r = regional.get("/students?school=S2")
    assert r.status_code == 200 and "s2-7b-2" in r.text
    assert regional.get("/students?school=S3").status_code == 404
    admin = make_browser("admin1")
    pk = world.students["s1-3a-1"]
    card = admin.get(f"/students/{pk}").text
    assert f"/students/{pk}/consents" in card and f"/students/{pk}/cards" in card
    assert f'action="/students/{pk}"' in card  # the edit form
    r = admin.get("/students")
    assert {"s1-3a-1", "s1-7b-2"} <= set(re.findall(r"<code>([a-z0-9-]+)</code>", r.text))


def _consent(db: Session, student_pk: int) -> None:
    db.add(
        Consent(
            student_pk=student_pk,
            kind="data",
            granted=True,
            given_by="Parent",
            document="No. 1",
            signed_on=dt.date(2025, 9, 1),
            recorded_at_ms=now_ms(),
        )
    )
    db.commit()


def test_edit_transfer_deactivate_publish(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    pk = world.students["s1-3a-1"]
    _consent(db, pk)
    admin = make_browser("admin1")
    admin.get(f"/students/{pk}")
    r = admin.post(
        f"/students/{pk}",
        {
            "surname": "Новая",
            "given_name": "Имя",
            "patronymic": "",
            "birth_date": "2015-05-01",
            "class_pk": world.classes["S1/7B"],
        },
    )
    assert r.status_code == 200, r.text
    db.expire_all()
    st = db.get_one(Student, pk)
    assert st.surname == "Новая" and st.class_pk == world.classes["S1/7B"]
    rec = load_state(db, "S1").students["s1-3a-1"]
    assert (rec.class_name, rec.grade, rec.shift, rec.display_name) == ("7B", 7, 2, "Новая Имя")
    r = admin.post(
        f"/students/{pk}",
        {
            "surname": "A",
            "given_name": "B",
            "birth_date": "1950-01-01",
            "class_pk": world.classes["S1/7B"],
        },
    )
    assert r.status_code == 400
    # A transfer to another school's class is not possible.
    r = admin.post(
        f"/students/{pk}", {"surname": "A", "given_name": "B", "class_pk": world.classes["S3/3A"]}
    )
    assert r.status_code == 404
    # Deactivate: removed from the edges.
    assert admin.post(f"/students/{pk}/active", {"active": "0"}).status_code == 303
    db.expire_all()
    assert "s1-3a-1" not in load_state(db, "S1").students
    assert admin.post(f"/students/{pk}/active", {"active": "1"}).status_code == 303
    db.expire_all()
    assert "s1-3a-1" in load_state(db, "S1").students
    # Without a data consent nothing about a student is published (consent first).
    other = world.students["s1-3a-2"]
    admin.get(f"/students/{other}")
    admin.post(
        f"/students/{other}",
        {"surname": "Z", "given_name": "Z", "class_pk": world.classes["S1/3A"]},
    )
    db.expire_all()
    assert "s1-3a-2" not in load_state(db, "S1").students
    summaries = [
        e.summary
        for e in db.execute(
            select(AuditEntry).where(AuditEntry.student_pk == pk, AuditEntry.action == "change")
        ).scalars()
    ]
    assert summaries == ["fields surname, given_name, class", "deactivated", "activated"]
    # Another school's admin cannot touch it.
    admin3 = make_browser("admin3")
    assert admin3.get(f"/students/{pk}").status_code == 404


def test_guardian_add_and_parent_invitation(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    pk = world.students["s1-3a-2"]
    admin = make_browser("admin1")
    admin.get(f"/students/{pk}")
    r = admin.post(
        f"/students/{pk}/guardians",
        {
            "full_name": "Mother Two",
            "phone": "8 701 111 22 33",
            "email": "m2@example.kz",
            "login": "mother2",
        },
    )
    assert r.status_code == 200, r.text
    link = r.text.split('id="invite-url">')[1].split("<")[0]
    db.expire_all()
    g = db.execute(select(Guardian).where(Guardian.full_name == "Mother Two")).scalar_one()
    assert g.phone == "+77011112233" and g.user_pk is not None
    r = admin.post(f"/students/{pk}/guardians", {"full_name": "Bad", "phone": "123"})
    assert r.status_code == 400
    invited = make_browser()
    path = link[link.index("/invite/") :]
    invited.get(path)
    assert (
        invited.post(path, {"password": "Str0ng-enough", "password2": "Str0ng-enough"}).status_code
        == 303
    )
    # The new parent sees their child on the parent pages' terms, never the staff list.
    assert invited.get("/students").status_code == 403


def test_classes_and_staff_reach_the_edges(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    _consent(db, world.students["s1-3a-1"])
    admin = make_browser("admin1")
    r = admin.get("/classes")
    assert r.status_code == 200 and "7B" in r.text
    assert (
        admin.post(
            "/classes", {"school": "S1", "name": "1 a", "grade": "1", "shift": "1"}
        ).status_code
        == 303
    )
    assert db.execute(select(SchoolClass).where(SchoolClass.name == "1A")).scalar_one().grade == 1
    r = admin.post("/classes", {"school": "S1", "name": "1A", "grade": "1", "shift": "1"})
    assert r.status_code == 400
    # Changing 3A's shift changes its students' records at the edge.
    assert (
        admin.post(
            "/classes",
            {
                "school": "S1",
                "pk": str(world.classes["S1/3A"]),
                "name": "3A",
                "grade": "3",
                "shift": "2",
            },
        ).status_code
        == 303
    )
    db.expire_all()
    assert load_state(db, "S1").students["s1-3a-1"].shift == 2
    assert (
        admin.post(
            "/classes", {"school": "S3", "name": "2B", "grade": "2", "shift": "1"}
        ).status_code
        == 404
    )
    teacher = make_browser("teacher1")
    assert (
        teacher.post(
            "/classes", {"school": "S1", "name": "2B", "grade": "2", "shift": "1"}
        ).status_code
        == 403
    )

    admin.get("/staff")
    r = admin.post(
        "/staff",
        {
            "school": "S1",
            "ref": "t-001",
            "full_name": "Teacher One",
            "position": "teacher",
            "roles": ["class_teacher"],
            "classes": [str(world.classes["S1/3A"])],
        },
    )
    assert r.status_code == 303, r.text
    db.expire_all()
    rec = load_state(db, "S1").staff["t-001"]
    assert rec.roles == ["class_teacher"] and rec.classes == ["3A"]
    m = db.execute(select(StaffMember).where(StaffMember.ref == "t-001")).scalar_one()
    assert (
        admin.post(
            "/staff",
            {
                "school": "S1",
                "pk": str(m.pk),
                "ref": "t-001",
                "full_name": "Teacher One",
                "active": "0",
            },
        ).status_code
        == 303
    )
    db.expire_all()
    assert "t-001" not in load_state(db, "S1").staff
    assert (
        admin.post("/staff", {"school": "S1", "ref": "bad id", "full_name": "X"}).status_code == 400
    )
    assert admin.post("/staff", {"school": "S3", "ref": "x", "full_name": "X"}).status_code == 404
    assert teacher.get("/staff").status_code == 403


def test_import_rows_from_python(world: World, db: Session) -> None:
    result = import_rows(db, "S2", GOOD, today=dt.date(2026, 11, 22))
    assert result.ok and (result.created, result.classes_created) == (2, 1)
    again = import_rows(db, "S2", GOOD, today=dt.date(2026, 11, 22))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    bad = import_rows(db, "S2", [GOOD[0] | {"consent_date": ""}], today=dt.date(2026, 11, 22))
    assert [e.as_tuple()[:2] for e in bad.errors] == [(2, "consent_date")]
    assert import_rows(db, "S2", [{"colour": "red"}]).errors[0].as_tuple() == (
        1,
        "colour",
        "unknown column",
    )
    # The rows of parse_file, and Russian column names, work the same way.
    from server.roster.service import parse_file

    parsed = parse_file("r.csv", csv_of([GOOD[0] | {"student_ref": "s2-x", "given_name": "X"}]))
    assert import_rows(db, "S2", parsed.rows, today=dt.date(2026, 11, 22)).created == 1
    ru = {
        "Фамилия": "Петрова",
        "Имя": "Ая",
        "Класс": "3A",
        "Согласие дал": "П.",
        "Документ согласия": "1",
        "Дата согласия": "2025-09-01",
    }
    assert import_rows(db, "S2", [ru], today=dt.date(2026, 11, 22)).created == 1
    assert [e.as_tuple()[1] for e in import_rows(db, "S2", [{"surname": "A"}]).errors] == [
        "class",
        "consent_date",
        "consent_document",
        "consent_given_by",
        "given_name",
    ]


def test_add_one_student_needs_consent(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    assert '<option value="7B"' in admin.get("/students/new/S1").text
    assert admin.get("/students/new/S3").status_code == 404
    form = {
        "school": "S1",
        "surname": "Жаңа",
        "given_name": "Оқушы",
        "class_name": "3A",
        "birth_date": "2016-01-01",
    }
    r = admin.post("/students", form)
    assert r.status_code == 400
    assert db.execute(select(Student).where(Student.surname == "Жаңа")).first() is None
    r = admin.post(
        "/students",
        form
        | {"consent_given_by": "Ата-анасы", "consent_document": "№5", "consent_date": "2025-09-01"},
    )
    assert r.status_code == 303
    db.expire_all()
    st = db.execute(select(Student).where(Student.surname == "Жаңа")).scalar_one()
    assert st.ref in load_state(db, "S1").students


def test_bulk_student_records_equal_people_student_record(world: World, db: Session) -> None:
    from server.people.service import student_record
    from server.roster.service import student_records

    for ref in ("s1-3a-1", "s1-7b-2"):
        _consent(db, world.students[ref])
    db.add(
        Consent(
            student_pk=world.students["s1-3a-1"],
            kind="biometric",
            granted=False,
            given_by="Parent",
            document="No. 2",
            signed_on=dt.date(2025, 10, 1),
            recorded_at_ms=now_ms(),
        )
    )
    db.commit()
    students = list(db.execute(select(Student).where(Student.school_id == "S1")).scalars())
    assert len(students) > 3
    bulk = student_records(db, students)
    assert bulk == {st.pk: student_record(db, st) for st in students}


def test_import_rows_on_the_demo_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The demo seeds its school through import_rows on SQLite (the one-machine default)."""
    from server.db import make_engine, session_factory
    from server.migrate import upgrade
    from server.people.service import add_school

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as db:
        add_school(db, "DEMO", "Demo school")
        db.commit()
        rows = [GOOD[0] | {"student_ref": f"demo-{i}", "given_name": f"N{i}"} for i in range(20)]
        result = import_rows(db, "DEMO", rows, today=dt.date(2026, 11, 22))
        assert result.ok and result.created == 20 and result.classes_created == 1
        assert len(load_state(db, "DEMO").students) == 20
        again = import_rows(db, "DEMO", rows, today=dt.date(2026, 11, 22))
        assert again.unchanged == 20
    engine.dispose()


def test_role_by_page_matrix_of_the_roster(make_browser, world: World) -> None:  # type: ignore[no-untyped-def]
    mine, other_class = world.students["s1-3a-1"], world.students["s1-7b-1"]
    pages = [
        "/students",
        "/classes",
        "/staff",
        "/roster/import",
        f"/students/{mine}",
        f"/students/{other_class}",
    ]
    expected = {
        # role: codes of the pages above (students.view, students.view, staff.edit,
        # roster.import, a 3A card, a 7B card), then of POST /students/{mine}/active
        "operator": ([200, 200, 200, 200, 200, 200], 303),
        "regional": ([200, 200, 403, 403, 200, 200], 403),
        "admin1": ([200, 200, 200, 200, 200, 200], 303),
        "duty1": ([200, 200, 403, 403, 200, 200], 403),
        "teacher1": ([200, 200, 403, 403, 200, 404], 403),
        "social1": ([200, 200, 403, 403, 200, 200], 403),
        "canteen1": ([200, 200, 403, 403, 200, 200], 403),
        "parent1": ([403, 403, 403, 403, 403, 403], 403),
        "admin3": ([200, 200, 200, 200, 404, 404], 404),
    }
    for login, (codes, write) in expected.items():
        b = make_browser(login)
        got = [b.get(url).status_code for url in pages]
        assert got == codes, (login, got)
        b.get("/")
        assert b.post(f"/students/{mine}/active", {"active": "1"}).status_code == write, login


def test_two_imports_of_one_file_at_once_create_its_students_once(
    sessions, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    import threading

    rows = [GOOD[1] | {"given_name": f"Twin{i}"} for i in range(30)]  # no student_ref
    results: list[object] = []
    start = threading.Barrier(2)

    def run() -> None:
        with sessions() as s:
            start.wait()
            results.append(import_rows(s, "S1", rows, today=dt.date(2026, 11, 22)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = sorted(r.created for r in results)  # type: ignore[attr-defined]
    assert created == [0, 30]
    db.expire_all()
    assert n_students(db) == 12 + 30


def test_absurd_ids_are_not_server_errors(make_browser, world: World) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    huge = "9" * 25
    assert admin.get(f"/students/{huge}").status_code in (404, 422)
    assert admin.get(f"/students?school=S1&class_pk={huge}").status_code in (200, 422)
    assert admin.get("/students?school=S1&class_pk=99999999999999999999").status_code == 200
    assert admin.get("/students/0").status_code in (404, 422)
    admin.get("/students")
    pk = world.students["s1-3a-1"]
    r = admin.post(f"/students/{pk}", {"surname": "A", "given_name": "B", "class_pk": huge})
    assert r.status_code == 422
    assert admin.post(f"/students/{pk}/guardians/{huge}/remove").status_code in (404, 422)


def test_siblings_share_one_guardian_and_parents_sharing_a_phone_do_not(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    a, b = world.students["s1-3a-2"], world.students["s1-7b-1"]
    admin.get(f"/students/{a}")
    mother = {"full_name": "Айгүл Б.", "phone": "+77015550000"}
    assert admin.post(f"/students/{a}/guardians", mother).status_code == 200
    assert admin.post(f"/students/{b}/guardians", mother).status_code == 200
    assert admin.post(f"/students/{b}/guardians", mother).status_code == 400  # linked already
    father = {"full_name": "Бауыржан Б.", "phone": "+77015550000"}
    assert admin.post(f"/students/{b}/guardians", father).status_code == 200
    db.expire_all()
    names = list(
        db.execute(select(Guardian.full_name).where(Guardian.phone == "+77015550000")).scalars()
    )
    assert sorted(names) == ["Айгүл Б.", "Бауыржан Б."]
    # The import links the same way: a file line naming the mother of a sibling.
    row = GOOD[1] | {"guardian_name": "айгүл б.", "guardian_phone": "8 701 555 00 00"}
    assert import_rows(db, "S1", [row], today=dt.date(2026, 11, 22)).created == 1
    db.expire_all()
    assert (
        db.execute(
            select(func.count()).select_from(Guardian).where(Guardian.phone == "+77015550000")
        ).scalar_one()
        == 2
    )


def test_a_failure_while_applying_leaves_nothing_half_imported(
    world: World, db: Session, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from server.roster import service

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("the change log refused")  # after students, guardians, consents

    monkeypatch.setattr(service, "append_changes", broken)
    with pytest.raises(RuntimeError):
        import_rows(db, "S1", GOOD, today=dt.date(2026, 11, 22))
    db.expire_all()
    assert n_students(db) == 12
    assert db.execute(select(func.count()).select_from(Consent)).scalar_one() == 0
    assert db.execute(select(func.count()).select_from(Guardian)).scalar_one() == 1
    assert db.execute(select(func.count()).select_from(SchoolClass)).scalar_one() == 6
    # (the world's users' creation is audited too; nothing of the import is)
    imported = select(func.count()).select_from(AuditEntry).where(AuditEntry.subject != "user")
    assert db.execute(imported).scalar_one() == 0


def test_export_edit_and_import_back(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    r = upload(admin, "S1", "roster.csv", csv_of(GOOD))
    assert confirm(admin, r.text).status_code == 200
    r = admin.get("/roster/export?school=S1")
    assert r.status_code == 200 and r.headers["content-disposition"].endswith('roster-S1.csv"')
    exported = r.content
    assert b"s1-new-1" in exported and "Ахметов".encode() in exported
    db.expire_all()
    assert db.execute(
        select(AuditEntry).where(AuditEntry.action == "export")
    ).scalar_one().summary == ("roster CSV, 6 students")
    # Only the two imported students have a data consent; the fixture's four do not, and the
    # import asks for it rather than letting them pass.
    admin.post("/lang", {"lang": "en", "next": "/"})
    r = upload(admin, "S1", "export.csv", exported)
    assert r.status_code == 400
    # one message per student without consent, not one per consent column
    assert {row[1] for row in error_rows(r.text)} == {"consent_given_by"}
    assert len(error_rows(r.text)) == 4
    # The lines with consent, imported back unchanged, change nothing.
    lines = exported.decode("utf-8-sig").splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if "Өтініш" in line]
    r = upload(admin, "S1", "export.csv", ("\r\n".join(kept) + "\r\n").encode())
    assert "Unchanged: <strong>2</strong>" in r.text and "New: <strong>0</strong>" in r.text
    teacher = make_browser("teacher1")
    assert teacher.get("/roster/export?school=S1").status_code == 403
    assert make_browser("admin3").get("/roster/export?school=S1").status_code == 404


def test_the_schools_own_export_goes_back_in_with_twins_and_shows_what_changes(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    """Twins named alike (same name, same birth date, different ids) were refused as duplicates
    on re-import of the school's own export; unchanged lines buried the changed ones."""
    admin = make_browser("admin1")
    admin.post("/lang", {"lang": "en", "next": "/"})
    twins = [
        GOOD[0] | {"student_ref": "s1-twin-1", "given_name": "Алия"},
        GOOD[0] | {"student_ref": "s1-twin-2", "given_name": "Алия"},
        GOOD[1],
    ]
    r = upload(admin, "S1", "roster.csv", csv_of(twins))
    assert r.status_code == 200, error_rows(r.text)
    assert confirm(admin, r.text).status_code == 200
    lines = admin.get("/roster/export?school=S1").content.decode("utf-8-sig").splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if "Өтініш" in line]
    assert len(kept) == 4  # the twins and the third student, all with their consent
    r = upload(admin, "S1", "export.csv", ("\r\n".join(kept) + "\r\n").encode())
    assert r.status_code == 200, error_rows(r.text)
    assert "Unchanged: <strong>3</strong>" in r.text
    assert 'id="rows"' not in r.text and '<details id="unchanged">' in r.text  # collapsed

    # one twin moves class in the file: the change shows the stored and the new value
    moved = [kept[0]] + [
        line.replace(",3A,3,1,", ",7B,7,2,") if "s1-twin-2" in line else line for line in kept[1:]
    ]
    r = upload(admin, "S1", "export.csv", ("\r\n".join(moved) + "\r\n").encode())
    assert r.status_code == 200, error_rows(r.text)
    changed = r.text.split('id="rows"')[1].split("</table>")[0]
    assert "s1-twin-2" in changed and "s1-twin-1" not in changed
    assert re.search(r"<del>3A</del> → <ins>7B</ins>", changed), changed


def test_edits_keep_the_social_categories_the_edge_has(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    """An upsert replaces the whole record at the edge: a rename, a transfer, a class change or
    a re-import must not take a student's free-meal category away."""
    from protocol.messages import CategoriesSet, CategoryMembership
    from server.consents.models import StudentCategory
    from server.roster.service import publish_students
    from server.sync.changelog import append_changes

    pk = world.students["s1-3a-1"]
    _consent(db, pk)
    st = db.get_one(Student, pk)
    publish_students(db, "S1", [st])
    member = CategoryMembership(
        code="large_family", valid_from="2025-09-01", valid_to="2026-12-31", document="No. 7"
    )
    append_changes(db, "S1", [CategoriesSet(student_id=st.ref, categories=[member])])
    db.commit()

    admin = make_browser("admin1")
    admin.get(f"/students/{pk}")
    admin.post(
        f"/students/{pk}",
        {"surname": "Renamed", "given_name": "X", "class_pk": world.classes["S1/7B"]},
    )
    admin.post(
        "/classes",
        {
            "school": "S1",
            "pk": str(world.classes["S1/7B"]),
            "name": "7B",
            "grade": "7",
            "shift": "1",
        },
    )
    db.expire_all()
    rec = load_state(db, "S1").students["s1-3a-1"]
    assert (rec.class_name, rec.shift, rec.display_name) == ("7B", 1, "Renamed X")
    assert rec.categories == [member]
    # Removed (deactivated) and back: the memberships come from the consents module's records.
    db.add(
        StudentCategory(
            student_pk=pk,
            school_id="S1",
            code="large_family",
            document="No. 7",
            valid_from=dt.date(2025, 9, 1),
            valid_to=dt.date(2099, 12, 31),
            recorded_at_ms=now_ms(),
        )
    )
    db.commit()
    admin.post(f"/students/{pk}/active", {"active": "0"})
    admin.post(f"/students/{pk}/active", {"active": "1"})
    db.expire_all()
    assert [c.code for c in load_state(db, "S1").students["s1-3a-1"].categories] == ["large_family"]


def test_a_student_back_from_deactivation_gets_their_bound_cards_back(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    from protocol.messages import CardBind, CardBinding, OwnerKind
    from server.cards.models import Card
    from server.roster.service import publish_students
    from server.sync.changelog import append_changes

    pk = world.students["s1-3a-1"]
    _consent(db, pk)
    publish_students(db, "S1", [db.get_one(Student, pk)])
    for cred, status in (("EM:0001", "active"), ("EM:0002", "unbound")):
        db.add(
            Card(  # bound by the console before the move: the number is still here
                card_ref=f"c-{cred}",
                credential=cred,
                student_pk=pk,
                school_id="S1",
                status=status,
                issued_at_ms=now_ms(),
            )
        )
    append_changes(
        db,
        "S1",
        [
            CardBind(
                card=CardBinding(
                    credential="EM:0001", owner_kind=OwnerKind.STUDENT, owner_id="s1-3a-1"
                )
            )
        ],
    )
    db.commit()
    admin = make_browser("admin1")
    admin.get(f"/students/{pk}")
    admin.post(f"/students/{pk}/active", {"active": "0"})
    db.expire_all()
    assert "EM:0001" not in load_state(db, "S1").cards  # the edge drops a removed student's cards
    admin.post(f"/students/{pk}/active", {"active": "1"})
    db.expire_all()
    cards = load_state(db, "S1").cards
    assert set(cards) == {"EM:0001"} and cards["EM:0001"].owner_id == "s1-3a-1"
