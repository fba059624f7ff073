"""SecurityEventNotification (OCPP 1.6 security whitepaper): the charger's security events, told to the CSMS.

Events come from the charger (``ports.events.SecurityEvent``: StartupOfTheDevice, ResetOrReboot) and from the
adapter itself (a changed AuthorizationKey or SecurityProfile, a connection that failed with them). They are
kept, in order, in the store until the CSMS answered, so an outage or a restart loses none; each is sent once
the charger is registered. A CSMS that refuses one (CALLERROR, e.g. NotImplemented when it lacks the security
extension) has it dropped: unlike a transaction message it must never hold up anything else, and it is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime

from websockets.exceptions import ConnectionClosed

from chargepoint.cancellation import raise_if_cancelling
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ocpp.v16.link import CallFailed
from chargepoint.ocpp.v16.wire import wire_time
from chargepoint.store import Store

log = logging.getLogger(__name__)

SECURITY_EVENTS_KV = "ocpp.security_events"
MAX_QUEUED = 100  # the oldest go first beyond this: a CSMS away for long gets the latest events
TECH_INFO_MAX = 255  # SecurityEventNotification.req techInfo
RESEND_PAUSE_S = 1.0
HISTORY_KEPT = 1000


class SecurityEvents:
    def __init__(self, store: Store, connection: CsmsConnection) -> None:
        self.store = store
        self.connection = connection
        self._queue: list[dict[str, str]] = []
        self._history: list[dict[str, str]] = []  # recorded since the start, newest last (bounded)
        self._dirty = False
        self._wakeup = asyncio.Event()

    async def load(self) -> None:
        """Events not yet delivered before the last stop go first."""
        text = await self.store.get_kv(SECURITY_EVENTS_KV)
        try:
            persisted = json.loads(text) if text else []
        except ValueError:
            log.warning("ignoring an unreadable list of undelivered security events")
            persisted = []
        if isinstance(persisted, list):
            self._queue[:0] = [e for e in persisted if isinstance(e, dict)]
            del self._queue[:-MAX_QUEUED]

    def record(self, kind: str, tech_info: str, at: datetime) -> None:
        """Queue one event (named as the whitepaper's list names it); returns at once."""
        log.info("security event %s: %s", kind, tech_info)
        event = {"type": kind, "timestamp": wire_time(self.connection.clock.on_csms_clock(at)),
                 "techInfo": tech_info[:TECH_INFO_MAX]}
        self._queue.append(event)
        self._history.append(event)
        del self._history[:-HISTORY_KEPT]
        del self._queue[:-MAX_QUEUED]
        self._dirty = True
        self._wakeup.set()

    async def history(self) -> list[dict[str, str]]:
        """The security log, newest first."""
        return list(reversed(self._history))

    def wake(self) -> None:
        """The charger registered: send what is queued."""
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            raise_if_cancelling()
            self._wakeup.clear()
            if self._dirty:
                self._dirty = False
                await self.store.set_kv(SECURITY_EVENTS_KV, json.dumps(self._queue))
            link = self.connection.link
            if not self._queue or link is None or not self.connection.registered.is_set():
                await self._wakeup.wait()
                continue
            event = self._queue[0]
            try:
                await link.call_raw("SecurityEventNotification", event)
                raise_if_cancelling()
            except CallFailed as exc:
                log.warning("the CSMS refused SecurityEventNotification %s (%s): dropped", event["type"], exc)
            except (TimeoutError, ConnectionClosed) as exc:
                # Kept: sent again on this link or the next one (at least once, as for transaction messages).
                log.warning("SecurityEventNotification %s not answered (%s)", event["type"],
                            str(exc) or type(exc).__name__)
                await asyncio.sleep(RESEND_PAUSE_S)
                continue
            if self._queue and self._queue[0] is event:
                self._queue.pop(0)
                self._dirty = True
