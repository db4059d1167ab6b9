"""The board of trustees' report (/trustees, page, XLSX and PDF) and the parents' concerns log
(/concerns): recorded and answered by the school's administration, the social pedagogue or the
senior counsellor, without the parent's name."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import ClockDep
from server.console.params import Day, SchoolId, parse_day, parse_id
from server.console.scope import pick_school, school_in_scope, schools_in_scope, visible_schools
from server.console.web import Db, nav_item, render, require, tr
from server.duty.rules import ALARM_TEXT
from server.models import School
from server.reports.export import (
    PDF_TYPE,
    XLSX_TYPE,
    Cell,
    FontMissing,
    Sheet,
    disposition,
    to_pdf,
    to_xlsx,
)
from server.trustees import calc
from server.trustees.models import ParentConcern
from server.trustees.service import (
    BoardReport,
    add_concern,
    answer_concern,
    board_report,
    concern_rows,
)

router = APIRouter()
nav_item("trustees.view", "/trustees", "Board of trustees", 68)
nav_item("concerns.edit", "/concerns", "Parents' concerns", 69)

N_ = str
ROUTED = {
    "on_duty": N_("to the person on duty"),
    "school_admin": N_("to the school administrator"),
    "nobody": N_("to nobody (console only)"),
}


def _period(today: dt.date, start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    lo, hi = calc.period_default(today)
    a, b = parse_day(start) or lo, parse_day(end) or hi
    return (a, b) if a <= b else (b, a)


def sheets(request: Request, rep: BoardReport) -> list[Sheet]:
    def t(m: str) -> str:
        return tr(request, m)

    name = rep.school.name or rep.school.id
    sub = [name, f"{rep.start.isoformat()} – {rep.end.isoformat()}"]
    kinds = {k: t(v) for k, v in calc.KIND_LABEL.items()}
    b = rep.biometrics
    incidents: list[list[Cell]] = []
    incidents += [[t("Alarm") + ": " + t(ALARM_TEXT.get(k, k)), n] for k, n in rep.alarms]
    incidents += [[t("Alarms sent") + ": " + t(ROUTED.get(k, k)), n] for k, n in rep.alerts]
    incidents += [[t("Refused at the gates") + ": " + k, n] for k, n in rep.denied]
    return [
        Sheet(
            t("Consent coverage"),
            [*sub, f"{t('Active students')}: {rep.students}"],
            [t("Consent"), t("Given"), t("Withdrawn"), t("Not recorded"), t("Coverage, per cent")],
            [[kinds[c.kind], c.given, c.withdrawn, c.none, c.percent] for c in rep.coverage],
            name="consents",
        ),
        Sheet(
            t("Biometrics refused and the card alternative"),
            sub,
            [t("Students"), t("Count")],
            [
                [t("Without biometric consent"), b.without],
                [t("of them: consent withdrawn"), b.withdrawn],
                [t("of them: with an active card"), b.with_card],
                [t("of them: without a card"), b.without_card],
            ],
            name="biometrics",
        ),
        Sheet(
            t("Manual passes by who authorised them"),
            sub,
            [t("Authorised by"), t("Passes")],
            [[who, n] for who, n in rep.manual_passes],
            totals=[t("Total"), sum(n for _w, n in rep.manual_passes)],
            name="manual passes",
        ),
        Sheet(
            t("Incidents and alarms"),
            sub,
            [t("What"), t("Count")],
            incidents,
            name="incidents",
        ),
        Sheet(
            t("Parents' concerns"),
            [
                *sub,
                f"{t('Recorded')}: {len(rep.concerns.rows)}",
                f"{t('Answered')}: {rep.concerns.answered}",
                f"{t('Open')}: {rep.concerns.open}",
            ],
            [t("Date"), t("Topic"), t("Concern"), t("Answer"), t("Answered on")],
            [
                [
                    r.raised_on.isoformat(),
                    t(calc.TOPIC_LABEL[r.topic]),
                    r.text,
                    r.answer,
                    r.answered_on.isoformat() if r.answered_on else "",
                ]
                for r in rep.concerns.rows
            ],
            signatures=[t("Chair of the board of trustees"), t("Secretary")],
            name="concerns",
        ),
    ]


@router.get("/trustees")
def trustees_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("trustees.view")],
    schools: Annotated[list[School], visible_schools("trustees.view")],
    school: SchoolId | None = None,
    start: Annotated[str | None, Query(max_length=10)] = None,
    end: Annotated[str | None, Query(max_length=10)] = None,
    format: Annotated[str, Query(max_length=8)] = "html",
) -> Response:
    chosen = pick_school(schools, school)
    lo, hi = _period(clock.school_today(chosen), start, end)
    rep = board_report(db, chosen, lo, hi)
    if format in ("xlsx", "pdf"):
        audit(db, who, "export", "trustees", school_id=chosen.id, summary=f"{format} {lo}..{hi}")
        db.commit()
        sh = sheets(request, rep)
        if format == "xlsx":
            data, ctype = to_xlsx(sh), XLSX_TYPE
        else:
            try:
                data, ctype = to_pdf(sh, subject=chosen.name or chosen.id), PDF_TYPE
            except FontMissing as err:
                message = tr(request, "PDF export is not available on this server") + f": {err}"
                return render(request, "error.html", {"code": 503, "message": message}, 503)
        return Response(
            data,
            media_type=ctype,
            headers={
                "Content-Disposition": disposition(
                    "trustees", chosen.id, lo.isoformat(), hi.isoformat(), ext=format
                )
            },
        )
    return render(
        request,
        "trustees/report.html",
        {
            "schools": schools,
            "school": chosen,
            "start": lo,
            "end": hi,
            "rep": rep,
            "routed": ROUTED,
            "alarm_text": ALARM_TEXT,
            "topic_label": calc.TOPIC_LABEL,
            "kind_label": calc.KIND_LABEL,
            "query": f"school={chosen.id}&start={lo.isoformat()}&end={hi.isoformat()}",
        },
    )


def _concerns_page(
    request: Request,
    db: Db,
    who: Principal,
    school: School,
    today: dt.date,
    *,
    error: calc.ConcernError | None = None,
    done: str | None = None,
    status: int = 200,
) -> Response:
    lo, hi = calc.period_default(today)
    return render(
        request,
        "trustees/concerns.html",
        {
            "school": school,
            "schools": schools_in_scope(db, who, "concerns.edit"),
            "rows": concern_rows(db, school.id, lo, hi),
            "topics": calc.TOPICS,
            "topic_label": calc.TOPIC_LABEL,
            "today": today,
            "error": error,
            "done": done,
        },
        status,
    )


@router.get("/concerns")
def concerns_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("concerns.edit")],
    schools: Annotated[list[School], visible_schools("concerns.edit")],
    school: SchoolId | None = None,
) -> Response:
    chosen = pick_school(schools, school)
    return _concerns_page(request, db, who, chosen, clock.school_today(chosen))


@router.post("/schools/{school}/concerns")
def concerns_add(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("concerns.edit")],
    school: SchoolId,
    raised_on: Annotated[Day, Form()],
    topic: Annotated[str, Form(max_length=16)] = "",
    text: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    found = school_in_scope(db, who, "concerns.edit", school)
    today = clock.school_today(found)
    try:
        add_concern(db, who, found.id, topic, text, raised_on, today, clock.now_ms())
    except calc.ConcernError as err:
        db.rollback()
        return _concerns_page(request, db, who, found, today, error=err, status=400)
    db.commit()
    return _concerns_page(request, db, who, found, today, done=N_("The concern is recorded."))


@router.post("/schools/{school}/concerns/answer")
def concerns_answer(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("concerns.edit")],
    school: SchoolId,
    concern: Annotated[str, Form(max_length=12)],
    answer: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    found = school_in_scope(db, who, "concerns.edit", school)
    today = clock.school_today(found)
    pk = parse_id(concern)
    row = db.get(ParentConcern, pk) if pk is not None else None
    try:
        if row is None or row.school_id != found.id:
            raise calc.ConcernError("concern", N_("No such concern at this school."))
        answer_concern(db, who, row, answer, today)
    except calc.ConcernError as err:
        db.rollback()
        return _concerns_page(request, db, who, found, today, error=err, status=400)
    db.commit()
    return _concerns_page(request, db, who, found, today, done=N_("The answer is recorded."))
