"""Card records at the centre: made from the school's desk events (fee: first card free, later
ones at the school's price), blocked / replaced / unbound by record from the console and sent to
the edges by record; a card number is refused everywhere at the centre (the console's old forms,
the card list's search, a roster file with a card column) and never shown."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.cards.models import Card
from server.cards.service import AT_THE_SCHOOL, card_fee, record_desk_events
from server.clock import now_ms
from server.models import ChangeLogEntry, School
from server.people.models import StaffMember
from server.roster.rules import E_CARD_COLUMN, parse_file
from server.sync.changelog import append_changes, load_state
from tests.support.consents import changes, give
from tests.support.console import Browser, World

NUMBER = "EM:0000000001"


def test_card_fee() -> None:
    assert card_fee(0, 15_000) == 0
    assert card_fee(1, 15_000) == 15_000
    assert card_fee(5, 15_000) == 15_000


def issued(
    ref: str, student: str | None = None, *, staff: str | None = None, **kw: Any
) -> dict[str, Any]:
    """A card_issued event as the school's edge sends it (and ingest stores it)."""
    return {
        "kind": "card_issued",
        "seq": 1,
        "at_ms": now_ms(),
        "terminal": "desk",
        "card_ref": ref,
        "student_id": student,
        "staff_id": staff,
        "replaces_ref": kw.get("replaces"),
    }


def changed(ref: str, change: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "kind": "card_changed",
        "seq": 2,
        "at_ms": now_ms(),
        "terminal": "desk",
        "card_ref": ref,
        "change": change,
        "reason": reason,
    }


def no_number_anywhere(db: Session) -> None:
    db.expire_all()
    assert all(c.credential is None for c in db.execute(select(Card)).scalars())
    for row in db.execute(select(ChangeLogEntry.changes)).scalars():
        assert "EM:" not in repr(row)


