"""The badge demo seeds, and every page of it answers for the roles it serves."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.badges import demo
from server.badges.models import Award, IssuedCredential
from tests.support.console import Browser

pytestmark = pytest.mark.postgres

PW = "Demo-passw0rd-1"


def test_demo_seeds_and_pages_answer(db: Session, make_browser) -> None:  # type: ignore[no-untyped-def]
    demo.seed_demo(db, region="R9", password=PW)
    db.commit()
    assert db.scalar(select(func.count(Award.pk))) == 1
    cred = db.scalars(select(IssuedCredential)).one()
    for login, pages in {
        "badge-operator": ["/badges", "/badges/applications", "/badges/awards"],
        "mentor": ["/badges"],
        "expert": ["/badges"],
        "coordinator": ["/badges", "/badges/applications"],
        "centre": ["/badges", "/badges/applications"],
        "participant": ["/badges/me", "/badges/me/journal", "/badges/api/entries"],
        "representative": ["/badges/me"],
    }.items():
        b: Browser = make_browser()
        b.login(login, PW)
        for url in pages:
            r = b.get(url)
            assert r.status_code == 200, (login, url, r.text[:2000])
    anon: Browser = make_browser()
    short = cred.id.removeprefix("urn:uuid:")
    r = anon.get(f"/badges/verify/{short}")
    assert r.status_code == 200 and 'data-state="valid"' in r.text, r.text[:3000]
    assert anon.get(f"/badges/credentials/{short}/certificate.pdf").content.startswith(b"%PDF")
