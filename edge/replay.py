"""``qaqpa replay``: what the decision core decides for a day of taps, under a given policy.

It runs the same pure core as the daemon, against an in-memory state built from the roster, so an
operator can see what a policy change would do before publishing it.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TextIO

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from edge.core.decide import decide
from edge.core.model import Card, MealKey, Policy, SchoolState, ServedMeal, Tap
from edge.roster import RosterError, load_roster
from edge.state import build_state
from edge.validation import first_problem
from protocol.messages import Direction, PolicyDoc, Reason, TerminalKind


class ReplayError(ValueError):
    """Bad input: the message names the file, the line and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ManualPassIn(_Strict):
    student: str
    staff_credential: str
    pin: str


def _iso_text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError(
            "must be an ISO 8601 time with a UTC offset, e.g. 2025-10-06T08:01:12+05:00"
        )
    return value


IsoTime = Annotated[dt.datetime, BeforeValidator(_iso_text)]


class TapLine(_Strict):
    at: IsoTime
    terminal: Annotated[str, Field(min_length=1)]
    kind: TerminalKind
    direction: Direction | None = None
    credential: str | None = None
    manual_pass: ManualPassIn | None = None


class BlockLine(_Strict):
    at: IsoTime
    block_card: str
    reason: str = "blocked"


def load_policy(path: Path) -> PolicyDoc:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ReplayError(f"{path}: cannot read: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ReplayError(f"{path}: not UTF-8 text (byte {err.start})") from err
    except tomllib.TOMLDecodeError as err:
        raise ReplayError(f"{path}: {err}") from err
    try:
        return PolicyDoc.model_validate(raw, strict=False)
    except ValidationError as err:
        raise ReplayError(f"{path}: {first_problem(err, whole='(policy)')}") from err


@dataclass(frozen=True, slots=True)
class _Block:
    at: dt.datetime
    credential: str
    reason: str


def parse_taps(path: Path, stream: Iterable[str | bytes]) -> Iterator[tuple[int, Tap | _Block]]:
    for lineno, raw_line in enumerate(stream, start=1):
        where = f"{path}:{lineno}"
        try:
            line = raw_line.decode("utf-8") if isinstance(raw_line, bytes) else raw_line
        except UnicodeDecodeError as err:
            raise ReplayError(
                f"{where}: not UTF-8 text (byte {err.start + 1} of the line)"
            ) from err
        if not line.strip():
            continue
        try:
            raw: Any = json.loads(line)
        except json.JSONDecodeError as err:
            raise ReplayError(f"{where}: not valid JSON: {err.msg}") from err
        if not isinstance(raw, dict):
            raise ReplayError(f"{where}: a tap must be a JSON object")
        try:
            if "block_card" in raw:
                b = BlockLine.model_validate(raw)
                _aware(b.at, where)
                yield lineno, _Block(b.at, b.block_card.strip().upper(), b.reason)
                continue
            t = TapLine.model_validate(raw)
        except ValidationError as err:
            raise ReplayError(f"{where}: {first_problem(err, whole='(line)')}") from err
        _aware(t.at, where)
        if (t.credential is None) == (t.manual_pass is None):
            raise ReplayError(f"{where}: give exactly one of 'credential' or 'manual_pass'")
        if t.kind is TerminalKind.TURNSTILE and t.direction is None:
            raise ReplayError(f"{where}: a turnstile tap needs 'direction' ('in' or 'out')")
        mp = t.manual_pass
        yield (
            lineno,
            Tap(
                at=t.at,
                terminal=t.terminal,
                kind=t.kind,
                direction=t.direction,
                credential=t.credential.strip().upper() if t.credential else None,
                manual_student=mp.student if mp else None,
                staff_credential=mp.staff_credential.strip().upper() if mp else None,
                pin=mp.pin if mp else None,
            ),
        )


def _aware(at: dt.datetime, where: str) -> None:
    if at.tzinfo is None:
        raise ReplayError(f"{where}: 'at' needs a UTC offset, e.g. 2025-10-06T08:01:12+05:00")


def replay(roster_path: Path, policy_path: Path, taps_path: Path, out: TextIO) -> int:
    """Print one decision per tap; returns the number of taps."""
    try:
        roster = load_roster(roster_path)
    except RosterError as err:
        raise ReplayError(str(err)) from err
    policy = Policy.from_doc(load_policy(policy_path))
    state: SchoolState = build_state(roster.students, roster.staff, roster.cards)
    count = 0
    try:
        stream = taps_path.open("rb")  # decoded line by line, so an error names its line
    except OSError as err:
        raise ReplayError(f"{taps_path}: cannot read: {err.strerror}") from err
    with stream:
        for lineno, item in parse_taps(taps_path, stream):
            if isinstance(item, _Block):
                card = state.cards.get(item.credential)
                if card is None:
                    raise ReplayError(
                        f"{taps_path}:{lineno}: card {item.credential} is not in the roster"
                    )
                state.cards[item.credential] = Card(
                    card.credential, card.owner_kind, card.owner_id, item.reason
                )
                continue
            d = decide(policy, state, item)
            if d.granted and d.presence_after is not None and d.person_id is not None:
                state.presence_by_person[d.person_id] = (d.local_date, d.presence_after)
            if d.granted and d.meal_period is not None and d.student_id is not None:
                key = MealKey(d.student_id, d.local_date, d.meal_period)
                state.meals[key] = ServedMeal(item.at, item.terminal)
            out.write(
                json.dumps(
                    {
                        "at": item.at.isoformat(),
                        "terminal": item.terminal,
                        "student": d.student_id,
                        # a paying student's tap is an offer to pay, not a refusal
                        "decision": "grant"
                        if d.granted
                        else ("pay" if d.reason is Reason.PAY else "deny"),
                        "reason": d.reason.value,
                        "meal": d.meal.value if d.meal else None,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            count += 1
    return count
