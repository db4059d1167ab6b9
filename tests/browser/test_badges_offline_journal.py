"""The participant's offline journal in headless Chromium: the page opens with the server cut
off (service worker), entries written offline keep the time they were written, and when the
network returns each is uploaded automatically, exactly once (the server's unique key per
entry), even when the page sends them again.

The network is cut by a TCP proxy between browser and server (``tests.support.tcp_proxy``),
because Chromium's offline switch does not stop a service worker's requests. The page load
and the upload after reconnection are measured and printed (no timing in an assertion).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.accounts.models import User
from server.badges import demo
from server.badges.models import Entry, Participant
from tests.browser.live import chromium, needs_chromium, serve
from tests.support.tcp_proxy import tcp_proxy
from tests.support.wait import wait_until

pytestmark = [needs_chromium, pytest.mark.postgres]

PW = "Demo-passw0rd-1"


def _rows(db: Session, participant_pk: int) -> list[Entry]:
    db.rollback()
    rows = list(db.scalars(select(Entry).where(Entry.participant_pk == participant_pk)))
    db.rollback()
    return rows


def _wait(page: Any, expression: str, timeout: float) -> None:
    """Poll an expression in the page (the CSP forbids Playwright's own predicate functions)."""
    wait_until(lambda: page.evaluate(expression), timeout, expression)


def _write(page: Any, direction: str, hours: str, text: str) -> None:
    page.select_option("#direction", direction)
    page.fill("#hours", hours)
    page.fill("#text", text)
    page.click("#save")


def test_offline_entries_upload_once_when_the_network_returns(app: Any, db: Session) -> None:
    demo.seed_demo(db, region="R9", password=PW)
    db.commit()
    user = db.scalars(select(User).where(User.login == "participant2")).one()
    p = db.scalars(select(Participant).where(Participant.user_pk == user.pk)).one()
    before = {e.idem_key for e in _rows(db, p.pk)}
    with serve(app) as url, tcp_proxy(url) as proxy, chromium() as browser:
        page = browser.new_page()
        uploads: list[str] = []
        page.on(
            "request",
            lambda r: (
                uploads.append(r.url)
                if r.method == "POST" and r.url.endswith("/badges/api/entries")
                else None
            ),
        )
        base = proxy.url
        page.goto(f"{base}/login?next=/badges/me/journal")
        page.fill("input[name=login]", "participant2")
        page.fill("input[name=password]", PW)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/badges/me/journal")
        _wait(page, "navigator.serviceWorker.controller !== null", 20)
        # online load, measured by the browser (navigation start to load event)
        page.reload()
        online_ms = page.evaluate("performance.getEntriesByType('navigation')[0].duration")

        # the network goes away: the page still opens (from the service worker)
        proxy.cut()
        t0 = time.perf_counter()
        page.reload()
        page.wait_for_selector("#entry-form")
        offline_ms = (time.perf_counter() - t0) * 1000
        _wait(page, "document.getElementById('net').className === 'warn'", 10)

        written_before = int(time.time() * 1000)
        # one entry after another, as a person writes them: the form is cleared once an entry is
        # kept (in IndexedDB), so the next is typed only then
        for n, (direction, hours, text) in enumerate(
            [
                ("sport", "1.5", "offline sport one"),
                ("talents", "2", "offline talents"),
                ("volunteering", "1", "offline volunteering"),
            ],
            start=1,
        ):
            _write(page, direction, hours, text)
            _wait(page, f"document.body.dataset.pending === '{n}'", 10)
        written_after = int(time.time() * 1000)
        page.wait_for_timeout(3000)  # the page keeps trying (every 2 s); nothing can arrive
        assert {e.idem_key for e in _rows(db, p.pk)} == before
        assert page.locator("#entries tr").count() >= 3

        # the network returns: uploaded automatically, each once
        proxy.restore()
        t1 = time.perf_counter()
        wait_until(lambda: len(_rows(db, p.pk)) >= len(before) + 3, 30, "the entries arrive")
        upload_ms = (time.perf_counter() - t1) * 1000
        _wait(page, "document.body.dataset.pending === '0'", 20)

        # the page sends everything again (an answer lost on the way): still once each
        sent_before = len(uploads)
        page.evaluate(
            """() => new Promise((resolve, reject) => {
                const r = indexedDB.open('qaqpa-badges', 1);
                r.onsuccess = () => {
                    const t = r.result.transaction('outbox', 'readwrite');
                    const s = t.objectStore('outbox');
                    s.getAll().onsuccess = (ev) => { for (const e of ev.target.result) s.put({...e, sent: 0}); };
                    t.oncomplete = resolve; t.onerror = reject;
                };
            })"""
        )
        # (Playwright delivers the page's events only while it is called: poll through it)
        wait_until(
            lambda: page.evaluate("1") and len(uploads) > sent_before,
            10,
            "the page sends the entries again",
        )
        _wait(page, "document.body.dataset.pending === '0'", 20)
        page.wait_for_timeout(2500)
        print(
            f"\njournal page load: online {online_ms:.0f} ms, offline (service worker) "
            f"{offline_ms:.0f} ms; upload after reconnection: {upload_ms:.0f} ms "
            f"(retry interval 2000 ms); connections refused while cut: {proxy.refused}"
        )
    rows = [e for e in _rows(db, p.pk) if e.idem_key not in before]
    assert len(rows) == 3
    assert sorted(e.direction for e in rows) == ["sport", "talents", "volunteering"]
    assert len({e.idem_key for e in rows}) == 3
    for e in rows:
        # the time it was written (offline), not the time it arrived
        assert written_before <= e.written_at_ms <= written_after < e.received_at_ms
        assert e.status == "pending"
    assert (
        db.scalar(select(func.count(Entry.pk)).where(Entry.participant_pk == p.pk))
        == len(before) + 3
    )
