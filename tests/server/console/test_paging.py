"""Lists that grow are shown a page at a time with the student list's pager: the audit log
(newest first) and a school's equipment inventory (sortable by number, kind, title, status).
Before, the audit log stopped at its newest 200 entries and the inventory at 2,000 items, with
no way to the rest."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from server.audit.service import audit
from server.equipment import service as svc
from tests.support.console import World


def rows_of(html: str, table: str = "<main>") -> list[str]:
    body = html.split(table, 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def test_the_audit_log_pages_through_every_entry(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    for n in range(250):
        audit(db, None, "view", "students", school_id="S1", summary=f"entry-{n:03d}")
    db.commit()
    admin = make_browser("admin1")
    first = admin.get("/audit").text
    assert len(rows_of(first)) == 100
    assert "entry-249" in first and "entry-149" not in first  # newest first
    pager = re.search(r": (\d+) · [^:]+: 1 / (\d+)<", first.split('class="pager"', 1)[1])
    assert pager is not None, first.split('class="pager"', 1)[1][:300]
    total, last_page = int(pager.group(1)), int(pager.group(2))
    assert total >= 250 and last_page == -(-total // 100)
    assert 'href="/audit?page=2" rel="next"' in first
    last = admin.get(f"/audit?page={last_page}").text
    assert "entry-000" in last and 'rel="next"' not in last and 'rel="prev"' in last
    # every entry is on exactly one page
    seen = []
    for p in range(1, last_page + 1):
        seen += re.findall(r"entry-\d{3}", admin.get(f"/audit?page={p}").text)
    assert sorted(seen) == [f"entry-{n:03d}" for n in range(250)]
    assert admin.get("/audit?page=0").status_code == 422


def test_the_inventory_pages_and_sorts(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    for n in range(130):
        svc.add_item(
            db, None, "S1", kind="book", inventory_no=f"B-{n:04d}", title=f"T{129 - n:03d}", now=1
        )
    db.commit()
    op = make_browser("operator")
    page = op.get("/equipment/school/S1/inventory").text
    assert len(rows_of(page, '<table id="items">')) == 100
    assert "Page" in page or "Бет" in page
    two = op.get("/equipment/school/S1/inventory?sort=number&page=2").text
    numbers = re.findall(r"<code>(B-\d{4})</code>", two.split('id="items"', 1)[1])
    assert numbers == [f"B-{n:04d}" for n in range(100, 130)]
    by_title = op.get("/equipment/school/S1/inventory?sort=title").text
    first = re.findall(r"<code>(B-\d{4})</code>", by_title.split('id="items"', 1)[1])[0]
    assert first == "B-0129"  # title T000
    assert 'aria-sort="ascending"><a href="/equipment/school/S1/inventory?sort=title"' in by_title
