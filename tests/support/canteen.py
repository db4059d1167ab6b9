"""Canteen at the centre for tests: settings (the payment provider's secret, small batches), a
device and the meals it sold, stored as ingest stores them."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from pydantic import SecretStr
from sqlalchemy.orm import Session

from server.canteen.settings import CanteenSettings
from server.clock import now_ms
from server.models import Device, StoredEvent

ZONE = zoneinfo.ZoneInfo("Asia/Almaty")
SECRET = b"provider-test-secret-0123456789"


def canteen_settings(**kw: Any) -> CanteenSettings:
    base: dict[str, Any] = {
        "provider_secret": SecretStr(SECRET.decode()),
        "qr_secret": SecretStr("qr-test-secret-0123456789abcdef"),
        "low_balance_tiyn": 50_000,
        "post_batch": 3,
    }
    return CanteenSettings(**(base | kw))


def add_device(db: Session, school: str, device: str = "edge-1", applied: int = 0) -> Device:
    d = Device(school_id=school, device_id=device, created_at_ms=now_ms(), applied_version=applied)
    db.add(d)
    db.flush()
    return d


def add_meal(
    db: Session,
    device: Device,
    seq: int,
    student: str,
    amount: int,
    balance_after: int | None,
    meal: str = "paid",
    at_ms: int | None = None,
) -> StoredEvent:
    """An uplink event stored as ingest stores it (the whole protocol event as payload)."""
    at = at_ms or now_ms()
    payload = {
        "kind": "meal_served",
        "seq": seq,
        "at_ms": at,
        "terminal": "canteen-1",
        "student_id": student,
        "period": "lunch",
        "local_date": dt.datetime.fromtimestamp(at / 1000, ZONE).date().isoformat(),
        "meal": meal,
        "amount_tiyn": amount,
        "items": ["soup"] if amount else [],
        "balance_after_tiyn": balance_after,
    }
    ev = StoredEvent(
        device_pk=device.pk,
        seq=seq,
        school_id=device.school_id,
        at_ms=at,
        kind="meal_served",
        terminal="canteen-1",
        student_id=student,
        payload=payload,
        received_at_ms=now_ms(),
    )
    db.add(ev)
    db.flush()
    return ev
