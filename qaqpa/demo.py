"""``qaqpa demo``: one simulated school on this machine, through the real daemon path.

Every terminal's reader is a simulated 125 kHz EM-Marine module on a pty, read by the real
serial driver (STX/ETX frames with checksums); every turnstile is released through a simulated
LCUS relay board by the real relay driver; the store and the pipeline are the real ones. A
scenario (``simulators.school``) plays a school day on a fast clock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import logging
import secrets
import sys
import time
import zoneinfo
from pathlib import Path
from typing import Any

from edge.config import TerminalConfig
from edge.core.model import Tap
from edge.daemon import run_terminal
from edge.kiosk.hub import KioskError, KioskHub
from edge.kiosk.server import KioskServer
from edge.pipeline import Pipeline
from edge.replay import load_policy
from edge.roster import Roster, roster_records
from edge.store import EdgeStore
from hardware.config import EmMarineConfig, RelaySerialGateConfig
from protocol.messages import (
    BalanceCredit,
    Change,
    DeniedEvent,
    Direction,
    MealServedEvent,
    MenuItem,
    MenuSet,
    ParentLimitsSet,
    Reason,
    TerminalKind,
)
from server.vouchers import demo as vouchers_demo
from simulators.school import Action, make_roster, school_day
from simulators.serial_sim import EmMarineSim, RelayBoardSim

log = logging.getLogger(__name__)
ZONE = zoneinfo.ZoneInfo("Asia/Almaty")
DAY_START = dt.time(6, 30)
DAY_END = dt.time(18, 40)
TERMINALS: dict[str, tuple[TerminalKind, Direction | None]] = {
    "gate-1-in": (TerminalKind.TURNSTILE, Direction.IN),
    "gate-1-out": (TerminalKind.TURNSTILE, Direction.OUT),
    "gate-2-in": (TerminalKind.TURNSTILE, Direction.IN),
    "gate-2-out": (TerminalKind.TURNSTILE, Direction.OUT),
    "canteen-1": (TerminalKind.CANTEEN, None),
    "canteen-2": (TerminalKind.CANTEEN, None),
    "library-1": (TerminalKind.LIBRARY, None),
}
POLICY = Path(__file__).resolve().parent.parent / "examples" / "policy.toml"
CANTEENS = [t for t, (kind, _) in TERMINALS.items() if kind is TerminalKind.CANTEEN]
KIOSK_PORT = 8080  # when free; any free port otherwise
MENU = [
    MenuItem(id="plov", name="Палау / Плов", price_tiyn=65_000),
    MenuItem(id="sorpa", name="Сорпа / Суп", price_tiyn=35_000),
    MenuItem(id="botqa", name="Сүт ботқасы / Молочная каша", price_tiyn=30_000, allergens=["milk"]),
    MenuItem(id="balish", name="Бәліш / Пирожок", price_tiyn=15_000, allergens=["gluten"]),
    MenuItem(id="shai", name="Шай / Чай", price_tiyn=5_000),
]
FIRST = ["Айгерім", "Нұрлан", "Мадина", "Данияр", "Аружан", "Ерлан", "Дана", "Әлихан", "Жансая"]
LAST = ["Сейітов", "Әбенов", "Қасымов", "Оспанов", "Жұмабаев", "Ахметов", "Серіков"]


def _fresh_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in [*directory.glob("edge.sqlite*"), *directory.glob("server.db*")]:
        stale.unlink()


class SimClock:
    """Maps real time onto a school day played ``speed`` times faster."""

    def __init__(self, day: dt.date, speed: float) -> None:
        self.start = dt.datetime.combine(day, DAY_START, ZONE)
        self.speed = speed
        self.t0 = time.monotonic()

    def __call__(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=(time.monotonic() - self.t0) * self.speed)

    def real_delay(self, local: dt.time) -> float:
        target = dt.datetime.combine(self.start.date(), local, ZONE)
        return (target - self()).total_seconds() / self.speed


async def _play(
    actions: list[Action], clock: SimClock, readers: dict[str, EmMarineSim], pipeline: Pipeline
) -> None:
    for act in actions:
        delay = clock.real_delay(act.at)
        if delay > 0:
            await asyncio.sleep(delay)
        if act.credential is not None:
            readers[act.terminal].present_card(int(act.credential.removeprefix("EM:")))
        else:  # a manual pass keyed in at the turnstile's keypad
            kind, direction = TERMINALS[act.terminal]
            await pipeline.submit(
                Tap(
                    at=clock(),
                    terminal=act.terminal,
                    kind=kind,
                    direction=direction,
                    manual_student=act.manual_student,
                    staff_credential=act.staff_credential,
                    pin=act.pin,
                )
            )


def _named(roster: Roster) -> Roster:
    """Display names for the kiosk (the generated roster has none)."""
    students = [
        s.model_copy(update={"display_name": f"{FIRST[i % len(FIRST)]} {LAST[i % len(LAST)]}"})
        for i, s in enumerate(roster.students)
    ]
    return roster.model_copy(update={"students": students})


def canteen_day(roster: Roster, today: dt.date) -> list[Change]:
    """Today's menu, parents' top-ups (a few too small for lunch) and some parents' limits."""
    changes: list[Change] = [MenuSet(local_date=today.isoformat(), items=MENU)]
    for i, s in enumerate(roster.students):
        amount = 2_000 if i % 13 == 5 else 1_500_000
        changes.append(
            BalanceCredit(ledger_id=f"demo-topup-{s.id}", student_id=s.id, amount_tiyn=amount)
        )
        if i % 9 == 4:
            changes.append(
                ParentLimitsSet(student_id=s.id, allergen_blocks=["milk"], daily_cap_tiyn=80_000)
            )
    changes += vouchers_demo.grants([s.id for s in roster.students], today)  # paid by card
    return changes


