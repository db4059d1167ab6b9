"""Revoking a stolen edge from the console: the device loses its key and MQTT login, the broker
files no longer list it, the action is audited with the reason, and a replacement's one-time
enrolment token is shown once (only its hash is stored)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry
from server.devices import enrol, token_hash
from server.models import Device
from server.settings import ServerSettings
from tests.support.console import Browser, World
from tests.support.sync import enrolled_device

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def settings(
    pg_console_url: str, make_settings: Callable[..., ServerSettings], tmp_path: Path
) -> ServerSettings:
    return make_settings(
        pg_console_url,
        mosquitto_password_file=tmp_path / "passwd",
        mosquitto_acl_file=tmp_path / "acl",
    )


def _device(db: Session, school: str, device: str) -> Device:
    db.rollback()
    return db.execute(
        select(Device).where(Device.school_id == school, Device.device_id == device)
    ).scalar_one()


def test_operator_revokes_a_device_and_issues_a_replacement_token(
    make_browser: Callable[[str], Browser],
    world: World,
    db: Session,
    settings: ServerSettings,
    tmp_path: Path,
) -> None:
    from protocol.signing import generate_key, public_key_raw
    from server.broker_auth import write_broker_files

    _, user, _ = enrolled_device(db, settings, "S1", "gate1")
    enrolled_device(db, settings, "S1", "canteen1")
    write_broker_files(db, settings)
    assert user in (tmp_path / "passwd").read_text()
    b = make_browser("operator")
    page = b.get("/schools/S1/devices")
    assert page.status_code == 200 and "gate1" in page.text and "canteen1" in page.text
    assert "/schools/S1/devices" in b.get("/devices").text

    # without the confirmation, or without a reason: refused, nothing changes
    r = b.post("/schools/S1/devices/revoke", {"device": "gate1", "reason": "stolen"})
    assert r.status_code == 400 and 'data-field="confirm"' in r.text
    r = b.post("/schools/S1/devices/revoke", {"device": "gate1", "reason": " ", "confirm": "yes"})
    assert r.status_code == 400 and 'data-field="reason"' in r.text
    r = b.post("/schools/S1/devices/revoke", {"device": "nope", "reason": "x", "confirm": "yes"})
    assert r.status_code == 400 and 'data-field="device"' in r.text
    assert _device(db, "S1", "gate1").public_key is not None

    r = b.post(
        "/schools/S1/devices/revoke",
        {"device": "gate1", "reason": "stolen from the\nentrance", "confirm": "yes"},
    )
    assert r.status_code == 200 and 'id="done"' in r.text
    row = _device(db, "S1", "gate1")
    assert row.revoked_at_ms is not None and row.public_key is None
    assert row.mqtt_username is None and row.mqtt_password_hash is None
    assert user not in (tmp_path / "passwd").read_text()
    assert user not in (tmp_path / "acl").read_text()
    assert _device(db, "S1", "canteen1").public_key is not None  # the others keep working
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "revoke")).one()
    assert entry.subject == "device" and entry.school_id == "S1"
    assert entry.summary == "gate1: stolen from the entrance"

    # the replacement's one-time token: shown once, stored as a hash, never audited
    r = b.post("/schools/S1/devices/token", {"device": "gate1"})
    assert r.status_code == 200
    m = re.search(r'<code id="token">([^<]+)</code>', r.text)
    assert m is not None
    token = m.group(1)
    assert token not in b.get("/schools/S1/devices").text
    assert _device(db, "S1", "gate1").enrol_token_hash == token_hash(token)
    summaries = [e.summary for e in db.scalars(select(AuditEntry))]
    assert any(s.startswith("gate1:") and "token" in s for s in summaries)
    assert not any(token in s for s in summaries)
    creds = enrol(db, settings, token, "gate1", public_key_raw(generate_key()))
    db.commit()
    assert creds.mqtt_username == user and _device(db, "S1", "gate1").revoked_at_ms is None


def test_who_may_revoke_and_issue_tokens(
    make_browser: Callable[[str], Browser], world: World, db: Session, settings: ServerSettings
) -> None:
    for school in ("S1", "S3"):
        enrolled_device(db, settings, school, "gate1")
    form = {"device": "gate1", "reason": "retired", "confirm": "yes"}
    # a school admin revokes in their own school only, and issues no device credentials
    admin = make_browser("admin1")
    admin.get("/schools/S1/devices")
    assert admin.post("/schools/S3/devices/revoke", form).status_code == 404
    assert _device(db, "S3", "gate1").public_key is not None
    assert admin.post("/schools/S1/devices/token", {"device": "gate1"}).status_code == 403
    assert admin.post("/schools/S1/devices/revoke", form).status_code == 200
    assert _device(db, "S1", "gate1").revoked_at_ms is not None
    # the regional operator of R1 (S1, S2) cannot reach S3 of R2
    regional = make_browser("regional")
    assert regional.get("/schools/S3/devices").status_code == 404
    assert regional.post("/schools/S3/devices/token", {"device": "gate1"}).status_code == 404
    assert _device(db, "S3", "gate1").enrol_token_used
    # other staff: no access at all
    teacher = make_browser("teacher1")
    assert teacher.get("/schools/S1/devices").status_code == 403
    assert teacher.post("/schools/S1/devices/revoke", form).status_code == 403
