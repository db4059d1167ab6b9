"""Cards are issued at the school (DESIGN invariant 5): the number is bound here, in the school's
store, and only the card *record* goes to the centre.

``issue_card(store, owner_kind, owner_id, credential)`` binds a newly tapped card and journals a
``card_issued`` event (the record's ``card_ref`` and the owner, never the number) in the same
transaction; ``block_card`` and ``unbind_card`` change a record and journal ``card_changed``.
The store keeps the number as a keyed hash (``edge.core.cardkey``) under the school's card key,
a file only the daemon's user reads (``load_card_key``, like the face key).
``import_cards`` binds the numbers of a CSV file (``owner_id,credential``: what a roster with card
numbers carries, given to the school instead of the centre) the same way, one record each.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from edge.config import ConfigError
from edge.store import EdgeStore, JournalEntry
from edge.store.journal import CardWrite
from protocol.messages import CardChangedEvent, CardIssuedEvent, ConsentKind, OwnerKind

KEY_BYTES = 32
DESK = "desk"  # the journal's terminal of a desk change (the staff page or the command line)
MAX_IMPORT_BYTES = 2_000_000
MAX_IMPORT_ROWS = 20_000
_CREDENTIAL = re.compile(r"^[A-Z0-9]+:[A-Z0-9:]+$")


class CardKeyError(ConfigError):
    """The card key file is missing, malformed, or readable by someone else."""


class CardRefused(ValueError):
    """A desk change that must not happen; ``field`` names the input at fault. Nothing changed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class IssuedCard:
    card_ref: str
    owner_kind: OwnerKind
    owner_id: str
    seq: int  # the journal seq of its card_issued event


def load_card_key(path: Path) -> bytes:
    """The school's card key from ``path``, created (mode 0600, exclusive) when absent; refused
    when the group or others can read it or another user owns it."""
    if not path.exists():
        _create_key(path)
    try:
        st = os.stat(path)
    except OSError as err:
        raise CardKeyError(f"{path}: cannot stat the card key ({err})") from err
    if not stat.S_ISREG(st.st_mode):
        raise CardKeyError(f"{path}: the card key is not a regular file")
    if st.st_mode & 0o077:
        raise CardKeyError(
            f"{path}: the card key is accessible to group/others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it"
        )
    if st.st_uid != os.geteuid():
        raise CardKeyError(f"{path}: the card key belongs to uid {st.st_uid}, not us")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise CardKeyError(f"{path}: the card key has {len(key)} bytes, not {KEY_BYTES}")
    return key


def _create_key(path: Path) -> None:
    # Whole to a private temporary file, then linked into place: never an empty key file, and a
    # concurrent creator's key is never overwritten.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def normalise_credential(text: str) -> str:
    """The reader's format ("em: 0012 345678" gives "EM:0012345678"); CardRefused otherwise."""
    value = "".join(text.split()).upper()
    if not 3 <= len(value) <= 128 or not _CREDENTIAL.match(value):
        raise CardRefused(
            "credential", "a card number is its type, a colon and the number, e.g. EM:0012345678"
        )
    return value


def new_card_ref() -> str:
    """A record id made at the school: random, so nothing about the number can be read from it."""
    return "k-" + secrets.token_hex(8)


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def _owners(kind: OwnerKind, owner_id: str) -> tuple[str | None, str | None]:
    """(student_id, staff_id) of an event about a card of this owner."""
    return (owner_id, None) if kind is OwnerKind.STUDENT else (None, owner_id)


def _check_owner(store: EdgeStore, kind: OwnerKind, owner_id: str) -> None:
    if kind is OwnerKind.STUDENT:
        student = store.state.student(owner_id)
        if student is None:
            raise CardRefused("owner", f"no student {owner_id!r} on this school's roster")
        if ConsentKind.DATA not in student.consents:
            raise CardRefused(
                "owner",
                f"no data consent is recorded for student {owner_id!r}: no card without it",
            )
    elif store.state.staff(owner_id) is None:
        raise CardRefused("owner", f"no staff member {owner_id!r} on this school's roster")


