"""The cards section of the staff page: cards are issued at the school (DESIGN invariant 5).

A member with the admin (or duty deputy) role picks a student or a staff member, presses
"bind" and taps the new card at the desk reader within ``CARD_WAIT_S``; ``edge.cards`` binds it in
this school's store (a keyed hash of the number) and journals ``card_issued`` (the record, never
the number), which reaches the centre with the next sync. The same list blocks (lost, damaged),
replaces (the new card is tapped, the old one blocked in the same transaction) and unbinds each
card by its record. The page never shows, stores or logs a card number.

No ``from __future__ import annotations`` here: the routes' ``Annotated`` dependencies are local
to ``build`` and FastAPI must see them as objects, not strings."""

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from edge.cards import CardRefused, block_card, issue_card, unbind_card
from edge.staff.auth import StaffUser
from edge.staff.capture import ReaderBusy
from edge.staff.i18n import _t
from edge.staff.sections import Section, StaffContext
from protocol.messages import ConsentKind, Id, OwnerKind

log = logging.getLogger(__name__)

CARD_WAIT_S = 30.0
DESK = "staff-desk"  # the journal's terminal of a card change made on this page

STRINGS = {
    "cards.title": _t("Карталар", "Карты", "Cards"),
    "cards.intro": _t(
        "Жаңа картаны осында байлаңыз: адамды таңдап, «Байлау» батырмасын басыңыз да, картаны "
        "үстелдегі оқу құрылғысына 30 секунд ішінде тигізіңіз. Карта нөмірі мектептен шықпайды.",
        "Привяжите новую карту здесь: выберите человека, нажмите «Привязать» и приложите карту к "
        "считывателю на столе в течение 30 секунд. Номер карты не покидает школу.",
        "Bind a new card here: pick the person, press Bind and tap the card at the desk reader "
        "within 30 seconds. The card number never leaves the school.",
    ),
    "cards.class": _t("Сынып", "Класс", "Class"),
    "cards.staff": _t("Қызметкерлер", "Сотрудники", "Staff"),
    "cards.reader": _t("Оқу құрылғысы", "Считыватель", "Reader"),
    "cards.bind": _t("Байлау", "Привязать", "Bind"),
    "cards.replace": _t("Ауыстыру", "Заменить", "Replace"),
    "cards.block": _t("Бұғаттау", "Заблокировать", "Block"),
    "cards.unbind": _t("Ажырату", "Отвязать", "Unbind"),
    "cards.lost": _t("жоғалды", "потеряна", "lost"),
    "cards.damaged": _t("бүлінді", "повреждена", "damaged"),
    "cards.active": _t("белсенді", "активна", "active"),
    "cards.blocked": _t("бұғатталған", "заблокирована", "blocked"),
    "cards.none": _t("Карта жоқ", "Нет карты", "No card"),
    "cards.no_consent": _t(
        "Деректерге келісім жоқ: карта берілмейді",
        "Нет согласия на данные: карту выдать нельзя",
        "No data consent: no card can be issued",
    ),
    "cards.bound": _t("Карта байланды:", "Карта привязана:", "Card bound:"),
    "cards.done": _t("Дайын", "Готово", "Done"),
    "cards.no_card": _t(
        "Карта оқылмады: қайталаңыз", "Карта не считана: повторите", "No card was read: try again"
    ),
    "cards.busy": _t(
        "Оқу құрылғысы бос емес: сәлден соң қайталаңыз",
        "Считыватель занят: повторите чуть позже",
        "The reader is busy: try again in a moment",
    ),
    "cards.refused": _t("Болмады:", "Не выполнено:", "Not done:"),
}


@dataclass(frozen=True, slots=True)
class Holder:
    kind: str  # student / staff
    id: str
    name: str
    group: str  # the class, or "staff"
    consented: bool
    cards: list[tuple[str | None, str | None]]  # (record, blocked reason)


def _readers(ctx: StaffContext) -> list[str]:
    return [t.id for t in ctx.terminals if t.reader is not None]


async def _holders(ctx: StaffContext, group: str) -> list[Holder]:
    state = ctx.store.state
    out: list[Holder] = []
    if group == "staff":
        for m in state.staff_by_id.values():
            cards = await ctx.store.cards_of("staff", m.id)
            out.append(Holder("staff", m.id, m.id, "staff", True, cards))
    else:
        for st in state.students.values():
            if st.class_name != group:
                continue
            name = ctx.store.display_names.get(st.id, "") or st.id
            cards = await ctx.store.cards_of("student", st.id)
            consented = ConsentKind.DATA in st.consents
            out.append(Holder("student", st.id, name, st.class_name, consented, cards))
    return sorted(out, key=lambda h: h.name)


