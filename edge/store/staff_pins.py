"""Staff PIN verifiers (``staff_pins``, migration 3) and the count of wrong entries.

A verifier arrives with a version (the console's reset counter): an older or equal version
never replaces a newer one, so a replayed downlink cannot bring back an old PIN. A new PIN
clears the wrong-entry count and any lockout."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class StaffPin:
    staff_id: str
    verifier: str
    version: int
    set_ms: int
    failures: int = 0
    not_before_ms: int = 0


class StaffPinsMixin(StoreBase):
    async def staff_pin(self, staff_id: str) -> StaffPin | None:
        async with self._db.execute(
            "SELECT staff_id, verifier, version, set_ms, failures, not_before_ms "
            "FROM staff_pins WHERE staff_id = ?",
            (staff_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else StaffPin(*row)

    async def set_staff_pin(self, staff_id: str, verifier: str, version: int, now_ms: int) -> bool:
        """Store a new verifier unless one of the same or a newer version is there; True when
        stored."""

        def put(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "INSERT INTO staff_pins VALUES (?, ?, ?, ?, 0, 0) ON CONFLICT (staff_id) DO UPDATE "
                "SET verifier = excluded.verifier, version = excluded.version, "
                "set_ms = excluded.set_ms, failures = 0, not_before_ms = 0 "
                "WHERE excluded.version > staff_pins.version",
                (staff_id, verifier, version, now_ms),
            )
            return cur.rowcount == 1

        return await self._write(put)

    async def record_pin_attempt(self, staff_id: str, *, ok: bool, not_before_ms: int) -> int:
        """Count a wrong entry (or clear the count after a right one); returns the count."""

        def put(db: sqlite3.Connection) -> int:
            if ok:
                db.execute(
                    "UPDATE staff_pins SET failures = 0, not_before_ms = 0 WHERE staff_id = ?",
                    (staff_id,),
                )
                return 0
            db.execute(
                "UPDATE staff_pins SET failures = failures + 1, not_before_ms = ? "
                "WHERE staff_id = ?",
                (not_before_ms, staff_id),
            )
            row = db.execute(
                "SELECT failures FROM staff_pins WHERE staff_id = ?", (staff_id,)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._write(put)

    async def forget_staff_pin(self, staff_id: str) -> None:
        await self._write(
            lambda db: db.execute("DELETE FROM staff_pins WHERE staff_id = ?", (staff_id,))
        )
