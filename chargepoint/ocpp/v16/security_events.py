"""Security events (OCPP 1.6 security extension): the security log, and SecurityEventNotification to the CSMS.

Events come from the charger (``ports.events.SecurityEvent``: StartupOfTheDevice, ResetOrReboot, storage
damage ...) and from the adapter itself (a changed AuthorizationKey or SecurityProfile, a connection that failed
with them, diagnostics uploads). Each is written to the store's security log and, in the same transaction, its
notification to the outbox (``store/security_log.py``): delivered in order, at least once, across outages and
restarts, like a transaction message. Critical events (the whitepaper's list) are always queued; a flood of
non-critical ones is logged but not all queued. A CSMS that refuses a notification (CALLERROR, e.g.
NotImplemented when it lacks the security extension) has it dropped by the outbox at once: it must never hold
up a transaction message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from chargepoint.cancellation import raise_if_cancelling
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ocpp.v16.wire import wire_time
from chargepoint.store import SecurityLogEntry, Store, security_log

log = logging.getLogger(__name__)

LEGACY_QUEUE_KV = "ocpp.security_events"  # where undelivered events waited before the outbox took them
TECH_INFO_MAX = 255  # SecurityEventNotification.req techInfo
CRITICAL: Final = security_log.CRITICAL


class SecurityEvents:
    def __init__(self, store: Store, connection: CsmsConnection, outbox_changed: Callable[[], None]) -> None:
        self.store = store
        self.connection = connection
        self._outbox_changed = outbox_changed
        self._pending: asyncio.Queue[SecurityLogEntry] = asyncio.Queue()

    async def load(self) -> None:
        """Events an older firmware left waiting in its own queue go to the log and the outbox first."""
        text = await self.store.get_kv(LEGACY_QUEUE_KV)
        if not text:
            return
        try:
            waiting = json.loads(text)
        except ValueError:
            waiting = []
        for event in waiting if isinstance(waiting, list) else []:
            if isinstance(event, dict) and isinstance(event.get("type"), str):
                kind = str(event["type"])
                entry = SecurityLogEntry(str(event.get("timestamp", "")), kind, str(event.get("techInfo", "")),
                                         kind in CRITICAL, True)
                await self.store.record_security_event(entry, _payload(entry))
        await self.store.set_kv(LEGACY_QUEUE_KV, "")

    def record(self, kind: str, tech_info: str, at: datetime) -> None:
        """Log one event (named as the whitepaper's list names it) and queue its notification; returns at once,
        the store write follows in order."""
        log.info("security event %s: %s", kind, tech_info)
        at_text = wire_time(self.connection.clock.on_csms_clock(at.astimezone(UTC)))
        self._pending.put_nowait(SecurityLogEntry(at_text, kind, tech_info[:TECH_INFO_MAX], kind in CRITICAL, True))

    async def run(self) -> None:
        while True:
            raise_if_cancelling()
            entry = await self._pending.get()
            queued = await self.store.record_security_event(entry, _payload(entry))
            if queued:
                self._outbox_changed()
            else:
                log.warning("security event %s logged but not sent: too many notifications wait already", entry.kind)

    async def history(self) -> list[dict[str, Any]]:
        """The security log, newest first, as GetLog and the diagnostics bundle show it."""
        return [{"timestamp": e.at, "type": e.kind, "techInfo": e.tech_info, "critical": e.critical,
                 "sent_to_csms": e.queued} for e in await self.store.security_log()]


def _payload(entry: SecurityLogEntry) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": entry.kind, "timestamp": entry.at}
    if entry.tech_info:
        payload["techInfo"] = entry.tech_info
    return payload
