"""Fault rows of the store: the log of every fault raised, latched and cleared, and the latched faults in force.

Functions here run on the store's worker thread; ``record`` writes a connector's log rows and its latched set in one
transaction, so that what survives a power cut is always a state the connector was really in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FaultChange:
    """One line of the fault log. ``action``: raised, latched or cleared; ``source``: what caused it."""

    at: str
    connector_id: int
    code: str
    action: str
    source: str


def record(conn: sqlite3.Connection, connector_id: int, changes: Sequence[FaultChange], latched: Sequence[str]) -> None:
    conn.executemany(
        "INSERT INTO fault_log (at, connector_id, code, action, source) VALUES (?, ?, ?, ?, ?)",
        [(c.at, c.connector_id, c.code, c.action, c.source) for c in changes],
    )
    kept = set(latched)
    rows = conn.execute("SELECT code FROM latched_faults WHERE connector_id = ?", (connector_id,)).fetchall()
    stored = {str(row["code"]) for row in rows}
    for code in stored - kept:
        conn.execute("DELETE FROM latched_faults WHERE connector_id = ? AND code = ?", (connector_id, code))
    since = changes[-1].at if changes else ""
    for code in kept - stored:
        conn.execute("INSERT INTO latched_faults (connector_id, code, since) VALUES (?, ?, ?)",
                     (connector_id, code, since))


def latched(conn: sqlite3.Connection) -> dict[int, list[tuple[str, str]]]:
    """connector id -> [(code, since)] of the faults latched when the charger last ran."""
    result: dict[int, list[tuple[str, str]]] = {}
    for row in conn.execute("SELECT connector_id, code, since FROM latched_faults ORDER BY connector_id, code"):
        result.setdefault(int(row["connector_id"]), []).append((str(row["code"]), str(row["since"])))
    return result


def log(conn: sqlite3.Connection, limit: int, connector_id: int | None) -> list[FaultChange]:
    """The newest ``limit`` log lines (of one connector, or all), oldest first."""
    where, args = ("WHERE connector_id = ?", (connector_id,)) if connector_id is not None else ("", ())
    rows = conn.execute(
        f"SELECT at, connector_id, code, action, source FROM fault_log {where} ORDER BY seq DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [FaultChange(str(r["at"]), int(r["connector_id"]), str(r["code"]), str(r["action"]), str(r["source"]))
            for r in reversed(rows)]
