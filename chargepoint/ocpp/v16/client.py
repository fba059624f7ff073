"""OCPP 1.6J client: the adapter between the CSMS and the charger, seen through ``chargepoint.ports``.

It builds its parts and connects them: the link (``connection``), the transaction outbox (``outbox``),
authorization (``authorization``), status notifications (``status``), meter values (``meter_values``), smart
charging, firmware management, and the CSMS-call handlers (``handlers``), built anew on each connection. To the
charger it is a ``CsmsAdapter``: it authorizes cards, builds the transaction messages the store journals, and
hears the charger's events. It owns the OCPP configuration keys, and applies the ones that set the charger's
rules. No OCPP type reaches the charger.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection

from chargepoint.config.keys import CSMS_KV_PREFIX
from chargepoint.config.schema import Config
from chargepoint.core.commands import ConnectorStatus
from chargepoint.core.ocpp_auth import Authorizer
from chargepoint.ocpp.certificates import CertificateStore, RootKind
from chargepoint.ocpp.config_keys import DEFAULT_PRICE_TEXT_PREFIX, OcppConfiguration
from chargepoint.ocpp.file_transfer import FirmwareInstaller, TrialInstaller
from chargepoint.ocpp.v16.authorization import OcppAuthorization
from chargepoint.ocpp.v16.certificates import Certificates
from chargepoint.ocpp.v16.connection import CredentialsFallback, CsmsConnection
from chargepoint.ocpp.v16.diagnostics import Diagnostics
from chargepoint.ocpp.v16.firmware import FirmwareManager
from chargepoint.ocpp.v16.handlers import ChargePointHandlers
from chargepoint.ocpp.v16.kpi import DailyKpi
from chargepoint.ocpp.v16.link import Link
from chargepoint.ocpp.v16.meter_values import MeterValues
from chargepoint.ocpp.v16.outbox import Outbox
from chargepoint.ocpp.v16.security_events import SecurityEvents
from chargepoint.ocpp.v16.smart_charging import SmartCharging
from chargepoint.ocpp.v16.status import StatusReporter
from chargepoint.ocpp.v16.triggers import TriggeredMessages
from chargepoint.ocpp.v16.wire import CsmsClock
from chargepoint.ports.charger import ChargerPort, SessionPolicy
from chargepoint.ports.csms import Authorization
from chargepoint.ports.events import (
    ChargerEvent,
    MeterRead,
    SecurityEvent,
    StatusChanged,
    TransactionEnded,
    TransactionStarted,
)
from chargepoint.ports.pricing import CsmsPrices
from chargepoint.store import OutboxMessage, SessionRecord, Store

log = logging.getLogger(__name__)

KV_KEY_PREFIX = CSMS_KV_PREFIX  # the config package names it: `chargepoint config show` reads these
CLOCK_PLAUSIBLE_FROM_YEAR = 2024


class OcppPrices:
    """The CostAndPrice configuration keys, as the charger's pricing reads them."""

    def __init__(self, keys: OcppConfiguration) -> None:
        self._keys = keys

    @property
    def display_enabled(self) -> bool:
        return self._keys.get_bool("CustomDisplayCostAndPrice")

    @property
    def default_price(self) -> str:
        return self._keys["DefaultPrice"]

    @property
    def language(self) -> str:
        return self._keys["Language"]

    def default_price_text(self, language: str) -> str:
        if language not in self._keys.get_list("SupportedLanguages"):
            return ""
        return self._keys[f"{DEFAULT_PRICE_TEXT_PREFIX}{language}"]


