"""The storage's health at run time: a corrupt database replaced, a full disk, space come back.

The store handles both conditions itself (it salvages, it waits for space: see ``chargepoint.store``); this tells the
operator and the charger: a charger fault (``StorageCorrupt``, ``StorageFull``: ``chargepoint status`` and
``chargepoint fault list``), a security event for the CSMS, and, while the disk is full, every connector refuses new
sessions (it turns Unavailable once idle; a running session goes on and its records go into the reserve space).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from chargepoint.core.events import AvailabilityChanged, Event
from chargepoint.ports.events import ChargerEvent, SecurityEvent
from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.runtime.faults import ChargerFault, FaultBook, Spawn
from chargepoint.store import CorruptionReport, StorageChange, StorageCorrupted, StorageFilled, Store

log = logging.getLogger(__name__)

CHECK_INTERVAL_s: Final = 30.0
CORRUPT_EVENT: Final = "DatabaseCorruptionRecovered"  # not in the whitepaper's list, which is open-ended
FULL_EVENT: Final = "MemoryExhaustion"  # the whitepaper's: "the Flash or RAM memory of the Charge Point is full"


class StorageMonitor:
    def __init__(self, store: Store, connectors: Mapping[int, ConnectorRuntime], faults: FaultBook,
                 post: Callable[[int, Event], None], publish: Callable[[ChargerEvent], None], spawn: Spawn,
                 check_interval_s: float = CHECK_INTERVAL_s) -> None:
        self.store = store
        self.connectors = connectors
        self.faults = faults
        self._post = post
        self._publish = publish
        self._spawn = spawn
        self.check_interval_s = check_interval_s

    @property
    def refusing(self) -> bool:
        """New sessions are refused (the disk is full)."""
        return self.store.full

    def start(self) -> None:
        """At start, after the faults were restored: tell what ``Store.open`` found, then listen for changes."""
        for report in self.store.corruption:
            self._corrupted(report)
        if self.store.full:
            self._filled(self.store.space.reason)
        self.store.add_storage_listener(self._changed)

    async def run(self) -> None:
        """Look at the free space periodically: the full state ends by itself once space is back."""
        while True:
            await asyncio.sleep(self.check_interval_s)
            await self.store.check_space()

    def _changed(self, change: StorageChange) -> None:
        match change:
            case StorageCorrupted(report=report):
                self._corrupted(report)
            case StorageFilled(reason=reason):
                self._filled(reason)
            case _:
                self._space_back()

    def _corrupted(self, report: CorruptionReport) -> None:
        # The store logged the one line for the technician; this makes it a fault and tells the CSMS.
        self.faults.raise_charger(ChargerFault.StorageCorrupt, "store", report.line())
        log.warning("charger: fault %s latched (acknowledge with 'chargepoint fault clear'); charging goes on",
                    ChargerFault.StorageCorrupt)
        self._publish(SecurityEvent(
            CORRUPT_EVENT, f"database corrupt ({report.detected}); moved to {report.moved_to.name}, "
            f"{report.rows} rows recovered ({report.method})", report.at))

    def _filled(self, reason: str) -> None:
        if not self.faults.raise_charger(ChargerFault.StorageFull, "store", f"disk full: {reason}"):
            return
        log.warning("charger: fault %s raised: new sessions are refused until disk space returns",
                    ChargerFault.StorageFull)
        self._publish(SecurityEvent(FULL_EVENT, f"disk full: {reason}"[:255], datetime.now(UTC)))
        now = time.monotonic()
        for connector_id in self.connectors:
            self._post(connector_id, AvailabilityChanged(False, now))

    def _space_back(self) -> None:
        if self.faults.clear_charger(ChargerFault.StorageFull, "disk space back"):
            self._spawn(self._restore_availability())

    async def _restore_availability(self) -> None:
        """Each connector back to the availability the operator (or CSMS) chose, which the store keeps."""
        for connector_id in self.connectors:
            chosen = await self.store.get_kv(f"availability.{connector_id}")
            if not self.store.full:
                self._post(connector_id, AvailabilityChanged(chosen != "Inoperative", time.monotonic()))

    def status(self) -> dict[str, Any]:
        """The ``storage`` field of ``chargepoint status``."""
        space = self.store.space_status()
        state = "full" if space.full else "recovered" if ChargerFault.StorageCorrupt in self.faults.charger else "ok"
        return {
            "state": state,
            "database": str(self.store.path),
            "free_bytes": space.free_bytes,
            "reserve_bytes": space.reserve_bytes,
            "refusing_sessions": space.full,
            "faults": [{"code": str(f), "detail": detail} for f, detail in sorted(self.faults.charger.items())],
            "corrupt_copies": [str(r.moved_to) for r in self.store.corruption],
        }