async def issue_card(
    store: EdgeStore,
    owner_kind: OwnerKind,
    owner_id: str,
    credential: str,
    *,
    replaces_ref: str | None = None,
    reason: str = "lost",
    desk: str = DESK,
) -> IssuedCard:
    """Bind a newly tapped card to a student (with a data consent) or a staff member, and
    journal ``card_issued`` in the same transaction. With ``replaces_ref``, that card is
    blocked (``reason``) in the same transaction. Refused (nothing changes) when the number is
    already bound here or the owner already has an active card."""
    cred = normalise_credential(credential)
    kind = OwnerKind(owner_kind)
    _check_owner(store, kind, owner_id)
    if store.state.card(cred) is not None:
        raise CardRefused("credential", "this card is already bound at the school: unbind it first")
    entries: list[JournalEntry] = []
    at_ms = _now_ms()
    if replaces_ref is not None:
        old = await store.card_record(replaces_ref)
        if old is None or old[1] != owner_id:
            raise CardRefused("replaces", f"no card {replaces_ref!r} of {owner_id!r} here")
        if old[2] is None:
            entries.append(
                _change_entry(replaces_ref, "blocked", reason, kind, owner_id, at_ms, desk)
            )
    elif any(
        c.owner_id == owner_id and c.owner_kind is kind and c.blocked_reason is None
        for c in store.state.cards.values()
    ):
        raise CardRefused("owner", "this person already has an active card: block or replace it")
    ref = new_card_ref()
    entries.append(
        JournalEntry(
            CardIssuedEvent(
                seq=1,
                at_ms=at_ms,
                terminal=desk,
                card_ref=ref,
                replaces_ref=replaces_ref,
                student_id=_owners(kind, owner_id)[0],
                staff_id=_owners(kind, owner_id)[1],
            ),
            card=CardWrite(
                "issue",
                ref,
                card_key=store.card_key_of(cred),
                owner_kind=kind.value,
                owner_id=owner_id,
            ),
        )
    )
    async with store.write_lock:
        events = await store.journal(entries)
    await store.reload_cards()
    return IssuedCard(ref, kind, owner_id, events[len(entries) - 1].seq)


def _change_entry(
    ref: str,
    change: str,
    reason: str | None,
    kind: OwnerKind,
    owner_id: str,
    at_ms: int,
    desk: str,
) -> JournalEntry:
    action = "block" if change == "blocked" else "unbind"
    return JournalEntry(
        CardChangedEvent(
            seq=1,
            at_ms=at_ms,
            terminal=desk,
            card_ref=ref,
            change="blocked" if change == "blocked" else "unbound",
            reason=reason,
            student_id=_owners(kind, owner_id)[0],
            staff_id=_owners(kind, owner_id)[1],
        ),
        card=CardWrite(action, ref, reason=reason),  # type: ignore[arg-type]
    )


async def block_card(store: EdgeStore, card_ref: str, reason: str, *, desk: str = DESK) -> None:
    if reason not in ("lost", "damaged"):
        raise CardRefused("reason", "choose a reason: lost or damaged")
    await _change(store, card_ref, "blocked", reason, desk)


async def unbind_card(store: EdgeStore, card_ref: str, *, desk: str = DESK) -> None:
    await _change(store, card_ref, "unbound", None, desk)


async def _change(
    store: EdgeStore, card_ref: str, change: str, reason: str | None, desk: str
) -> None:
    record = await store.card_record(card_ref)
    if record is None:
        raise CardRefused("card", f"no card {card_ref!r} at this school")
    kind, owner_id, blocked = record
    if change == "blocked" and blocked is not None:
        raise CardRefused("card", "this card is already blocked")
    entry = _change_entry(card_ref, change, reason, OwnerKind(kind), owner_id, _now_ms(), desk)
    async with store.write_lock:
        await store.journal([entry])
    await store.reload_cards()


@dataclass(frozen=True, slots=True)
class ImportResult:
    issued: list[IssuedCard]
    problems: list[str]  # "line N: why", for the rows left out (nothing bound for them)


def parse_import(data: bytes) -> list[tuple[int, str, str]]:
    """(line, owner id, number) of a CSV with the columns ``student_id`` (or ``staff_id``) and
    ``card`` (or ``credential``). Raises CardRefused for a file that is not such a table."""
    if len(data) > MAX_IMPORT_BYTES:
        raise CardRefused("file", f"the file is over {MAX_IMPORT_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CardRefused("file", "the file is not UTF-8 text") from err
    reader = csv.DictReader(io.StringIO(text))
    fields = {(f or "").strip().lower() for f in reader.fieldnames or []}
    owner_col = next((c for c in ("student_id", "staff_id") if c in fields), None)
    card_col = next((c for c in ("card", "credential") if c in fields), None)
    if owner_col is None or card_col is None:
        raise CardRefused(
            "file", "the file needs a student_id (or staff_id) column and a card column"
        )
    out: list[tuple[int, str, str]] = []
    for row in reader:
        if len(out) >= MAX_IMPORT_ROWS:
            raise CardRefused("file", f"the file has over {MAX_IMPORT_ROWS} rows")
        clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if clean.get(card_col):
            out.append((reader.line_num, clean.get(owner_col, ""), clean[card_col]))
    return out


async def import_cards(store: EdgeStore, data: bytes, owner_kind: OwnerKind) -> ImportResult:
    """Bind the numbers of a CSV file at the school (each row its own record and event); a
    row that cannot be bound is reported and left out."""
    issued: list[IssuedCard] = []
    problems: list[str] = []
    for line, owner, number in parse_import(data):
        try:
            issued.append(await issue_card(store, owner_kind, owner, number))
        except CardRefused as err:
            problems.append(f"line {line}: {err}")
    return ImportResult(issued, problems)