def build(ctx: StaffContext) -> APIRouter:
    router = APIRouter()
    Viewer = Annotated[StaffUser, Depends(ctx.viewer(SECTION))]
    Writer = Annotated[StaffUser, Depends(ctx.writer(SECTION))]

    async def page(
        request: Request, user: StaffUser, group: str | None, **extra: object
    ) -> Response:
        classes = sorted({s.class_name for s in ctx.store.state.students.values()})
        chosen = group if group in [*classes, "staff"] else (classes[0] if classes else "staff")
        return ctx.render(
            request,
            user,
            "cards/page.html",
            {
                "groups": classes,
                "chosen": chosen,
                "holders": await _holders(ctx, chosen),
                "readers": _readers(ctx),
                **extra,
            },
            section=SECTION,
        )

    def owner(kind: str, owner_id: str) -> OwnerKind:
        if kind == "student" and ctx.store.state.student(owner_id) is not None:
            return OwnerKind.STUDENT
        if kind == "staff" and ctx.store.state.staff(owner_id) is not None:
            return OwnerKind.STAFF
        raise HTTPException(404, "no such person at this school")

    async def tapped(request: Request, terminal: str) -> tuple[str | None, str | None]:
        """(the number read at the desk reader, or None and why) - kept in this call only."""
        lang = ctx.lang(request)
        if terminal not in _readers(ctx):
            raise HTTPException(404, "no such reader")
        try:
            async with ctx.readers.claim(terminal) as claim:
                try:
                    async with asyncio.timeout(CARD_WAIT_S):
                        return await claim.card(), None
                except TimeoutError:
                    return None, ctx.t("cards.no_card", lang)
        except ReaderBusy:
            return None, ctx.t("cards.busy", lang)

    @router.get("/", response_class=HTMLResponse)
    async def show(
        request: Request,
        user: Viewer,
        group: Annotated[str | None, Query(max_length=16)] = None,
    ) -> Response:
        return await page(request, user, group)

    @router.post("/bind", response_class=HTMLResponse)
    async def bind(
        request: Request,
        user: Writer,
        kind: Annotated[str, Form(max_length=8)],
        person: Annotated[Id, Form()],
        terminal: Annotated[Id, Form()],
        group: Annotated[str, Form(max_length=16)] = "",
        replaces: Annotated[Id | None, Form()] = None,
        reason: Annotated[str, Form(max_length=8)] = "lost",
    ) -> Response:
        who = owner(kind, person)
        lang = ctx.lang(request)
        number, why = await tapped(request, terminal)
        if number is None:
            return await page(request, user, group, result=why, ok=False)
        try:
            card = await issue_card(
                ctx.store, who, person, number, replaces_ref=replaces, reason=reason, desk=DESK
            )
        except CardRefused as err:
            return await page(
                request, user, group, result=f"{ctx.t('cards.refused', lang)} {err}", ok=False
            )
        finally:
            del number
        log.info("staff page: a card bound by staff %s (record %s)", user.staff_id, card.card_ref)
        result = f"{ctx.t('cards.bound', lang)} {card.card_ref}"
        return await page(request, user, group, result=result, ok=True)

    @router.post("/block", response_class=HTMLResponse)
    async def block(
        request: Request,
        user: Writer,
        card: Annotated[Id, Form()],
        reason: Annotated[str, Form(max_length=8)] = "lost",
        group: Annotated[str, Form(max_length=16)] = "",
    ) -> Response:
        return await change(request, user, group, block_card(ctx.store, card, reason, desk=DESK))

    @router.post("/unbind", response_class=HTMLResponse)
    async def unbind(
        request: Request,
        user: Writer,
        card: Annotated[Id, Form()],
        group: Annotated[str, Form(max_length=16)] = "",
    ) -> Response:
        return await change(request, user, group, unbind_card(ctx.store, card, desk=DESK))

    async def change(
        request: Request, user: StaffUser, group: str, done: Awaitable[None]
    ) -> Response:
        lang = ctx.lang(request)
        try:
            await done
        except CardRefused as err:
            return await page(
                request, user, group, result=f"{ctx.t('cards.refused', lang)} {err}", ok=False
            )
        return await page(request, user, group, result=ctx.t("cards.done", lang), ok=True)

    return router


SECTION = Section(
    name="cards",
    title_key="cards.title",
    route_prefix="/cards",
    roles=frozenset({"admin", "duty_deputy"}),
    build=build,
    strings=STRINGS,
    templates=Path(__file__).parent / "templates",
)
