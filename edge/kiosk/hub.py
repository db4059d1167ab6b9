"""What the canteen kiosk shows: screens built from committed decisions, pushed to the pages.

A screen is built only from an outcome the pipeline has committed (record before act: the page
says FREE MEAL or PAID only once the meal, the debit and the receipt are durable). Each open page
subscribes to one terminal and receives every new screen of it (server-sent events); a page that
connects late gets the terminal's current screen first.

Personal data (name, class) goes to the authenticated kiosk page only, never to a log line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edge.core.meals import meal_period_at
from edge.core.model import Purchase, Student
from edge.core.money import Offer, offer
from edge.core.reasons import HEADLINES, MESSAGES, NOT_RECORDED_MESSAGE, Screen
from edge.kiosk.screens import (
    COLOURS,
    IDLE,
    Colour,
    KioskScreen,
    OfferView,
    Receipt,
    StudentCard,
    Texts,
)
from edge.pipeline import Clock, Outcome, Pipeline, PipelineError, Sold, utc_now
from edge.store import EdgeStore
from protocol.messages import MealKind, Reason
from protocol.vouchers import TokenError, verify_token

log = logging.getLogger(__name__)

PAY_WINDOW_S = 180.0  # a PAY screen's menu can be confirmed this long after the tap
# A result (FREE MEAL, ALREADY SERVED, a refusal...) is shown this long; then the terminal is idle
# again, so a page opened (or reconnected) later never shows an old tap as if it were new.
RESULT_HOLD_S = 30.0
SUBSCRIBER_BACKLOG = 64  # screens queued for a slow page before it is dropped


class KioskError(Exception):
    """A kiosk request that cannot be served (unknown tap, expired, not this terminal)."""


def screen_of(reason: Reason, granted: bool, meal: MealKind | None) -> Screen:
    if granted:
        return Screen.SERVED if meal in (MealKind.PAID, MealKind.VOUCHER) else Screen.FREE_MEAL
    return {
        Reason.ALREADY_SERVED: Screen.ALREADY_SERVED,
        Reason.PAY: Screen.PAY,
        Reason.INSUFFICIENT_BALANCE: Screen.INSUFFICIENT_BALANCE,
        Reason.CARD_BLOCKED: Screen.BLOCKED_CARD,
    }.get(reason, Screen.DENIED)


def initials(name: str) -> str:
    return "".join(part[0] for part in name.split()[:2] if part).upper()


@dataclass
class _PendingPay:
    terminal: str
    student_id: str
    created: float
    qr_token: str | None = None  # a QR voucher scanned for this meal (checked again at sale)
    token_tiyn: int = 0


class KioskHub:
    """Screens per canteen terminal and the pages subscribed to them."""

    def __init__(
        self,
        store: EdgeStore,
        pipeline: Pipeline,
        terminals: Iterable[str],
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.clock = clock  # "now" of a sale (the daemon's clock; the demo's runs fast)
        self.pipeline = pipeline
        self.terminals = list(terminals)
        self._current: dict[str, KioskScreen] = {}
        self._shown_at: dict[str, float] = {}  # terminal -> monotonic time of its current screen
        self._subscribers: dict[str, set[asyncio.Queue[KioskScreen]]] = {
            t: set() for t in self.terminals
        }
        self._pending: dict[str, _PendingPay] = {}
        self._ids = itertools.count(1)

    # ----------------------------------------------------------------------------- pages

    def subscribe(self, terminal: str) -> asyncio.Queue[KioskScreen]:
        if terminal not in self._subscribers:
            raise KioskError(f"terminal {terminal!r} is not shown on this kiosk")
        queue: asyncio.Queue[KioskScreen] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self._subscribers[terminal].add(queue)
        queue.put_nowait(self.current(terminal))
        return queue

    def unsubscribe(self, terminal: str, queue: asyncio.Queue[KioskScreen]) -> None:
        self._subscribers.get(terminal, set()).discard(queue)

    def publish(self, terminal: str, screen: KioskScreen) -> None:
        self._current[terminal] = screen
        self._shown_at[terminal] = time.monotonic()
        for queue in list(self._subscribers.get(terminal, ())):
            try:
                queue.put_nowait(screen)
            except asyncio.QueueFull:  # a page that stopped reading: it reconnects and resyncs
                self._subscribers[terminal].discard(queue)
                log.warning("kiosk page of %s fell behind; dropped", terminal)

    def current(self, terminal: str) -> KioskScreen:
        """The terminal's screen now: the last one while it is fresh (a PAY screen for as long as
        its menu can be confirmed), else idle."""
        screen = self._current.get(terminal)
        if screen is None:
            return self._idle(terminal)
        hold = PAY_WINDOW_S if screen["screen"] == Screen.PAY else RESULT_HOLD_S
        if time.monotonic() - self._shown_at.get(terminal, 0.0) > hold:
            return self._idle(terminal)
        return screen

    # ------------------------------------------------------------------------- decisions

    def show_tap(self, outcome: Outcome) -> KioskScreen:
        """The screen of a committed tap at a canteen terminal."""
        d = outcome.decision
        terminal = outcome.tap.terminal
        screen = self._base(terminal, screen_of(d.reason, d.granted, d.meal), d.reason)
        screen["seq"] = outcome.event.seq
        screen["student"] = self._student(d.student_id)
        screen["meal_period"] = d.meal_period
        if d.served_before is not None:
            screen["served_before"] = {
                "at": self._local_hhmm(d.served_before.at),
                "terminal": d.served_before.terminal,
            }
        if d.student_id is not None and d.reason in (
            Reason.PAY,
            Reason.INSUFFICIENT_BALANCE,
            Reason.DAILY_CAP_EXCEEDED,
            Reason.ALLERGEN_BLOCKED,
        ):
            self._add_offer(screen, d.student_id, d.local_date, d.meal_period)
            if d.reason is Reason.PAY:
                screen["tap_id"] = self._remember(terminal, d.student_id)
        self.publish(terminal, screen)
        return screen

    def show_unrecorded(self, terminal: str) -> KioskScreen:
        """A tap the store could not record (a full disk): nothing was served, say so."""
        screen: KioskScreen = {
            "id": next(self._ids),
            "terminal": terminal,
            "screen": Screen.NOT_RECORDED,
            "colour": COLOURS[Screen.NOT_RECORDED],
            "headline": {lang.value: t for lang, t in HEADLINES[Screen.NOT_RECORDED].items()},
            "message": {lang.value: t for lang, t in NOT_RECORDED_MESSAGE.items()},
            "t_ms": int(time.time() * 1000),
            "at": self._local_hhmm(self.clock()),
            "hold_s": RESULT_HOLD_S,
        }
        self.publish(terminal, screen)
        return screen

    async def purchase(self, terminal: str, tap_id: str, items: list[str]) -> KioskScreen:
        """Staff confirmed the chosen items: sell (debit + receipt + event in one transaction),
        then show PAID, or the menu again with the reason it was refused."""
        pending = self._pending.get(tap_id)
        if pending is None or time.monotonic() - pending.created > PAY_WINDOW_S:
            self._pending.pop(tap_id, None)
            raise KioskError("this tap has expired or was already paid: tap the card again")
        if pending.terminal != terminal:
            raise KioskError("this tap belongs to another terminal")
        purchase = Purchase(
            at=self.clock(),
            terminal=terminal,
            student_id=pending.student_id,
            items=tuple(items),
            qr_token=pending.qr_token,
        )
        try:
            sold = await self.pipeline.sell(purchase)
        except PipelineError as err:
            log.error("terminal %s: sale refused: %s", terminal, err)
            raise KioskError("the sale could not be recorded; nothing was debited") from err
        if sold.decision.granted:
            # a new tap at this terminal may have replaced the menu while the sale committed
            self._pending.pop(tap_id, None)
        return await self.show_sale(sold, tap_id)

    async def show_sale(self, sold: Sold, tap_id: str | None = None) -> KioskScreen:
        d = sold.decision
        terminal = sold.purchase.terminal
        if d.granted:
            screen = self._base(terminal, Screen.SERVED, Reason.OK)
            screen["receipt"] = _receipt(await self.store.receipt(sold.event.seq))
            screen["balance_tiyn"] = d.balance_after_tiyn
            if d.voucher_tiyn:
                screen["voucher_tiyn"] = d.voucher_tiyn  # what vouchers paid of this meal
        else:  # the menu again, with why the choice was refused
            screen = self._base(terminal, Screen.PAY, Reason.PAY)
            screen["error"] = {"reason": d.reason, "message": _messages(d.reason)}
            pending = self._pending.get(tap_id or "")
            token_tiyn = pending.token_tiyn if pending is not None else 0
            self._add_offer(screen, d.student_id, d.local_date, d.meal_period, token_tiyn)
            screen["tap_id"] = tap_id
        screen["seq"] = sold.event.seq
        screen["student"] = self._student(d.student_id)
        screen["meal_period"] = d.meal_period
        self.publish(terminal, screen)
        return screen

    def scan_voucher(self, terminal: str, text: str) -> KioskScreen:
        """A QR voucher scanned at the terminal: checked with the issuer's public key (only
        public keys are at the school), then the student's menu with the voucher's value. The
        sale checks it again and journals it; nothing is spent by the scan itself."""
        policy = self.store.policy
        if policy is None:
            raise KioskError("no policy loaded yet")
        now = self.clock()
        day = now.astimezone(policy.timezone).date()
        try:
            token = verify_token(text, self.store.state.issuer_keys(), day)
        except TokenError as err:
            log.info("terminal %s: QR voucher refused (%s)", terminal, err.code)
            return self._voucher_refused(terminal, Reason.VOUCHER_INVALID)
        if self.store.state.token_redeemed(token.token_id):
            return self._voucher_refused(terminal, Reason.VOUCHER_USED)
        student = self.store.state.student(token.student_id)
        if student is None:
            return self._voucher_refused(terminal, Reason.VOUCHER_INVALID)
        period = meal_period_at(policy, student.shift, now.astimezone(policy.timezone).time())
        screen = self._base(terminal, Screen.PAY, Reason.PAY)
        screen["student"] = self._student(student.id)
        screen["meal_period"] = period.name if period is not None else None
        self._add_offer(screen, student.id, day, screen["meal_period"], token.amount_tiyn)
        tap_id = self._remember(terminal, student.id)
        self._pending[tap_id].qr_token = text.strip()
        self._pending[tap_id].token_tiyn = token.amount_tiyn
        screen["tap_id"] = tap_id
        self.publish(terminal, screen)
        return screen

    def _voucher_refused(self, terminal: str, reason: Reason) -> KioskScreen:
        screen = self._base(terminal, Screen.DENIED, reason)
        self.publish(terminal, screen)
        return screen

    def cancel(self, terminal: str, tap_id: str) -> KioskScreen:
        pending = self._pending.get(tap_id)
        if pending is not None and pending.terminal == terminal:
            del self._pending[tap_id]
        screen = self._idle(terminal)
        self.publish(terminal, screen)
        return screen

    # ---------------------------------------------------------------------------- helpers

    def _base(self, terminal: str, screen: Screen, reason: Reason) -> KioskScreen:
        return {
            "id": next(self._ids),
            "terminal": terminal,
            "screen": screen,
            "colour": COLOURS[screen],
            "headline": {lang.value: text for lang, text in HEADLINES[screen].items()},
            "reason": reason,
            "message": _messages(reason),
            "t_ms": int(time.time() * 1000),
            "at": self._local_hhmm(self.clock()),  # shown beside the result: when it happened
            "hold_s": PAY_WINDOW_S if screen == Screen.PAY else RESULT_HOLD_S,
        }

    def _idle(self, terminal: str) -> KioskScreen:
        return {"id": 0, "terminal": terminal, "screen": IDLE, "colour": Colour.GREY}

    def _student(self, student_id: str | None) -> StudentCard | None:
        if student_id is None:
            return None
        st: Student | None = self.store.state.student(student_id)
        if st is None:
            return None
        name = self.store.display_names.get(student_id, "")
        # Photos are not stored yet (a photo would need the consent that covers it); the initials
        # of the name already on the screen stand in, so the worker can match face and name.
        return {
            "name": name,
            "class": st.class_name,
            "photo": None,
            "initials": initials(name) if name else "?",
        }

    def _add_offer(
        self,
        screen: KioskScreen,
        student_id: str,
        day: dt.date,
        period: str | None = None,
        token_tiyn: int = 0,
    ) -> None:
        """The student's balance and today's menu against their money rules (a PAY screen):
        vouchers usable for this meal count, prices are the student's (reduced) ones."""
        policy = self.store.policy
        assert policy is not None
        o: Offer = offer(policy, self.store.state, student_id, day, period, token_tiyn)
        screen["balance_tiyn"] = o.balance_tiyn
        if o.voucher_tiyn:  # the QR shown and the card vouchers usable for this meal
            screen["voucher_tiyn"] = o.voucher_tiyn
        screen["offer"] = OfferView(
            spendable_tiyn=o.spendable_tiyn,
            cap_left_tiyn=o.cap_left_tiyn,
            overdraft_tiyn=o.overdraft_tiyn,
            dishes=[
                {
                    "id": x.dish.id,
                    "name": x.dish.name,
                    "price_tiyn": x.pays_tiyn,
                    "allergens": sorted(x.dish.allergens),
                    "blocked_allergens": sorted(x.blocked_allergens),
                    "allowed": x.allowed,
                }
                for x in o.dishes
            ],
        )

    def _remember(self, terminal: str, student_id: str) -> str:
        now = time.monotonic()
        for key in [k for k, p in self._pending.items() if now - p.created > PAY_WINDOW_S]:
            del self._pending[key]
        # one open PAY per terminal: a new tap replaces the previous student's menu
        for key in [k for k, p in self._pending.items() if p.terminal == terminal]:
            del self._pending[key]
        tap_id = secrets.token_urlsafe(12)
        self._pending[tap_id] = _PendingPay(terminal, student_id, now)
        return tap_id

    def _local_hhmm(self, at: dt.datetime) -> str:
        policy = self.store.policy
        zone = policy.timezone if policy is not None else dt.UTC
        return at.astimezone(zone).strftime("%H:%M")


def _messages(reason: Reason) -> Texts:
    return {lang.value: text for lang, text in MESSAGES[reason].items()}


def _receipt(row: dict[str, Any] | None) -> Receipt | None:
    """The store's receipt row as the screen's (same keys, same order)."""
    if row is None:
        return None
    return {
        "seq": row["seq"],
        "student_id": row["student_id"],
        "local_date": row["local_date"],
        "period": row["period"],
        "terminal": row["terminal"],
        "at_ms": row["at_ms"],
        "lines": row["lines"],
        "amount_tiyn": row["amount_tiyn"],
        "balance_after_tiyn": row["balance_after_tiyn"],
    }
