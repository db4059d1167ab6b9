"""The teacher's pass section: a class teacher lets their own student in (a lost card).

The signed-in member picks a child from their class list (a photo stand-in only with the
biometric/photo consent, as on the kiosk) and a turnstile; the pass goes through the same
pipeline as a card (decided by the core: role, class, data consent; recorded before the gate
opens, with who authorised it), the event reaches the server with the next sync and the parent
is notified from there. The child's lost card can be blocked from the same page: the block is
journaled first (so the server blocks it for every edge of the school), then applied here.

No ``from __future__ import annotations`` here: the routes' ``Annotated`` dependencies are local
to ``build`` and FastAPI must see them as objects, not strings."""

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from edge.core.decide import CLASS_TEACHER
from edge.core.model import Student, Tap
from edge.core.reasons import Lang, message
from edge.kiosk.hub import initials
from edge.staff.auth import StaffUser
from edge.staff.i18n import _t
from edge.staff.sections import Section, StaffContext
from edge.store import EdgeStore
from edge.store.journal import JournalEntry
from protocol.messages import CardBlock, CardsBlockedEvent, ConsentKind, Id, OwnerKind, TerminalKind

log = logging.getLogger(__name__)

LOST: Literal["lost"] = "lost"
PAGE_TERMINAL = "staff-page"  # the journal's terminal of a block given on this page

STRINGS = {
    "pass.title": _t("Оқушыны өткізу", "Пропустить ученика", "Let a student in"),
    "pass.intro": _t(
        "Картасын жоғалтқан оқушыңызды таңдап, турникетті ашыңыз",
        "Выберите своего ученика, потерявшего карту, и откройте турникет",
        "Pick your student who lost their card, and open the turnstile",
    ),
    "pass.turnstile": _t("Турникет", "Турникет", "Turnstile"),
    "pass.open": _t("Өткізу", "Пропустить", "Let in"),
    "pass.block": _t(
        "Жоғалған картаны бұғаттау", "Заблокировать потерянную карту", "Block the lost card"
    ),
    "pass.no_card": _t("Белсенді карта жоқ", "Нет активной карты", "No active card"),
    "pass.cards_blocked": _t("Карта бұғатталды:", "Заблокировано карт:", "Cards blocked:"),
    "pass.class": _t("Сынып", "Класс", "Class"),
    "pass.no_children": _t(
        "Сыныбыңызда оқушы жоқ (немесе сізге сынып бекітілмеген)",
        "В вашем классе нет учеников (или класс вам не назначен)",
        "No students in your class (or no class assigned to you)",
    ),
    "pass.opened": _t(
        "Турникет ашылды; ата-анаға хабарлама жіберіледі",
        "Турникет открыт; родителю придёт сообщение",
        "The turnstile opened; the parent is notified",
    ),
    "pass.refused": _t("Өткізілмеді:", "Не пропущен:", "Not let in:"),
    "pass.failed": _t(
        "Турникет жауап бермеді: қайталаңыз",
        "Турникет не ответил: повторите",
        "The turnstile did not answer: try again",
    ),
    "pass.back": _t("Тізімге оралу", "Назад к списку", "Back to the list"),
}


@dataclass(frozen=True, slots=True)
class Child:
    id: str
    name: str
    class_name: str
    photo: str | None  # initials, only with the biometric/photo consent
    active_cards: int


def may_pass_any_class(user: StaffUser, manual_pass_roles: frozenset[str]) -> bool:
    """A role other than class teacher among the policy's manual-pass roles: any class."""
    return any(r != CLASS_TEACHER for r in user.roles & manual_pass_roles)


def _children(ctx: StaffContext, classes: Sequence[str]) -> list[Child]:
    state = ctx.store.state
    active: dict[str, int] = {}
    for card in state.cards.values():
        if card.owner_kind is OwnerKind.STUDENT and card.blocked_reason is None:
            active[card.owner_id] = active.get(card.owner_id, 0) + 1
    out = []
    for st in state.students.values():
        if st.class_name not in classes:
            continue
        name = ctx.store.display_names.get(st.id, "")
        photo = initials(name) if ConsentKind.BIOMETRIC in st.consents and name else None
        out.append(Child(st.id, name or st.id, st.class_name, photo, active.get(st.id, 0)))
    return sorted(out, key=lambda c: (c.class_name, c.name))


def _turnstiles(ctx: StaffContext) -> list[str]:
    return [t.id for t in ctx.terminals if t.kind is TerminalKind.TURNSTILE and t.id in ctx.gates]


def _may_see(ctx: StaffContext, user: StaffUser, student: Student | None) -> bool:
    if student is None:
        return False
    roles = ctx.store.policy.manual_pass_roles if ctx.store.policy else frozenset({CLASS_TEACHER})
    return student.class_name in user.classes or may_pass_any_class(user, roles)


