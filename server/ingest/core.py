"""Verification and storage of uplink batches; no MQTT here (the worker owns the client).

One call to ``IngestStore.ingest`` handles the messages that queued up and writes all accepted
events in one transaction: PostgreSQL loads them with COPY into a temporary staging table and then
``INSERT ... ON CONFLICT DO NOTHING``; SQLite uses ``INSERT OR IGNORE``. Progress rows are locked
in device order first, so N workers can run at once without deadlocks or lost updates.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import Connection, Engine, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from protocol import topics
from protocol.codec import loads_plain, open_envelope
from protocol.errors import ProtocolError
from protocol.messages import Event, EventAck, EventBatch, Id, Millis, Seq, SeqRange
from protocol.signing import load_public_key, verify
from server.clock import now_ms
from server.devices import KEY_CHANNEL
from server.ingest.parked import keep as keep_parked
from server.models import Device, IngestProgress, IngestRejection, ServerAlarm, StoredEvent
from server.rollups.service import apply_rollups

log = logging.getLogger(__name__)

MAX_MISSING_RANGES = 100
PROGRESS_SCAN_LIMIT = 200_000
DEVICE_CACHE_TTL_S = 30.0
# One encoder for all rows: json.dumps with options builds a new encoder per call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


class RejectReason(enum.StrEnum):
    TOPIC = "topic"
    UNKNOWN_DEVICE = "unknown_device"
    NOT_ENROLLED = "not_enrolled"
    MALFORMED = "malformed"
    SIGNATURE = "signature"
    WRONG_SCHOOL = "wrong_school"
    WRONG_DEVICE = "wrong_device"
    DUPLICATE = "duplicate"  # a (re)sent batch whose events are all stored already: acked, counted
    # Parked events (the batch is stored and acknowledged; see ``parked_events``): an event of a
    # kind this release does not know, or of a known kind with a field it does not know. Kept as
    # sent, counted and alarmed, never applied by this release.
    UNKNOWN_KIND = "unknown_kind"
    UNKNOWN_FIELD = "unknown_field"


PARKED = frozenset({RejectReason.UNKNOWN_KIND, RejectReason.UNKNOWN_FIELD})


@dataclass(frozen=True, slots=True)
class Rejection:
    school: str
    device: str
    reason: RejectReason
    detail: str


@dataclass(slots=True)
class IngestOutcome:
    acks: list[EventAck] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    events_inserted: int = 0
    events_received: int = 0


@dataclass(frozen=True, slots=True)
class _KnownDevice:
    pk: int
    school_id: str
    public_key: Ed25519PublicKey | None
    fetched_at: float


@dataclass(slots=True)
class _Accepted:
    device: _KnownDevice
    device_id: str
    rows: list[dict[str, Any]]
    first_seq: int
    last_seq: int
    parked: frozenset[int] = frozenset()  # seqs stored as sent and not applied (newer release)
    notes: list[Rejection] = field(default_factory=list)


class _ParkedEvent(BaseModel):
    """What every event has, whatever its kind: enough to store it under (device, seq)."""

    model_config = ConfigDict(extra="allow", strict=True)
    seq: Seq
    at_ms: Millis
    kind: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")]
    terminal: Id
    student_id: Id | None = None
    staff_id: Id | None = None


class _BatchHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    school: Id
    device: Id
    sent_at_ms: Millis
    events: Annotated[list[_ParkedEvent], Field(min_length=1, max_length=10_000)]


_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
_PARKABLE = {
    "union_tag_invalid": RejectReason.UNKNOWN_KIND,
    "extra_forbidden": RejectReason.UNKNOWN_FIELD,
}


def parked_events(plain: Any) -> tuple[_BatchHeader, dict[RejectReason, list[int]]] | None:
    """A signed batch this release cannot read whole, because an edge of a newer release sent
    an event kind (or a field of a known kind) this release does not know: the batch's header
    and the seqs to park by reason. None when anything else is wrong with it (malformed).

    The versioning policy (README, Wire protocol): such an event is stored as sent, with the
    others of its batch, and acknowledged, so the edge's outbox moves on; it is counted and
    alarmed, and no effect of it is applied by this release (a later release can, from the
    stored payload)."""
    try:
        header = _BatchHeader.model_validate(plain)
    except ValidationError:
        return None
    seqs = [e.seq for e in header.events]
    if any(b <= a for a, b in itertools.pairwise(seqs)):
        return None
    parked: dict[RejectReason, list[int]] = {}
    for raw, ev in zip(plain["events"], header.events, strict=True):
        try:
            _EVENT.validate_python(raw)
        except ValidationError as err:
            kinds = {_PARKABLE.get(e["type"]) for e in err.errors()}
            if None in kinds:
                return None  # a known kind, wrong: an edge bug, refused whole
            reason = (
                RejectReason.UNKNOWN_KIND
                if RejectReason.UNKNOWN_KIND in kinds
                else (RejectReason.UNKNOWN_FIELD)
            )
            parked.setdefault(reason, []).append(ev.seq)
    return (header, parked) if parked else None


_COLUMNS = (
    "device_pk",
    "seq",
    "school_id",
    "at_ms",
    "kind",
    "terminal",
    "student_id",
    "staff_id",
    "payload",
    "received_at_ms",
)


# Events that make or change a card record at the centre (``server.cards.service``).
CARD_EVENT_KINDS = frozenset({"card_issued", "card_changed", "cards_blocked"})


def _record_cards(conn: Connection, rows: list[dict[str, Any]]) -> None:
    from server.cards.service import record_desk_events

    by_school: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: (r["device_pk"], r["seq"])):
        by_school.setdefault(r["school_id"], []).append(r["payload"])
    with Session(bind=conn) as session:  # joins the ingest transaction; commits with it
        for school, events in sorted(by_school.items()):
            record_desk_events(session, school, events)
        session.flush()


# Acts of the schools' library desks (``server.equipment``): each applied once, when its event is
# first stored.
LENDING_EVENT_KINDS = frozenset({"lending"})


def _stored_keys(conn: Connection, rows: list[dict[str, Any]]) -> set[tuple[int, int]]:
    """The (device, seq) of ``rows`` already in ``events`` (a re-sent batch)."""
    keys = {(r["device_pk"], r["seq"]) for r in rows}
    found: set[tuple[int, int]] = set()
    by_device: dict[int, list[int]] = {}
    for pk, seq in keys:
        by_device.setdefault(pk, []).append(seq)
    for pk, seqs in by_device.items():
        found.update(
            (pk, int(s))
            for s in conn.execute(
                select(StoredEvent.seq).where(
                    StoredEvent.device_pk == pk, StoredEvent.seq.in_(sorted(seqs))
                )
            ).scalars()
        )
    return found


def _record_lending(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Apply the desks' lending acts in the ingest transaction, in (device, seq) order. A refused
    act (the centre knows better than the desk did offline) changes nothing and is logged by
    reason, without the student; the event itself stays stored."""
    from server.clock import local_date, zone
    from server.equipment.rules import EquipmentError
    from server.equipment.service import apply_lending_event, record_refused_act

    with Session(bind=conn) as session:  # joins the ingest transaction; commits with it
        for r in sorted(rows, key=lambda r: (r["device_pk"], r["seq"])):
            try:
                with session.begin_nested():
                    apply_lending_event(
                        session,
                        r["school_id"],
                        r["device_pk"],
                        r["seq"],
                        r["kind"],
                        r["student_id"],
                        r["payload"],
                        local_date(r["at_ms"], zone(None)),  # the act's day: its due date
                    )
            except EquipmentError as err:
                log.warning(
                    "ingest: lending act %s/%d refused: %s",
                    r["school_id"],
                    r["seq"],
                    err.message,
                )
                record_refused_act(session, r["school_id"], r["payload"], err.message, r["at_ms"])
        session.flush()


