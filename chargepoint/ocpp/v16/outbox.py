"""The transaction messages: built for the store, delivered from it in order, one CALL at a time.

StartTransaction, StopTransaction, MeterValues of a transaction (and California Pricing's ConnectorUnplugged)
are written to the store's outbox in the same SQLite transaction as the session change that caused them, and
leave it only when the CSMS answered. A message whose answer never came is sent again once the link is
trustworthy; one the CSMS refused is retried ``TransactionMessageAttempts`` times. The CSMS's transactionId is
patched into every message of the transaction at send time, so a transaction started offline works too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from websockets.exceptions import ConnectionClosed

from chargepoint.cancellation import raise_if_cancelling
from chargepoint.core.ocpp_auth import InvalidIdAction, invalid_id_action
from chargepoint.logfields import log_fields
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.v16.authorization import OcppAuthorization
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ocpp.v16.cost_and_price import connector_unplugged_payload
from chargepoint.ocpp.v16.kpi import is_kpi
from chargepoint.ocpp.v16.link import CallFailed, CallTimedOut
from chargepoint.ocpp.v16.smart_charging import SmartCharging
from chargepoint.ocpp.v16.wire import energy_value, wire_reason, wire_time
from chargepoint.ports.charger import ChargerPort
from chargepoint.store import OutboxMessage, OutboxRow, SessionRecord, Store

log = logging.getLogger(__name__)

class Outbox:
    def __init__(self, keys: OcppConfiguration, store: Store, connection: CsmsConnection, charger: ChargerPort,
                 authorization: OcppAuthorization, smart: SmartCharging) -> None:
        self.keys = keys
        self.store = store
        self.connection = connection
        self.charger = charger
        self.authorization = authorization
        self.smart = smart
        # Readings for StopTransaction.transactionData, per session (read from the store's thread at stop).
        self.readings: dict[str, list[dict[str, Any]]] = {}
        self.wakeup = asyncio.Event()
        self.drained = asyncio.Event()
        # Transactions whose idTag the CSMS called invalid, allowed MaxEnergyOnInvalidId: (connector, meterStart).
        self._invalid_id_sessions: dict[str, tuple[int, int]] = {}

    def changed(self) -> None:
        self.wakeup.set()

    def pending(self) -> None:
        """A session begins or ends: a transaction message is about to be queued (before the store write is even
        scheduled), and the smart-charging limits may change."""
        self.drained.clear()
        self.smart.poke()

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        await self.store.enqueue(messages)
        self.changed()

    # ----------------------------------------------------------------- sending

    async def run(self) -> None:
        while True:
            raise_if_cancelling()
            await self.connection.registered.wait()
            row = await self.store.outbox_head()
            if row is None:
                self.drained.set()
                self.wakeup.clear()
                if await self.store.outbox_len() == 0:
                    await self.wakeup.wait()
                continue
            wait_s = row.not_before - time.time()
            if wait_s > 0:
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self.wakeup.wait()
                continue
            await self._deliver(row)

    async def _deliver(self, row: OutboxRow) -> None:
        payload = dict(row.payload)
        if row.action in ("StopTransaction", "MeterValues") and row.session_id is not None:
            if row.csms_transaction_id is None:
                # Its StartTransaction was refused for good: the CSMS knows no such transaction.
                log.error("dropping %s of session %s: the CSMS never confirmed its start",
                          row.action, row.session_id, extra=_fields(row))
                await self.store.outbox_delivered(row.seq)
                return
            payload["transactionId"] = row.csms_transaction_id
        elif row.action == "DataTransfer" and row.session_id is not None:
            # ConnectorUnplugged names the transaction inside its data string.
            if row.csms_transaction_id is None:
                log.error("dropping DataTransfer of session %s: the CSMS never confirmed its start", row.session_id,
                          extra=_fields(row))
                await self.store.outbox_delivered(row.seq)
                return
            data = json.loads(payload.get("data") or "{}")
            data["transactionId"] = row.csms_transaction_id
            payload["data"] = json.dumps(data)
        link = self.connection.link
        if link is None:
            return
        try:
            reply = await link.call_raw(row.action, payload)
            raise_if_cancelling()
        except CallFailed as exc:
            await self._refused(row, exc)
            return
        except (TimeoutError, ConnectionClosed) as exc:
            # Unknown whether the CSMS got it: keep it, and send it again once the link is trustworthy.
            log.warning("%s not answered (%s); will resend", row.action, str(exc) or type(exc).__name__,
                        extra=_fields(row, exc.unique_id if isinstance(exc, CallTimedOut) else None))
            # This link (not a newer one) can no longer be trusted; the message goes again on the next.
            await link.close()
            await asyncio.sleep(0.1)
            return
        if row.action == "StartTransaction" and row.session_id is not None:
            transaction_id = int(reply["transactionId"])
            id_tag_info = reply["idTagInfo"]  # required by StartTransaction.conf, and the link validated the reply
            await self.store.outbox_delivered(row.seq, (row.session_id, transaction_id))
            await self.authorization.remember_id_tag_info(str(row.payload.get("idTag")), id_tag_info)
            self._on_start_confirmed(row, transaction_id, id_tag_info)
            await self.smart.transaction_started(int(row.payload["connectorId"]), transaction_id,
                                                 str(row.payload.get("idTag")))
        else:
            await self.store.outbox_delivered(row.seq)
            if row.action == "StopTransaction" and "idTagInfo" in reply:
                await self.authorization.remember_id_tag_info(str(row.payload.get("idTag")), reply["idTagInfo"])

    async def _refused(self, row: OutboxRow, exc: CallFailed) -> None:
        if row.action == "SecurityEventNotification":
            # A CSMS without the security extension: the event stays in the security log, and it must never
            # hold up a transaction message.
            log.warning("the CSMS refused SecurityEventNotification %s (%s): not sent again",
                        row.payload.get("type"), exc, extra=_fields(row, exc.unique_id))
            await self.store.outbox_delivered(row.seq)
            return
        if is_kpi(row.action, row.payload):
            # A CSMS that does not take our daily summary: it is a report, not a record; never retried ahead of a
            # transaction message.
            log.warning("the CSMS refused the daily KPI summary (%s): not sent again", exc,
                        extra=_fields(row, exc.unique_id))
            await self.store.outbox_delivered(row.seq)
            return
        attempts = row.attempts + 1
        limit = self.keys.get_int("TransactionMessageAttempts")
        if attempts >= limit:
            log.error("%s refused %d times (%s): dropped", row.action, attempts, exc,
                      extra=_fields(row, exc.unique_id))
            await self.store.outbox_delivered(row.seq)
            if row.action == "StartTransaction" and row.session_id is not None:
                await self.store.outbox_drop_session(row.session_id)
        else:
            retry_s = self.keys.get_int("TransactionMessageRetryInterval") * attempts
            log.warning("%s refused (%s); attempt %d of %d again in %d s",
                        row.action, exc, attempts, limit, retry_s, extra=_fields(row, exc.unique_id))
            await self.store.outbox_retry_later(row.seq, attempts, time.time() + retry_s)

    # ----------------------------------------------------------------- an idTag the CSMS calls invalid

    def _on_start_confirmed(self, row: OutboxRow, transaction_id: int, id_tag_info: dict[str, Any]) -> None:
        connector_id = int(row.payload["connectorId"])
        if row.session_id is None:
            return
        self.charger.transaction_confirmed(connector_id, row.session_id, transaction_id)
        fields = log_fields(connector=connector_id, session=row.session_id, transaction=transaction_id)
        log.info("connector %d: session %s is transaction %d at the CSMS", connector_id, row.session_id,
                 transaction_id, extra=fields)
        status = id_tag_info.get("status", "Accepted")
        if status == "Accepted":
            return
        log.warning("the CSMS reports idTag %s of transaction %d as %s", row.payload.get("idTag"), transaction_id,
                    status, extra=fields)
        c = self.charger.connectors.get(connector_id)
        if c is None or c.session is None or c.session.session_id != row.session_id:
            return
        meter_start_Wh = int(row.payload.get("meterStart", 0))
        delivered_Wh = 0 if c.last_reading is None else c.last_reading.energy_Wh_import - meter_start_Wh
        action = invalid_id_action(self.keys.get_bool("StopTransactionOnInvalidId"),
                                   self.keys.get_int("MaxEnergyOnInvalidId"), delivered_Wh)
        if action is InvalidIdAction.Continue:
            # Energy may flow up to MaxEnergyOnInvalidId: checked again at every meter reading.
            self._invalid_id_sessions[row.session_id] = (connector_id, meter_start_Wh)
        else:
            self.charger.deauthorize(connector_id, stop=action is InvalidIdAction.Stop)

    def check_invalid_id_energy(self) -> None:
        for session_id, (connector_id, meter_start_Wh) in list(self._invalid_id_sessions.items()):
            c = self.charger.connectors[connector_id]
            if c.session is None or c.session.session_id != session_id:
                del self._invalid_id_sessions[session_id]
                continue
            delivered_Wh = 0 if c.last_reading is None else c.last_reading.energy_Wh_import - meter_start_Wh
            if invalid_id_action(False, self.keys.get_int("MaxEnergyOnInvalidId"), delivered_Wh) is not \
                    InvalidIdAction.Continue:
                log.warning("connector %d: MaxEnergyOnInvalidId reached (%d Wh): energy delivery suspended",
                            connector_id, delivered_Wh, extra=log_fields(connector=connector_id, session=session_id))
                del self._invalid_id_sessions[session_id]
                self.charger.deauthorize(connector_id, stop=False)

    # ----------------------------------------------------------------- messages built for the store

    def start_messages(self, connector_id: int, id_tag: str, meter_start_Wh: int, at: datetime,
                       reservation_id: int | None = None) -> Callable[[str], Sequence[OutboxMessage]]:
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start_Wh,
            "timestamp": wire_time(self.connection.clock.on_csms_clock(at)),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        return lambda session_id: [OutboxMessage("StartTransaction", payload, session_id)]

    def stop_messages(self, record: SessionRecord) -> Sequence[OutboxMessage]:
        assert record.stopped_at is not None and record.meter_stop_Wh is not None
        clock = self.connection.clock
        payload: dict[str, Any] = {
            "transactionId": 0,  # patched at send time with the CSMS's id
            # The tag that asked for the stop (a card of the same group may stop another's session); the starting
            # tag when no card did (EV unplugged, remote stop, limits): OCPP makes idTag optional, CSMSs expect it.
            "idTag": record.stop_id_tag or record.id_tag,
            "meterStop": record.meter_stop_Wh,
            "timestamp": wire_time(clock.on_csms_clock(record.stopped_at)),
            "reason": wire_reason(record.stop_reason),
        }
        data = self._stop_transaction_data(record)
        if data:
            payload["transactionData"] = data
        return [OutboxMessage("StopTransaction", payload, record.session_id)]

    def _stop_transaction_data(self, record: SessionRecord) -> list[dict[str, Any]]:
        """transactionData: StopTxnSampledData at Transaction.Begin, every sample and clock-aligned reading of
        StopTxnSampledData / StopTxnAlignedData taken during the transaction, and Transaction.End.

        Readings taken during the transaction live in memory: after a crash only Begin and End are known."""
        assert record.stopped_at is not None and record.meter_stop_Wh is not None
        collected = self.readings.pop(record.session_id, [])
        measurands = self.keys.get_list("StopTxnSampledData")
        clock = self.connection.clock
        data: list[dict[str, Any]] = []
        if "Energy.Active.Import.Register" in measurands:
            data.append(energy_value(clock.on_csms_clock(record.started_at), record.meter_start_Wh,
                                     "Transaction.Begin"))
        data.extend(collected)
        if "Energy.Active.Import.Register" in measurands:
            data.append(energy_value(clock.on_csms_clock(record.stopped_at), record.meter_stop_Wh, "Transaction.End"))
        if record.signed_meter_data is not None:
            # Always, whatever StopTxnSampledData says: the signed dataset is what the bill must be provable from
            # (German calibration law), passed on exactly as the meter signed it.
            data.append({"timestamp": wire_time(clock.on_csms_clock(record.stopped_at)), "sampledValue": [{
                "value": record.signed_meter_data, "context": "Transaction.End", "format": "SignedData",
                "measurand": "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"}]})
        return data

    async def connector_unplugged(self, session_id: str, at: datetime) -> None:
        """California Pricing, CustomIdleFeeAfterStop: the EV left, so the CSMS stops billing idle time. Queued like
        the transaction's other messages: it ends a billed period, so it must not be lost."""
        payload = connector_unplugged_payload(0, self.connection.clock.on_csms_clock(at))
        await self.enqueue([OutboxMessage("DataTransfer", payload, session_id)])


def _fields(row: OutboxRow, unique_id: str | None = None) -> dict[str, object]:
    """The log fields of an outbox message: its connector, session and transaction where known, its CALL's id."""
    connector = row.payload.get("connectorId")
    return log_fields(connector=connector if isinstance(connector, int) else None, session=row.session_id,
                      transaction=row.csms_transaction_id, ocpp_message_id=unique_id)
