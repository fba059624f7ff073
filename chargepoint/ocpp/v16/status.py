"""StatusNotification: each connector's status (and connector 0's, the charger's) as the CSMS should see it.

A status is sent once it has held for ``MinimumStatusDuration`` (a fault at once), after the transaction
messages queued before it (within limits), and never queued while offline: every status is sent again after
each registration.

A Faulted or Unavailable connector says why: ``vendorErrorCode`` is our own code (the fault that decided
``errorCode``: ContactorWelded, GroundFailure, RcdTestFailed ...; MainsLost, StorageFull or Inoperative for
Unavailable), ``info`` a short text for a person (both CiString50), left out when there is nothing to say.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from chargepoint.core.commands import ConnectorStatus, Fault
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ocpp.v16.wire import wire_time
from chargepoint.ports.charger import ChargerPort

STATUS_WAIT_FOR_OUTBOX_S = 3.0
CI_STRING_50 = 50

# ``info`` for each of our codes: what a technician reading the CSMS should know. At most 32 characters, so that
# "(latched)" and "+N more" still fit in 50.
CAUSE_TEXTS: dict[str, str] = {
    Fault.GroundFailure: "RCD tripped (residual current)",
    Fault.PilotShort: "Control pilot shorted",
    Fault.PilotNegative: "Control pilot: -12 V missing",
    Fault.DiodeFailure: "No EV diode on the control pilot",
    Fault.ContactorStuckOpen: "Contactor stuck open",
    Fault.ContactorWelded: "Contactor welded",
    Fault.PowerMeterFailure: "Energy meter does not answer",
    Fault.ConnectorLockFailure: "Connector lock failed",
    Fault.OverCurrentFailure: "EV drew more than offered",
    Fault.PilotLost: "Control pilot readings lost",
    Fault.RcdTestFailed: "RCD self-test failed",
    Fault.PilotTestFailed: "Control pilot self-test failed",
    "MainsLost": "Mains power lost",
    "StorageFull": "Disk full, no new sessions",
    "Inoperative": "Set inoperative",
}
CAUSE_TEXT_MAX = 32
LATCHED_ALWAYS = frozenset(f.value for f in Fault if f.always_latched)


def cause_fields(status: ConnectorStatus, causes: tuple[str, ...]) -> dict[str, str]:
    """``vendorErrorCode`` and ``info`` of a StatusNotification: for Faulted or Unavailable with a cause, else none."""
    if status not in (ConnectorStatus.Faulted, ConnectorStatus.Unavailable) or not causes:
        return {}
    code = causes[0]
    info = CAUSE_TEXTS.get(code, code)[:CAUSE_TEXT_MAX]
    if code in LATCHED_ALWAYS:
        info += " (latched)"  # until a technician clears it: 'chargepoint fault clear'
    if len(causes) > 1:
        info += f" +{len(causes) - 1} more"
    return {"vendorErrorCode": code[:CI_STRING_50], "info": info[:CI_STRING_50]}


class StatusReporter:
    def __init__(self, keys: OcppConfiguration, connection: CsmsConnection, charger: ChargerPort,
                 outbox_drained: asyncio.Event) -> None:
        self.keys = keys
        self.connection = connection
        self.charger = charger
        self._outbox_drained = outbox_drained
        self._sent: dict[int, tuple[str, str]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        # Per connector: the causes of its latest status, with that status (a later send of the same status says
        # the same; the charger's view has no causes to ask for).
        self._causes: dict[int, tuple[ConnectorStatus, str, tuple[str, ...]]] = {}

    def status_changed(self, connector_id: int, status: ConnectorStatus, error_code: str,
                       causes: tuple[str, ...] = ()) -> None:
        """A connector changed status. Sent after MinimumStatusDuration if it still holds; never queued."""
        self._causes[connector_id] = (status, error_code, causes)
        old = self._tasks.pop(connector_id, None)
        if old is not None:
            old.cancel()
        task = asyncio.ensure_future(self._send_later(connector_id, status, error_code))
        self._tasks[connector_id] = task
        if connector_id != 0:
            self._update_connector_zero()

    def charge_point_status(self) -> ConnectorStatus:
        """Connector 0, the charge point as a whole: Unavailable or Faulted when every connector is."""
        statuses = [c.status for c in self.charger.connectors.values()]
        if all(s is ConnectorStatus.Unavailable for s in statuses):
            return ConnectorStatus.Unavailable
        if all(s is ConnectorStatus.Faulted for s in statuses):
            return ConnectorStatus.Faulted
        return ConnectorStatus.Available

    def _update_connector_zero(self) -> None:
        zero = self.charge_point_status()
        if self._sent.get(0, ("", ""))[0] != zero.value:
            old = self._tasks.pop(0, None)
            if old is not None:
                old.cancel()
            self._tasks[0] = asyncio.ensure_future(self._send_later(0, zero, "NoError"))

    async def _send_later(self, connector_id: int, status: ConnectorStatus, error_code: str) -> None:
        hold_s = self.keys.get_int("MinimumStatusDuration")
        if hold_s > 0 and status is not ConnectorStatus.Faulted:
            await asyncio.sleep(hold_s)
        # A status that follows a transaction message should reach the CSMS after it (StopTransaction, then
        # Available), but a long offline backlog must not hold statuses back for long.
        if self.connection.registered.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_WAIT_FOR_OUTBOX_S):
                    await self._outbox_drained.wait()
        await self.send(connector_id, status, error_code)

    def _causes_of(self, connector_id: int, status: ConnectorStatus, error_code: str) -> tuple[str, ...]:
        known = self._causes.get(connector_id)
        if known is None or known[:2] != (status, error_code):
            return ()
        return known[2]

    async def send(self, connector_id: int, status: ConnectorStatus, error_code: str, *,
                   triggered: bool = False) -> None:
        payload: dict[str, Any] = {
            "connectorId": connector_id, "status": status.value, "errorCode": error_code,
            **cause_fields(status, self._causes_of(connector_id, status, error_code)),
            "timestamp": wire_time(self.connection.clock.now())}
        reply = await self.connection.call("StatusNotification", payload, triggered=triggered)
        if reply is not None:
            self._sent[connector_id] = (status.value, error_code)

    async def send_connector(self, connector_id: int, *, triggered: bool = False) -> None:
        """The status of one connector, or of the charge point as a whole for connector 0."""
        if connector_id == 0:
            await self.send(0, self.charge_point_status(), "NoError", triggered=triggered)
            return
        c = self.charger.connectors[connector_id]
        await self.send(connector_id, c.status, c.error_code, triggered=triggered)

    async def send_all(self, *, triggered: bool = False) -> None:
        """Connector 0, then every connector (after registration, and for a TriggerMessage naming none)."""
        zero = self._tasks.pop(0, None)
        if zero is not None:
            zero.cancel()
        await self.send_connector(0, triggered=triggered)
        for connector_id in list(self.charger.connectors):
            await self.send_connector(connector_id, triggered=triggered)
