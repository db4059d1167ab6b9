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
import dataclasses
import datetime as dt
import json
import logging
import secrets
import sys
import time
import zoneinfo
from pathlib import Path
from typing import Any, Literal

from edge.config import TerminalConfig
from edge.core.model import Tap
from edge.core.reasons import Lang
from edge.daemon import Actuation, run_terminal
from edge.kiosk.hub import KioskError, KioskHub
from edge.kiosk.server import KioskServer
from edge.pipeline import Pipeline
from edge.replay import load_policy
from edge.roster import Roster, RosterFile, roster_records
from edge.staff.auth import StaffAuth
from edge.staff.capture import ReaderInput
from edge.staff.i18n import Strings
from edge.staff.pins import load_pin_key, verifier
from edge.staff.registry import SECTIONS
from edge.staff.sections import StaffContext
from edge.staff.server import StaffServer
from edge.store import EdgeStore
from hardware.config import EmMarineConfig, RelaySerialGateConfig
from protocol.messages import (
    Change,
    DeniedEvent,
    Direction,
    MealServedEvent,
    MenuItem,
    OwnerKind,
    Reason,
    TerminalKind,
)
from qaqpa.demo_desk import DESK_TERMINAL, LIBRARIAN, DeskResult, desk_plan, lend_at_the_desk
from server.canteen.demo import DemoLimits
from server.canteen.ledger import MenuLine
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
STAFF_PORT = 8090  # the staff page (teacher's pass), likewise
PERSON_GATE = "gate-1-in"  # where the demo taps a card for a person signing in at the page
PERSON_CARD = "EM:1000000000"  # teacher-1A's card (roster: simulators.school)
PERSON_PIN = "1000"
STAY_UP = frozenset({"person-card", "terminal-gate-1-in", "terminal-gate-2-in"})
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
    actions: list[Action],
    clock: SimClock,
    readers: dict[str, EmMarineSim],
    teacher: TeacherAtThePage,
    tg: asyncio.TaskGroup,
) -> None:
    for act in actions:
        delay = clock.real_delay(act.at)
        if delay > 0:
            await asyncio.sleep(delay)
        if act.credential is not None:
            readers[act.terminal].present_card(int(act.credential.removeprefix("EM:")))
        else:  # a lost card: the class teacher lets the student in from the staff page
            tg.create_task(teacher.let_in(act), name=f"teacher-{act.manual_student}")


