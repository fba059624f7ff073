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
- **Damage and a full disk are handled here, in** ``_run`` **and** ``open``, so no caller has to: a corrupt file is
  moved aside and salvaged into a fresh one (:mod:`chargepoint.store.recovery`), a write that finds no space
  releases the reserve file and is retried, waiting for space if need be (:mod:`chargepoint.store.space`).
  Listeners hear of both (``add_storage_listener``) to tell the operator and refuse new sessions.

Size: one class, the store's whole API, because every method runs on the one writer thread under the same
transaction discipline; the SQL of a domain that grows lives in its own module (``store/pricing.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar

from chargepoint.core.metering import SignedMeterData
from chargepoint.core.ocpp_auth import IdTagEntry
from chargepoint.core.reservation import Reservation
from chargepoint.errors import StoreError
from chargepoint.store import faults as _faults
from chargepoint.store import history as _history
from chargepoint.store import ledger as _ledger
from chargepoint.store import payments as _payments
from chargepoint.store import pricing as _pricing
from chargepoint.store import rollup as _rollup
from chargepoint.store import security_log as _security_log
from chargepoint.store.faults import FaultChange
from chargepoint.store.history import Exclusion, HistoryEvent, ImportedSession
from chargepoint.store.ledger import LedgerRecord, LedgerSigner
from chargepoint.store.migrations import MIGRATIONS, SCHEMA_VERSION
from chargepoint.store.payments import PaymentRecord
from chargepoint.store.pricing import PrepaidAccount, PricingRow, PricingStart, PricingUpdate
from chargepoint.store.recovery import (
    CorruptionReport,
    StorageCorrupted,
    StoreCorrupt,
    is_corruption,
    is_full,
    looks_like_sqlite,
)
from chargepoint.store.recovery import quick_check as _quick_check
from chargepoint.store.recovery import recover as _recover
from chargepoint.store.security_log import SecurityLogEntry
from chargepoint.store.space import DiskSpace, SpaceStatus, StorageFilled, StorageSpaceBack, StoreFull

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_S = TypeVar("_S")

StorageChange = StorageCorrupted | StorageFilled | StorageSpaceBack

# How long a statement waits for a lock held by another connection (the sqlite3 shell of a technician, a
# backup tool) before it fails, instead of failing at once.
BUSY_TIMEOUT_ms: Final = 5000

# A new database file is readable by the charger's user only: it holds id tags (personal data).
_FILE_MODE: Final = 0o600

_SESSION_COLUMNS: Final = (
    "session_id, connector_id, id_tag, started_at, meter_start_Wh, stopped_at, meter_stop_Wh, "
    "stop_reason, last_meter_Wh, last_meter_at, stop_id_tag, payment_method, signed_meter_data, meter_public_key"
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
    stop_id_tag: str | None = None
    """The idTag that asked for the stop, if a card did (it may differ from ``id_tag``: same group)."""
    payment_method: str | None = None
    """rfid, card, qr, remote or free (None: recorded before the charger knew)."""
    signed_meter_data: str | None = None
    """The meter's signed begin and end readings (an OCMF string), unaltered; None if the meter does not sign."""
    meter_public_key: str | None = None
    """The signing meter's public key (DER SubjectPublicKeyInfo, hex) that verifies ``signed_meter_data``."""

    @property
    def energy_Wh(self) -> int | None:
        """Energy delivered, once the session has stopped; ``None`` while it is open."""
        if self.meter_stop_Wh is None:
            return None
        return self.meter_stop_Wh - self.meter_start_Wh

    @property
    def is_open(self) -> bool:
        return self.stopped_at is None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to deliver to the CSMS, stored before it is sent.

    ``payload`` is the OCPP JSON payload. ``session_id`` ties a transaction message to its session, so the
    CSMS's transactionId can be patched in at send time even if it arrived after the message was queued.
    """

    action: str
    payload: dict[str, Any]
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    action: str
    payload: dict[str, Any]
    session_id: str | None
    attempts: int
    not_before: float  # unix time before which the message must not be (re)sent
    created_at: datetime
    csms_transaction_id: int | None  # of the message's session, if known


def _entry(row: sqlite3.Row) -> IdTagEntry:
    expiry: str | None = row["expiry_date"]
    return IdTagEntry(
        row["id_tag"], row["status"], None if expiry is None else _from_text(expiry), row["parent_id_tag"]
    )


def _optional_text(at: datetime | None) -> str | None:
    return None if at is None else _to_text(at)


def _enqueue(conn: sqlite3.Connection, messages: Sequence[OutboxMessage], now_text: str) -> None:
    conn.executemany(
        "INSERT INTO outbox (action, payload, session_id, created_at) VALUES (?, ?, ?, ?)",
        [(m.action, json.dumps(m.payload, separators=(",", ":")), m.session_id, now_text) for m in messages],
    )


def _session_entry(conn: sqlite3.Connection, record: SessionRecord) -> dict[str, Any]:
    """What the ledger keeps of a finished session: its readings, and its cost and debit as they became final."""
    entry: dict[str, Any] = {
        "session_id": record.session_id, "connector_id": record.connector_id, "id_tag": record.id_tag,
        "started_at": _from_text_or_none(record.started_at), "stopped_at": _from_text_or_none(record.stopped_at),
        "meter_start_Wh": record.meter_start_Wh, "meter_stop_Wh": record.meter_stop_Wh,
        "energy_Wh": record.energy_Wh, "stop_reason": record.stop_reason, "payment_method": record.payment_method,
    }
    if record.signed_meter_data is not None:  # absent, not null, for meters that do not sign: older records verify
        entry["signed_meter_data"] = record.signed_meter_data
        entry["meter_public_key"] = record.meter_public_key
    priced = _pricing.fetch(conn, record.session_id)
    if priced is not None:
        entry["cost"] = None if priced.cost is None else str(priced.cost)
        entry["currency"] = priced.currency
    debit = conn.execute("SELECT amount, note FROM prepaid_ledger WHERE session_id = ?",
                         (record.session_id,)).fetchone()
    if debit is not None:
        entry["prepaid_debit"] = str(debit["amount"])
        entry["prepaid_note"] = debit["note"]
    return entry


def _from_text_or_none(at: datetime | str | None) -> str | None:
    return None if at is None else (at if isinstance(at, str) else _to_text(at))


def _to_text(at: datetime) -> str:
    """ISO-8601 UTC with fixed width, so that text order in SQL is time order."""
    if at.tzinfo is None or at.utcoffset() is None:
        # A naive datetime is a caller bug: guessing its zone would shift billing times silently.
        raise ValueError(f"naive datetime {at!r}: the store needs timezone-aware datetimes")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def read_recent_sessions(conn: sqlite3.Connection, limit: int) -> list[SessionRecord]:
    """The ``limit`` most recently started sessions, newest first, on any connection (the CLI reads them this way
    while the daemon is stopped). ``conn.row_factory`` must be ``sqlite3.Row``."""
    rows = conn.execute(
        # seq breaks ties between sessions started in the same microsecond.
        f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY started_at DESC, seq DESC LIMIT ?", (limit,),
    ).fetchall()
    return [_record(row) for row in rows]


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
        stop_id_tag=row["stop_id_tag"],
        payment_method=row["payment_method"],
        signed_meter_data=row["signed_meter_data"],
        meter_public_key=row["meter_public_key"],
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


def _connect(path: Path, check: bool = False) -> sqlite3.Connection:
    """Runs on the worker thread: the connection is created, and only ever used, there.

    ``check``: run ``PRAGMA quick_check`` before migrating (at start), raising StoreCorrupt on damage.
    """
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
        if check and (problem := _quick_check(conn)) is not None:
            raise StoreCorrupt(errno.EIO, problem, str(path))
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _open_checked(path: Path, sqlite3_cli: str | None) -> tuple[sqlite3.Connection, CorruptionReport | None]:
    """Open at start; a corrupt file is moved aside and salvaged into a fresh database (worker thread)."""
    try:
        return _connect(path, check=True), None
    except StoreCorrupt as exc:
        detected = exc.strerror or str(exc)
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc) or not looks_like_sqlite(path):
            raise
        detected = str(exc)
    return _recover(path, detected, _connect, sqlite3_cli=sqlite3_cli)


class Store:
    """Async facade over the SQLite database; create it with :meth:`open`, finish with :meth:`close`."""

    def __init__(self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection,
                 space: DiskSpace | None = None, sqlite3_cli: str | None = "sqlite3",
                 ledger_signer: LedgerSigner | None = None) -> None:
        # Private: use Store.open(), which builds the connection on the worker thread.
        self._path = path
        self._executor = executor
        self._conn = conn
        self._closed = False
        self.space = space if space is not None else DiskSpace(path, reserve_bytes=0, min_free_bytes=0)
        self._sqlite3_cli = sqlite3_cli
        self.corruption: list[CorruptionReport] = []
        """Every recovery from a corrupt file since the store was opened (the first may be from ``open``)."""
        self._listeners: list[Callable[[StorageChange], None]] = []
        self._ledger_signer = ledger_signer

    @property
    def path(self) -> Path:
        return self._path

    @property
    def full(self) -> bool:
        """No space for new sessions: a write found the disk full, or free space is below the minimum."""
        return self.space.full

    def space_status(self) -> SpaceStatus:
        return self.space.status()

    def add_storage_listener(self, listener: Callable[[StorageChange], None]) -> None:
        """``listener`` hears of corruption recovered and of the full state entered and left (on the loop)."""
        self._listeners.append(listener)

    def _tell(self, change: StorageChange) -> None:
        for listener in self._listeners:
            listener(change)

    async def check_space(self) -> None:
        """Look at the free space now (call it periodically): leaves the full state by itself once space is back."""
        if self._closed:
            return
        changed = await asyncio.get_running_loop().run_in_executor(self._executor, self.space.check)
        if changed is True:
            self._tell(StorageFilled(self.space.reason))
        elif changed is False:
            self._tell(StorageSpaceBack())

    # -- lifecycle -------------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path, *, reserve_bytes: int | None = None, min_free_bytes: int | None = None,
                   free_bytes: Callable[[], int] | None = None, sqlite3_cli: str | None = "sqlite3",
                   ledger_signer: LedgerSigner | None = None) -> Store:
        """Open (creating and migrating if needed) the database at ``path``.

        The parent directory must exist: creating it here would hide a wrong path in the config. A corrupt file is
        moved aside and what is readable salvaged into a fresh database (``corruption`` says what happened).
        ``reserve_bytes``/``min_free_bytes``: the reserve file kept for running sessions (none unless asked: the
        daemon asks, with ``[storage] reserve_bytes``) and the free space new sessions need (default in
        :mod:`chargepoint.store.space`); ``free_bytes`` replaces ``os.statvfs`` (tests);
        ``sqlite3_cli``: the shell whose ``.recover`` is tried first (``None``: never).
        """
        path = Path(path)
        space = DiskSpace(path, free_bytes=free_bytes, reserve_bytes=reserve_bytes or 0,
                          **({} if min_free_bytes is None else {"min_free_bytes": min_free_bytes}))
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        loop = asyncio.get_running_loop()
        try:
            opening = functools.partial(_open_checked, sqlite3_cli=sqlite3_cli)
            conn, report = await loop.run_in_executor(executor, functools.partial(_wrap_errors, path, opening, path))
            await loop.run_in_executor(executor, space.start)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        logger.info("store %s: open, schema version %d", path, SCHEMA_VERSION)
        store = cls(path, executor, conn, space, sqlite3_cli, ledger_signer)
        if report is not None:
            store.corruption.append(report)
        return store

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
        self,
        connector_id: int,
        id_tag: str,
        meter_start_Wh: int,
        started_at: datetime,
        messages: Callable[[str], Sequence[OutboxMessage]] | None = None,
        pricing: PricingStart | None = None,
        payment_method: str | None = None,
    ) -> SessionRecord:
        """Persist a new open session and return it (``last_meter_*`` = the start reading).

        ``messages(session_id)`` gives the outbox messages to store in the same transaction (StartTransaction):
        either both the session and its messages exist, or neither.
        """
        started_text = _to_text(started_at)
        session_id = str(uuid.uuid4())

        def work(conn: sqlite3.Connection) -> SessionRecord:
            with _transaction(conn):
                return insert(conn)

        def insert(conn: sqlite3.Connection) -> SessionRecord:
            conn.execute(
                f"INSERT INTO sessions ({_SESSION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, NULL, ?, NULL, NULL)",
                (
                    session_id,
                    connector_id,
                    id_tag,
                    started_text,
                    meter_start_Wh,
                    meter_start_Wh,
                    started_text,
                    payment_method,
                ),
            )
            if messages is not None:
                _enqueue(conn, messages(session_id), _to_text(datetime.now(UTC)))
            if pricing is not None:
                _pricing.insert(conn, session_id, pricing)
            return self._fetch_session(conn, session_id)

        return await self._run(work)

    async def record_meter(
        self, session_id: str, energy_Wh: int, at: datetime, messages: Sequence[OutboxMessage] = (),
        pricing: PricingUpdate | None = None,
    ) -> None:
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
                    logger.warning("store %s: meter reading for closed session %s ignored", self._path, session_id)
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
                _enqueue(conn, messages, at_text)
                if pricing is not None:
                    _pricing.update(conn, session_id, pricing)

        await self._run(work)

    async def end_session(
        self,
        session_id: str,
        meter_stop_Wh: int,
        stopped_at: datetime,
        reason: str,
        messages: Callable[[SessionRecord], Sequence[OutboxMessage]] | None = None,
        pricing: PricingUpdate | None = None,
        stop_id_tag: str | None = None,
        signed: SignedMeterData | None = None,
    ) -> SessionRecord:
        """Close a session and return the closed record; its cost becomes final and its prepaid account is debited.

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
                        "store %s: session %s: stop reading %d Wh below start %d Wh, stored as the start value",
                        self._path,
                        session_id,
                        meter_stop_Wh,
                        record.meter_start_Wh,
                    )
                    stop_Wh = record.meter_start_Wh
                # The stop reading is also the session's last reading.
                conn.execute(
                    "UPDATE sessions SET stopped_at = ?, meter_stop_Wh = ?, stop_reason = ?, "
                    "last_meter_Wh = ?, last_meter_at = ?, stop_id_tag = ?, signed_meter_data = ?, "
                    "meter_public_key = ? WHERE session_id = ?",
                    (stopped_text, stop_Wh, reason, stop_Wh, stopped_text, stop_id_tag,
                     None if signed is None else signed.ocmf, None if signed is None else signed.public_key_hex,
                     session_id),
                )
                closed = self._fetch_session(conn, session_id)
                if messages is not None:
                    # Only on the first close: a retried end_session must not queue a second StopTransaction.
                    _enqueue(conn, messages(closed), _to_text(datetime.now(UTC)))
                _pricing.finish(conn, session_id, pricing, stopped_text)
                _ledger.append(conn, "session", _session_entry(conn, closed), stopped_text, self._ledger_signer)
                return closed

        return await self._run(work)

    async def open_sessions(self) -> list[SessionRecord]:
        """Sessions not closed yet, oldest first."""

        def work(conn: sqlite3.Connection) -> list[SessionRecord]:
            rows = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE stopped_at IS NULL ORDER BY seq"
            ).fetchall()
            return [_record(row) for row in rows]

        return await self._run(work)

    async def recover_open_sessions(
        self,
        reason: str = "PowerLoss",
        messages: Callable[[SessionRecord], Sequence[OutboxMessage]] | None = None,
        signed: Mapping[int, SignedMeterData] | None = None,
    ) -> list[SessionRecord]:
        """Close every session a crash or power cut left open, at its last persisted reading.

        ``meter_stop_Wh`` = ``last_meter_Wh`` and ``stopped_at`` = ``last_meter_at``: the last values we know
        were true, rather than "now", which would bill the time the charger was off. All in one
        transaction, so recovery happens exactly once; a second call returns ``[]``.
        """

        def work(conn: sqlite3.Connection) -> list[SessionRecord]:
            with _transaction(conn):
                ids = [
                    row["session_id"]
                    for row in conn.execute("SELECT session_id FROM sessions WHERE stopped_at IS NULL ORDER BY seq")
                ]
                conn.execute(
                    "UPDATE sessions SET stopped_at = last_meter_at, meter_stop_Wh = last_meter_Wh, "
                    "stop_reason = ? WHERE stopped_at IS NULL",
                    (reason,),
                )
                for connector_id, data in (signed or {}).items():
                    # A signing meter kept the transaction open through the outage and signed its end since: the
                    # newest session it recovered on that connector is the one the meter's dataset belongs to.
                    newest = [sid for sid in ids if self._fetch_session(conn, sid).connector_id == connector_id]
                    if newest:
                        conn.execute("UPDATE sessions SET signed_meter_data = ?, meter_public_key = ? "
                                     "WHERE session_id = ?", (data.ocmf, data.public_key_hex, newest[-1]))
                closed = [self._fetch_session(conn, session_id) for session_id in ids]
                for record in closed:
                    # The cost persisted with the last reading is the cost at the recovered stop point.
                    _pricing.finish(conn, record.session_id, None, _to_text(record.last_meter_at))
                if messages is not None:
                    now_text = _to_text(datetime.now(UTC))
                    for record in closed:
                        _enqueue(conn, messages(record), now_text)
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
            return read_recent_sessions(conn, limit)

        return await self._run(work)

    # -- outbox ----------------------------------------------------------------------------------------

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _enqueue(conn, messages, _to_text(datetime.now(UTC)))

        await self._run(work)

    async def outbox_head(self) -> OutboxRow | None:
        """The oldest undelivered message. Delivery is strictly in order: a message waiting for its retry
        time holds back the ones behind it."""

        def work(conn: sqlite3.Connection) -> OutboxRow | None:
            row = conn.execute(
                "SELECT o.seq, o.action, o.payload, o.session_id, o.attempts, o.not_before, o.created_at, "
                "s.csms_transaction_id FROM outbox o LEFT JOIN sessions s ON s.session_id = o.session_id "
                "ORDER BY o.seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            return OutboxRow(
                seq=row[0],
                action=row[1],
                payload=json.loads(row[2]),
                session_id=row[3],
                attempts=row[4],
                not_before=row[5],
                created_at=_from_text(row[6]),
                csms_transaction_id=row[7],
            )

        return await self._run(work)

    async def outbox_delivered(self, seq: int, csms_transaction_id: tuple[str, int] | None = None) -> None:
        """Remove a delivered message; with ``csms_transaction_id`` = (session_id, id), record the CSMS's
        transactionId in the same transaction (StartTransaction.conf)."""

        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                if csms_transaction_id is not None:
                    session_id, transaction_id = csms_transaction_id
                    # Another session holding the same id would be a CSMS bug; the newest one wins.
                    conn.execute(
                        "UPDATE sessions SET csms_transaction_id = NULL WHERE csms_transaction_id = ?",
                        (transaction_id,),
                    )
                    conn.execute(
                        "UPDATE sessions SET csms_transaction_id = ? WHERE session_id = ?",
                        (transaction_id, session_id),
                    )
                conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

        await self._run(work)

    async def outbox_retry_later(self, seq: int, attempts: int, not_before: float) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE outbox SET attempts = ?, not_before = ? WHERE seq = ?", (attempts, not_before, seq))

        await self._run(work)

    async def outbox_drop_session(self, session_id: str) -> int:
        """Drop every queued message of a session (its StartTransaction was refused for good)."""

        def work(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                return conn.execute("DELETE FROM outbox WHERE session_id = ?", (session_id,)).rowcount

        return await self._run(work)

    async def outbox_len(self) -> int:
        def work(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

        return await self._run(work)

    async def csms_transaction_id(self, session_id: str) -> int | None:
        def work(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT csms_transaction_id FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            return None if row is None else row[0]

        return await self._run(work)

    async def session_by_csms_id(self, transaction_id: int) -> SessionRecord | None:
        def work(conn: sqlite3.Connection) -> SessionRecord | None:
            row = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE csms_transaction_id = ?", (transaction_id,)
            ).fetchone()
            return None if row is None else _record(row)

        return await self._run(work)

    # -- authorization cache and local list ----------------------------------------------------------

    async def auth_cache_put(self, entry: IdTagEntry) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO auth_cache (id_tag, status, expiry_date, parent_id_tag, updated_at) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id_tag) DO UPDATE SET status = excluded.status, expiry_date = excluded.expiry_date, "
                "parent_id_tag = excluded.parent_id_tag, updated_at = excluded.updated_at",
                (
                    entry.id_tag,
                    entry.status,
                    _optional_text(entry.expiry_date),
                    entry.parent_id_tag,
                    _to_text(datetime.now(UTC)),
                ),
            )

        await self._run(work)

    async def auth_cache_all(self) -> list[IdTagEntry]:
        def work(conn: sqlite3.Connection) -> list[IdTagEntry]:
            return [_entry(r) for r in conn.execute("SELECT * FROM auth_cache ORDER BY updated_at")]

        return await self._run(work)

    async def auth_cache_delete(self, id_tags: Sequence[str]) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany("DELETE FROM auth_cache WHERE id_tag = ?", [(t,) for t in id_tags])

        await self._run(work)

    async def auth_cache_clear(self) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM auth_cache")

        await self._run(work)

    async def local_list_all(self) -> tuple[int, list[IdTagEntry]]:
        """(version, entries) of the local authorization list; version 0 when none was ever sent."""

        def work(conn: sqlite3.Connection) -> tuple[int, list[IdTagEntry]]:
            row = conn.execute("SELECT value FROM kv WHERE key = 'ocpp.local_list_version'").fetchone()
            entries = [_entry(r) for r in conn.execute("SELECT * FROM local_auth_list ORDER BY id_tag")]
            return (0 if row is None else int(row[0])), entries

        return await self._run(work)

    async def local_list_update(self, version: int, entries: Sequence[IdTagEntry | str], full: bool) -> None:
        """Apply a SendLocalList atomically: ``full`` replaces the list; a plain ``str`` entry removes that idTag."""

        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                if full:
                    conn.execute("DELETE FROM local_auth_list")
                for entry in entries:
                    if isinstance(entry, str):
                        conn.execute("DELETE FROM local_auth_list WHERE id_tag = ?", (entry,))
                        continue
                    conn.execute(
                        "INSERT INTO local_auth_list (id_tag, status, expiry_date, parent_id_tag) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (id_tag) DO UPDATE SET status = excluded.status, "
                        "expiry_date = excluded.expiry_date, parent_id_tag = excluded.parent_id_tag",
                        (entry.id_tag, entry.status, _optional_text(entry.expiry_date), entry.parent_id_tag),
                    )
                conn.execute(
                    "INSERT INTO kv (key, value) VALUES ('ocpp.local_list_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(version),),
                )

        await self._run(work)

    # -- charging profiles and reservations -----------------------------------------------------------

    async def charging_profiles(self) -> list[tuple[int, dict[str, Any]]]:
        """(connector_id, csChargingProfiles payload) of every installed profile."""

        def work(conn: sqlite3.Connection) -> list[tuple[int, dict[str, Any]]]:
            rows = conn.execute("SELECT connector_id, payload FROM charging_profiles ORDER BY profile_id")
            return [(int(r[0]), json.loads(r[1])) for r in rows]

        return await self._run(work)

    async def replace_charging_profiles(self, profiles: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Store exactly ``profiles`` (connector_id, payload with chargingProfileId/stackLevel/purpose)."""

        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute("DELETE FROM charging_profiles")
                conn.executemany(
                    "INSERT INTO charging_profiles (profile_id, connector_id, purpose, stack_level, payload) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            p["chargingProfileId"],
                            connector_id,
                            p["chargingProfilePurpose"],
                            p["stackLevel"],
                            json.dumps(p, separators=(",", ":")),
                        )
                        for connector_id, p in profiles
                    ],
                )

        await self._run(work)

    async def reservations(self) -> list[Reservation]:
        def work(conn: sqlite3.Connection) -> list[Reservation]:
            return [
                Reservation(
                    r["reservation_id"],
                    r["connector_id"],
                    r["id_tag"],
                    r["parent_id_tag"],
                    _from_text(r["expiry_date"]),
                )
                for r in conn.execute("SELECT * FROM reservations ORDER BY reservation_id")
            ]

        return await self._run(work)

    async def reservation_put(self, record: Reservation) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO reservations "
                "(reservation_id, connector_id, id_tag, parent_id_tag, expiry_date) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    record.reservation_id,
                    record.connector_id,
                    record.id_tag,
                    record.parent_id_tag,
                    _to_text(record.expiry_date),
                ),
            )

        await self._run(work)

    async def reservation_delete(self, reservation_id: int) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM reservations WHERE reservation_id = ?", (reservation_id,)).rowcount > 0

        return await self._run(work)

    # -- key/value -------------------------------------------------------------------------------------

    # -- pricing -----------------------------------------------------------------------------------------

    async def session_pricing(self, session_id: str) -> PricingRow | None:
        return await self._run(lambda conn: _pricing.fetch(conn, session_id))

    async def sessions_with_pricing(self, limit: int = 20) -> list[tuple[SessionRecord, PricingRow | None]]:
        """The ``limit`` most recently started sessions, newest first, each with its pricing row."""
        records = await self.recent_sessions(limit)

        def work(conn: sqlite3.Connection) -> list[tuple[SessionRecord, PricingRow | None]]:
            return [(r, _pricing.fetch(conn, r.session_id)) for r in records]

        return await self._run(work)

    async def sessions_between(self, since: datetime, until: datetime) -> list[tuple[SessionRecord, PricingRow | None]]:
        """Sessions started in ``[since, until)``, oldest first, each with its pricing row (usage reports)."""
        since_text, until_text = _to_text(since), _to_text(until)

        def work(conn: sqlite3.Connection) -> list[tuple[SessionRecord, PricingRow | None]]:
            rows = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE started_at >= ? AND started_at < ? "
                "ORDER BY started_at, seq", (since_text, until_text)).fetchall()
            return [(r, _pricing.fetch(conn, r.session_id)) for r in map(_record, rows)]

        return await self._run(work)

    # ----------------------------------------------------------------- availability and usage history

    async def history_append(self, events: Sequence[HistoryEvent]) -> None:
        if events:
            await self._run(lambda conn: _history.append(conn, events))

    async def history_events(self, since: datetime, until: datetime) -> list[HistoryEvent]:
        return await self._run(lambda conn: _history.events(conn, _to_text(since), _to_text(until)))

    async def history_last_at(self) -> str | None:
        """When the newest event happened (ISO 8601 UTC), None if there is none."""
        return await self._run(_history.last_at)

    async def history_prune(self, older_than: datetime, max_rows: int) -> int:
        return await self._run(lambda conn: _history.prune(conn, _to_text(older_than), max_rows))

    async def history_roll_up(self, connectors: int, first: date, last: date, most: int) -> list[date]:
        """Keep the tally of at most ``most`` whole days from ``first`` to ``last`` (UTC) that lack one; the days
        done (see store/rollup.py)."""
        return await self._run(lambda conn: _rollup.roll_up(conn, connectors, first, last, most))

    async def add_exclusion(self, connector_id: int, start: datetime, end: datetime, reason: str,
                            note: str = "") -> Exclusion:
        now = _to_text(datetime.now(UTC))
        return await self._run(lambda conn: _history.add_exclusion(
            conn, connector_id, _to_text(start), _to_text(end), reason, note, now))

    async def exclusions(self, since: datetime, until: datetime) -> list[Exclusion]:
        return await self._run(lambda conn: _history.exclusions(conn, _to_text(since), _to_text(until)))

    async def import_sessions(self, sessions: Sequence[ImportedSession]) -> int:
        """Add the sessions not imported before, all or none; how many were new."""
        now = _to_text(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                return _history.import_sessions(conn, sessions, now)

        return await self._run(work)

    async def imported_sessions(self, since: datetime, until: datetime) -> list[ImportedSession]:
        return await self._run(lambda conn: _history.imported_sessions(conn, _to_text(since), _to_text(until)))

    async def set_csms_cost(self, session_id: str, cost: Decimal, final: bool, text: str | None) -> None:
        """RunningCost/FinalCost from the CSMS. A FinalCost is never replaced by a later RunningCost."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE session_pricing SET csms_cost = ?, csms_final = ?, csms_text = ? "
                "WHERE session_id = ? AND (csms_final = 0 OR ? = 1)",
                (str(cost), int(final), text, session_id, int(final)),
            )

        await self._run(work)

    async def set_session_limits(self, session_id: str, limits_json: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE session_pricing SET limits = ? WHERE session_id = ?", (limits_json, session_id))

        await self._run(work)

    async def prepaid_account(self, id_tag: str) -> PrepaidAccount | None:
        return await self._run(lambda conn: _pricing.account(conn, id_tag))

    async def prepaid_accounts(self) -> list[PrepaidAccount]:
        return await self._run(_pricing.accounts)

    async def prepaid_set(self, id_tag: str, balance: Decimal, currency: str, note: str = "set") -> PrepaidAccount:
        def work(conn: sqlite3.Connection) -> PrepaidAccount:
            with _transaction(conn):
                return _pricing.set_balance(conn, id_tag, balance, currency, _to_text(datetime.now(UTC)), note)

        return await self._run(work)

    async def user_price_put(self, id_tag: str, data: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO user_prices (id_tag, data, received_at) VALUES (?, ?, ?) ON CONFLICT (id_tag) "
                "DO UPDATE SET data = excluded.data, received_at = excluded.received_at",
                (id_tag, data, _to_text(datetime.now(UTC))),
            )

        await self._run(work)

    async def user_prices(self) -> dict[str, str]:
        def work(conn: sqlite3.Connection) -> dict[str, str]:
            return {row["id_tag"]: row["data"] for row in conn.execute("SELECT id_tag, data FROM user_prices")}

        return await self._run(work)

    # -- faults ----------------------------------------------------------------------------------------

    async def record_faults(self, connector_id: int, changes: Sequence[FaultChange], latched: Sequence[str]) -> None:
        """Append ``changes`` to the fault log and make ``latched`` the connector's latched faults, atomically."""

        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _faults.record(conn, connector_id, changes, latched)

        await self._run(work)

    async def latched_faults(self) -> dict[int, list[tuple[str, str]]]:
        return await self._run(_faults.latched)

    async def fault_log(self, limit: int = 50, connector_id: int | None = None) -> list[FaultChange]:
        return await self._run(lambda conn: _faults.log(conn, limit, connector_id))

    async def payment_begin(self, connector_id: int, requested: Decimal, currency: str) -> PaymentRecord:
        """Journal a pre-authorisation about to be asked of the terminal (state ``preauth_requested``)."""
        now = _to_text(datetime.now(UTC))
        record = PaymentRecord(str(uuid.uuid4()), connector_id, "preauth_requested", currency, requested, now, now)

        def work(conn: sqlite3.Connection) -> PaymentRecord:
            with _transaction(conn):
                _payments.insert(conn, record)
                _ledger.append(conn, "payment", record.to_json(), now, self._ledger_signer)
                return record

        return await self._run(work)

    async def payment_step(self, payment_id: str, state: str, **changes: Any) -> PaymentRecord:
        """Move a payment on (see :mod:`chargepoint.store.payments`); the ledger records the step with it."""
        now = _to_text(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> PaymentRecord:
            with _transaction(conn):
                record = _payments.update(conn, payment_id, state, now, changes)
                _ledger.append(conn, "payment", record.to_json(), now, self._ledger_signer)
                return record

        return await self._run(work)

    async def payments(self, limit: int = 50, open_only: bool = False) -> list[PaymentRecord]:
        """Payments, newest first (``open_only``: those a restart must reconcile with the terminal)."""
        return await self._run(lambda conn: _payments.listing(conn, limit, open_only))

    async def payment(self, payment_id: str) -> PaymentRecord:
        return await self._run(lambda conn: _payments.fetch(conn, payment_id))

    async def ledger(self, since_seq: int = 0) -> list[LedgerRecord]:
        """The ledger's records after ``since_seq``, in order."""
        return await self._run(lambda conn: _ledger.records(conn, since_seq))

    async def ledger_of_sessions(self, session_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """session_id -> (seq, hash) of each session's ledger record (exports carry the chain with them)."""
        return await self._run(lambda conn: _ledger.session_hashes(conn, session_ids))

    async def append_ledger(self, kind: str, body: dict[str, Any]) -> LedgerRecord:
        """Append a record on its own (one that goes with no other write)."""

        def work(conn: sqlite3.Connection) -> LedgerRecord:
            with _transaction(conn):
                return _ledger.append(conn, kind, body, _to_text(datetime.now(UTC)), self._ledger_signer)

        return await self._run(work)

    async def record_security_event(self, entry: SecurityLogEntry, notification: dict[str, Any] | None) -> bool:
        """Log ``entry`` and queue its ``notification`` for the CSMS in the same transaction (see
        :mod:`chargepoint.store.security_log`); True if the notification was queued."""

        def work(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                return _security_log.record(conn, entry, notification, _to_text(datetime.now(UTC)))

        return await self._run(work)

    async def security_log(self, limit: int = _security_log.KEPT) -> list[SecurityLogEntry]:
        """The security log, newest first."""
        return await self._run(lambda conn: _security_log.entries(conn, limit))

    async def get_kv(self, key: str) -> str | None:
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row["value"])

        return await self._run(work)

    async def set_kv(self, key: str, value: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self._run(work)

    # -- plumbing --------------------------------------------------------------------------------------

    def _fetch_session(self, conn: sqlite3.Connection, session_id: str) -> SessionRecord:
        row = conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        if row is None:
            raise StoreError(errno.ENOENT, f"unknown session {session_id!r}", str(self._path))
        return _record(row)

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work(conn)`` on the worker thread, with sqlite3 errors wrapped in StoreError.

        The one place where damage and a full disk are handled: a corrupt file is replaced (salvaged) and ``work``
        tried once more on the fresh database; a write without space releases the reserve file and is tried again,
        then every ``retry_s`` until it succeeds, so a running session's record waits in order instead of being lost.
        """
        try:
            return await self._call(work)
        except StoreCorrupt as exc:
            report = await asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(_wrap_errors, self._path, self._replace_corrupt, exc.strerror or ""))
            self.corruption.append(report)
            self._tell(StorageCorrupted(report))
            return await self._call(work)
        except StoreFull as exc:
            was_full = self.space.full
            await asyncio.get_running_loop().run_in_executor(self._executor, self.space.write_failed,
                                                             exc.strerror or "no space left")
            if not was_full:
                self._tell(StorageFilled(self.space.reason))
        waited_s = 0.0
        while True:
            try:
                return await self._call(work)
            except StoreFull:
                if self._closed:
                    raise
                if waited_s % 60.0 == 0.0:
                    logger.error("store %s: a write is waiting for disk space (%.0f s so far); free space in %s",
                                 self._path, waited_s, self._path.parent)
                await asyncio.sleep(self.space.retry_s)
                waited_s += self.space.retry_s

    async def _call(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise StoreError(errno.EBADF, "store is closed", str(self._path))
        loop = asyncio.get_running_loop()
        # self._conn is read on the worker thread: a recovery queued before this call may have replaced it.
        return await loop.run_in_executor(self._executor, functools.partial(_wrap_errors, self._path,
                                                                            self._with_connection, work))

    def _with_connection(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        return work(self._conn)

    def _replace_corrupt(self, detected: str) -> CorruptionReport:
        """Worker thread: the file was found corrupt while running; move it aside, salvage, go on with a fresh one."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        self._conn, report = _recover(self._path, detected, _connect, sqlite3_cli=self._sqlite3_cli,
                                      while_running=True)
        return report


def _wrap_errors(path: Path, work: Callable[[_S], _T], arg: _S) -> _T:
    """Call ``work(arg)``; turn sqlite3 and OS errors into StoreError naming the database file (StoreFull and
    StoreCorrupt for the two conditions the store handles itself)."""
    try:
        return work(arg)
    except StoreError:
        raise
    except sqlite3.Error as exc:
        if is_full(exc):
            raise StoreFull(errno.ENOSPC, f"SQLite error: {exc}", str(path)) from exc
        if is_corruption(exc):
            raise StoreCorrupt(errno.EIO, f"SQLite error: {exc}", str(path)) from exc
        raise StoreError(errno.EIO, f"SQLite error: {exc}", str(path)) from exc
    except OSError as exc:
        if is_full(exc):
            raise StoreFull(exc.errno or errno.ENOSPC, exc.strerror or str(exc), str(path)) from exc
        raise StoreError(exc.errno or errno.EIO, exc.strerror or str(exc), str(path)) from exc
