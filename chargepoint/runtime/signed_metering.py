"""Signed meter data (OCMF) for sessions on a meter that signs its readings, e.g. an Iskra WM3M4C.

German calibration law wants the bill provable from readings the certified meter signed: the meter takes a signed
begin reading when a session starts and a signed end reading when it ends, and returns both in one OCMF dataset.
The firmware only asks for them and passes the dataset on unaltered (StopTransaction's transactionData, the
session's record, exports, the ledger); it never signs anything itself.

A begin runs as a task of its own per connector, so that a slow meter never holds up the session's records or the
StartTransaction. The end waits for that begin, then for the meter's signature, bounded by the meter's own
deadlines; a meter that fails leaves the session without signed data (logged as an error), never without a record.

At start, a meter still holding a transaction open (the charger lost power mid-session) is asked to end it, and its
dataset goes to the session the store recovers on that connector. The meter's serial number is compared with the
one seen before: another serial is the security event ``MeterReplaced``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from chargepoint.core.metering import SignedMeterData
from chargepoint.ports.events import ChargerEvent, SecurityEvent
from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.store import Store
from hal.errors import HalError
from hal.protocols import OcmfIdentification, SigningMeter

log = logging.getLogger(__name__)

GATEWAY_ID = "chargepoint"  # OCMF GI: the system that wrote the metadata


@dataclass(frozen=True, slots=True)
class ChargerIdentity:
    charge_point_id: str  # the OCPP identity ("" for a charger without a CSMS)
    evse_id: str  # "" : none configured
    serial_number: str  # the charger's (OCMF GS)
    firmware_version: str  # OCMF GV


# How each way of paying identifies the driver, in OCMF's vocabulary (IS, IT, IF).
_IDENTIFICATION: dict[str, tuple[bool, str, tuple[str, ...]]] = {
    "rfid": (True, "ISO14443", ("RFID_PLAIN",)),
    "remote": (True, "CENTRAL", ("OCPP_RS",)),
    "qr": (True, "CENTRAL", ("OCPP_RS",)),  # the payment page starts the session remotely
    "card": (True, "CARD_TXN_NR", ()),  # a pseudonymous token of the payment, never the card number
    "free": (False, "NONE", ()),
}


def identification(identity: ChargerIdentity, id_tag: str, payment_method: str) -> OcmfIdentification:
    identified, kind, flags = _IDENTIFICATION.get(payment_method, _IDENTIFICATION["rfid"])
    if identity.evse_id:
        point_type, point_id = "EVSEID", identity.evse_id
    else:
        point_type, point_id = "CBIDC", identity.charge_point_id
    return OcmfIdentification(
        identified=identified, identification_type=kind, identification_data=id_tag if identified else "",
        identification_flags=flags, charge_point_type=point_type, charge_point_id=point_id,
        gateway_id=GATEWAY_ID, gateway_serial=identity.serial_number, gateway_version=identity.firmware_version,
    )


class SignedMetering:
    def __init__(self, connectors: Mapping[int, ConnectorRuntime], identity: ChargerIdentity, store: Store,
                 publish: Callable[[ChargerEvent], None]) -> None:
        self.identity = identity
        self.store = store
        self.publish = publish
        self.meters: dict[int, SigningMeter] = {
            cid: c.hw.meter for cid, c in connectors.items() if isinstance(c.hw.meter, SigningMeter)
        }
        self._begins: dict[int, asyncio.Task[bool]] = {}

    def begin(self, connector_id: int, id_tag: str, payment_method: str) -> None:
        meter = self.meters.get(connector_id)
        if meter is None:
            return
        self._begins[connector_id] = asyncio.create_task(
            self._begin(connector_id, meter, identification(self.identity, id_tag, payment_method)),
            name=f"signed begin, connector {connector_id}",
        )

    async def _begin(self, connector_id: int, meter: SigningMeter, ident: OcmfIdentification) -> bool:
        try:
            await meter.begin_transaction(ident)
        except HalError as exc:
            log.error("connector %d: the meter did not sign the begin of the session: %s", connector_id, exc)
            return False
        log.info("connector %d: the meter signed the begin of the session", connector_id)
        return True

    async def end(self, connector_id: int) -> SignedMeterData | None:
        """The meter's signed dataset of the session that just ended on ``connector_id``; None if it has none."""
        meter = self.meters.get(connector_id)
        begun = self._begins.pop(connector_id, None)
        if meter is None or begun is None or not await begun:
            return None
        try:
            data = await meter.end_transaction()
        except HalError as exc:
            log.error("connector %d: the meter did not sign the end of the session: %s", connector_id, exc)
            return None
        log.info("connector %d: the meter signed the end of the session", connector_id)
        return data

    async def recover(self) -> dict[int, SignedMeterData]:
        """At start: end what a power cut left open on each meter, and check that each meter is the one seen before."""
        recovered: dict[int, SignedMeterData] = {}
        for connector_id, meter in self.meters.items():
            try:
                await self._check_serial(connector_id, meter)
                if await meter.transaction_open():
                    recovered[connector_id] = await meter.end_transaction()
                    log.warning("connector %d: the meter held a session open through an outage; its signed end "
                                "reading goes with the recovered session", connector_id)
            except HalError as exc:
                log.error("connector %d: signing meter not reachable at start: %s", connector_id, exc)
        return recovered

    async def _check_serial(self, connector_id: int, meter: SigningMeter) -> None:
        serial = await meter.serial_number()
        key = f"meter_serial.{connector_id}"
        known = await self.store.get_kv(key)
        if known is not None and known != serial:
            self.publish(SecurityEvent("MeterReplaced", f"connector {connector_id}: meter serial {known} replaced "
                                       f"by {serial}", datetime.now(UTC)))
        if known != serial:
            await self.store.set_kv(key, serial)

    async def aclose(self) -> None:
        for task in self._begins.values():
            task.cancel()
        self._begins.clear()
