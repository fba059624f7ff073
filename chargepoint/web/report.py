"""The dashboard's availability and use figures: the same as ``chargepoint report --json`` for a period, read from the
charger's database on a read-only connection of its own, computed by :mod:`chargepoint.analytics.period_report`.

Its own connection, not the store's: the store has one worker thread for every write of the running charger, and a
dashboard reload must never queue a session's record behind a month of history. SQLite in WAL mode lets a reader run
beside the writer. The work runs on one thread of this module's own (:class:`ReportReader`), is cached for a while,
and a reader that is closed interrupts a query still running, so a stopping daemon never waits for a report.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from chargepoint.analytics.availability import Exclusion
from chargepoint.analytics.period_report import period_report
from chargepoint.analytics.timeline import Mark
from chargepoint.analytics.usage import Session
from chargepoint.store import history as _history

log = logging.getLogger(__name__)

REPORT_DAYS = 30
CACHE_S = 60.0


def _text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _usage_sessions(conn: sqlite3.Connection, since: str, until: str, currency: str) -> list[Session]:
    """The sessions started in the period, own and imported: the query of ``chargepoint report`` (``cli/report.py``,
    which an adapter may not import); tests/unit/test_web_report.py holds the two to the same figures."""
    own = conn.execute(
        "SELECT s.started_at, COALESCE(s.stopped_at, s.last_meter_at), s.connector_id, "
        "COALESCE(s.meter_stop_Wh, s.last_meter_Wh) - s.meter_start_Wh, s.id_tag, COALESCE(p.csms_cost, p.cost), "
        "p.currency FROM sessions s LEFT JOIN session_pricing p ON p.session_id = s.session_id "
        "WHERE s.started_at >= ? AND s.started_at < ?", (since, until)).fetchall()
    sessions = [Session(datetime.fromisoformat(a), datetime.fromisoformat(b), c, e, tag,
                        None if cost is None else Decimal(cost), money)
                for a, b, c, e, tag, cost, money in own]
    for i in _history.imported_sessions(conn, since, until):
        sessions.append(Session(datetime.fromisoformat(i.start), datetime.fromisoformat(i.stop), i.connector_id,
                                i.energy_Wh, i.id_tag, i.cost, currency))  # imported costs: the charger's currency
    return sessions


def _marks(conn: sqlite3.Connection, since: str, until: str) -> Iterator[Mark]:
    return _history.stream_rows(conn, since, until, lambda _cursor, row: Mark(*row))


def period_figures(conn: sqlite3.Connection, connectors: int, start: datetime, end: datetime,
                   zone: tzinfo = UTC, currency: str = "EUR") -> dict[str, Any]:
    """Availability and use of ``[start, end)`` from ``conn`` (rows as :class:`sqlite3.Row`), as
    ``chargepoint report --json`` prints them."""
    since, until = _text(start), _text(end)
    exclusions = [Exclusion(datetime.fromisoformat(x.start), datetime.fromisoformat(x.end), x.connector_id, x.reason)
                  for x in _history.exclusions(conn, since, until)]
    return period_report(_marks(conn, since, until), _usage_sessions(conn, since, until, currency), exclusions,
                         connectors, start, end, zone)


@dataclass(frozen=True, slots=True)
class ReportSettings:
    database: Path
    connectors: int
    zone: tzinfo
    currency: str


class ReportReader:
    """The last ``REPORT_DAYS`` days' report, computed on a thread of its own and kept for ``CACHE_S`` seconds;
    concurrent requests share one computation."""

    def __init__(self, settings: ReportSettings, cache_s: float = CACHE_S) -> None:
        self.settings = settings
        self.cache_s = cache_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-report")
        self._lock = asyncio.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._open: sqlite3.Connection | None = None  # the connection a computation is using, to interrupt it
        self._guard = threading.Lock()
        self._closed = False

    async def report(self) -> dict[str, Any]:
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.cache_s:
                return self._cached[1]
            end = datetime.now(UTC)
            result = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._compute, end - timedelta(days=REPORT_DAYS), end)
            self._cached = (time.monotonic(), result)
            return result

    def _compute(self, start: datetime, end: datetime) -> dict[str, Any]:
        s = self.settings
        conn = sqlite3.connect(f"file:{s.database}?mode=ro", uri=True, timeout=5, check_same_thread=False)
        try:
            with self._guard:
                if self._closed:
                    raise sqlite3.OperationalError("interrupted: the dashboard is stopping")
                self._open = conn
            conn.row_factory = sqlite3.Row
            t0 = time.monotonic()
            result = period_figures(conn, s.connectors, start, end, s.zone, s.currency)
            log.debug("monitoring: report of %d days in %.0f ms", REPORT_DAYS, (time.monotonic() - t0) * 1000)
            return result
        finally:
            with self._guard:
                self._open = None
            conn.close()

    def close(self) -> None:
        """Interrupt a computation still running and let the thread go; later requests fail."""
        with self._guard:
            self._closed = True
            if self._open is not None:
                self._open.interrupt()
        self._executor.shutdown(wait=False, cancel_futures=True)
