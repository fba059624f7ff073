"""California Pricing (OCPP 1.6 CostAndPrice) and limits end to end, against the test CSMS on a real WebSocket."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from hal.protocols import DisplayKind
from simulators.csms import CsmsPricing, TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import Charger, running_charger

CENT = Decimal("0.01")  # the default money format: 2 decimals, rounded half up

CARD = "04A1B2C3"
VENDOR = "org.openchargealliance.costmsg"
DEFAULT_PRICE = {
    "priceText": "0.50 EUR/kWh",
    "priceTextOffline": "Offline: 0.50 EUR/kWh",
    "chargingPrice": {"kWhPrice": 0.50, "hourPrice": 0.00, "flatFee": 0.25},
}


async def change(csms: TestCsms, key: str, value: str) -> str:
    reply = await csms.call(CP_ID, "ChangeConfiguration", {"key": key, "value": value})
    return str(reply["status"])


async def go_offline(charger: Charger, csms: TestCsms) -> None:
    csms.accepting = False
    await csms.disconnect(CP_ID)
    await charger.wait_for(lambda: not charger.app.status()["csms_connected"], what="offline")


async def accept_card_locally(csms: TestCsms) -> None:
    await csms.call(CP_ID, "SendLocalList", {"listVersion": 1, "updateType": "Full", "localAuthorizationList": [
        {"idTag": CARD, "idTagInfo": {"status": "Accepted"}}]})


def shown(charger: Charger) -> tuple[str, ...]:
    message = charger.sim().display.shown()
    return () if message is None else message.lines


async def finished(charger: Charger) -> dict[str, Any]:
    await charger.app.flush_store()
    rows = await charger.app.recent_sessions(1)
    assert rows and rows[0]["stopped_at"] is not None
    return rows[0]


async def test_default_price_is_shown_before_the_session_and_prices_sessions_started_offline_after_a_restart(
    tmp_path: Path, csms: TestCsms
) -> None:
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        await registered(charger)
        assert await change(csms, "DefaultPrice", json.dumps(DEFAULT_PRICE)) == "Accepted"
        await charger.wait_for(lambda: shown(charger) == ("0.50 EUR/kWh",), what="the CSMS's price on the display")
        # A malformed price is Rejected and the one in force stays.
        assert await change(csms, "DefaultPrice", '{"priceText": 12}') == "Rejected"
        assert await change(csms, "DefaultPrice", "not json") == "Rejected"
        reply = await csms.call(CP_ID, "GetConfiguration", {"key": ["DefaultPrice"]})
        assert json.loads(reply["configurationKey"][0]["value"]) == DEFAULT_PRICE
        await accept_card_locally(csms)

    # Restarted without the CSMS: the cached price is shown (offline text) and prices the session.
    csms.accepting = False
    await csms.disconnect(CP_ID)
    async with running_charger(config) as charger:
        await charger.wait_for(lambda: shown(charger) == ("Offline: 0.50 EUR/kWh",), what="offline price text")
        await charger.charge(card=CARD)
        assert charger.status()["session"]["tariff_id"] == "csms-default"
        await charger.wait_for(lambda: charger.status()["session"]["energy_Wh"] > 200, what="energy")
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        record = await finished(charger)

    # Hand check: 0.25 flat fee + kWh x 0.50, no tax (California prices are final prices).
    expected = Decimal("0.25") + (Decimal(record["energy_Wh"]) / 1000 * Decimal("0.50")).quantize(CENT, ROUND_HALF_UP)
    assert Decimal(record["cost"]) == expected


async def test_user_price_running_cost_and_final_cost_from_the_csms(tmp_path: Path) -> None:
    pricing = CsmsPricing(kwh_price=Decimal("0.42"), flat_fee=Decimal("1.00"))
    async with TestCsms(cost_and_price=pricing) as csms:
        config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 1},
                             pricing={"default_tariff": "local", "tariffs": {"local": {
                                 "energy": [{"price_per_kWh": "0.40"}]}}})
        async with running_charger(config) as charger:
            await registered(charger)
            reply = await csms.cost_message(CP_ID, "SetUserPrice", {
                "idToken": CARD, "priceText": "0.42 EUR/kWh, 1.00 EUR start",
                "priceTextExtra": [{"format": "UTF8", "language": "de", "content": "0,42 EUR/kWh, 1,00 EUR Start"}]})
            assert reply["status"] == "Accepted"
            assert (await charger.store.user_prices())[CARD]

            charger.sim().apply("plug")
            await charger.wait_status("Preparing")
            charger.sim().apply("tap", CARD)
            await charger.wait_for(lambda: any(m.kind is DisplayKind.price and m.lines == (
                "0.42 EUR/kWh, 1.00 EUR start",) for _, m in charger.sim().display.history),
                what="the driver's price after the card")
            await charger.wait_status("SuspendedEV")
            charger.sim().apply("charge")
            await charger.wait_status("Charging")

            # RunningCost follows each MeterValues: the CSMS's figure is shown, ours is kept too.
            await charger.wait_for(lambda: (charger.status()["session"] or {}).get("cost_source") == "csms",
                                   timeout_s=10, what="a RunningCost from the CSMS")
            session = charger.status()["session"]
            assert session["csms_cost"] == session["cost"] and session["local_cost"] is not None
            assert Decimal(session["cost"]) >= Decimal("1.00")

            charger.sim().apply("unplug")
            await charger.wait_status("Available")
            record = await finished(charger)
            await charger.wait_for(lambda: any(m.kind is DisplayKind.receipt and any("(operator)" in line or
                                                                                       "operator" in line.lower()
                                                                                       for line in m.lines)
                                               for _, m in charger.sim().display.history),
                                   timeout_s=10, what="receipt with the operator's total")
            rows = await charger.app.recent_sessions(1)
            final = rows[0]

        stop = csms.calls("StopTransaction")[-1]
        assert stop.payload is not None
        expected = pricing.cost(Decimal(stop.payload["meterStop"] - csms.calls("StartTransaction")[-1].payload[
            "meterStart"]), 0)
        assert Decimal(final["csms_cost"]) == expected
        assert final["cost"] == final["csms_cost"]  # the CSMS's final figure wins for display
        assert Decimal(final["local_cost"]) == (Decimal(record["energy_Wh"]) / 1000 * Decimal("0.40")).quantize(
            CENT, ROUND_HALF_UP)


async def test_trigger_meter_value_at_energy_sends_an_extra_meter_values(tmp_path: Path, csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 0})
    async with running_charger(config) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 1, what="transaction id")
        energy_now = charger.status()["session"]["energy_Wh"]
        target_kWh = Decimal(energy_now + 150) / 1000
        mark = len(csms.frames)
        reply = await csms.cost_message(CP_ID, "RunningCost", {
            "transactionId": 1, "timestamp": "2026-11-26T12:00:00Z", "meterValue": energy_now, "cost": 1.23,
            "state": "Charging", "chargingPrice": {"kWhPrice": 0.3}, "triggerMeterValue": {"atEnergykWh": target_kWh},
        })
        assert reply["status"] == "Accepted"
        frame = await csms.wait_for_call("MeterValues", after=mark)
        assert frame.payload is not None
        assert frame.payload["transactionId"] == 1
        assert frame.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
        assert charger.status()["session"]["energy_Wh"] >= energy_now + 150
        # Once only: the trigger is used up.
        await asyncio.sleep(0.5)
        assert len([f for f in csms.calls("MeterValues") if csms.frames.index(f) >= mark]) == 1
        # A RunningCost for a transaction the charger does not know is Rejected.
        reply = await csms.cost_message(CP_ID, "RunningCost", {"transactionId": 999, "cost": 1, "meterValue": 0,
                                                               "timestamp": "2026-11-26T12:00:00Z"})
        assert reply["status"] == "Rejected"
        reply = await csms.cost_message(CP_ID, "RunningCost", {"transactionId": 1, "cost": "lots"})
        assert reply["status"] == "Rejected"


async def test_idle_fee_after_stop_reports_the_unplug(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        assert await change(csms, "CustomIdleFeeAfterStop", "true") == "Accepted"
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 1, what="transaction id")
        charger.sim().apply("tap", CARD)  # the driver stops; the car stays plugged in
        stop = await csms.wait_for_call("StopTransaction")
        await asyncio.sleep(0.3)
        assert not [f for f in csms.calls("DataTransfer") if "ConnectorUnplugged" in json.dumps(f.payload)]
        charger.sim().apply("unplug")
        frame = await csms.wait_for_call("DataTransfer", lambda p: p.get("messageId") == "ConnectorUnplugged")
        assert frame.payload is not None and frame.payload["vendorId"] == VENDOR
        data = json.loads(frame.payload["data"])
        assert data["transactionId"] == 1 and data["timestamp"] >= stop.payload["timestamp"]


async def test_csms_transaction_limit_stops_the_session_with_reason_other(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 1, what="transaction id")
        energy_now = charger.status()["session"]["energy_Wh"]
        reply = await csms.cost_message(CP_ID, "SetTransactionLimit",
                                        {"transactionId": 1, "maxEnergy": energy_now + 300}, vendor_id="chargepoint")
        assert reply["status"] == "Accepted"
        stop = await csms.wait_for_call("StopTransaction", timeout_s=15)
        assert stop.payload is not None and stop.payload["reason"] == "Other"
        record = await finished(charger)
        assert record["stop_reason"] == "EnergyLimitReached"
        assert energy_now + 300 <= record["energy_Wh"] <= energy_now + 300 + 100


async def test_prepaid_card_stops_at_its_budget_online_and_offline(tmp_path: Path, csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms, pricing={"default_tariff": "kwh", "tariffs": {"kwh": {
        "energy": [{"price_per_kWh": "1.00"}]}}})
    async with running_charger(config) as charger:
        await registered(charger)
        await accept_card_locally(csms)
        for online in (True, False):
            await charger.app.prepaid(CARD, balance="0.25")
            if not online:
                await go_offline(charger, csms)
            await charger.charge(card=CARD)
            await charger.wait_status("Finishing", timeout_s=20)
            record = await finished(charger)
            assert record["stop_reason"] == "CostLimitReached", (online, record)
            # 1 EUR/kWh: the budget is 250 Wh; a meter sample at this speed is < 50 Wh, and the EV's stop after
            # the PWM went off (~0.3 s of real time at 60x) is billed too: < 120 Wh here, ~6 Wh on a real charger.
            assert Decimal("0.25") <= Decimal(record["cost"]) <= Decimal("0.42"), (online, record)
            assert Decimal((await charger.app.prepaid(CARD))[0]["balance"]) == 0
            charger.sim().apply("unplug")
            await charger.wait_status("Available")
        csms.accepting = True
        stops = []
        for _ in range(200):
            stops = csms.calls("StopTransaction")
            if len(stops) == 2:
                break
            await asyncio.sleep(0.05)
        assert [s.payload["reason"] for s in stops if s.payload] == ["Other", "Other"]


async def test_cost_messages_are_rejected_when_the_feature_is_off(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms, ocpp={"cost_and_price": False})) as charger:
        await registered(charger)
        reply = await csms.cost_message(CP_ID, "SetUserPrice", {"idToken": CARD, "priceText": "free"})
        assert reply["status"] == "Rejected"
        reply = await csms.call(CP_ID, "GetConfiguration", {"key": ["CustomDisplayCostAndPrice"]})
        assert reply["configurationKey"][0] == {"key": "CustomDisplayCostAndPrice", "readonly": True,
                                                "value": "false"}


async def test_group_from_the_csms_picks_the_package_tariff_and_its_language(tmp_path: Path, csms: TestCsms) -> None:
    csms.set_handler("Authorize", lambda cp, p: {"idTagInfo": {"status": "Accepted", "parentIdTag": "ACME"}})
    config = ocpp_config(tmp_path, csms, pricing={
        "default_tariff": "adhoc",
        "tariffs": {"adhoc": {"energy": [{"price_per_kWh": "0.50"}]},
                    "fleet": {"energy": [{"price_per_kWh": "0.20"}], "description": {"de": "Flottentarif ACME"}}},
        "packages": [{"name": "acme", "tariff": "fleet", "groups": ["ACME"], "language": "de"}],
    })
    async with running_charger(config) as charger:
        await registered(charger)
        await charger.wait_for(lambda: shown(charger) == ("Energy 0.50 EUR/kWh", "No tax"), what="ad hoc price")
        await charger.charge(card=CARD)
        session = charger.status()["session"]
        assert (session["tariff_id"], session["package"]) == ("fleet", "acme")
        german = [m for _, m in charger.sim().display.history if m.kind is DisplayKind.price and m.language == "de"]
        assert german and german[-1].lines[0] == "Flottentarif ACME"
        assert any("0,20 EUR/kWh" in line for line in german[-1].lines), german[-1].lines


async def test_default_price_text_in_the_chargers_language(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        assert await change(csms, "DefaultPrice", json.dumps(DEFAULT_PRICE)) == "Accepted"
        text_de = {"priceText": "0,50 EUR/kWh", "priceTextOffline": "Offline: 0,50 EUR/kWh"}
        assert await change(csms, "DefaultPriceText,de", json.dumps(text_de)) == "Accepted"
        assert await change(csms, "DefaultPriceText,xx", json.dumps(text_de)) == "NotSupported"
        assert await change(csms, "Language", "xx") == "Rejected"
        assert await change(csms, "Language", "de") == "Accepted"
        await charger.wait_for(lambda: shown(charger) == ("0,50 EUR/kWh",), what="German price text")


async def test_trigger_meter_value_at_a_status_and_at_a_time(tmp_path: Path, csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 0})
    async with running_charger(config) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 1, what="transaction id")
        base = {"transactionId": 1, "timestamp": "2026-11-26T12:00:00Z", "meterValue": 0, "cost": 0.5}
        mark = len(csms.frames)
        reply = await csms.cost_message(CP_ID, "RunningCost", {**base, "triggerMeterValue": {
            "atCPStatus": ["SuspendedEV"]}})
        assert reply["status"] == "Accepted"
        await asyncio.sleep(0.3)
        assert not [f for f in csms.calls("MeterValues") if csms.frames.index(f) >= mark]
        charger.sim().apply("pause")  # the EV stops drawing: SuspendedEV
        await csms.wait_for_call("MeterValues", after=mark)

        at = datetime.now(UTC) + timedelta(seconds=0.5)
        mark = len(csms.frames)
        reply = await csms.cost_message(CP_ID, "RunningCost", {**base, "triggerMeterValue": {
            "atTime": at.isoformat().replace("+00:00", "Z")}})
        assert reply["status"] == "Accepted"
        frame = await csms.wait_for_call("MeterValues", after=mark)
        assert datetime.now(UTC) >= at - timedelta(seconds=0.05)
        assert frame.payload is not None and frame.payload["transactionId"] == 1
