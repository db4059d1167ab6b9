"""The library desk section of the staff page: devices, textbooks and books lent by card tap.

The librarian (or the school's admin) presses "Read card" and the student taps their card at
the desk reader within ``CARD_WAIT_S``; the page shows who the student is, which device of an
approved list is theirs to receive (and one in stock to give), and what they hold. An item is
handed over by its inventory number (typed, or scanned by a barcode scanner into the field),
given back, or reported lost or damaged; each act is checked against what the school holds
offline and journaled (``edge.lending``) before the page shows it done. The card number stays
in this call: the page names the student by the roster, never by the card.

No ``from __future__ import annotations`` here: the routes' ``Annotated`` dependencies are local
to ``build`` and FastAPI must see them as objects, not strings."""

import asyncio
import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from edge.lending import ACTS, LendingRefused, desk_student, record_act, student_of_card
from edge.staff.auth import StaffUser
from edge.staff.capture import ReaderBusy
from edge.staff.i18n import _t
from edge.staff.sections import Section, StaffContext
from protocol.messages import Id, OwnerKind

log = logging.getLogger(__name__)

CARD_WAIT_S = 30.0

STRINGS = {
    "lending.title": _t("Кітапхана үстелі", "Библиотечная стойка", "Library desk"),
    "lending.intro": _t(
        "«Картаны оқу» батырмасын басыңыз да, оқушы картасын үстелдегі оқу құрылғысына 30 секунд "
        "ішінде тигізсін. Беру мен қайтару мектепте желісіз жазылады да, серверге жіберіледі.",
        "Нажмите «Считать карту», и пусть ученик приложит карту к считывателю на столе в "
        "течение 30 секунд. Выдача и возврат записываются в школе без сети и уходят на сервер.",
        "Press Read card and let the student tap their card at the desk reader within 30 "
        "seconds. Hand-overs and returns are recorded at the school offline and synced.",
    ),
    "lending.reader": _t("Оқу құрылғысы", "Считыватель", "Reader"),
    "lending.read_card": _t("Картаны оқу", "Считать карту", "Read card"),
    "lending.student": _t("Оқушы", "Ученик", "Student"),
    "lending.class": _t("Сынып", "Класс", "Class"),
    "lending.approved": _t(
        "Бекітілген тізім бойынша құрылғы",
        "Устройство по утверждённому списку",
        "Device by the approved list",
    ),
    "lending.place": _t("орны", "место", "place"),
    "lending.not_on_list": _t(
        "Бекітілген тізімдерде жоқ", "Нет в утверждённых списках", "Not on an approved list"
    ),
    "lending.in_stock": _t("Берілетін құрылғы:", "Выдать устройство:", "Device to hand over:"),
    "lending.none_in_stock": _t(
        "Қоймада құрылғы жоқ", "Нет устройства на складе", "No device in stock"
    ),
    "lending.holds": _t("Қолындағы заттар", "На руках", "Holds"),
    "lending.holds_nothing": _t("Ештеңе жоқ", "Ничего", "Nothing"),
    "lending.inventory_no": _t(
        "Инвентарлық нөмір (теріңіз не сканерлеңіз)",
        "Инвентарный номер (введите или отсканируйте)",
        "Inventory number (type or scan)",
    ),
    "lending.lend": _t("Беру", "Выдать", "Hand over"),
    "lending.return": _t("Қайтару", "Вернуть", "Return"),
    "lending.lost": _t("Жоғалды", "Утеряно", "Lost"),
    "lending.damaged": _t("Бүлінді", "Повреждено", "Damaged"),
    "lending.kind.device": _t("Құрылғы", "Устройство", "Device"),
    "lending.kind.textbook": _t("Оқулық", "Учебник", "Textbook"),
    "lending.kind.book": _t("Кітап", "Книга", "Book"),
    "lending.done.lend": _t("Берілді:", "Выдано:", "Handed over:"),
    "lending.done.return": _t("Қайтарылды:", "Возвращено:", "Returned:"),
    "lending.done.lost": _t("Жоғалды деп жазылды:", "Записано как утерянное:", "Recorded lost:"),
    "lending.done.damaged": _t(
        "Бүлінді деп жазылды:", "Записано как повреждённое:", "Recorded damaged:"
    ),
    "lending.refused": _t("Болмады:", "Не выполнено:", "Not done:"),
    "lending.no_card": _t(
        "Карта оқылмады: қайталаңыз", "Карта не считана: повторите", "No card was read: try again"
    ),
    "lending.busy": _t(
        "Оқу құрылғысы бос емес: сәлден соң қайталаңыз",
        "Считыватель занят: повторите чуть позже",
        "The reader is busy: try again in a moment",
    ),
    "lending.unknown_card": _t(
        "Бұл карта мектептің ешбір оқушысына байланбаған",
        "Эта карта не привязана ни к одному ученику школы",
        "This card is not bound to a student of the school",
    ),
    "lending.blocked_card": _t(
        "Бұл карта бұғатталған", "Эта карта заблокирована", "This card is blocked"
    ),
    "lending.unknown_student": _t(
        "Мұндай оқушы мектепте жоқ", "Такого ученика нет в школе", "No such student at the school"
    ),
    "lending.bad_inventory_no": _t(
        "Инвентарлық нөмір 1-64 таңбадан тұрады",
        "Инвентарный номер: от 1 до 64 символов",
        "An inventory number has 1 to 64 characters",
    ),
    "lending.bad_act": _t("Белгісіз әрекет", "Неизвестное действие", "Unknown act"),
    "lending.unknown_item": _t(
        "Мектеп балансында мұндай инвентарлық нөмір жоқ",
        "Такого инвентарного номера нет на балансе школы",
        "No item with this inventory number on the school's balance",
    ),
    "lending.not_approved": _t(
        "Бұл құрылғы осы оқушыға бекітілмеген: оқушы оның науқанының бекітілген тізімінде жоқ",
        "Это устройство не утверждено для этого ученика: ученика нет в утверждённом списке "
        "его кампании",
        "This device is not approved for this student: the student is not on the approved "
        "list of its campaign",
    ),
    "lending.has_device": _t(
        "Оқушының осы науқанның құрылғысы бар",
        "У ученика уже есть устройство этой кампании",
        "The student already holds a device of this campaign",
    ),
    "lending.already_holds": _t(
        "Бұл зат осы оқушының қолында",
        "Этот предмет уже у этого ученика",
        "The student already holds this item",
    ),
    "lending.held_by_other": _t(
        "Бұл зат басқа оқушыға берілген: алдымен қайтарылсын",
        "Этот предмет выдан другому ученику: сначала его нужно вернуть",
        "This item is lent to another student: it must be returned first",
    ),
    "lending.away": _t(
        "Бұл зат жоғалған не бүлінген деп жазылған",
        "Этот предмет записан как утерянный или повреждённый",
        "This item is recorded lost or damaged",
    ),
    "lending.not_lent": _t(
        "Бұл зат осы оқушыға берілмеген: қайтаратын ештеңе жоқ",
        "Этот предмет не выдавался этому ученику: возвращать нечего",
        "This item is not lent to this student: nothing to return",
    ),
}


