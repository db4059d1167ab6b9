"""A small school for the canteen tests: a policy with lunch all day, free and paying students,
today's menu, balances credited and parents' limits set through the real downlink ops."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

from edge.store import EdgeStore
from protocol.messages import (
    BalanceCredit,
    CardBinding,
    ConsentKind,
    ConsentRecord,
    MenuItem,
    MenuSet,
    OwnerKind,
    ParentLimitsSet,
    PolicyDoc,
    StudentRecord,
    SyncDelta,
    SyncSnapshot,
)
from simulators.edge_school import midday_zone

ZONE_NAME = midday_zone()  # lunch "all day" never straddles midnight during a test
ZONE = zoneinfo.ZoneInfo(ZONE_NAME)
SCHOOL = "S1"
MENU = [
    MenuItem(id="soup", name="Сорпа", price_tiyn=30_000),
    MenuItem(id="porridge", name="Сүт ботқасы", price_tiyn=35_000, allergens=["milk"]),
    MenuItem(id="bun", name="Бәліш", price_tiyn=15_000, allergens=["gluten", "nuts"]),
    MenuItem(id="tea", name="Шай", price_tiyn=5_000),
]
PRICES = {m.id: m.price_tiyn for m in MENU}


def today() -> dt.date:
    return dt.datetime.now(ZONE).date()


def policy() -> PolicyDoc:
    return PolicyDoc.model_validate(
        {
            "timezone": ZONE_NAME,
            "free_meal_grades": [1, 2, 3, 4],
            "shift": [{"number": 1, "entry_from": "00:00", "entry_to": "23:59"}],
            "meal_period": [{"name": "lunch", "shifts": [1], "from": "00:00", "to": "23:59"}],
        },
        strict=False,
    )


def consent() -> list[ConsentRecord]:
    return [
        ConsentRecord(kind=ConsentKind.DATA, granted=True, given_by="parent", at_ms=0, document="d")
    ]


def student(sid: str, grade: int, name: str, *, biometric: bool = False) -> StudentRecord:
    consents = consent()
    if biometric:
        consents.append(
            ConsentRecord(
                kind=ConsentKind.BIOMETRIC, granted=True, given_by="parent", at_ms=0, document="b"
            )
        )
    return StudentRecord(
        id=sid,
        grade=grade,
        class_name=f"{grade}A",
        shift=1,
        display_name=name,
        consents=consents,
    )


def snapshot(extra_students: int = 0) -> SyncSnapshot:
    students = [
        student("s-free", 2, "Айгерім Сейітова", biometric=True),
        student("s-pay", 8, "Нұрлан Әбенов"),
        student("s-poor", 9, "Данияр Қасымов"),
        student("s-allergy", 7, "Мадина Оспанова"),
        *[student(f"p{i}", 5 + i % 7, f"Оқушы {i}") for i in range(extra_students)],
    ]
    cards = [
        CardBinding(credential="UID:04A1B2C3", owner_kind=OwnerKind.STUDENT, owner_id="s-free"),
        CardBinding(credential="UID:04D4E5F6", owner_kind=OwnerKind.STUDENT, owner_id="s-pay"),
        CardBinding(credential="UID:0411AA22", owner_kind=OwnerKind.STUDENT, owner_id="s-poor"),
        CardBinding(credential="UID:0433BB44", owner_kind=OwnerKind.STUDENT, owner_id="s-allergy"),
        CardBinding(
            credential="UID:04DEAD00",
            owner_kind=OwnerKind.STUDENT,
            owner_id="s-pay",
            blocked_reason="lost",
        ),
        *[
            CardBinding(credential=f"EM:{i:010d}", owner_kind=OwnerKind.STUDENT, owner_id=f"p{i}")
            for i in range(extra_students)
        ],
    ]
    return SyncSnapshot(
        school=SCHOOL, version=1, policy=policy(), students=students, staff=[], cards=cards
    )


def money_delta(version: int = 2, credits: dict[str, int] | None = None) -> SyncDelta:
    credits = (
        {"s-pay": 100_000, "s-poor": 3_000, "s-allergy": 100_000} if credits is None else credits
    )
    changes: list[Any] = [MenuSet(local_date=today().isoformat(), items=MENU)]
    changes += [
        BalanceCredit(ledger_id=f"L-{sid}-{version}", student_id=sid, amount_tiyn=amount)
        for sid, amount in credits.items()
    ]
    changes.append(
        ParentLimitsSet(student_id="s-allergy", allergen_blocks=["milk"], daily_cap_tiyn=50_000)
    )
    return SyncDelta(school=SCHOOL, version=version, base_version=version - 1, changes=changes)


async def open_school(path: Path, *, extra_students: int = 0, **credits: int) -> EdgeStore:
    store = await EdgeStore.open(path, school=SCHOOL, device="edge-1")
    await store.apply_snapshot(snapshot(extra_students))
    await store.apply_delta(money_delta(credits=credits or None))
    return store


async def money_invariants(store: EdgeStore) -> dict[str, int]:
    """Counts that must agree after anything: every receipt has its meal event (same seq,
    student, price); the vouchers each sale spent are the event's; what the balance paid (the
    debit row) is the price less those vouchers; no voucher is spent beyond its amount; a QR
    voucher is used by one sale only; each balance is its credits minus server debits plus the
    snapshots' adjustments (the net applied from the downlink) minus its sales' debits, on disk
    and in memory."""
    from protocol.messages import MealServedEvent

    rows = await store.money_rows()
    debits = {r[0]: (r[1], r[2]) for r in rows["debits"]}
    receipts = {r[0]: (r[1], r[7]) for r in rows["receipts"]}
    bought = [
        e
        for e in await store.journal_rows()
        if isinstance(e, MealServedEvent) and e.meal in ("paid", "voucher")
    ]
    events = {e.seq: (e.student_id, e.amount_tiyn) for e in bought}
    assert receipts == events, (receipts, events)
    spends: dict[int, dict[str, int]] = {}
    for seq, vid, _sid, tiyn in rows["voucher_spends"]:
        spends.setdefault(seq, {})[vid] = tiyn
    assert spends == {
        e.seq: {v.voucher_id: v.amount_tiyn for v in e.vouchers} for e in bought if e.vouchers
    }
    balance_paid = {
        seq: (sid, total - sum(spends.get(seq, {}).values()))
        for seq, (sid, total) in receipts.items()
        if total - sum(spends.get(seq, {}).values()) > 0 or seq not in spends
    }
    assert debits == balance_paid, (debits, balance_paid)
    granted = {r[0]: r[3] for r in rows["vouchers"]}
    used: dict[str, int] = {}
    for per_sale in spends.values():
        for vid, tiyn in per_sale.items():
            used[vid] = used.get(vid, 0) + tiyn
    for vid, tiyn in used.items():
        assert tiyn <= granted.get(vid, tiyn), f"voucher {vid} overspent: {tiyn}"
        if vid in granted:
            assert store.state.voucher_spent.get(vid, 0) == tiyn  # memory follows the disk
    tokens = {r[0]: r[3] for r in rows["voucher_tokens"]}
    assert tokens == {e.qr_token: e.seq for e in bought if e.qr_token is not None}
    assert store.state.redeemed_tokens == set(tokens)
    credited: dict[str, int] = {}
    for _lid, sid, amount, _v in rows["balance_credits"]:
        credited[sid] = credited.get(sid, 0) + amount
    for _lid, sid, amount, _after, _v in rows["server_debits"]:
        credited[sid] = credited.get(sid, 0) - amount
    for _id, _v, sid, amount in rows["balance_adjustments"]:  # snapshots' nets: no ledger id
        credited[sid] = credited.get(sid, 0) + amount
    nets = {sid: n for sid, n in rows["downlink_money"]}  # the net applied from the downlink
    assert nets == {sid: n for sid, n in credited.items() if sid in nets or n != 0}, nets
    for sid, amount in debits.values():
        credited[sid] = credited.get(sid, 0) - amount
    stored = {sid: b for sid, b in rows["balances"]}
    assert stored == {sid: b for sid, b in credited.items() if sid in stored}
    assert set(stored) == set(credited)
    assert {s: b for s, b in store.state.balances.items()} == stored  # memory follows the disk
    return {"debits": len(debits), "debited_tiyn": sum(a for _, a in debits.values())}


async def voucher_counts(store: EdgeStore) -> dict[str, int]:
    """What vouchers paid (after ``money_invariants`` checked they agree): tiyn spent per
    voucher id (card vouchers and QR tokens), and how many QR tokens were used."""
    rows = await store.money_rows()
    used: dict[str, int] = {}
    for _seq, vid, _sid, tiyn in rows["voucher_spends"]:
        used[vid] = used.get(vid, 0) + tiyn
    return {**used, "tokens": len(rows["voucher_tokens"])}


# ------------------------------------------------------------------ social-wallet vouchers

ISSUER = "social-wallet"


def issuer_key() -> Any:
    """The test issuer's private key (fixed, so a child process signs with the same one)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def issuer_public_b64() -> str:
    import base64

    from protocol.signing import public_key_raw

    return base64.b64encode(public_key_raw(issuer_key())).decode("ascii")


