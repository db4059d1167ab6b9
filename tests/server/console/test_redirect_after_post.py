"""Redirect after POST: a form that changes something answers 303 to the page to show, which
says once what was done. A refresh of that page (a GET of the Location) repeats nothing and
shows the message no more; a flash forged or carried to another session is not shown."""

from __future__ import annotations

import base64
import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.people.models import Consent
from tests.support.console import World


def consents(db: Session, pk: int) -> int:
    db.rollback()
    return int(db.scalar(select(func.count()).select_from(Consent).where(Consent.student_pk == pk)))


def test_a_refresh_does_not_repeat_the_change(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    admin.post("/lang", {"lang": "ru", "next": "/"})
    pk = world.students["s1-3a-2"]
    admin.get(f"/students/{pk}/consents")
    before = consents(db, pk)
    form = {
        "kind": "data",
        "decision": "given",
        "given_by": "Parent One (mother)",
        "document": "Application No. 17",
        "signed_on": "2026-02-20",
    }
    r = admin.post(f"/students/{pk}/consents", form)
    assert r.status_code == 303 and r.headers["location"] == f"/students/{pk}/consents"
    assert consents(db, pk) == before + 1
    shown = admin.get(r.headers["location"])
    assert shown.status_code == 200
    assert 'id="flash"' in shown.text and "Решение о согласии записано." in shown.text
    # The browser's refresh is a GET of the page it landed on: nothing recorded again, and the
    # message is not shown a second time (the cookie that carried it is cleared).
    again = admin.get(r.headers["location"])
    assert again.status_code == 200 and 'id="flash"' not in again.text
    assert consents(db, pk) == before + 1


def test_a_forged_or_foreign_flash_is_not_shown(make_browser, world: World) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    pk = world.students["s1-3a-2"]
    payload = json.dumps([["<b>Pay here</b>"], ""])
    value = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    admin.client.cookies.set("qaqpa_flash", f"{value}.{'0' * 32}")
    page = admin.get(f"/students/{pk}/consents").text
    assert 'id="flash"' not in page and "Pay here" not in page
    # a real flash of one session, replayed in another, is not shown either
    first = make_browser("admin1")
    first.get(f"/students/{pk}/consents")
    form = {"kind": "notifications", "decision": "given", "given_by": "P", "document": "D"}
    r = first.post(f"/students/{pk}/consents", form | {"signed_on": "2026-02-20"})
    assert r.status_code == 303
    carried = first.client.cookies.get("qaqpa_flash")
    assert carried
    other = make_browser("admin1")  # the same person, another session
    other.client.cookies.set("qaqpa_flash", carried)
    assert 'id="flash"' not in other.get(f"/students/{pk}/consents").text