class OcppClient:
    def __init__(self, config: Config, store: Store, charger: ChargerPort, installer: FirmwareInstaller) -> None:
        assert config.ocpp is not None
        self.config = config
        self.settings = config.ocpp
        self.store = store
        self.charger = charger
        self.keys = OcppConfiguration(
            config.charger.connectors,
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
        self.prices: CsmsPrices = OcppPrices(self.keys)
        self.clock = CsmsClock()
        self.certificate_store = CertificateStore(config.storage.dir / "certs",
                                                  self.keys.get_int("CertificateStoreMaxLength"))
        self.connection = CsmsConnection(self.settings, config.identity, self.keys, self.clock, store,
                                         self._make_link, self._on_registered, self._credentials_fell_back,
                                         self.certificate_store, self.security_event)
        self.security_events = SecurityEvents(store, self.connection, lambda: self.outbox.changed())
        self.authorization = OcppAuthorization(self.keys, store, self.connection)
        # CSR subject CN: the serial number if the config file names one, else the charge point id (docs/ocpp16.md).
        serial_set = "serial_number" in config.identity.model_fields_set
        self.certificates = Certificates(self.certificate_store, self.keys, self.connection,
                                         config.identity.serial_number if serial_set else self.settings.charge_point_id,
                                         self.settings.ca_file, self.now, self.security_event)
        self.smart = SmartCharging(self.keys, store, charger, config.charger.phases, config.charger.max_current_A)
        self.outbox = Outbox(self.keys, store, self.connection, charger, self.authorization, self.smart)
        self.status = StatusReporter(self.keys, self.connection, charger, self.outbox.drained)
        self.meter_values = MeterValues(self.keys, self.connection, charger, self.outbox)
        self.kpi = (DailyKpi(self.settings.kpi_vendor_id, store, config.pricing.time_zone, config.charger.connectors,
                             self.outbox.enqueue) if self.settings.kpi_vendor_id else None)
        self.firmware = FirmwareManager(self.connection, charger, self.keys, self.outbox.drained,
                                        config.storage.dir / "firmware", installer, store,
                                        lambda: self.certificate_store.roots(RootKind.ManufacturerRootCertificate),
                                        self.security_event)
        # UpdateFirmware carries no signature of its own: safe where the installer takes signed releases only.
        self.firmware.allow_unsigned = (self.settings.allow_unsigned_firmware_updates
                                        or isinstance(installer, TrialInstaller))
        self.diagnostics = Diagnostics(config, self.connection, charger, self.keys, store,
                                       config.storage.dir / "outgoing", self.security_event,
                                       self.security_events.history, lambda: self.firmware.firmware_status)
        self.triggers = TriggeredMessages(self.connection, self.status, self.meter_values, charger,
                                          lambda: self.firmware.firmware_status,
                                          lambda: self.diagnostics.diagnostics_status, self._log_status,
                                          self.certificates.sign_request)
        self._credentials_changed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # CustomIdleFeeAfterStop: per connector, the session whose ConnectorUnplugged is due when the EV leaves.
        self._unplug_pending: dict[int, str] = {}

    # ----------------------------------------------------------------- state

    @property
    def connected(self) -> bool:
        """True while the link is up and the CSMS accepted our BootNotification."""
        return self.connection.connected

    def link_state(self) -> dict[str, Any]:
        return self.connection.link_state()

    @property
    def authorizer(self) -> Authorizer:
        return self.authorization.authorizer

    @property
    def clock_offset_s(self) -> float:
        return self.clock.offset_s

    @property
    def registration_rejected(self) -> bool:
        """The CSMS answered our last BootNotification on this connection with Rejected."""
        return self.connection.boot_status == "Rejected"

    @property
    def firmware_status(self) -> str:
        return self.firmware.firmware_status

    @property
    def diagnostics_status(self) -> str:
        return self.diagnostics.diagnostics_status

    def _log_status(self) -> tuple[str, int | None]:
        """LogStatusNotification for a trigger: requestId only while a log upload is under way (whitepaper)."""
        status = self.diagnostics.log_status
        return status, None if status == "Idle" else self.diagnostics.log_request_id

    def security_event(self, kind: str, tech_info: str) -> None:
        self.security_events.record(kind, tech_info, self.now())

    def now(self) -> datetime:
        return self.clock.now()

    # ----------------------------------------------------------------- lifecycle

    async def load(self) -> None:
        """Restore the OCPP-managed keys (they win over the config file's initial values)."""
        if datetime.now(UTC).year < CLOCK_PLAUSIBLE_FROM_YEAR:
            log.warning("the system clock reads %s: it is probably not set (no RTC, no NTP yet); timestamps "
                        "will follow the CSMS's clock once it answers", datetime.now(UTC).isoformat())
        persisted: dict[str, str] = {}
        for name in self._key_names():
            value = await self.store.get_kv(KV_KEY_PREFIX + name)
            if value is not None:
                persisted[name] = value
        self.keys.load(persisted)
        await self.connection.load()
        await self.security_events.load()
        await self.smart.load()
        await self.authorization.load()
        if "AuthorizationKey" in persisted:
            self.connection.authorization_key = persisted["AuthorizationKey"]
        if "SecurityProfile" in persisted:
            self.connection.security_profile = int(persisted["SecurityProfile"])
        else:
            self.keys.set_internal("SecurityProfile", str(self.connection.security_profile))
        self._apply_policy_keys()

    def _key_names(self) -> list[str]:
        return [name for name, _, _ in self.keys.table()]

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.connection.run())
                tg.create_task(self.outbox.run())
                tg.create_task(self.meter_values.run())
                tg.create_task(self.smart.run())
                tg.create_task(self.security_events.run())
                tg.create_task(self.triggers.run())
                if self.kpi is not None:
                    tg.create_task(self.kpi.run())
        finally:
            await self.firmware.aclose()
            await self.diagnostics.aclose()

    def _make_link(self, connection: ClientConnection, response_timeout_s: float) -> Link:
        return ChargePointHandlers(self.settings.charge_point_id, connection, response_timeout_s, self, self.charger)

    async def _on_registered(self) -> None:
        self.outbox.changed()
        self._spawn(self.firmware.report_installed_after_restart())
        await self.status.send_all()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        return await self.connection.call(action, payload)

    # ----------------------------------------------------------------- the charger's requests

    async def authorize(self, id_tag: str) -> Authorization:
        return await self.authorization.authorize(id_tag)

    def start_messages(self, connector_id: int, id_tag: str, meter_start_Wh: int, at: datetime,
                       reservation_id: int | None = None) -> Callable[[str], Sequence[OutboxMessage]]:
        return self.outbox.start_messages(connector_id, id_tag, meter_start_Wh, at, reservation_id)

    def stop_messages(self, record: SessionRecord) -> Sequence[OutboxMessage]:
        return self.outbox.stop_messages(record)

    def journal_changed(self) -> None:
        self.outbox.changed()

    def request_meter_values(self, connector_id: int) -> None:
        self._spawn(self.meter_values.send_now([connector_id]))

    # ----------------------------------------------------------------- the charger's events

    def charger_event(self, event: ChargerEvent) -> None:
        match event:
            case StatusChanged(connector_id=connector_id, status=status, error_code=error_code, causes=causes):
                self.status.status_changed(connector_id, status, error_code, causes)
                if status is ConnectorStatus.Available and connector_id in self._unplug_pending:
                    self._send_unplugged(connector_id)
            case TransactionStarted():
                self.outbox.pending()
            case TransactionEnded():
                self._note_unplug_due(event)
                self.outbox.pending()
            case MeterRead():
                self.outbox.check_invalid_id_energy()
            case SecurityEvent(kind=kind, detail=detail, at=at):
                self.security_events.record(kind, detail, at)
            case _:
                pass

    def _note_unplug_due(self, ended: TransactionEnded) -> None:
        """CustomIdleFeeAfterStop: the CSMS bills idle time until we report the unplug (ConnectorUnplugged)."""
        if ended.session_id is None:
            return
        if not (self.keys.get_bool("CustomDisplayCostAndPrice") and self.keys.get_bool("CustomIdleFeeAfterStop")):
            return
        self._unplug_pending[ended.connector_id] = ended.session_id
        if ended.reason == "EVDisconnected" or ended.ev_unplugged:
            self._send_unplugged(ended.connector_id)

    def _send_unplugged(self, connector_id: int) -> None:
        session_id = self._unplug_pending.pop(connector_id, None)
        if session_id is not None:
            self._spawn(self.outbox.connector_unplugged(session_id, datetime.now(UTC)))

    # ----------------------------------------------------------------- for the CSMS-call handlers

    async def deliver_queued(self, timeout_s: float) -> bool:
        if not self.connected:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await self.outbox.drained.wait()
        except TimeoutError:
            log.warning("stopping with transaction messages still queued; they are sent after the restart")
            return False
        return True

    async def clear_cache(self) -> bool:
        return await self.authorization.clear_cache()

    async def send_local_list(self, version: int, update_type: str, entries: list[Any] | None) -> str:
        return await self.authorization.send_local_list(version, update_type, entries)

    async def install_remote_start_profile(self, connector_id: int, profile: dict[str, Any], id_tag: str) -> bool:
        return self.smart.remote_start_profile(connector_id, profile, id_tag)

    def _guard_security_profile(self, old: str, new: str) -> str | None:
        if int(new) < int(old):
            return "the security profile may only be raised"
        if int(new) in (1, 2) and not self.connection.authorization_key:
            return "profiles 1 and 2 need an AuthorizationKey"
        if int(new) >= 2 and not self.settings.csms_url.startswith("wss://"):
            return "profiles 2 and 3 need a wss:// CSMS URL"
        if int(new) == 3 and (self.settings.client_cert_file is None or self.settings.client_key_file is None) \
                and self.certificate_store.charge_point_certificate() is None:
            return "profile 3 needs a client certificate"
        return None

    async def persist_key(self, name: str, value: str) -> None:
        await self.store.set_kv(KV_KEY_PREFIX + name, value)
        if name == "AuthorizationKey":
            # At profile 0 (or 3) the key is only kept for later: no reconnect, which would fail the CSMS's next
            # call (a SecurityProfile upgrade, say) for nothing.
            if self.connection.change_credentials(authorization_key=value):
                self._credentials_changed = True
            self.security_events.record("ReconfigurationOfSecurityParameters", "AuthorizationKey set by the CSMS",
                                        datetime.now(UTC))
        elif name == "SecurityProfile":
            before = self.connection.security_profile
            if self.connection.change_credentials(security_profile=int(value)):
                self._credentials_changed = True
                self.security_events.record("ReconfigurationOfSecurityParameters",
                                            f"SecurityProfile {before} -> {value} set by the CSMS", datetime.now(UTC))
        elif name in ("HeartbeatInterval", "WebSocketPingInterval"):
            self.connection.intervals_changed()  # applies now, not when the running timer fires
        self._apply_policy_keys()
        self.authorization.keys_changed()

    def _apply_policy_keys(self) -> None:
        self.charger.apply_policy(SessionPolicy(
            connection_timeout_s=float(self.keys.get_int("ConnectionTimeOut")),
            stop_on_ev_disconnect=self.keys.get_bool("StopTransactionOnEVSideDisconnect"),
            unlock_on_ev_disconnect=self.keys.get_bool("UnlockConnectorOnEVSideDisconnect"),
        ))

    async def _credentials_fell_back(self, fallback: CredentialsFallback) -> None:
        """A connection with new credentials failed and the previous ones are back: persist them (they win over
        the config file after a restart, as the new ones would have) and tell the CSMS why."""
        for name, value in fallback.restored.items():
            await self.store.set_kv(KV_KEY_PREFIX + name, value)
        now = datetime.now(UTC)
        if fallback.event is not None:
            self.security_events.record(fallback.event, f"connecting with the new {fallback.changed} failed: "
                                        f"{fallback.reason}", now)
        self.security_events.record("ReconfigurationOfSecurityParameters",
                                    f"back to the previous {', '.join(fallback.restored) or 'credentials'} after "
                                    f"connecting with the new {fallback.changed} failed", now)

    def reconnect_if_credentials_changed(self) -> None:
        """New credentials or a new security profile take effect on a new connection (TC_073, TC_083)."""
        if self._credentials_changed:
            self._credentials_changed = False
            log.info("reconnecting to use the new credentials/security profile")
            self.connection.request_reconnect()

    async def triggered(self, requested_message: str, connector_id: int | None) -> None:
        """A TriggerMessage was accepted: its message follows, once the charger may send it."""
        self.triggers.requested(requested_message, connector_id)