class Cashier:
    """Simulated canteen staff: on a PAY screen, confirm what the student points at (the first
    dishes allowed within what they may spend), unless a person at the kiosk does it first."""

    def __init__(self, hub: KioskHub) -> None:
        self.hub = hub
        self.attempts = 0  # each attempted sale journals one event (sold or refused)

    async def run(self, terminal: str) -> None:
        queue = self.hub.subscribe(terminal)
        try:
            while True:
                screen = await queue.get()
                tap_id, menu = screen.get("tap_id"), screen.get("offer")
                if screen["screen"] != "pay" or "error" in screen or not tap_id or menu is None:
                    continue
                await asyncio.sleep(0.03)  # the student chooses (the demo clock runs fast)
                if self.hub.current(terminal)["id"] != screen["id"]:
                    continue  # someone at the kiosk acted, or the next student tapped
                items: list[str] = []
                left = menu["spendable_tiyn"]
                for dish in menu["dishes"]:
                    if dish["allowed"] and dish["price_tiyn"] <= left and len(items) < 2:
                        items.append(dish["id"])
                        left -= dish["price_tiyn"]
                if not items:
                    continue
                self.attempts += 1
                try:
                    await self.hub.purchase(terminal, tap_id, items)
                except KioskError:
                    self.attempts -= 1  # nothing journaled
        finally:
            self.hub.unsubscribe(terminal, queue)


async def _open_kiosk(hub: KioskHub, token: str) -> KioskServer:
    for port in (KIOSK_PORT, 0):
        server = KioskServer(hub, "127.0.0.1", port, token)
        try:
            return await server.__aenter__()
        except OSError:
            continue
    raise RuntimeError("no port for the kiosk")


async def _progress(clock: SimClock, store: EdgeStore) -> None:
    while True:
        await asyncio.sleep(2)
        print(f"  {clock():%H:%M}  events journaled: {store.last_seq}", file=sys.stderr)


async def run_demo(
    *,
    duration: float | None,
    students: int = 300,
    directory: Path = Path("var/demo"),
    broker_port: int | None = None,
    database_url: str | None = None,
    console_port: int | None = None,
) -> dict[str, Any]:
    """One school and the server on this machine. By default the server uses SQLite and an
    embedded amqtt broker; ``broker_port`` (a running MQTT 5 broker such as Mosquitto on
    127.0.0.1) and ``database_url`` (e.g. PostgreSQL) switch them by configuration only."""
    from qaqpa.embedded import demo_server

    await asyncio.to_thread(_fresh_dir, directory / "server")
    server = demo_server(
        directory / "server",
        broker_port=broker_port,
        database_url=database_url,
        console_port=console_port,
    )
    async with server:
        return await _school(server, duration, students, directory)