class TeacherAtThePage:
    """A class teacher using the staff page over HTTP like a person would: sign in with her own
    card at the turnstile's reader and her PIN, pick the student, open the turnstile.

    While a person has the page open waiting at gate-1-in (and no simulated teacher is signing
    in), the demo taps ``PERSON_CARD`` there for them: the readers are simulated."""

    def __init__(
        self,
        url: str,
        readers: dict[str, EmMarineSim],
        claims: ReaderInput,
        gates: dict[str, Actuation],
        store: EdgeStore,
        clock: SimClock,
    ) -> None:
        self.url = url
        self.readers = readers
        self.claims = claims
        self.gates = gates
        self.store = store
        self.clock = clock
        self.signing_in = 0
        self.passes = 0  # manual passes opened from the page
        self.failures: list[str] = []
        self._one_at_a_time = asyncio.Lock()  # a reader serves one sign-in at a time

    async def let_in(self, act: Action) -> None:
        async with self._one_at_a_time:
            if not await self._through_the_page(act):
                await self._at_the_gate(act)

    async def _at_the_gate(self, act: Action) -> None:
        """The page failed (logged in the summary): the pass still happens, so that the day's
        count of events holds, as the teacher would at the turnstile."""
        log.warning(
            "demo: the staff page failed (%s): the pass is given at the gate", self.failures[-1:]
        )
        card = self.store.state.card(act.staff_credential or "")
        kind, direction = TERMINALS[act.terminal]
        await self.gates[act.terminal].tap(
            Tap(
                at=self.clock(),
                terminal=act.terminal,
                kind=kind,
                direction=direction,
                manual_student=act.manual_student,
                signed_in_staff=card.owner_id if card is not None else "?",
            )
        )

    async def _through_the_page(self, act: Action) -> bool:
        assert act.staff_credential and act.pin and act.manual_student
        import httpx

        self.signing_in += 1
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=40) as c:
                form = (await c.get("/")).text
                login = asyncio.create_task(
                    c.post(
                        "/login", data={"csrf": _csrf(form), "reader": act.terminal, "pin": act.pin}
                    )
                )
                async with asyncio.timeout(20):
                    while not self.claims.claimed(act.terminal):  # noqa: ASYNC110 - set by the page's task
                        await asyncio.sleep(0.02)
                card = int(act.staff_credential.removeprefix("EM:"))
                self.readers[act.terminal].present_card(card)
                signed_in = await login
                if signed_in.status_code != 303:
                    self.failures.append(f"sign-in {signed_in.status_code}")
                    return False
                page = (await c.get("/pass/")).text
                r = await c.post(
                    "/pass/open",
                    follow_redirects=True,
                    data={
                        "csrf": _csrf(page),
                        "student": act.manual_student,
                        "terminal": act.terminal,
                    },
                )
                if 'id="result" class="ok"' in r.text:
                    self.passes += 1
                else:
                    self.failures.append("pass refused")  # journaled as refused: counted
                await c.post("/logout", data={"csrf": _csrf(page)})
                return True
        except (httpx.HTTPError, TimeoutError, ValueError) as err:
            self.failures.append(type(err).__name__)
            return False
        finally:
            self.signing_in -= 1

    async def tap_for_a_person(self) -> None:
        while True:
            await asyncio.sleep(0.3)
            if self.signing_in == 0 and self.claims.claimed(PERSON_GATE):
                self.readers[PERSON_GATE].present_card(int(PERSON_CARD.removeprefix("EM:")))
                await asyncio.sleep(2.0)


def _csrf(html: str) -> str:
    marker = 'name="csrf" value="'
    if marker not in html:
        raise ValueError("no CSRF token on the page")
    return html.split(marker, 1)[1].split('"', 1)[0]


async def _open_staff_page(
    store: EdgeStore,
    pipeline: Pipeline,
    gates: dict[str, Actuation],
    claims: ReaderInput,
    terminals: list[TerminalConfig],
    clock: SimClock,
    pin_key: bytes,
) -> StaffServer:
    # staff sign in at a turnstile's reader, and the librarian at the library desk's
    sign_in = [t.id for t in terminals if t.kind in (TerminalKind.TURNSTILE, TerminalKind.LIBRARY)]
    auth = StaffAuth(store, claims, pin_key, sign_in, lifetime_s=30 * 60)
    ctx = StaffContext(
        store=store,
        pipeline=pipeline,
        readers=claims,
        gates=gates,
        terminals=terminals,
        clock=clock,
        language=Lang.KK,
        auth=auth,
        strings=Strings(),
        sections=SECTIONS,
    )
    for port in (STAFF_PORT, 0):
        server = StaffServer(ctx, "127.0.0.1", port)
        try:
            return await server.__aenter__()
        except OSError:
            continue
    raise RuntimeError("no port for the staff page")


async def _install_pins(store: EdgeStore, roster_file: RosterFile, pin_key: bytes) -> None:
    """The demo school's staff PINs, as keyed verifiers (a real school gets them sealed from
    the console: README, staff PINs)."""
    for member in roster_file.staff:
        if member.pin:
            await store.set_staff_pin(member.id, verifier(pin_key, member.id, member.pin), 1, 0)


def _named(roster: Roster) -> Roster:
    """Display names for the kiosk (the generated roster has none)."""
    students = [
        s.model_copy(update={"display_name": f"{FIRST[i % len(FIRST)]} {LAST[i % len(LAST)]}"})
        for i, s in enumerate(roster.students)
    ]
    return roster.model_copy(update={"students": students})


@dataclasses.dataclass(frozen=True, slots=True)
class CanteenPlan:
    """What the demo's canteen manager and parents enter at the server before the day."""

    menu: list[MenuLine]
    topups: list[tuple[str, int]]  # (student id, tiyn)
    limits: list[DemoLimits]


