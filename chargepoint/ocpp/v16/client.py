"""OCPP 1.6J client: the protocol adapter between the CSMS and the charger's runtime.

Outbound, transaction messages (StartTransaction, StopTransaction, MeterValues) are written to the store's
outbox in the same SQLite transaction as the session change that caused them, and leave it only when the
CSMS answered; one sender delivers them in order, one CALL at a time. Other messages are sent only while
the link is up and registered. Inbound, each CSMS call becomes an event for the core or a query answered
from the runtime's state; no OCPP type reaches the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from chargepoint import __version__
from chargepoint.cancellation import raise_if_cancelling
from chargepoint.core.commands import ConnectorStatus
from chargepoint.core.ocpp_auth import Authorizer, AuthSettings, InvalidIdAction, LocalDecision, invalid_id_action
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.file_transfer import CommandInstaller, FirmwareInstaller, SimulatedInstaller
from chargepoint.ocpp.transport import (
    SUBPROTOCOL,
    TransportSettings,
    backoff_delays_s,
    headers,
    tls_context,
)
from chargepoint.ocpp.v16.firmware import FirmwareManager, NoInstaller
from chargepoint.ocpp.v16.link import CallFailed, Link
from chargepoint.store import OutboxMessage, OutboxRow, SessionRecord, Store

if TYPE_CHECKING:
    from chargepoint.config.schema import Config
    from chargepoint.runtime.app import ChargerApp

log = logging.getLogger(__name__)

KV_KEY_PREFIX = "ocpp.key."
BOOT_RETRY_DEFAULT_S = 60
CALL_TIMEOUT_S = 30.0
STATUS_WAIT_FOR_OUTBOX_S = 3.0
CLOSE_TIMEOUT_S = 2.0
CLOCK_WARN_OFFSET_S = 60.0
CLOCK_PLAUSIBLE_FROM_YEAR = 2024
TRANSACTION_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})


def _energy_value(at: datetime, value_Wh: int, context: str) -> dict[str, Any]:
    return {"timestamp": wire_time(at), "sampledValue": [{
        "value": str(value_Wh), "context": context, "measurand": "Energy.Active.Import.Register", "unit": "Wh",
        "location": "Outlet"}]}


def wire_time(at: datetime) -> str:
    """OCPP timestamps: UTC, millisecond precision, 'Z'."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _firmware_installer(config: Config) -> FirmwareInstaller:
    """sim: the simulated installer; real hardware: ``[ocpp] firmware_install_command``, or none."""
    if config.hardware.backend == "sim":
        return SimulatedInstaller()
    command = None if config.ocpp is None else config.ocpp.firmware_install_command
    return NoInstaller() if command is None else CommandInstaller(command)


_V16_REASONS = frozenset({"EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other", "PowerLoss", "Reboot",
                          "Remote", "SoftReset", "UnlockCommand", "DeAuthorized"})


def wire_reason(reason: str | None) -> str:
    """OCPP 1.6 has no reason for a reached limit (CostLimitReached ...): the record keeps it, the wire says Other."""
    return reason if reason in _V16_REASONS else "Other"


