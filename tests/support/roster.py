"""Roster files for the console and browser tests: a good import, as CSV and XLSX."""

from __future__ import annotations

import io

import openpyxl

from server.roster import rules

GOOD = [
    {
        "student_ref": "s1-new-1",
        "surname": "Ахметов",
        "given_name": "Айдос",
        "patronymic": "Серікұлы",
        "birth_date": "2016-04-12",
        "class": "3A",
        "grade": "3",
        "shift": "1",
        "guardian_name": "Ахметова Гүлнар",
        "guardian_phone": "+7 701 234 56 78",
        "guardian_email": "gulnar@example.kz",
        "consent_given_by": "Ахметова Гүлнар",
        "consent_document": "Өтініш №12",
        "consent_date": "2025-09-01",
    },
    {
        "student_ref": "",
        "surname": "Смагулова",
        "given_name": "Дана",
        "patronymic": "",
        "birth_date": "12.03.2014",
        "class": "5C",
        "grade": "5",
        "shift": "2",
        "guardian_name": "",
        "guardian_phone": "",
        "guardian_email": "",
        "consent_given_by": "Смагулов Ерлан",
        "consent_document": "Өтініш №13",
        "consent_date": "02.09.2025",
    },
]


def csv_of(rows: list[dict[str, str]], encoding: str = "utf-8", sep: str = ",") -> bytes:
    lines = [sep.join(rules.COLUMNS)] + [sep.join(r[c] for c in rules.COLUMNS) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_of(rows: list[dict[str, str]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(list(rules.COLUMNS))
    for r in rows:
        ws.append([r[c] for c in rules.COLUMNS])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
