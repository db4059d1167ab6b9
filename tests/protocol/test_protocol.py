"""The wire protocol: round trips, refusal of bad bytes, signatures, topics, policy validation."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol import topics
from protocol.codec import (
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    canonical,
    decode,
    encode,
    loads_plain,
    open_envelope,
)
from protocol.errors import ProtocolError
from protocol.messages import (
    ALL_MESSAGES,
    AlarmCode,
    AlarmEvent,
    AntiPassback,
    CardBind,
    CardBinding,
    CardBlock,
    CardChangedEvent,
    CardIssuedEvent,
    CardRecord,
    CardRecordBlock,
    CardRecordSet,
    CardRecordUnbind,
    CardRefAssign,
    CardRefsAssign,
    CardsBlockedEvent,
    CardUnbind,
    CategoriesSet,
    CategoryMembership,
    ConsentKind,
    ConsentRecord,
    ConsentSet,
    DeniedEvent,
    DeviceStatus,
    Direction,
    EntryEvent,
    EventAck,
    EventBatch,
    ExitEvent,
    FaceTemplatesDeletedEvent,
    LendingActEvent,
    LibraryVisitEvent,
    ManualPassEvent,
    MealKind,
    MealPeriodDoc,
    MealServedEvent,
    MenuItem,
    MenuSet,
    Message,
    NotPassedEvent,
    OwnerKind,
    PolicyDoc,
    PolicySet,
    Reason,
    SeqRange,
    ShiftDoc,
    StaffRecord,
    StaffRemove,
    StaffUpsert,
    StudentRecord,
    StudentRemove,
    StudentUpsert,
    SyncAck,
    SyncDelta,
    SyncSnapshot,
    TerminalKind,
)
from protocol.signing import (
    load_private_key,
    load_public_key,
    open_signed_batch,
    private_key_pem,
    public_key_raw,
    sign_batch,
)
from tests.protocol import wire_samples as ws

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = ws.signing_key()
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))

# ------------------------------------------------------------------------- valid strategies

ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,16}", fullmatch=True)
seqs = st.integers(1, 2**62)
millis = st.integers(0, 2**53)
texts = st.text(max_size=40)
local_dates = st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)).map(dt.date.isoformat)
credentials = st.from_regex(r"[A-Z0-9]{1,8}:[A-Z0-9:]{1,16}", fullmatch=True)
clock_minutes = st.integers(0, 24 * 60 - 1)


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def windows(draw: st.DrawFn) -> tuple[str, str]:
    a = draw(st.integers(0, 24 * 60 - 2))
    b = draw(st.integers(a + 1, 24 * 60 - 1))
    return hhmm(a), hhmm(b)


def event_fields(cls: type[Message]) -> dict[str, st.SearchStrategy[Any]]:
    person = {"student_id": st.none() | ids, "staff_id": st.none() | ids}
    table: dict[type[Message], dict[str, st.SearchStrategy[Any]]] = {
        EntryEvent: {**person, "passback_violation": st.booleans()},
        ExitEvent: {**person, "passback_violation": st.booleans()},
        NotPassedEvent: {**person, "granted_seq": seqs},
        DeniedEvent: {
            "terminal_kind": st.sampled_from(TerminalKind),
            "direction": st.none() | st.sampled_from(Direction),
            "reason": st.sampled_from(Reason),
            "student_id": st.none() | ids,
        },
        MealServedEvent: {
            "student_id": ids,
            "period": ids,
            "local_date": local_dates,
            "meal": st.sampled_from(MealKind),
            "amount_tiyn": st.integers(0, 2**40),
        },
        LibraryVisitEvent: {"student_id": ids},
        ManualPassEvent: {
            "student_id": ids,
            "authorised_by": ids,
            "direction": st.sampled_from(Direction),
        },
        CardsBlockedEvent: {
            "student_id": ids,
            "authorised_by": ids,
            "reason": st.sampled_from(["lost", "damaged"]),
            "cards": st.integers(0, 100),
        },
        AlarmEvent: {"code": st.sampled_from(AlarmCode), "active": st.booleans(), "detail": texts},
        FaceTemplatesDeletedEvent: {
            "student_id": ids,
            "templates": st.integers(0, 2**31),
            "reason": st.sampled_from(["consent_withdrawn", "student_removed"]),
        },
        CardIssuedEvent: {
            "card_ref": ids,
            "student_id": ids,
            "staff_id": st.none(),
            "replaces_ref": st.none() | ids,
        },
        CardChangedEvent: {
            "card_ref": ids,
            "change": st.sampled_from(["blocked", "unbound"]),
            "reason": st.none() | st.sampled_from(["lost", "damaged"]),
            **person,
        },
        LendingActEvent: {
            "act": st.sampled_from(["lend", "return", "lost", "damaged"]),
            "inventory_no": st.from_regex(r"[A-Za-z0-9/ -]{1,20}", fullmatch=True),
            "student_id": ids,
            "staff_id": ids,
        },
    }
    return table[cls]


@st.composite
def events_with_seq(draw: st.DrawFn, seq: int) -> Message:
    cls = draw(st.sampled_from(ws.EVENT_CLASSES))
    return draw(st.builds(cls, seq=st.just(seq), at_ms=millis, terminal=ids, **event_fields(cls)))


@st.composite
def event_batches(draw: st.DrawFn) -> EventBatch:
    gaps = draw(st.lists(st.integers(1, 1000), min_size=1, max_size=6))
    seq, evs = 0, list[Any]()
    for g in gaps:
        seq += g
        evs.append(draw(events_with_seq(seq)))
    return EventBatch(school=draw(ids), device=draw(ids), sent_at_ms=draw(millis), events=evs)


@st.composite
def seq_ranges(draw: st.DrawFn) -> SeqRange:
    first = draw(st.integers(1, 2**40))
    return SeqRange(first=first, last=draw(st.integers(first, 2**40 + 10)))


@st.composite
def categories(draw: st.DrawFn) -> CategoryMembership:
    a = draw(st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)))
    b = a + dt.timedelta(days=draw(st.integers(0, 400)))
    return CategoryMembership(
        code=draw(ids), valid_from=a.isoformat(), valid_to=b.isoformat(), document=draw(texts)
    )


consents = st.builds(
    ConsentRecord,
    kind=st.sampled_from(ConsentKind),
    granted=st.booleans(),
    given_by=texts,
    at_ms=millis,
    document=texts,
)
students = st.builds(
    StudentRecord,
    id=ids,
    grade=st.integers(0, 12),
    class_name=st.text(min_size=1, max_size=16),
    shift=st.integers(1, 3),
    display_name=texts,
    consents=st.lists(consents, max_size=3),
    categories=st.lists(categories(), max_size=3),
)
staff_records = st.builds(
    StaffRecord,
    id=ids,
    roles=st.lists(ids, max_size=3),
    classes=st.lists(st.text(min_size=1, max_size=16), max_size=3),
    pin_hash=texts,
    display_name=texts,
)
cards = st.builds(
    CardBinding,
    credential=credentials,
    owner_kind=st.sampled_from(OwnerKind),
    owner_id=ids,
    blocked_reason=st.none() | texts,
)
menu_items = st.builds(
    MenuItem, id=ids, name=texts, price_tiyn=st.integers(0, 10**9), allergens=st.lists(ids)
)


@st.composite
def policies(draw: st.DrawFn) -> PolicyDoc:
    numbers = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3, unique=True))
    shifts = []
    for n in numbers:
        a, b = draw(windows())
        shifts.append(
            ShiftDoc(number=n, entry_from=a, entry_to=b, starts_at=draw(st.none() | st.just(a)))
        )
    # Non-overlapping meal periods: consecutive slices of the day, each serving any shifts.
    cuts = sorted(draw(st.lists(clock_minutes, max_size=6, unique=True)))
    periods = [
        MealPeriodDoc(
            name=f"p{i}",
            shifts=draw(st.lists(st.sampled_from(numbers), min_size=1, unique=True)),
            from_=hhmm(a),
            to=hhmm(b),
        )
        for i, (a, b) in enumerate(itertools.pairwise(cuts))
    ]
    return PolicyDoc(
        timezone=draw(st.sampled_from(["Asia/Almaty", "Asia/Aqtobe", "UTC", "Asia/Oral"])),
        free_meal_grades=draw(st.lists(st.integers(0, 12), max_size=4)),
        free_meal_categories=draw(st.lists(ids, max_size=3)),
        anti_passback=draw(st.sampled_from(AntiPassback)),
        manual_pass_roles=draw(st.lists(ids, max_size=3)),
        shifts=shifts,
        meal_periods=periods,
        valid_from=draw(st.none() | local_dates),
    )


changes = st.one_of(
    st.builds(StudentUpsert, student=students),
    st.builds(StudentRemove, student_id=ids),
    st.builds(StaffUpsert, staff=staff_records),
    st.builds(StaffRemove, staff_id=ids),
    st.builds(CardBind, card=cards),
    st.builds(CardBlock, credential=credentials, reason=texts),
    st.builds(CardUnbind, credential=credentials),
    st.builds(
        CardRefsAssign,
        refs=st.lists(st.builds(CardRefAssign, credential=credentials, card_ref=ids), max_size=2),
    ),
    st.builds(
        CardRecordSet,
        record=st.builds(
            CardRecord,
            card_ref=ids,
            owner_kind=st.sampled_from(OwnerKind),
            owner_id=ids,
            status=st.sampled_from(["active", "blocked"]),
            blocked_reason=st.none() | texts,
            fee_tiyn=st.integers(0, 10**9),
            issued_at_ms=millis,
            replaces_ref=st.none() | ids,
        ),
    ),
    st.builds(CardRecordBlock, card_ref=ids, reason=texts),
    st.builds(CardRecordUnbind, card_ref=ids),
    st.builds(ConsentSet, student_id=ids, consent=consents),
    st.builds(CategoriesSet, student_id=ids, categories=st.lists(categories(), max_size=2)),
    st.builds(PolicySet, policy=policies()),
    st.builds(MenuSet, local_date=local_dates, items=st.lists(menu_items, max_size=2)),
)


@st.composite
def sync_deltas(draw: st.DrawFn) -> SyncDelta:
    base = draw(st.integers(0, 2**40))
    return SyncDelta(
        school=draw(ids),
        version=draw(st.integers(base + 1, 2**40 + 1)),
        base_version=base,
        changes=draw(st.lists(changes, max_size=4)),
    )


messages: st.SearchStrategy[Message] = st.one_of(
    event_batches(),
    st.builds(
        EventAck,
        school=ids,
        device=ids,
        committed_through=st.integers(0, 2**62),
        missing=st.lists(seq_ranges(), max_size=3),
    ),
    st.builds(
        DeviceStatus,
        school=ids,
        device=ids,
        online=st.booleans(),
        at_ms=millis,
        backlog=st.integers(0, 2**31),
        oldest_unsent_ms=st.none() | millis,
        outbox_capacity=st.integers(0, 2**31),
        readers_offline=st.lists(ids, max_size=3),
    ),
    sync_deltas(),
    st.builds(
        SyncSnapshot,
        school=ids,
        version=st.integers(0, 2**40),
        policy=st.none() | policies(),
        students=st.lists(students, max_size=2),
        staff=st.lists(staff_records, max_size=2),
        cards=st.lists(cards, max_size=2),
        menu=st.lists(menu_items, max_size=2),
    ),
    st.builds(
        SyncAck,
        school=ids,
        device=ids,
        applied_version=st.integers(0, 2**40),
        need_snapshot=st.booleans(),
    ),
)

# ----------------------------------------------------------------------------- round trips


@FAST
@given(messages)
def test_round_trip_is_exact_and_canonical(msg: Message) -> None:
    data = encode(msg)
    back = decode(data, type(msg))
    assert back == msg
    assert encode(back) == data  # one byte string per message


@FAST
@given(event_batches())
def test_signed_round_trip(batch: EventBatch) -> None:
    assert open_signed_batch(sign_batch(batch, KEY), KEY.public_key()) == batch


def test_every_message_type_round_trips_by_name() -> None:
    for name, msg in ws.sample_messages().items():
        env = open_envelope(encode(msg))
        assert (env.version, env.type_name, env.signature) == (SCHEMA_VERSION, name, None)
        assert env.message(ALL_MESSAGES[name]) == msg


# ------------------------------------------------------------------------------- bad bytes


def envelope(**fields: Any) -> bytes:
    base: dict[str, Any] = {"v": 1, "t": "sync_ack", "b": canonical(_ack_body())}
    base.update(fields)
    return cbor2.dumps({k: v for k, v in base.items() if v is not _DROP})


_DROP = object()


def _ack_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "school": "S1",
        "device": "edge-1",
        "applied_version": 3,
        "need_snapshot": False,
    }
    body.update(fields)
    return body


def refused(buf: bytes, expected: type[Message] = SyncAck) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(buf, expected)
    return info.value


def test_well_formed_helper_envelope_decodes() -> None:
    assert decode(envelope(), SyncAck) == SyncAck(school="S1", device="edge-1", applied_version=3)


def _decode_any(buf: bytes) -> None:
    """Decode ``buf`` as every type: only a valid message or a ProtocolError may come out."""
    for cls in ALL_MESSAGES.values():
        try:
            decode(buf, cls)
        except ProtocolError as err:
            assert str(err)  # never an empty message
        # Anything but ProtocolError propagates and fails the test.


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_protocol_error(buf: bytes) -> None:
    _decode_any(buf)


cbor_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.sampled_from(list(ws.EVENT_KINDS) + list(ALL_MESSAGES) + ["v", "t", "b", "s"])
)
cbor_values = st.recursive(
    cbor_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12) | st.integers(), inner, max_size=5)
        | st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 3, 24, 258, 1234, 55799]), inner)
    ),
    max_leaves=12,
)


@FAST
@given(st.sampled_from(sorted(ALL_MESSAGES)), cbor_values)
def test_random_cbor_bodies_only_raise_protocol_error(type_name: str, body: Any) -> None:
    _decode_any(cbor2.dumps({"v": 1, "t": type_name, "b": cbor2.dumps(body)}))
    _decode_any(cbor2.dumps(body))


@FAST
@given(st.sampled_from(sorted(ws.golden_samples())), st.data())
def test_mutated_valid_bytes_only_raise_protocol_error(name: str, data: st.DataObject) -> None:
    good = bytearray(encode(ws.golden_samples()[name]))
    i = data.draw(st.integers(0, len(good) - 1))
    good[i] = data.draw(st.integers(0, 255))
    _decode_any(bytes(good))


@pytest.mark.parametrize("name", sorted(ws.golden_samples()))
def test_every_truncation_is_refused(name: str) -> None:
    msg = ws.golden_samples()[name]
    data = encode(msg)
    step = max(1, len(data) // 64)
    for cut in [*range(0, len(data), step), len(data) - 1]:
        with pytest.raises(ProtocolError):
            decode(data[:cut], type(msg))


def test_truncated_body_inside_a_whole_envelope_is_refused() -> None:
    body = canonical(_ack_body())
    err = refused(envelope(b=body[:-3]))
    assert "not valid CBOR" in str(err) and err.context == "sync_ack"


def test_trailing_bytes_after_the_envelope_are_refused() -> None:
    refused(envelope() + b"\x00")


@pytest.mark.parametrize(
    ("version", "needle"),
    [
        (2, "unsupported schema version 2"),
        (0, "unsupported schema version 0"),
        (-1, "unsupported schema version -1"),
        ("1", "non-integer schema version"),
        (True, "non-integer schema version"),
        (1.0, "non-integer schema version"),
        (None, "non-integer schema version"),
        (_DROP, "non-integer schema version"),
    ],
)
def test_wrong_schema_version(version: Any, needle: str) -> None:
    err = refused(envelope(v=version))
    assert needle in str(err)
    assert err.context == "envelope"


@pytest.mark.parametrize("type_name", ["nope", "", "EVENT_BATCH", 1, None, _DROP, b"sync_ack"])
def test_unknown_message_type(type_name: Any) -> None:
    err = refused(envelope(t=type_name))
    assert "unknown message type" in str(err)


@pytest.mark.parametrize(("sent", "expected"), [("event_ack", SyncAck), ("sync_ack", EventBatch)])
def test_body_of_the_wrong_type(sent: str, expected: type[Message]) -> None:
    msg = ws.sample_messages()[sent]
    err = refused(encode(msg), expected)
    assert f"got {sent!r}" in str(err)
    assert err.context == "envelope"


def test_body_labelled_as_another_type_is_refused_field_by_field() -> None:
    ack_body = open_envelope(encode(ws.sample_messages()["event_ack"])).body
    err = refused(envelope(b=ack_body))
    assert err.context == "sync_ack" and "Extra inputs are not permitted" in str(err)


@pytest.mark.parametrize(
    "body", ["text", 7, None, ["list"], {"b": 1}], ids=["str", "int", "null", "list", "map"]
)
def test_body_must_be_a_byte_string(body: Any) -> None:
    assert "must be a byte string" in str(refused(envelope(b=body)))


@pytest.mark.parametrize("sig", ["abc", 5, ["x"]])
def test_signature_must_be_a_byte_string(sig: Any) -> None:
    assert "signature 's' must be a byte string" in str(refused(envelope(s=sig)))


@pytest.mark.parametrize("value", [[1, "sync_ack"], "envelope", 1, None, b"\xa0", True], ids=repr)
def test_envelope_that_is_not_a_map(value: Any) -> None:
    err = refused(cbor2.dumps(value))
    assert "not a map" in str(err)


def test_unknown_envelope_field() -> None:
    err = refused(envelope(x=1))
    assert "unknown envelope field(s) ['x']" in str(err)


def test_non_string_envelope_keys_are_refused() -> None:
    buf = cbor2.dumps({1: 1, "": 2, "v": 1, "t": "sync_ack", "b": canonical(_ack_body())})
    assert "unknown envelope field(s) ['', 1]" in str(refused(buf))


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"applied_version": "3"}, "applied_version: Input should be a valid integer"),
        ({"applied_version": 3.0}, "applied_version: Input should be a valid integer"),
        ({"applied_version": True}, "applied_version: Input should be a valid integer"),
        ({"applied_version": -1}, "applied_version: Input should be greater than or equal to 0"),
        ({"applied_version": 2**64}, "CBOR tags are not allowed"),  # a bignum is tag 2
        ({"need_snapshot": 1}, "need_snapshot: Input should be a valid boolean"),
        ({"school": 5}, "school: Input should be a valid string"),
        ({"school": b"S1"}, "school: Input should be a valid string"),
        ({"school": "S 1"}, "school: String should match pattern"),
        ({"school": ""}, "school: String should have at least 1 character"),
        ({"school": "x" * 65}, "school: String should have at most 64 characters"),
        ({"device": None}, "device: Input should be a valid string"),
    ],
)
def test_body_field_errors_name_the_field(fields: dict[str, Any], needle: str) -> None:
    err = refused(envelope(b=canonical(_ack_body(**fields))))
    assert needle in str(err)
    assert err.context == "sync_ack"


def test_missing_body_field_is_named() -> None:
    body = _ack_body()
    del body["device"]
    assert "device: Field required" in str(refused(envelope(b=canonical(body))))


def test_nested_errors_name_the_path_and_are_capped() -> None:
    batch = ws.sample_batch().model_dump(mode="json")
    for ev in batch["events"]:
        ev["at_ms"] = "soon"
    err = refused(_envelope_of("event_batch", batch), EventBatch)
    assert "events.0.entry.at_ms: Input should be a valid integer" in str(err)
    assert "(+3 more)" in str(err)  # 8 errors, 5 shown


def _envelope_of(type_name: str, body: Any) -> bytes:
    return cbor2.dumps({"v": 1, "t": type_name, "b": canonical(body)})


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda ev: ev.update(kind="teleport"), "does not match any of the expected tags"),
        (lambda ev: ev.pop("kind"), "Unable to extract tag using discriminator"),
        (lambda ev: ev.update(seq=0), "events.0.entry.seq"),
        (lambda ev: ev.update(at_ms=2**53 + 1), "events.0.entry.at_ms"),
        (lambda ev: ev.update(card="EM:0004567891"), "card: Extra inputs are not permitted"),
        (lambda ev: ev.update(face_template=b"\x00" * 16), "face_template: Extra inputs"),
    ],
)
def test_bad_events_are_refused(mutate: Any, needle: str) -> None:
    body = ws.sample_batch().model_dump(mode="json")
    mutate(body["events"][0])
    assert needle in str(refused(_envelope_of("event_batch", body), EventBatch))


def test_batch_seq_must_increase() -> None:
    body = ws.sample_batch().model_dump(mode="json")
    body["events"][1]["seq"] = body["events"][0]["seq"]
    err = refused(_envelope_of("event_batch", body), EventBatch)
    assert "seq must be strictly increasing" in str(err)


def test_empty_and_too_long_batches_are_refused() -> None:
    body = ws.sample_batch().model_dump(mode="json")
    body["events"] = []
    assert "events" in str(refused(_envelope_of("event_batch", body), EventBatch))
    template = ws.sample_batch().model_dump(mode="json")["events"][0]
    body["events"] = [{**template, "seq": i + 1} for i in range(10_001)]
    assert "at most 10000 items" in str(refused(_envelope_of("event_batch", body), EventBatch))


def test_oversized_message_is_refused_before_parsing() -> None:
    big = b"\x00" * (MAX_MESSAGE_BYTES + 1)
    err = refused(big)
    assert f"exceeds the {MAX_MESSAGE_BYTES} limit" in str(err)
    body = canonical(_ack_body())
    err = refused(envelope(b=body + b"\x00" * (MAX_MESSAGE_BYTES + 1 - len(body))))
    assert "limit" in str(err)


def test_deeply_nested_cbor_is_refused() -> None:
    deep = b"\x81" * 100_000 + b"\x00"
    refused(deep)
    refused(envelope(b=deep))


def test_indefinite_length_and_huge_declared_lengths_are_refused_cleanly() -> None:
    refused(b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff")  # byte string claiming 2**64-1 bytes
    refused(b"\x9b\x00\x00\x00\x01\x00\x00\x00\x00")  # array claiming 2**32 items
    refused(b"\xbf\x61v\x01")  # unterminated indefinite map


def test_duplicate_map_keys_are_refused() -> None:
    """Two readers could take different values from a map with a repeated key (e.g. a body
    signed by one reading and acted on by another), so the decoder refuses them."""
    # {"v": 1, "t": "sync_ack", "b": <body>, "b": <other body>} spelled out by hand.
    good = canonical(_ack_body())
    other = canonical(_ack_body(applied_version=99))
    buf = (
        b"\xa4"
        + cbor2.dumps("v")
        + cbor2.dumps(1)
        + cbor2.dumps("t")
        + cbor2.dumps("sync_ack")
        + cbor2.dumps("b")
        + cbor2.dumps(good)
        + cbor2.dumps("b")
        + cbor2.dumps(other)
    )
    refused(buf)
    body = b"\xa5" + good[1:] + cbor2.dumps("applied_version") + cbor2.dumps(99)
    refused(envelope(b=body))


# Every semantic tag cbor2 decodes by itself (found by probing cbor2 6.3), and two unknown ones.
TAGS = [0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004]
TAGS += [43000, 55799, 1234, 2**32]
TAG_VALUES: dict[int, Any] = {
    0: "2025-10-06T08:00:00Z",
    1: 1_759_719_300,
    2: b"\x03",
    3: b"\x03",
    4: [-1, 3],
    5: [-1, 3],
    30: [1, 3],
    35: "a+",
    36: "Content-Type: text/plain\n\nhi",
    37: b"\x00" * 16,
    100: 20_000,
    1004: "2025-10-06",
    258: [1, 2],
    260: b"\x7f\x00\x00\x01",
    261: {24: b"\x7f"},
}


@pytest.mark.parametrize("tag", TAGS)
def test_cbor_tags_are_refused_everywhere(tag: int) -> None:
    value = TAG_VALUES.get(tag, 3)
    tagged = cbor2.CBORTag(tag, value)
    err = refused(cbor2.dumps(tagged))  # the envelope itself
    assert "tag" in str(err)
    err = refused(envelope(v=tagged))  # an envelope field
    assert "tag" in str(err)
    err = refused(envelope(b=cbor2.dumps(_ack_body(applied_version=tagged))))  # a body field
    assert "tag" in str(err) and err.context == "sync_ack"


def test_self_described_cbor_is_refused() -> None:
    # 55799 is the harmless "this is CBOR" magic, but our format never writes it.
    refused(b"\xd9\xd9\xf7" + envelope())


def test_loads_plain_refuses_tags_directly() -> None:
    with pytest.raises(ProtocolError, match="tag"):
        loads_plain(cbor2.dumps(cbor2.CBORTag(2, b"\x01")), context="x")


# -------------------------------------------------------------------------------- signatures


def test_unsigned_batch_is_refused() -> None:
    with pytest.raises(ProtocolError, match="not signed") as info:
        open_signed_batch(encode(ws.sample_batch()), KEY.public_key())
    assert info.value.context == "signature"


def test_forged_signature_is_refused() -> None:
    env = open_envelope(encode(ws.sample_batch()))
    forged = cbor2.dumps({"v": 1, "t": "event_batch", "b": env.body, "s": b"\x01" * 64})
    with pytest.raises(ProtocolError, match="does not verify"):
        open_signed_batch(forged, KEY.public_key())


@pytest.mark.parametrize("sig", [b"", b"\x00", b"\x00" * 63, b"\x00" * 65])
def test_signature_of_the_wrong_length_is_refused(sig: bytes) -> None:
    env = open_envelope(encode(ws.sample_batch()))
    buf = cbor2.dumps({"v": 1, "t": "event_batch", "b": env.body, "s": sig})
    with pytest.raises(ProtocolError, match="does not verify"):
        open_signed_batch(buf, KEY.public_key())


def test_signature_by_another_key_is_refused() -> None:
    with pytest.raises(ProtocolError, match="does not verify"):
        open_signed_batch(sign_batch(ws.sample_batch(), OTHER_KEY), KEY.public_key())


def test_tampered_body_is_refused_before_parsing() -> None:
    signed = open_envelope(sign_batch(ws.sample_batch(), KEY))
    assert signed.signature is not None
    changed = ws.sample_batch().model_copy(update={"device": "edge-2"})
    tampered = encode(changed, signature=signed.signature)
    with pytest.raises(ProtocolError, match="does not verify"):
        open_signed_batch(tampered, KEY.public_key())
    # Garbage under a valid-looking signature is not even parsed: the signature check comes first.
    garbage = cbor2.dumps({"v": 1, "t": "event_batch", "b": b"\xff\xff", "s": signed.signature})
    with pytest.raises(ProtocolError) as info:
        open_signed_batch(garbage, KEY.public_key())
    assert info.value.context == "signature"


@FAST
@given(st.data())
def test_any_flipped_bit_of_a_signed_batch_is_refused(data: st.DataObject) -> None:
    good = bytearray(sign_batch(ws.sample_batch(), KEY))
    i = data.draw(st.integers(0, len(good) - 1))
    good[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(ProtocolError):
        open_signed_batch(bytes(good), KEY.public_key())


def test_signature_covers_the_type_name() -> None:
    """A valid signature over one message type is useless under another type name."""
    signed = open_envelope(sign_batch(ws.sample_batch(), KEY))
    relabelled = cbor2.dumps({"v": 1, "t": "event_ack", "b": signed.body, "s": signed.signature})
    env = open_envelope(relabelled)
    from protocol.signing import verify

    with pytest.raises(ProtocolError, match="does not verify"):
        verify(env, KEY.public_key())


def test_keys_round_trip_and_bad_keys_are_refused() -> None:
    assert public_key_raw(load_private_key(private_key_pem(KEY))) == public_key_raw(KEY)
    assert public_key_raw(load_public_key(public_key_raw(KEY))) == public_key_raw(KEY)
    with pytest.raises(ProtocolError, match="32 bytes, got 31"):
        load_public_key(b"\x00" * 31)
    from cryptography.hazmat.primitives import serialization

    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ProtocolError, match="not an Ed25519 key"):
        load_private_key(ec_pem)


# ------------------------------------------------------------------------------------ topics

topic_ids = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)


def test_topic_names() -> None:
    assert topics.events("S1", "d1") == "qaqpa/v1/school/S1/device/d1/events"
    assert topics.ack("S1", "d1") == "qaqpa/v1/school/S1/device/d1/ack"
    assert topics.sync("S1", "d1") == "qaqpa/v1/school/S1/device/d1/sync"
    assert topics.sync_ack("S1", "d1") == "qaqpa/v1/school/S1/device/d1/sync/ack"
    assert topics.status("S1", "d1") == "qaqpa/v1/school/S1/device/d1/status"
    assert topics.events("S1", "d1", prefix="t/abc") == "t/abc/school/S1/device/d1/events"
    assert topics.shared_events_subscription() == "$share/ingest/qaqpa/v1/school/+/device/+/events"
    assert topics.shared_events_subscription("g", "t/x") == "$share/g/t/x/school/+/device/+/events"


@FAST
@given(topic_ids, topic_ids, st.sampled_from(["events", "ack", "sync", "sync_ack", "status"]))
def test_topics_parse_back(school: str, device: str, fn: str) -> None:
    topic = getattr(topics, fn)(school, device, prefix="test/p1")
    got_school, got_device, rest = topics.parse_device_topic(topic, prefix="test/p1")
    assert (got_school, got_device) == (school, device)
    assert rest == {"sync_ack": "sync/ack"}.get(fn, fn)


BAD_IDS = ["", "x" * 65, "a/b", "+", "#", "a b", "a:b", "ш", "S1\n", "$SYS"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_topics_refuse_bad_ids(bad: str) -> None:
    for fn in (topics.events, topics.ack, topics.sync, topics.sync_ack, topics.status):
        with pytest.raises(ProtocolError, match="school id"):
            fn(bad, "d1")
        with pytest.raises(ProtocolError, match="device id"):
            fn("S1", bad)


@pytest.mark.parametrize(
    ("topic", "needle"),
    [
        ("other/v1/school/S1/device/d1/events", "is not under qaqpa/v1/school/"),
        ("qaqpa/v2/school/S1/device/d1/events", "is not under"),
        ("qaqpa/v1/school/S1/device/d1", "lacks school/device levels"),
        ("qaqpa/v1/school/S1/dev/d1/events", "lacks school/device levels"),
        ("qaqpa/v1/school/S1", "lacks school/device levels"),
        ("qaqpa/v1/school/+/device/d1/events", "school id '+'"),
        ("qaqpa/v1/school/S1/device/#/events", "device id '#'"),
        ("qaqpa/v1/school//device/d1/events", "school id ''"),
    ],
)
def test_parse_refuses_bad_topics(topic: str, needle: str) -> None:
    with pytest.raises(ProtocolError, match="topic") as info:
        topics.parse_device_topic(topic)
    assert needle in str(info.value)


# ---------------------------------------------------------------------------- policy checks


def policy_dict(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "timezone": "Asia/Almaty",
        "shift": [
            {"number": 1, "entry_from": "07:00", "entry_to": "13:00"},
            {"number": 2, "entry_from": "12:30", "entry_to": "18:30"},
        ],
        "meal_period": [
            {"name": "breakfast", "shifts": [1], "from": "09:30", "to": "10:30"},
            {"name": "lunch", "shifts": [1, 2], "from": "12:00", "to": "13:30"},
        ],
    }
    base.update(over)
    return base


def policy_error(**over: Any) -> str:
    with pytest.raises(ValidationError) as info:
        PolicyDoc.model_validate(policy_dict(**over))
    # Through the wire the same problem is a ProtocolError naming the message type.
    body = {**ws.sample_messages()["sync_snapshot"].model_dump(mode="json", by_alias=True)}
    body["policy"] = policy_dict(**over)
    with pytest.raises(ProtocolError) as wire:
        decode(_envelope_of("sync_snapshot", body), SyncSnapshot)
    assert wire.value.context == "sync_snapshot"
    return str(info.value)


def test_valid_policy_and_adjacent_periods() -> None:
    doc = PolicyDoc.model_validate(policy_dict())
    assert [p.name for p in doc.meal_periods] == ["breakfast", "lunch"]
    periods = [
        {"name": "a", "shifts": [1], "from": "09:30", "to": "10:30"},
        {"name": "b", "shifts": [1], "from": "10:30", "to": "11:00"},  # touching is fine
        {"name": "c", "shifts": [2], "from": "09:00", "to": "12:00"},  # other shift overlaps
    ]
    PolicyDoc.model_validate(policy_dict(meal_period=periods))


def test_overlapping_meal_periods_for_a_shared_shift() -> None:
    periods = [
        {"name": "breakfast", "shifts": [1, 2], "from": "09:30", "to": "10:30"},
        {"name": "snack", "shifts": [2], "from": "10:29", "to": "11:00"},
    ]
    msg = policy_error(meal_period=periods)
    assert "meal periods breakfast (09:30-10:30) and snack (10:29-11:00) overlap" in msg
    assert "shift(s) [2]" in msg


def test_unknown_timezone() -> None:
    assert "unknown timezone 'Asia/Nowhere'" in policy_error(timezone="Asia/Nowhere")
    assert "unknown timezone" in policy_error(timezone="../etc/passwd")


@pytest.mark.parametrize(("start", "end"), [("13:00", "07:00"), ("08:00", "08:00")])
def test_shift_window_inverted(start: str, end: str) -> None:
    shifts = [{"number": 1, "entry_from": start, "entry_to": end}]
    msg = policy_error(shift=shifts, meal_period=[])
    assert f"shift 1: entry_to {end} is not after entry_from" in msg


def test_meal_period_inverted() -> None:
    periods = [{"name": "lunch", "shifts": [1], "from": "13:00", "to": "12:00"}]
    assert "meal period lunch: 'to' 12:00 is not after 'from'" in policy_error(meal_period=periods)


def test_meal_period_for_unknown_shift() -> None:
    periods = [{"name": "dinner", "shifts": [1, 3], "from": "17:00", "to": "18:00"}]
    assert "meal period dinner serves unknown shift(s) [3]" in policy_error(meal_period=periods)


def test_repeated_shift_numbers_and_period_names() -> None:
    shifts = [
        {"number": 1, "entry_from": "07:00", "entry_to": "13:00"},
        {"number": 1, "entry_from": "12:30", "entry_to": "18:30"},
    ]
    assert "shift numbers repeat: [1, 1]" in policy_error(shift=shifts, meal_period=[])
    periods = [
        {"name": "lunch", "shifts": [1], "from": "09:00", "to": "10:00"},
        {"name": "lunch", "shifts": [2], "from": "13:00", "to": "14:00"},
    ]
    assert "meal period names repeat" in policy_error(meal_period=periods)


def test_policy_needs_a_shift() -> None:
    assert "shift" in policy_error(shift=[], meal_period=[])


@pytest.mark.parametrize("bad", ["7:00", "24:00", "07:60", "0700", "07:00:00", "٠٧:٠٠", "0٧:00"])
def test_clock_times_are_strict(bad: str) -> None:
    shifts = [{"number": 1, "entry_from": bad, "entry_to": "23:00"}]
    assert "entry_from" in policy_error(shift=shifts, meal_period=[])


@FAST
@given(policies())
def test_generated_policies_build_a_core_policy(doc: PolicyDoc) -> None:
    from edge.core.model import Policy

    Policy.from_doc(doc)  # every valid doc can be turned into the core's policy


@pytest.mark.parametrize("bad", ["2025-02-30", "2025-13-01", "2025-00-10", "٢٠٢٥-10-06"])
def test_local_dates_must_be_real_dates(bad: str) -> None:
    body = ws.sample_batch().model_dump(mode="json")
    body["events"][4]["local_date"] = bad  # the meal_served event
    err = refused(_envelope_of("event_batch", body), EventBatch)
    assert "local_date" in str(err)
    with pytest.raises(ValidationError):
        MenuSet(local_date=bad, items=[])


def test_category_dates_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="valid_to 2025-08-31 is before valid_from"):
        CategoryMembership(
            code="orphan", valid_from="2025-09-01", valid_to="2025-08-31", document=""
        )


def test_delta_must_move_forward_and_ranges_be_ordered() -> None:
    with pytest.raises(ValidationError, match="greater than its base_version"):
        SyncDelta(school="S1", version=3, base_version=3, changes=[])
    with pytest.raises(ValidationError, match="range last < first"):
        SeqRange(first=5, last=4)


def test_messages_are_immutable() -> None:
    msg = ws.sample_messages()["sync_ack"]
    with pytest.raises(ValidationError):
        msg.school = "S2"  # type: ignore[attr-defined]
