"""Searching students finds Cyrillic and Kazakh names whatever their case, on PostgreSQL (under
any collation) and on the demo's SQLite; long lists come in pages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from server.people.models import SchoolClass
from server.people.service import add_school
from server.roster import service
from tests.support.console import add_student

NAMES = [
    ("Иванов", "Аружан"),
    ("ИВАНОВА", "Әлия"),
    ("Сейітова", "Айгерім"),
    ("Smith", "John"),
    ("Нұрланұлы", "Ерасыл"),
]


@pytest.fixture(params=[pytest.param("pg_url", marks=pytest.mark.postgres), "sqlite_url"])
def session(request: pytest.FixtureRequest) -> Iterator[Session]:
    engine = create_engine(request.getfixturevalue(request.param))
    with Session(engine) as db:
        if engine.dialect.name == "postgresql":
            # a database created with the "C" collation: SQL lower() leaves Cyrillic alone there
            db.execute(
                text('ALTER TABLE students ALTER COLUMN surname TYPE varchar(100) COLLATE "C"')
            )
            db.execute(
                text('ALTER TABLE students ALTER COLUMN given_name TYPE varchar(100) COLLATE "C"')
            )
        add_school(db, "S1", "School 1")
        cls = SchoolClass(school_id="S1", name="5A", grade=5, shift=1)
        db.add(cls)
        db.flush()
        for i, (surname, given) in enumerate(NAMES):
            add_student(db, "S1", cls.pk, f"s1-5a-{i}", surname, given)
        db.commit()
        yield db
    engine.dispose()


def names(page: service.StudentPage) -> list[str]:
    return [st.surname for st, _ in page.rows]


def classes(db: Session) -> list[int]:
    return [c.pk for c in db.query(SchoolClass).all()]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Иванов", ["Иванов", "ИВАНОВА"]),  # a part of the surname, any case
        ("иванова", ["ИВАНОВА"]),
        ("аружан", ["Иванов"]),
        ("ӘЛИЯ", ["ИВАНОВА"]),  # Kazakh letters fold too
        ("нұрлан", ["Нұрланұлы"]),
        ("ерасыл нұрланұлы", []),  # words in the order of the full name, not any order
        ("нұрланұлы ерасыл", ["Нұрланұлы"]),
        ("S1-5A-3", ["Smith"]),  # the student id
        ("%", []),  # no SQL wildcards
        ("_", []),
    ],
)
def test_search_folds_case_for_every_alphabet(
    session: Session, query: str, expected: list[str]
) -> None:
    found = service.find_students(session, "S1", classes(session), query)
    assert sorted(names(found)) == sorted(expected)
    assert found.total == len(expected)


def test_a_long_list_comes_in_pages_in_the_chosen_order(session: Session) -> None:
    every = classes(session)
    first = service.find_students(session, "S1", every, per_page=2, sort="name")
    assert (first.total, first.page, first.pages) == (5, 1, 3)
    seen = []
    for page in (1, 2, 3):
        seen += names(
            service.find_students(session, "S1", every, per_page=2, page=page, sort="name")
        )
    # every student once, none lost between pages, by case-folded surname
    assert seen == ["Smith", "Иванов", "ИВАНОВА", "Нұрланұлы", "Сейітова"]
    past_the_end = service.find_students(session, "S1", every, per_page=2, page=99)
    assert past_the_end.page == 3 and names(past_the_end) == names(
        service.find_students(session, "S1", every, per_page=2, page=3)
    )