def voucher_delta(
    version: int = 3, *, amount: int = 70_000, student_id: str = "s-pay", periods: Any = ()
) -> SyncDelta:
    """The issuer's public key and one voucher of ``student_id`` valid this month."""
    from protocol.messages import VoucherGrant, VoucherIssuerKey

    day = today()
    return SyncDelta(
        school=SCHOOL,
        version=version,
        base_version=version - 1,
        changes=[
            VoucherIssuerKey(issuer=ISSUER, public_key=issuer_public_b64()),
            VoucherGrant(
                voucher_id=f"V-{student_id}-{version}",
                issuer=ISSUER,
                student_id=student_id,
                amount_tiyn=amount,
                valid_from=(day - dt.timedelta(days=3)).isoformat(),
                valid_to=(day + dt.timedelta(days=3)).isoformat(),
                meal_periods=list(periods),
            ),
        ],
    )


def qr(token_id: str, student_id: str = "s-pay", amount: int = 20_000, key: Any = None) -> str:
    """The QR text of a voucher token signed by the issuer (or by ``key``: a forger)."""
    from protocol.vouchers import VoucherToken, sign_token

    day = today()
    token = VoucherToken(
        token_id=token_id,
        issuer=ISSUER,
        student_id=student_id,
        amount_tiyn=amount,
        valid_from=day - dt.timedelta(days=1),
        valid_to=day + dt.timedelta(days=1),
    )
    return sign_token(token, key if key is not None else issuer_key())
