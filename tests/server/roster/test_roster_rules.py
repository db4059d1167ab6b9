"""The roster file rules as pure functions: reading CSV / XLSX, encodings, limits, and every
per-row error as (line, column, reason). No database."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
from hypothesis import given, settings
from hypothesis import strategies as st

from server.roster import rules
from server.roster.rules import ClassInfo, RawRow, check_rows, parse_file

TODAY = dt.date(2026, 11, 22)
CLASSES = {
    rules.class_key("3A"): ClassInfo("3A", 3, 1),
    rules.class_key("7B"): ClassInfo("7B", 7, 2),
}
HEADER = ",".join(rules.COLUMNS)


def row(**over: str) -> dict[str, str]:
    base = {
        "student_ref": "",
        "surname": "Ахметов",
        "given_name": "Айдос",
        "patronymic": "",
        "birth_date": "2016-04-12",
        "class": "3A",
        "grade": "",
        "shift": "",
        "guardian_name": "Ахметова Гүлнар",
        "guardian_phone": "8 (701) 234-56-78",
        "guardian_email": "",
        "consent_given_by": "Ахметова Гүлнар",
        "consent_document": "No. 12",
        "consent_date": "01.09.2025",
    }
    base.update(over)
    return base


def csv_bytes(rows: list[dict[str, str]], encoding: str = "utf-8", sep: str = ",") -> bytes:
    lines = [sep.join(rules.COLUMNS)] + [sep.join(r[c] for c in rules.COLUMNS) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def errors_of(rows: list[dict[str, str]]) -> list[tuple[int, str, str]]:
    parsed = parse_file("r.csv", csv_bytes(rows))
    assert not parsed.refused, parsed.errors
    checked = check_rows(parsed.rows, CLASSES, TODAY)
    return [e.as_tuple() for e in [*parsed.errors, *checked.errors]]


def test_a_good_row_is_normalised() -> None:
    parsed = parse_file("r.csv", csv_bytes([row()]))
    assert parsed.encoding == "UTF-8" and parsed.kind == "csv" and not parsed.errors
    checked = check_rows(parsed.rows, CLASSES, TODAY)
    assert not checked.errors
    (r,) = checked.rows
    assert r.line == 2 and r.class_name == "3A" and r.guardian_phone == "+77012345678"
    assert r.consent_date == dt.date(2025, 9, 1) and r.birth_date == dt.date(2016, 4, 12)


def test_encodings_bom_and_windows_1251_and_semicolons() -> None:
    data = csv_bytes([row()])
    assert parse_file("r.csv", b"\xef\xbb\xbf" + data).encoding == "UTF-8 with BOM"
    russian = row(surname="Иванова", given_name="Жанна", guardian_name="Иванов Пётр")
    russian["consent_given_by"] = "Иванов Пётр"
    win = parse_file("r.csv", csv_bytes([russian], "cp1251", ";"))
    assert win.encoding == "Windows-1251" and not win.errors
    assert win.rows[0].cells["guardian_name"] == "Иванов Пётр"
    # Kazakh letters do not exist in Windows-1251: Windows in a Kazakh locale writes KZ-1048.
    kz = parse_file("r.csv", csv_bytes([row()], "kz1048", ";"))
    assert kz.encoding == "KZ-1048" and kz.rows[0].cells["guardian_name"] == "Ахметова Гүлнар"
    utf16 = parse_file("r.csv", "\ufeff".encode("utf-16-le") + HEADER.encode("utf-16-le"))
    assert [e.reason for e in utf16.errors] == [rules.E_UTF16] and utf16.refused


def test_refusals_of_the_whole_file() -> None:
    assert parse_file("r.pdf", b"%PDF-1.4").errors[0].reason == rules.E_NOT_TABULAR
    assert parse_file("r.xls", b"\xd0\xcf\x11\xe0rest").errors[0].reason == rules.E_OLD_XLS
    assert parse_file("r.xlsx", b"not a zip").errors[0].reason == rules.E_BAD_XLSX
    assert parse_file("r.csv", b"").errors[0].reason == rules.E_EMPTY
    big = parse_file("r.csv", b"x" * (rules.MAX_BYTES + 1))
    assert big.refused and big.errors[0].reason == rules.E_TOO_LARGE
    many = parse_file("r.csv", csv_bytes([row(surname=f"S{i}") for i in range(rules.MAX_ROWS + 1)]))
    assert many.refused and [e.reason for e in many.errors] == [rules.E_TOO_MANY_ROWS]
    ok = parse_file("r.csv", csv_bytes([row(surname=f"S{i}") for i in range(rules.MAX_ROWS)]))
    assert not ok.errors and len(ok.rows) == rules.MAX_ROWS


def test_header_problems() -> None:
    parsed = parse_file("r.csv", b"surname,given_name,colour,given_name\r\nA,B,C,D\r\n")
    assert parsed.refused
    assert [e.as_tuple() for e in parsed.errors] == [
        (1, "colour", "unknown column"),
        (1, "given_name", "the column appears twice"),
        (1, "class", "required column is missing"),
        (1, "consent_given_by", "required column is missing"),
        (1, "consent_document", "required column is missing"),
        (1, "consent_date", "required column is missing"),
    ]


def test_every_row_error_has_line_column_reason() -> None:
    rows = [
        row(),  # line 2: good
        row(surname="", consent_document=""),  # 3
        row(given_name="B", birth_date="31.02.2016", class_name="") | {"class": "9Z"},  # 4
        row(given_name="C", grade="4"),  # 5
        row(given_name="D", shift="2"),  # 6
        row(given_name="E", guardian_phone="12345", guardian_email="nope"),  # 7
        row(given_name="F", student_ref="010203040506"),  # 8
        row(given_name="G", student_ref="a b"),  # 9
        row(given_name="H", student_ref="x-1"),  # 10
        row(given_name="I", student_ref="x-1"),  # 11
        row(),  # 12: the same person as line 2
        row(given_name="J", consent_date="2027-01-01"),  # 13
        row(given_name="K", birth_date="1990-01-01"),  # 14
        row(given_name="L", guardian_name=""),  # 15
        row(given_name="M", class_name="") | {"class": "5C", "grade": "5", "shift": "1"},  # 16
        row(given_name="N") | {"class": "5C", "grade": "5", "shift": "2"},  # 17
        row(given_name="O") | {"class": "6D", "grade": "5", "shift": "1"},  # 18
        row(given_name="P", grade="x", shift="4"),  # 19
    ]
    assert errors_of(rows) == [
        (3, "surname", "required field is empty"),
        (3, "consent_document", "required field is empty"),
        (4, "birth_date", "not a date (write YYYY-MM-DD or DD.MM.YYYY)"),
        (
            4,
            "class",
            "class 9Z does not exist: create it on the Classes page or fill grade and shift",
        ),
        (5, "grade", "grade 4 does not match class 3A (grade 3)"),
        (6, "shift", "shift 2 does not match class 3A (shift 1)"),
        (7, "guardian_phone", "not a Kazakhstan phone number (+7 and 10 digits)"),
        (7, "guardian_email", "not an e-mail address"),
        (
            8,
            "student_ref",
            "student_ref looks like an IIN: use the school's own number, never an IIN",
        ),
        (
            9,
            "student_ref",
            "student_ref may hold only Latin letters, digits and _ . : - (at most 64)",
        ),
        (11, "student_ref", "duplicate student: the same student_ref as line 10"),
        (12, "surname", "duplicate student: the same name and birth date as line 2"),
        (13, "consent_date", "the date is in the future"),
        (14, "birth_date", "a student's birth date must give an age of 3 to 25 years"),
        (15, "guardian_name", "a guardian's phone or e-mail needs guardian_name"),
        (17, "class", "class 5C has another grade or shift on line 16"),
        (18, "grade", "grade 5 does not match the class name 6D"),
        (19, "grade", "not a whole number"),
        (19, "shift", "shift must be 1 to 3"),
    ]


def test_a_row_without_consent_gets_one_message_not_three() -> None:
    checked = check_rows(
        [RawRow(2, row(consent_given_by="", consent_document="", consent_date=""))],
        CLASSES,
        TODAY,
    )
    assert [e.as_tuple() for e in checked.errors] == [
        (
            2,
            "consent_given_by",
            "no written data consent: a student's data enters the system only with a parent's consent",
        )
    ]


def test_namesakes_with_their_own_ids_are_two_students() -> None:
    """The school's own export carries twins named alike (same birth date, different ids)."""
    twin = row(student_ref="s-1")
    other = row(student_ref="s-2")  # the same name and birth date
    checked = check_rows([RawRow(2, twin), RawRow(3, other)], CLASSES, TODAY)
    assert checked.errors == [] and [r.ref for r in checked.rows] == ["s-1", "s-2"]
    # without an id, name and birth date still identify: the second line is a duplicate
    for a, b in ((row(), row()), (twin, row()), (row(), other)):
        checked = check_rows([RawRow(2, a), RawRow(3, b)], CLASSES, TODAY)
        assert [e.as_tuple()[:2] for e in checked.errors] == [(3, "surname")]


