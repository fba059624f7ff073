"""The connectors' faults at run time: every raise, latch and clearance goes to the store's fault log with its
time, code and source; latched faults are stored so that a restart brings them back instead of clearing them.

Recording happens after the commands of an event have run: the contactor has opened before anything is written.

Faults of the charger as a whole (the storage's: ``ChargerFault``) are kept here too, as connector 0 (OCPP's number
for the charge point itself). They never stop a session: the runtime decides what each one refuses.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from chargepoint.core.commands import Fault
from chargepoint.core.events import Event, FaultsCleared, PilotChanged, TimerExpired
from chargepoint.logfields import log_fields
from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.store import FaultChange, Store

log = logging.getLogger(__name__)

Spawn = Callable[[Awaitable[Any]], None]

CHARGER = 0
"""The connector id of the charger's own faults (OCPP: connector 0 is the charge point)."""


class ChargerFault(enum.StrEnum):
    """Faults of the charger as a whole."""

    StorageCorrupt = "StorageCorrupt"
    """The database was corrupt and replaced (the copy kept); charging goes on. Stays until acknowledged with
    'chargepoint fault clear'."""
    StorageFull = "StorageFull"
    """The disk is full: new sessions are refused, running ones go on; clears by itself when space returns."""

    @property
    def latched(self) -> bool:
        return self is ChargerFault.StorageCorrupt

    @property
    def error_code(self) -> str:
        return "InternalError"


def source_of(event: Event | None) -> str:
    """What caused a change, in the words of the log: the event, with the detail that tells it apart."""
    match event:
        case None:
            return "start"
        case FaultsCleared(source=source):
            return source
        case PilotChanged(state=state):
            return f"pilot {state}"
        case TimerExpired(name=name):
            return f"timer {name}"
    return type(event).__name__


class FaultBook:
    """Diffs each connector's faults after every event and writes the changes in order (one store writer)."""

    def __init__(self, store: Store, spawn: Spawn) -> None:
        self.store = store
        self._spawn = spawn
        self._seen: dict[int, tuple[frozenset[Fault], frozenset[Fault]]] = {}
        self.charger: dict[ChargerFault, str] = {}
        """The charger's active faults, each with the one line that explains it."""

    async def restore(self, connectors: Iterable[ConnectorRuntime]) -> dict[int, tuple[str, ...]]:
        """The latched faults stored for each connector (to be posted to the core as ``LatchedFaultsRestored``)."""
        stored = await self.store.latched_faults()
        restored: dict[int, tuple[str, ...]] = {}
        for code, since in stored.get(CHARGER, []):
            if code in ChargerFault.__members__:
                self.charger.setdefault(ChargerFault(code), f"since {since}, from before the restart")
        for c in connectors:
            codes = tuple(code for code, _ in stored.get(c.connector_id, []))
            if codes:
                log.warning("connector %d: latched faults from before the restart: %s (clear them with "
                            "'chargepoint fault clear' once the cause is repaired)", c.connector_id, ", ".join(codes),
                            extra=log_fields(connector=c.connector_id))
                restored[c.connector_id] = codes
        return restored

    def note(self, c: ConnectorRuntime, event: Event | None) -> None:
        active, latched = c.core.active_faults, c.core.latched_faults
        before_active, before_latched = self._seen.get(c.connector_id, (frozenset(), frozenset()))
        if (active, latched) == (before_active, before_latched):
            return
        self._seen[c.connector_id] = (active, latched)
        at = datetime.now(UTC).isoformat()
        source = source_of(event)
        cid = c.connector_id
        changes = [FaultChange(at, cid, str(f), "raised", source) for f in sorted(active - before_active)]
        changes += [FaultChange(at, cid, str(f), "latched", source) for f in sorted(latched - before_latched)]
        cleared_by = source if isinstance(event, FaultsCleared) else "condition gone"
        changes += [FaultChange(at, c.connector_id, str(f), "cleared", cleared_by)
                    for f in sorted(before_active - active)]
        for change in changes:
            level = logging.INFO if change.action == "cleared" else logging.WARNING
            log.log(level, "connector %d: fault %s %s (%s)", c.connector_id, change.code, change.action, change.source,
                    extra=log_fields(connector=c.connector_id))
        self._spawn(self.store.record_faults(c.connector_id, changes, sorted(str(f) for f in latched)))

    def raise_charger(self, fault: ChargerFault, source: str, detail: str) -> bool:
        """Raise (or update the detail of) a charger fault; True if it was not active before. Logged by the caller."""
        new = fault not in self.charger
        self.charger[fault] = detail
        if new:
            self._record_charger([FaultChange(datetime.now(UTC).isoformat(), CHARGER, str(fault),
                                              "latched" if fault.latched else "raised", source)])
        return new

    def clear_charger(self, fault: ChargerFault, source: str) -> bool:
        """Clear a charger fault; True if it was active."""
        if self.charger.pop(fault, None) is None:
            return False
        log.info("charger: fault %s cleared (%s)", fault, source, extra=log_fields(connector=CHARGER))
        self._record_charger([FaultChange(datetime.now(UTC).isoformat(), CHARGER, str(fault), "cleared", source)])
        return True

    def _record_charger(self, changes: list[FaultChange]) -> None:
        latched = sorted(str(f) for f in self.charger if f.latched)
        self._spawn(self.store.record_faults(CHARGER, changes, latched))

    async def listing(self, connectors: Iterable[ConnectorRuntime], limit: int) -> dict[str, Any]:
        """``chargepoint fault list``: the faults active now and the newest log lines."""
        active = [
            {"connector_id": CHARGER, "code": str(f), "latched": f.latched, "error_code": f.error_code,
             "detail": detail}
            for f, detail in sorted(self.charger.items())
        ]
        active += [
            {"connector_id": c.connector_id, "code": str(f), "latched": f in c.core.latched_faults,
             "error_code": f.error_code}
            for c in connectors for f in sorted(c.core.active_faults)
        ]
        history = [
            {"at": h.at, "connector_id": h.connector_id, "code": h.code, "action": h.action, "source": h.source}
            for h in await self.store.fault_log(limit)
        ]
        return {"active": active, "history": history}

    async def clear(self, connectors: Iterable[ConnectorRuntime], connector_id: int | None, source: str,
                    handled: Callable[[int, Event], Awaitable[None]]) -> dict[str, Any]:
        """Post ``FaultsCleared`` to each connector (or one) and say what cleared and what stays latched."""
        every = list(connectors)
        targets = [c for c in every if connector_id is None or c.connector_id == connector_id]
        if not targets:
            raise ValueError(f"no connector {connector_id}; this charger has 1..{len(every)}")
        result: list[dict[str, Any]] = []
        for c in targets:
            before = c.core.latched_faults
            await handled(c.connector_id, FaultsCleared(time.monotonic(), source))
            after = c.core.latched_faults
            result.append({"connector_id": c.connector_id, "cleared": sorted(map(str, before - after)),
                           "remaining": sorted(map(str, after))})
        if connector_id is None:
            # The charger's latched faults are acknowledgements: nothing to repair first, clearing them is the point.
            acknowledged = [f for f in self.charger if f.latched]
            for f in acknowledged:
                self.clear_charger(f, source)
            if acknowledged:
                result.insert(0, {"connector_id": CHARGER, "cleared": sorted(map(str, acknowledged)),
                                  "remaining": []})
        return {"connectors": result}
