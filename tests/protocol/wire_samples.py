"""Fixed sample wire messages, one per message type, event kind and downlink change op.

The golden vectors in ``protocol/golden`` are the canonical encodings of exactly these samples, so
never edit a sample without regenerating the goldens on purpose (see ``test_protocol_golden``).
"""

from __future__ import annotations

import typing

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.messages import (
    ALL_MESSAGES,
    AlarmCode,
    AlarmEvent,
    AntiPassback,
    BalanceCredit,
    BalanceDebit,
    BalanceTotal,
    BalanceTotalsSet,
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
    CategoryPrice,
    CentreKeyAnnounce,
    Change,
    ConsentKind,
    ConsentRecord,
    ConsentSet,
    DeniedEvent,
    DeviceStatus,
    Direction,
    EdgeBoxKey,
    EdgeFeatures,
    EntryEvent,
    Event,
    EventAck,
    EventBatch,
    ExitEvent,
    FaceTemplatesDeletedEvent,
    LendingActEvent,
    LendingApproval,
    LendingItem,
    LendingSet,
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
    ParentLimitsSet,
    PolicyDoc,
    PolicySet,
    Reason,
    SealedStaffPin,
    SeqRange,
    ShiftDoc,
    StaffPinReceipt,
    StaffPins,
    StaffPinsAck,
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
    VoucherGrant,
    VoucherIssuerKey,
    VoucherSpend,
)

T0 = 1_759_719_300_000  # 2025-10-06T08:55:00+05:00 in ms
SCHOOL = "S1"
DEVICE = "edge-1"

# A fixed, public test key: never use it for anything but these vectors.
SIGNING_SEED = bytes(range(32))


def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SIGNING_SEED)


# The centre's keys of the vectors (fixed and public too): the current one signs, the next one
# is announced; and the fixed issue time of the signed vectors.
CENTRE_SEED = bytes(range(32, 64))
CENTRE_NEXT_SEED = bytes(range(64, 96))
CENTRE_ISSUED_MS = T0 + 301_000


def centre_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(CENTRE_SEED)


def centre_next_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(CENTRE_NEXT_SEED)


def _union_members(annotated: object) -> tuple[type[Message], ...]:
    union = typing.get_args(annotated)[0]
    return typing.get_args(union)


EVENT_CLASSES = _union_members(Event)
CHANGE_CLASSES = _union_members(Change)
EVENT_KINDS = {cls.model_fields["kind"].default: cls for cls in EVENT_CLASSES}
CHANGE_OPS = {cls.model_fields["op"].default: cls for cls in CHANGE_CLASSES}


