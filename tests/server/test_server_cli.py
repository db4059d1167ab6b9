"""`qaqpa server school add` and `qaqpa server user add`: the first operator of a new
installation gets an invitation link that works; bad input exits 2 and creates nothing."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts.models import RoleGrant, User
from server.cli import main
from server.models import School


def test_school_and_first_operator(
    pg_console_url: str,
    db: Session,
    make_browser,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    url = ["--database-url", pg_console_url]
    assert main(["school", "add", *url, "--id", "S9", "--name", "School 9", "--region", "R9"]) == 0
    assert db.get(School, "S9") is not None and db.get_one(School, "S9").region_id == "R9"
    assert (
        main(["user", "add", *url, "--login", "Aigul", "--name", "Aigul N.", "--role", "operator"])
        == 0
    )
    link = re.search(r"invitation link \(shown once\): \S*(/invite/\S+)", capsys.readouterr().out)
    assert link is not None
    user = db.execute(select(User).where(User.login == "aigul")).scalar_one()
    assert user.password_hash is None and user.must_change_password
    grant = db.execute(select(RoleGrant).where(RoleGrant.user_pk == user.pk)).scalar_one()
    assert grant.role == "operator"
    # the link works once, in the console
    b = make_browser()
    b.get(link.group(1))
    r = b.post(link.group(1), {"password": "Str0ng-enough", "password2": "Str0ng-enough"})
    assert r.status_code == 303


def test_bad_user_add_exits_2_and_creates_nothing(
    pg_console_url: str, db: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--database-url", pg_console_url]
    assert main(["user", "add", *url, "--login", "x", "--name", "X", "--role", "king"]) == 2
    assert "unknown role 'king'" in capsys.readouterr().err
    # a school admin needs a school
    assert main(["user", "add", *url, "--login", "y", "--name", "Y", "--role", "school_admin"]) == 2
    assert "needs scope school" in capsys.readouterr().err
    assert db.execute(select(User)).first() is None
