"""Social categories: the social pedagogue records memberships with document and dates; bad
dates and unknown codes are refused; the edges get categories_set; the school's list shows the
students with a category valid on a day."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.consents.categories import CategoryError, parse_category_form
from server.consents.models import StudentCategory
from server.sync.changelog import load_state
from tests.support.consents import changes, give
from tests.support.console import World


def test_parse_category_form() -> None:
    ok = parse_category_form("large_family", " Certificate  77 ", "2025-09-01", "2026-05-31")
    assert ok.document == "Certificate 77" and ok.valid_to == dt.date(2026, 5, 31)
    for args, field in [
        (("rich", "D", "2025-09-01", "2026-05-31"), "code"),
        (("orphan", "", "2025-09-01", "2026-05-31"), "document"),
        (("orphan", "D", "2025-13-01", "2026-05-31"), "valid_from"),
        (("orphan", "D", "2025-09-01", "31.05.2026"), "valid_to"),
        (("orphan", "D", "2026-09-01", "2026-05-31"), "valid_to"),  # ends before it starts
    ]:
        with pytest.raises(CategoryError) as err:
            parse_category_form(*args)
        assert err.value.field == field, args


def test_social_pedagogue_records_categories(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    pk = world.students["s1-7b-1"]
    admin = make_browser("admin1")
    social = make_browser("social1")
    today = dt.date.today()
    form = {
        "code": "large_family",
        "document": "Certificate 77",
        "valid_from": (today - dt.timedelta(days=30)).isoformat(),
        "valid_to": (today + dt.timedelta(days=200)).isoformat(),
    }
    social.get(f"/students/{pk}/categories")
    # Without the data consent the category is refused.
    r = social.post(f"/students/{pk}/categories", form)
    assert r.status_code == 400
    give(admin, pk)
    r = social.post(f"/students/{pk}/categories", form | {"valid_to": "2000-01-01"})
    assert r.status_code == 400 and 'data-field="valid_to"' in r.text
    assert social.post(f"/students/{pk}/categories", form).status_code == 303
    future = form | {
        "code": "board_decision",
        "document": "Board minutes 4",
        "valid_from": (today + dt.timedelta(days=10)).isoformat(),
    }
    assert social.post(f"/students/{pk}/categories", future).status_code == 303
    last = changes(db, "S1")[-1]
    assert last["op"] == "categories_set" and last["student_id"] == "s1-7b-1"
    assert [c["code"] for c in last["categories"]] == ["board_decision", "large_family"]
    assert [c.code for c in load_state(db, "S1").students["s1-7b-1"].categories] == [
        "board_decision",
        "large_family",
    ]
    # The list of the school shows who has a category valid today (not the future one).
    page = social.get("/categories?school=S1").text
    assert "Certificate 77" in page and "Board minutes 4" not in page
    counts = page.split('id="counts"')[1].split("</table>")[0]
    assert counts.count('<td class="num">1</td>') == 1  # one large family, nothing else today
    # Removing publishes the rest.
    row = db.execute(
        select(StudentCategory).where(StudentCategory.code == "large_family")
    ).scalar_one()
    assert social.post(f"/students/{pk}/categories/{row.pk}/remove").status_code == 303
    assert [c["code"] for c in changes(db, "S1")[-1]["categories"]] == ["board_decision"]


def test_categories_scope(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    pk = world.students["s1-7b-1"]
    form = {
        "code": "orphan",
        "document": "D1",
        "valid_from": "2026-01-01",
        "valid_to": "2026-12-31",
    }
    admin = make_browser("admin1")  # may view, may not edit
    admin.get(f"/students/{pk}/categories")
    assert admin.post(f"/students/{pk}/categories", form).status_code == 403
    teacher = make_browser("teacher1")
    assert teacher.get(f"/students/{pk}/categories").status_code == 403
    assert teacher.get("/categories").status_code == 403
    canteen = make_browser("canteen1")
    assert canteen.get(f"/students/{world.students['s3-3a-1']}/categories").status_code == 404
    assert canteen.get("/categories?school=S3").status_code == 404
    assert db.execute(select(StudentCategory)).first() is None
