"""A staff member's PIN (/staff/{pk}/pin): set or reset by the school admin; the page shows
which of the school's edges have it. The PIN is typed twice, sealed to each edge, dropped."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.console.params import Id
from server.console.web import Db, ensure, redirect_done, render, require
from server.models import School
from server.people.models import StaffMember
from server.staffpins.service import PinError, pin_status, set_pin

router = APIRouter()

N_ = str
STATES = {
    "delivered": N_("PIN received"),
    "waiting": N_("waiting for the terminal"),
    "not_opened": N_("could not be opened: set the PIN again"),
    "no_pin": N_("no PIN"),
}


def _member(db: Db, who: Principal, pk: int) -> StaffMember:
    member = db.get(StaffMember, pk)
    ensure(member is not None and who.can("staff.edit", school_id=member.school_id))
    assert member is not None
    return member


def _page(
    request: Request,
    db: Db,
    member: StaffMember,
    *,
    error: PinError | None = None,
    status: int = 200,
) -> Response:
    version, edges = pin_status(db, member)
    school = db.get_one(School, member.school_id)
    return render(
        request,
        "staffpins/member.html",
        {
            "member": member,
            "version": version,
            "edges": edges,
            "states": STATES,
            "error": error,
            "zone": school.timezone,
        },
        status,
    )


@router.get("/staff/{pk}/pin")
def pin_page(
    request: Request, db: Db, who: Annotated[Principal, require("staff.edit")], pk: Id
) -> Response:
    return _page(request, db, _member(db, who, pk))


@router.post("/staff/{pk}/pin")
def pin_set(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("staff.edit")],
    pk: Id,
    pin: Annotated[str, Form(max_length=12)] = "",
    pin_again: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    member = _member(db, who, pk)
    try:
        set_pin(db, who, member, pin, pin_again)
    except PinError as err:
        db.rollback()
        return _page(request, db, member, error=err, status=400)
    db.commit()
    return redirect_done(
        request, f"/staff/{member.pk}/pin", N_("The new PIN is sealed and sent to the school.")
    )
