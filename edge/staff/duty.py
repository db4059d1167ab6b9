"""The duty section of the staff page: what the person on duty must see at the school itself,
above all when the link to the centre is down and no SMS can reach them (seed 002: each shift
has a person responsible for the system).

It shows the alarms this edge raised that are still active (a reader or camera offline, the
outbox 80 % full, a gate fault, a refused secure channel or downlink message), the recent ones,
and the state of the link: how many events wait for the centre and since when. The same rules
(``edge.core.alarms``) tell the readers' LEDs and buzzers what to show (``edge.alarm_lights``).

No ``from __future__ import annotations`` here: the routes' ``Annotated`` dependencies are local
to ``build`` (see ``edge.staff.sections``)."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from edge.core.alarms import active_alarms, link_down, signal
from edge.core.reasons import Lang
from edge.staff.auth import StaffUser
from edge.staff.i18n import _t
from edge.staff.sections import Section, StaffContext
from protocol.messages import AlarmEvent

ROLES = frozenset(
    {
        "duty_deputy",
        "deputy_director_on_duty",
        "admin",
        "security",
        "social_pedagogue",
        "senior_counsellor",
    }
)

STRINGS = {
    "duty.title": _t("Кезекші", "Дежурный", "Duty"),
    "duty.intro": _t(
        "Мектептегі жүйенің күйі: орталықпен байланыс жоқ кезде де осында көрінеді",
        "Состояние системы в школе: видно здесь, даже когда нет связи с центром",
        "The state of the system at the school: shown here even when the link to the centre is down",
    ),
    "duty.link": _t("Орталықпен байланыс", "Связь с центром", "Link to the centre"),
    "duty.link_ok": _t("Бар", "Есть", "Up"),
    "duty.link_down": _t(
        "Жоқ: оқиғалар мектепте сақталады, турникеттер жұмыс істейді",
        "Нет: события хранятся в школе, турникеты работают",
        "Down: events are kept at the school, the turnstiles keep working",
    ),
    "duty.backlog": _t("Жіберілмеген оқиғалар", "Неотправленные события", "Events not yet sent"),
    "duty.since": _t("ең ескісі", "самое старое с", "oldest since"),
    "duty.active": _t("Белсенді дабылдар", "Активные тревоги", "Active alarms"),
    "duty.none": _t("Дабыл жоқ", "Тревог нет", "No alarms"),
    "duty.recent": _t("Соңғы дабылдар", "Последние тревоги", "Recent alarms"),
    "duty.raised": _t("көтерілді", "поднята", "raised"),
    "duty.cleared": _t("жойылды", "снята", "cleared"),
    "alarm.reader_offline": _t(
        "Оқу құрылғысы немесе камера желіден тыс",
        "Считыватель или камера не в сети",
        "A reader or camera is offline",
    ),
    "alarm.outbox_high_water": _t(
        "Кезек 80% толы: орталықпен байланыс жоқ",
        "Очередь заполнена на 80%: нет связи с центром",
        "The outbox is 80% full: the link to the centre is down",
    ),
    "alarm.secure_channel_refused": _t(
        "Оқу құрылғысы қорғалған арнадан бас тартты",
        "Считыватель отказал в защищённом канале",
        "A reader refused the secure channel",
    ),
    "alarm.gate_fault": _t("Турникет ақауы", "Неисправность турникета", "A turnstile fault"),
    "alarm.downlink_refused": _t(
        "Орталықтың хабары қабылданбады",
        "Сообщение центра отклонено",
        "A message from the centre was refused",
    ),
    "alarm.clock_in_doubt": _t(
        "Сағат күмәнді: уақыт секірді, оқиғалар белгіленеді",
        "Часы под сомнением: время скачком изменилось, события помечаются",
        "The clock is in doubt: the time jumped, events are flagged",
    ),
    "alarm.store_full": _t(
        "Жүйе жаза алмайды (жад толы): карталар қабылданбайды",
        "Система не может записывать (память заполнена): проходы отклоняются",
        "The store cannot write (storage full): taps are refused",
    ),
    "alarm.fire_alarm": _t(
        "Өрт дабылы: барлық турникеттер ашық",
        "Пожарная тревога: все турникеты открыты",
        "Fire alarm: every turnstile is free",
    ),
    "duty.clock": _t("Уақыт", "Время", "Time"),
    "duty.clock_ok": _t("Сенімді", "Надёжное", "Trusted"),
    "duty.clock_doubt": _t(
        "Күмәнді: жүйе соңғы сенімді уақыттан есептейді; кіру ашық, бір үзіліске бір тегін "
        "тамақ. Орталықпен байланыс қалпына келгенде тексеріледі.",
        "Под сомнением: система считает от последнего надёжного времени; вход открыт, одно "
        "бесплатное питание за перемену. Проверится, когда вернётся связь с центром.",
        "In doubt: the system counts from the last trusted time; entry is open, one free meal "
        "per period. It is checked once the link to the centre is back.",
    ),
    "duty.clock_school": _t("Жүйенің уақыты", "Время системы", "The system's time"),
    "duty.clock_wall": _t("Компьютер сағаты", "Часы компьютера", "The computer's clock"),
    "duty.clock_wall_off": _t(
        "Компьютер сағаты қате: техникке хабарлаңыз",
        "Часы компьютера неверны: сообщите технику",
        "The computer's clock is wrong: tell the technician",
    ),
    "duty.store_full": _t(
        "Жүйе жаза алмайды: карталар мен тамақ қабылданбайды, турникеттер ашылмайды. "
        "Техникке хабарлаңыз (дискіде орын босату керек); жүйе өзі қалпына келеді.",
        "Система не может записывать: проходы и питание отклоняются, турникеты не "
        "открываются. Сообщите технику (нужно освободить место на диске); система "
        "восстановится сама.",
        "The store cannot write: taps and meals are refused, the turnstiles do not open. "
        "Tell the technician (the disk needs space); the system recovers by itself.",
    ),
    "duty.store_refused": _t("қабылданбаған", "отклонено", "refused"),
    "duty.evacuation": _t(
        "ЭВАКУАЦИЯ: өрт дабылы, барлық турникеттер ашық",
        "ЭВАКУАЦИЯ: пожарная тревога, все турникеты открыты",
        "EVACUATION: fire alarm, every turnstile is free",
    ),
    "duty.evacuation_list": _t(
        "Ішінде (бүгінгі кіру мен шығу бойынша)",
        "Внутри (по сегодняшним входам и выходам)",
        "Inside (by today's entries and exits)",
    ),
    "duty.evacuation_none": _t("Ешкім жоқ", "Никого", "Nobody"),
    "duty.evacuation_gates_failed": _t(
        "Ашылмаған турникеттер: қолмен ашыңыз",
        "Не открылись турникеты: откройте вручную",
        "Turnstiles not freed: open them by hand",
    ),
}


@dataclass(frozen=True, slots=True)
class Row:
    at: str
    terminal: str
    text: str
    detail: str
    active: bool


def _rows(
    events: Sequence[AlarmEvent], ctx: StaffContext, lang: Lang, zone: dt.tzinfo
) -> list[Row]:
    return [
        Row(
            dt.datetime.fromtimestamp(e.at_ms / 1000, zone).strftime("%d.%m %H:%M"),
            e.terminal,
            ctx.t(f"alarm.{e.code.value}", lang),
            e.detail[:120],
            e.active,
        )
        for e in events
    ]


def _faults(faults: object, ctx: StaffContext, lang: Lang, zone: dt.tzinfo) -> dict[str, Any]:
    """The clock, the store and the evacuation (``edge.school_faults``), when the daemon runs."""
    from edge.school_faults import SchoolFaults

    if not isinstance(faults, SchoolFaults):
        return {}
    clock = faults.clock.state()
    now = faults.clock.now()
    wall = now + dt.timedelta(seconds=clock.wall_offset_s)
    out: dict[str, Any] = {
        "clock_doubt": clock.in_doubt,
        "clock_reason": clock.reason,
        "clock_school": now.astimezone(zone).strftime("%d.%m.%Y %H:%M"),
        "clock_wall": wall.astimezone(zone).strftime("%d.%m.%Y %H:%M"),
        "clock_wall_off": abs(clock.wall_offset_s) > 120,
        "unjournaled": faults.unjournaled_alarms(),
    }
    fault = faults.pipeline.store_fault if faults.pipeline is not None else None
    if fault is not None:
        out["store_full"] = {
            "since": fault.since.astimezone(zone).strftime("%d.%m %H:%M"),
            "refused": fault.refused,
        }
    evac = faults.evacuation
    if evac.active:
        out["evacuation"] = {
            "since": evac.since.astimezone(zone).strftime("%H:%M") if evac.since else "",
            "inside": evac.inside(),
            "failed": sorted(t for t, ok in evac.released.items() if not ok),
        }
    return out


def build(ctx: StaffContext) -> APIRouter:
    router = APIRouter()
    Viewer = Annotated[StaffUser, Depends(ctx.viewer(SECTION))]

    @router.get("/", response_class=HTMLResponse)
    async def show(request: Request, user: Viewer) -> Response:
        recent = await ctx.store.recent_alarms(200)
        stats = await ctx.store.outbox_stats()
        now = ctx.clock()
        policy = ctx.store.policy
        zone: dt.tzinfo = policy.timezone if policy is not None else dt.UTC
        active = active_alarms(recent)
        down = link_down(stats.backlog, stats.oldest_unsent_ms, int(now.timestamp() * 1000))
        lang = ctx.lang(request)
        since = (
            dt.datetime.fromtimestamp(stats.oldest_unsent_ms / 1000, zone).strftime("%d.%m %H:%M")
            if stats.oldest_unsent_ms is not None and stats.backlog
            else ""
        )
        faults = ctx.extras.get("faults")
        extra = _faults(faults, ctx, lang, zone)
        active = extra.pop("unjournaled", []) + active
        return ctx.render(
            request,
            user,
            "duty/page.html",
            {
                **extra,
                "active": _rows(active, ctx, lang, zone),
                "recent": _rows(recent[:20], ctx, lang, zone),
                "down": down,
                "backlog": stats.backlog,
                "capacity": stats.capacity,
                "since": since,
                "signal": signal(active, down).value,
            },
            section=SECTION,
        )

    return router


SECTION = Section(
    name="duty",
    title_key="duty.title",
    route_prefix="/duty",
    roles=ROLES,
    build=build,
    strings=STRINGS,
    templates=Path(__file__).parent / "templates",
)