def sample_events() -> dict[str, Message]:
    return {
        "entry": EntryEvent(seq=1, at_ms=T0, terminal="gate-1-in", student_id="s1"),
        "exit": ExitEvent(
            seq=2, at_ms=T0 + 1_000, terminal="gate-1-out", staff_id="t1", passback_violation=True
        ),
        "not_passed": NotPassedEvent(
            seq=3, at_ms=T0 + 6_000, terminal="gate-1-in", granted_seq=1, student_id="s1"
        ),
        "denied": DeniedEvent(
            seq=4,
            at_ms=T0 + 7_000,
            terminal="gate-1-in",
            terminal_kind=TerminalKind.TURNSTILE,
            direction=Direction.IN,
            reason=Reason.PASSBACK,
            student_id="s2",
        ),
        "meal_served": MealServedEvent(
            seq=5,
            at_ms=T0 + 60_000,
            terminal="canteen-1",
            student_id="s1",
            period="breakfast",
            local_date="2025-10-06",
            meal=MealKind.PAID,
            amount_tiyn=40_000,
            items=["m1", "m2"],
            balance_after_tiyn=-2_500,
        ),
        "library_visit": LibraryVisitEvent(
            seq=6, at_ms=T0 + 120_000, terminal="lib-1", student_id="s3"
        ),
        "manual_pass": ManualPassEvent(
            seq=7,
            at_ms=T0 + 180_000,
            terminal="gate-1-in",
            student_id="s2",
            authorised_by="t1",
            direction=Direction.IN,
        ),
        "alarm": AlarmEvent(
            seq=8,
            at_ms=T0 + 240_000,
            terminal="canteen-1",
            code=AlarmCode.READER_OFFLINE,
            active=True,
            detail="Оқу құрылғысы жауап бермейді",  # non-ASCII text on purpose
        ),
        "face_templates_deleted": FaceTemplatesDeletedEvent(
            seq=9,
            at_ms=T0 + 270_000,
            terminal="faces",
            student_id="s1",
            templates=2,
            reason="consent_withdrawn",
        ),
        "card_issued": CardIssuedEvent(
            seq=10,
            at_ms=T0 + 280_000,
            terminal="desk",
            card_ref="k-3f9a0c1d2e4b5a69",
            student_id="s2",
            replaces_ref="c-17",
        ),
        "card_changed": CardChangedEvent(
            seq=11,
            at_ms=T0 + 281_000,
            terminal="desk",
            card_ref="c-17",
            change="blocked",
            reason="lost",
            student_id="s2",
        ),
        "cards_blocked": CardsBlockedEvent(
            seq=10,
            at_ms=T0 + 280_000,
            terminal="staff-page",
            student_id="s2",
            authorised_by="t1",
            reason="lost",
            cards=1,
        ),
        "lending": LendingActEvent(
            seq=14,
            at_ms=T0 + 290_000,
            terminal="library-desk",
            act="lend",
            inventory_no="INV-2025/0042",
            student_id="s3",
            staff_id="t1",
        ),
    }


# Event kinds added after the combined batch vector was frozen: they get their own
# ``event_batch.<kind>`` vector, and ``event_batch`` (and its signed twin) keep their bytes.
NOT_IN_SAMPLE_BATCH = frozenset(
    {"face_templates_deleted", "cards_blocked", "card_issued", "card_changed", "lending"}
)
# The same for change ops added after the combined delta vector was frozen.
NOT_IN_SAMPLE_DELTA = frozenset(
    {
        "card_refs",
        "card_record",
        "card_record_block",
        "card_record_unbind",
        "balance_debit",
        "voucher_grant",
        "voucher_issuer_key",
        "lending_set",
        "balance_totals",
    }
)


def sample_policy() -> PolicyDoc:
    return PolicyDoc(
        timezone="Asia/Almaty",
        free_meal_grades=[1, 2, 3, 4],
        free_meal_categories=["orphan", "large_family"],
        anti_passback=AntiPassback.HARD,
        manual_pass_roles=["class_teacher", "deputy_director_on_duty"],
        shifts=[
            ShiftDoc(number=1, entry_from="07:00", entry_to="13:00", starts_at="08:00"),
            ShiftDoc(number=2, entry_from="12:30", entry_to="18:30"),
        ],
        meal_periods=[
            MealPeriodDoc(name="breakfast", shifts=[1], from_="09:30", to="10:30"),
            MealPeriodDoc(name="lunch", shifts=[1, 2], from_="12:00", to="13:30"),
        ],
        valid_from="2025-09-01",
    )


def sample_student() -> StudentRecord:
    return StudentRecord(
        id="s2",
        grade=7,
        class_name="7B",
        shift=1,
        display_name="Айгерім С.",
        consents=[
            ConsentRecord(
                kind=ConsentKind.DATA,
                granted=True,
                given_by="Сәрсенова Г.",
                at_ms=T0 - 86_400_000,
                document="consent-2025-017",
            )
        ],
        categories=[
            CategoryMembership(
                code="large_family",
                valid_from="2025-09-01",
                valid_to="2026-05-31",
                document="board-12",
            )
        ],
    )


def sample_staff() -> StaffRecord:
    return StaffRecord(
        id="t1",
        roles=["class_teacher"],
        classes=["3A"],
        pin_hash="pbkdf2-sha256$10000$00112233$" + "ab" * 32,
        display_name="Ivanova A.",
    )


def sample_card() -> CardBinding:
    return CardBinding(credential="EM:0004567891", owner_kind=OwnerKind.STUDENT, owner_id="s1")