def test_new_class_from_grade_and_shift_and_lookalike_letters() -> None:
    checked = check_rows(
        [
            RawRow(2, row(given_name="A") | {"class": "5 c", "grade": "5", "shift": "1"}),
            RawRow(3, row(given_name="B") | {"class": "5C"}),
            # Cyrillic А: the same class as the Latin 3A
            RawRow(4, row(given_name="C") | {"class": "3А"}),
        ],
        CLASSES,
        TODAY,
    )
    # Line 3 names the class the file creates on line 2 without grade/shift: still unknown.
    assert [e.as_tuple()[:2] for e in checked.errors] == [(3, "class")]
    assert [r.class_name for r in checked.rows] == ["5C", "3A"]
    assert checked.new_classes == {"5C": ClassInfo("5C", 5, 1)}


def test_xlsx_with_typed_cells() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(list(rules.COLUMNS))
    r = row()
    values: list[object] = [r[c] for c in rules.COLUMNS]
    values[rules.COLUMNS.index("birth_date")] = dt.datetime(2016, 4, 12)
    values[rules.COLUMNS.index("guardian_phone")] = 77012345678
    values[rules.COLUMNS.index("grade")] = 3.0
    ws.append(values)
    ws.append([None] * len(values))  # empty trailing line
    buf = io.BytesIO()
    wb.save(buf)
    parsed = parse_file("roster.xlsx", buf.getvalue())
    assert parsed.kind == "xlsx" and not parsed.errors
    checked = check_rows(parsed.rows, CLASSES, TODAY)
    assert not checked.errors
    (got,) = checked.rows
    assert got.birth_date == dt.date(2016, 4, 12) and got.guardian_phone == "+77012345678"
    assert got.grade == 3


