"""The console's test world: a browser that signs in like a person, the world of regions,
schools, classes, students and one user per role (password ``Passw0rd-<login>``)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.clock import now_ms
from server.people.models import Student

CSRF_RE = re.compile(r'name="csrf" value="([^"]*)"')


def password_of(login: str) -> str:
    return f"Passw0rd-{login}"


class Browser:
    """A TestClient that signs in like a person and sends the page's CSRF token with writes."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def get(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        r = self.client.get(url, follow_redirects=False, **kw)  # type: ignore[arg-type]
        m = CSRF_RE.search(r.text)
        if m and r.status_code == 200:
            self.csrf = m.group(1)
        return r

    def post(self, url: str, data: dict[str, object] | None = None, **kw: object):  # type: ignore[no-untyped-def]
        body = {"csrf": self.csrf, **(data or {})}
        return self.client.post(url, data=body, follow_redirects=False, **kw)  # type: ignore[arg-type]

    def login(self, login: str, password: str | None = None) -> None:
        self.get("/login")
        r = self.post("/login", {"login": login, "password": password or password_of(login)})
        assert r.status_code == 303, r.text
        self.get("/")


@dataclass
class World:
    schools: list[str]
    classes: dict[str, int]  # "S1/3A" -> class pk
    students: dict[str, int]  # ref -> student pk
    users: dict[str, int] = field(default_factory=dict)  # login -> user pk


def add_student(
    db: Session, school: str, class_pk: int, ref: str, surname: str, given: str
) -> Student:
    now = now_ms()
    st = Student(
        ref=ref,
        school_id=school,
        class_pk=class_pk,
        surname=surname,
        given_name=given,
        birth_date=dt.date(2015, 5, 1),
        created_at_ms=now,
        updated_at_ms=now,
    )
    db.add(st)
    db.flush()
    return st