def sample_card_record() -> CardRecord:
    return CardRecord(
        card_ref="k-3f9a0c1d2e4b5a69",
        owner_kind=OwnerKind.STUDENT,
        owner_id="s2",
        status="active",
        fee_tiyn=10_000,
        issued_at_ms=T0 + 280_000,
        replaces_ref="c-17",
    )


def sample_menu() -> list[MenuItem]:
    return [
        MenuItem(id="m1", name="Ботқа", price_tiyn=35_000, allergens=["milk"]),
        MenuItem(id="m2", name="Tea", price_tiyn=5_000),
    ]


def sample_changes() -> dict[str, Message]:
    return {
        "student_upsert": StudentUpsert(student=sample_student()),
        "student_remove": StudentRemove(student_id="s9"),
        "staff_upsert": StaffUpsert(staff=sample_staff()),
        "staff_remove": StaffRemove(staff_id="t9"),
        "card_bind": CardBind(card=sample_card()),
        "card_block": CardBlock(credential="EM:0004567892", reason="lost"),
        "card_unbind": CardUnbind(credential="EM:0004567893"),
        "consent_set": ConsentSet(
            student_id="s4",
            consent=ConsentRecord(
                kind=ConsentKind.BIOMETRIC,
                granted=False,
                given_by="parent",
                at_ms=T0,
                document="withdrawal-3",
            ),
        ),
        "categories_set": CategoriesSet(
            student_id="s2",
            categories=[
                CategoryMembership(
                    code="orphan", valid_from="2025-09-01", valid_to="2025-12-31", document="d-1"
                )
            ],
        ),
        "policy_set": PolicySet(policy=sample_policy()),
        "menu_set": MenuSet(local_date="2025-10-06", items=sample_menu()),
        "balance_credit": BalanceCredit(
            ledger_id="L-2025-000123", student_id="s5", amount_tiyn=500_000
        ),
        "parent_limits_set": ParentLimitsSet(
            student_id="s5", allergen_blocks=["milk", "nuts"], daily_cap_tiyn=150_000
        ),
        "card_refs": CardRefsAssign(
            refs=[CardRefAssign(credential="EM:0004567891", card_ref="c-17")]
        ),
        "card_record": CardRecordSet(record=sample_card_record()),
        "card_record_block": CardRecordBlock(card_ref="c-17", reason="lost"),
        "card_record_unbind": CardRecordUnbind(card_ref="c-18"),
        "balance_debit": BalanceDebit(
            ledger_id="L-2025-000124", student_id="s5", amount_tiyn=7_000
        ),
        "voucher_grant": VoucherGrant(
            voucher_id="V-77",
            issuer="social-wallet",
            student_id="s5",
            amount_tiyn=1_200_000,
            valid_from="2025-10-01",
            valid_to="2025-10-31",
            meal_periods=["lunch"],
        ),
        "voucher_issuer_key": VoucherIssuerKey(
            issuer="social-wallet", public_key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        ),
        "lending_set": sample_lending(),
        "balance_totals": BalanceTotalsSet(totals=sample_totals()),
    }


def sample_totals() -> list[BalanceTotal]:
    return [
        BalanceTotal(student_id="s1", net_tiyn=1_250_000),
        BalanceTotal(student_id="s5", net_tiyn=-7_000),  # a debit beyond what was credited
    ]


def sample_lending() -> LendingSet:
    return LendingSet(
        items=[
            LendingItem(
                inventory_no="INV-2025/0042",
                kind="device",
                title="Ноутбук",
                campaign="c1",
                holder="s3",
            ),
            LendingItem(inventory_no="T-7-001", kind="textbook", title="Алгебра 7"),
        ],
        approvals=[LendingApproval(campaign="c1", campaign_name="2025", student_id="s3", rank=1)],
    )


def sample_batch() -> EventBatch:
    return EventBatch(
        school=SCHOOL,
        device=DEVICE,
        sent_at_ms=T0 + 300_000,
        events=[e for k, e in sample_events().items() if k not in NOT_IN_SAMPLE_BATCH],  # type: ignore[misc]
    )


