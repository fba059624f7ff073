"""A charging session reaches the CSMS: boot, status, authorize, start, meter values, stop."""

from __future__ import annotations

from pathlib import Path

from simulators.csms import TestCsms
from tests.e2e.ocpp_harness import ocpp_config
from tests.integration.harness import running_charger

CARD = "04A1B2C3"


async def test_boot_then_statuses_then_a_full_transaction(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        boot = await csms.wait_for_call("BootNotification")
        assert boot.payload is not None and boot.payload["chargePointVendor"] == "chargepoint"
        await csms.wait_for_call("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Available")
        await charger.wait_for(lambda: charger.app.status()["csms_connected"], what="csms_connected")
        await charger.charge(card=CARD)
        authorize = await csms.wait_for_call("Authorize")
        assert authorize.payload == {"idTag": CARD}
        start = await csms.wait_for_call("StartTransaction")
        assert start.payload is not None and start.payload["idTag"] == CARD and start.payload["connectorId"] == 1
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 1, what="transaction id")
        charger.sim().apply("unplug")
        stop = await csms.wait_for_call("StopTransaction")
        assert stop.payload is not None
        assert stop.payload["transactionId"] == 1
        assert stop.payload["reason"] == "EVDisconnected"
        assert stop.payload["meterStop"] >= start.payload["meterStart"]
        await csms.wait_for_call("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Charging")
        await csms.wait_for_call("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Available",
                                 after=len(csms.frames) - 5)