def test_templates_parse_cleanly() -> None:
    for name, data in (("t.csv", rules.template_csv()), ("t.xlsx", rules.template_xlsx())):
        parsed = parse_file(name, data)
        assert not parsed.errors, name
        assert not check_rows(parsed.rows, {}, TODAY).errors, name


def test_phone_normalisation() -> None:
    assert rules.normalize_phone("+7 701 234 56 78") == "+77012345678"
    assert rules.normalize_phone("87012345678") == "+77012345678"
    assert rules.normalize_phone("7012345678") == "+77012345678"
    assert rules.normalize_phone("+1 555 123 4567") is None
    assert rules.normalize_phone("٨٧٠١٢٣٤٥٦٧٨") is None


def test_russian_and_kazakh_column_names_and_a_file_without_lines() -> None:
    header = (
        "Фамилия;Имя;Класс;Согласие дал;Документ согласия;Дата согласия;ата-ананың телефоны;Ата-ана"
    )
    line = "Иванова;Жанна;3А;Иванов П.;№4;2025-09-01;87011112233;Иванов П."
    parsed = parse_file("r.csv", f"{header}\r\n{line}\r\n".encode())
    assert not parsed.errors, parsed.errors
    assert parsed.columns[:3] == ["surname", "given_name", "class"]
    checked = check_rows(parsed.rows, CLASSES, TODAY)
    assert not checked.errors and checked.rows[0].guardian_phone == "+77011112233"
    empty = parse_file("r.csv", f"{header}\r\n;;\r\n".encode())
    assert empty.refused and [e.reason for e in empty.errors] == [rules.E_NO_ROWS]


def test_excel_sep_line_names_the_separator() -> None:
    parsed = parse_file("r.csv", b"sep=;\r\n" + csv_bytes([row()], sep=";"))
    assert not parsed.errors and parsed.rows[0].line == 3
    assert parsed.rows[0].cells["surname"] == "Ахметов"


# ------------------------------------------------------------------------------ properties

NAMES = st.text(
    alphabet=st.characters(categories=["Lu", "Ll"], exclude_characters="\x00"),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["r.csv", "r.xlsx", "r.txt", "r"]))
def test_any_bytes_are_read_or_refused_never_raise(data: bytes, name: str) -> None:
    parsed = parse_file(name, data)
    assert parsed.refused or parsed.rows or parsed.errors
    for e in parsed.errors:
        assert e.text  # every problem has a reason


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(NAMES, NAMES, st.dates(dt.date(2002, 1, 1), dt.date(2022, 1, 1))),
        min_size=1,
        max_size=20,
        unique_by=lambda t: (t[0].casefold(), t[1].casefold(), t[2]),
    ),
    st.sampled_from(["utf-8", "utf-8-sig"]),
    st.sampled_from([",", ";"]),
)
def test_written_rows_read_back_the_same(
    people: list[tuple[str, str, dt.date]], encoding: str, sep: str
) -> None:
    rows = [
        row(
            surname=s,
            given_name=g,
            birth_date=b.strftime("%d.%m.%Y"),
            guardian_name="",
            guardian_phone="",
        )
        for s, g, b in people
    ]
    parsed = parse_file("r.csv", csv_bytes(rows, encoding, sep))
    checked = check_rows(parsed.rows, CLASSES, TODAY)
    assert not parsed.errors and not checked.errors
    assert [(r.surname, r.given_name, r.birth_date) for r in checked.rows] == [
        (s.strip(), g.strip(), b) for s, g, b in people
    ]


def test_a_title_above_the_header_is_skipped() -> None:
    data = "Список учеников, 2025-2026\r\n\r\n".encode() + csv_bytes([row()])
    parsed = parse_file("r.csv", data)
    assert not parsed.errors and parsed.rows[0].line == 4
    # Without any recognisable header, the first line is the header and is refused as such.
    bad = parse_file("r.csv", b"a,b\r\n1,2\r\n")
    assert bad.refused and (1, "a", "unknown column") in [e.as_tuple() for e in bad.errors]
