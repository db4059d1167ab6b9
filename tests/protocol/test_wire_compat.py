"""The canteen fields and ops added to the wire keep the previous release's bytes decoding.

``golden_before/`` holds the vectors of the release before (only those whose bytes changed): a
meal event without ``items`` / ``balance_after_tiyn`` still decodes, to a free meal with the new
fields at their defaults.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.codec import decode, open_envelope
from protocol.messages import EventBatch, MealServedEvent, SyncDelta, SyncSnapshot
from protocol.signing import open_signed_batch
from tests.protocol import wire_samples as ws

BEFORE = Path(__file__).parent / "golden_before"


def _read(path: Path) -> bytes:
    text = path.read_text(encoding="ascii")
    return bytes.fromhex("".join(ln for ln in text.splitlines() if not ln.startswith("#")))


@pytest.mark.parametrize("path", sorted(BEFORE.glob("*.hex")), ids=lambda p: p.stem)
def test_previous_vectors_still_decode(path: Path) -> None:
    buf = _read(path)
    if path.stem == "sync_snapshot":  # a snapshot without the canteen's money
        snap = decode(buf, SyncSnapshot)
        assert snap.balance_credits == [] and snap.parent_limits is None
        return
    if path.stem == "event_batch.signed":
        batch = open_signed_batch(buf, ws.signing_key().public_key())
    else:
        msg = decode(buf, SyncDelta if path.stem.startswith("sync_delta") else EventBatch)
        if isinstance(msg, SyncDelta):
            assert [c.op for c in msg.changes][-1] == "menu_set"
            return
        batch = msg
    meals = [e for e in batch.events if isinstance(e, MealServedEvent)]
    assert len(meals) == 1
    assert meals[0].items == [] and meals[0].balance_after_tiyn is None
    assert meals[0].amount_tiyn == 0


def test_the_changed_vectors_are_the_expected_ones() -> None:
    assert {p.stem for p in BEFORE.glob("*.hex")} == {
        "event_batch",
        "event_batch.meal_served",
        "event_batch.signed",
        "sync_delta",
        "sync_snapshot",
    }
    assert open_envelope(_read(BEFORE / "event_batch.hex")).type_name == "event_batch"
