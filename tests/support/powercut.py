"""A disk that loses every write not yet synced: an APSW VFS for SQLite, and a ``sqlite3``-like
face over APSW so the edge store's own code (aiosqlite, the journal thread, migrations) runs on
it unchanged.

SIGKILL keeps the operating system's page cache, so it cannot catch a missing fsync. Here a
write reaches the real file only when SQLite syncs that file (``xSync``): until then it lives in
memory (the "page cache"). ``PowerCutVFS.power_cut()`` drops everything not synced, in every
file (database, WAL), and fails every later write or sync; the real files are then exactly what
a disk would hold after the power came back. A sync and the cut exclude each other, so a commit
whose sync returned is on the real file, and one whose sync comes after the cut fails.

Not modelled: the directory entry of a new file (a file exists once created), and torn writes
within a sector (a synced write lands whole, an unsynced one not at all).

``route_sqlite(vfs, directory)`` makes ``sqlite3.connect`` open the files under ``directory``
with APSW on the VFS (a monkeypatch, undone on exit); the stdlib and APSW each bring their own
SQLite, and one file must never be open in both at once.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apsw

SQLITE_FCNTL_SIZE_HINT = 5
SQLITE_FCNTL_CHUNK_SIZE = 6


class _Image:
    """What SQLite sees of one file: the real file's synced bytes plus unsynced writes."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.dirty: list[tuple[int, int]] = []  # (offset, length) written since the last sync
        self.truncated = False


class PowerCutFile(apsw.VFSFile):
    def __init__(self, vfs: PowerCutVFS, name: Any, flags: list[int]) -> None:
        super().__init__("", name, flags)  # the real file, opened by the default VFS
        self.vfs = vfs
        self.path = name.filename() if hasattr(name, "filename") else str(name)
        with vfs.lock:
            image = vfs.images.get(self.path)
            if image is None:
                size = super().xFileSize()
                image = _Image(super().xRead(size, 0) if size else b"")
                vfs.images[self.path] = image
        self.image = image

    def xRead(self, amount: int, offset: int) -> bytes:
        with self.vfs.lock:
            return bytes(self.image.data[offset : offset + amount])

    def xFileSize(self) -> int:
        with self.vfs.lock:
            return len(self.image.data)

    def xWrite(self, data: bytes, offset: int) -> None:
        with self.vfs.lock:
            self.vfs.tick()
            self.vfs.check_power()
            buf = self.image.data
            if len(buf) < offset:
                buf.extend(bytes(offset - len(buf)))
            buf[offset : offset + len(data)] = data
            self.image.dirty.append((offset, len(data)))
            self.vfs.unsynced_writes += 1

    def xTruncate(self, newsize: int) -> None:
        with self.vfs.lock:
            self.vfs.check_power()
            del self.image.data[newsize:]
            self.image.truncated = True

    def xSync(self, flags: int) -> None:
        with self.vfs.lock:  # the cut waits for a sync under way, and a later sync fails
            self.vfs.check_power()
            image = self.image
            if image.truncated:
                super().xTruncate(len(image.data))
            for offset, length in image.dirty:
                chunk = bytes(image.data[offset : offset + length])
                if chunk:
                    super().xWrite(chunk, offset)
            image.dirty.clear()
            image.truncated = False
            super().xSync(flags)
            self.vfs.syncs += 1
            self.vfs.synced_files.add(self.path)

    def xFileControl(self, op: int, ptr: int) -> bool:
        if op in (SQLITE_FCNTL_SIZE_HINT, SQLITE_FCNTL_CHUNK_SIZE):
            return True  # would grow the real file behind the image's back; a hint only
        return bool(super().xFileControl(op, ptr))


class PowerCutVFS(apsw.VFS):
    """``apsw.Connection(path, vfs=vfs.name)``; ``power_cut()`` drops what is not synced."""

    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.name = f"powercut{next(self._ids)}"
        super().__init__(self.name, "")
        self.lock = threading.RLock()
        self.images: dict[str, _Image] = {}
        self.cut = False
        self.syncs = 0
        self.synced_files: set[str] = set()
        self.unsynced_writes = 0
        self.lost_writes = 0
        self._armed: int | None = None

    def arm(self, writes: int) -> None:
        """Cut the power when the ``writes``-th write from now arrives (inside a commit)."""
        with self.lock:
            self._armed = writes

    def tick(self) -> None:
        if self._armed is not None:
            self._armed -= 1
            if self._armed <= 0:
                self._armed = None
                self.power_cut()

    def xOpen(self, name: Any, flags: list[int]) -> PowerCutFile:
        return PowerCutFile(self, name, flags)

    def xDelete(self, filename: str, syncdir: bool) -> None:
        with self.lock:
            if self.cut:
                return  # the power is off: nothing changes on the disk any more
            self.images.pop(filename, None)
            super().xDelete(filename, syncdir)

    def check_power(self) -> None:
        if self.cut:
            raise apsw.IOError("the power is off")

    def power_cut(self) -> int:
        """Drop every unsynced write; returns how many writes were lost."""
        with self.lock:
            self.cut = True
            lost = sum(len(i.dirty) for i in self.images.values())
            self.lost_writes += lost
            self.images.clear()
            return lost


