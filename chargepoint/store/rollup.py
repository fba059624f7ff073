"""The tally of each UTC day of history, kept so that a report of a year reads 365 rows instead of half a million
events (see ``chargepoint/analytics/tally.py``).

The daemon's history recorder adds the tally of every whole day that lacks one (``roll_up``); reports use the
stored days of their period and tally the rest from the events (``chargepoint/store/period.py``), and give the same
figures with or without them. A stored day is only a shortcut, never the record: events written into a day that
has a tally (a ``down`` dated back to the last sign of life, a clock set back) drop the tallies from that day on,
pruning drops those of the days it thinned (both in ``chargepoint/store/history.py``), and a tally of another
``TALLY_VERSION`` or connector count is not used.

A row: ``day`` (YYYY-MM-DD, UTC), the version and connector count it was made with, ``summary`` (JSON: all but the
Charging segments) and ``charging`` (per connector, in id order: a little-endian uint32 count of segments, then
their start and end as little-endian doubles).
"""

from __future__ import annotations

import json
import sqlite3
import struct
import sys
from array import array
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chargepoint.analytics.tally import TALLY_VERSION, PortTally, Run, Tally, empty, merge, tally
from chargepoint.analytics.timeline import Mark
from chargepoint.store import history as _history

DAY_S = 86400


def day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _text(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")


def _mark(_cursor: Any, row: tuple[Any, ...]) -> Mark:
    return Mark(*row)


def events_tally(conn: sqlite3.Connection, connectors: int, start: float, end: float) -> Tally:
    """The tally of ``[start, end)`` from the recorded events."""
    return tally(_history.stream_rows(conn, _text(start), _text(end), _mark), range(1, connectors + 1), start, end)


def _little_endian(values: array[float]) -> bytes:
    if sys.byteorder == "big":
        values = array("d", values)
        values.byteswap()
    return values.tobytes()


def encode(t: Tally) -> tuple[str, bytes]:
    summary = {
        "in_service": t.in_service,
        "ports": {str(c): {"status_s": p.status_s, "outages": [[o.start, o.end, o.status, o.cause] for o in p.outages],
                           "faults": p.faults, "failed_starts": p.failed_starts} for c, p in t.ports.items()},
        "plugged_s": t.plugged_s, "drawing_s": t.drawing_s, "idle_s": t.idle_s, "turned_away": t.turned_away,
        "occupied": list(t.occupied),
    }
    charging = b"".join(struct.pack("<I", len(p.charging) // 2) + _little_endian(p.charging)
                        for _, p in sorted(t.ports.items()))
    return json.dumps(summary, separators=(",", ":")), charging


def decode(day: date, summary_text: str, charging: bytes) -> Tally:
    summary = json.loads(summary_text)
    start = day_start(day)
    t = empty((int(c) for c in summary["ports"]), start, start + DAY_S)
    t.in_service = summary["in_service"]
    t.plugged_s, t.drawing_s, t.idle_s = summary["plugged_s"], summary["drawing_s"], summary["idle_s"]
    t.turned_away = summary["turned_away"]
    t.occupied = array("d", summary["occupied"])
    offset = 0
    for c in sorted(t.ports):
        p = summary["ports"][str(c)]
        (count,) = struct.unpack_from("<I", charging, offset)
        offset += 4
        segments = array("d", charging[offset:offset + 16 * count])
        if sys.byteorder == "big":
            segments.byteswap()
        offset += 16 * count
        t.ports[c] = PortTally(dict(p["status_s"]), [Run(*o) for o in p["outages"]], p["faults"], p["failed_starts"],
                               segments)
    return t


def stored(conn: sqlite3.Connection, connectors: int, first: date, last: date) -> Iterator[tuple[date, Tally]]:
    """The usable stored tallies of the days ``first`` to ``last`` (both included), in order; none from a database
    the daemon has not migrated yet (a report run by a newer command line than the running daemon)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'history_days'").fetchone():
        return
    rows = conn.execute("SELECT day, summary, charging FROM history_days WHERE day >= ? AND day <= ? AND version = ? "
                        "AND connectors = ? ORDER BY day",
                        (first.isoformat(), last.isoformat(), TALLY_VERSION, connectors))
    for day_text, summary, charging in rows:
        day = date.fromisoformat(day_text)
        yield day, decode(day, summary, charging)


def missing_days(conn: sqlite3.Connection, connectors: int, first: date, last: date) -> list[date]:
    """The days from ``first`` to ``last`` (both included) that have events or follow some, and no usable tally."""
    oldest = conn.execute("SELECT MIN(at) FROM history").fetchone()[0]
    if oldest is None:
        return []
    first = max(first, date.fromisoformat(oldest[:10]))
    have = {row[0] for row in conn.execute(
        "SELECT day FROM history_days WHERE day >= ? AND day <= ? AND version = ? AND connectors = ?",
        (first.isoformat(), last.isoformat(), TALLY_VERSION, connectors))}
    days = []
    day = first
    while day <= last:
        if day.isoformat() not in have:
            days.append(day)
        day += timedelta(days=1)
    return days


def roll_up(conn: sqlite3.Connection, connectors: int, first: date, last: date, most: int) -> list[date]:
    """Tally at most ``most`` of the days from ``first`` to ``last`` that lack a tally, oldest first; those done."""
    done = missing_days(conn, connectors, first, last)[:most]
    for day in done:
        roll_up_day(conn, connectors, day)
    return done


def roll_up_day(conn: sqlite3.Connection, connectors: int, day: date) -> None:
    """Tally ``day`` from its events and keep it."""
    start = day_start(day)
    summary, charging = encode(events_tally(conn, connectors, start, start + DAY_S))
    conn.execute("INSERT OR REPLACE INTO history_days (day, version, connectors, summary, charging) "
                 "VALUES (?, ?, ?, ?, ?)", (day.isoformat(), TALLY_VERSION, connectors, summary, charging))


def period_tally(conn: sqlite3.Connection, connectors: int, start: float, end: float) -> Tally:
    """The tally of ``[start, end)``: the stored tallies of its whole UTC days, the rest from the events."""
    return merge(_period_parts(conn, connectors, start, end), start, end)


def _period_parts(conn: sqlite3.Connection, connectors: int, start: float, end: float) -> Iterator[Tally]:
    first = datetime.fromtimestamp(-(-start // DAY_S) * DAY_S, UTC).date()
    last = datetime.fromtimestamp(end // DAY_S * DAY_S, UTC).date() - timedelta(days=1)
    at = start
    if first <= last:
        for day, t in stored(conn, connectors, first, last):
            begins = day_start(day)
            if begins > at:
                yield events_tally(conn, connectors, at, begins)
            yield t
            at = begins + DAY_S
    if at < end:
        yield events_tally(conn, connectors, at, end)