async def _stay_open(server: Any, store: EdgeStore, taps: int) -> None:
    """``make demo``: after the day, keep the school connected and the console up."""
    stored = await asyncio.to_thread(server.stored_events, "DEMO")
    done = {"taps": taps, "events_journaled": store.last_seq, "events_stored_at_server": stored}
    print(json.dumps(done), file=sys.stderr)
    print(
        f"The school day is over; the console stays at {server.console_url} until Ctrl-C.",
        file=sys.stderr,
    )
    await asyncio.Event().wait()


async def _console_banner(server: Any, roster: Any) -> None:
    """Seed the console with the demo school and print where it is and who may sign in."""
    from server.demo_seed import DEMO_PASSWORD

    accounts = await asyncio.to_thread(
        server.seed_demo,
        roster.school,
        roster.students,
        roster.staff,
        roster.cards,
        load_policy(POLICY),
    )
    if server.console_url is None:
        return
    print(
        f"Qaqpa console: {server.console_url}  (password of every demo account: {DEMO_PASSWORD})",
        file=sys.stderr,
    )
    for acc in accounts:
        print(f"  {acc.login:<9} {acc.what}", file=sys.stderr)


async def _school(
    server: Any, duration: float | None, students: int, directory: Path
) -> dict[str, Any]:
    from edge.sync import EdgeSync, SyncSettings

    await asyncio.to_thread(_fresh_dir, directory)
    today = dt.datetime.now(ZONE).date()
    roster_file = make_roster(students, today=today)
    roster = _named(roster_records(roster_file, source="demo", now=None))
    store = await EdgeStore.open(directory / "edge.sqlite", school="DEMO", device="demo-edge")
    key, sync_settings = await asyncio.to_thread(server.add_device, "DEMO", "demo-edge")
    sync = EdgeSync(store, SyncSettings(**sync_settings), key)
    await store.import_roster(roster.students, roster.staff, roster.cards, load_policy(POLICY))
    await store.apply_local(canteen_day(roster, today))
    await _console_banner(server, roster)
    day_seconds = duration or 120.0
    span = dt.datetime.combine(today, DAY_END) - dt.datetime.combine(today, DAY_START)
    clock = SimClock(today, span.total_seconds() / day_seconds)
    actions = school_day(roster_file)
    print(
        f"Qaqpa demo: school DEMO, {students} students, {len(TERMINALS)} terminals; a school day "
        f"in {day_seconds:.0f} s (store {directory / 'edge.sqlite'})",
        file=sys.stderr,
    )
    readers: dict[str, EmMarineSim] = {}
    boards: list[RelayBoardSim] = []
    terminals = []
    for tid, (kind, direction) in TERMINALS.items():
        sim = EmMarineSim(directory / f"{tid}.reader")
        sim.plug()
        readers[tid] = sim
        gate = None
        if kind is TerminalKind.TURNSTILE:
            board = RelayBoardSim(directory / f"{tid}.relay")
            board.plug()
            boards.append(board)
            gate = RelaySerialGateConfig(type="relay_serial", port=str(board.path), pulse_ms=20)
        terminals.append(
            TerminalConfig(
                id=tid,
                kind=kind,
                direction=direction,
                reader=EmMarineConfig(type="em_marine", reader_id=tid, port=str(sim.path)),
                gate=gate,
            )
        )
    started = time.monotonic()
    all_decided = asyncio.Event()  # every tap of the day yields exactly one journaled event
    cashier: Cashier | None = None  # plus one per sale the simulated cashier attempts
    store.add_append_listener(
        lambda last: (
            all_decided.set()
            if last - (cashier.attempts if cashier else 0) >= len(actions)
            else None
        )
    )
    kiosk_url = ""
    try:
        async with sync, Pipeline(store) as pipeline, contextlib.AsyncExitStack() as stack:
            hub = KioskHub(store, pipeline, CANTEENS, clock)
            token = secrets.token_urlsafe(9)
            kiosk = await _open_kiosk(hub, token)
            stack.push_async_exit(kiosk.__aexit__)
            kiosk_url = kiosk.url
            print(
                f"Canteen kiosk (lunch rush at about {clock.real_delay(dt.time(12)):.0f} s): "
                f"{kiosk.url}?token={token}",
                file=sys.stderr,
            )
            tg = await stack.enter_async_context(asyncio.TaskGroup())
            running = [
                tg.create_task(
                    run_terminal(t, pipeline, store, clock, kiosk=hub), name=f"terminal-{t.id}"
                )
                for t in terminals
            ]
            running.append(tg.create_task(_progress(clock, store), name="progress"))
            if duration is None:  # the full demo sells paid lunches too; --duration leaves
                cashier = Cashier(hub)  # the kiosk's PAY screens to a person
                running += [tg.create_task(cashier.run(t), name=f"cashier-{t}") for t in CANTEENS]
            await asyncio.sleep(1.0)  # the readers open their ports before the first card
            clock.t0 = time.monotonic()
            await _play(actions, clock, readers, pipeline)
            await asyncio.sleep(max(0.0, clock.real_delay(DAY_END)))
            # at this speed the turnstiles queue up: let every presented card be decided
            async with asyncio.timeout(60):
                await all_decided.wait()
            await asyncio.sleep(0.5)  # the last decision's gate finishes its release
            for task in running:
                task.cancel()
            # the day is over: let the outbox drain to the server
            async with asyncio.timeout(60):
                while (await sync.status()).backlog > 0:  # noqa: ASYNC110 - acks arrive via paho's thread
                    await asyncio.sleep(0.2)
            if duration is None and server.console_url is not None:
                await _stay_open(server, store, len(actions))
        releases = sum(on for b in boards for _, _, on in b.poll())  # relay closings
        summary = await _summary(store, len(actions), time.monotonic() - started, releases)
        summary["kiosk_url"] = kiosk_url
        summary["canteen_sales_attempted"] = cashier.attempts if cashier else 0
        summary["events_stored_at_server"] = await asyncio.to_thread(server.stored_events, "DEMO")
        return summary
    finally:
        for device in [*readers.values(), *boards]:
            device.close()
        await store.close()