class OcppClient:
    """Owns the connection, registration, the outbox sender and the periodic meter values."""

    def __init__(self, config: Config, store: Store, app: ChargerApp) -> None:
        assert config.ocpp is not None
        self.config = config
        self.settings = config.ocpp
        self.store = store
        self.app = app
        connector_count = config.charger.connectors
        self.keys = OcppConfiguration(
            connector_count,
            initial={
                "ConnectionTimeOut": str(max(1, math.ceil(config.charger.connection_timeout_s))),
                "HeartbeatInterval": str(self.settings.heartbeat_interval_s),
                "MeterValueSampleInterval": str(self.settings.meter_value_sample_interval_s),
                "MeterValuesSampledData": self.settings.meter_values_sampled_data,
                "CustomDisplayCostAndPrice": "true" if self.settings.cost_and_price else "false",
                "NumberOfDecimalsForCostValues": str(config.pricing.decimals),
                "Language": config.pricing.language,
            },
        )
        self.keys.guards["SecurityProfile"] = self._guard_security_profile
        self.authorizer = Authorizer(self.auth_settings())
        from chargepoint.ocpp.v16.smart_charging import SmartCharging

        self.smart = SmartCharging(self)
        self._authorization_key = (
            None if self.settings.authorization_key is None else self.settings.authorization_key.get_secret_value()
        )
        self._security_profile: int = self.settings.security_profile
        self._link: Link | None = None
        self._connection: ClientConnection | None = None
        self.registered = asyncio.Event()  # BootNotification accepted on the current connection
        self._outbox_wakeup = asyncio.Event()
        self._outbox_drained = asyncio.Event()
        self._clock_offset_s = 0.0
        self.clock_synced = False
        self._status_sent: dict[int, tuple[str, str]] = {}
        self._status_tasks: dict[int, asyncio.Task[None]] = {}
        self._reconnect = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._credentials_changed = False
        # Readings for StopTransaction.transactionData, per session (read from the store's thread at stop).
        self._transaction_data: dict[str, list[dict[str, Any]]] = {}
        # Transactions whose idTag the CSMS called invalid, allowed MaxEnergyOnInvalidId: (connector, meterStart).
        self._invalid_id_sessions: dict[str, tuple[int, int]] = {}
        self.diagnostics_status = "Idle"
        self.firmware_status = "Idle"
        self.firmware = FirmwareManager(self, config.storage.dir / "firmware", _firmware_installer(config))
        # Called with (action, payload) for each message that the CSMS confirmed, for tests and status.
        self.on_delivered: Callable[[str, dict[str, Any]], None] | None = None

    # ----------------------------------------------------------------- state

    @property
    def connected(self) -> bool:
        """True while the link is up and the CSMS accepted our BootNotification."""
        return self._link is not None and self.registered.is_set()

    @property
    def clock_offset_s(self) -> float:
        return self._clock_offset_s

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._clock_offset_s)

    def _sync_clock(self, current_time: str) -> None:
        try:
            csms_now = parse_time(current_time)
        except ValueError:
            log.warning("CSMS sent an unreadable currentTime %r", current_time)
            return
        self._clock_offset_s = (csms_now - datetime.now(UTC)).total_seconds()
        if not self.clock_synced and abs(self._clock_offset_s) > CLOCK_WARN_OFFSET_S:
            # Messages stamped before now used the unsynchronised clock; OCPP 1.6 has no field to flag them,
            # so at least the log says so.
            log.warning("the system clock was %.0f s off the CSMS's; timestamps of messages recorded before this "
                        "synchronisation may be off by as much", self._clock_offset_s)
        elif not self.clock_synced or abs(self._clock_offset_s) > 1:
            log.info("clock synchronised with the CSMS (offset %.3f s)", self._clock_offset_s)
        self.clock_synced = True

    def transport_settings(self) -> TransportSettings:
        return TransportSettings(
            csms_url=self.settings.csms_url,
            charge_point_id=self.settings.charge_point_id,
            security_profile=self._security_profile,
            authorization_key=self._authorization_key,
            ca_file=self.settings.ca_file,
            client_cert_file=self.settings.client_cert_file,
            client_key_file=self.settings.client_key_file,
            ping_interval_s=float(self.keys.get_int("WebSocketPingInterval")),
            # A pong later than the ping interval (at most 10 s) means the link is dead.
            ping_timeout_s=float(min(10, self.keys.get_int("WebSocketPingInterval") or 10)),
        )

    # ----------------------------------------------------------------- lifecycle

    async def load(self) -> None:
        """Restore the OCPP-managed keys (they win over the config file's initial values)."""
        if datetime.now(UTC).year < CLOCK_PLAUSIBLE_FROM_YEAR:
            log.warning("the system clock reads %s: it is probably not set (no RTC, no NTP yet); timestamps "
                        "will follow the CSMS's clock once it answers", datetime.now(UTC).isoformat())
        persisted: dict[str, str] = {}
        for name, _spec in list(self._key_names()):
            value = await self.store.get_kv(KV_KEY_PREFIX + name)
            if value is not None:
                persisted[name] = value
        self.keys.load(persisted)
        await self.smart.load()
        version, local_list = await self.store.local_list_all()
        self.authorizer = Authorizer(self.auth_settings(), version, local_list, await self.store.auth_cache_all())
        if "AuthorizationKey" in persisted:
            self._authorization_key = persisted["AuthorizationKey"]
        if "SecurityProfile" in persisted:
            self._security_profile = int(persisted["SecurityProfile"])
        else:
            self.keys.set_internal("SecurityProfile", str(self._security_profile))
        self._apply_policy_keys()

    def _key_names(self) -> list[tuple[str, None]]:
        known, _ = self.keys.report(None)
        return [(k.key, None) for k in known] + [("AuthorizationKey", None)]

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._connection_loop())
                tg.create_task(self._outbox_sender())
                tg.create_task(self._sampled_meter_values())
                tg.create_task(self._aligned_meter_values())
                tg.create_task(self.smart.run())
        finally:
            await self.firmware.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection_loop(self) -> None:
        delays = backoff_delays_s()
        while True:
            raise_if_cancelling()
            # Cleared before connecting, not after the link drops: a reconnect requested while connected (new
            # AuthorizationKey or SecurityProfile) must skip the back-off wait below, not be forgotten.
            self._reconnect.clear()
            settings = self.transport_settings()
            try:
                async with websockets.connect(
                    settings.url,
                    subprotocols=[websockets.Subprotocol(SUBPROTOCOL)],
                    additional_headers=headers(settings),
                    ssl=tls_context(settings),
                    open_timeout=settings.open_timeout_s,
                    ping_interval=settings.ping_interval_s or None,
                    ping_timeout=settings.ping_timeout_s,
                    # After a ping timeout websockets waits close_timeout for a closing handshake that a dead
                    # link never completes: keep it short so a half-open link is replaced promptly.
                    close_timeout=CLOSE_TIMEOUT_S,
                    max_size=settings.max_frame_bytes,
                    proxy=None,
                    compression=None,
                ) as connection:
                    delays = backoff_delays_s()
                    await self._serve(connection)
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError, CallFailed) as exc:
                if isinstance(exc, InvalidStatus) and exc.response.status_code == 401:
                    log.error("the CSMS refused our credentials (HTTP 401)")
                else:
                    log.warning("CSMS link down: %s", exc or type(exc).__name__)
            finally:
                self._link = None
                self._connection = None
                self.registered.clear()
            delay_s = next(delays)
            if self._reconnect.is_set():
                log.info("reconnecting to the CSMS now")
                continue
            log.info("reconnecting to the CSMS in %.1f s", delay_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._reconnect.wait()

    async def _serve(self, connection: ClientConnection) -> None:
        if connection.subprotocol != SUBPROTOCOL:
            raise ConnectionClosed(None, None)
        from chargepoint.ocpp.v16.handlers import ChargePointHandlers

        link = ChargePointHandlers(self.settings.charge_point_id, connection, CALL_TIMEOUT_S, self)
        self._connection = connection
        self._link = link
        log.info("connected to the CSMS at %s", self.transport_settings().url)
        reader = asyncio.create_task(link.start())
        session = asyncio.create_task(self._registered_session(link))
        try:
            await asyncio.wait({reader, session}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, session):
                task.cancel()
            results = await asyncio.gather(reader, session, return_exceptions=True)
            await connection.close()
        for result in results:
            if isinstance(result, (CallFailed, TimeoutError, ConnectionClosed, OSError)):
                raise result
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result

    async def _registered_session(self, link: Link) -> None:
        """BootNotification until Accepted (answering CSMS calls meanwhile), then heartbeats."""
        await self._boot(link)
        self.registered.set()
        self._outbox_wakeup.set()
        await self._send_all_statuses()
        while True:
            raise_if_cancelling()
            interval_s = max(1, self.keys.get_int("HeartbeatInterval") or 300)
            await asyncio.sleep(interval_s)
            reply = await link.call_raw("Heartbeat", {})
            self._sync_clock(str(reply.get("currentTime", "")))

    async def _boot(self, link: Link) -> None:
        identity = self.config.identity
        payload = {
            "chargePointVendor": identity.vendor,
            "chargePointModel": identity.model,
            "chargePointSerialNumber": identity.serial_number,
            "firmwareVersion": identity.firmware_version or __version__,
        }
        while True:
            reply = await link.call_raw("BootNotification", payload)
            self._sync_clock(str(reply.get("currentTime", "")))
            interval_s = int(reply.get("interval", 0))
            status = reply.get("status")
            if status == "Accepted":
                if interval_s > 0:
                    self.keys.set_internal("HeartbeatInterval", str(interval_s))
                log.info("registered with the CSMS (heartbeat every %s s)", self.keys["HeartbeatInterval"])
                return
            retry_s = interval_s if interval_s > 0 else BOOT_RETRY_DEFAULT_S
            log.warning("BootNotification %s; retrying in %d s", status, retry_s)
            await asyncio.sleep(retry_s)

    def request_reconnect(self) -> None:
        """Drop the current connection and reconnect at once (new credentials or security profile)."""
        if self._connection is not None:
            self._spawn(self._connection.close())
        self._reconnect.set()

    # ----------------------------------------------------------------- sending

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Send a non-transaction message now if registered; None if offline or the CSMS did not answer."""
        link = self._link
        if link is None or not self.registered.is_set():
            return None
        try:
            reply = await link.call_raw(action, payload)
            raise_if_cancelling()
            return reply
        except CallFailed as exc:
            log.warning("%s refused by the CSMS: %s", action, exc)
        except (TimeoutError, ConnectionClosed) as exc:
            log.warning("%s not answered: %s", action, exc or type(exc).__name__)
        return None

    def outbox_changed(self) -> None:
        self._outbox_wakeup.set()

    def outbox_pending(self) -> None:
        """A session begins or ends: a transaction message is about to be queued (called before the store
        write is even scheduled), and the smart-charging limits may change."""
        self._outbox_drained.clear()
        self.smart.poke()

    async def _outbox_sender(self) -> None:
        while True:
            raise_if_cancelling()
            await self.registered.wait()
            row = await self.store.outbox_head()
            if row is None:
                self._outbox_drained.set()
                self._outbox_wakeup.clear()
                if await self.store.outbox_len() == 0:
                    await self._outbox_wakeup.wait()
                continue
            wait_s = row.not_before - time.time()
            if wait_s > 0:
                self._outbox_wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._outbox_wakeup.wait()
                continue
            await self._deliver(row)

    async def _deliver(self, row: OutboxRow) -> None:
        payload = dict(row.payload)
        if row.action in ("StopTransaction", "MeterValues") and row.session_id is not None:
            if row.csms_transaction_id is None:
                # Its StartTransaction was refused for good: the CSMS knows no such transaction.
                log.error("dropping %s of session %s: the CSMS never confirmed its start",
                          row.action, row.session_id)
                await self.store.outbox_delivered(row.seq)
                return
            payload["transactionId"] = row.csms_transaction_id
        elif row.action == "DataTransfer" and row.session_id is not None:
            # ConnectorUnplugged names the transaction inside its data string.
            if row.csms_transaction_id is None:
                log.error("dropping DataTransfer of session %s: the CSMS never confirmed its start", row.session_id)
                await self.store.outbox_delivered(row.seq)
                return
            data = json.loads(payload.get("data") or "{}")
            data["transactionId"] = row.csms_transaction_id
            payload["data"] = json.dumps(data)
        link = self._link
        if link is None:
            return
        try:
            reply = await link.call_raw(row.action, payload)
            raise_if_cancelling()
        except CallFailed as exc:
            attempts = row.attempts + 1
            limit = self.keys.get_int("TransactionMessageAttempts")
            if attempts >= limit:
                log.error("%s refused %d times (%s): dropped", row.action, attempts, exc)
                await self.store.outbox_delivered(row.seq)
                if row.action == "StartTransaction" and row.session_id is not None:
                    await self.store.outbox_drop_session(row.session_id)
            else:
                retry_s = self.keys.get_int("TransactionMessageRetryInterval") * attempts
                log.warning("%s refused (%s); attempt %d of %d again in %d s",
                            row.action, exc, attempts, limit, retry_s)
                await self.store.outbox_retry_later(row.seq, attempts, time.time() + retry_s)
            return
        except (TimeoutError, ConnectionClosed) as exc:
            # Unknown whether the CSMS got it: keep it, and send it again once the link is trustworthy.
            log.warning("%s not answered (%s); will resend", row.action, exc or type(exc).__name__)
            if self._connection is not None:
                await self._connection.close()
            await asyncio.sleep(0.1)
            return
        if row.action == "StartTransaction" and row.session_id is not None:
            transaction_id = int(reply["transactionId"])
            await self.store.outbox_delivered(row.seq, (row.session_id, transaction_id))
            await self.remember_id_tag_info(str(row.payload.get("idTag")), reply.get("idTagInfo", {}))
            self._on_start_confirmed(row, transaction_id, reply.get("idTagInfo", {}))
            await self.smart.transaction_started(int(row.payload["connectorId"]), transaction_id)
        else:
            await self.store.outbox_delivered(row.seq)
            if row.action == "StopTransaction" and "idTagInfo" in reply:
                await self.remember_id_tag_info(str(row.payload.get("idTag")), reply["idTagInfo"])
        if self.on_delivered is not None:
            self.on_delivered(row.action, payload)

    def _on_start_confirmed(self, row: OutboxRow, transaction_id: int, id_tag_info: dict[str, Any]) -> None:
        connector_id = int(row.payload["connectorId"])
        c = self.app.connectors.get(connector_id)
        if c is not None and c.session is not None and c.session.session_id == row.session_id:
            c.session.csms_transaction_id = transaction_id
        status = id_tag_info.get("status", "Accepted")
        if status != "Accepted":
            log.warning("the CSMS reports idTag %s of transaction %d as %s", row.payload.get("idTag"), transaction_id,
                        status)
            if c is not None and c.session is not None and c.session.session_id == row.session_id:
                delivered_Wh = 0 if c.last_reading is None else c.last_reading.energy_Wh_import - int(
                    row.payload.get("meterStart", 0))
                action = invalid_id_action(self.keys.get_bool("StopTransactionOnInvalidId"),
                                           self.keys.get_int("MaxEnergyOnInvalidId"), delivered_Wh)
                if action is InvalidIdAction.Continue and row.session_id is not None:
                    # Energy may flow up to MaxEnergyOnInvalidId: checked again at every meter sample.
                    self._invalid_id_sessions[row.session_id] = (connector_id, int(row.payload.get("meterStart", 0)))
                else:
                    self.app.deauthorize(connector_id, stop=action is InvalidIdAction.Stop)

    def _check_invalid_id_energy(self) -> None:
        for session_id, (connector_id, meter_start_Wh) in list(self._invalid_id_sessions.items()):
            c = self.app.connectors[connector_id]
            if c.session is None or c.session.session_id != session_id:
                del self._invalid_id_sessions[session_id]
                continue
            delivered_Wh = 0 if c.last_reading is None else c.last_reading.energy_Wh_import - meter_start_Wh
            if invalid_id_action(False, self.keys.get_int("MaxEnergyOnInvalidId"), delivered_Wh) is not \
                    InvalidIdAction.Continue:
                log.warning("connector %d: MaxEnergyOnInvalidId reached (%d Wh): energy delivery suspended",
                            connector_id, delivered_Wh)
                del self._invalid_id_sessions[session_id]
                self.app.deauthorize(connector_id, stop=False)

    # ----------------------------------------------------------------- messages built for the store

    def start_messages(self, connector_id: int, id_tag: str, meter_start_Wh: int, at: datetime,
                       reservation_id: int | None = None) -> Callable[[str], Sequence[OutboxMessage]]:
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start_Wh,
            "timestamp": wire_time(at + timedelta(seconds=self._clock_offset_s)),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        return lambda session_id: [OutboxMessage("StartTransaction", payload, session_id)]

    async def connector_unplugged(self, session_id: str, at: datetime) -> None:
        """California Pricing, CustomIdleFeeAfterStop: the EV left, so the CSMS stops billing idle time. Queued in
        the outbox like the transaction's other messages: it ends a billed period, so it must not be lost."""
        from chargepoint.ocpp.v16.cost_and_price import connector_unplugged_payload

        payload = connector_unplugged_payload(0, at + timedelta(seconds=self._clock_offset_s))
        await self.store.enqueue([OutboxMessage("DataTransfer", payload, session_id)])
        self.outbox_changed()

    def stop_messages(self, record: SessionRecord) -> Sequence[OutboxMessage]:
        assert record.stopped_at is not None and record.meter_stop_Wh is not None
        payload: dict[str, Any] = {
            "transactionId": 0,  # patched at send time with the CSMS's id
            "idTag": record.id_tag,
            "meterStop": record.meter_stop_Wh,
            "timestamp": wire_time(record.stopped_at + timedelta(seconds=self._clock_offset_s)),
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
        collected = self._transaction_data.pop(record.session_id, [])
        measurands = self.keys.get_list("StopTxnSampledData")
        offset = timedelta(seconds=self._clock_offset_s)
        data: list[dict[str, Any]] = []
        if "Energy.Active.Import.Register" in measurands:
            data.append(_energy_value(record.started_at + offset, record.meter_start_Wh, "Transaction.Begin"))
        data.extend(collected)
        if "Energy.Active.Import.Register" in measurands:
            data.append(_energy_value(record.stopped_at + offset, record.meter_stop_Wh, "Transaction.End"))
        return data

    def _collect_transaction_data(self, session_id: str, connector_id: int, key: str, context: str) -> None:
        measurands = self.keys.get_list(key)
        if measurands:
            values = self.sampled_values(connector_id, measurands, context)
            if values:
                self._transaction_data.setdefault(session_id, []).append(
                    {"timestamp": wire_time(self.now()), "sampledValue": values})

    def sampled_values(self, connector_id: int, measurands: Sequence[str], context: str) -> list[dict[str, Any]]:
        c = self.app.connectors[connector_id]
        reading = c.last_reading
        values: list[dict[str, Any]] = []
        for measurand in measurands:
            if measurand == "Current.Offered":
                values.append({"value": f"{c.core.offered_current_A:.1f}", "context": context, "measurand": measurand,
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

    def _meter_values_payload(self, connector_id: int, measurands: Sequence[str], context: str) -> dict[str, Any]:
        return {
            "connectorId": connector_id,
            "meterValue": [{"timestamp": wire_time(self.now()),
                            "sampledValue": self.sampled_values(connector_id, measurands, context)}],
        }

    async def _sampled_meter_values(self) -> None:
        """MeterValues every MeterValueSampleInterval during each transaction, queued durably."""
        next_due: dict[int, float] = {}
        while True:
            raise_if_cancelling()
            await asyncio.sleep(0.5)
            self._check_invalid_id_energy()
            interval_s = self.keys.get_int("MeterValueSampleInterval")
            now_s = time.monotonic()
            for connector_id, c in self.app.connectors.items():
                session = c.session
                if session is None or session.session_id is None or interval_s <= 0:
                    next_due.pop(connector_id, None)
                    continue
                due = next_due.setdefault(connector_id, now_s + interval_s)
                if now_s < due:
                    continue
                next_due[connector_id] = now_s + interval_s
                payload = self._meter_values_payload(
                    connector_id, self.keys.get_list("MeterValuesSampledData"), "Sample.Periodic"
                )
                payload["transactionId"] = 0
                self._collect_transaction_data(session.session_id, connector_id, "StopTxnSampledData",
                                               "Sample.Periodic")
                await self.store.enqueue([OutboxMessage("MeterValues", payload, session.session_id)])
                self.outbox_changed()

    async def _aligned_meter_values(self) -> None:
        """Clock-aligned MeterValues at every multiple of ClockAlignedDataInterval since midnight UTC."""
        while True:
            raise_if_cancelling()
            interval_s = self.keys.get_int("ClockAlignedDataInterval")
            if interval_s <= 0:
                await asyncio.sleep(1.0)
                continue
            now = self.now()
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            elapsed_s = (now - midnight).total_seconds()
            wait_s = interval_s - (elapsed_s % interval_s)
            await asyncio.sleep(min(wait_s, 1.0) if wait_s > 1.0 else wait_s)
            if wait_s > 1.0:
                continue
            await self.send_aligned_meter_values()
            await asyncio.sleep(0.01)

    async def send_aligned_meter_values(self) -> None:
        measurands = self.keys.get_list("MeterValuesAlignedData")
        for connector_id, c in self.app.connectors.items():
            payload = self._meter_values_payload(connector_id, measurands, "Sample.Clock")
            session = c.session
            if session is not None and session.session_id is not None:
                payload["transactionId"] = 0
                self._collect_transaction_data(session.session_id, connector_id, "StopTxnAlignedData", "Sample.Clock")
                await self.store.enqueue([OutboxMessage("MeterValues", payload, session.session_id)])
                self.outbox_changed()
            else:
                self._spawn(self.call("MeterValues", payload))

    # ----------------------------------------------------------------- status

    def status_changed(self, connector_id: int, status: ConnectorStatus, error_code: str) -> None:
        """A connector changed status. Sent after MinimumStatusDuration if it still holds; never queued."""
        old = self._status_tasks.pop(connector_id, None)
        if old is not None:
            old.cancel()
        task = asyncio.ensure_future(self._send_status_later(connector_id, status, error_code))
        self._status_tasks[connector_id] = task
        if connector_id != 0:
            self._update_connector_zero()

    def _update_connector_zero(self) -> None:
        statuses = [c.core.status for c in self.app.connectors.values()]
        if all(s is ConnectorStatus.Unavailable for s in statuses):
            zero = ConnectorStatus.Unavailable
        elif all(s is ConnectorStatus.Faulted for s in statuses):
            zero = ConnectorStatus.Faulted
        else:
            zero = ConnectorStatus.Available
        if self._status_sent.get(0, ("", ""))[0] != zero.value:
            old = self._status_tasks.pop(0, None)
            if old is not None:
                old.cancel()
            self._status_tasks[0] = asyncio.ensure_future(self._send_status_later(0, zero, "NoError"))

    async def _send_status_later(self, connector_id: int, status: ConnectorStatus, error_code: str) -> None:
        hold_s = self.keys.get_int("MinimumStatusDuration")
        if hold_s > 0 and status is not ConnectorStatus.Faulted:
            await asyncio.sleep(hold_s)
        # A status that follows a transaction message should reach the CSMS after it (StopTransaction, then
        # Available), but a long offline backlog must not hold statuses back for long.
        if self.registered.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_WAIT_FOR_OUTBOX_S):
                    await self._outbox_drained.wait()
        await self.send_status(connector_id, status, error_code)

    async def send_status(self, connector_id: int, status: ConnectorStatus, error_code: str) -> None:
        reply = await self.call(
            "StatusNotification",
            {"connectorId": connector_id, "status": status.value, "errorCode": error_code,
             "timestamp": wire_time(self.now())},
        )
        if reply is not None:
            self._status_sent[connector_id] = (status.value, error_code)

    async def _send_all_statuses(self) -> None:
        self._update_connector_zero()
        zero = self._status_tasks.pop(0, None)
        if zero is not None:
            zero.cancel()
        statuses = [c.core.status for c in self.app.connectors.values()]
        zero_status = (ConnectorStatus.Unavailable if all(s is ConnectorStatus.Unavailable for s in statuses)
                       else ConnectorStatus.Available)
        await self.send_status(0, zero_status, "NoError")
        for connector_id, c in self.app.connectors.items():
            await self.send_status(connector_id, c.core.status, c.core.error_code)

    # ----------------------------------------------------------------- authorization

    def auth_settings(self) -> AuthSettings:
        k = self.keys
        return AuthSettings(
            local_authorize_offline=k.get_bool("LocalAuthorizeOffline"),
            local_pre_authorize=k.get_bool("LocalPreAuthorize"),
            authorization_cache_enabled=k.get_bool("AuthorizationCacheEnabled"),
            local_auth_list_enabled=k.get_bool("LocalAuthListEnabled"),
            allow_offline_tx_for_unknown_id=k.get_bool("AllowOfflineTxForUnknownId"),
            local_auth_list_max_length=k.get_int("LocalAuthListMaxLength"),
            send_local_list_max_length=k.get_int("SendLocalListMaxLength"),
        )

    async def authorize(self, id_tag: str) -> tuple[bool, str | None]:
        """(accepted, parentIdTag) for a presented card: local list and cache per the OCPP rules, then the
        CSMS; when the CSMS cannot be asked, the offline rules."""
        outcome = self.authorizer.decide(id_tag, datetime.now(UTC), online=self.connected)
        if outcome.decision is LocalDecision.AskCsms:
            reply = await self.call("Authorize", {"idTag": id_tag})
            if reply is not None:
                info = reply.get("idTagInfo", {})
                await self.remember_id_tag_info(id_tag, info)
                return info.get("status") == "Accepted", info.get("parentIdTag")
            outcome = self.authorizer.decide(id_tag, datetime.now(UTC), online=False)
        log.info("idTag %s decided locally (%s): %s", id_tag, outcome.source, outcome.decision)
        return outcome.decision is LocalDecision.Accepted, outcome.parent_id_tag

    async def remember_id_tag_info(self, id_tag: str, info: dict[str, Any]) -> None:
        """Cache an IdTagInfo the CSMS sent (Authorize, StartTransaction and StopTransaction answers)."""
        status = info.get("status")
        if not isinstance(status, str):
            return
        expiry = info.get("expiryDate")
        try:
            expiry_date = parse_time(expiry) if isinstance(expiry, str) else None
        except ValueError:
            expiry_date = None
        changes = self.authorizer.csms_answered(id_tag, status, expiry_date, info.get("parentIdTag"), datetime.now(UTC))
        for change in changes:
            if change.put is not None:
                await self.store.auth_cache_put(change.put)
            if change.delete is not None:
                await self.store.auth_cache_delete([change.delete])

    async def clear_cache(self) -> bool:
        accepted = self.authorizer.clear_cache()
        await self.store.auth_cache_clear()
        return accepted

    async def send_local_list(self, version: int, update_type: str, entries: list[Any] | None) -> str:
        result = self.authorizer.send_local_list(version, update_type, entries)
        if result.status == "Accepted":
            await self.store.local_list_update(result.version, result.entries, result.full)
        return str(result.status)

    # ----------------------------------------------------------------- configuration

    def _guard_security_profile(self, old: str, new: str) -> str | None:
        if int(new) < int(old):
            return "the security profile may only be raised"
        if int(new) in (1, 2) and not self._authorization_key:
            return "profiles 1 and 2 need an AuthorizationKey"
        if int(new) >= 2 and not self.settings.csms_url.startswith("wss://"):
            return "profiles 2 and 3 need a wss:// CSMS URL"
        if int(new) == 3 and (self.settings.client_cert_file is None or self.settings.client_key_file is None):
            return "profile 3 needs a client certificate"
        return None

    async def persist_key(self, name: str, value: str) -> None:
        await self.store.set_kv(KV_KEY_PREFIX + name, value)
        if name == "AuthorizationKey":
            self._authorization_key = value
            self._credentials_changed = True
        elif name == "SecurityProfile":
            self._credentials_changed = self._security_profile != int(value)
            self._security_profile = int(value)
        elif name == "WebSocketPingInterval":
            self._credentials_changed = True  # keep-alive settings apply to a new connection
        self._apply_policy_keys()
        self.authorizer.settings = self.auth_settings()

    def _apply_policy_keys(self) -> None:
        self.app.update_connector_settings(
            connection_timeout_s=float(self.keys.get_int("ConnectionTimeOut")),
            stop_on_ev_disconnect=self.keys.get_bool("StopTransactionOnEVSideDisconnect"),
            unlock_on_ev_disconnect=self.keys.get_bool("UnlockConnectorOnEVSideDisconnect"),
        )

    def reconnect_if_credentials_changed(self) -> None:
        """New credentials or a new security profile take effect on a new connection (TC_073, TC_083)."""
        if self._credentials_changed:
            self._credentials_changed = False
            log.info("reconnecting to use the new credentials/security profile")
            self.request_reconnect()

    async def install_remote_start_profile(self, connector_id: int, profile: dict[str, Any]) -> bool:
        return self.smart.remote_start_profile(connector_id, profile)

    async def triggered(self, requested_message: str, connector_id: int | None) -> None:
        """Send the message a TriggerMessage asked for."""
        targets = [connector_id] if connector_id else list(self.app.connectors)
        if requested_message == "BootNotification":
            link = self._link
            if link is not None:
                await self._boot(link)
        elif requested_message == "Heartbeat":
            reply = await self.call("Heartbeat", {})
            if reply is not None:
                self._sync_clock(str(reply.get("currentTime", "")))
        elif requested_message == "StatusNotification":
            if connector_id == 0 or connector_id is None:
                await self._send_all_statuses()
            else:
                c = self.app.connectors[connector_id]
                await self.send_status(connector_id, c.core.status, c.core.error_code)
        elif requested_message == "MeterValues":
            for target in targets:
                payload = self._meter_values_payload(target, self.keys.get_list("MeterValuesSampledData"), "Trigger")
                c = self.app.connectors[target]
                if c.session is not None and c.session.csms_transaction_id is not None:
                    payload["transactionId"] = c.session.csms_transaction_id
                await self.call("MeterValues", payload)
        elif requested_message == "DiagnosticsStatusNotification":
            await self.call("DiagnosticsStatusNotification", {"status": self.diagnostics_status})
        elif requested_message == "FirmwareStatusNotification":
            await self.call("FirmwareStatusNotification", {"status": self.firmware_status})