def _readers(ctx: StaffContext) -> list[str]:
    return [t.id for t in ctx.terminals if t.reader is not None]


def build(ctx: StaffContext) -> APIRouter:
    router = APIRouter()
    Viewer = Annotated[StaffUser, Depends(ctx.viewer(SECTION))]
    Writer = Annotated[StaffUser, Depends(ctx.writer(SECTION))]

    async def page(
        request: Request, user: StaffUser, student: str | None, **extra: object
    ) -> Response:
        shown = None
        if student is not None:
            try:
                shown = await desk_student(ctx.store, student)
            except LendingRefused:
                shown = None
        return ctx.render(
            request,
            user,
            "lending/page.html",
            {"readers": _readers(ctx), "student": shown, "acts": ACTS, **extra},
            section=SECTION,
        )

    def refused(request: Request, err: LendingRefused) -> str:
        lang = ctx.lang(request)
        text = f"{ctx.t('lending.refused', lang)} {ctx.t(err.code, lang)}"
        return f"{text}: {err.detail}" if err.detail else text

    def is_student_card(credential: str) -> bool:
        card = ctx.store.state.card(credential)
        return card is not None and card.owner_kind is OwnerKind.STUDENT

    @router.get("/", response_class=HTMLResponse)
    async def show(request: Request, user: Viewer) -> Response:
        return await page(request, user, None)

    @router.post("/tap", response_class=HTMLResponse)
    async def tap(request: Request, user: Writer, terminal: Annotated[Id, Form()]) -> Response:
        """Wait for a student's card at the desk reader (a staff card there is not taken)."""
        lang = ctx.lang(request)
        if terminal not in _readers(ctx):
            raise HTTPException(404, "no such reader")
        try:
            async with ctx.readers.claim(terminal, accepts=is_student_card) as claim:
                try:
                    async with asyncio.timeout(CARD_WAIT_S):
                        number = await claim.card()
                except TimeoutError:
                    return await page(request, user, None, result=ctx.t("lending.no_card", lang))
        except ReaderBusy:
            return await page(request, user, None, result=ctx.t("lending.busy", lang))
        try:
            student = student_of_card(ctx.store, number)
        except LendingRefused as err:
            return await page(request, user, None, result=refused(request, err))
        finally:
            del number
        return await page(request, user, student, terminal=terminal)

    @router.post("/act", response_class=HTMLResponse)
    async def act(
        request: Request,
        user: Writer,
        student: Annotated[Id, Form()],
        act: Annotated[str, Form(max_length=8)],
        inventory_no: Annotated[str, Form(max_length=200)],
    ) -> Response:
        lang = ctx.lang(request)
        if ctx.store.state.student(student) is None:
            raise HTTPException(404, "no such student at this school")
        if act not in ACTS:
            raise HTTPException(422, "unknown act")
        try:
            seq = await record_act(
                ctx.store,
                act,
                student,
                inventory_no,
                user.staff_id,
            )
        except LendingRefused as err:
            return await page(request, user, student, result=refused(request, err))
        log.info("library desk: %s recorded by staff %s (seq %d)", act, user.staff_id, seq)
        done = f"{ctx.t('lending.done.' + act, lang)} {inventory_no.strip()}"
        return await page(request, user, student, result=done, ok=True)

    return router


SECTION = Section(
    name="lending",
    title_key="lending.title",
    route_prefix="/lending",
    roles=frozenset({"librarian", "admin"}),
    build=build,
    strings=STRINGS,
    templates=Path(__file__).parent / "templates",
)
