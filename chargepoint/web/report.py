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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from chargepoint.store.period import period_figures

log = logging.getLogger(__name__)

REPORT_DAYS = 30
CACHE_S = 60.0


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