async def block_lost_cards(store: EdgeStore, student_id: str, by: str, at: dt.datetime) -> int:
    """Block the student's active cards: journal the block first (the server then blocks them
    for every edge of the school, even if this edge stops now), then block them here. Returns
    how many were blocked (0: none active, nothing journaled)."""
    active = [
        c.credential
        for c in store.state.cards.values()
        if c.owner_kind is OwnerKind.STUDENT and c.owner_id == student_id and not c.blocked_reason
    ]
    if not active:
        return 0
    event = CardsBlockedEvent(
        seq=1,
        at_ms=int(at.timestamp() * 1000),
        terminal=PAGE_TERMINAL,
        student_id=student_id,
        authorised_by=by,
        reason=LOST,
        cards=len(active),
    )
    async with store.write_lock:
        await store.journal([JournalEntry(event)])
    await store.apply_local([CardBlock(credential=c, reason=LOST) for c in active])
    log.info("staff page: %d card(s) of a student blocked as lost", len(active))
    return len(active)


def build(ctx: StaffContext) -> APIRouter:
    router = APIRouter()
    Viewer = Annotated[StaffUser, Depends(ctx.viewer(SECTION))]
    Writer = Annotated[StaffUser, Depends(ctx.writer(SECTION))]

    def page(
        request: Request, user: StaffUser, chosen_class: str | None, **extra: object
    ) -> Response:
        roles = ctx.store.policy.manual_pass_roles if ctx.store.policy else frozenset()
        all_classes = sorted({s.class_name for s in ctx.store.state.students.values()})
        any_class = may_pass_any_class(user, roles)
        if any_class:
            classes = [chosen_class] if chosen_class in all_classes else sorted(user.classes)
        else:
            classes = sorted(user.classes)
        return ctx.render(
            request,
            user,
            "pass/page.html",
            {
                "children": _children(ctx, classes),
                "turnstiles": _turnstiles(ctx),
                "class_choice": all_classes if any_class else [],
                "chosen_class": chosen_class or "",
                **extra,
            },
            section=SECTION,
        )

    @router.get("/", response_class=HTMLResponse)
    async def show(
        request: Request,
        user: Viewer,
        class_name: Annotated[str | None, Query(alias="class", max_length=16)] = None,
    ) -> Response:
        return page(request, user, class_name)

    @router.post("/open", response_class=HTMLResponse)
    async def open_gate(
        request: Request,
        user: Writer,
        student: Annotated[Id, Form()],
        terminal: Annotated[Id, Form()],
    ) -> Response:
        if not _may_see(ctx, user, ctx.store.state.student(student)):
            raise HTTPException(404, "no such student in your classes")
        opener = ctx.gates.get(terminal)
        term = next((t for t in ctx.terminals if t.id == terminal), None)
        if opener is None or term is None or term.kind is not TerminalKind.TURNSTILE:
            raise HTTPException(404, "no such turnstile")
        tap = Tap(
            at=ctx.clock(),
            terminal=terminal,
            kind=TerminalKind.TURNSTILE,
            direction=term.direction,
            manual_student=student,
            signed_in_staff=user.staff_id,
        )
        outcome = await opener.tap(tap)
        lang = ctx.lang(request)
        if outcome is None:
            result, ok = ctx.t("pass.failed", lang), False
        elif outcome.decision.granted:
            result, ok = ctx.t("pass.opened", lang), True
        else:
            refused = message(outcome.decision.reason, lang)
            result, ok = f"{ctx.t('pass.refused', lang)} {refused}", False
        return page(request, user, None, result=result, ok=ok)

    @router.post("/block", response_class=HTMLResponse)
    async def block(request: Request, user: Writer, student: Annotated[Id, Form()]) -> Response:
        if not _may_see(ctx, user, ctx.store.state.student(student)):
            raise HTTPException(404, "no such student in your classes")
        blocked = await block_lost_cards(ctx.store, student, user.staff_id, ctx.clock())
        lang: Lang = ctx.lang(request)
        return page(
            request,
            user,
            None,
            result=f"{ctx.t('pass.cards_blocked', lang)} {blocked}",
            ok=blocked > 0,
        )

    return router


SECTION = Section(
    name="pass",
    title_key="pass.title",
    route_prefix="/pass",
    # the edge roles the policy's manual_pass_roles may name; whom each may pass is decided by
    # the core (a class teacher: their own classes)
    roles=frozenset({CLASS_TEACHER, "deputy_director_on_duty"}),
    build=build,
    strings=STRINGS,
    templates=Path(__file__).parent / "templates",
)
