"""The demo's librarian at the library desk (issue 15): before the first lesson she signs in at
the library terminal's reader with her card and PIN on the staff page, the student taps their
card at the same reader, and she hands over the device of the approved list that the page
suggests, and a library book to the parent's child. Everything goes through the real edge path
(staff page over HTTP, the reader claim, ``edge.lending``, the journal, sync) like a person
would; the server applies the acts once and the console and the parent's page show them."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from edge.lending import LendingRefused, desk_student
from edge.roster import Roster, RosterStaff
from edge.staff.capture import ReaderInput
from edge.store import EdgeStore
from simulators.serial_sim import EmMarineSim

log = logging.getLogger(__name__)

DESK_TERMINAL = "library-1"
LIBRARIAN = RosterStaff(
    id="librarian-1",
    roles=["librarian"],
    cards=["EM:1000008888"],
    pin="8888",
    name="Кітапханашы / Библиотекарь",
)
BOOK = "B-0002"  # a library book of the demo school (server.equipment.demo), lent to the child


@dataclasses.dataclass
class DeskResult:
    lent: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (student, inv)
    failures: list[str] = dataclasses.field(default_factory=list)


def _card_number(credential: str) -> int:
    return int(credential.removeprefix("EM:"))


async def desk_plan(store: EdgeStore, roster: Roster, child: str) -> list[tuple[str, str, str]]:
    """(student, their card, inventory number) to hand over: a device of the approved list to
    the first student on it who holds none yet and has a working card (the one in stock that
    the desk suggests), and the library book to ``child`` (the demo parent's)."""
    cards = {
        b.owner_id: b.credential
        for b in roster.cards
        if b.owner_kind == "student" and b.blocked_reason is None
    }
    usable = {
        sid: cred
        for sid, cred in cards.items()
        if (card := store.state.card(cred)) is not None and card.blocked_reason is None
    }
    plan: list[tuple[str, str, str]] = []
    for s in roster.students:
        if s.id not in usable:
            continue
        try:
            shown = await desk_student(store, s.id)
        except LendingRefused:
            continue
        if shown.suggested:
            plan.append((s.id, usable[s.id], sorted(shown.suggested.values())[0]))
            break
    if child in usable and await store.desk_item(BOOK) is not None:
        plan.append((child, usable[child], BOOK))
    return plan


async def lend_at_the_desk(
    url: str,
    readers: dict[str, EmMarineSim],
    claims: ReaderInput,
    plan: list[tuple[str, str, str]],
) -> DeskResult:
    """The librarian's browser at the staff page; the cards held to the desk's reader."""
    import httpx

    done = DeskResult()

    async def tapped(post: asyncio.Task[httpx.Response], credential: str) -> httpx.Response:
        async with asyncio.timeout(20):
            while not claims.claimed(DESK_TERMINAL):  # noqa: ASYNC110 - set by the page's task
                await asyncio.sleep(0.02)
        readers[DESK_TERMINAL].present_card(_card_number(credential))
        return await post

    try:
        async with httpx.AsyncClient(base_url=url, timeout=40) as c:
            csrf = _csrf((await c.get("/")).text)
            login = {"csrf": csrf, "reader": DESK_TERMINAL, "pin": LIBRARIAN.pin}
            r = await tapped(asyncio.create_task(c.post("/login", data=login)), LIBRARIAN.cards[0])
            if r.status_code != 303:
                done.failures.append(f"sign-in {r.status_code}")
                return done
            csrf = _csrf((await c.get("/lending/")).text)
            for student, card, inv in plan:
                tap = {"csrf": csrf, "terminal": DESK_TERMINAL}
                r = await tapped(asyncio.create_task(c.post("/lending/tap", data=tap)), card)
                if f'data-student="{student}"' not in r.text:
                    done.failures.append("card not read")
                    continue
                form = {"csrf": csrf, "student": student, "act": "lend", "inventory_no": inv}
                r = await c.post("/lending/act", data=form)
                if 'id="result" class="ok"' in r.text:
                    done.lent.append((student, inv))
                else:
                    done.failures.append(f"lend {inv} refused")
            await c.post("/logout", data={"csrf": csrf})
    except (httpx.HTTPError, TimeoutError, ValueError) as err:
        done.failures.append(type(err).__name__)
    if done.failures:
        log.warning("demo: the library desk: %s", done.failures)
    return done


def _csrf(html: str) -> str:
    marker = 'name="csrf" value="'
    if marker not in html:
        raise ValueError("no CSRF token on the page")
    return html.split(marker, 1)[1].split('"', 1)[0]
