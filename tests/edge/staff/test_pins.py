"""Keyed PIN verifiers, the wrong-entry rule, the key file, sealing and the PIN installer."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from edge.staff.capture import ReaderBusy, ReaderInput
from edge.staff.delivery import BoxKeyError, PinInstaller, load_box_key
from edge.staff.pins import (
    PinKeyError,
    PinRule,
    load_pin_key,
    locked,
    pin_delay_s,
    pin_matches,
    valid_pin,
    verifier,
)
from edge.store import EdgeStore
from protocol.errors import ProtocolError
from protocol.messages import SealedStaffPin, StaffPins
from protocol.sealing import b64, open_sealed, pin_aad, raw_public, seal

KEY = bytes(range(32))


def test_verifier_is_keyed_and_bound_to_the_member() -> None:
    v = verifier(KEY, "t1", "4821")
    assert pin_matches(KEY, "t1", "4821", v)
    assert not pin_matches(KEY, "t1", "4822", v)
    assert not pin_matches(KEY, "t2", "4821", v)  # another member's verifier
    assert not pin_matches(bytes(32), "t1", "4821", v)  # another school's key
    assert not pin_matches(KEY, "t1", "4821", "")  # no PIN set
    assert "4821" not in v


@pytest.mark.parametrize("pin", ["482", "4821567", "48a1", "４８２１", "", " 4821"])
def test_bad_pins_never_match(pin: str) -> None:
    assert not valid_pin(pin)
    assert not pin_matches(KEY, "t1", pin, verifier(KEY, "t1", pin))


@given(st.integers(0, 200), st.integers(0, 200))
def test_delay_never_shrinks_and_is_capped(a: int, b: int) -> None:
    rule = PinRule()
    lo, hi = sorted((a, b))
    assert pin_delay_s(lo, rule) <= pin_delay_s(hi, rule) <= rule.cap_s


def test_delays_double_after_the_free_ones_then_lock() -> None:
    rule = PinRule(free=3, base_s=2.0, cap_s=300.0, lockout_after=10)
    assert [pin_delay_s(n, rule) for n in range(1, 7)] == [0.0, 0.0, 2.0, 4.0, 8.0, 16.0]
    assert not locked(9, rule) and locked(10, rule)


def test_pin_key_file_is_created_private_and_refused_when_readable(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "staff-pin.key"
    key = load_pin_key(path)
    assert len(key) == 32 and oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_pin_key(path) == key  # the same key at the next start
    os.chmod(path, 0o644)
    with pytest.raises(PinKeyError, match="readable by other users"):
        load_pin_key(path)
    os.chmod(path, 0o600)
    path.write_bytes(b"short")
    with pytest.raises(PinKeyError, match="32 bytes"):
        load_pin_key(path)


def test_box_key_file(tmp_path: Path) -> None:
    path = tmp_path / "box.key"
    key = load_box_key(path)
    assert raw_public(load_box_key(path)) == raw_public(key)
    os.chmod(path, 0o640)
    with pytest.raises(BoxKeyError):
        load_box_key(path)


def test_a_seal_opens_only_with_its_key_and_its_binding() -> None:
    edge = X25519PrivateKey.generate()
    aad = pin_aad("S1", "edge-1", "t1", 3)
    enc, ct = seal(edge.public_key(), b"4821", aad)
    assert open_sealed(edge, enc, ct, aad) == b"4821"
    assert "4821" not in enc + ct
    for bad_aad in (
        pin_aad("S1", "edge-2", "t1", 3),  # another edge of the school
        pin_aad("S1", "edge-1", "t2", 3),  # another member
        pin_aad("S1", "edge-1", "t1", 2),  # an older version
        pin_aad("S2", "edge-1", "t1", 3),
    ):
        with pytest.raises(ProtocolError):
            open_sealed(edge, enc, ct, bad_aad)
    with pytest.raises(ProtocolError):
        open_sealed(X25519PrivateKey.generate(), enc, ct, aad)
    flipped = bytearray(ct.encode())
    flipped[3] = ord("A") if flipped[3] != ord("A") else ord("B")
    with pytest.raises(ProtocolError):
        open_sealed(edge, enc, flipped.decode(), aad)
    # two seals of the same PIN differ (a one-time key each)
    assert seal(edge.public_key(), b"4821", aad) != seal(edge.public_key(), b"4821", aad)


def test_a_low_order_box_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    zero = X25519PublicKey.from_public_bytes(bytes(32))
    with pytest.raises(ProtocolError, match="low-order"):
        seal(zero, b"4821", b"x")


async def test_installer_keeps_only_newer_versions(tmp_path: Path) -> None:
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="edge-1")
    try:
        box = X25519PrivateKey.generate()
        installer = PinInstaller(store, box, KEY)

        def sealed(pin: str, version: int, to: X25519PrivateKey = box) -> SealedStaffPin:
            enc, ct = seal(to.public_key(), pin.encode(), pin_aad("S1", "edge-1", "t1", version))
            return SealedStaffPin(staff_id="t1", version=version, enc=enc, ct=ct)

        def msg(*pins: SealedStaffPin) -> StaffPins:
            return StaffPins(school="S1", device="edge-1", pins=list(pins))

        receipts = await installer.install(msg(sealed("4821", 2)))
        assert [(r.staff_id, r.version, r.opened) for r in receipts] == [("t1", 2, True)]
        row = await store.staff_pin("t1")
        assert row is not None and pin_matches(KEY, "t1", "4821", row.verifier)
        await installer.install(msg(sealed("1357", 1)))  # an older PIN replayed: ignored
        row = await store.staff_pin("t1")
        assert row is not None and row.version == 2 and pin_matches(KEY, "t1", "4821", row.verifier)
        other = X25519PrivateKey.generate()  # sealed to another edge's key
        (r,) = await installer.install(msg(sealed("2468", 3, other)))
        assert not r.opened
        await store.record_pin_attempt("t1", ok=False, not_before_ms=10**15)
        await installer.install(msg(sealed("2468", 4)))  # a new PIN clears the count
        row = await store.staff_pin("t1")
        assert row is not None and (row.version, row.failures, row.not_before_ms) == (4, 0, 0)
        # the store holds no PIN
        raw = (tmp_path / "edge.sqlite").read_bytes() + b"".join(
            p.read_bytes() for p in tmp_path.glob("edge.sqlite-*")
        )
        assert b"2468" not in raw and b"4821" not in raw
        assert b64(raw_public(box)) not in raw.decode("latin-1")
    finally:
        await store.close()


async def test_reader_claims_take_cards_and_keypad_entries() -> None:
    readers = ReaderInput()
    assert not readers.offer_card("gate-1", "UID:01")  # no page waiting: a normal tap
    async with readers.claim("gate-1") as claim:
        with pytest.raises(ReaderBusy):
            async with readers.claim("gate-1"):
                pass
        assert readers.offer_card("gate-1", "UID:01")
        assert await claim.card() == "UID:01"
        readers.offer_keys("gate-1", "12*48")
        readers.offer_keys("gate-1", "21#")
        async with asyncio.timeout(1):
            assert await claim.keypad_entry() == "4821"
    assert not readers.claimed("gate-1")
