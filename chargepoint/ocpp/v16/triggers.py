"""TriggerMessage: what the CSMS asked for, sent in the order asked as soon as the charger may send it.

A trigger accepted while the charger is (re)registering (its BootNotification unanswered, or Rejected) waits
until it is registered or Pending, then goes out: OCPP 1.6 4.2 lets a Pending charger send what a TriggerMessage
asked for, and nothing else. A trigger still waiting when the link drops goes out on the next one.

connectorId: none means every connector (StatusNotification: connector 0, the charge point, too); 0 means the
charge point as a whole (StatusNotification of connector 0); MeterValues has no meter of the charge point as a
whole, so 0 means every connector's meter, as none does. The other messages concern the charge point only.

ExtendedTriggerMessage (security extension) asks for the same messages and three more, queued under these names:
``SignedFirmwareStatusNotification`` (its FirmwareStatusNotification), ``LogStatusNotification`` and
``SignChargePointCertificate`` (a new key pair and SignCertificate).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed

from chargepoint.cancellation import raise_if_cancelling
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ocpp.v16.link import CallFailed
from chargepoint.ocpp.v16.meter_values import MeterValues
from chargepoint.ocpp.v16.status import StatusReporter
from chargepoint.ports.charger import ChargerPort

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Trigger:
    message: str
    connector_id: int | None
    boots_sent: int  # BootNotifications sent when it was asked for: one sent since answers it


class TriggeredMessages:
    def __init__(self, connection: CsmsConnection, status: StatusReporter, meter_values: MeterValues,
                 charger: ChargerPort, firmware_status: Callable[[], str],
                 diagnostics_status: Callable[[], str], log_status: Callable[[], tuple[str, int | None]],
                 sign_certificate: Callable[[], Awaitable[None]]) -> None:
        self.connection = connection
        self.status = status
        self.meter_values = meter_values
        self.charger = charger
        self._firmware_status = firmware_status
        self._diagnostics_status = diagnostics_status
        self._log_status = log_status
        self._sign_certificate = sign_certificate
        self._queue: deque[_Trigger] = deque()
        self._wakeup = asyncio.Event()

    def requested(self, message: str, connector_id: int | None) -> None:
        """A TriggerMessage was accepted (the answer is out): its message follows."""
        if connector_id is not None and connector_id != 0 and connector_id not in self.charger.connectors:
            log.warning("TriggerMessage %s for connector %d, which does not exist: nothing to send", message,
                        connector_id)
            return
        self._queue.append(_Trigger(message, connector_id, self.connection.boots_sent))
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            raise_if_cancelling()
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self.connection.wait_may_send_triggered()
            trigger = self._queue.popleft()
            try:
                await self._send(trigger)
                raise_if_cancelling()
            except CallFailed as exc:
                log.warning("triggered %s refused by the CSMS: %s", trigger.message, exc)
            except (TimeoutError, ConnectionClosed) as exc:
                log.warning("triggered %s not answered: %s", trigger.message, str(exc) or type(exc).__name__)

    async def _send(self, trigger: _Trigger) -> None:
        connection, connector_id = self.connection, trigger.connector_id
        match trigger.message:
            case "BootNotification":
                if connection.boots_sent > trigger.boots_sent:
                    return  # the registration sent one after the trigger came
                await connection.trigger_boot()
            case "Heartbeat":
                reply = await connection.call("Heartbeat", {}, triggered=True)
                if reply is not None:
                    connection.clock.sync(str(reply.get("currentTime", "")))
            case "StatusNotification":
                if connector_id is None:
                    await self.status.send_all(triggered=True)
                else:
                    await self.status.send_connector(connector_id, triggered=True)
            case "MeterValues":
                targets = [connector_id] if connector_id else list(self.charger.connectors)
                await self.meter_values.send_now(targets, triggered=True)
            case "DiagnosticsStatusNotification":
                await connection.call("DiagnosticsStatusNotification", {"status": self._diagnostics_status()},
                                      triggered=True)
            case "FirmwareStatusNotification":
                await connection.call("FirmwareStatusNotification", {"status": self._firmware_status()},
                                      triggered=True)
            case "SignedFirmwareStatusNotification":
                await connection.call("SignedFirmwareStatusNotification", {"status": self._firmware_status()},
                                      triggered=True)
            case "LogStatusNotification":
                status, request_id = self._log_status()
                await connection.call("LogStatusNotification", {"status": status} | (
                    {} if request_id is None else {"requestId": request_id}), triggered=True)
            case "SignChargePointCertificate":
                await self._sign_certificate()
            case _:
                log.warning("TriggerMessage %s: nothing to send", trigger.message)
