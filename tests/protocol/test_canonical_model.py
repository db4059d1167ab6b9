"""``canonical_model`` is a shortcut for ``canonical(msg.model_dump(mode="json"))``: the journal
stores every tap's event with it, and the signed batches and golden vectors rest on those bytes.
It must give the same bytes for every message, on its fast path or not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.codec import canonical, canonical_model
from protocol.messages import (
    AlarmCode,
    AlarmEvent,
    DeniedEvent,
    Direction,
    EntryEvent,
    ExitEvent,
    LibraryVisitEvent,
    MealKind,
    MealServedEvent,
    Message,
    Reason,
    TerminalKind,
    VoucherSpend,
)
from tests.protocol import wire_samples as ws


def slow(msg: Message) -> bytes:
    return canonical(msg.model_dump(mode="json"))


def variants(msg: Message) -> list[Message]:
    """The message, its clock-in-doubt twin, and each optional field set back to its default."""
    out = [msg]
    if "clock_in_doubt" in type(msg).model_fields:
        out.append(msg.model_copy(update={"clock_in_doubt": True}))
    for name, field in type(msg).model_fields.items():
        default = field.get_default(call_default_factory=True)
        if not field.is_required() and getattr(msg, name) != default:
            out.append(msg.model_copy(update={name: default}))
    return out


@pytest.mark.parametrize("kind", sorted(ws.sample_events()))
def test_every_event_kind_encodes_as_the_slow_path_does(kind: str) -> None:
    for msg in variants(ws.sample_events()[kind]):
        assert canonical_model(msg) == slow(msg), msg


@pytest.mark.parametrize("name", sorted(ws.sample_messages()))
def test_every_message_type_encodes_as_the_slow_path_does(name: str) -> None:
    msg = ws.sample_messages()[name]
    assert canonical_model(msg) == slow(msg)


def test_a_meal_with_vouchers_and_a_qr_token_takes_the_slow_path_and_the_same_bytes() -> None:
    meal = MealServedEvent(
        seq=9,
        at_ms=1,
        terminal="c1",
        student_id="s1",
        period="lunch",
        local_date="2026-12-07",
        meal=MealKind.PAID,
        amount_tiyn=50_000,
        items=["m1"],
        balance_after_tiyn=0,
        vouchers=[VoucherSpend(voucher_id="v1", amount_tiyn=20_000)],
        qr_token="q1",
    )
    assert canonical_model(meal) == slow(meal)
    assert b"vouchers" in canonical_model(meal)
    free = meal.model_copy(update={"vouchers": [], "qr_token": None, "items": []})
    assert canonical_model(free) == slow(free)
    assert b"vouchers" not in canonical_model(free) and b"qr_token" not in canonical_model(free)


def test_the_taps_events_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the shortcut: a tap's event is not dumped through pydantic at all."""
    events: list[Message] = [
        EntryEvent(seq=1, at_ms=5, terminal="t1", student_id="s1"),
        ExitEvent(seq=2, at_ms=5, terminal="t1", staff_id="x", clock_in_doubt=True),
        DeniedEvent(
            seq=3,
            at_ms=5,
            terminal="t1",
            terminal_kind=TerminalKind.TURNSTILE,
            direction=Direction.IN,
            reason=Reason.UNKNOWN_CARD,
        ),
        MealServedEvent(
            seq=4,
            at_ms=5,
            terminal="c1",
            student_id="s1",
            period="lunch",
            local_date="2026-12-07",
            meal=MealKind.FREE,
        ),
        LibraryVisitEvent(seq=5, at_ms=5, terminal="l1", student_id="s1"),
    ]
    expected = [slow(e) for e in events]

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("model_dump called on the fast path")

    for e in events:
        monkeypatch.setattr(type(e), "model_dump", refuse)
    assert [canonical_model(e) for e in events] == expected


ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(1, 2**62),
    at_ms=st.integers(0, 2**53),
    terminal=ids,
    student=st.none() | ids,
    staff=st.none() | ids,
    passback=st.booleans(),
    doubt=st.sampled_from([None, True]),
    detail=st.text(max_size=500),
    code=st.sampled_from(list(AlarmCode)),
    amount=st.integers(0, 10**9),
    balance=st.none() | st.integers(-(10**9), 10**9),
    items=st.lists(ids, max_size=5),
)
def test_random_events_encode_as_the_slow_path_does(
    seq: int,
    at_ms: int,
    terminal: str,
    student: str | None,
    staff: str | None,
    passback: bool,
    doubt: bool | None,
    detail: str,
    code: AlarmCode,
    amount: int,
    balance: int | None,
    items: list[str],
) -> None:
    common: dict[str, Any] = {
        "seq": seq,
        "at_ms": at_ms,
        "terminal": terminal,
        "clock_in_doubt": doubt,
    }
    msgs: list[Message] = [
        EntryEvent(**common, student_id=student, staff_id=staff, passback_violation=passback),
        AlarmEvent(**common, code=code, active=passback, detail=detail),
        MealServedEvent(
            **common,
            student_id=student or "s",
            period="lunch",
            local_date="2026-02-28",
            meal=MealKind.PAID,
            amount_tiyn=amount,
            items=items,
            balance_after_tiyn=balance,
        ),
    ]
    for msg in msgs:
        assert canonical_model(msg) == slow(msg)


def test_a_class_with_a_serializer_it_does_not_know_takes_the_slow_path() -> None:
    from pydantic import field_serializer

    class Odd(Message):
        a: str
        b: int

        @field_serializer("a")
        def _upper(self, v: str) -> str:
            return v.upper()

    odd = Odd(a="x", b=1)
    assert canonical_model(odd) == slow(odd) == canonical({"a": "X", "b": 1})
    assert codec._PLANS[Odd] is codec._SLOW