def _advance(through: int, seqs: Iterable[int]) -> tuple[int, list[SeqRange]]:
    """``through`` moved over the contiguous ``seqs`` (ascending, all above it, no repeats: the
    seqs stored above it) and the gaps left above it."""
    missing: list[SeqRange] = []
    contiguous = True
    expected = through + 1
    for seq in seqs:
        if seq == expected and contiguous:
            through = seq
        elif seq > expected:
            contiguous = False
            if len(missing) < MAX_MISSING_RANGES:
                missing.append(SeqRange(first=expected, last=seq - 1))
        expected = seq + 1
    return through, missing


class KeyChanges:
    """The devices whose key changed since the last look (``server.devices.KEY_CHANNEL``), from
    a LISTEN connection of its own: reading it is a poll of a socket, not a query. ``None``
    means "cannot tell" (SQLite, or the connection failed): the caller then trusts no cache."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: psycopg.Connection[Any] | None = None

    def _listen(self) -> psycopg.Connection[Any]:
        args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        conn: psycopg.Connection[Any] = psycopg.connect(*args, **kwargs, autocommit=True)
        conn.execute(f"LISTEN {KEY_CHANNEL}")
        return conn

    def changed(self) -> set[tuple[str, str]] | None:
        if self._engine.dialect.name != "postgresql":
            return None
        try:
            if self._conn is None:
                self._conn = self._listen()
                return None  # changes before LISTEN are unknown: the caller drops its cache
            # A round trip first (LISTEN again: a no-op): the server sends every notification
            # committed before it ahead of the answer (psycopg keeps them for ``notifies``), so
            # a key revoked just before this batch is seen now, not a few milliseconds later.
            self._conn.execute(f"LISTEN {KEY_CHANNEL}")
            out: set[tuple[str, str]] = set()
            # Two looks: a connection the server ended shows as an error only on the read after
            # its last message (the FATAL notice), and then the cache must not be trusted.
            for _ in range(2):
                for note in self._conn.notifies(timeout=0):
                    school, _, device = note.payload.partition("/")
                    out.add((school, device))
            return out
        except psycopg.Error as err:
            log.warning("ingest: device key notifications lost (%s); re-reading keys", err)
            self.close()
            return None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


class IngestStore:
    """Database side of ingest. Thread-confined: one instance per worker thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        topic_prefix: str = topics.PREFIX,
        after_commit: Callable[[], None] | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._prefix = topic_prefix
        self._devices: dict[tuple[str, str], _KnownDevice] = {}
        self._after_commit = after_commit
        self._before_commit = before_commit
        self._pg = engine.dialect.name == "postgresql"
        self._key_changes = KeyChanges(engine)

    def close(self) -> None:
        self._key_changes.close()

    def _forget_changed_keys(self) -> None:
        """Drop the cached devices whose key changed (revoked, enrolled again): a revocation
        refuses the very next batch. Without notifications (SQLite, a lost connection) the
        cache is dropped as a whole."""
        changed = self._key_changes.changed()
        if changed is None:
            self._devices.clear()
            return
        for key in changed:
            self._devices.pop(key, None)

    # ------------------------------------------------------------------ verification

    def _prefetch(self, conn: Connection, topic_names: Iterable[str]) -> None:
        """Read the devices of these topics not in the cache (or stale) in one query."""
        now = time.monotonic()
        wanted: set[tuple[str, str]] = set()
        for topic in topic_names:
            try:
                school, device, _rest = topics.parse_device_topic(topic, self._prefix)
            except ProtocolError:
                continue  # refused by ``_check``
            cached = self._devices.get((school, device))
            if cached is None or now - cached.fetched_at >= DEVICE_CACHE_TTL_S:
                wanted.add((school, device))
        if len(wanted) < 2:
            return  # ``_device`` reads it
        keys = sorted(wanted)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = select(Device.pk, Device.school_id, Device.device_id, Device.public_key).where(
                tuple_(Device.school_id, Device.device_id).in_(chunk)
            )
            for row in conn.execute(q):
                pub = load_public_key(row.public_key) if row.public_key else None
                known = _KnownDevice(row.pk, row.school_id, pub, now)
                self._devices[(row.school_id, row.device_id)] = known

    def _device(self, conn: Connection, school: str, device: str) -> _KnownDevice | None:
        key = (school, device)
        cached = self._devices.get(key)
        if cached is not None and time.monotonic() - cached.fetched_at < DEVICE_CACHE_TTL_S:
            return cached
        row = conn.execute(
            select(Device.pk, Device.school_id, Device.public_key).where(
                Device.school_id == school, Device.device_id == device
            )
        ).first()
        if row is None:
            return None
        pub = load_public_key(row.public_key) if row.public_key else None
        known = _KnownDevice(row.pk, row.school_id, pub, time.monotonic())
        self._devices[key] = known
        return known

    def _check(
        self, conn: Connection, topic: str, payload: bytes, received_at_ms: int
    ) -> _Accepted | Rejection:
        try:
            school, device, rest = topics.parse_device_topic(topic, self._prefix)
        except ProtocolError as err:
            return Rejection("?", "?", RejectReason.TOPIC, str(err)[:200])
        if rest != "events":
            return Rejection(school, device, RejectReason.TOPIC, f"not an events topic: {rest}")
        known = self._device(conn, school, device)
        if known is None:
            return Rejection(school, device, RejectReason.UNKNOWN_DEVICE, "no such device")
        if known.public_key is None:
            return Rejection(school, device, RejectReason.NOT_ENROLLED, "device has no key")
        try:
            env = open_envelope(payload)
        except ProtocolError as err:
            return Rejection(school, device, RejectReason.MALFORMED, str(err)[:200])
        try:
            verify(env, known.public_key)
        except ProtocolError as err:
            return Rejection(school, device, RejectReason.SIGNATURE, str(err)[:200])
        if env.type_name != "event_batch":
            return Rejection(school, device, RejectReason.MALFORMED, f"type {env.type_name}")
        try:
            plain = loads_plain(env.body, context="event_batch")
        except ProtocolError as err:
            return Rejection(school, device, RejectReason.MALFORMED, str(err)[:200])
        parked: dict[RejectReason, list[int]] = {}
        batch: EventBatch | _BatchHeader
        try:
            batch = EventBatch.model_validate(plain)
        except ValidationError as err:
            lenient = parked_events(plain)
            if lenient is None:
                # Signed by the device but invalid: a bug at the edge, not an attacker.
                return Rejection(school, device, RejectReason.MALFORMED, str(err)[:200])
            batch, parked = lenient
        if batch.school != school or known.school_id != school:
            return Rejection(school, device, RejectReason.WRONG_SCHOOL, "school mismatch")
        if batch.device != device:
            return Rejection(school, device, RejectReason.WRONG_DEVICE, "device mismatch")
        rows = [
            {
                "device_pk": known.pk,
                "seq": ev["seq"],
                "school_id": school,
                "at_ms": ev["at_ms"],
                "kind": ev["kind"],
                "terminal": ev["terminal"],
                "student_id": ev.get("student_id"),
                "staff_id": ev.get("staff_id"),
                "payload": ev,
                "received_at_ms": received_at_ms,
            }
            for ev in plain["events"]
        ]
        notes = [
            Rejection(
                school,
                device,
                reason,
                f"{len(seqs)} events parked (seq {seqs[0]}..{seqs[-1]}, kinds "
                f"{', '.join(sorted({r['kind'] for r in rows if r['seq'] in seqs}))[:80]}): "
                "stored as sent and acknowledged, not applied by this server release",
            )
            for reason, seqs in parked.items()
        ]
        return _Accepted(
            known,
            device,
            rows,
            batch.events[0].seq,
            batch.events[-1].seq,
            frozenset(s for seqs in parked.values() for s in seqs),
            notes,
        )

    # ------------------------------------------------------------------ storage

    def ingest(self, messages: Sequence[tuple[str, bytes]]) -> IngestOutcome:
        """Verify, store and compute the acks of ``messages`` (topic, payload) in one transaction."""
        outcome = IngestOutcome()
        received = now_ms()
        accepted: list[_Accepted] = []
        self._forget_changed_keys()
        with self._engine.connect() as conn:
            self._prefetch(conn, [topic for topic, _payload in messages])
            for topic, payload in messages:
                result = self._check(conn, topic, payload, received)
                if isinstance(result, Rejection):
                    outcome.rejections.append(result)
                else:
                    accepted.append(result)
                    outcome.rejections.extend(result.notes)  # parked events: counted, alarmed
            conn.rollback()
        if accepted:
            self._store(accepted, outcome)
            if self._after_commit is not None:
                self._after_commit()
        if outcome.rejections:
            self.record_rejections(outcome.rejections)
        return outcome

    def _store(self, accepted: list[_Accepted], outcome: IngestOutcome) -> None:
        by_device: dict[int, list[_Accepted]] = {}
        for acc in accepted:
            by_device.setdefault(acc.device.pk, []).append(acc)
        rows = [r for acc in accepted for r in acc.rows]
        outcome.events_received = len(rows)
        parked = {(acc.device.pk, seq) for acc in accepted for seq in acc.parked}
        applied = [r for r in rows if (r["device_pk"], r["seq"]) not in parked] if parked else rows
        with self._engine.begin() as conn:
            # Lock progress in a fixed order: concurrent workers serialise per device, never deadlock.
            progress_q = (
                select(IngestProgress.device_pk, IngestProgress.committed_through)
                .where(IngestProgress.device_pk.in_(sorted(by_device)))
                .order_by(IngestProgress.device_pk)
            )
            if self._pg:
                progress_q = progress_q.with_for_update()
            before = {r.device_pk: r.committed_through for r in conn.execute(progress_q)}
            for pk in by_device:
                if pk not in before:
                    conn.execute(
                        insert(IngestProgress).values(
                            device_pk=pk, committed_through=0, gaps=[], updated_at_ms=0
                        )
                    )
                    before[pk] = 0
            lending = [r for r in applied if r["kind"] in LENDING_EVENT_KINDS]
            if lending:  # only those stored for the first time are applied
                seen = _stored_keys(conn, lending)
                fresh = {(r["device_pk"], r["seq"]): r for r in lending}  # a batch sent twice
                lending = [r for k, r in fresh.items() if k not in seen]
            # Per device, the highest seq stored before this transaction (PostgreSQL): with
            # nothing stored above ``committed_through``, the progress follows from the rows
            # inserted now, with no query (see ``_advance``).
            top = self._top(conn, sorted(by_device)) if self._pg else None
            inserted = self._insert(conn, rows, before, top)
            outcome.events_inserted = len(inserted)
            if parked:  # kept for a release that knows them: ``qaqpa server parked replay``
                keep_parked(
                    conn, [r for r in inserted if (r["device_pk"], r["seq"]) in parked], now_ms()
                )
            counted = [r for r in inserted if (r["device_pk"], r["seq"]) not in parked]
            if counted:  # the daily roll-ups, same transaction: once per stored, applied event
                apply_rollups(conn, counted)
            desk = [r for r in applied if r["kind"] in CARD_EVENT_KINDS]
            if desk:  # card records from the schools' desks, in the same transaction
                _record_cards(conn, desk)
            if lending:  # the library desks' acts, in the same transaction
                _record_lending(conn, lending)
            new_seqs: dict[int, list[int]] = {}
            for r in inserted:
                new_seqs.setdefault(r["device_pk"], []).append(r["seq"])
            progress: dict[int, tuple[int, list[SeqRange]]] = {}
            for pk, accs in sorted(by_device.items()):
                for acc in accs:
                    if acc.last_seq <= before[pk]:
                        outcome.rejections.append(
                            Rejection(
                                acc.device.school_id,
                                acc.device_id,
                                RejectReason.DUPLICATE,
                                f"seq {acc.first_seq}-{acc.last_seq} already stored",
                            )
                        )
                if top is not None and (top.get(pk) or 0) <= before[pk]:
                    progress[pk] = _advance(before[pk], sorted(new_seqs.get(pk, ())))
                else:
                    progress[pk] = self._progress(conn, pk, before[pk])
                through, missing = progress[pk]
                acc0 = accs[0]
                outcome.acks.append(
                    EventAck(
                        school=acc0.device.school_id,
                        device=acc0.device_id,
                        committed_through=through,
                        missing=missing,
                    )
                )
            self._save_progress(conn, progress)
            if self._before_commit is not None:
                self._before_commit()

    def _save_progress(
        self, conn: Connection, progress: dict[int, tuple[int, list[SeqRange]]]
    ) -> None:
        """Every device's new progress: one statement on PostgreSQL (locked rows, key order)."""
        at = now_ms()
        values = [
            (pk, through, [[m.first, m.last] for m in missing])
            for pk, (through, missing) in sorted(progress.items())
        ]
        if self._pg:
            conn.execute(
                text(
                    "UPDATE ingest_progress p SET committed_through = v.through, "
                    "gaps = v.gaps::jsonb, updated_at_ms = :at "
                    "FROM unnest(CAST(:pks AS bigint[]), CAST(:throughs AS bigint[]), "
                    "CAST(:gaps AS text[])) AS v(pk, through, gaps) WHERE p.device_pk = v.pk"
                ),
                {
                    "pks": [v[0] for v in values],
                    "throughs": [v[1] for v in values],
                    "gaps": [_JSON(v[2]) for v in values],
                    "at": at,
                },
            )
            return
        for pk, through, gaps in values:
            conn.execute(
                update(IngestProgress)
                .where(IngestProgress.device_pk == pk)
                .values(committed_through=through, gaps=gaps, updated_at_ms=at)
            )

    @staticmethod
    def _top(conn: Connection, devices: list[int]) -> dict[int, int]:
        """Per device, the highest seq stored (devices with none stored are left out)."""
        return {
            int(pk): int(mx)
            for pk, mx in conn.execute(
                select(StoredEvent.device_pk, func.max(StoredEvent.seq))
                .where(StoredEvent.device_pk.in_(devices))
                .group_by(StoredEvent.device_pk)
            )
        }

    def _insert(
        self,
        conn: Connection,
        rows: list[dict[str, Any]],
        through: dict[int, int],
        top: dict[int, int] | None,
    ) -> list[dict[str, Any]]:
        """Store the rows not stored yet; returns those stored now (each (device, seq) once).

        ``through``: per device, the ``committed_through`` read under its progress lock; every
        seq at or below it is stored already (or was, in a month since retired), so it is
        never stored again. ``top`` (PostgreSQL): per device, the highest seq stored."""
        rows = [r for r in rows if r["seq"] > through.get(r["device_pk"], 0)]
        if not rows:
            return []
        devices = sorted({r["device_pk"] for r in rows})
        if not self._pg:
            seen = _stored_keys(conn, rows)
            new: dict[tuple[int, int], dict[str, Any]] = {}
            for r in rows:
                key = (r["device_pk"], r["seq"])
                if key not in seen:
                    new.setdefault(key, r)
            if new:
                conn.execute(
                    sqlite_insert(StoredEvent).prefix_with("OR IGNORE"), list(new.values())
                )
            return list(new.values())
        # Fast path: rows above everything stored for their device cannot conflict (we hold the
        # device's progress lock, so no other worker inserts for it now): COPY them straight in.
        # The rest (re-sends, gap fills) go through a staging table: a row is inserted only when
        # no copy of its (device, seq) is stored in any partition. The primary key carries the
        # partition key at_ms, which a re-send keeps, so ON CONFLICT alone would catch every
        # honest re-send; the NOT EXISTS also refuses a second time for the same seq.
        if top is None:
            top = self._top(conn, devices)
        fresh: dict[tuple[int, int], dict[str, Any]] = {}
        others: dict[tuple[int, int], dict[str, Any]] = {}
        for r in rows:
            key = (r["device_pk"], r["seq"])
            if r["seq"] > (top.get(r["device_pk"]) or 0):
                fresh.setdefault(key, r)  # a batch sent twice in one transaction: once
            else:
                others.setdefault(key, r)
        inserted = list(fresh.values())
        for r in inserted:
            r["fresh"] = True  # above all its device had stored (the roll-ups' fast path)
        if fresh:
            self._copy(conn, "events", fresh.values())
        if others:
            conn.execute(
                text(
                    "CREATE TEMP TABLE IF NOT EXISTS ingest_staging "
                    "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
            )
            self._copy(conn, "ingest_staging", others.values())
            cols = ", ".join(_COLUMNS)
            result = conn.execute(
                text(
                    f"INSERT INTO events ({cols}) SELECT {cols} FROM ingest_staging s "
                    "WHERE NOT EXISTS (SELECT 1 FROM events e "
                    "WHERE e.device_pk = s.device_pk AND e.seq = s.seq) "
                    "ON CONFLICT (device_pk, seq, at_ms) DO NOTHING RETURNING device_pk, seq"
                )
            )
            stored = {(int(pk), int(seq)) for pk, seq in result}
            conn.execute(text("TRUNCATE ingest_staging"))
            inserted.extend(r for k, r in others.items() if k in stored)
        return inserted

    @staticmethod
    def _copy(conn: Connection, table: str, rows: Iterable[dict[str, Any]]) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        cols = ", ".join(_COLUMNS)
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(
                    (
                        r["device_pk"],
                        r["seq"],
                        r["school_id"],
                        r["at_ms"],
                        r["kind"],
                        r["terminal"],
                        r["student_id"],
                        r["staff_id"],
                        _JSON(r["payload"]),
                        r["received_at_ms"],
                    )
                )

    @staticmethod
    def _progress(conn: Connection, device_pk: int, through: int) -> tuple[int, list[SeqRange]]:
        """Advance ``through`` over the contiguous stored seqs; list the gaps above it."""
        # The usual case (batches arrive in order): everything above ``through`` is contiguous.
        count, top = conn.execute(
            select(func.count(), func.max(StoredEvent.seq)).where(
                StoredEvent.device_pk == device_pk, StoredEvent.seq > through
            )
        ).one()
        if top is None:
            return through, []
        if count == top - through:
            return int(top), []
        seqs = conn.execute(
            select(StoredEvent.seq)
            .where(StoredEvent.device_pk == device_pk, StoredEvent.seq > through)
            .order_by(StoredEvent.seq)
            .limit(PROGRESS_SCAN_LIMIT)
        ).scalars()
        return _advance(through, seqs)

    # ------------------------------------------------------------------ rejections

    def record_rejections(self, rejections: Iterable[Rejection]) -> None:
        """Count and alarm refused batches. Logs carry ids and reasons, never event contents."""
        at = now_ms()
        with self._engine.begin() as conn:
            for rej in rejections:
                if rej.reason is RejectReason.DUPLICATE:
                    log.info("duplicate batch school=%s device=%s", rej.school, rej.device)
                elif rej.reason in PARKED:
                    log.warning(
                        "parked events school=%s device=%s reason=%s: %s",
                        rej.school,
                        rej.device,
                        rej.reason.value,
                        rej.detail,
                    )
                    conn.execute(
                        insert(ServerAlarm).values(
                            at_ms=at,
                            school=rej.school,
                            device=rej.device,
                            code=f"event_parked:{rej.reason.value}",
                            detail=rej.detail[:500],
                        )
                    )
                else:
                    log.warning(
                        "rejected batch school=%s device=%s reason=%s: %s",
                        rej.school,
                        rej.device,
                        rej.reason.value,
                        rej.detail,
                    )
                    conn.execute(
                        insert(ServerAlarm).values(
                            at_ms=at,
                            school=rej.school,
                            device=rej.device,
                            code=f"batch_rejected:{rej.reason.value}",
                            detail=rej.detail[:500],
                        )
                    )
                values = {
                    "school": rej.school[:64],
                    "device": rej.device[:64],
                    "reason": rej.reason.value,
                    "count": 1,
                    "first_at_ms": at,
                    "last_at_ms": at,
                }
                if self._pg:
                    pg = pg_insert(IngestRejection).values(**values)
                    conn.execute(
                        pg.on_conflict_do_update(
                            index_elements=["school", "device", "reason"],
                            set_={"count": IngestRejection.count + 1, "last_at_ms": at},
                        )
                    )
                else:
                    lite = sqlite_insert(IngestRejection).values(**values)
                    conn.execute(
                        lite.on_conflict_do_update(
                            index_elements=["school", "device", "reason"],
                            set_={"count": IngestRejection.count + 1, "last_at_ms": at},
                        )
                    )