def canteen_plan(roster: Roster) -> CanteenPlan:
    """Today's menu, parents' top-ups (a few too small for lunch) and some parents' limits:
    booked at the server, they reach the school through the signed downlink."""
    topups: list[tuple[str, int]] = []
    limits: list[DemoLimits] = []
    for i, s in enumerate(roster.students):
        topups.append((s.id, 2_000 if i % 13 == 5 else 1_500_000))
        if i % 9 == 4:
            limits.append(DemoLimits(s.id, ("milk",), 80_000))
    menu = [MenuLine(m.id, m.name, m.price_tiyn, tuple(m.allergens)) for m in MENU]
    return CanteenPlan(menu, topups, limits)


def canteen_day(roster: Roster, today: dt.date) -> list[Change]:
    """What the school itself holds before the day: the social wallet's card vouchers (also
    sent by the server; the edge applies one voucher id once). Money, the menu and the
    limits come from the server (``canteen_plan``)."""
    return list(vouchers_demo.grants([s.id for s in roster.students], today))


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


async def _stay_open(server: Any, store: EdgeStore, taps: int, child: str, lent: list[str]) -> None:
    """``make demo``: after the day, keep the school connected and the console up."""
    done = await _summary(store, taps, 0.0, 0)
    del done["seconds"], done["gate_releases"]  # not measured here
    done["desk_lent"] = lent
    done["events_stored_at_server"] = await asyncio.to_thread(server.stored_events, "DEMO")
    done["desk_loans_at_server"] = await asyncio.to_thread(server.desk_loans, "DEMO")
    done.update(await _balances_agree(server, store, child))
    print(json.dumps(done, ensure_ascii=False), file=sys.stderr)
    print(human_summary(done), file=sys.stderr)
    print(
        f"The school day is over; the console stays at {server.console_url} until Ctrl-C.",
        file=sys.stderr,
    )
    await asyncio.Event().wait()


async def _balances_agree(server: Any, store: EdgeStore, child: str) -> dict[str, Any]:
    """After the school's last sync: the server ledger's balance of each student (top-ups less
    the meals posted) against the school's own; every screen shows the server's. ``child``
    (the demo parent's) is shown as the kiosk (the school's), the console and the parent's
    page (the server's) show it."""
    at_server = await asyncio.to_thread(server.canteen_balances, "DEMO")
    at_school = {str(r[0]): int(r[1]) for r in (await store.money_rows())["balances"]}
    differ = sum(1 for ref, b in at_server.items() if at_school.get(ref, 0) != b)
    unexplained = await asyncio.to_thread(server.canteen_unexplained, "DEMO")
    return {
        "canteen_balance_at_server_tiyn": sum(at_server.values()),
        "canteen_balance_at_school_tiyn": sum(at_school.values()),
        "canteen_balances_differing": differ,
        "canteen_unexplained_differences": unexplained,
        "child": child,
        "child_balance_at_school_tiyn": at_school.get(child, 0),
        "child_balance_at_server_tiyn": at_server.get(child, 0),
    }


def _tenge(tiyn: int) -> str:
    sign = "-" if tiyn < 0 else ""
    return f"{sign}{abs(tiyn) // 100:,}".replace(",", " ") + f",{abs(tiyn) % 100:02d} ₸"


