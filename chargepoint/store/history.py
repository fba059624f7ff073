"""The charger's event history (availability and usage reports read it): status changes, faults, boots, outages,
link and mains changes, start attempts, with wall and monotonic time; operator-declared exclusions; sessions
imported from a CSMS export or an earlier charger.

Functions here run on the store's worker thread. The history is bounded: ``prune`` drops what is older than the
configured period and, beyond that, the oldest rows over the row limit.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

_R = TypeVar("_R")

KINDS: Final = frozenset({
    "boot",  # the firmware started; value: its version; detail: the version before, if it changed
    "down",  # at the last moment the firmware was known alive before a boot that followed no clean stop
    "stop",  # a clean stop; value: why (shutdown, reset, reexec)
    "status",  # value: OCPP status; detail: error code or cause (mains, inoperative)
    "fault",  # value: fault code; detail: raised | cleared
    "link",  # connector 0; value: up | down
    "mains",  # value: lost | back
    "attempt",  # a start attempt; value: started | refused; detail: why it was refused
})

EXCLUSION_REASONS: Final = ("grid", "maintenance", "vandalism", "operator")


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    at: str  # ISO 8601 UTC, as the store writes times
    mono_s: float  # monotonic seconds of its boot: orders events when the wall clock jumped
    boot: int
    connector_id: int  # 0: the charger as a whole
    kind: str
    value: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Time that does not count against availability (NEVI 23 CFR 680.116(b)): grid loss, scheduled maintenance,
    vandalism, or another reason the operator declared."""

    id: int
    connector_id: int  # 0: every connector
    start: str
    end: str
    reason: str
    note: str
    created_at: str


@dataclass(frozen=True, slots=True)
class ImportedSession:
    start: str  # ISO 8601 with offset, as given
    stop: str
    connector_id: int
    energy_Wh: int
    id_tag: str | None
    cost: Decimal | None
    source: str  # the file it came from


def append(conn: sqlite3.Connection, events: Sequence[HistoryEvent]) -> None:
    conn.executemany(
        "INSERT INTO history (at, mono_s, boot, connector_id, kind, value, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(e.at, e.mono_s, e.boot, e.connector_id, e.kind, e.value, e.detail) for e in events],
    )
    if events:
        # Mostly today, which has no tally yet; a ``down`` dated back or a clock set back reaches into the past.
        conn.execute("DELETE FROM history_days WHERE day >= ?", (min(e.at for e in events)[:10],))


def events(conn: sqlite3.Connection, since: str, until: str) -> list[HistoryEvent]:
    """``stream`` as a list."""
    return list(stream(conn, since, until))


# Also the last boot on its own: a charger booted before the period and gone (down, stop) since was installed then.
_STATE_KINDS: Final = (("status",), ("mains",), ("link",), ("boot", "down", "stop"), ("boot",))


def _last_before(conn: sqlite3.Connection, since: str) -> str:
    """The ``seq``s (comma-separated) of what says which state a period began in: the last status and mains report of
    each connector, the last link change, the last boot, down or stop, and the last boot before ``since``. Found
    with a few seeks in the ``history_group`` index: a scan of every earlier event took a third of a second in a
    year of history."""
    found: set[int] = set()
    row = conn.execute("SELECT MIN(connector_id) FROM history").fetchone()
    connector = None if row is None else row[0]
    while connector is not None:
        for kinds in _STATE_KINDS:
            lasts = [conn.execute("SELECT at, seq FROM history WHERE connector_id = ? AND kind = ? AND at < ? "
                                  "ORDER BY at DESC, seq DESC LIMIT 1", (connector, kind, since)).fetchone()
                     for kind in kinds]
            present = [(r[0], r[1]) for r in lasts if r is not None]
            if present:  # (at, seq): the latest, and of two at the same time the later written
                found.add(int(max(present)[1]))
        row = conn.execute("SELECT connector_id FROM history WHERE connector_id > ? ORDER BY connector_id LIMIT 1",
                           (connector,)).fetchone()
        connector = None if row is None else row[0]
    return ", ".join(map(str, found))


def stream(conn: sqlite3.Connection, since: str, until: str) -> Iterator[HistoryEvent]:
    """Events with ``since <= at < until`` in time order, after the last status of each connector (and the last
    boot, down or stop of the charger) before ``since``: a report must know the state a period began in. One row at
    a time: a year of history never sits in memory."""
    before = conn.execute(f"SELECT * FROM history WHERE seq IN ({_last_before(conn, since)}) ORDER BY at, seq"
                          ).fetchall()
    for row in before:
        yield _event(row)
    for row in conn.execute("SELECT * FROM history WHERE at >= ? AND at < ? ORDER BY at, seq", (since, until)):
        yield _event(row)


