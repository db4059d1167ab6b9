"""A CSV in UTF-8 with one stray byte of another encoding is refused with its line and
character (not read as KZ-1048, garbling every name); names with bidi overrides or zero-width
characters are refused, in a roster file and in a login."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from server.accounts.access import Grant, Role
from server.accounts.service import AccountError, create_user
from server.roster import rules
from server.roster.rules import parse_file

TODAY = dt.date(2026, 11, 22)
HEADER = ",".join(rules.COLUMNS)
ROW = "{ref},Ахметов,{given},,2016-04-12,3A,,,Ахметова Гүлнар,,,Ахметова Гүлнар,No. 12,01.09.2025"


def _csv(*givens: str) -> str:
    lines = [HEADER] + [ROW.format(ref=f"s{i}", given=g) for i, g in enumerate(givens, 1)]
    return "\r\n".join(lines) + "\r\n"


def test_one_stray_latin1_byte_in_utf8_is_refused_with_its_place() -> None:
    data = _csv("Айдос", "Aidos-X", "Әлия").encode("utf-8").replace(b"Aidos-X", b"Ai\xe9dos")
    parsed = parse_file("r.csv", data)
    assert parsed.refused and parsed.encoding != "KZ-1048"
    [err] = parsed.errors
    assert err.reason == rules.E_MIXED_ENCODING and err.line == 3
    assert "line 3, character 14" in err.text  # "s2,Ахметов,Ai" then the stray byte


def test_whole_files_in_one_windows_encoding_are_still_read() -> None:
    text = _csv("Айдос", "Ерлан").replace("Гүлнар", "Галина")
    assert parse_file("r.csv", text.encode("cp1251")).encoding == "Windows-1251"
    assert parse_file("r.csv", _csv("Әлия", "Нұрлан").encode("kz1048")).encoding == "KZ-1048"
    assert parse_file("r.csv", text.encode("utf-8")).encoding == "UTF-8"


@pytest.mark.parametrize(
    "bad", ["Ай\u202eсод", "Ай\u200bдос", "\u2066Айдос\u2069", "Ай\ufeffдос", "Ай\u200fдос"]
)
def test_hidden_characters_in_names_are_refused(bad: str) -> None:
    parsed = parse_file("r.csv", _csv("Айдос", bad).encode("utf-8"))
    assert not parsed.refused
    checked = rules.check_rows(
        parsed.rows, {rules.class_key("3A"): rules.ClassInfo("3A", 3, 1)}, TODAY
    )
    assert [(e.line, e.column, e.reason) for e in checked.errors] == [
        (3, "given_name", rules.E_HIDDEN_CHAR)
    ]


def test_hidden_characters_in_logins_and_names_of_users_are_refused(db: Session) -> None:
    for login, name in (("aigul\u200b", "Aigul"), ("aigul", "Ai\u202egul")):
        with pytest.raises(AccountError):
            create_user(db, login, name, [Grant(Role.OPERATOR)])
