"""A student with a data consent reaches the school's edge through the downlink, a card is bound
at the school's desk (the centre stores its record, never the number), the student taps at the
simulated turnstile, and the entry is stored at the server once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import PolicySet, StudentUpsert
from server.cards.models import Card
from server.models import StoredEvent
from server.people.models import Consent, Student
from server.people.service import student_record
from server.settings import ServerSettings
from server.sync.changelog import append_changes
from tests.support.console import World
from tests.support.school_sim import ALL_DAY, SimSchool
from tests.support.wait import wait_until

pytestmark = pytest.mark.mosquitto


def publish_student(db: Session, ref: str) -> None:
    import datetime as dt

    from server.clock import now_ms

    st = db.execute(select(Student).where(Student.ref == ref)).scalar_one()
    db.add(
        Consent(
            student_pk=st.pk,
            kind="data",
            granted=True,
            given_by="Parent One",
            document="D-1",
            signed_on=dt.date(2026, 9, 1),
            recorded_at_ms=now_ms(),
        )
    )
    db.flush()
    append_changes(
        db,
        st.school_id,
        [
            PolicySet(policy=ALL_DAY),
            StudentUpsert(student=student_record(db, st)),
        ],
    )
    db.commit()


def test_card_reaches_the_edge_and_the_tap_reaches_the_server(
    settings: ServerSettings, world: World, db: Session, tmp_path: Path
) -> None:
    with SimSchool(settings, "S1", tmp_path) as school:
        publish_student(db, "s1-3a-1")
        school.wait_synced()
        ref = school.desk_issue("s1-3a-1", "EM:0012345678")

        def record() -> list[tuple[str, str | None, int | None]]:
            db.rollback()
            return [
                (c.card_ref, c.credential, c.student_pk) for c in db.execute(select(Card)).scalars()
            ]

        got = wait_until(record, 20, "the card record at the server", interval=0.1)
        st = db.execute(select(Student).where(Student.ref == "s1-3a-1")).scalar_one()
        assert got == [(ref, None, st.pk)]  # the record, never the number
        school.tap("EM:0012345678")

        def entries() -> list[StoredEvent]:
            db.rollback()
            query = select(StoredEvent).where(
                StoredEvent.school_id == "S1", StoredEvent.kind == "entry"
            )
            return list(db.execute(query).scalars())

        rows = wait_until(entries, 20, "the entry stored at the server", interval=0.1)
        assert [r.student_id for r in rows] == ["s1-3a-1"]