# ------------------------------------------------------------------ sqlite3's face over APSW


def _translate(err: apsw.Error) -> sqlite3.Error:
    if isinstance(err, apsw.ConstraintError):
        return sqlite3.IntegrityError(str(err))
    if isinstance(err, apsw.CorruptError | apsw.NotADBError):
        return sqlite3.DatabaseError(str(err))
    return sqlite3.OperationalError(str(err))


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except apsw.Error as err:
        raise _translate(err) from err


class Cursor:
    arraysize = 1
    row_factory = None

    def __init__(self, conn: Connection) -> None:
        self.connection = conn
        self._cur = conn.apsw.cursor()
        self._rows: Iterator[Any] = iter(())
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.description: tuple[tuple[Any, ...], ...] | None = None

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        sql = self.connection.rewrite(sql)
        with _errors():
            self._rows = self._cur.execute(sql, parameters or None)
            try:
                desc = self._cur.get_description()
                self.description = tuple((d[0], None, None, None, None, None, None) for d in desc)
            except apsw.ExecutionCompleteError:
                self.description = None
        db = self.connection.apsw
        self.rowcount = db.changes() if self.description is None else -1
        self.lastrowid = db.last_insert_rowid()
        return self

    def executemany(self, sql: str, seq: Any) -> Cursor:
        with _errors():
            before = self.connection.apsw.total_changes()
            self._cur.executemany(self.connection.rewrite(sql), list(seq))
            self.rowcount = self.connection.apsw.total_changes() - before
        self._rows = iter(())
        return self

    def executescript(self, sql: str) -> Cursor:
        with _errors():
            self._cur.execute(sql)
        self._rows = iter(())
        return self

    def fetchone(self) -> Any:
        with _errors():
            return next(self._rows, None)

    def fetchmany(self, size: int | None = None) -> list[Any]:
        with _errors():
            return list(itertools.islice(self._rows, size or self.arraysize))

    def fetchall(self) -> list[Any]:
        with _errors():
            return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return self._rows

    def close(self) -> None:
        with contextlib.suppress(apsw.Error):
            self._cur.close()


class Connection:
    """The parts of ``sqlite3.Connection`` the edge store and aiosqlite use (autocommit)."""

    isolation_level = None
    row_factory = None
    text_factory = str

    def __init__(self, path: str, vfs: PowerCutVFS, synchronous: str | None) -> None:
        with _errors():
            self.apsw = apsw.Connection(path, vfs=vfs.name)
            self.apsw.set_busy_timeout(5000)  # sqlite3.connect's default timeout
        self._synchronous = synchronous

    def rewrite(self, sql: str) -> str:
        """With ``synchronous`` set, every ``PRAGMA synchronous`` asks for that level instead
        (the harness's self-check: a store that forgot synchronous=FULL)."""
        if self._synchronous and sql.replace(" ", "").upper().startswith("PRAGMASYNCHRONOUS="):
            return f"PRAGMA synchronous={self._synchronous}"
        return sql

    def cursor(self) -> Cursor:
        return Cursor(self)

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        return Cursor(self).execute(sql, parameters)

    def executemany(self, sql: str, seq: Any) -> Cursor:
        return Cursor(self).executemany(sql, seq)

    def executescript(self, sql: str) -> Cursor:
        return Cursor(self).executescript(sql)

    @property
    def in_transaction(self) -> bool:
        return bool(self.apsw.in_transaction)

    @property
    def total_changes(self) -> int:
        return int(self.apsw.total_changes())

    def commit(self) -> None:
        if self.in_transaction:
            self.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.execute("ROLLBACK")

    def close(self) -> None:
        try:
            self.apsw.close()
        except apsw.Error:
            self.apsw.close(True)  # after a power cut: let go of the file whatever happened


@contextlib.contextmanager
def route_sqlite(
    vfs: PowerCutVFS, directory: Path, *, synchronous: str | None = None
) -> Iterator[list[Connection]]:
    """While inside, ``sqlite3.connect`` of a file under ``directory`` gives a ``Connection``
    on ``vfs``; yields the connections made (all must be closed before the stdlib opens the
    files again)."""
    real_connect = sqlite3.connect
    made: list[Connection] = []
    root = str(directory.resolve())

    def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        path = str(Path(str(database)).resolve())
        if not path.startswith(root):
            return real_connect(database, *args, **kwargs)
        conn = Connection(path, vfs, synchronous)
        made.append(conn)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        yield made
    finally:
        sqlite3.connect = real_connect
        for conn in made:
            conn.close()
