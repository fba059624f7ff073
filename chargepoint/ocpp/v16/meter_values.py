"""MeterValues: sampled every ``MeterValueSampleInterval`` during a transaction, clock-aligned every
``ClockAlignedDataInterval``, and on a TriggerMessage. Those of a transaction go through the outbox; the
readings that StopTransaction's transactionData repeats are kept for it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from chargepoint.cancellation import raise_if_cancelling
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ocpp.v16.outbox import Outbox
from chargepoint.ocpp.v16.wire import wire_time
from chargepoint.ports.charger import ChargerPort
from chargepoint.store import OutboxMessage

log = logging.getLogger(__name__)
SAMPLE_TICK_S = 0.5


class MeterValues:
    def __init__(self, keys: OcppConfiguration, connection: CsmsConnection, charger: ChargerPort,
                 outbox: Outbox) -> None:
        self.keys = keys
        self.connection = connection
        self.charger = charger
        self.outbox = outbox
        self._tasks: set[asyncio.Task[Any]] = set()

    def sampled_values(self, connector_id: int, measurands: Sequence[str], context: str) -> list[dict[str, Any]]:
        c = self.charger.connectors[connector_id]
        reading = c.last_reading
        values: list[dict[str, Any]] = []
        for measurand in measurands:
            if measurand == "Current.Offered":
                values.append({"value": f"{c.offered_current_A:.1f}", "context": context, "measurand": measurand,
                               "unit": "A", "location": "Outlet"})
                continue
            if reading is None:
                continue
            if measurand == "Energy.Active.Import.Register":
                values.append({"value": str(reading.energy_Wh_import), "context": context, "measurand": measurand,
                               "unit": "Wh", "location": "Outlet"})
            elif measurand == "Power.Active.Import":
                values.append({"value": f"{reading.power_W:.1f}", "context": context, "measurand": measurand,
                               "unit": "W", "location": "Outlet"})
            elif measurand in ("Current.Import", "Voltage"):
                per_phase = reading.current_A if measurand == "Current.Import" else reading.voltage_V
                unit = "A" if measurand == "Current.Import" else "V"
                for index, value in enumerate(per_phase):
                    phase = f"L{index + 1}" if unit == "A" else f"L{index + 1}-N"
                    values.append({"value": f"{value:.2f}", "context": context, "measurand": measurand,
                                   "unit": unit, "phase": phase, "location": "Outlet"})
        return values

    def _payload(self, connector_id: int, measurands: Sequence[str], context: str) -> dict[str, Any] | None:
        """A MeterValues payload, or None when there is nothing to report (no reading yet, the meter failed):
        1.6 requires at least one sampledValue, and a CSMS refuses an empty MeterValues."""
        values = self.sampled_values(connector_id, measurands, context)
        if not values:
            log.debug("connector %d: no %s meter values to send", connector_id, context)
            return None
        return {
            "connectorId": connector_id,
            "meterValue": [{"timestamp": wire_time(self.connection.clock.now()), "sampledValue": values}],
        }

    def has_values(self, connector_id: int) -> bool:
        """Whether a triggered MeterValues of the connector would carry anything."""
        return bool(self.sampled_values(connector_id, self.keys.get_list("MeterValuesSampledData"), "Trigger"))

    def _keep_for_stop(self, session_id: str, connector_id: int, key: str, context: str) -> None:
        measurands = self.keys.get_list(key)
        if measurands:
            values = self.sampled_values(connector_id, measurands, context)
            if values:
                self.outbox.readings.setdefault(session_id, []).append(
                    {"timestamp": wire_time(self.connection.clock.now()), "sampledValue": values})

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._sampled())
            tg.create_task(self._aligned())

    async def _sampled(self) -> None:
        """MeterValues every MeterValueSampleInterval during each transaction, queued durably.

        The due time is worked out from the last sample (or the start) at every tick, not fixed when the last
        sample went: a new interval applies at once, so the next sample comes no later than it after the change."""
        last_s: dict[int, float] = {}  # per connector in a transaction: when it started or was last sampled
        while True:
            raise_if_cancelling()
            await asyncio.sleep(SAMPLE_TICK_S)
            interval_s = self.keys.get_int("MeterValueSampleInterval")
            now_s = time.monotonic()
            for connector_id, c in self.charger.connectors.items():
                session = c.session
                if session is None or session.session_id is None:
                    last_s.pop(connector_id, None)
                    continue
                since_s = last_s.setdefault(connector_id, now_s)
                if interval_s <= 0 or now_s < since_s + interval_s:
                    continue
                last_s[connector_id] = now_s
                self._keep_for_stop(session.session_id, connector_id, "StopTxnSampledData", "Sample.Periodic")
                payload = self._payload(connector_id, self.keys.get_list("MeterValuesSampledData"), "Sample.Periodic")
                if payload is None:
                    continue
                payload["transactionId"] = 0
                await self.outbox.enqueue([OutboxMessage("MeterValues", payload, session.session_id)])

    async def _aligned(self) -> None:
        """Clock-aligned MeterValues at every multiple of ClockAlignedDataInterval since midnight UTC."""
        while True:
            raise_if_cancelling()
            interval_s = self.keys.get_int("ClockAlignedDataInterval")
            if interval_s <= 0:
                await asyncio.sleep(1.0)
                continue
            now = self.connection.clock.now()
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            elapsed_s = (now - midnight).total_seconds()
            wait_s = interval_s - (elapsed_s % interval_s)
            await asyncio.sleep(min(wait_s, 1.0) if wait_s > 1.0 else wait_s)
            if wait_s > 1.0:
                continue
            await self.send_aligned()
            await asyncio.sleep(0.01)

    async def send_aligned(self) -> None:
        measurands = self.keys.get_list("MeterValuesAlignedData")
        for connector_id, c in self.charger.connectors.items():
            session = c.session
            if session is not None and session.session_id is not None:
                self._keep_for_stop(session.session_id, connector_id, "StopTxnAlignedData", "Sample.Clock")
            payload = self._payload(connector_id, measurands, "Sample.Clock")
            if payload is None:
                continue
            if session is not None and session.session_id is not None:
                payload["transactionId"] = 0
                await self.outbox.enqueue([OutboxMessage("MeterValues", payload, session.session_id)])
            else:
                task = asyncio.ensure_future(self.connection.call("MeterValues", payload))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def send_now(self, connector_ids: Sequence[int], *, triggered: bool = False) -> None:
        """TriggerMessage MeterValues: the current values, not queued; with the transaction's id if it has one."""
        for connector_id in connector_ids:
            payload = self._payload(connector_id, self.keys.get_list("MeterValuesSampledData"), "Trigger")
            if payload is None:
                continue
            c = self.charger.connectors[connector_id]
            if c.session is not None and c.session.csms_transaction_id is not None:
                payload["transactionId"] = c.session.csms_transaction_id
            await self.connection.call("MeterValues", payload, triggered=triggered)
