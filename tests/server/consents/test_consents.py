"""Consent first (DESIGN invariant 6): records with history, the gate on cards, and withdrawal
removing what it covered (cards unbound, student removed from the edges, face templates deleted
at the school), each effect in the change log and the audit."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.audit.models import AuditEntry
from server.cards.models import Card
from server.cards.service import record_desk_events
from server.clock import now_ms
from server.consents.service import ConsentError, parse_consent_form
from server.models import ChangeLogEntry, Device, StoredEvent
from server.people.models import Consent, Student
from server.people.service import has_consent
from server.sync.changelog import load_state
from tests.support.consents import changes, give
from tests.support.console import World

TODAY = dt.date(2026, 3, 2)


# ---------------------------------------------------------------------------- pure checks


def test_parse_consent_form_names_the_bad_field() -> None:
    ok = parse_consent_form(
        "biometric", "withdrawn", "  Parent   One ", "No. 5", "2026-03-01", TODAY
    )
    assert ok.kind is ConsentKind.BIOMETRIC and not ok.granted and ok.given_by == "Parent One"
    cases = [
        (("dna", "given", "P", "D", "2026-03-01"), "kind"),
        (("data", "maybe", "P", "D", "2026-03-01"), "decision"),
        (("data", "given", "  ", "D", "2026-03-01"), "given_by"),
        (("data", "given", "P", "", "2026-03-01"), "document"),
        (("data", "given", "P", "D", "01.03.2026"), "signed_on"),
        (("data", "given", "P", "D", "2026-03-03"), "signed_on"),  # in the future
    ]
    for args, field in cases:
        with pytest.raises(ConsentError) as err:
            parse_consent_form(*args, TODAY)
        assert err.value.field == field, args


# ------------------------------------------------------------------------------- the gate


def test_no_card_without_data_consent(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    """Cards are bound at the school's desk, which refuses a student without a data consent
    (tests/edge/test_cards.py): without one the student is not on the school's edges at all.
    The console never takes a number, consent or not."""
    admin = make_browser("admin1")
    pk = world.students["s1-3a-1"]
    admin.get(f"/students/{pk}/cards")
    r = admin.post(f"/students/{pk}/cards", {"credential": "EM:0012345678"})
    assert r.status_code == 400
    assert 'id="error"' in r.text
    assert 'id="no-consent"' in r.text
    assert db.execute(select(Card)).first() is None
    assert changes(db, "S1") == []
    # Once the parent's data consent is recorded, the student reaches the edges, and a card
    # bound there comes back as a record.
    assert give(admin, pk).status_code == 200
    admin.get(f"/students/{pk}/cards")
    r = admin.post(f"/students/{pk}/cards", {"credential": "em:0012345678"})
    assert r.status_code == 400 and db.execute(select(Card)).first() is None
    record_desk_events(db, "S1", [desk_issued("k-0001", "s1-3a-1")])
    db.commit()
    ops = [c["op"] for c in changes(db, "S1")]
    assert ops == ["student_upsert", "card_record"]
    state = load_state(db, "S1")
    assert state.records["k-0001"].owner_id == "s1-3a-1"
    assert [c.kind.value for c in state.students["s1-3a-1"].consents] == ["data"]


def desk_issued(ref: str, student: str, replaces: str | None = None) -> dict[str, object]:
    """A card_issued event as the school's edge sends it."""
    return {
        "kind": "card_issued",
        "seq": 1,
        "at_ms": now_ms(),
        "terminal": "desk",
        "card_ref": ref,
        "student_id": student,
        "replaces_ref": replaces,
    }


