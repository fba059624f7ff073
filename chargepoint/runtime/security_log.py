"""Security events of a charger without a CSMS: kept in the store's security log all the same (``chargepoint events``
lists them). With a CSMS attached, its adapter logs each event together with the notification it sends."""

from __future__ import annotations

import asyncio
import logging

from chargepoint.ports.events import ChargerEvent, SecurityEvent
from chargepoint.store import SecurityLogEntry, Store, security_log

log = logging.getLogger(__name__)

TECH_INFO_MAX = 255


class StandaloneSecurityLog:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: asyncio.Queue[SecurityLogEntry] = asyncio.Queue()

    def charger_event(self, event: ChargerEvent) -> None:
        if isinstance(event, SecurityEvent):
            log.info("security event %s: %s", event.kind, event.detail)
            at = event.at.isoformat(timespec="seconds")
            self._pending.put_nowait(SecurityLogEntry(at, event.kind, event.detail[:TECH_INFO_MAX],
                                                      event.kind in security_log.CRITICAL, False))

    async def run(self) -> None:
        """Writes the events in the order they came; runs until cancelled."""
        while True:
            entry = await self._pending.get()
            await self.store.record_security_event(entry, None)

    async def flush(self) -> None:
        while not self._pending.empty():
            await self.store.record_security_event(self._pending.get_nowait(), None)
