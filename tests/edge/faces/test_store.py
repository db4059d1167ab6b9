from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from edge.faces.crypto import TemplateCipher, TemplateIntegrityError
from edge.faces.store import FaceStoreError, FaceTemplateStore, NoBiometricConsent
from edge.store import EdgeStore
from protocol.messages import ConsentKind
from tests.support.faces import CARD_ONLY, CONSENTED, roster, student, unit_encoding


def raw_bytes(db_path: Path) -> bytes:
    out = b""
    for p in db_path.parent.iterdir():
        if p.name.startswith(db_path.name):  # the database, its WAL and shared memory
            out += p.read_bytes()
    return out


def plaintext_forms(enc: np.ndarray) -> list[bytes]:
    return [
        enc.astype("<f8").tobytes(),
        enc.astype(">f8").tobytes(),
        enc.astype("<f4").tobytes(),
        enc.astype("<f8").tobytes()[:64],  # any 8 consecutive components
        repr(float(enc[0])).encode(),
    ]


async def test_only_ciphertext_is_at_rest(
    templates: FaceTemplateStore, edge_store: EdgeStore, db_path: Path
) -> None:
    encs = [unit_encoding(i) for i in range(3)]
    for e in encs:
        await templates.add(CONSENTED, e, now_ms=1, source="file")
    await edge_store.checkpoint()
    blob = raw_bytes(db_path)
    for e in encs:
        for form in plaintext_forms(e):
            assert form not in blob
    got = await templates.templates(CONSENTED)
    assert [np.array_equal(t.encoding, e) for t, e in zip(got, encs, strict=True)] == [True] * 3


async def test_enrolment_without_biometric_consent_is_refused_by_the_store(
    templates: FaceTemplateStore,
) -> None:
    for sid in (CARD_ONLY, "not-on-roster"):
        with pytest.raises(NoBiometricConsent):
            await templates.add(sid, unit_encoding(1), now_ms=1, source="camera")
    assert await templates.enrolled_students() == {}


async def test_tampered_ciphertext_is_refused(templates: FaceTemplateStore, db_path: Path) -> None:
    tid = await templates.add(CONSENTED, unit_encoding(1), now_ms=1, source="file")
    with sqlite3.connect(db_path) as db:
        (blob,) = db.execute("SELECT blob FROM face_templates WHERE id = ?", (tid,)).fetchone()
        bad = bytearray(blob)
        bad[40] ^= 0x80
        db.execute("UPDATE face_templates SET blob = ? WHERE id = ?", (bytes(bad), tid))
    with pytest.raises(TemplateIntegrityError):
        await templates.gallery()


async def test_swapped_rows_are_refused(
    edge_store: EdgeStore, templates: FaceTemplateStore, db_path: Path
) -> None:
    await edge_store.apply_snapshot(
        roster(2, [student("st-bio2", ConsentKind.DATA, ConsentKind.BIOMETRIC)])
    )
    a = await templates.add(CONSENTED, unit_encoding(1), now_ms=1, source="file")
    b = await templates.add("st-bio2", unit_encoding(2), now_ms=1, source="file")
    with sqlite3.connect(db_path) as db:  # an attacker relabels the rows to swap two children
        db.execute("UPDATE face_templates SET student_id = 'x' WHERE id = ?", (a,))
        db.execute("UPDATE face_templates SET student_id = ? WHERE id = ?", (CONSENTED, b))
        db.execute("UPDATE face_templates SET student_id = 'st-bio2' WHERE id = ?", (a,))
    with pytest.raises(TemplateIntegrityError):
        await templates.templates(CONSENTED)
    with pytest.raises(TemplateIntegrityError):
        await templates.templates("st-bio2")


async def test_needs_an_existing_edge_store(tmp_path: Path, cipher: TemplateCipher) -> None:
    with pytest.raises(FaceStoreError, match="no edge store"):
        await FaceTemplateStore.open(tmp_path / "none.sqlite", cipher)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(FaceStoreError, match="not an edge store"):
        await FaceTemplateStore.open(other, cipher)


async def test_edge_store_reopens_and_snapshots_keep_consented_templates(
    edge_store: EdgeStore, templates: FaceTemplateStore, db_path: Path
) -> None:
    await templates.add(CONSENTED, unit_encoding(1), now_ms=1, source="file")
    await edge_store.apply_snapshot(roster(3))  # a snapshot rewrites the roster tables only
    assert await templates.enrolled_students() == {CONSENTED: 1}
    again = await EdgeStore.open(db_path, school="S1", device="d1", create=False)
    await again.close()
    gallery = await templates.gallery()
    assert len(gallery) == 1 and gallery.students == {CONSENTED}
