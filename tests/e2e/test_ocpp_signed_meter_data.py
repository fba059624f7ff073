"""Signed meter data end to end: a session on the simulated Iskra WM3M4C (a real Modbus server that signs with its
own key), through the real app and OCPP adapter to the test CSMS; the OCMF dataset is checked with an independent
verifier (pyocmf) against the key the charger reports, and a tampered copy fails."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pyocmf import OCMF

from simulators.csms import TestCsms
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import Charger, running_charger

CARD = "04A1B2C3"


def signed_values(stop_payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [value for reading in stop_payload.get("transactionData", []) for value in reading["sampledValue"]
            if value.get("format") == "SignedData"]


async def one_session(charger: Charger) -> None:
    await registered(charger)
    await charger.charge(card=CARD)
    await asyncio.sleep(1.0)  # a few Wh at 60x simulated time
    charger.sim().apply("tap", CARD)  # the driver stops it
    await charger.wait_status("Finishing")


async def test_the_stop_transaction_carries_the_meters_signed_dataset_which_verifies(tmp_path: Path,
                                                                                    csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms, simulator={"meter_model": "iskra_wm3m4c"},
                         identity={"evse_id": "DE*CPX*E0001*1", "serial_number": "CP-SN-7"})
    async with running_charger(config) as charger:
        await one_session(charger)
        stop = await csms.wait_for_call("StopTransaction")
        await charger.app.flush_store()
        session = (await charger.app.recent_sessions(1))[0]
    assert stop.payload is not None
    values = signed_values(stop.payload)
    assert len(values) == 1
    value = values[0]
    assert (value["context"], value["measurand"]) == ("Transaction.End", "Energy.Active.Import.Register")
    ocmf = value["value"]
    assert ocmf == session["signed_meter_data"]  # passed on unaltered, and kept with the session
    key = session["meter_public_key"]
    assert key.startswith("3059301306072A8648CE3D020106082A8648CE3D03010703420004")
    parsed = OCMF.from_string(ocmf)
    assert parsed.verify_signature(key)
    payload = parsed.payload
    assert (payload.ID, payload.CI, payload.GS) == (CARD, "DE*CPX*E0001*1", "CP-SN-7")
    begin, end = payload.RD[0], payload.RD[-1]
    assert (begin.TX, end.TX) == ("B", "E") and begin.RV is not None and end.RV is not None
    # The meter signed the energy the session billed (its readings in kWh, the session's in Wh).
    assert round((float(end.RV) - float(begin.RV)) * 1000) == session["energy_Wh"]
    head, tail = ocmf.rsplit('"RV":', 1)  # the end reading: one digit changed
    tampered = head + '"RV":' + ("1" if tail[0] != "1" else "2") + tail[1:]
    assert not OCMF.from_string(tampered).verify_signature(key)


async def test_a_meter_that_does_not_sign_leaves_no_signed_data(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await one_session(charger)
        stop = await csms.wait_for_call("StopTransaction")
        await charger.app.flush_store()
        session = (await charger.app.recent_sessions(1))[0]
    assert stop.payload is not None and signed_values(stop.payload) == []
    assert session["signed_meter_data"] is None and session["meter_public_key"] is None
