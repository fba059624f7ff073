"""Faults visible remotely: a Faulted or Unavailable connector's StatusNotification carries our own code
(``vendorErrorCode``) and a short text (``info``, CiString50); an Available one carries neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chargepoint.core.commands import ConnectorStatus, Fault
from chargepoint.ocpp.v16.status import CAUSE_TEXT_MAX, CAUSE_TEXTS, cause_fields
from simulators.csms import Frame, TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import running_charger

CARD = "04A1B2C3"


def is_status(status: str, connector_id: int = 1) -> Any:
    return lambda p: p["connectorId"] == connector_id and p["status"] == status


def payload(frame: Frame) -> dict[str, Any]:
    assert frame.payload is not None
    return frame.payload


async def test_a_ground_fault_is_reported_with_its_code_and_a_text_and_available_with_neither(
        tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        available = payload(await csms.wait_for_call("StatusNotification", is_status("Available")))
        assert "vendorErrorCode" not in available and "info" not in available
        mark = len(csms.frames)
        charger.sim().apply("fault", "ground-fault")
        faulted = payload(await csms.wait_for_call("StatusNotification", is_status("Faulted"), after=mark))
        assert (faulted["errorCode"], faulted["vendorErrorCode"], faulted["info"]) == (
            "GroundFailure", "GroundFailure", "RCD tripped (residual current)")
        mark = len(csms.frames)
        charger.sim().apply("clear-fault")
        back = payload(await csms.wait_for_call("StatusNotification", is_status("Available"), after=mark,
                                                timeout_s=15))
        assert back["errorCode"] == "NoError" and "vendorErrorCode" not in back and "info" not in back


async def test_a_welded_contactor_says_so_and_that_it_is_latched_also_when_sent_again(
        tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        mark = len(csms.frames)
        charger.sim().apply("fault", "weld")
        charger.sim().apply("pause")  # the core opens the contactor; the contacts stay stuck
        faulted = payload(await csms.wait_for_call("StatusNotification", is_status("Faulted"), after=mark))
        assert (faulted["errorCode"], faulted["vendorErrorCode"]) == ("PowerSwitchFailure", "ContactorWelded")
        assert faulted["info"].startswith("Contactor welded (latched)") and len(faulted["info"]) <= 50
        # Asked for again (TriggerMessage), and after a reconnect: the same code and text.
        mark = len(csms.frames)
        assert await csms.call(CP_ID, "TriggerMessage", {"requestedMessage": "StatusNotification",
                                                         "connectorId": 1}) == {"status": "Accepted"}
        again = payload(await csms.wait_for_call("StatusNotification", is_status("Faulted"), after=mark))
        assert (again["vendorErrorCode"], again["info"]) == (faulted["vendorErrorCode"], faulted["info"])
        mark = len(csms.frames)
        await csms.disconnect(CP_ID)
        resent = payload(await csms.wait_for_call("StatusNotification", is_status("Faulted"), after=mark,
                                                  timeout_s=15))
        assert (resent["vendorErrorCode"], resent["info"]) == (faulted["vendorErrorCode"], faulted["info"])


async def test_a_connector_unavailable_for_lost_mains_says_why(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        mark = len(csms.frames)
        charger.sim().apply("fault", "power-loss")
        lost = payload(await csms.wait_for_call("StatusNotification", is_status("Unavailable"), after=mark))
        assert (lost["errorCode"], lost["vendorErrorCode"], lost["info"]) == ("NoError", "MainsLost",
                                                                             "Mains power lost")
        zero = payload(await csms.wait_for_call("StatusNotification", is_status("Unavailable", 0), after=mark))
        assert "vendorErrorCode" not in zero  # the charge point as a whole: only the connector says why


async def test_a_connector_set_inoperative_says_so(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        mark = len(csms.frames)
        assert await csms.call(CP_ID, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}) == {
            "status": "Accepted"}
        off = payload(await csms.wait_for_call("StatusNotification", is_status("Unavailable"), after=mark))
        assert (off["errorCode"], off["vendorErrorCode"], off["info"]) == ("NoError", "Inoperative",
                                                                           "Set inoperative")


def test_every_text_fits_ci_string_50_with_its_suffixes() -> None:
    assert all(len(text) <= CAUSE_TEXT_MAX for text in CAUSE_TEXTS.values())
    assert set(CAUSE_TEXTS) >= {str(f) for f in Fault}
    longest = cause_fields(ConnectorStatus.Faulted, ("ContactorWelded", *(str(f) for f in Fault)))
    assert longest == {"vendorErrorCode": "ContactorWelded", "info": f"Contactor welded (latched) +{len(Fault)} more"}
    assert all(len(v) <= 50 for v in longest.values())
    assert cause_fields(ConnectorStatus.Faulted, ("SomethingNew" * 5,)) == {
        "vendorErrorCode": ("SomethingNew" * 5)[:50], "info": ("SomethingNew" * 5)[:CAUSE_TEXT_MAX]}
    assert cause_fields(ConnectorStatus.Available, ("GroundFailure",)) == {}
    assert cause_fields(ConnectorStatus.Faulted, ()) == {}
