"""The security log: every security event, kept (bounded) on the charger, and the ones for the CSMS queued with it.

An event and its SecurityEventNotification are written in one transaction: the notification goes through the
outbox (stored before it is sent, delivered in order, at least once), so a power cut or an outage loses none. A
non-critical event is not queued when many notifications already wait: an attacker who provokes events by the
thousand must not fill the outbox; it is still in the log. Functions here run on the store's worker thread.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

KEPT: Final = 5000
"""Rows kept: the oldest go first beyond this."""
QUEUED_NON_CRITICAL_MAX: Final = 100
"""Undelivered notifications beyond which a non-critical event is logged but not queued."""
ACTION: Final = "SecurityEventNotification"
CRITICAL: Final = frozenset({
    # The 1.6 security whitepaper's critical events ...
    "FirmwareUpdated", "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot", "SecurityLogWasCleared",
    "MemoryExhaustion", "TamperDetectionActivated",
    # ... and ours that an operator must hear of as surely.
    "DatabaseCorruptionRecovered",
})


@dataclass(frozen=True, slots=True)
class SecurityLogEntry:
    at: str  # UTC, ISO 8601
    kind: str
    tech_info: str
    critical: bool
    queued: bool  # a notification for the CSMS was queued


def record(conn: sqlite3.Connection, entry: SecurityLogEntry, payload: dict[str, Any] | None,
           created_at: str) -> bool:
    """Append ``entry``; queue ``payload`` as a notification if there is one and room for it. True if queued."""
    queued = False
    if payload is not None:
        waiting = conn.execute("SELECT count(*) FROM outbox WHERE action = ?", (ACTION,)).fetchone()[0]
        if entry.critical or waiting < QUEUED_NON_CRITICAL_MAX:
            conn.execute("INSERT INTO outbox (action, payload, session_id, created_at) VALUES (?, ?, NULL, ?)",
                         (ACTION, json.dumps(payload, separators=(",", ":")), created_at))
            queued = True
    conn.execute("INSERT INTO security_log (at, type, tech_info, critical, queued) VALUES (?, ?, ?, ?, ?)",
                 (entry.at, entry.kind, entry.tech_info, int(entry.critical), int(queued)))
    conn.execute("DELETE FROM security_log WHERE seq <= (SELECT max(seq) FROM security_log) - ?", (KEPT,))
    return queued


def entries(conn: sqlite3.Connection, limit: int) -> list[SecurityLogEntry]:
    """The newest ``limit`` entries, newest first."""
    rows = conn.execute("SELECT at, type, tech_info, critical, queued FROM security_log ORDER BY seq DESC LIMIT ?",
                        (limit,)).fetchall()
    return [SecurityLogEntry(str(r["at"]), str(r["type"]), str(r["tech_info"]), bool(r["critical"]),
                             bool(r["queued"])) for r in rows]