def last_at(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT MAX(at) FROM history").fetchone()
    return None if row is None else row[0]


# SQLite turns the ISO text (fixed width: YYYY-MM-DDTHH:MM:SS.ffffff+00:00) into seconds, in C and to the microsecond
# (julianday's double would be 50 us off; unixepoch's subsec needs SQLite 3.42, Debian 12 has 3.40).
_EPOCH_S: Final = "CAST(strftime('%s', at) AS INTEGER) + CAST(substr(at, 20, 7) AS REAL)"


def stream_rows(conn: sqlite3.Connection, since: str, until: str, row: Callable[[Any, tuple[Any, ...]], _R]
                ) -> Iterator[_R]:
    """``stream``'s events as ``row(cursor, (at in seconds since the epoch, connector_id, kind, value, detail))``:
    the reports' fast path, with no datetime made per event."""
    columns = f"{_EPOCH_S}, connector_id, kind, value, detail"
    before = conn.cursor()
    before.row_factory = row
    yield from before.execute(f"SELECT {columns} FROM history WHERE seq IN ({_last_before(conn, since)}) "
                              "ORDER BY at, seq")
    rows = conn.cursor()
    rows.row_factory = row
    yield from rows.execute(f"SELECT {columns} FROM history WHERE at >= ? AND at < ? ORDER BY at, seq",
                            (since, until))


def _event(row: sqlite3.Row) -> HistoryEvent:
    return HistoryEvent(row["at"], row["mono_s"], row["boot"], row["connector_id"], row["kind"], row["value"],
                        row["detail"])


def prune(conn: sqlite3.Connection, older_than: str, max_rows: int) -> int:
    """Drop events older than ``older_than`` and, beyond that, the oldest over ``max_rows``; how many went."""
    dropped = conn.execute("DELETE FROM history WHERE at < ?", (older_than,)).rowcount
    count = conn.execute("SELECT COUNT(*) FROM history").fetchone()[0]
    if count > max_rows:
        dropped += conn.execute(
            "DELETE FROM history WHERE seq IN (SELECT seq FROM history ORDER BY seq LIMIT ?)", (count - max_rows,)
        ).rowcount
    if dropped:  # the days' tallies (store/rollup.py) of the days thinned or emptied no longer hold
        oldest = conn.execute("SELECT MIN(at) FROM history").fetchone()[0]
        conn.execute("DELETE FROM history_days WHERE day <= ?", ("9999" if oldest is None else oldest[:10],))
    return int(dropped)


def add_exclusion(conn: sqlite3.Connection, connector_id: int, start: str, end: str, reason: str, note: str,
                  now: str) -> Exclusion:
    if reason not in EXCLUSION_REASONS:
        raise ValueError(f"exclusion reason {reason!r}: expected one of {', '.join(EXCLUSION_REASONS)}")
    if not start < end:
        raise ValueError(f"exclusion from {start} to {end}: the end must come after the start")
    cursor = conn.execute(
        "INSERT INTO exclusions (connector_id, start, end, reason, note, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (connector_id, start, end, reason, note, now))
    assert cursor.lastrowid is not None
    return Exclusion(cursor.lastrowid, connector_id, start, end, reason, note, now)


def exclusions(conn: sqlite3.Connection, since: str, until: str) -> list[Exclusion]:
    rows = conn.execute("SELECT * FROM exclusions WHERE end > ? AND start < ? ORDER BY start, id",
                        (since, until)).fetchall()
    return [Exclusion(r["id"], r["connector_id"], r["start"], r["end"], r["reason"], r["note"], r["created_at"])
            for r in rows]


def _session_key(s: ImportedSession) -> str:
    """What makes an imported row the same session again: importing a file twice adds nothing."""
    text = "|".join((s.start, s.stop, str(s.connector_id), str(s.energy_Wh), s.id_tag or ""))
    return hashlib.sha256(text.encode()).hexdigest()


def import_sessions(conn: sqlite3.Connection, sessions: Sequence[ImportedSession], now: str) -> int:
    """Add the sessions not imported before; how many were new."""
    added = 0
    for s in sessions:
        start_utc = datetime.fromisoformat(s.start).astimezone(UTC).isoformat(timespec="microseconds")
        cursor = conn.execute(
            "INSERT OR IGNORE INTO imported_sessions (key, start, stop, start_utc, connector_id, energy_Wh, id_tag, "
            "cost, source, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_session_key(s), s.start, s.stop, start_utc, s.connector_id, s.energy_Wh, s.id_tag,
             None if s.cost is None else str(s.cost), s.source, now))
        added += cursor.rowcount
    return added


def imported_sessions(conn: sqlite3.Connection, since: str, until: str) -> list[ImportedSession]:
    rows = conn.execute("SELECT * FROM imported_sessions WHERE start_utc >= ? AND start_utc < ? ORDER BY start_utc",
                        (since, until)).fetchall()
    return [ImportedSession(r["start"], r["stop"], r["connector_id"], r["energy_Wh"], r["id_tag"],
                            None if r["cost"] is None else Decimal(r["cost"]), r["source"]) for r in rows]
