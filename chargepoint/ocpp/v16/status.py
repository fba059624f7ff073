"""StatusNotification: each connector's status (and connector 0's, the charger's) as the CSMS should see it.

A status is sent once it has held for ``MinimumStatusDuration`` (a fault at once), after the transaction
messages queued before it (within limits), and never queued while offline: every status is sent again after
each registration.
"""

from __future__ import annotations

import asyncio
import contextlib

from chargepoint.core.commands import ConnectorStatus
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ocpp.v16.wire import wire_time
from chargepoint.ports.charger import ChargerPort

STATUS_WAIT_FOR_OUTBOX_S = 3.0


class StatusReporter:
    def __init__(self, keys: OcppConfiguration, connection: CsmsConnection, charger: ChargerPort,
                 outbox_drained: asyncio.Event) -> None:
        self.keys = keys
        self.connection = connection
        self.charger = charger
        self._outbox_drained = outbox_drained
        self._sent: dict[int, tuple[str, str]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def status_changed(self, connector_id: int, status: ConnectorStatus, error_code: str) -> None:
        """A connector changed status. Sent after MinimumStatusDuration if it still holds; never queued."""
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

    async def send(self, connector_id: int, status: ConnectorStatus, error_code: str, *,
                   triggered: bool = False) -> None:
        reply = await self.connection.call(
            "StatusNotification",
            {"connectorId": connector_id, "status": status.value, "errorCode": error_code,
             "timestamp": wire_time(self.connection.clock.now())},
            triggered=triggered,
        )
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