def human_summary(d: dict[str, Any]) -> str:
    """The day in a few lines for a person (the JSON has everything)."""
    refusals = ", ".join(f"{k} {n}" for k, n in d.get("denials_by_reason", {}).items())
    stored, journaled = d.get("events_stored_at_server", 0), d.get("events_journaled", 0)
    once = "each exactly once" if stored == journaled else "NOT all of them"
    at_school = d.get("child_balance_at_school_tiyn", 0)
    at_server = d.get("child_balance_at_server_tiyn", 0)
    same = "the same" if at_school == at_server else "DIFFERENT"
    lent = ", ".join(d.get("desk_lent", [])) or "nothing"
    lines = [
        "The day in numbers:",
        f"  taps decided      {d.get('taps', 0)}: {d.get('grants', 0)} granted, "
        f"{d.get('denials', 0)} refused ({refusals or 'none'}), "
        f"{d.get('pay_taps', 0)} paying at the kiosk",
        f"  meals served      free {d.get('free_meals', 0)}, paid {d.get('paid_meals', 0)} "
        f"(of them by voucher {d.get('voucher_meals', 0)})",
        f"  passes            {d.get('entries', 0)} in, {d.get('exits', 0)} out, "
        f"{d.get('manual_passes', 0)} let in by a teacher from the staff page",
        f"  library desk      lent by card tap: {lent}; "
        f"{len(d.get('desk_loans_at_server', []))} loan(s) from the desk at the server",
        f"  events            {journaled} journaled at the school, {stored} stored at the "
        f"server ({once}), {d.get('events_unsent', 0)} unsent",
        f"  a child's balance {d.get('child', '?')}: {_tenge(at_school)} on the kiosk, "
        f"{_tenge(at_server)} on the console and the parent's page ({same})",
        f"  canteen           {d.get('canteen_balances_differing', 0)} balances differ between "
        f"school and server, {d.get('canteen_unexplained_differences', 0)} unexplained "
        "reconciliation rows",
    ]
    return "\n".join(lines)


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
    roster_file = roster_file.model_copy(update={"staff": [*roster_file.staff, LIBRARIAN]})
    roster = _named(roster_records(roster_file, source="demo", now=None))
    store = await EdgeStore.open(directory / "edge.sqlite", school="DEMO", device="demo-edge")
    key, sync_settings = await asyncio.to_thread(server.add_device, "DEMO", "demo-edge")
    sync = EdgeSync(store, SyncSettings(**sync_settings), key)
    await store.import_roster(roster.students, roster.staff, [], load_policy(POLICY))
    desk = await _bind_cards_at_desk(store, roster)
    await store.apply_local(canteen_day(roster, today))
    pin_key = await asyncio.to_thread(load_pin_key, directory / "staff-pin.key")
    await _install_pins(store, roster_file, pin_key)
    await _console_banner(server, roster)
    plan = canteen_plan(roster)  # money, menu and limits enter at the server
    canteen_version = await asyncio.to_thread(
        server.seed_canteen, "DEMO", today, plan.menu, plan.topups, plan.limits
    )
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
            if last - desk - (cashier.attempts if cashier else 0) >= len(actions)
            else None
        )
    )
    kiosk_url = ""
    desk_done = DeskResult()
    try:
        async with sync, Pipeline(store) as pipeline, contextlib.AsyncExitStack() as stack:
            hub = KioskHub(store, pipeline, CANTEENS, clock)
            token = secrets.token_urlsafe(9)
            kiosk = await _open_kiosk(hub, token)
            stack.push_async_exit(kiosk.__aexit__)
            kiosk_url = kiosk.url
            claims = ReaderInput()
            gates: dict[str, Actuation] = {}
            staff_page = await _open_staff_page(
                store, pipeline, gates, claims, terminals, clock, pin_key
            )
            stack.push_async_exit(staff_page.__aexit__)
            teacher = TeacherAtThePage(staff_page.url, readers, claims, gates, store, clock)
            print(
                f"Staff page (teacher's pass for a lost card): {staff_page.url}  reader "
                f"{PERSON_GATE}, PIN {PERSON_PIN} (teacher of 1A; the demo taps her card "
                f"{PERSON_CARD} at the reader when the page waits for it)",
                file=sys.stderr,
            )
            print(
                f"Library desk (same page, section Library desk): reader {DESK_TERMINAL}, PIN "
                f"{LIBRARIAN.pin} (the librarian; her card {LIBRARIAN.cards[0]}); the demo lends "
                "a device and a book there by card tap before the first lesson",
                file=sys.stderr,
            )
            print(
                f"Canteen kiosk (lunch rush at about {clock.real_delay(dt.time(12)):.0f} s): "
                f"{kiosk.url}?token={token}",
                file=sys.stderr,
            )
            tg = await stack.enter_async_context(asyncio.TaskGroup())
            running = [
                tg.create_task(
                    run_terminal(t, pipeline, store, clock, kiosk=hub, readers=claims, gates=gates),
                    name=f"terminal-{t.id}",
                )
                for t in terminals
            ]
            running.append(tg.create_task(teacher.tap_for_a_person(), name="person-card"))
            running.append(tg.create_task(_progress(clock, store), name="progress"))
            if duration is None:  # the full demo sells paid lunches too; --duration leaves
                cashier = Cashier(hub)  # the kiosk's PAY screens to a person
                running += [tg.create_task(cashier.run(t), name=f"cashier-{t}") for t in CANTEENS]
            # the school starts its day with the server's money, menu and limits (downlink)
            async with asyncio.timeout(60):
                while (await sync.status()).applied_version < canteen_version:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the readers open their ports before the first card
            # before the first lesson the librarian hands over a device and a book by card tap
            lending = await desk_plan(store, roster, roster.students[0].id)
            desk_done = await lend_at_the_desk(staff_page.url, readers, claims, lending)
            desk = store.last_seq  # the day's taps are counted after the desk's acts
            clock.t0 = time.monotonic()
            await _play(actions, clock, readers, teacher, tg)
            await asyncio.sleep(max(0.0, clock.real_delay(DAY_END)))
            # at this speed the turnstiles queue up: let every presented card be decided
            async with asyncio.timeout(60):
                await all_decided.wait()
            await asyncio.sleep(0.5)  # the last decision's gate finishes its release
            staying = duration is None and server.console_url is not None
            for task in running:
                # `make demo` stays open: the turnstiles stay up for the staff page
                if not (staying and task.get_name() in STAY_UP):
                    task.cancel()
            # the day is over: let the outbox drain to the server
            async with asyncio.timeout(60):
                while (await sync.status()).backlog > 0:  # noqa: ASYNC110 - acks arrive via paho's thread
                    await asyncio.sleep(0.2)
            if duration is None and server.console_url is not None:
                await _stay_open(
                    server,
                    store,
                    len(actions),
                    roster.students[0].id,
                    [inv for _, inv in desk_done.lent],
                )
        releases = sum(on for b in boards for _, _, on in b.poll())  # relay closings
        summary = await _summary(store, len(actions), time.monotonic() - started, releases)
        summary["kiosk_url"] = kiosk_url
        summary["staff_page_url"] = staff_page.url
        summary["manual_passes_from_staff_page"] = teacher.passes
        summary["staff_page_failures"] = teacher.failures
        summary["canteen_sales_attempted"] = cashier.attempts if cashier else 0
        summary["desk_lent"] = [inv for _, inv in desk_done.lent]
        summary["desk_failures"] = desk_done.failures
        summary["desk_loans_at_server"] = await asyncio.to_thread(server.desk_loans, "DEMO")
        summary["events_stored_at_server"] = await asyncio.to_thread(server.stored_events, "DEMO")
        summary.update(await _balances_agree(server, store, roster.students[0].id))
        return summary
    finally:
        for device in [*readers.values(), *boards]:
            device.close()
        await store.close()


async def _bind_cards_at_desk(store: EdgeStore, roster: Roster) -> int:
    """The school binds its cards at its own desk (DESIGN invariant 5): each card of the roster
    file is issued here (its record goes to the centre, its number stays), a lost one blocked.
    A student without a data consent gets no card. Returns the events this journaled."""
    from edge.cards import CardRefused, block_card, issue_card

    for b in roster.cards:
        try:
            card = await issue_card(store, OwnerKind(b.owner_kind), b.owner_id, b.credential)
        except CardRefused:
            continue  # no data consent: no card (invariant 6)
        if b.blocked_reason is not None:
            await block_card(store, card.card_ref, "lost")
    return store.last_seq


DESK_KINDS: tuple[Literal["card_issued"], Literal["card_changed"]] = ("card_issued", "card_changed")


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
        "grants": sum(
            n
            for k, n in kinds.items()
            if k not in ("denied", "alarm", "not_passed", "lending", *DESK_KINDS)
        )
        - paid,
        "desk_card_events": sum(kinds.get(k, 0) for k in DESK_KINDS),
        "desk_lending_acts": kinds.get("lending", 0),
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