def sample_messages() -> dict[str, Message]:
    """One sample per entry of ``ALL_MESSAGES``, keyed by the wire type name."""
    return {
        "event_batch": sample_batch(),
        "event_ack": EventAck(
            school=SCHOOL,
            device=DEVICE,
            committed_through=41,
            missing=[SeqRange(first=43, last=45), SeqRange(first=50, last=50)],
        ),
        "device_status": DeviceStatus(
            school=SCHOOL,
            device=DEVICE,
            online=True,
            at_ms=T0,
            backlog=12,
            oldest_unsent_ms=T0 - 5_000,
            outbox_capacity=100_000,
            readers_offline=["canteen-2"],
        ),
        "sync_delta": SyncDelta(
            school=SCHOOL,
            version=8,
            base_version=7,
            changes=[c for k, c in sample_changes().items() if k not in NOT_IN_SAMPLE_DELTA],  # type: ignore[misc]
        ),
        "sync_snapshot": SyncSnapshot(
            school=SCHOOL,
            version=7,
            policy=sample_policy(),
            students=[sample_student()],
            staff=[sample_staff()],
            cards=[
                sample_card(),
                CardBinding(
                    credential="EM:0000000001",
                    owner_kind=OwnerKind.STAFF,
                    owner_id="t1",
                    blocked_reason="lost",
                ),
            ],
            menu=sample_menu(),
            balance_credits=[
                BalanceCredit(ledger_id="L-2025-000123", student_id="s1", amount_tiyn=500_000)
            ],
            parent_limits=[ParentLimitsSet(student_id="s1", allergen_blocks=["nuts"])],
        ),
        "sync_ack": SyncAck(school=SCHOOL, device=DEVICE, applied_version=8, need_snapshot=True),
        "centre_key": centre_key_announcement(),
        # fixed bytes, not real keys or ciphertexts: the vectors fix the wire format only
        "edge_box_key": EdgeBoxKey(school=SCHOOL, device=DEVICE, public_key="A" * 43 + "="),
        "edge_features": EdgeFeatures(school=SCHOOL, device=DEVICE, features=["balance_totals"]),
        "staff_pins": StaffPins(
            school=SCHOOL,
            device=DEVICE,
            pins=[
                SealedStaffPin(
                    staff_id="t1", version=2, enc="B" * 43 + "=", ct="Y2lwaGVydGV4dC1vZi1hLXBpbg=="
                )
            ],
        ),
        "staff_pins_ack": StaffPinsAck(
            school=SCHOOL,
            device=DEVICE,
            receipts=[StaffPinReceipt(staff_id="t1", version=2, opened=True)],
        ),
    }


def centre_key_announcement() -> CentreKeyAnnounce:
    from protocol.centre import key_id, public_key_b64

    nxt = centre_next_key()
    return CentreKeyAnnounce(
        school=SCHOOL, device=DEVICE, key_id=key_id(nxt), public_key=public_key_b64(nxt)
    )


# Messages the centre signs for (SCHOOL, DEVICE): ``<type>.centre_signed`` vectors.
CENTRE_SIGNED = ("event_ack", "sync_delta", "sync_snapshot", "centre_key", "staff_pins")


