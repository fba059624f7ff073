"""The last lines of the log and of the OCPP message log, kept in memory for the diagnostics bundle.

A charger's journal may be volatile, rotated or out of reach of the CSMS; what a diagnostics upload needs is the
recent past, bounded. ``RecentLines`` is a ring of formatted lines (each cut to ``LINE_MAX_CHARS``) with their
wall-clock time, so a bundle can be limited to the window the CSMS asked for. Whoever installs it also installs
the redaction filters: nothing here knows what a secret looks like.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime

LINE_MAX_CHARS = 2000
LOG_LINES_KEPT = 5000
FRAMES_KEPT = 500


class RecentLines:
    """A thread-safe ring of (UTC time, text) lines."""

    def __init__(self, capacity: int) -> None:
        self._lines: deque[tuple[float, str]] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, text: str, at_s: float | None = None) -> None:
        with self._lock:
            self._lines.append((time.time() if at_s is None else at_s, text[:LINE_MAX_CHARS]))

    def lines(self, since: datetime | None = None, until: datetime | None = None) -> list[str]:
        """The lines in [since, until], oldest first, each prefixed with its UTC time."""
        low = float("-inf") if since is None else since.timestamp()
        high = float("inf") if until is None else until.timestamp()
        with self._lock:
            kept = [(at_s, text) for at_s, text in self._lines if low <= at_s <= high]
        return [f"{datetime.fromtimestamp(at_s, UTC).isoformat(timespec='milliseconds')} {text}"
                for at_s, text in kept]

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()


class RecentLinesHandler(logging.Handler):
    """A logging handler that keeps the formatted records in a ``RecentLines`` ring."""

    def __init__(self, ring: RecentLines, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.ring = ring
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.ring.add(self.format(record), record.created)
        except Exception:  # a log line must never take the charger down
            self.handleError(record)


RECENT_LOG = RecentLines(LOG_LINES_KEPT)
RECENT_FRAMES = RecentLines(FRAMES_KEPT)


def keep_recent_log(filters: list[logging.Filter] | None = None) -> RecentLinesHandler:
    """Attach the ring of recent log lines to the root logger (once), with the given redaction filters."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, RecentLinesHandler) and handler.ring is RECENT_LOG:
            return handler
    handler = RecentLinesHandler(RECENT_LOG)
    for log_filter in filters or []:
        handler.addFilter(log_filter)
    root.addHandler(handler)
    return handler
