"""Persistent store: SQLite (WAL, one writer thread, off the event loop) with numbered migrations.

The names below are loaded on first use: a read-only command (``chargepoint report``) that needs one query module
should not pay for the writer, the ledger's cryptography and asyncio in time and memory on a small board.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chargepoint.store.faults import FaultChange
    from chargepoint.store.history import Exclusion, HistoryEvent, ImportedSession
    from chargepoint.store.ledger import LedgerRecord, LedgerSigner
    from chargepoint.store.payments import PaymentRecord, PaymentRefused
    from chargepoint.store.pricing import PrepaidAccount, PricingRow, PricingStart, PricingUpdate
    from chargepoint.store.recovery import CorruptionReport, StorageCorrupted, StoreCorrupt
    from chargepoint.store.security_log import SecurityLogEntry
    from chargepoint.store.space import SpaceStatus, StorageFilled, StorageSpaceBack, StoreFull
    from chargepoint.store.store import (
        BUSY_TIMEOUT_ms,
        OutboxMessage,
        OutboxRow,
        SessionRecord,
        StorageChange,
        Store,
    )

_HOMES = {
    "FaultChange": "faults",
    "Exclusion": "history", "HistoryEvent": "history", "ImportedSession": "history",
    "LedgerRecord": "ledger", "LedgerSigner": "ledger",
    "PaymentRecord": "payments", "PaymentRefused": "payments",
    "PrepaidAccount": "pricing", "PricingRow": "pricing", "PricingStart": "pricing", "PricingUpdate": "pricing",
    "CorruptionReport": "recovery", "StorageCorrupted": "recovery", "StoreCorrupt": "recovery",
    "SecurityLogEntry": "security_log",
    "SpaceStatus": "space", "StorageFilled": "space", "StorageSpaceBack": "space", "StoreFull": "space",
    "BUSY_TIMEOUT_ms": "store", "OutboxMessage": "store", "OutboxRow": "store", "SessionRecord": "store",
    "StorageChange": "store", "Store": "store",
}

__all__ = [
    "BUSY_TIMEOUT_ms",
    "CorruptionReport",
    "Exclusion",
    "FaultChange",
    "HistoryEvent",
    "ImportedSession",
    "LedgerRecord",
    "LedgerSigner",
    "OutboxMessage",
    "OutboxRow",
    "PaymentRecord",
    "PaymentRefused",
    "PrepaidAccount",
    "PricingRow",
    "PricingStart",
    "PricingUpdate",
    "SecurityLogEntry",
    "SessionRecord",
    "SpaceStatus",
    "StorageChange",
    "StorageCorrupted",
    "StorageFilled",
    "StorageSpaceBack",
    "Store",
    "StoreCorrupt",
    "StoreFull",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