async def _summary(store: EdgeStore, taps: int, seconds: float, releases: int) -> dict[str, Any]:
    events = await store.journal_rows()
    kinds = collections.Counter(e.kind for e in events)
    # a paying student's tap (PAY: "choose and pay") records the tap, it is not a refusal
    pay_taps = sum(1 for e in events if isinstance(e, DeniedEvent) and e.reason is Reason.PAY)
    denials = collections.Counter(
        e.reason.value for e in events if isinstance(e, DeniedEvent) and e.reason is not Reason.PAY
    )
    meals = collections.Counter(e.meal.value for e in events if isinstance(e, MealServedEvent))
    stats = await store.outbox_stats()
    paid = meals.get("paid", 0) + meals.get("voucher", 0)
    money = await store.money_rows()
    return {
        "seconds": round(seconds, 1),
        "taps": taps,
        "grants": sum(n for k, n in kinds.items() if k not in ("denied", "alarm", "not_passed"))
        - paid,
        "denials": sum(denials.values()),
        "denials_by_reason": dict(denials.most_common()),
        "pay_taps": pay_taps,
        "voucher_meals": meals.get("voucher", 0),
        "entries": kinds.get("entry", 0),
        "exits": kinds.get("exit", 0),
        "manual_passes": kinds.get("manual_pass", 0),
        "library_visits": kinds.get("library_visit", 0),
        "free_meals": meals.get("free", 0),
        "paid_meals": paid,
        "canteen_debited_tiyn": sum(r[2] for r in money["debits"]),
        "gate_releases": releases,
        "events_journaled": stats.last_seq,
        "events_acknowledged_by_server": stats.acked_through,
        "events_unsent": stats.backlog,
    }
