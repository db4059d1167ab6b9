"""Staff PINs at the centre: set from the console by the school admin, sealed to each edge that
announced a box key signed with its device key; no PIN and no hash of one in any table; the
ciphertexts go once each edge's signed receipt arrives."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from protocol.codec import open_envelope
from protocol.messages import EdgeBoxKey, StaffPinReceipt, StaffPinsAck
from protocol.sealing import b64, open_sealed, pin_aad, raw_public
from protocol.signing import generate_key, public_key_raw, sign_message
from server.clock import now_ms
from server.models import Device
from server.people.models import StaffMember
from server.staffpins.models import SealedPinDelivery
from server.staffpins.service import due, record_receipts, register_box_key
from tests.support.console import World

PIN = "480913"


def edge(db: Session, school: str, device: str):  # type: ignore[no-untyped-def]
    key = generate_key()
    d = Device(
        school_id=school, device_id=device, created_at_ms=now_ms(), public_key=public_key_raw(key)
    )
    db.add(d)
    db.flush()
    return d, key


def announce(db: Session, school: str, device: str, dkey, box: X25519PrivateKey) -> bool:  # type: ignore[no-untyped-def]
    msg = EdgeBoxKey(school=school, device=device, public_key=b64(raw_public(box)))
    return register_box_key(db, school, device, open_envelope(sign_message(msg, dkey)))


def test_pin_set_sealed_per_edge_and_nothing_else_kept(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    member = StaffMember(
        school_id="S1", ref="t-7", full_name="Teacher Seven", edge_roles="class_teacher"
    )
    db.add(member)
    db.commit()
    admin = make_browser("admin1")
    page = admin.get(f"/staff/{member.pk}/pin")
    assert page.status_code == 200
    # no edge has announced its key: refused, nothing stored
    r = admin.post(f"/staff/{member.pk}/pin", {"pin": PIN, "pin_again": PIN})
    assert r.status_code == 400 and 'data-field="pin"' in r.text
    d1, k1 = edge(db, "S1", "edge-1")
    d2, k2 = edge(db, "S1", "edge-2")
    _d3, k3 = edge(db, "S3", "edge-9")  # another school's edge
    box1, box2, box3 = (X25519PrivateKey.generate() for _ in range(3))
    assert announce(db, "S1", "edge-1", k1, box1)
    assert announce(db, "S1", "edge-2", k2, box2)
    assert announce(db, "S3", "edge-9", k3, box3)
    # a box key signed with another key, or for another device, is refused
    assert not announce(db, "S1", "edge-1", k2, X25519PrivateKey.generate())
    assert not announce(db, "S1", "edge-2", k1, X25519PrivateKey.generate())
    db.commit()
    for bad, field in (("123", "pin"), ("1111", "pin"), ("123456", "pin"), ("4821a", "pin")):
        r = admin.post(f"/staff/{member.pk}/pin", {"pin": bad, "pin_again": bad})
        assert r.status_code == 400 and f'data-field="{field}"' in r.text, bad
    r = admin.post(f"/staff/{member.pk}/pin", {"pin": PIN, "pin_again": "480914"})
    assert r.status_code == 400 and 'data-field="pin_again"' in r.text
    assert db.execute(select(SealedPinDelivery)).first() is None
    r = admin.post(f"/staff/{member.pk}/pin", {"pin": PIN, "pin_again": PIN})
    assert r.status_code == 303 and r.headers["location"] == f"/staff/{member.pk}/pin"
    assert 'id="flash"' in admin.get(r.headers["location"]).text  # a refresh sends no PIN
    db.expire_all()
    rows = {r.device_pk: r for r in db.execute(select(SealedPinDelivery)).scalars()}
    assert set(rows) == {d1.pk, d2.pk}  # the school's edges only
    for d, box in ((d1, box1), (d2, box2)):
        row = rows[d.pk]
        aad = pin_aad("S1", d.device_id, "t-7", 1)
        assert row.enc and row.ct
        assert open_sealed(box, row.enc, row.ct, aad) == PIN.encode()
    # no table holds the PIN or a plain hash of it
    dumped = "\n".join(
        str(row)
        for table in (
            "staff_pin_deliveries",
            "staff_pin_versions",
            "audit_log",
            "change_log",
            "staff_members",
        )
        for row in db.execute(text(f"SELECT * FROM {table}"))
    )
    for needle in (PIN, hashlib.sha256(PIN.encode()).hexdigest()):
        assert needle not in dumped
    # the downlink's message for edge-1, then edge-1's signed receipt drops its ciphertext
    msg = due(db, "S1", "edge-1", now=now_ms(), resend=False)
    assert msg is not None and [p.staff_id for p in msg.pins] == ["t-7"]
    assert due(db, "S1", "edge-1", now=now_ms(), resend=False) is None  # just sent
    ack = StaffPinsAck(
        school="S1",
        device="edge-1",
        receipts=[StaffPinReceipt(staff_id="t-7", version=1, opened=True)],
    )
    forged = open_envelope(sign_message(ack, k2))  # signed by another edge
    assert record_receipts(db, "S1", "edge-1", forged) == 0
    assert record_receipts(db, "S1", "edge-1", open_envelope(sign_message(ack, k1))) == 1
    db.commit()
    db.expire_all()
    row1 = db.get_one(SealedPinDelivery, rows[d1.pk].pk)
    assert (row1.enc, row1.ct, row1.opened) == (None, None, True)
    assert db.get_one(SealedPinDelivery, rows[d2.pk].pk).ct is not None  # edge-2 not yet
    page = admin.get(f"/staff/{member.pk}/pin").text
    assert page.count("badge ok") >= 1 and "edge-2" in page
    # a reset: version 2 replaces what was on its way
    admin.get(f"/staff/{member.pk}/pin")
    r = admin.post(f"/staff/{member.pk}/pin", {"pin": "370254", "pin_again": "370254"})
    assert r.status_code == 303
    db.expire_all()
    assert {r.version for r in db.execute(select(SealedPinDelivery)).scalars()} == {2}


def test_another_schools_admin_cannot_set_a_pin(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    member = StaffMember(school_id="S1", ref="t-8", full_name="Teacher Eight")
    db.add(member)
    db.commit()
    other = make_browser("admin3")
    assert other.get(f"/staff/{member.pk}/pin").status_code == 404
    teacher = make_browser("teacher1")
    assert teacher.get(f"/staff/{member.pk}/pin").status_code == 403
