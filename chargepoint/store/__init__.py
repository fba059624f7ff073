"""Persistent store: SQLite (WAL, one writer thread, off the event loop) with numbered migrations."""

from __future__ import annotations

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