def test_desk_records_with_fee_replacement_and_replay(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    db.get_one(School, "S1").card_price_tiyn = 15_000
    db.commit()
    admin = make_browser("admin1")
    pk = world.students["s1-3a-1"]
    give(admin, pk)
    assert record_desk_events(db, "S1", [issued("k-aa01", "s1-3a-1")]) == 1
    db.commit()
    # Lost at the school: blocked at the desk, the new card replaces it (at the school's price).
    events = [changed("k-aa01", "blocked", "lost"), issued("k-aa02", "s1-3a-1", replaces="k-aa01")]
    assert record_desk_events(db, "S1", events) == 2
    db.commit()
    # The same events again (a batch sent twice): nothing changes.
    before = changes(db, "S1")
    assert record_desk_events(db, "S1", [issued("k-aa01", "s1-3a-1"), *events]) == 0
    db.commit()
    assert changes(db, "S1") == before
    cards = db.execute(select(Card).where(Card.student_pk == pk).order_by(Card.pk)).scalars().all()
    assert [(c.card_ref, c.status, c.block_reason, c.fee_tiyn) for c in cards] == [
        ("k-aa01", "blocked", "lost", 0),
        ("k-aa02", "active", None, 15_000),
    ]
    assert cards[1].replaces_card_pk == cards[0].pk
    # The school's other edges get the records, by ref.
    ops = [c["op"] for c in changes(db, "S1")]
    assert ops[-3:] == ["card_record", "card_record_block", "card_record"]
    records = load_state(db, "S1").records
    assert records["k-aa01"].status == "blocked" and records["k-aa02"].fee_tiyn == 15_000
    # The console shows records and fees, never a number.
    page = admin.get(f"/students/{pk}/cards").text
    assert "k-aa01" in page and "k-aa02" in page and 'id="issue-at-school"' in page
    fees = admin.get("/cards/fees?school=S1").text
    assert "k-aa02" in fees and "k-aa01" not in fees
    assert "150,00" in fees.split('id="total"')[1][:40]
    no_number_anywhere(db)


def test_a_desk_event_for_someone_not_on_the_roster_makes_no_record(
    world: World, db: Session
) -> None:
    assert record_desk_events(db, "S1", [issued("k-bb01", "nobody")]) == 0
    assert record_desk_events(db, "S1", [issued("k-bb02", "s3-3a-1")]) == 0  # another school's
    assert db.execute(select(Card)).first() is None


def issue_form(b: Browser, pk: int, credential: str):  # type: ignore[no-untyped-def]
    b.get(f"/students/{pk}/cards")
    return b.post(f"/students/{pk}/cards", {"credential": credential})


def test_a_number_sent_to_the_centre_is_refused_and_not_kept(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    pk = world.students["s1-3a-1"]
    give(admin, pk)
    before = changes(db, "S1")
    r = issue_form(admin, pk, NUMBER)
    assert r.status_code == 400 and "qaqpa edge cards import FILE.csv" in r.text
    assert NUMBER not in r.text  # not even echoed back
    assert db.execute(select(Card)).first() is None and changes(db, "S1") == before
    # The card list finds records, not numbers.
    record_desk_events(db, "S1", [issued("k-cc01", "s1-3a-1")])
    db.commit()
    assert "k-cc01" in admin.get("/cards?school=S1&q=k-cc01").text
    assert "k-cc01" not in admin.get(f"/cards?school=S1&q={NUMBER}").text


def test_a_roster_file_with_card_numbers_is_refused_whole() -> None:
    head = "surname,given_name,birth_date,class,card\n"
    parsed = parse_file("roster.csv", (head + f"Ахметов,Айдос,2016-03-01,3A,{NUMBER}\n").encode())
    assert parsed.refused and parsed.rows == []
    assert [(e.line, e.column, e.reason) for e in parsed.errors] == [(1, "card", E_CARD_COLUMN)]
    assert E_CARD_COLUMN == AT_THE_SCHOOL
    ru = "фамилия,имя,дата рождения,класс,номер карты\nА,Б,2016-03-01,3A,1\n"
    assert parse_file("r.csv", ru.encode()).errors[0].reason == E_CARD_COLUMN


def test_block_and_unbind_by_record_and_scope(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    pk = world.students["s1-7b-1"]
    give(admin, pk)
    record_desk_events(db, "S1", [issued("k-dd01", "s1-7b-1")])
    db.commit()
    card = db.execute(select(Card)).scalar_one()
    duty = make_browser("duty1")
    duty.get(f"/students/{pk}/cards")
    r = duty.post(f"/students/{pk}/cards/{card.pk}/block", {"reason": "stolen"})
    assert r.status_code == 400 and 'data-field="reason"' in r.text
    r = duty.post(f"/students/{pk}/cards/{card.pk}/block", {"reason": "damaged"})
    assert r.status_code == 303 and r.headers["location"] == f"/students/{pk}/cards"
    assert 'id="flash"' in duty.get(r.headers["location"]).text
    assert changes(db, "S1")[-1] == {
        "op": "card_record_block",
        "card_ref": "k-dd01",
        "reason": "damaged",
    }
    # Other school, other class: not found, nothing changes.
    before = db.execute(select(ChangeLogEntry.version)).scalars().all()
    admin3 = make_browser("admin3")
    assert admin3.get(f"/students/{pk}/cards").status_code == 404
    admin3.get("/cards")
    assert admin3.post(f"/students/{pk}/cards/{card.pk}/unbind").status_code == 404
    teacher = make_browser("teacher1")  # class teacher of 3A, the card is 7B's
    assert teacher.get(f"/students/{pk}/cards").status_code == 404
    assert teacher.post(f"/students/{pk}/cards/{card.pk}/unbind").status_code == 404
    other = world.students["s1-3a-1"]
    assert admin.post(f"/students/{other}/cards/{card.pk}/unbind").status_code == 404
    db.expire_all()
    assert db.execute(select(ChangeLogEntry.version)).scalars().all() == before
    # Replace from the console: the old card is blocked already; unbind then goes by record.
    admin.get(f"/students/{pk}/cards")
    r = admin.post(f"/students/{pk}/cards/{card.pk}/replace", {"reason": "lost"})
    assert r.status_code == 303
    assert 'id="flash"' in admin.get(r.headers["location"]).text
    assert admin.post(f"/students/{pk}/cards/{card.pk}/unbind").status_code == 303
    assert changes(db, "S1")[-1] == {"op": "card_record_unbind", "card_ref": "k-dd01"}
    assert "k-dd01" not in load_state(db, "S1").records
    no_number_anywhere(db)


def test_a_school_not_moved_yet_is_addressed_by_number(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    """A card the console bound before this release (its number still here, the school's move
    not started): its edges may be of the release before, so the block goes by number."""
    admin = make_browser("admin1")
    pk = world.students["s1-3a-1"]
    give(admin, pk)
    card = Card(card_ref="c-tmp", credential=NUMBER, student_pk=pk, school_id="S1", issued_at_ms=1)
    db.add(card)
    db.flush()
    card.card_ref = f"c-{card.pk}"
    append_changes(db, "S1", [bind_by_number(NUMBER, "s1-3a-1")])
    db.commit()
    admin.get(f"/students/{pk}/cards")
    page = admin.get(f"/students/{pk}/cards").text
    assert f"c-{card.pk}" in page and NUMBER not in page
    assert (
        admin.post(f"/students/{pk}/cards/{card.pk}/block", {"reason": "lost"}).status_code == 303
    )
    assert changes(db, "S1")[-1] == {"op": "card_block", "credential": NUMBER, "reason": "lost"}


def bind_by_number(number: str, owner: str) -> Any:
    from protocol.messages import CardBind, CardBinding, OwnerKind

    return CardBind(
        card=CardBinding(credential=number, owner_kind=OwnerKind.STUDENT, owner_id=owner)
    )


def test_staff_cards_move_the_same_way(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    member = StaffMember(
        school_id="S1", ref="t-77", full_name="Teacher Seven", edge_roles="class_teacher"
    )
    other = StaffMember(school_id="S3", ref="t-88", full_name="Teacher Eight")
    db.add_all([member, other])
    db.commit()
    admin = make_browser("admin1")
    admin.get(f"/staff/{member.pk}/cards")
    r = admin.post(f"/staff/{member.pk}/cards", {"credential": "em:0000000500"})
    assert r.status_code == 400 and "qaqpa edge cards import" in r.text
    assert db.execute(select(Card)).first() is None
    record_desk_events(db, "S1", [issued("k-ee01", staff="t-77")])
    db.commit()
    card = db.execute(select(Card).where(Card.staff_pk == member.pk)).scalar_one()
    assert card.fee_tiyn == 0 and card.student_pk is None and card.credential is None
    assert changes(db, "S1")[-1]["record"]["owner_kind"] == "staff"
    assert "k-ee01" in admin.get(f"/staff/{member.pk}/cards").text
    r = admin.post(f"/staff/{member.pk}/cards/{card.pk}/block", {"reason": "lost"})
    assert r.status_code == 303 and r.headers["location"] == f"/staff/{member.pk}/cards"
    assert load_state(db, "S1").records["k-ee01"].status == "blocked"
    # Scope: another school's admin, a teacher (no staff.edit), a card of another person.
    before = db.execute(select(ChangeLogEntry.version)).scalars().all()
    admin3 = make_browser("admin3")
    assert admin3.get(f"/staff/{member.pk}/cards").status_code == 404
    admin3.get(f"/staff/{other.pk}/cards")
    assert admin3.post(f"/staff/{member.pk}/cards/{card.pk}/unbind").status_code == 404
    assert admin3.post(f"/staff/{other.pk}/cards/{card.pk}/unbind").status_code == 404
    teacher = make_browser("teacher1")
    assert teacher.get(f"/staff/{member.pk}/cards").status_code == 403
    db.expire_all()
    assert db.execute(select(ChangeLogEntry.version)).scalars().all() == before
    assert db.get_one(Card, card.pk).status == "blocked"
    no_number_anywhere(db)