def test_consent_history_and_page(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    teacher = make_browser("teacher1")
    pk = world.students["s1-3a-2"]
    assert give(teacher, pk).status_code == 200
    assert give(teacher, pk, kind="notifications").status_code == 200
    r = give(teacher, pk, kind="notifications", decision="withdrawn", document="Letter 3")
    assert r.status_code == 200 and 'id="flash"' in r.text  # redirected to the page
    page = teacher.get(f"/students/{pk}/consents").text
    assert page.count("Letter 3") >= 2 and "Application No. 17" in page
    assert len(db.execute(select(Consent).where(Consent.student_pk == pk)).all()) == 3
    assert has_consent(db, pk, ConsentKind.DATA)
    assert not has_consent(db, pk, ConsentKind.NOTIFICATIONS)
    last = changes(db, "S1")[-1]
    assert last["op"] == "consent_set" and last["consent"]["kind"] == "notifications"
    assert last["consent"]["granted"] is False


def test_bad_consent_form_records_nothing(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    pk = world.students["s1-7b-1"]
    r = give(admin, pk, signed_on="2999-01-01")
    assert r.status_code == 400 and 'data-field="signed_on"' in r.text
    r = give(admin, pk, given_by="")
    assert r.status_code == 400 and 'data-field="given_by"' in r.text
    # Withdrawing what was never given is refused.
    r = give(admin, pk, decision="withdrawn")
    assert r.status_code == 400 and 'data-field="decision"' in r.text
    assert db.execute(select(Consent)).first() is None
    assert changes(db, "S1") == []


def test_out_of_scope_consent_is_refused_and_changes_nothing(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    teacher = make_browser("teacher1")
    other_class = world.students["s1-7b-1"]
    assert teacher.get(f"/students/{other_class}/consents").status_code == 404
    teacher.get(f"/students/{world.students['s1-3a-1']}/consents")
    r = teacher.post(
        f"/students/{other_class}/consents",
        {
            "kind": "data",
            "decision": "given",
            "given_by": "X",
            "document": "Y",
            "signed_on": "2026-01-01",
        },
    )
    assert r.status_code == 404
    admin3 = make_browser("admin3")
    assert admin3.get(f"/students/{world.students['s1-3a-1']}/consents").status_code == 404
    duty = make_browser("duty1")
    assert duty.get(f"/students/{world.students['s1-3a-1']}/consents").status_code == 403
    assert db.execute(select(Consent)).first() is None


# ---------------------------------------------------------------------------- withdrawal


def test_data_withdrawal_unbinds_cards_removes_the_student_and_is_audited(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    pk = world.students["s1-3a-1"]
    give(admin, pk)
    give(admin, pk, kind="biometric")
    record_desk_events(db, "S1", [desk_issued("k-0111", "s1-3a-1")])
    db.commit()
    card = db.execute(select(Card).where(Card.student_pk == pk)).scalar_one()
    admin.get(f"/students/{pk}/cards")
    admin.post(f"/students/{pk}/cards/{card.pk}/replace", {"reason": "lost"})
    record_desk_events(db, "S1", [desk_issued("k-0222", "s1-3a-1", replaces="k-0111")])
    db.commit()
    head = (
        db.execute(select(ChangeLogEntry.version).order_by(ChangeLogEntry.version.desc()))
        .scalars()
        .first()
    )
    assert head is not None

    r = give(admin, pk, decision="withdrawn", document="Withdrawal letter 9")
    assert r.status_code == 200, r.text
    assert "The student was removed" in r.text or "Оқушы" in r.text  # the effects are listed

    ops = [c["op"] for c in changes(db, "S1", since=head)]
    assert ops == ["consent_set", "card_record_unbind", "card_record_unbind", "student_remove"]
    db.expire_all()
    assert {c.status for c in db.execute(select(Card).where(Card.student_pk == pk)).scalars()} == {
        "unbound"
    }
    assert db.get_one(Student, pk).active is False
    state = load_state(db, "S1")
    assert "s1-3a-1" not in state.students and state.records == {}

    summaries = [
        a.summary
        for a in db.execute(
            select(AuditEntry).where(AuditEntry.student_pk == pk, AuditEntry.action == "change")
        ).scalars()
    ]
    # The fields are named, the document's text is not copied.
    assert any("data consent withdrawn; given_by, document, signed_on" in s for s in summaries)
    assert not any("Withdrawal letter 9" in s for s in summaries)
    assert sum("unbound (card_record_unbind): data consent withdrawn" in s for s in summaries) == 2
    assert any("student_remove" in s for s in summaries)
    assert any("deactivated" in s for s in summaries)
    # Removal from the edges deletes the face templates there too (reason student_removed).
    assert any(
        "face templates to be deleted at the school (student_remove)" in s for s in summaries
    )
    assert 'id="face-deletion"' in r.text
    # The audit page shows it to the school admin.
    page = admin.get(f"/audit?student_pk={pk}").text
    assert "data consent withdrawn" in page and "student_remove" in page
    assert "Withdrawal letter 9" not in page
    # No card can be issued now.
    admin.get(f"/students/{pk}/cards")
    assert admin.post(f"/students/{pk}/cards", {"credential": "EM:0000000333"}).status_code == 400
    # The withdrawal erased the child's personal data at the centre (retention): a consent
    # given again is refused; the child is registered anew.
    assert give(admin, pk, document="Application 18").status_code == 400
    db.expire_all()
    assert db.get_one(Student, pk).active is False
    assert db.get_one(Student, pk).ref.startswith("erased-")


def test_biometric_withdrawal_reaches_the_edge_and_the_deletion_is_shown(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    pk = world.students["s1-3a-2"]
    give(admin, pk)
    give(admin, pk, kind="biometric")
    r = give(admin, pk, kind="biometric", decision="withdrawn", document="Letter 4")
    assert r.status_code == 200
    last = changes(db, "S1")[-1]
    assert last == {
        "op": "consent_set",
        "student_id": "s1-3a-2",
        "consent": last["consent"]
        | {"kind": "biometric", "granted": False, "document": "Letter 4"},
    }
    assert (
        'id="face-deletion"' in r.text
        and "badge warn" in r.text.split('id="face-deletion"')[1][:200]
    )
    biometric = next(
        c for c in load_state(db, "S1").students["s1-3a-2"].consents if c.kind.value == "biometric"
    )
    assert biometric.granted is False
    # The edge journals the deletion; ingest stores it in `events`: the page shows the confirmation.
    dev = Device(school_id="S1", device_id="edge-1", created_at_ms=now_ms())
    db.add(dev)
    db.flush()

    def deleted_event(seq: int, at: int) -> None:
        db.add(
            StoredEvent(
                device_pk=dev.pk,
                seq=seq,
                school_id="S1",
                at_ms=at,
                kind="face_templates_deleted",
                terminal="t1",
                student_id="s1-3a-2",
                payload={
                    "kind": "face_templates_deleted",
                    "seq": seq,
                    "at_ms": at,
                    "terminal": "t1",
                    "student_id": "s1-3a-2",
                    "templates": 3,
                    "reason": "consent_withdrawn",
                },
                received_at_ms=at,
            )
        )
        db.commit()

    # A deletion from before this withdrawal (an earlier one) confirms nothing now.
    deleted_event(1, now_ms() - 3_600_000)
    page = admin.get(f"/students/{pk}/consents").text
    assert "badge warn" in page.split('id="face-deletion"')[1][:200]
    deleted_event(2, now_ms())
    page = admin.get(f"/students/{pk}/consents").text
    part = page.split('id="face-deletion"')[1][:400]
    assert "badge ok" in part and "(3 " in part
    # Data consent stays: the student and cards are untouched by a biometric withdrawal.
    assert db.get_one(Student, pk).active is True


def test_a_student_who_left_is_not_reactivated_by_a_consent(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    pk = world.students["s1-7b-2"]
    give(admin, pk)
    st = db.get_one(Student, pk)
    st.active = False  # left the school (the roster's switch), data consent still given
    db.commit()
    assert give(admin, pk, document="Application 2").status_code == 200
    db.expire_all()
    assert db.get_one(Student, pk).active is False


def test_consent_list_shows_only_the_scope(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    teacher = make_browser("teacher1")
    give(teacher, world.students["s1-3a-1"])
    page = teacher.get("/consents").text
    assert "Surname1 Name3AS1" in page and "Surname2 Name3AS1" in page
    assert "Name7BS1" not in page
    assert "<strong>1</strong> / 2" in page.split('id="missing"')[1][:200]
    assert teacher.get(f"/consents?school=S1&class_pk={world.classes['S1/7B']}").status_code == 404
    assert teacher.get("/consents?school=S3").status_code == 404
    admin = make_browser("admin1")
    page = admin.get("/consents").text
    assert "Name7BS1" in page and "Name3AS3" not in page
    assert make_browser("canteen1").get("/consents").status_code == 403
