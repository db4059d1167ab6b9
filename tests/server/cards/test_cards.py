"""Cards: the credential format, the fee (first card free, later ones at the school's price),
block / replace / unbind reaching the edges, duplicate and cross-scope refusals."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.cards.models import Card
from server.cards.service import CardError, card_fee, normalise_credential
from server.models import ChangeLogEntry, School
from server.people.models import StaffMember
from server.sync.changelog import load_state
from tests.support.consents import changes, give
from tests.support.console import Browser, World


def test_normalise_credential() -> None:
    assert normalise_credential(" em: 0012 345678 ") == "EM:0012345678"
    assert normalise_credential("MF:04:A1:B2") == "MF:04:A1:B2"
    for bad, words in [
        ("", "Write the card number"),
        ("0012345678", "type before the number"),
        ("EM:00-12", "Only Latin letters"),
        ("ЕМ:0012", "Only Latin letters"),  # Cyrillic letters that look Latin
        (":0012", "Only Latin letters"),
        ("EM:" + "1" * 200, "3 to 128"),
    ]:
        with pytest.raises(CardError) as err:
            normalise_credential(bad)
        assert words in err.value.message, bad


def test_card_fee() -> None:
    assert card_fee(0, 15_000) == 0
    assert card_fee(1, 15_000) == 15_000
    assert card_fee(5, 15_000) == 15_000


def issue(b: Browser, pk: int, credential: str):  # type: ignore[no-untyped-def]
    b.get(f"/students/{pk}/cards")
    return b.post(f"/students/{pk}/cards", {"credential": credential})


def test_replace_fee_first_free_then_the_price(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    db.get_one(School, "S1").card_price_tiyn = 15_000
    db.commit()
    admin = make_browser("admin1")
    pk = world.students["s1-3a-1"]
    give(admin, pk)
    page = admin.get(f"/students/{pk}/cards").text
    assert 'id="next-fee"' in page
    r = issue(admin, pk, "EM:0000000001")
    assert r.status_code == 200
    first = db.execute(select(Card).where(Card.student_pk == pk)).scalar_one()
    assert first.fee_tiyn == 0
    # Lost: replaced by a new card, which costs the school's price.
    r = admin.post(
        f"/students/{pk}/cards/{first.pk}/replace",
        {"reason": "lost", "credential": "EM:0000000002"},
    )
    assert r.status_code == 200, r.text
    assert "150,00" in r.text.split('id="fee"')[1][:40]
    db.expire_all()
    cards = db.execute(select(Card).where(Card.student_pk == pk).order_by(Card.pk)).scalars().all()
    assert [(c.credential, c.status, c.block_reason, c.fee_tiyn) for c in cards] == [
        ("EM:0000000001", "blocked", "lost", 0),
        ("EM:0000000002", "active", None, 15_000),
    ]
    assert cards[1].replaces_card_pk == cards[0].pk
    ops = [
        (c["op"], c.get("credential") or c.get("card", {}).get("credential"))
        for c in changes(db, "S1")
    ]
    assert ops[-2:] == [("card_block", "EM:0000000001"), ("card_bind", "EM:0000000002")]
    state = load_state(db, "S1")
    assert state.cards["EM:0000000001"].blocked_reason == "lost"
    assert state.cards["EM:0000000002"].blocked_reason is None
    # The fees list of the school shows the paid card and the total.
    fees = admin.get("/cards/fees?school=S1").text
    assert "EM:0000000002" in fees and "EM:0000000001" not in fees
    assert "150,00" in fees.split('id="total"')[1][:40]


def test_bad_and_duplicate_credentials_are_refused(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    a, b = world.students["s1-3a-1"], world.students["s1-3a-2"]
    give(admin, a)
    give(admin, b)
    r = issue(admin, a, "12345")
    assert r.status_code == 400 and "EM:0012345678" in r.text
    assert issue(admin, a, "EM:0000000009").status_code == 200
    # The same card number cannot be bound to another student while it is bound.
    r = issue(admin, b, "em:0000000009")
    assert r.status_code == 400 and 'data-field="credential"' in r.text
    # A second active card for the same student is refused too.
    assert issue(admin, a, "EM:0000000010").status_code == 400
    assert len(db.execute(select(Card)).all()) == 1
    # Unbound, the number may be bound again (to the other student).
    card = db.execute(select(Card)).scalar_one()
    assert admin.post(f"/students/{a}/cards/{card.pk}/unbind").status_code == 200
    assert issue(admin, b, "EM:0000000009").status_code == 200
    assert load_state(db, "S1").cards["EM:0000000009"].owner_id == "s1-3a-2"


def test_block_by_duty_deputy_and_scope(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    pk = world.students["s1-7b-1"]
    give(admin, pk)
    issue(admin, pk, "EM:0000000077")
    card = db.execute(select(Card)).scalar_one()
    duty = make_browser("duty1")
    # The duty deputy may block a lost card but not issue one.
    assert issue(duty, pk, "EM:0000000078").status_code == 403
    duty.get(f"/students/{pk}/cards")
    r = duty.post(f"/students/{pk}/cards/{card.pk}/block", {"reason": "stolen"})
    assert r.status_code == 400 and 'data-field="reason"' in r.text
    r = duty.post(f"/students/{pk}/cards/{card.pk}/block", {"reason": "damaged"})
    assert r.status_code == 200
    assert changes(db, "S1")[-1] == {
        "op": "card_block",
        "credential": "EM:0000000077",
        "reason": "damaged",
    }
    # Found by number on the card list.
    assert "EM:0000000077" in duty.get("/cards?q=em:0000000077").text
    # Other school, other class: not found, nothing changes.
    before = db.execute(select(ChangeLogEntry.version)).scalars().all()
    admin3 = make_browser("admin3")
    assert admin3.get(f"/students/{pk}/cards").status_code == 404
    admin3.get("/cards")
    assert admin3.post(f"/students/{pk}/cards/{card.pk}/unbind").status_code == 404
    teacher = make_browser("teacher1")  # class teacher of 3A, the card is 7B's
    assert teacher.get(f"/students/{pk}/cards").status_code == 404
    assert teacher.post(f"/students/{pk}/cards/{card.pk}/unbind").status_code == 404
    # A card id of another student under this student's path is not found either.
    other = world.students["s1-3a-1"]
    assert admin.post(f"/students/{other}/cards/{card.pk}/unbind").status_code == 404
    db.expire_all()
    assert db.execute(select(ChangeLogEntry.version)).scalars().all() == before
    assert db.get_one(Card, card.pk).status == "blocked"


def _ops(rows: list[dict[str, Any]]) -> list[str]:
    return [r["op"] for r in rows]


def test_staff_cards(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    member = StaffMember(
        school_id="S1", ref="t-77", full_name="Teacher Seven", edge_roles="class_teacher"
    )
    other = StaffMember(school_id="S3", ref="t-88", full_name="Teacher Eight")
    db.add_all([member, other])
    db.commit()
    admin = make_browser("admin1")
    admin.get(f"/staff/{member.pk}/cards")
    assert admin.post(f"/staff/{member.pk}/cards", {"credential": "bad"}).status_code == 400
    r = admin.post(f"/staff/{member.pk}/cards", {"credential": "em:0000000500"})
    assert r.status_code == 200, r.text
    # Not on the school's terminals yet: the staff record goes first, then the binding.
    last = changes(db, "S1")[-2:]
    assert [c["op"] for c in last] == ["staff_upsert", "card_bind"]
    assert last[1]["card"] == {
        "credential": "EM:0000000500",
        "owner_kind": "staff",
        "owner_id": "t-77",
        "blocked_reason": None,
    }
    card = db.execute(select(Card).where(Card.staff_pk == member.pk)).scalar_one()
    assert card.fee_tiyn == 0 and card.student_pk is None
    # A student cannot get the same number while the staff card holds it.
    give(admin, world.students["s1-3a-1"])
    assert issue(admin, world.students["s1-3a-1"], "EM:0000000500").status_code == 400
    admin.get(f"/staff/{member.pk}/cards")
    assert (
        admin.post(f"/staff/{member.pk}/cards/{card.pk}/block", {"reason": "lost"}).status_code
        == 200
    )
    assert load_state(db, "S1").cards["EM:0000000500"].blocked_reason == "lost"
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