def golden_samples() -> dict[str, Message]:
    """Every golden vector, by file stem: each message type, each event kind, each change op."""
    out = dict(sample_messages())
    for kind, event in sample_events().items():
        out[f"event_batch.{kind}"] = EventBatch(
            school=SCHOOL,
            device=DEVICE,
            sent_at_ms=T0 + 300_000,
            events=[event],  # type: ignore[list-item]
        )
    for op, change in sample_changes().items():
        out[f"sync_delta.{op}"] = SyncDelta(
            school=SCHOOL,
            version=2,
            base_version=1,
            changes=[change],  # type: ignore[list-item]
        )
    # events journaled while the edge's clock was in doubt (README, "Wrong clock")
    out["event_batch.clock_in_doubt"] = EventBatch(
        school=SCHOOL,
        device=DEVICE,
        sent_at_ms=T0 + 300_000,
        events=[
            AlarmEvent(
                seq=20,
                at_ms=T0,
                terminal=DEVICE,
                code=AlarmCode.CLOCK_IN_DOUBT,
                active=True,
                detail="behind_journal: wall clock 2025-01-01T00:00:00+00:00, -31536000 s",
                clock_in_doubt=True,
            ),
            EntryEvent(
                seq=21, at_ms=T0 + 1000, terminal="gate-1-in", student_id="s1", clock_in_doubt=True
            ),
            MealServedEvent(
                seq=22,
                at_ms=T0 + 2000,
                terminal="canteen-1",
                student_id="s1",
                period="lunch",
                local_date="2025-10-06",
                meal=MealKind.FREE,
                clock_in_doubt=True,
            ),
            AlarmEvent(
                seq=23,
                at_ms=T0 + 3000,
                terminal="gate-1-in",
                code=AlarmCode.FIRE_ALARM,
                active=True,
                detail="evacuation: 2 of 2 turnstiles held free",
                clock_in_doubt=True,
            ),
            AlarmEvent(
                seq=24,
                at_ms=T0 + 4000,
                terminal=DEVICE,
                code=AlarmCode.STORE_FULL,
                active=True,
                detail="3 taps refused, not recorded",
            ),
        ],
    )
    # a snapshot of a school whose cards moved: records, no numbers
    out["sync_snapshot.card_records"] = SyncSnapshot(
        school=SCHOOL,
        version=9,
        policy=sample_policy(),
        students=[sample_student()],
        staff=[sample_staff()],
        cards=[],
        card_refs=[],
        card_records=[
            sample_card_record(),
            CardRecord(
                card_ref="c-5",
                owner_kind=OwnerKind.STAFF,
                owner_id="t1",
                status="blocked",
                blocked_reason="damaged",
                issued_at_ms=T0,
            ),
        ],
    )
    # a snapshot with the library desk's items and approved lists
    out["sync_snapshot.lending"] = SyncSnapshot(
        school=SCHOOL,
        version=10,
        policy=sample_policy(),
        students=[sample_student()],
        staff=[sample_staff()],
        cards=[],
        lending=sample_lending(),
    )
    # the money as one net per student (to an edge that announced balance_totals)
    out["sync_snapshot.balance_totals"] = SyncSnapshot(
        school=SCHOOL,
        version=11,
        policy=sample_policy(),
        students=[sample_student()],
        staff=[sample_staff()],
        cards=[],
        balance_totals=sample_totals(),
        parent_limits=[ParentLimitsSet(student_id="s1", allergen_blocks=["nuts"])],
    )
    # a staff member's card, issued and unbound at the desk
    out["event_batch.card_staff"] = EventBatch(
        school=SCHOOL,
        device=DEVICE,
        sent_at_ms=T0 + 300_000,
        events=[
            CardIssuedEvent(seq=12, at_ms=T0, terminal="desk", card_ref="k-01", staff_id="t1"),
            CardChangedEvent(
                seq=13, at_ms=T0, terminal="desk", card_ref="c-5", change="unbound", staff_id="t1"
            ),
        ],
    )
    # optional fields added later: their own vectors (the ones above keep their bytes)
    voucher_meal = sample_events()["meal_served"].model_copy(
        update={
            "vouchers": [VoucherSpend(voucher_id="V-77", amount_tiyn=30_000)],
            "qr_token": "V-77",
        }
    )
    out["event_batch.meal_served.voucher"] = EventBatch(
        school=SCHOOL, device=DEVICE, sent_at_ms=T0 + 300_000, events=[voucher_meal]
    )
    prices = sample_policy().model_copy(
        update={
            "category_prices": [
                CategoryPrice(
                    category="large_family",
                    percent=50,
                    valid_from="2025-09-01",
                    valid_to="2026-05-31",
                )
            ]
        }
    )
    out["sync_delta.policy_set.prices"] = SyncDelta(
        school=SCHOOL, version=2, base_version=1, changes=[PolicySet(policy=prices)]
    )
    assert set(ALL_MESSAGES) <= set(out)
    return out
