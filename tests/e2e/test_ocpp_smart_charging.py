"""SmartCharging over OCPP: the composite limit drives the PWM offer (OCTT TC_056-TC_059, TC_066, TC_067)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulators.csms import TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import running_charger

CARD = "04A1B2C3"



def profile(profile_id: int, purpose: str, limit: float, *, stack_level: int = 0, unit: str = "A",
            kind: str = "Relative", transaction_id: int | None = None) -> dict[str, Any]:
    schedule: dict[str, Any] = {"chargingRateUnit": unit,
                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    if kind == "Absolute":
        schedule["startSchedule"] = "2020-01-01T00:00:00Z"
    p: dict[str, Any] = {"chargingProfileId": profile_id, "stackLevel": stack_level,
                         "chargingProfilePurpose": purpose, "chargingProfileKind": kind, "chargingSchedule": schedule}
    if transaction_id is not None:
        p["transactionId"] = transaction_id
    return p


async def test_tc056_tx_default_profile_lowers_the_offered_current(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        reply = await csms.call(CP_ID, "SetChargingProfile", {
            "connectorId": 1, "csChargingProfiles": profile(1, "TxDefaultProfile", 10, kind="Absolute")})
        assert reply == {"status": "Accepted"}
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: abs(charger.status()["offered_current_A"] - 10) < 0.2, what="10 A offer")
        await charger.wait_for(lambda: max(charger.sim().phase_currents_A()) <= 10.5, what="EV follows")


async def test_tc057_tx_profile_during_a_transaction_and_tc067_clear(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 1)
        reply = await csms.call(CP_ID, "SetChargingProfile", {
            "connectorId": 1, "csChargingProfiles": profile(2, "TxProfile", 8 * 230 * 3, unit="W", transaction_id=1)})
        assert reply == {"status": "Accepted"}
        await charger.wait_for(lambda: abs(charger.status()["offered_current_A"] - 8) < 0.2, what="8 A offer")
        assert (await csms.call(CP_ID, "ClearChargingProfile", {"id": 2})) == {"status": "Accepted"}
        await charger.wait_for(lambda: charger.status()["offered_current_A"] > 30, timeout_s=5, what="limit gone")
        assert (await csms.call(CP_ID, "ClearChargingProfile", {"id": 2})) == {"status": "Unknown"}


async def test_tc058_tx_profile_without_a_matching_transaction_is_rejected(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        reply = await csms.call(CP_ID, "SetChargingProfile", {
            "connectorId": 1, "csChargingProfiles": profile(3, "TxProfile", 10)})
        assert reply == {"status": "Rejected"}
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 1)
        reply = await csms.call(CP_ID, "SetChargingProfile", {
            "connectorId": 1, "csChargingProfiles": profile(3, "TxProfile", 10, transaction_id=77)})
        assert reply == {"status": "Rejected"}


async def test_tc066_composite_schedule_and_profiles_survive_a_restart(tmp_path: Path, csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.call(CP_ID, "SetChargingProfile", {
            "connectorId": 0, "csChargingProfiles": profile(4, "ChargePointMaxProfile", 16, kind="Absolute")})
    async with running_charger(config) as charger:
        await registered(charger)
        reply = await csms.call(CP_ID, "GetCompositeSchedule",
                                {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"})
        assert reply["status"] == "Accepted"
        assert reply["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 16
        assert (await csms.call(CP_ID, "GetCompositeSchedule", {"connectorId": 9, "duration": 60}))["status"] == \
            "Rejected"
        await charger.wait_for(lambda: min(charger.app.connectors[1].core.facts.limits_A.values(), default=None) == 16,
                               what="cap")


async def test_tc059_remote_start_with_a_charging_profile(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        charger.sim().apply("plug")
        reply = await csms.call(CP_ID, "RemoteStartTransaction", {
            "connectorId": 1, "idTag": CARD, "chargingProfile": profile(5, "TxProfile", 12)})
        assert reply == {"status": "Accepted"}
        charger.sim().apply("charge")
        await charger.wait_for(lambda: abs(charger.status()["offered_current_A"] - 12) < 0.2, timeout_s=5)
        # TC_060: a profile of another purpose with a remote start is rejected
        reply = await csms.call(CP_ID, "RemoteStartTransaction", {
            "connectorId": 1, "idTag": CARD, "chargingProfile": profile(6, "TxDefaultProfile", 12)})
        assert reply == {"status": "Rejected"}
