"""THE proof (DESIGN invariant 5): face templates never leave the school.

A real edge (EdgeStore + EdgeSync) talks to the real server code (ingest worker and downlink
service, SQLite) through the real Mosquitto on 127.0.0.1:1883 under a private topic prefix. The
edge enrols the astronaut's face for a consented student, recognises it at a face-only terminal
fed by a folder camera, and then the console withdraws the biometric consent through the
downlink. A raw subscriber on ``<prefix>/#`` records every payload on the wire. Then:

- no payload holds the encodings' bytes (float64 or float32, little or big endian, nor any 8-byte
  window of them), nor their base64 or hex, nor a JPEG/PNG image;
- the server stored the visit and the FaceTemplatesDeletedEvent, and its database file holds no
  encoding bytes and no column meant for biometric data;
- the template rows are gone from the edge SQLite file, deleted and journaled within 60 s;
- no log line (DEBUG and up) holds the encodings' digits.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import inspect, select

from edge.config import TerminalConfig
from edge.daemon import run_face_terminal
from edge.faces.lawful import TRANSFORMS, astronaut
from edge.faces.service import FaceService
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from edge.sync import EdgeSync, SyncSettings
from protocol import topics
from protocol.codec import decode
from protocol.messages import (
    ConsentKind,
    ConsentSet,
    EventAck,
    FaceTemplatesDeletedEvent,
    LibraryVisitEvent,
    PolicySet,
    StudentRecord,
    StudentUpsert,
)
from server.db import make_engine
from server.embedded import EmbeddedServer
from server.models import StoredEvent
from tests.support.faces import CARD_ONLY, CONSENTED, consent, face_crop
from tests.support.policy import policy_doc
from tests.support.sync import Probe
from tests.support.wait import wait_until, wait_until_async

pytestmark = [pytest.mark.mosquitto]

SCHOOL, DEVICE = "S1", "edge-faces"
IMAGE_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}


def upsert(sid: str, *kinds: ConsentKind) -> StudentUpsert:
    return StudentUpsert(
        student=StudentRecord(
            id=sid, grade=3, class_name="3A", shift=1, consents=[consent(k) for k in kinds]
        )
    )


def forbidden_needles(encodings: list[np.ndarray]) -> dict[str, bytes]:
    """Every byte string that would betray an encoding on the wire or on disk."""
    needles: dict[str, bytes] = {}
    for n, enc in enumerate(encodings):
        forms = {
            "f64le": enc.astype("<f8").tobytes(),
            "f64be": enc.astype(">f8").tobytes(),
            "f32le": enc.astype("<f4").tobytes(),
            "f32be": enc.astype(">f4").tobytes(),
        }
        for form, raw in forms.items():
            for i in range(0, len(raw) - 7):  # any 8-byte window: even a slice of a template
                needles[f"enc{n}.{form}[{i}:{i + 8}]"] = raw[i : i + 8]
            needles[f"enc{n}.{form}.b64"] = base64.b64encode(raw)[:40]
            needles[f"enc{n}.{form}.b64url"] = base64.urlsafe_b64encode(raw)[:40]
            needles[f"enc{n}.{form}.hex"] = raw.hex()[:32].encode()
        # base64 of a slice starting at each element boundary (encoding aligned elsewhere)
        raw = forms["f64le"]
        for i in range(0, len(raw) - 24, 8):
            needles[f"enc{n}.f64le.b64@{i}"] = base64.b64encode(raw[i : i + 24])
    return needles


def digit_needles(encodings: list[np.ndarray]) -> list[str]:
    """The printed digits of the encodings' components (repr, numpy's 8 digits, 6 digits)."""
    out: set[str] = set()
    for enc in encodings:
        for v in enc:
            f = float(v)
            if abs(f) < 0.01:
                continue  # too few digits to be telling
            out.add(repr(f))
            out.add(f"{f:.8f}")
            out.add(f"{f:.6f}")
            out.add(np.format_float_positional(np.float32(f)))
    return sorted(out)


def find_leaks(blob: bytes, needles: dict[str, bytes]) -> list[str]:
    return [name for name, needle in needles.items() if needle in blob]


@pytest.mark.timeout(240)
async def test_templates_never_leave_the_school(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    prefix = f"qaqpa-test/{uuid.uuid4().hex[:10]}/v1"
    probe = Probe(1883)
    probe.subscribe(f"{prefix}/#")
    frames = tmp_path / "frames"
    frames.mkdir()
    img = astronaut()
    for i, name in enumerate(("original", "darker_0.6", "jpeg_q30", "original")):
        cv2.imwrite(
            str(frames / f"{i:02d}.png"), cv2.cvtColor(TRANSFORMS[name](img), cv2.COLOR_RGB2BGR)
        )
    term = TerminalConfig.model_validate(
        {
            "id": "lib-cam",
            "kind": "library",
            "face_mode": "face_only",
            "camera": str(frames),
            "face_debounce": 60,
        }
    )
    edge_db = tmp_path / "edge.sqlite"
    server = EmbeddedServer(tmp_path / "server", mqtt_port=1883, external_broker=True)
    server.settings = server.settings.model_copy(update={"topic_prefix": prefix})
    encodings: list[np.ndarray] = []
    async with server:
        key, conn = server.add_device(SCHOOL, DEVICE)
        store = await EdgeStore.open(edge_db, school=SCHOOL, device=DEVICE)
        try:
            async with (
                EdgeSync(store, SyncSettings(**conn, ack_timeout_s=2.0), key) as sync,
                FaceService.open(store, edge_db, tmp_path / "face.key") as faces,
                Pipeline(store) as pipeline,
            ):
                # The console: a policy and two students, one with biometric consent.
                v = await asyncio.to_thread(
                    server.downlink.publish_changes,
                    SCHOOL,
                    [
                        PolicySet(policy=policy_doc()),
                        upsert(CONSENTED, ConsentKind.DATA, ConsentKind.BIOMETRIC),
                        upsert(CARD_ONLY, ConsentKind.DATA),
                    ],
                )
                await wait_until_async(
                    lambda: sync.applied_version >= v, 20, "the roster at the edge"
                )

                # Enrolment at the school (only with consent), then recognition at the door.
                await faces.enrol(CONSENTED, face_crop(img))
                encodings += [t.encoding for t in await faces.templates.templates()]
                (probe_face,) = await faces.encoder.encode(img)
                encodings.append(probe_face.encoding)
                await run_face_terminal(term, pipeline, store, faces, loop_source=False)
                visits = [e for e in await store.journal_rows() if isinstance(e, LibraryVisitEvent)]
                assert [(e.student_id, e.terminal) for e in visits] == [(CONSENTED, "lib-cam")]

                # The console withdraws the biometric consent: templates go within 60 s.
                t0 = time.time()
                await asyncio.to_thread(
                    server.downlink.publish_changes,
                    SCHOOL,
                    [
                        ConsentSet(
                            student_id=CONSENTED,
                            consent=consent(ConsentKind.BIOMETRIC, granted=False),
                        )
                    ],
                )
                await wait_until_async(
                    lambda: faces.deletions_journaled == 1, 60, "the journaled deletion"
                )
                deleted = [
                    e
                    for e in await store.journal_rows()
                    if isinstance(e, FaceTemplatesDeletedEvent)
                ]
                assert [(e.student_id, e.templates, e.reason) for e in deleted] == [
                    (CONSENTED, 1, "consent_withdrawn")
                ]
                took = deleted[0].at_ms / 1000 - t0
                assert len(faces.gallery) == 0
                last = store.last_seq

                async def all_acked() -> bool:
                    return (await sync.status()).committed_through >= last

                await wait_until_async(all_acked, 30, "the server acks every event")
        finally:
            await store.close()
    ack_topic = topics.ack(SCHOOL, DEVICE, prefix)

    def probe_saw_last_ack() -> bool:
        return any(decode(p, EventAck).committed_through >= last for p in probe.received(ack_topic))

    # the probe has seen the end of the conversation before its capture is searched
    await asyncio.to_thread(wait_until, probe_saw_last_ack, 10, "the probe sees the last ack")
    probe.close()
    print(f"\nwithdrawal -> deletion journaled in {took * 1000:.0f} ms")

    # 1. Every payload on the wire: no encoding bytes, no image.
    with probe.lock:
        captured = list(probe.messages)
    edge_topics = [t for t, _ in captured if f"/device/{DEVICE}/" in t]
    assert any(t.endswith("/events") for t in edge_topics), "nothing the edge published was seen"
    needles = forbidden_needles(encodings)
    for topic, payload in captured:
        assert not find_leaks(payload, needles), f"encoding bytes in a payload on {topic}"
        for kind, magic in IMAGE_MAGIC.items():
            assert magic not in payload, f"a {kind} image in a payload on {topic}"
        for digits in digit_needles(encodings):
            assert digits.encode() not in payload, f"encoding digits in a payload on {topic}"

    # 2. The server stored the visit and the deletion, with nothing biometric anywhere.
    engine = make_engine(server.settings.database_url)
    try:
        with engine.connect() as c:
            kinds = c.execute(select(StoredEvent.kind, StoredEvent.student_id)).all()
            columns = {
                f"{table}.{col['name']}"
                for table in inspect(c).get_table_names()
                for col in inspect(c).get_columns(table)
            }
    finally:
        engine.dispose()
    assert ("library_visit", CONSENTED) in kinds
    assert ("face_templates_deleted", CONSENTED) in kinds
    # Columns whose names match but hold nothing biometric, each with the reason.
    not_biometric = {
        "roster_import_previews.encoding": "the character set of an uploaded roster CSV",
        # the youth award's applicant uploads a photo for their personal card (seed 004); it is
        # shown, never matched: no template is made of it (only media *reuse* is checked)
        "badge_participants.photo": "an award participant's own application photo",
    }
    suspicious = [
        c
        for c in columns
        if any(w in c for w in ("template", "encoding", "face", "image", "photo"))
        and c not in not_biometric
    ]
    assert suspicious == [], f"server columns for biometric data: {suspicious}"
    server_files = [p for p in (tmp_path / "server").iterdir() if p.is_file()]
    for path in server_files:
        blob = path.read_bytes()
        assert not find_leaks(blob, needles), f"encoding bytes in the server's {path.name}"

    # 3. The edge's template rows are gone (and were never stored in clear).
    with sqlite3.connect(edge_db) as db:
        assert db.execute("SELECT COUNT(*) FROM face_templates").fetchone() == (0,)
    for path in tmp_path.glob("edge.sqlite*"):
        assert not find_leaks(path.read_bytes(), needles), f"clear encoding in {path.name}"

    # 4. No log line holds an encoding's digits.
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "face templates deleted" in text  # the capture works: the withdrawal was logged
    leaked = [d for d in digit_needles(encodings) if d in text]
    assert leaked == [], f"encoding digits in the logs: {leaked[:5]}"
