"""Persistent store: SQLite (WAL, one writer thread, off the event loop) with numbered migrations."""

from __future__ import annotations

from chargepoint.store.store import (
    BUSY_TIMEOUT_ms,
    IdTagEntry,
    OutboxMessage,
    OutboxRow,
    ReservationRecord,
    SessionRecord,
    Store,
)

__all__ = [
    "BUSY_TIMEOUT_ms",
    "IdTagEntry",
    "OutboxMessage",
    "OutboxRow",
    "ReservationRecord",
    "SessionRecord",
    "Store",
]
