"""The badge module's console side: the application to activation, the journal with the
mentor's decisions and the expert's overturn, each badge role's scope, idempotent uploads,
deadlines, ratings, the award refused twice by the database, and the credential."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from jwcrypto import jwk, jws
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.accounts.access import Grant, Principal, Role
from server.accounts.models import User
from server.accounts.service import create_user
from server.badges import awards, service
from server.badges.models import (
    Agreement,
    Award,
    Centre,
    Decision,
    Entry,
    IssuedCredential,
    Participant,
    Reassignment,
    Staff,
)
from server.clock import now_ms
from server.people.service import add_school
from tests.support.console import Browser

pytestmark = pytest.mark.postgres

PW = "Passw0rd-badges"
TODAY = dt.date(2026, 12, 7)


def who(db: Session, login: str) -> Principal:
    u = db.scalars(select(User).where(User.login == login)).one()
    from server.accounts.models import RoleGrant

    grants = [
        Grant(Role(g.role), g.region_id, g.school_id, g.class_pk)
        for g in db.scalars(select(RoleGrant).where(RoleGrant.user_pk == u.pk))
    ]
    return Principal(u.pk, u.login, u.full_name, "en", "", grants)


def centre_world(db: Session) -> dict[str, Any]:
    """R1: a registered centre with an expert over mentor m1, mentor m2 (no expert), a
    coordinator; R2: another centre with mentor m3 and a coordinator."""
    add_school(db, "S1", "School 1", region="R1", region_name="Region One")
    add_school(db, "S3", "School 3", region="R2", region_name="Region Two")
    now = now_ms()
    out: dict[str, Any] = {}
    for region, tag in (("R1", "a"), ("R2", "b")):
        c = Centre(
            name=f"Centre {tag}",
            region_id=region,
            place=f"Town {tag}",
            status="registered",
            created_at_ms=now,
        )
        db.add(c)
        db.flush()
        out[f"centre_{tag}"] = c
    ca, cb = out["centre_a"], out["centre_b"]
    ex = awards.add_staff(db, None, ca, "ex1", "Expert One", "expert", password=PW)
    out["m1"] = awards.add_staff(
        db, None, ca, "m1", "Mentor One", "mentor", expert_pk=ex.pk, password=PW
    )
    out["m2"] = awards.add_staff(db, None, ca, "m2", "Mentor Two", "mentor", password=PW)
    out["m3"] = awards.add_staff(db, None, cb, "m3", "Mentor Three", "mentor", password=PW)
    out["ex1"] = ex
    awards.add_staff(db, None, ca, "co1", "Coordinator One", "coordinator", password=PW)
    awards.add_staff(db, None, cb, "co2", "Coordinator Two", "coordinator", password=PW)
    awards.add_staff(db, None, ca, "head1", "Head One", "centre_head", password=PW)
    op = create_user(db, "op", "Operator", [Grant(Role.OPERATOR)], password=PW)
    for u in db.scalars(select(User)):
        u.must_change_password = False
    out["op"] = op
    db.commit()
    return out


def active_participant(
    db: Session, mentor: Staff, region: str, login: str | None, level: str = "bronze"
) -> Participant:
    now = now_ms()
    u = (
        create_user(db, login, f"P {login}", [Grant(Role.BADGE_PARTICIPANT)], password=PW)
        if login
        else None
    )
    if u is not None:
        u.must_change_password = False
    p = Participant(
        user_pk=u.pk if u else None,
        full_name=f"Person {login or 'x'}",
        birth_date=dt.date(2005, 1, 1),
        region_id=region,
        level=level,
        directions="sport,talents,volunteering,reading,heritage,trip",
        centre_pk=mentor.centre_pk,
        mentor_pk=mentor.pk,
        status="active",
        start=dt.date(2025, 9, 1),
        created_at_ms=now,
    )
    db.add(p)
    db.commit()
    return p


def entry_json(key: str, **kw: Any) -> dict[str, Any]:
    return {
        "key": key,
        "direction": "sport",
        "date": "2026-11-30",
        "hours": "1.5",
        "written_at_ms": 1_764_000_000_000,
    } | kw


# ----------------------------------------------------------------------- the whole path


def test_application_agreement_schedule_activation_journal_and_review(
    db: Session, make_browser: Any
) -> None:
    w = centre_world(db)
    anon: Browser = make_browser()
    anon.get("/badges/apply")
    form = {
        "full_name": "Аружан Ахметова",
        "birth_date": "2010-03-01",
        "region_id": "R1",
        "residence": "Town a",
        "study_place": "School 1",
        "level": "bronze",
        "directions": ["sport", "talents", "volunteering", "reading", "heritage", "trip"],
        "heritage_mode": "weeks",
        "heritage_months": "3",
    }
    # a minor without a representative is refused, and nothing is stored
    r = anon.post("/badges/apply", form)
    assert r.status_code == 400 and 'data-field="representative_name"' in r.text
    assert db.scalar(select(func.count(Participant.pk))) == 0
    r = anon.post("/badges/apply", form | {"representative_name": "Гүлнар Ахметова"})
    assert r.status_code == 200 and 'id="applied"' in r.text
    p = db.scalars(select(Participant)).one()
    assert p.status == "applied" and p.centre_pk == w["centre_a"].pk
    # the proposed mentor is the least loaded present mentor of the centre of the place
    from server.badges.models import Application

    a = db.scalars(select(Application)).one()
    assert a.proposed_mentor_pk in (w["m1"].pk, w["m2"].pk)
    assert a.due_on == service.add_working_days(a.submitted_on, 14)
    db.rollback()
    a.proposed_mentor_pk = w["m1"].pk
    db.commit()

    head: Browser = make_browser()
    head.login("head1", PW)
    r = head.get("/badges/applications")
    assert f'id="application-{a.pk}"' in r.text
    r = head.post(
        f"/badges/applications/{a.pk}/decide",
        {"decision": "approve", "login": "aruzhan", "representative_login": "gulnar"},
    )
    assert r.status_code == 200, r.text
    links = re.findall(r"/invite/([A-Za-z0-9_\-]+)", r.text)
    assert len(links) == 2
    for token in links:  # one-time links: the password is chosen at first sign-in
        b: Browser = make_browser()
        b.get(f"/invite/{token}")
        assert b.post(f"/invite/{token}", {"password": PW, "password2": PW}).status_code == 303
    part: Browser = make_browser()
    part.login("aruzhan", PW)
    rep: Browser = make_browser()
    rep.login("gulnar", PW)
    mentor: Browser = make_browser()
    mentor.login("m1", PW)

    # the mentor cannot activate before the agreement and the schedule
    mentor.get(f"/badges/participants/{p.pk}")
    assert mentor.post(f"/badges/participants/{p.pk}/activate").status_code == 400
    part.get("/badges/me")
    assert (
        part.post("/badges/me/agreement", {"signer_name": "Аружан", "accept": "yes"}).status_code
        == 303
    )
    assert part.post("/badges/me/agreement", {"accept": "yes"}).status_code == 400  # once
    for d in ("sport", "talents"):
        r = mentor.post(
            f"/badges/participants/{p.pk}/schedule",
            {"direction": d, "plan": "Tuesdays 18:00", "hours_per_week": "1.5"},
        )
        assert r.status_code == 303, r.text
    assert mentor.post(f"/badges/participants/{p.pk}/activate").status_code == 400  # minor: rep
    rep.get("/badges/me")
    assert (
        rep.post("/badges/me/agreement", {"signer_name": "Гүлнар", "accept": "yes"}).status_code
        == 303
    )
    roles = {
        a.signer_role for a in db.scalars(select(Agreement).where(Agreement.participant_pk == p.pk))
    }
    assert roles == {"participant", "representative"}
    db.rollback()
    assert mentor.post(f"/badges/participants/{p.pk}/activate").status_code == 400  # not agreed
    r = part.get("/badges/me")
    for pk in re.findall(r'action="/badges/me/schedule/(\d+)"', r.text):
        assert part.post(f"/badges/me/schedule/{pk}").status_code == 303
    assert mentor.post(f"/badges/participants/{p.pk}/activate").status_code == 303
    db.rollback()
    assert db.get_one(Participant, p.pk).status == "active"

    # the journal: uploads keyed per entry; the same key again stores nothing new
    part.get("/badges/me/journal")
    headers = {"x-csrf-token": part.csrf}
    batch = [entry_json("key-aaaa-1"), entry_json("key-aaaa-2", direction="talents", hours="2")]
    r1 = part.client.post("/badges/api/entries", json={"entries": batch}, headers=headers)
    r2 = part.client.post("/badges/api/entries", json={"entries": batch}, headers=headers)
    assert r1.json()["stored"] == r2.json()["stored"] == ["key-aaaa-1", "key-aaaa-2"]
    bad = [entry_json("key-bbbb-1", hours="-1"), entry_json("key-bbbb-2", date="20261130")]
    r3 = part.client.post("/badges/api/entries", json={"entries": bad}, headers=headers)
    assert [x["field"] for x in r3.json()["refused"]] == ["hours", "date"]
    rows = list(db.scalars(select(Entry).where(Entry.participant_pk == p.pk).order_by(Entry.pk)))
    assert [e.idem_key for e in rows] == ["key-aaaa-1", "key-aaaa-2"]
    assert rows[0].written_at_ms == 1_764_000_000_000 and rows[0].hours == Decimal("1.50")
    # the representative reads, but only the participant writes
    rep.get("/badges/me/journal")
    r = rep.client.post(
        "/badges/api/entries",
        json={"entries": [entry_json("key-cccc-1")]},
        headers={"x-csrf-token": rep.csrf},
    )
    assert r.status_code == 403
    db.rollback()

    # the mentor: confirm, reject without a reason refused (nothing changes), reject, task
    e1, e2 = rows
    mentor.get(f"/badges/participants/{p.pk}")
    assert mentor.post(f"/badges/entries/{e1.pk}/decide", {"action": "confirm"}).status_code == 303
    r = mentor.post(f"/badges/entries/{e2.pk}/decide", {"action": "reject"})
    assert r.status_code == 400 and 'data-field="note"' in r.text
    db.rollback()
    assert db.get_one(Entry, e2.pk).status == "pending"
    assert (
        mentor.post(
            f"/badges/entries/{e2.pk}/decide", {"action": "reject", "note": "no video"}
        ).status_code
        == 303
    )
    db.rollback()
    assert db.get_one(Entry, e2.pk).reason == "no video"
    # another mentor sees nothing of this participant
    other: Browser = make_browser()
    other.login("m2", PW)
    assert other.get(f"/badges/participants/{p.pk}").status_code == 404
    assert (
        other.post(f"/badges/entries/{e1.pk}/decide", {"action": "reject", "note": "x"}).status_code
        == 404
    )
    # the expert over m1 reads everything, cannot decide as a mentor, overturns (audited)
    expert: Browser = make_browser()
    expert.login("ex1", PW)
    r = expert.get(f"/badges/participants/{p.pk}")
    assert r.status_code == 200 and "no video" in r.text
    assert expert.post(f"/badges/entries/{e2.pk}/decide", {"action": "confirm"}).status_code == 400
    r = expert.post(
        f"/badges/entries/{e2.pk}/overturn",
        {"status": "confirmed", "note": "the video was sent by mail"},
    )
    assert r.status_code == 303
    db.rollback()
    e2 = db.get_one(Entry, e2.pk)
    assert e2.status == "confirmed"
    trail = [
        (d.actor_kind, d.old_status, d.new_status)
        for d in db.scalars(
            select(Decision).where(Decision.entry_pk == e2.pk).order_by(Decision.pk)
        )
    ]
    assert trail == [("mentor", "pending", "rejected"), ("review", "rejected", "confirmed")]
    # the mentor is absent: the expert takes the participant over (audited)
    r = expert.post(
        f"/badges/participants/{p.pk}/reassign",
        {"to": str(w["ex1"].pk), "reason": "mentor on sick leave"},
    )
    assert r.status_code == 303
    db.rollback()
    assert db.get_one(Participant, p.pk).mentor_pk == w["ex1"].pk
    assert db.scalar(select(func.count(Reassignment.pk))) == 1
    assert mentor.get(f"/badges/participants/{p.pk}").status_code == 404
    assert (
        expert.post(
            f"/badges/entries/{e1.pk}/decide", {"action": "task", "note": "one more video"}
        ).status_code
        == 303
    )


def test_each_badge_role_reaches_only_its_participants(db: Session, make_browser: Any) -> None:
    w = centre_world(db)
    p1 = active_participant(db, w["m1"], "R1", "p1")
    p2 = active_participant(db, w["m2"], "R1", "p2")
    p3 = active_participant(db, w["m3"], "R2", "p3")
    reach = {
        "op": {p1.pk, p2.pk, p3.pk},
        "m1": {p1.pk},
        "m2": {p2.pk},
        "m3": {p3.pk},
        "ex1": {p1.pk},
        "co1": {p1.pk, p2.pk},
        "co2": {p3.pk},
        "head1": {p1.pk, p2.pk},
        "p1": set(),
    }
    for login, allowed in reach.items():
        b: Browser = make_browser()
        b.login(login, PW)
        for p in (p1, p2, p3):
            r = b.get(f"/badges/participants/{p.pk}")
            want = 200 if p.pk in allowed else (403 if login == "p1" else 404)
            assert r.status_code == want, (login, p.full_name, r.status_code)
        if login != "p1":
            r = b.get("/badges")
            shown = {p.pk for p in (p1, p2, p3) if f'/badges/participants/{p.pk}"' in r.text}
            assert shown == allowed, login
    # a participant sees their own page only; staff pages are refused
    b = make_browser()
    b.login("p1", PW)
    assert "Person p1" in b.get("/badges/me").text
    assert b.get("/badges").status_code == 403
    assert b.get("/badges/applications").status_code == 403


# ----------------------------------------------------------------------------- deadlines


def test_overdue_applications_and_lapsed_centres(db: Session) -> None:
    centre_world(db)
    form = service.parse_application(
        {
            "full_name": "A B",
            "birth_date": "2000-01-01",
            "region_id": "R1",
            "level": "gold",
            "directions": ["sport"],
            "plan_long": "sport",
            "heritage_mode": "weeks",
            "heritage_months": "9",
        },
        TODAY,
    )
    a = service.submit_application(db, form, dt.date(2026, 12, 1), now_ms())
    # 16 December (Independence Day) is no working day: 14 working days end on 22 December
    assert a.due_on == dt.date(2026, 12, 22)
    assert not service.is_overdue(a, dt.date(2026, 12, 22))
    assert service.is_overdue(a, dt.date(2026, 12, 23))
    with pytest.raises(service.BadgeError) as err:
        service.parse_application(
            {
                "full_name": "A",
                "birth_date": "2000-01-01",
                "level": "gold",
                "directions": ["sport"],
                "plan_long": "sport",
                "heritage_months": "3",
            },
            TODAY,
        )
    assert err.value.field == "heritage_months"
    op = who(db, "op")
    c = Centre(name="New", region_id="R1", created_at_ms=now_ms())
    db.add(c)
    db.flush()
    service.approve_centre(db, op, c, dt.date(2026, 12, 1))
    assert c.sign_due_on == service.add_working_days(dt.date(2026, 12, 1), 10)
    late = c.sign_due_on + dt.timedelta(days=1)
    assert service.centre_state(c, late) == "lapsed"
    with pytest.raises(service.BadgeError):
        service.sign_centre_agreement(db, op, c, "Head", late, now_ms())
    assert service.lapse_centres(db, late) == 1 and c.status == "lapsed"


# ------------------------------------------------------------------------------- ratings


def test_mentor_ratings_are_anonymous_once_each_and_shown_over_five(db: Session) -> None:
    w = centre_world(db)
    ps = [active_participant(db, w["m1"], "R1", f"r{i}") for i in range(5)]
    for i, p in enumerate(ps[:4]):
        service.rate_mentor(db, who(db, f"r{i}"), p, 4 + i % 2, TODAY)
    assert service.mentor_average(db, w["m1"].pk) is None  # four ratings could identify
    with pytest.raises(service.BadgeError):
        service.rate_mentor(db, who(db, "r0"), ps[0], 1, TODAY)
    service.rate_mentor(db, who(db, "r4"), ps[4], 5, TODAY)
    assert service.mentor_average(db, w["m1"].pk) == pytest.approx((4 + 5 + 4 + 5 + 5) / 5)
    from server.badges.models import MentorRating

    cols = set(MentorRating.__table__.columns.keys())
    assert "participant_pk" not in cols


# -------------------------------------------------------------------- awards, credential


def test_no_one_is_awarded_the_same_level_twice_by_the_database(db: Session) -> None:
    w = centre_world(db)
    p = active_participant(db, w["m1"], "R1", "aw")
    service.award_level(db, p.pk, "bronze", TODAY)
    db.commit()
    with pytest.raises(service.DuplicateAward):
        service.award_level(db, p.pk, "bronze", TODAY)
    # not only the service: a plain INSERT is refused by the unique constraint
    db.rollback()
    db.add(Award(participant_pk=p.pk, level="bronze", awarded_on=TODAY))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()
    service.award_level(db, p.pk, "silver", TODAY)  # another level is another award
    db.commit()
    assert db.scalar(select(func.count(Award.pk)).where(Award.participant_pk == p.pk)) == 2


def _complete_bronze(db: Session, p: Participant) -> None:
    now = now_ms()
    start = dt.date(2025, 9, 1)
    rows = []
    for d in ("sport", "talents", "volunteering", "heritage"):
        for i in range(13):
            rows.append(
                Entry(
                    participant_pk=p.pk,
                    idem_key=f"{d}-{i}",
                    direction=d,
                    entry_date=start + dt.timedelta(weeks=i),
                    written_at_ms=now,
                    received_at_ms=now,
                    hours=Decimal(1),
                    status="confirmed",
                )
            )
    for i, s in enumerate(("kazakh", "world", "world")):
        rows.append(
            Entry(
                participant_pk=p.pk,
                idem_key=f"book-{i}",
                direction="reading",
                entry_date=start + dt.timedelta(days=i),
                written_at_ms=now,
                received_at_ms=now,
                book_title=f"Book {i}",
                book_section=s,
                status="confirmed",
            )
        )
    rows.append(
        Entry(
            participant_pk=p.pk,
            idem_key="trip",
            direction="trip",
            entry_date=start,
            written_at_ms=now,
            received_at_ms=now,
            days=2,
            status="confirmed",
        )
    )
    db.add_all(rows)
    db.commit()


def test_proposal_commission_award_credential_and_revocation(
    db: Session, make_browser: Any
) -> None:
    w = centre_world(db)
    p = active_participant(db, w["m1"], "R1", "cand")
    head: Browser = make_browser()
    head.login("head1", PW)
    head.get(f"/badges/participants/{p.pk}")
    assert head.post(f"/badges/participants/{p.pk}/propose").status_code == 400  # incomplete
    _complete_bronze(db, p)
    assert service.evaluation(db, p, TODAY)["complete"] is True
    assert head.post(f"/badges/participants/{p.pk}/propose").status_code == 303
    from server.badges.models import Proposal

    pr = db.scalars(select(Proposal)).one()
    op: Browser = make_browser()
    op.login("op", PW)
    op.get("/badges/awards")
    r = op.post(
        f"/badges/proposals/{pr.pk}/commission",
        {
            "members": "op co1",
            "interview_at": "2026-12-10 10:00",
            "interview_link": "https://meet.example/x",
        },
    )
    assert r.status_code == 303
    assert op.post(f"/badges/proposals/{pr.pk}/decide").status_code == 400  # votes first
    assert op.post(f"/badges/proposals/{pr.pk}/vote", {"vote": "for"}).status_code == 303
    outsider: Browser = make_browser()
    outsider.login("m2", PW)
    outsider.get("/")
    assert outsider.post(f"/badges/proposals/{pr.pk}/vote", {"vote": "for"}).status_code == 404
    co: Browser = make_browser()
    co.login("co1", PW)
    co.get("/")
    assert co.post(f"/badges/proposals/{pr.pk}/vote", {"vote": "for"}).status_code == 303
    assert op.post(f"/badges/proposals/{pr.pk}/decide").status_code == 303
    db.rollback()
    cred = db.scalars(select(IssuedCredential)).one()
    # a second proposal of the same level is refused (already held)
    assert head.post(f"/badges/participants/{p.pk}/propose").status_code == 400

    # verified with a library other than the one that signed (jwcrypto; joserfc signed)
    key = jwk.JWK.from_pyca(awards.issuer_key().public_key())
    token = jws.JWS()
    token.deserialize(cred.document)
    token.verify(key, alg="EdDSA")
    vc = json.loads(token.payload)["vc"]
    assert vc["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert vc["id"] == cred.id
    assert vc["credentialSubject"]["achievement"]["id"].endswith("/badges/achievements/bronze")

    short = awards.short_id(cred.id)
    anon: Browser = make_browser()
    r = anon.get(f"/badges/verify/{short}")
    assert 'data-state="valid"' in r.text and "Person cand" in r.text
    assert anon.get(f"/badges/credentials/{short}/certificate.pdf").content.startswith(b"%PDF")
    assert anon.get(f"/badges/credentials/{short}/credential.json").text == cred.document
    # revocation: the public page and the revocation list say so
    op.get("/badges/awards")
    assert (
        op.post(f"/badges/credentials/{short}/revoke", {"reason": "duplicate person"}).status_code
        == 303
    )
    assert 'data-state="revoked"' in anon.get(f"/badges/verify/{short}").text
    listing = anon.client.get("/badges/status-list").json()
    assert [x["id"] for x in listing["revokedCredentials"]] == [cred.id]
    # a tampered token does not verify
    db.rollback()
    c = db.get_one(IssuedCredential, cred.id)
    c.document = c.document[:-4] + ("AAAA" if not c.document.endswith("AAAA") else "BBBB")
    c.revoked_at_ms = None
    db.commit()
    assert 'data-state="invalid"' in anon.get(f"/badges/verify/{short}").text


# ----------------------------------------------------------------------------- integrity

ESSAY = (
    "Абай жолы романы қазақ даласының өмірін кең суреттейді, ақынның жастық шағынан бастап "
    "оның ойшыл ретінде қалыптасуына дейінгі жолды көрсетеді, халықтың салт-дәстүрін, "
    "ру арасындағы тартысты және білімге құштарлықты терең бейнелейді"
)


def _png(seed: int) -> bytes:
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (128, 128), "white")
    d = ImageDraw.Draw(img)
    for i in range(8):
        d.rectangle(
            [i * 16, (seed * 37 + i * 11) % 100, i * 16 + 12, 127],
            fill=(i * 30, seed * 50 % 255, 90),
        )
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def test_copied_essays_and_reused_photos_are_flagged_not_rejected(db: Session) -> None:
    w = centre_world(db)
    a = active_participant(db, w["m1"], "R1", "ia")
    b = active_participant(db, w["m1"], "R1", "ib")
    now = now_ms()
    first, _ = service.add_entry(
        db,
        a,
        service.parse_entry(
            entry_json(
                "essay-a-1", direction="reading", book="Абай жолы", section="kazakh", text=ESSAY
            ),
            now,
        ),
        now,
    )
    assert first.integrity_note == ""
    copy, _ = service.add_entry(
        db,
        b,
        service.parse_entry(
            entry_json(
                "essay-b-1",
                direction="reading",
                book="Абай жолы",
                section="kazakh",
                text=ESSAY + " деп ойлаймын",
            ),
            now,
        ),
        now,
    )
    own, _ = service.add_entry(
        db,
        b,
        service.parse_entry(
            entry_json(
                "essay-b-2",
                direction="reading",
                book="Дон Кихот",
                section="world",
                text=" ".join(f"сөз{i}" for i in range(40)),
            ),
            now,
        ),
        now,
    )
    assert copy.integrity_note.startswith(f"similar to entry {first.pk}")
    assert copy.status == "pending" and own.integrity_note == ""
    photo = _png(1)
    service.add_media(db, who(db, "ia"), a, first, "image/png", photo)
    service.add_media(db, who(db, "ib"), b, own, "image/png", photo)
    assert own.integrity_note.startswith(f"photo like entry {first.pk}")
    with pytest.raises(service.BadgeError) as err:
        service.add_media(db, who(db, "ib"), b, own, "image/png", b"not a png")
    assert err.value.field == "file"
    with pytest.raises(service.BadgeError):  # not their own entry
        service.add_media(db, who(db, "ib"), b, first, "image/png", _png(2))


def test_the_public_application_needs_its_form_token(db: Session, make_browser: Any) -> None:
    """Another site's form cannot file applications in someone's name (double-submit cookie)."""
    centre_world(db)
    b: Browser = make_browser()
    form = {
        "full_name": "A B",
        "birth_date": "2000-01-01",
        "region_id": "R1",
        "level": "bronze",
        "directions": ["sport"],
    }
    r = b.client.post("/badges/apply", data=form, follow_redirects=False)
    assert r.status_code == 403
    assert db.scalar(select(func.count(Participant.pk))) == 0
    b.get("/badges/apply")
    assert b.post("/badges/apply", form).status_code == 200
    assert db.scalar(select(func.count(Participant.pk))) == 1


def test_absent_mentor_is_proposed_to_nobody_and_only_their_reviewers_mark_it(
    db: Session,
) -> None:
    w = centre_world(db)
    m1, m2 = w["m1"], w["m2"]
    with pytest.raises(service.BadgeError):  # an expert over another mentor
        service.set_absent(db, who(db, "ex1"), m2, True)
    with pytest.raises(service.BadgeError):  # another region's coordinator
        service.set_absent(db, who(db, "co2"), m1, True)
    service.set_absent(db, who(db, "ex1"), m1, True)
    service.set_absent(db, who(db, "co1"), m2, True)
    _centre, mentor = service.propose_by_place(db, "R1", "Town a")
    assert mentor is None
    service.set_absent(db, who(db, "co1"), m2, False)
    assert service.propose_by_place(db, "R1", "Town a")[1] == m2
