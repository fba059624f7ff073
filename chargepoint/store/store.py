"""The persistent store: charging sessions and a small key/value table in one SQLite file.

Design, and why:

- **One connection, one worker thread.** Every statement runs on a single-thread executor that owns the only
  connection. That gives SQLite the single writer it wants without locks of our own, and the asyncio loop
  never waits on disk I/O (an fsync on an SD card can take tens of milliseconds; the safety path must not
  wait for it).
- **WAL + ``synchronous=FULL``.** Once a method returns, its data survives a power cut: WAL alone with
  ``NORMAL`` may lose the last commits, which for us would be a lost or unbillable session.
- **Numbered migrations** (see :mod:`chargepoint.store.migrations`), each in its own transaction together
  with its ``PRAGMA user_version`` bump, so an interrupted upgrade leaves the previous version intact.
- **Every sqlite3 error becomes a** :class:`~chargepoint.errors.StoreError` **naming the database file**, so a
  log line on a charger in the field says which file is broken.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

from chargepoint.errors import StoreError
from chargepoint.store.migrations import MIGRATIONS, SCHEMA_VERSION

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_S = TypeVar("_S")

# How long a statement waits for a lock held by another connection (the sqlite3 shell of a technician, a
# backup tool) before it fails, instead of failing at once.
BUSY_TIMEOUT_ms: Final = 5000

# A new database file is readable by the charger's user only: it holds id tags (personal data).
_FILE_MODE: Final = 0o600

_SESSION_COLUMNS: Final = (
    "session_id, connector_id, id_tag, started_at, meter_start_Wh, stopped_at, meter_stop_Wh, "
    "stop_reason, last_meter_Wh, last_meter_at"
)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One charging session as persisted; a snapshot, never updated in place."""

    session_id: str
    """Local UUID4 string, known before the CSMS assigns its transaction id."""
    connector_id: int
    id_tag: str
    started_at: datetime
    """UTC, timezone-aware."""
    meter_start_Wh: int
    stopped_at: datetime | None
    meter_stop_Wh: int | None
    stop_reason: str | None
    """OCPP 1.6 reason vocabulary: "Local", "EVDisconnected", "PowerLoss", "Reboot", "Remote", ..."""
    last_meter_Wh: int
    """Last persisted meter reading of the session (``meter_start_Wh`` at start)."""
    last_meter_at: datetime
    """When ``last_meter_Wh`` was measured."""

    @property
    def energy_Wh(self) -> int | None:
        """Energy delivered, once the session has stopped; ``None`` while it is open."""
        if self.meter_stop_Wh is None:
            return None
        return self.meter_stop_Wh - self.meter_start_Wh

    @property
    def is_open(self) -> bool:
        return self.stopped_at is None


def _to_text(at: datetime) -> str:
    """ISO-8601 UTC with fixed width, so that text order in SQL is time order."""
    if at.tzinfo is None or at.utcoffset() is None:
        # A naive datetime is a caller bug: guessing its zone would shift billing times silently.
        raise ValueError(f"naive datetime {at!r}: the store needs timezone-aware datetimes")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _record(row: sqlite3.Row) -> SessionRecord:
    stopped_at: str | None = row["stopped_at"]
    return SessionRecord(
        session_id=row["session_id"],
        connector_id=row["connector_id"],
        id_tag=row["id_tag"],
        started_at=_from_text(row["started_at"]),
        meter_start_Wh=row["meter_start_Wh"],
        stopped_at=None if stopped_at is None else _from_text(stopped_at),
        meter_stop_Wh=row["meter_stop_Wh"],
        stop_reason=row["stop_reason"],
        last_meter_Wh=row["last_meter_Wh"],
        last_meter_at=_from_text(row["last_meter_at"]),
    )


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """An explicit write transaction (the connection is in autocommit mode).

    IMMEDIATE takes the write lock up front, so a read-then-write cannot fail half-way on a lock upgrade.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    conn.execute("COMMIT")


def _create_file(path: Path) -> None:
    """Create the database file with mode 0o600 if it does not exist yet, whatever the umask."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        return
    try:
        # os.open's mode is filtered by the umask; fchmod is not.
        os.fchmod(fd, _FILE_MODE)
    finally:
        os.close(fd)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            errno.EPROTO,
            f"database schema version {version} is newer than this firmware knows ({SCHEMA_VERSION}); "
            "was the firmware downgraded? Refusing to touch it",
            str(path),
        )
    for number, sql in MIGRATIONS:
        if number <= version:
            continue
        logger.info("store %s: applying migration %04d", path, number)
        # executescript() would COMMIT any open transaction first, so BEGIN/COMMIT go inside the script:
        # the schema change and the version bump are then one atomic step.
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise


def _connect(path: Path) -> sqlite3.Connection:
    """Runs on the worker thread: the connection is created, and only ever used, there."""
    _create_file(path)
    # isolation_level=None: autocommit, we write BEGIN/COMMIT ourselves (the sqlite3 module's implicit
    # transactions are surprising, and differ between Python versions).
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_ms}")
        mode: str = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(errno.EIO, f"cannot switch the journal to WAL (got {mode!r})", str(path))
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


class Store:
    """Async facade over the SQLite database; create it with :meth:`open`, finish with :meth:`close`."""

    def __init__(self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        # Private: use Store.open(), which builds the connection on the worker thread.
        self._path = path
        self._executor = executor
        self._conn = conn
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    # -- lifecycle -------------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating and migrating if needed) the database at ``path``.

        The parent directory must exist: creating it here would hide a wrong path in the config.
        """
        path = Path(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, functools.partial(_wrap_errors, path, _connect, path))
        except BaseException:
            executor.shutdown(wait=False)
            raise
        logger.info("store %s: open, schema version %d", path, SCHEMA_VERSION)
        return cls(path, executor, conn)

    async def close(self) -> None:
        """Close the connection and stop the worker thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._conn.close)
        finally:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- sessions --------------------------------------------------------------------------------------

    async def begin_session(
        self, connector_id: int, id_tag: str, meter_start_Wh: int, started_at: datetime
    ) -> SessionRecord:
        """Persist a new open session and return it (``last_meter_*`` = the start reading)."""
        started_text = _to_text(started_at)
        session_id = str(uuid.uuid4())

        def work(conn: sqlite3.Connection) -> SessionRecord:
            conn.execute(
                f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?)",
                (
                    session_id,
                    connector_id,
                    id_tag,
                    started_text,
                    meter_start_Wh,
                    meter_start_Wh,
                    started_text,
                ),
            )
            return self._fetch_session(conn, session_id)

        return await self._run(work)

    async def record_meter(self, session_id: str, energy_Wh: int, at: datetime) -> None:
        """Persist the latest meter reading of an open session.

        A reading below the session's start value (meter swapped, register glitch) is stored as the start
        value, so a recovered session never bills negative energy. A reading for a session that is already
        closed is ignored: a late sample must not change a finished record. Unknown id -> StoreError.
        """
        at_text = _to_text(at)

        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                record = self._fetch_session(conn, session_id)
                if not record.is_open:
                    logger.warning(
                        "store %s: meter reading for closed session %s ignored", self._path, session_id
                    )
                    return
                value_Wh = energy_Wh
                if value_Wh < record.meter_start_Wh:
                    logger.warning(
                        "store %s: session %s: reading %d Wh below start %d Wh, stored as the start value",
                        self._path,
                        session_id,
                        energy_Wh,
                        record.meter_start_Wh,
                    )
                    value_Wh = record.meter_start_Wh
                conn.execute(
                    "UPDATE sessions SET last_meter_Wh = ?, last_meter_at = ? WHERE session_id = ?",
                    (value_Wh, at_text, session_id),
                )

        await self._run(work)

    async def end_session(
        self, session_id: str, meter_stop_Wh: int, stopped_at: datetime, reason: str
    ) -> SessionRecord:
        """Close a session and return the closed record.

        Idempotent: ending a session that is already closed returns it unchanged, so a retry after a
        crash cannot rewrite a record that may already have been billed or sent. Unknown id -> StoreError.
        A stop reading below the start reading is stored as the start reading (no negative energy).
        """
        stopped_text = _to_text(stopped_at)

        def work(conn: sqlite3.Connection) -> SessionRecord:
            with _transaction(conn):
                record = self._fetch_session(conn, session_id)
                if not record.is_open:
                    return record
                stop_Wh = meter_stop_Wh
                if stop_Wh < record.meter_start_Wh:
                    logger.warning(
                        "store %s: session %s: stop reading %d Wh below start %d Wh, "
                        "stored as the start value",
                        self._path,
                        session_id,
                        meter_stop_Wh,
                        record.meter_start_Wh,
                    )
                    stop_Wh = record.meter_start_Wh
                # The stop reading is also the session's last reading.
                conn.execute(
                    "UPDATE sessions SET stopped_at = ?, meter_stop_Wh = ?, stop_reason = ?, "
                    "last_meter_Wh = ?, last_meter_at = ? WHERE session_id = ?",
                    (stopped_text, stop_Wh, reason, stop_Wh, stopped_text, session_id),
                )
                return self._fetch_session(conn, session_id)

        return await self._run(work)

    async def open_sessions(self) -> list[SessionRecord]:
        """Sessions not closed yet, oldest first."""

        def work(conn: sqlite3.Connection) -> list[SessionRecord]:
            rows = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE stopped_at IS NULL ORDER BY seq"
            ).fetchall()
            return [_record(row) for row in rows]

        return await self._run(work)

    async def recover_open_sessions(self, reason: str = "PowerLoss") -> list[SessionRecord]:
        """Close every session a crash or power cut left open, at its last persisted reading.

        ``meter_stop_Wh`` = ``last_meter_Wh`` and ``stopped_at`` = ``last_meter_at``: the last values we know
        were true, rather than "now", which would bill the time the charger was off. All in one
        transaction, so recovery happens exactly once; a second call returns ``[]``.
        """

        def work(conn: sqlite3.Connection) -> list[SessionRecord]:
            with _transaction(conn):
                ids = [
                    row["session_id"]
                    for row in conn.execute(
                        "SELECT session_id FROM sessions WHERE stopped_at IS NULL ORDER BY seq"
                    )
                ]
                conn.execute(
                    "UPDATE sessions SET stopped_at = last_meter_at, meter_stop_Wh = last_meter_Wh, "
                    "stop_reason = ? WHERE stopped_at IS NULL",
                    (reason,),
                )
                closed = [self._fetch_session(conn, session_id) for session_id in ids]
            for record in closed:
                logger.warning(
                    "store %s: recovered open session %s on connector %d: closed at %s with %s Wh (%s)",
                    self._path,
                    record.session_id,
                    record.connector_id,
                    record.stopped_at,
                    record.energy_Wh,
                    reason,
                )
            return closed

        return await self._run(work)

    async def session(self, session_id: str) -> SessionRecord | None:
        def work(conn: sqlite3.Connection) -> SessionRecord | None:
            row = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            return None if row is None else _record(row)

        return await self._run(work)

    async def recent_sessions(self, limit: int = 20) -> list[SessionRecord]:
        """The ``limit`` most recently started sessions, newest first."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")

        def work(conn: sqlite3.Connection) -> list[SessionRecord]:
            rows = conn.execute(
                # seq breaks ties between sessions started in the same microsecond.
                f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY started_at DESC, seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return [_record(row) for row in rows]

        return await self._run(work)

    # -- key/value -------------------------------------------------------------------------------------

    async def get_kv(self, key: str) -> str | None:
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row["value"])

        return await self._run(work)

    async def set_kv(self, key: str, value: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self._run(work)

    # -- plumbing --------------------------------------------------------------------------------------

    def _fetch_session(self, conn: sqlite3.Connection, session_id: str) -> SessionRecord:
        row = conn.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        if row is None:
            raise StoreError(errno.ENOENT, f"unknown session {session_id!r}", str(self._path))
        return _record(row)

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work(conn)`` on the worker thread, with sqlite3 errors wrapped in StoreError."""
        if self._closed:
            raise StoreError(errno.EBADF, "store is closed", str(self._path))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(_wrap_errors, self._path, work, self._conn)
        )


def _wrap_errors(path: Path, work: Callable[[_S], _T], arg: _S) -> _T:
    """Call ``work(arg)``; turn sqlite3 and OS errors into StoreError naming the database file."""
    try:
        return work(arg)
    except StoreError:
        raise
    except sqlite3.Error as exc:
        raise StoreError(errno.EIO, f"SQLite error: {exc}", str(path)) from exc
    except OSError as exc:
        raise StoreError(exc.errno or errno.EIO, exc.strerror or str(exc), str(path)) from exc
