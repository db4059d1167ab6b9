"""Staff sessions of the edge's own web pages (``web_sessions``, migration 2) and the mark of
each page's staff token in ``meta`` (a changed token revokes the page's sessions).

Rows are written through the journal thread like every other write of the store; a session is
read from the database on every request, so a revocation by another process (``qaqpa edge
kiosk-sessions revoke`` while the daemon runs) holds from the next request on."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from edge.store.base import StoreBase

KEEP_ENDED_MS = 30 * 24 * 3600 * 1000  # ended sessions stay listed for a month, then go


@dataclass(frozen=True, slots=True)
class WebSession:
    """One device's sign-in to one page. ``secret_hash`` is the SHA-256 of the cookie's secret."""

    id: str
    page: str
    staff_id: str | None
    address: str
    agent: str
    created_ms: int
    expires_ms: int
    seen_ms: int
    revoked_ms: int | None = None
    revoked_why: str | None = None
    secret_hash: str = ""

    def active(self, now_ms: int) -> bool:
        return self.revoked_ms is None and now_ms < self.expires_ms


_COLUMNS = (
    "id, page, staff_id, address, agent, created_ms, expires_ms, seen_ms, revoked_ms, "
    "revoked_why, secret_hash"
)


def _token_key(page: str) -> str:
    return f"web_token:{page}"


class WebSessionsMixin(StoreBase):
    async def add_web_session(self, session: WebSession) -> None:
        """Store a new session; sessions ended more than a month ago are dropped meanwhile."""

        def add(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM web_sessions WHERE MIN(expires_ms, COALESCE(revoked_ms, "
                "expires_ms)) < ?",
                (session.created_ms - KEEP_ENDED_MS,),
            )
            db.execute(
                f"INSERT INTO web_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session.id,
                    session.page,
                    session.staff_id,
                    session.address,
                    session.agent,
                    session.created_ms,
                    session.expires_ms,
                    session.seen_ms,
                    session.revoked_ms,
                    session.revoked_why,
                    session.secret_hash,
                ),
            )

        await self._write(add)

    async def web_session(self, session_id: str) -> WebSession | None:
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM web_sessions WHERE id = ?", (session_id,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else WebSession(*row)

    async def web_sessions(self, page: str | None = None) -> list[WebSession]:
        """Every stored session (of one page), newest first, without their secret hashes."""
        sql = f"SELECT {_COLUMNS} FROM web_sessions"
        args: tuple[str, ...] = ()
        if page is not None:
            sql, args = sql + " WHERE page = ?", (page,)
        async with self._db.execute(sql + " ORDER BY created_ms DESC, id", args) as cur:
            rows = await cur.fetchall()
        return [WebSession(*row[:-1]) for row in rows]

    async def touch_web_session(self, session_id: str, now_ms: int) -> None:
        await self._write(
            lambda db: db.execute(
                "UPDATE web_sessions SET seen_ms = ? WHERE id = ?", (now_ms, session_id)
            )
        )

    async def revoke_web_sessions(
        self, ids: Sequence[str] | None, *, why: str, now_ms: int, page: str | None = None
    ) -> list[str]:
        """Revoke the active sessions among ``ids`` (None: every active one, of ``page`` when
        given); returns the ids revoked now."""

        def revoke(db: sqlite3.Connection) -> list[str]:
            return _revoke(db, ids, why=why, now_ms=now_ms, page=page)

        return await self._write(revoke)

    async def web_token_mark(self, page: str) -> str | None:
        async with self._db.execute(
            "SELECT value FROM meta WHERE key = ?", (_token_key(page),)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def replace_web_token(self, page: str, mark: str, *, now_ms: int) -> list[str]:
        """A new staff token for ``page``: its mark replaces the old one and every active
        session of the page is revoked, in one transaction. Returns the ids revoked."""

        def replace(db: sqlite3.Connection) -> list[str]:
            revoked = _revoke(db, None, why="token changed", now_ms=now_ms, page=page)
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_token_key(page), mark))
            return revoked

        return await self._write(replace)


def _revoke(
    db: sqlite3.Connection,
    ids: Sequence[str] | None,
    *,
    why: str,
    now_ms: int,
    page: str | None,
) -> list[str]:
    sql = "SELECT id FROM web_sessions WHERE revoked_ms IS NULL AND expires_ms > ?"
    args: list[object] = [now_ms]
    if page is not None:
        sql += " AND page = ?"
        args.append(page)
    active = [sid for (sid,) in db.execute(sql, args)]
    chosen = active if ids is None else [sid for sid in active if sid in set(ids)]
    db.executemany(
        "UPDATE web_sessions SET revoked_ms = ?, revoked_why = ? WHERE id = ?",
        [(now_ms, why, sid) for sid in chosen],
    )
    return chosen
