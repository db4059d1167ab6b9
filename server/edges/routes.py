"""The schools' edge devices (/devices, /schools/{school}/devices): revoke a stolen or retired
device, then issue the one-time enrolment token of its replacement (shown once)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.console.params import SchoolId
from server.console.scope import school_in_scope, visible_schools
from server.console.web import Db, Settings, nav_item, render, require
from server.edges.service import (
    DeviceActionError,
    device_counts,
    replacement_token,
    revoke_device,
    school_devices,
)
from server.models import School

router = APIRouter()
nav_item("devices.revoke", "/devices", "Devices", 75)

N_ = str
DeviceId = Annotated[str, Form(min_length=1, max_length=64)]


@router.get("/devices")
def devices_overview(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("devices.revoke")],
    schools: Annotated[list[School], visible_schools("devices.revoke")],
) -> Response:
    counts = device_counts(db, schools)
    return render(request, "edges/overview.html", {"schools": schools, "counts": counts})


def _page(
    request: Request,
    db: Db,
    who: Principal,
    school: School,
    *,
    error: DeviceActionError | None = None,
    done: str | None = None,
    token: tuple[str, str] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "edges/school.html",
        {
            "school": school,
            "devices": school_devices(db, school.id),
            "can_enrol": who.can("devices.enrol", school_id=school.id),
            "error": error,
            "done": done,
            "token": token,
        },
        status,
    )


@router.get("/schools/{school}/devices")
def devices_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("devices.revoke")],
    school: SchoolId,
) -> Response:
    return _page(request, db, who, school_in_scope(db, who, "devices.revoke", school))


@router.post("/schools/{school}/devices/revoke")
def devices_revoke(
    request: Request,
    db: Db,
    settings: Settings,
    who: Annotated[Principal, require("devices.revoke")],
    school: SchoolId,
    device: DeviceId,
    reason: Annotated[str, Form(max_length=500)] = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    found = school_in_scope(db, who, "devices.revoke", school)
    try:
        revoke_device(db, settings, who, found.id, device, reason, confirmed=confirm == "yes")
    except DeviceActionError as err:
        db.rollback()
        return _page(request, db, who, found, error=err, status=400)
    return _page(request, db, who, found, done=N_("The device is revoked."))


@router.post("/schools/{school}/devices/token")
def devices_token(
    request: Request,
    db: Db,
    settings: Settings,
    who: Annotated[Principal, require("devices.enrol")],
    school: SchoolId,
    device: DeviceId,
) -> Response:
    found = school_in_scope(db, who, "devices.enrol", school)
    try:
        token = replacement_token(db, settings, who, found.id, device)
    except DeviceActionError as err:
        db.rollback()
        return _page(request, db, who, found, error=err, status=400)
    return _page(request, db, who, found, token=(device, token))
