"""A small school for the staff page's tests: a class teacher of 7A with a card and a PIN, a
teacher of another class, a cook (no section), and students of 7A (one with the biometric
consent, one without the data consent), served by a StaffServer with a real pipeline and a file
gate at the turnstile."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from edge.config import TerminalConfig
from edge.core.reasons import Lang
from edge.daemon import Actuation
from edge.pipeline import Pipeline, utc_now
from edge.staff.auth import StaffAuth
from edge.staff.capture import ReaderInput
from edge.staff.i18n import Strings
from edge.staff.pins import PinRule, verifier
from edge.staff.registry import SECTIONS
from edge.staff.sections import StaffContext
from edge.staff.server import StaffServer
from edge.store import EdgeStore
from hardware.log_gate import LogGate
from protocol.messages import (
    CardBinding,
    ConsentKind,
    ConsentRecord,
    OwnerKind,
    PolicyDoc,
    StaffRecord,
    StudentRecord,
    SyncSnapshot,
)
from simulators.edge_school import midday_zone
from tests.support.wait import wait_until_async

SCHOOL = "S1"
KEY = bytes(range(32))
TEACHER_CARD = "UID:07EAC4E2"
OTHER_TEACHER_CARD = "UID:07EAC4E3"
COOK_CARD = "UID:0C00C001"
TEACHER_PIN = "4821"
CHILD_CARD = "UID:04A1B2C3"
ADMIN_CARD = "UID:0AD0AD01"  # the school admin: the cards section
ADMIN_PIN = "2468"


def _consents(*kinds: ConsentKind) -> list[ConsentRecord]:
    return [
        ConsentRecord(kind=k, granted=True, given_by="parent", at_ms=0, document="doc")
        for k in kinds
    ]


def snapshot() -> SyncSnapshot:
    policy = PolicyDoc.model_validate(
        {
            "timezone": midday_zone(),
            "manual_pass_roles": ["class_teacher"],
            "shift": [{"number": 1, "entry_from": "00:00", "entry_to": "23:59"}],
        },
        strict=False,
    )
    students = [
        StudentRecord(
            id="s1",
            grade=7,
            class_name="7A",
            shift=1,
            display_name="Айгерім Сейітова",
            consents=_consents(ConsentKind.DATA, ConsentKind.BIOMETRIC),
        ),
        StudentRecord(
            id="s2",
            grade=7,
            class_name="7A",
            shift=1,
            display_name="Нұрлан Әбенов",
            consents=_consents(ConsentKind.DATA),
        ),
        StudentRecord(id="s3", grade=7, class_name="7A", shift=1, display_name="Без согласия"),
        StudentRecord(
            id="s9",
            grade=8,
            class_name="8B",
            shift=1,
            display_name="Басқа сынып",
            consents=_consents(ConsentKind.DATA),
        ),
    ]
    staff = [
        StaffRecord(
            id="t1", roles=["class_teacher"], classes=["7A"], display_name="Гүлнар Ахметова"
        ),
        StaffRecord(id="t2", roles=["class_teacher"], classes=["8B"], display_name="Ерлан Бекұлы"),
        StaffRecord(id="cook", roles=["canteen"], display_name="Асхат"),
        StaffRecord(id="adm", roles=["admin"], display_name="Сәуле Admin"),
    ]
    cards = [
        CardBinding(credential=CHILD_CARD, owner_kind=OwnerKind.STUDENT, owner_id="s1"),
        CardBinding(credential=TEACHER_CARD, owner_kind=OwnerKind.STAFF, owner_id="t1"),
        CardBinding(credential=OTHER_TEACHER_CARD, owner_kind=OwnerKind.STAFF, owner_id="t2"),
        CardBinding(credential=COOK_CARD, owner_kind=OwnerKind.STAFF, owner_id="cook"),
        CardBinding(credential=ADMIN_CARD, owner_kind=OwnerKind.STAFF, owner_id="adm"),
    ]
    return SyncSnapshot(
        school=SCHOOL, version=1, policy=policy, students=students, staff=staff, cards=cards
    )


async def open_school(path: Path) -> EdgeStore:
    store = await EdgeStore.open(path, school=SCHOOL, device="edge-1")
    await store.apply_snapshot(snapshot())
    for sid, pin in (("t1", TEACHER_PIN), ("t2", "5555"), ("cook", "7777"), ("adm", ADMIN_PIN)):
        await store.set_staff_pin(sid, verifier(KEY, sid, pin), 1, 0)
    return store


GATE = TerminalConfig.model_validate(
    {
        "id": "gate-1",
        "kind": "turnstile",
        "direction": "in",
        "reader": {"type": "line", "path": "/dev/null"},
    }
)


@dataclass
class StaffPage:
    store: EdgeStore
    server: StaffServer
    readers: ReaderInput
    actuations: Path
    taken: bool = False  # the last card offered went to the page (else: a tap)

    @property
    def url(self) -> str:
        return self.server.url

    async def sign_in(
        self, client: httpx.AsyncClient, card: str, pin: str, *, keypad: str | None = None
    ) -> httpx.Response:
        """The sign-in form, and the card (and keypad keys) at gate-1's reader once the page
        waits there."""
        page = await client.get("/")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        import asyncio

        post = asyncio.create_task(
            client.post("/login", data={"csrf": csrf, "reader": "gate-1", "pin": pin})
        )
        await wait_until_async(lambda: self.readers.claimed("gate-1"), 10, "the page waits")
        self.taken = self.readers.offer_card("gate-1", card)
        if keypad is not None:
            self.readers.offer_keys("gate-1", keypad)
        return await post


@contextlib.asynccontextmanager
async def staff_page(tmp: Path, *, rule: PinRule | None = None) -> AsyncIterator[StaffPage]:
    store = await open_school(tmp / "edge.sqlite")
    actuations = tmp / "actuations.log"
    try:
        async with Pipeline(store) as pipeline, LogGate("gate-1", actuations) as gate:
            act = Actuation(GATE, pipeline, utc_now, log_gate=gate)
            readers = ReaderInput()
            auth = StaffAuth(
                store, readers, KEY, ["gate-1"], lifetime_s=600, rule=rule, card_wait_s=3
            )
            ctx = StaffContext(
                store=store,
                pipeline=pipeline,
                readers=readers,
                gates={"gate-1": act},
                terminals=[GATE],
                clock=lambda: dt.datetime.now(dt.UTC),
                language=Lang.EN,
                auth=auth,
                strings=Strings(),
                sections=SECTIONS,
            )
            async with StaffServer(ctx, "127.0.0.1", 0) as server:
                yield StaffPage(store, server, readers, actuations)
    finally:
        await store.close()
