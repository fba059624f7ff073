"""Answers to CSMS-initiated OCPP 1.6 calls. Each handler only translates: it reads the charger's state or makes
a request through the port (``ports.charger``), or changes a configuration key; follow-up CALLs go in ``@after``
hooks."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ocpp.exceptions import NotSupportedError
from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from chargepoint.core.commands import ConnectorStatus
from chargepoint.core.ocpp_auth import Authorizer
from chargepoint.core.reservation import Reservation
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.v16.certificates import Certificates
from chargepoint.ocpp.v16.cost_and_price import handle_data_transfer
from chargepoint.ocpp.v16.diagnostics import Diagnostics
from chargepoint.ocpp.v16.firmware import FirmwareManager
from chargepoint.ocpp.v16.link import Connection, Link
from chargepoint.ocpp.v16.meter_values import MeterValues
from chargepoint.ocpp.v16.smart_charging import SmartCharging
from chargepoint.ocpp.v16.wire import parse_time
from chargepoint.ports.charger import ChargerPort, ConnectorView

log = logging.getLogger(__name__)

# Statuses in which a connector can take a new session.
_STARTABLE = frozenset({ConnectorStatus.Available, ConnectorStatus.Preparing, ConnectorStatus.Finishing,
                        ConnectorStatus.SuspendedEV, ConnectorStatus.Reserved})
TRIGGERABLE = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification", "Heartbeat",
               "MeterValues", "StatusNotification")
# ExtendedTriggerMessage's requestedMessage -> the message queued (see triggers.py).
EXTENDED_TRIGGERABLE = {"BootNotification": "BootNotification", "Heartbeat": "Heartbeat",
                        "MeterValues": "MeterValues", "StatusNotification": "StatusNotification",
                        "FirmwareStatusNotification": "SignedFirmwareStatusNotification",
                        "LogStatusNotification": "LogStatusNotification",
                        "SignChargePointCertificate": "SignChargePointCertificate"}


class AdapterServices(Protocol):
    """What the handlers need of the rest of the OCPP 1.6 adapter (the client satisfies it)."""

    @property
    def keys(self) -> OcppConfiguration: ...

    @property
    def authorizer(self) -> Authorizer: ...

    @property
    def smart(self) -> SmartCharging: ...

    @property
    def firmware(self) -> FirmwareManager: ...

    @property
    def diagnostics(self) -> Diagnostics: ...

    @property
    def meter_values(self) -> MeterValues: ...

    @property
    def certificates(self) -> Certificates: ...

    @property
    def clock_offset_s(self) -> float: ...

    @property
    def registration_rejected(self) -> bool: ...

    def now(self) -> datetime: ...

    async def persist_key(self, name: str, value: str) -> None: ...

    def reconnect_if_credentials_changed(self) -> None: ...

    async def clear_cache(self) -> bool: ...

    async def send_local_list(self, version: int, update_type: str, entries: list[Any] | None) -> str: ...

    async def install_remote_start_profile(self, connector_id: int, profile: dict[str, Any], id_tag: str) -> bool: ...

    async def triggered(self, requested_message: str, connector_id: int | None) -> None: ...


class ChargePointHandlers(Link):
    def __init__(self, charge_point_id: str, connection: Connection, response_timeout_s: float,
                 client: AdapterServices, charger: ChargerPort) -> None:
        self.client = client
        self.charger = charger
        super().__init__(charge_point_id, connection, response_timeout_s)

    def _connector(self, connector_id: int) -> ConnectorView | None:
        return self.charger.connectors.get(connector_id)

    async def _handle_call(self, msg: Any) -> None:
        # OCPP 1.6 4.2: while its BootNotification is Rejected the charger "SHALL NOT respond to any Central
        # System initiated message" (the CSMS's own answers to our CALLs are not CALLs and still arrive).
        if self.client.registration_rejected:
            log.warning("CALL %s from the CSMS left unanswered: it rejected our registration", msg.action)
            return
        await super()._handle_call(msg)

    # ---------------------------------------------------------------- Core

    @on(Action.change_availability)
    async def on_change_availability(self, connector_id: int, type: str, **_: Any) -> call_result.ChangeAvailability:
        operative = type == "Operative"
        targets = list(self.charger.connectors) if connector_id == 0 else [connector_id]
        if any(t not in self.charger.connectors for t in targets):
            return call_result.ChangeAvailability(status="Rejected")
        await self.charger.set_operative(targets, operative)
        busy = any(self.charger.connectors[t].session is not None for t in targets)
        return call_result.ChangeAvailability(status="Scheduled" if busy and not operative else "Accepted")

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str, **_: Any) -> call_result.ChangeConfiguration:
        status, persisted = self.client.keys.change(key, value)
        if persisted is not None:
            # Keys are case-insensitive (CiString): persisted and acted on as this charger spells them.
            await self.client.persist_key(self.client.keys.canonical(key) or key, persisted)
        return call_result.ChangeConfiguration(status=status.value)

    @after(Action.change_configuration)
    async def after_change_configuration(self, key: str, **_: Any) -> None:
        key = self.client.keys.canonical(key) or key
        if key in ("AuthorizationKey", "SecurityProfile"):
            self.client.reconnect_if_credentials_changed()
        if key in ("DefaultPrice", "Language") or key.startswith("DefaultPriceText,"):
            self.charger.pricing.prices_changed()

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> call_result.GetConfiguration:
        known, unknown = self.client.keys.report(key)
        return call_result.GetConfiguration(
            # A write-only key has no "value" at all (the field is optional), not an empty one.
            configuration_key=[{"key": k.key, "readonly": k.readonly}
                               | ({} if k.value is None else {"value": k.value}) for k in known] or None,
            unknown_key=unknown or None,
        )

    @on(Action.clear_cache)
    async def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        accepted = await self.client.clear_cache()
        return call_result.ClearCache(status="Accepted" if accepted else "Rejected")

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None,
                               **_: Any) -> call_result.DataTransfer:
        status = await handle_data_transfer(
            vendor_id, message_id, data,
            enabled=self.client.keys.get_bool("CustomDisplayCostAndPrice"),
            sink=self.charger.pricing,
        )
        return call_result.DataTransfer(status=status)

    @on(Action.remote_start_transaction)
    async def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None,
                                          charging_profile: dict[str, Any] | None = None,
                                          **_: Any) -> call_result.RemoteStartTransaction:
        if connector_id is None:
            candidates = [cid for cid, c in self.charger.connectors.items()
                          if c.session is None and c.status in _STARTABLE]
            connector_id = candidates[0] if candidates else None
        c = None if connector_id is None or connector_id == 0 else self._connector(connector_id)
        if c is None or c.session is not None or c.status not in _STARTABLE:
            if connector_id is None or c is not None:  # a connector that exists, or none free: a driver turned away
                self.charger.start_refused(connector_id or 0, "remote start: no connector free"
                                           if c is None else f"remote start: connector {c.status}")
            return call_result.RemoteStartTransaction(status="Rejected")
        assert connector_id is not None
        reservation = self.charger.reservation_on(connector_id)
        if reservation is not None and id_tag != reservation.id_tag and (
            reservation.parent_id_tag is None
            or self.client.authorizer.parent_of(id_tag, self.client.now()) != reservation.parent_id_tag
        ):
            # A reservation holds against remote starts as against local ones: its idTag, or a card known (local
            # list or cache) to be of its group. Anyone else: Rejected at once, not Accepted and then ignored.
            return call_result.RemoteStartTransaction(status="Rejected")
        if charging_profile is not None:
            raw = self.current_payload.get("chargingProfile", {})
            purpose_ok = raw.get("chargingProfilePurpose") == "TxProfile"
            if not purpose_ok or not await self.client.install_remote_start_profile(connector_id, raw, id_tag):
                return call_result.RemoteStartTransaction(status="Rejected")
        if not self.charger.claim_remote_start(connector_id, id_tag):
            return call_result.RemoteStartTransaction(status="Rejected")  # e.g. a replayed or expired QR code
        pre_authorized = not self.client.keys.get_bool("AuthorizeRemoteTxRequests")
        self.charger.start_remotely(connector_id, id_tag, pre_authorized)
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop_transaction(self, transaction_id: int, **_: Any) -> call_result.RemoteStopTransaction:
        for connector_id, c in self.charger.connectors.items():
            if c.session is not None and c.session.csms_transaction_id == transaction_id:
                self.charger.stop_transaction(connector_id, "Remote")
                return call_result.RemoteStopTransaction(status="Accepted")
        return call_result.RemoteStopTransaction(status="Rejected")

    @on(Action.reset)
    async def on_reset(self, type: str, **_: Any) -> call_result.Reset:
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    async def after_reset(self, type: str, **_: Any) -> None:
        await self.charger.reset(hard=type == "Hard")

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, connector_id: int, **_: Any) -> call_result.UnlockConnector:
        if connector_id not in self.charger.connectors:
            return call_result.UnlockConnector(status="NotSupported")
        status = await self.charger.unlock(connector_id)
        return call_result.UnlockConnector(status=status)

    # ---------------------------------------------------------------- FirmwareManagement

    @on(Action.signed_update_firmware)
    async def on_signed_update_firmware(self, request_id: int, firmware: dict[str, Any], retries: int | None = None,
                                        retry_interval: int | None = None,
                                        **_: Any) -> call_result.SignedUpdateFirmware:
        times: list[datetime | None] = []
        for text in (firmware.get("retrieve_date_time"), firmware.get("install_date_time")):
            try:
                times.append(None if text is None else parse_time(text))
            except ValueError:
                times.append(None)  # unreadable: now
        status = self.client.firmware.start_signed_update(
            request_id, firmware["location"], times[0] or self.client.now(), times[1],
            firmware["signing_certificate"], firmware["signature"], retries, retry_interval)
        return call_result.SignedUpdateFirmware(status=status)

    @on(Action.update_firmware)
    async def on_update_firmware(self, location: str, retrieve_date: str, **_: Any) -> call_result.UpdateFirmware:
        if not self.client.firmware.allow_unsigned:
            # The security extension's SignedUpdateFirmware is the way in; an unsigned image would run unchecked.
            raise NotSupportedError(description="unsigned firmware is not accepted: use SignedUpdateFirmware")
        return call_result.UpdateFirmware()

    @after(Action.update_firmware)
    async def after_update_firmware(self, location: str, retrieve_date: str, retries: int | None = None,
                                    retry_interval: int | None = None, **_: Any) -> None:
        try:
            when = parse_time(retrieve_date)
        except ValueError:
            log.warning("UpdateFirmware with an unreadable retrieveDate %.100r: downloading now", retrieve_date)
            when = self.client.now()
        self.client.firmware.start_update(location, when, retries, retry_interval)

    @on(Action.get_diagnostics)
    async def on_get_diagnostics(self, location: str, retries: int | None = None, retry_interval: int | None = None,
                                 start_time: str | None = None, stop_time: str | None = None,
                                 **_: Any) -> call_result.GetDiagnostics:
        window: list[datetime | None] = []
        for text in (start_time, stop_time):
            try:
                window.append(None if text is None else parse_time(text))
            except ValueError:
                window.append(None)
        file_name = self.client.diagnostics.get_diagnostics(location, retries, retry_interval, *window)
        return call_result.GetDiagnostics(file_name=file_name)

    @after(Action.get_diagnostics)
    async def after_get_diagnostics(self, **_: Any) -> None:
        self.client.diagnostics.diagnostics_reply_sent()

    @on(Action.get_log)
    async def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, retries: int | None = None,
                         retry_interval: int | None = None, **_: Any) -> call_result.GetLog:
        window: list[datetime | None] = []
        for text in (log.get("oldest_timestamp"), log.get("latest_timestamp")):
            try:
                window.append(None if text is None else parse_time(text))
            except ValueError:
                window.append(None)
        status, file_name = self.client.diagnostics.get_log(log_type, request_id, log["remote_location"], retries,
                                                            retry_interval, *window)
        return call_result.GetLog(status=status, filename=file_name)

    @after(Action.get_log)
    async def after_get_log(self, **_: Any) -> None:
        self.client.diagnostics.log_reply_sent()

    # ---------------------------------------------------------------- LocalAuthListManagement

    @on(Action.get_local_list_version)
    async def on_get_local_list_version(self, **_: Any) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(list_version=self.client.authorizer.local_list_version())

    @on(Action.send_local_list)
    async def on_send_local_list(self, list_version: int, update_type: str, **_: Any) -> call_result.SendLocalList:
        entries = self.current_payload.get("localAuthorizationList")
        status = await self.client.send_local_list(list_version, update_type, entries)
        return call_result.SendLocalList(status=status)

    # ---------------------------------------------------------------- Reservation

    @on(Action.reserve_now)
    async def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int,
                             parent_id_tag: str | None = None, **_: Any) -> call_result.ReserveNow:
        if connector_id == 0 and not self.client.keys.get_bool("ReserveConnectorZeroSupported"):
            return call_result.ReserveNow(status="Rejected")
        try:
            expiry = parse_time(expiry_date)
        except ValueError:
            return call_result.ReserveNow(status="Rejected")
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        # Expiry is the CSMS's wall clock; ours may differ by the measured offset.
        expiry -= timedelta(seconds=self.client.clock_offset_s)
        status = await self.charger.reserve(Reservation(reservation_id, connector_id, id_tag, parent_id_tag, expiry))
        return call_result.ReserveNow(status=status)

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id: int, **_: Any) -> call_result.CancelReservation:
        cancelled = await self.charger.cancel_reservation(reservation_id)
        return call_result.CancelReservation(status="Accepted" if cancelled else "Rejected")

    # ---------------------------------------------------------------- SmartCharging

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int, **_: Any) -> call_result.SetChargingProfile:
        payload = self.current_payload.get("csChargingProfiles", {})
        status = await self.client.smart.set_profile(connector_id, payload)
        return call_result.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, id: int | None = None, connector_id: int | None = None,
                                        charging_profile_purpose: str | None = None, stack_level: int | None = None,
                                        **_: Any) -> call_result.ClearChargingProfile:
        removed = await self.client.smart.clear(id, connector_id, charging_profile_purpose, stack_level)
        return call_result.ClearChargingProfile(status="Accepted" if removed else "Unknown")

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None,
                                        **_: Any) -> call_result.GetCompositeSchedule:
        if duration < 0:
            return call_result.GetCompositeSchedule(status="Rejected")  # a schedule cannot last less than nothing
        schedule = self.client.smart.composite(connector_id, duration, charging_rate_unit)
        if schedule is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        return call_result.GetCompositeSchedule(status="Accepted", connector_id=connector_id,
                                                schedule_start=schedule.get("startSchedule"),
                                                charging_schedule=_snake(schedule))

    # ---------------------------------------------------------------- RemoteTrigger

    def _trigger_status(self, requested_message: str, connector_id: int | None,
                        known: Collection[str] = TRIGGERABLE) -> str:
        if requested_message not in known:
            return "NotImplemented"
        if connector_id is not None and connector_id != 0 and connector_id not in self.charger.connectors:
            return "Rejected"
        if requested_message == "MeterValues":
            # Nothing to report (no reading yet, or an empty MeterValuesSampledData): 1.6 has no empty
            # MeterValues, so say now that none will come rather than accept and send nothing.
            targets = [connector_id] if connector_id else list(self.charger.connectors)
            if not any(self.client.meter_values.has_values(target) for target in targets):
                return "Rejected"
        return "Accepted"

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, connector_id: int | None = None,
                                 **_: Any) -> call_result.TriggerMessage:
        return call_result.TriggerMessage(status=self._trigger_status(requested_message, connector_id))

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message: str, connector_id: int | None = None,
                                    **_: Any) -> None:
        # The library runs this hook whatever the answer was: only an accepted trigger brings its message.
        if self._trigger_status(requested_message, connector_id) == "Accepted":
            await self.client.triggered(requested_message, connector_id)

    # ---------------------------------------------------------------- Security extension: certificates

    @on(Action.extended_trigger_message)
    async def on_extended_trigger_message(self, requested_message: str, connector_id: int | None = None,
                                          **_: Any) -> call_result.ExtendedTriggerMessage:
        return call_result.ExtendedTriggerMessage(
            status=self._trigger_status(requested_message, connector_id, EXTENDED_TRIGGERABLE))

    @after(Action.extended_trigger_message)
    async def after_extended_trigger_message(self, requested_message: str, connector_id: int | None = None,
                                             **_: Any) -> None:
        if self._trigger_status(requested_message, connector_id, EXTENDED_TRIGGERABLE) == "Accepted":
            await self.client.triggered(EXTENDED_TRIGGERABLE[requested_message], connector_id)

    @on(Action.install_certificate)
    async def on_install_certificate(self, certificate_type: str, certificate: str,
                                     **_: Any) -> call_result.InstallCertificate:
        return call_result.InstallCertificate(status=await self.client.certificates.install(certificate_type,
                                                                                            certificate))

    @on(Action.delete_certificate)
    async def on_delete_certificate(self, **_: Any) -> call_result.DeleteCertificate:
        wire = self.current_payload.get("certificateHashData", {})
        return call_result.DeleteCertificate(status=await self.client.certificates.delete(wire))

    @on(Action.get_installed_certificate_ids)
    async def on_get_installed_certificate_ids(self, certificate_type: str,
                                               **_: Any) -> call_result.GetInstalledCertificateIds:
        ids = self.client.certificates.installed_ids(certificate_type)
        if not ids:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(status="Accepted",
                                                      certificate_hash_data=[_snake(each) for each in ids])

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, certificate_chain: str, **_: Any) -> call_result.CertificateSigned:
        return call_result.CertificateSigned(status=await self.client.certificates.signed(certificate_chain))

    @after(Action.certificate_signed)
    async def after_certificate_signed(self, **_: Any) -> None:
        self.client.certificates.reconnect_if_due()  # once the CSMS has the answer


def _snake(payload: dict[str, Any]) -> dict[str, Any]:
    """The library turns a reply's snake_case keys back into camelCase; give it what it expects."""
    from ocpp.charge_point import camel_to_snake_case

    result = camel_to_snake_case(payload)
    assert isinstance(result, dict)
    return result
