"""The PIN on an OSDP reader's keypad, through the daemon's real path: a libosdp reader on a
pty (secure channel on), the OSDP driver, ``run_terminal`` handing the card and the keypad
entry to the staff page's sign-in instead of deciding a tap; then the teacher's pass opens the
same turnstile through its OSDP output."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from edge.config import TerminalConfig
from edge.core.model import Tap
from edge.daemon import Actuation, run_terminal
from edge.pipeline import Pipeline
from edge.staff.auth import StaffAuth
from edge.staff.capture import ReaderInput
from hardware.config import OsdpBuses, OsdpOutputGateConfig, OsdpReaderConfig
from protocol.messages import (
    CardBind,
    CardBinding,
    EntryEvent,
    ManualPassEvent,
    OwnerKind,
    TerminalKind,
)
from simulators.osdp_pd import PtyBus
from tests.support.staff_school import KEY, TEACHER_PIN, open_school
from tests.support.wait import wait_until_async

SCBK = bytes.fromhex("7c3a5e1f9b2d4c6a8e0f1a2b3c4d5e6f")
TEACHER_W26 = "W26:040:07001"


@pytest.mark.timeout(120)
async def test_card_and_keypad_pin_at_the_gate_sign_in_then_the_gate_opens(
    tmp_path: Path,
) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    await store.apply_local(
        [
            CardBind(
                card=CardBinding(credential=TEACHER_W26, owner_kind=OwnerKind.STAFF, owner_id="t1")
            )
        ]
    )
    with PtyBus() as bus:
        pd = bus.attach(1, SCBK, passage_delay=0.05)
        term = TerminalConfig(
            id="gate-1",
            kind=TerminalKind.TURNSTILE,
            direction="in",  # type: ignore[arg-type]
            reader=OsdpReaderConfig(
                type="osdp", reader_id="gate-1", port=bus.port, address=1, scbk=SCBK.hex()
            ),
            gate=OsdpOutputGateConfig(type="osdp_output"),
            passage_timeout=2.0,
        )
        buses = OsdpBuses()
        buses.add(term.reader)  # type: ignore[arg-type]
        readers = ReaderInput()
        gates: dict[str, Actuation] = {}
        auth = StaffAuth(store, readers, KEY, ["gate-1"], lifetime_s=60)
        try:
            async with Pipeline(store) as pipeline, asyncio.TaskGroup() as tg:
                task = tg.create_task(
                    run_terminal(term, pipeline, store, buses=buses, readers=readers, gates=gates)
                )
                await wait_until_async(lambda: pd.secure_channel_active and "gate-1" in gates, 20)
                sign_in = asyncio.create_task(
                    auth.sign_in("gate-1", "", address="127.0.0.1", agent="test")
                )
                await wait_until_async(lambda: readers.claimed("gate-1"), 5)
                pd.present_card(26, 40, 7001)  # the teacher's own card at the gate's reader ...
                await asyncio.sleep(0.3)
                pd.press_keys("9*" + TEACHER_PIN + "#")  # ... and her PIN on its keypad
                result = await asyncio.wait_for(sign_in, 15)
                assert result.user is not None and result.user.staff_id == "t1", result.refusal
                # the card was the page's, not a tap: nothing journaled for it
                assert not [e for e in await store.journal_rows() if isinstance(e, EntryEvent)]
                outcome = await gates["gate-1"].tap(
                    Tap(
                        at=dt.datetime.now(dt.UTC),
                        terminal="gate-1",
                        kind=TerminalKind.TURNSTILE,
                        manual_student="s2",
                        signed_in_staff=result.user.staff_id,
                    )
                )
                assert outcome is not None and outcome.decision.granted
                assert any("output_no" in c for c in pd.commands)  # the turnstile released
                task.cancel()
        finally:
            journal = await store.journal_rows()
            await store.close()
    (ev,) = [e for e in journal if isinstance(e, ManualPassEvent)]
    assert (ev.student_id, ev.authorised_by) == ("s2", "t1")
