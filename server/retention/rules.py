"""Retention rules as pure functions: when a leaver's data is due for erasure, and how an event
or a change of the downlink log is unlinked from the person. No clock, no I/O.

Which events stay: the meals (the budget pays for meals actually served, so the monthly
statements must add up after an erasure), the manual passes (who authorised a pass is the staff
member's record) and the school's confirmation that it deleted face templates. They keep their
kind, time, terminal and amounts, under a random token instead of the student's id. Every other
event of the student (entries, exits, refusals, library visits) becomes a tombstone: its key
(device, seq) stays so that a re-sent copy is still recognised as stored, nothing else.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

DAY_MS = 86_400_000
# Product default, not a number from the law (README, "Retention"): one school year after the
# centre first saw the student inactive, long enough for the year's meal reconciliation, the
# refund of a balance and a parent's complaint; a region sets its own.
DEFAULT_DAYS_AFTER_LEAVING = 365
MIN_DAYS = 0
MAX_DAYS = 3650

KEPT_KINDS = frozenset({"meal_served", "manual_pass", "face_templates_deleted"})
# Fields of a downlink change that name or describe the person or their family.
PERSONAL_KEYS = frozenset({"display_name", "given_by", "document"})


class RetentionError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def new_token() -> str:
    """The id an erased student's kept events carry (the wire's Id pattern; random, so it
    cannot be computed back from anything the school or the parent knows)."""
    return f"erased-{secrets.token_hex(8)}"


def check_days(days: int) -> int:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise RetentionError("days", f"From {MIN_DAYS} to {MAX_DAYS} days.")
    return days


def is_due(since_ms: int, days: int, now_ms: int) -> bool:
    """A student inactive since ``since_ms`` is due when ``days`` full days have passed."""
    return now_ms >= since_ms + days * DAY_MS


def pseudonymised(payload: Mapping[str, Any], token: str) -> dict[str, Any]:
    """A kept event's payload with the student's id replaced by the token."""
    out = dict(payload)
    if "student_id" in out:
        out["student_id"] = token
    return out


def tombstone(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What stays of an event that is not kept: its kind, seq, time and terminal."""
    return {k: payload[k] for k in ("kind", "seq", "at_ms", "terminal") if k in payload} | {
        "erased": True
    }


def _mentions(value: Any, refs: Mapping[str, str]) -> bool:
    if isinstance(value, str):
        return value in refs
    if isinstance(value, dict):
        return any(_mentions(v, refs) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, refs) for v in value)
    return False


def _scrub(value: Any, refs: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return refs.get(value, value)
    if isinstance(value, dict):
        return {k: ("" if k in PERSONAL_KEYS else _scrub(v, refs)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, refs) for v in value]
    return value


def scrub_changes(
    changes: list[dict[str, Any]], refs: Mapping[str, str]
) -> tuple[list[dict[str, Any]], int]:
    """A version of the downlink log with every change that names one of ``refs`` (old id ->
    token) rewritten: the id becomes the token, names, signatories and documents become empty.
    The log still folds to the same state under the new ids, so an edge far behind that
    replays it ends where the others are. Returns the changes and how many were rewritten."""
    out: list[dict[str, Any]] = []
    n = 0
    for change in changes:
        if _mentions(change, refs):
            out.append(_scrub(change, refs))
            n += 1
        else:
            out.append(change)
    return out, n
