"""Face templates in the edge store's SQLite file, in their own table, encrypted.

``FaceTemplateStore`` opens its own aiosqlite connection to the SAME file as ``EdgeStore`` (the
edge store must exist: it is never created here) and keeps only AES-GCM blobs in
``face_templates``. The consent gate is part of the insert itself: a template is written only if,
in the same statement, the ``consents`` table says biometric consent is granted, so an enrolment
racing a withdrawal either lands before it (and is then purged) or not at all.

Deleted rows are overwritten (``secure_delete``); note that old pages can survive in the WAL
until the next checkpoint, and in backups of the file: the blobs are ciphertext either way, and
backups of the edge store must exclude ``face_templates`` (see the README).
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import numpy.typing as npt

from edge.faces.crypto import Encoding, TemplateCipher
from edge.faces.matcher import Gallery
from protocol.messages import ConsentKind

SCHEMA = """
CREATE TABLE IF NOT EXISTS face_templates (
  id INTEGER PRIMARY KEY,
  student_id TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  source TEXT NOT NULL,   -- 'camera' or 'file': how it was enrolled, never the image
  blob BLOB NOT NULL      -- AES-GCM(encoding), associated data = the student id
);
CREATE INDEX IF NOT EXISTS face_templates_student ON face_templates (student_id);
"""

_HAS_CONSENT = (
    "EXISTS (SELECT 1 FROM consents c WHERE c.student_id = ? AND c.kind = ? AND c.granted = 1)"
)


class FaceStoreError(Exception):
    """The face template table cannot be used (no edge store, or the database failed)."""


class NoBiometricConsent(FaceStoreError):
    """Refused: the student has no recorded, granted biometric consent."""

    def __init__(self, student_id: str) -> None:
        super().__init__(f"student {student_id!r} has no granted biometric consent")
        self.student_id = student_id


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    id: int
    student_id: str
    created_ms: int
    source: str
    encoding: Encoding


class FaceTemplateStore:
    def __init__(self, db: aiosqlite.Connection, cipher: TemplateCipher) -> None:
        self._db = db
        self._cipher = cipher
        self.write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, cipher: TemplateCipher) -> FaceTemplateStore:
        exists = await asyncio.to_thread(lambda: path.exists() and path.stat().st_size > 0)
        if not exists:
            raise FaceStoreError(f"{path}: no edge store here (open EdgeStore first)")
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.execute("PRAGMA busy_timeout=5000")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA secure_delete=ON")
            async with db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'consents'"
            ) as cur:
                if await cur.fetchone() is None:
                    raise FaceStoreError(f"{path}: not an edge store (no consents table)")
            await db.executescript(SCHEMA)
        except sqlite3.DatabaseError as err:
            await db.close()
            raise FaceStoreError(f"{path}: cannot open face templates ({err})") from err
        except BaseException:
            await db.close()
            raise
        return cls(db, cipher)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> FaceTemplateStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def add(
        self, student_id: str, encoding: npt.ArrayLike, *, now_ms: int, source: str
    ) -> int:
        """Store one template; NoBiometricConsent unless consent is granted at this moment."""
        blob = self._cipher.encrypt(student_id, encoding)
        async with self.write_lock:
            cur = await self._db.execute(
                f"INSERT INTO face_templates (student_id, created_ms, source, blob) "
                f"SELECT ?, ?, ?, ? WHERE {_HAS_CONSENT}",
                (student_id, now_ms, source, blob, student_id, ConsentKind.BIOMETRIC.value),
            )
            row_id = cur.lastrowid if cur.rowcount == 1 else None
            await cur.close()
        if row_id is None:
            raise NoBiometricConsent(student_id)
        return row_id

    async def templates(self, student_id: str | None = None) -> list[StoredTemplate]:
        """Decrypted templates (of one student, or all). TemplateIntegrityError on tampering."""
        sql = "SELECT id, student_id, created_ms, source, blob FROM face_templates"
        args: tuple[str, ...] = ()
        if student_id is not None:
            sql += " WHERE student_id = ?"
            args = (student_id,)
        async with self._db.execute(sql + " ORDER BY id", args) as cur:
            rows = await cur.fetchall()
        return [
            StoredTemplate(int(i), sid, int(ms), src, self._cipher.decrypt(sid, blob))
            for i, sid, ms, src, blob in rows
        ]

    async def gallery(self) -> Gallery:
        """Every template of the school, decrypted into a matcher gallery (memory only)."""
        rows = await self.templates()
        return await asyncio.to_thread(Gallery.build, [(t.student_id, t.encoding) for t in rows])

    async def enrolled_students(self) -> dict[str, int]:
        """Student id -> number of templates."""
        async with self._db.execute(
            "SELECT student_id, COUNT(*) FROM face_templates GROUP BY student_id"
        ) as cur:
            return {sid: int(n) for sid, n in await cur.fetchall()}

    async def delete_student(self, student_id: str) -> int:
        """Delete every template of one student; the number deleted."""
        async with self.write_lock:
            cur = await self._db.execute(
                "DELETE FROM face_templates WHERE student_id = ?", (student_id,)
            )
            n = cur.rowcount
            await cur.close()
        return n

    async def delete_without_consent(self) -> dict[str, int]:
        """Delete the templates of every student without granted biometric consent right now
        (consent withdrawn, or the student removed from the roster): student id -> count."""
        async with (
            self.write_lock,
            self._db.execute(
                "DELETE FROM face_templates AS t WHERE NOT EXISTS (SELECT 1 FROM consents c "
                "WHERE c.student_id = t.student_id AND c.kind = ? AND c.granted = 1) "
                "RETURNING student_id",
                (ConsentKind.BIOMETRIC.value,),
            ) as cur,
        ):
            gone = [sid for (sid,) in await cur.fetchall()]
        counts: dict[str, int] = {}
        for sid in gone:
            counts[sid] = counts.get(sid, 0) + 1
        return counts
