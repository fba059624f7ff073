"""A corrupt database file: recognise it, move it aside for forensics, salvage what is readable into a fresh one.

A charger must keep charging when its SD card has damaged the database: losing the local history is bad, a charger
out of service is worse. So on corruption (``file is not a database``, ``database disk image is malformed``, a
failing ``PRAGMA quick_check`` at start, or the same errors from a statement while running):

1. the file and its ``-wal``/``-shm`` are renamed to ``<name>.corrupt-<UTC timestamp>`` (with ``-wal``/``-shm``
   behind, as SQLite names them) in the same directory, untouched, for whoever investigates;
2. a fresh database is created and migrated;
3. what is readable is copied into it, table by table, row by row, from a scratch copy of the corrupt files: the
   ``sqlite3`` shell's ``.recover`` if that shell is installed and succeeds, else Python's own reading, which skips
   unreadable pages (a row the b-tree cannot reach is tried by rowid around it), loads a schema that does not parse
   whole (``writable_schema``) and rebuilds a destroyed 100-byte file header;
4. a :class:`CorruptionReport` says what happened and how many rows of each table came back.

Rows that break a constraint of the current schema are skipped (``INSERT OR IGNORE``), and so are rows the code
could not read back (a time that does not parse, JSON that does not load, text with NUL bytes: what a half-zeroed page
yields); both count as lost.

A file that is no SQLite database at all (neither SQLite's header nor its b-tree pages: the config names a wrong
file) is not ours to move: :func:`looks_like_sqlite` tells the two apart, and the store refuses such a file as before.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import sqlite3
import struct
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from chargepoint.errors import StoreError

log = logging.getLogger(__name__)

# Primary result codes (an extended code carries its primary one in the low byte).
SQLITE_CORRUPT: Final = 11
SQLITE_FULL: Final = 13
SQLITE_NOTADB: Final = 26

CLI_TIMEOUT_s: Final = 120.0
MAX_PROBES_PER_TABLE: Final = 200_000  # rowids tried one by one around unreadable pages, per table
MAX_FAILED_PROBES: Final = 10_000  # in a row: past that, the rest of the table is taken as unreachable
_SIDE_FILES: Final = ("-wal", "-shm")


class StoreCorrupt(StoreError):
    """The database file is damaged (SQLite: corrupt, or not a database at all)."""


@dataclass(frozen=True, slots=True)
class CorruptionReport:
    """What a recovery did; ``line()`` is the one log line for the technician."""

    database: Path
    moved_to: Path
    detected: str
    """The error or ``quick_check`` result that revealed the damage."""
    method: str
    """How rows were read back: ``sqlite3 .recover``, ``row copy`` or ``none`` (nothing was readable)."""
    recovered: dict[str, int]
    """Rows copied into the fresh database, per table (tables with none are left out)."""
    unreadable: tuple[str, ...]
    """Tables that could not be read, or only in part."""
    at: datetime
    while_running: bool = False

    @property
    def rows(self) -> int:
        return sum(self.recovered.values())

    def line(self) -> str:
        rows = ", ".join(f"{n} {table}" for table, n in self.recovered.items()) or "no rows"
        lost = f"; unreadable in part or whole: {', '.join(self.unreadable)}" if self.unreadable else ""
        when = "while running" if self.while_running else "at start"
        return (f"database {self.database} is corrupt ({self.detected}, found {when}): moved aside to "
                f"{self.moved_to.name}, a fresh database is in use and charging goes on; recovered {rows} "
                f"({self.method}){lost}; what to do: keep {self.moved_to.name} for analysis, check the SD card or "
                f"disk (dmesg, smartctl) and replace it if errors repeat, then 'chargepoint fault list'")


@dataclass(frozen=True, slots=True)
class StorageCorrupted:
    """The database was found corrupt and replaced by a fresh one (at open, or while running)."""

    report: CorruptionReport


def sqlite_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_corruption(exc: sqlite3.Error) -> bool:
    """SQLite says the file is damaged (not: locked, read-only, missing, full)."""
    code = sqlite_code(exc)
    if code is not None:
        return code in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def is_full(exc: BaseException) -> bool:
    """A write failed for lack of space (SQLITE_FULL, ENOSPC, or a quota's EDQUOT)."""
    if isinstance(exc, sqlite3.Error):
        code = sqlite_code(exc)
        return code == SQLITE_FULL if code is not None else "disk is full" in str(exc).lower()
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


_MAGIC: Final = b"SQLite format 3\x00"
_BTREE_PAGE_TYPES: Final = (2, 5, 10, 13)


def looks_like_sqlite(path: Path) -> bool:
    """SQLite's header, or (the header destroyed) pages laid out as SQLite's b-tree pages at some page size."""
    try:
        with path.open("rb") as f:
            data = f.read(64 * 65536)
    except OSError:
        return False
    if data.startswith(_MAGIC):
        return True
    for page_size in (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512):
        pages = range(1, min(len(data) // page_size, 64))  # page 2 onwards (page 1 holds the header)
        if not pages:
            continue
        plausible = sum(1 for n in pages if _btree_page(data[n * page_size:(n + 1) * page_size]))
        if plausible * 2 >= len(pages):
            return True
    return False


def _btree_page(page: bytes) -> bool:
    if len(page) < 12 or page[0] not in _BTREE_PAGE_TYPES:
        return False
    (freeblock, cells, content) = struct.unpack(">HHH", page[1:7])
    content = content or 65536
    return freeblock < len(page) and cells * 2 < len(page) and content <= len(page)


def quick_check(conn: sqlite3.Connection) -> str | None:
    """``None`` if ``PRAGMA quick_check`` finds the file sound, else its first findings on one line."""
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    return None if rows == ["ok"] else "quick_check: " + "; ".join(rows)[:300]


def move_aside(path: Path, at: datetime) -> Path:
    """Rename the database and its side files to ``<name>.corrupt-<UTC time>``; return the new database path."""
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in ("", *_SIDE_FILES):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{target}{suffix}")
    return target


def recover(path: Path, detected: str, connect: Callable[[Path], sqlite3.Connection], *,
            sqlite3_cli: str | None = "sqlite3", while_running: bool = False) -> tuple[sqlite3.Connection,
                                                                                     CorruptionReport]:
    """Move the corrupt database aside, create a fresh one with ``connect`` and salvage rows into it.

    The caller has closed every connection to ``path``. ``sqlite3_cli``: the shell to try ``.recover`` with (looked
    up on PATH; ``None``: do not try). Returns the fresh connection and the report; also logs the report's line.
    """
    at = datetime.now(UTC)
    moved_to = move_aside(path, at)
    conn = connect(path)
    try:
        method, recovered, unreadable = _salvage(moved_to, conn, sqlite3_cli)
    except BaseException:
        conn.close()
        raise
    report = CorruptionReport(path, moved_to, detected, method, recovered, tuple(unreadable), at, while_running)
    log.error("store %s: %s", path, report.line())
    return conn, report


# ----------------------------------------------------------------------------------------------------- salvage


def _salvage(corrupt: Path, fresh: sqlite3.Connection, sqlite3_cli: str | None) -> tuple[str, dict[str, int],
                                                                                          list[str]]:
    """Copy readable rows from ``corrupt`` into ``fresh``; (method, rows per table, unreadable tables).

    Works on a scratch copy in a temporary directory beside the database, so the forensic copy stays as it was
    (opening a WAL database, even to read it, may write its -shm and checkpoint its WAL).
    """
    with tempfile.TemporaryDirectory(prefix=".salvage-", dir=corrupt.parent) as scratch_dir:
        scratch = Path(scratch_dir) / "copy.db"
        for suffix in ("", *_SIDE_FILES):
            source = Path(f"{corrupt}{suffix}")
            if source.exists():
                shutil.copyfile(source, f"{scratch}{suffix}")
        cli = shutil.which(sqlite3_cli) if sqlite3_cli else None
        if cli is not None:
            recovered_db = Path(scratch_dir) / "recovered.db"
            if _cli_recover(cli, scratch, recovered_db):
                source_conn = _open_source(recovered_db)
                if source_conn is not None:
                    with contextlib.closing(source_conn):
                        recovered, unreadable = _copy_tables(source_conn, fresh)
                    return "sqlite3 .recover", recovered, unreadable
        source_conn = _open_source(scratch)
        if source_conn is None and _rebuild_header(scratch):
            source_conn = _open_source(scratch)
        if source_conn is None:
            return "none", {}, ["all tables (no schema could be read)"]
        with contextlib.closing(source_conn):
            recovered, unreadable = _copy_tables(source_conn, fresh)
        return "row copy", recovered, unreadable


def _cli_recover(cli: str, source: Path, target: Path) -> bool:
    """``sqlite3 source .recover`` loaded into ``target``; False if the shell fails (some builds cannot)."""
    try:
        dump = subprocess.run([cli, str(source), ".recover"], capture_output=True, timeout=CLI_TIMEOUT_s,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.info("sqlite3 .recover could not run (%s); reading the rows directly", exc)
        return False
    if dump.returncode != 0:
        log.info("sqlite3 .recover failed (%s); reading the rows directly",
                 dump.stderr.decode(errors="replace").strip()[:200])
        return False
    try:
        with contextlib.closing(sqlite3.connect(target, isolation_level=None)) as conn:
            conn.executescript(dump.stdout.decode(errors="replace"))
    except sqlite3.Error as exc:
        log.info("the output of sqlite3 .recover did not load (%s); reading the rows directly", exc)
        return False
    return True


def _open_source(path: Path) -> sqlite3.Connection | None:
    """A connection that reads what it can of ``path``, or None if not even its schema is readable."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # A schema row that does not parse must not hide the tables whose rows do.
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("SELECT name FROM sqlite_master").fetchall()
    except sqlite3.Error:
        conn.close()
        return None
    return conn


def _rebuild_header(path: Path) -> bool:
    """Write a plausible 100-byte SQLite header over a destroyed one (page size from the WAL or by trial).

    Everything else in the header either has a safe default for reading (schema cookie, change counter) or is
    recomputed by SQLite (the page count, from the file size, once the counters disagree).
    """
    size = path.stat().st_size
    if size < 512:
        return False
    sizes = [4096, 1024, 2048, 8192, 16384, 32768, 65536, 512]
    wal = Path(f"{path}-wal")
    if wal.exists():
        with wal.open("rb") as f:
            head = f.read(32)
        if len(head) == 32:
            (wal_page_size,) = struct.unpack(">I", head[8:12])
            if wal_page_size in sizes:
                sizes.remove(wal_page_size)
                sizes.insert(0, wal_page_size)
    with path.open("rb") as f:
        original = f.read(100)
    for page_size in sizes:
        header = bytearray(100)
        header[0:16] = b"SQLite format 3\x00"
        header[16:18] = struct.pack(">H", 1 if page_size == 65536 else page_size)
        header[18:24] = bytes([1, 1, 0, 64, 32, 32])  # rollback journal (the WAL is not trusted), no reserve bytes
        header[24:28] = struct.pack(">I", 1)  # change counter
        header[28:32] = struct.pack(">I", 0)  # page count: invalid, so SQLite takes the file size
        header[40:48] = struct.pack(">II", 1, 4)  # schema cookie, schema format 4
        header[56:60] = struct.pack(">I", 1)  # UTF-8
        header[92:96] = struct.pack(">I", 2)  # version-valid-for != change counter: page count from the file
        header[96:100] = struct.pack(">I", sqlite3.sqlite_version_info[0] * 1_000_000
                                     + sqlite3.sqlite_version_info[1] * 1000 + sqlite3.sqlite_version_info[2])
        with path.open("r+b") as f:
            f.write(header)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(wal)  # its frames belong to the old header's salts: it cannot be replayed now
        conn = _open_source(path)
        if conn is not None:
            with contextlib.closing(conn):
                try:
                    names = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
                except sqlite3.Error:
                    names = 0
            if names:
                return True
    with path.open("r+b") as f:
        f.write(original)
    return False


@dataclass(slots=True)
class _TableRead:
    rows: dict[int, tuple[object, ...]] = field(default_factory=dict)
    complete: bool = True


def _copy_tables(source: sqlite3.Connection, fresh: sqlite3.Connection) -> tuple[dict[str, int], list[str]]:
    """Copy every table of the fresh schema that the source has, by the columns both have."""
    recovered: dict[str, int] = {}
    unreadable: list[str] = []
    tables = [str(r[0]) for r in fresh.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
    try:
        source_tables = {str(r[0]) for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return {}, ["all tables (no schema could be read)"]
    fresh.execute("PRAGMA foreign_keys = OFF")  # a salvaged message may outlive its lost session: keep it
    try:
        for table in tables:
            if table not in source_tables:
                continue
            try:
                source_columns = {str(r[1]) for r in source.execute(f'PRAGMA table_info("{table}")')}
            except sqlite3.Error:
                unreadable.append(table)
                continue
            columns = [str(r[1]) for r in fresh.execute(f'PRAGMA table_info("{table}")')
                       if str(r[1]) in source_columns]
            if not columns:
                unreadable.append(table)
                continue
            read = _read_rows(source, table, columns)
            if not read.complete:
                unreadable.append(table)
            plausible = {rowid: row for rowid, row in read.rows.items() if _plausible(columns, row)}
            if len(plausible) < len(read.rows) and table not in unreadable:
                unreadable.append(table)
            quoted = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" for _ in columns)
            inserted = 0
            fresh.execute("BEGIN IMMEDIATE")
            try:
                for rowid in sorted(plausible):
                    cursor = fresh.execute(f'INSERT OR IGNORE INTO "{table}" ({quoted}) VALUES ({marks})',
                                           plausible[rowid])
                    inserted += max(cursor.rowcount, 0)
                fresh.execute("COMMIT")
            except BaseException:
                if fresh.in_transaction:
                    fresh.rollback()
                raise
            if inserted:
                recovered[table] = inserted
    finally:
        fresh.execute("PRAGMA foreign_keys = ON")
    return recovered, unreadable


_TIME_COLUMNS: Final = frozenset({"at", "since", "expiry_date"})
_JSON_COLUMNS: Final = frozenset({"payload", "limits", "tariff", "breakdown"})  # what the store json.loads


def _plausible(columns: list[str], row: tuple[object, ...]) -> bool:
    """A row the firmware can read back: times parse, JSON loads, no text with NUL bytes (a zeroed page's)."""
    for column, value in zip(columns, row, strict=True):
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            return False
        try:
            if column in _TIME_COLUMNS or column.endswith("_at"):
                datetime.fromisoformat(value)
            elif column in _JSON_COLUMNS:
                json.loads(value)
        except ValueError:
            return False
    return True


def _read_rows(source: sqlite3.Connection, table: str, columns: list[str]) -> _TableRead:
    """Every row of ``table`` that can be read: a full scan, else scans from both ends and rowid probes between."""
    result = _TableRead()
    select = "SELECT rowid, " + ", ".join(f'"{c}"' for c in columns) + f' FROM "{table}"'
    try:
        for row in source.execute(select + " ORDER BY rowid"):
            result.rows[int(row[0])] = tuple(row[1:])
        return result
    except sqlite3.Error:
        result.complete = False
    low = max(result.rows, default=None)
    high: int | None = None
    with contextlib.suppress(sqlite3.Error):
        for row in source.execute(select + " ORDER BY rowid DESC"):
            result.rows[int(row[0])] = tuple(row[1:])
            high = int(row[0])
    # Between the two scans: seek to the next readable row after each rowid that failed.
    at = 0 if low is None else low
    probes = failed = 0
    while probes < MAX_PROBES_PER_TABLE and failed < MAX_FAILED_PROBES and (high is None or at < high):
        probes += 1
        try:
            row = source.execute(select + " WHERE rowid > ? ORDER BY rowid LIMIT 1", (at,)).fetchone()
        except sqlite3.Error:
            at += 1
            failed += 1
            continue
        failed = 0
        if row is None:
            break
        result.rows[int(row[0])] = tuple(row[1:])
        at = int(row[0])
    return result
