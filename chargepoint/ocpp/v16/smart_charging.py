"""SmartCharging profile for the OCPP 1.6 adapter: installs profiles, persists them, and turns the composite
limit into the ``smart_charging`` current limit of the charger (``ChargerPort.set_current_limit``), which the core
folds into the PWM offer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from chargepoint.core.smart_charging import (
    ChargingProfile,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ProfileError,
    ProfileStore,
    composite_schedule,
    composite_to_ocpp,
    current_limit_A,
    next_change,
    profile_from_ocpp,
    profile_to_ocpp,
)
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ports.charger import ChargerPort
from chargepoint.store import Store

log = logging.getLogger(__name__)

LIMIT_SOURCE = "smart_charging"
MAX_SLEEP_S = 5.0
PENDING_PROFILE_MAX_AGE_S = 600.0  # a remote start's profile waits at most this long for its transaction


class SmartCharging:
    def __init__(self, keys: OcppConfiguration, store: Store, charger: ChargerPort, phases: int,
                 max_current_A: float) -> None:
        self.keys = keys
        self.store = store
        self.charger = charger
        self.profiles = ProfileStore(
            max_stack_level=keys.get_int("ChargeProfileMaxStackLevel"),
            max_profiles=keys.get_int("MaxChargingProfilesInstalled"),
            max_periods=keys.get_int("ChargingScheduleMaxPeriods"),
        )
        # connector -> (profile, idTag of the remote start, when accepted): installed on that start's transaction only.
        self._pending_tx_profiles: dict[int, tuple[ChargingProfile, str, float]] = {}
        self._applied_A: dict[int, float | None] = {}
        self._changed = asyncio.Event()
        self.phases = phases
        self.max_current_A = max_current_A

    def poke(self) -> None:
        self._changed.set()

    async def load(self) -> None:
        items = []
        for connector_id, payload in await self.store.charging_profiles():
            try:
                items.append((connector_id, profile_from_ocpp(payload)))
            except ProfileError as exc:
                log.warning("dropping a stored charging profile: %s", exc)
        self.profiles.load(items)

    async def _persist(self) -> None:
        await self.store.replace_charging_profiles(
            [(cid, profile_to_ocpp(p)) for cid, p in self.profiles.all()]
        )
        self._changed.set()

    def _transaction(self, connector_id: int) -> tuple[datetime | None, int | None]:
        c = self.charger.connectors.get(connector_id)
        if c is None or c.session is None:
            return None, None
        return c.session.started_at, c.session.csms_transaction_id

    def _parse(self, payload: dict[str, Any]) -> ChargingProfile | None:
        try:
            return profile_from_ocpp(
                payload,
                max_stack_level=self.keys.get_int("ChargeProfileMaxStackLevel"),
                max_periods=self.keys.get_int("ChargingScheduleMaxPeriods"),
                received_at=datetime.now(UTC),
            )
        except ProfileError as exc:
            log.warning("SetChargingProfile rejected: %s", exc)
            return None

    async def set_profile(self, connector_id: int, payload: dict[str, Any]) -> str:
        profile = self._parse(payload)
        if profile is None:
            return "Rejected"
        _, transaction_id = self._transaction(connector_id)
        status = self.profiles.install(connector_id, profile, active_transaction_id=transaction_id,
                                       connector_count=len(self.charger.connectors))
        if status == "Accepted":
            await self._persist()
        else:
            reason = self.profiles.check(connector_id, profile, active_transaction_id=transaction_id,
                                         connector_count=len(self.charger.connectors))
            log.warning("SetChargingProfile rejected: %s", reason)
        return str(status)

    def remote_start_profile(self, connector_id: int, payload: dict[str, Any], id_tag: str) -> bool:
        """A TxProfile sent with RemoteStartTransaction: installed once the transaction has its id."""
        profile = self._parse(payload)
        if profile is None or profile.purpose is not ChargingProfilePurpose.TxProfile:
            return False
        self._pending_tx_profiles[connector_id] = (profile, id_tag, time.monotonic())
        return True

    async def transaction_started(self, connector_id: int, transaction_id: int, id_tag: str) -> None:
        pending = self._pending_tx_profiles.pop(connector_id, None)
        # Only the transaction the remote start asked for: one that never began must not cap a later session.
        profile = None
        if pending is not None and pending[1] == id_tag and time.monotonic() - pending[2] < PENDING_PROFILE_MAX_AGE_S:
            profile = pending[0]
        if profile is not None:
            status = self.profiles.install(connector_id, profile, active_transaction_id=transaction_id,
                                           connector_count=len(self.charger.connectors))
            if status == "Accepted":
                await self._persist()
        self._changed.set()

    async def clear(self, profile_id: int | None, connector_id: int | None, purpose: str | None,
                    stack_level: int | None) -> bool:
        removed = self.profiles.clear(
            profile_id=profile_id, connector_id=connector_id,
            purpose=None if purpose is None else ChargingProfilePurpose(purpose), stack_level=stack_level,
        )
        if removed:
            await self._persist()
        return removed

    def composite(self, connector_id: int, duration_s: int, unit: str | None) -> dict[str, Any] | None:
        if connector_id != 0 and connector_id not in self.charger.connectors:
            return None
        start, transaction_id = self._transaction(connector_id)
        schedule = composite_schedule(
            self.profiles, connector_id, datetime.now(UTC), duration_s,
            ChargingRateUnit(unit or "A"), transaction_start=start, transaction_id=transaction_id,
            phases=self.phases, default_limit=self._hardware_limit(unit or "A"),
        )
        return composite_to_ocpp(schedule)

    def _hardware_limit(self, unit: str) -> float:
        max_A = self.max_current_A
        return max_A if unit == "A" else max_A * 230.0 * self.phases

    async def run(self) -> None:
        """Keep each connector's smart-charging limit equal to the composite limit in force."""
        while True:
            self._changed.clear()
            wait_s = MAX_SLEEP_S
            now = datetime.now(UTC)
            for connector_id, c in self.charger.connectors.items():
                if c.session is None and any(cid == connector_id and p.purpose is ChargingProfilePurpose.TxProfile
                                             for cid, p in self.profiles.all()):
                    self.profiles.end_transaction(connector_id)
                    await self._persist()
                start, transaction_id = self._transaction(connector_id)
                limit_A = current_limit_A(self.profiles, connector_id, now, transaction_start=start,
                                          transaction_id=transaction_id, phases=self.phases)
                if self._applied_A.get(connector_id, "unset") != limit_A:
                    self._applied_A[connector_id] = limit_A
                    log.info("connector %d: smart-charging limit %s", connector_id,
                             "removed" if limit_A is None else f"{limit_A:.1f} A")
                    self.charger.set_current_limit(connector_id, LIMIT_SOURCE, limit_A)
                change = next_change(self.profiles, connector_id, now, transaction_start=start,
                                     transaction_id=transaction_id, phases=self.phases)
                if change is not None:
                    wait_s = min(wait_s, max(0.05, (change - now).total_seconds()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._changed.wait()
