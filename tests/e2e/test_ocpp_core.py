"""Core profile behaviour over a real WebSocket against the test CSMS (OCTT case ids in the names)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simulators.csms import CallErrorReply, TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import running_charger

CARD = "04A1B2C3"



async def test_tc002_pending_boot_sends_nothing_else_until_accepted(tmp_path: Path, csms: TestCsms) -> None:
    csms.boot_status = "Pending"
    csms.heartbeat_interval_s = 1
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await csms.wait_for_call("BootNotification")
        second = await csms.wait_for_call("BootNotification", after=len(csms.frames), timeout_s=5)
        assert not charger.app.status()["csms_connected"]
        # While pending, the CSMS may still call us and get answers.
        reply = await csms.call(CP_ID, "GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert reply["configurationKey"][0]["key"] == "HeartbeatInterval"
        before = csms.frames.index(second)
        assert not [f for f in csms.frames[:before] if f.direction == "in" and f.message_type == "CALL"
                    and f.action not in ("BootNotification",)]
        csms.boot_status = "Accepted"
        await csms.wait_for_call("StatusNotification", timeout_s=5)
        await registered(charger)


async def test_tc003_plug_in_first_then_card_then_remote_stop(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 1)
        reply = await csms.call(CP_ID, "RemoteStopTransaction", {"transactionId": 1})
        assert reply == {"status": "Accepted"}
        stop = await csms.wait_for_call("StopTransaction")
        assert stop.payload is not None and stop.payload["reason"] == "Remote"
        assert (await csms.call(CP_ID, "RemoteStopTransaction", {"transactionId": 99})) == {"status": "Rejected"}


async def test_tc023_invalid_card_starts_nothing(tmp_path: Path, csms: TestCsms) -> None:
    csms.rejected_id_tags.add("BADCARD")
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        charger.sim().apply("tap", "BADCARD")
        await csms.wait_for_call("Authorize")
        await asyncio.sleep(0.3)
        assert charger.status()["session"] is None
        assert csms.calls("StartTransaction") == []


async def test_tc010_remote_start_with_cable_plugged_in(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        reply = await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 1, "idTag": CARD})
        assert reply == {"status": "Accepted"}
        await csms.wait_for_call("Authorize")  # AuthorizeRemoteTxRequests defaults to true
        start = await csms.wait_for_call("StartTransaction")
        assert start.payload is not None and start.payload["idTag"] == CARD


async def test_tc026_tc027_remote_start_rejections(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        assert (await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 0, "idTag": CARD}))["status"] == \
            "Rejected"
        charger.sim().apply("fault", "ground-fault")
        await charger.wait_status("Faulted")
        assert (await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 1, "idTag": CARD}))["status"] == \
            "Rejected"


async def test_remote_start_without_authorize_when_configured(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        reply = await csms.call(CP_ID, "ChangeConfiguration", {"key": "AuthorizeRemoteTxRequests", "value": "false"})
        assert reply == {"status": "Accepted"}
        charger.sim().apply("plug")
        await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 1, "idTag": CARD})
        await csms.wait_for_call("StartTransaction")
        assert csms.calls("Authorize") == []


async def test_tc019_tc021_tc040_configuration(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        everything = await csms.call(CP_ID, "GetConfiguration", {})
        keys = {k["key"]: k for k in everything["configurationKey"]}
        assert keys["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True, "value": "1"}
        assert "AuthorizationKey" not in keys  # write-only
        reply = await csms.call(CP_ID, "GetConfiguration", {"key": ["MeterValueSampleInterval", "NoSuchKey"]})
        assert reply["unknownKey"] == ["NoSuchKey"]
        assert (await csms.call(CP_ID, "ChangeConfiguration", {"key": "NoSuchKey", "value": "1"}))["status"] == \
            "NotSupported"
        assert (await csms.call(CP_ID, "ChangeConfiguration", {"key": "NumberOfConnectors", "value": "2"}))[
            "status"] == "Rejected"
        assert (await csms.call(CP_ID, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "-5"}))[
            "status"] == "Rejected"
        assert (await csms.call(CP_ID, "ChangeConfiguration",
                                {"key": "MeterValuesSampledData", "value": "Energy.Active.Import.Register,SoC"}))[
            "status"] == "Rejected"
        assert (await csms.call(CP_ID, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "17"}))[
            "status"] == "Accepted"
        assert await charger.store.get_kv("ocpp.key.MeterValueSampleInterval") == "17"


async def test_configuration_changes_survive_a_restart(tmp_path: Path, csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "ConnectionTimeOut", "value": "33"})
    async with running_charger(config) as charger:
        await registered(charger)
        reply = await csms.call(CP_ID, "GetConfiguration", {"key": ["ConnectionTimeOut"]})
        assert reply["configurationKey"][0]["value"] == "33"
        assert charger.app.connectors[1].core.settings.connection_timeout_s == 33


async def test_change_availability_is_scheduled_during_a_transaction_and_persists(
    tmp_path: Path, csms: TestCsms
) -> None:
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        reply = await csms.call(CP_ID, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
        assert reply == {"status": "Scheduled"}
        assert charger.status()["status"] == "Charging"
        charger.sim().apply("unplug")
        await charger.wait_status("Unavailable")
    async with running_charger(config) as charger:
        await charger.wait_status("Unavailable")
        await registered(charger)
        reply = await csms.call(CP_ID, "ChangeAvailability", {"connectorId": 0, "type": "Operative"})
        assert reply == {"status": "Accepted"}
        await charger.wait_status("Available")


async def test_tc017_tc018_tc030_unlock_connector(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        assert (await csms.call(CP_ID, "UnlockConnector", {"connectorId": 1})) == {"status": "Unlocked"}
        assert (await csms.call(CP_ID, "UnlockConnector", {"connectorId": 5})) == {"status": "NotSupported"}
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 1)
        assert (await csms.call(CP_ID, "UnlockConnector", {"connectorId": 1})) == {"status": "Unlocked"}
        stop = await csms.wait_for_call("StopTransaction")
        assert stop.payload is not None and stop.payload["reason"] == "UnlockCommand"
        assert not charger.sim().lock.is_locked()
        charger.sim().apply("fault", "lock-failure")
        assert (await csms.call(CP_ID, "UnlockConnector", {"connectorId": 1})) == {"status": "UnlockFailed"}
        charger.sim().apply("clear-fault")
        charger.sim().apply("fault", "fixed-cable")
        assert (await csms.call(CP_ID, "UnlockConnector", {"connectorId": 1})) == {"status": "NotSupported"}


async def test_tc054_trigger_message(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        mark = len(csms.frames)
        for message in ("Heartbeat", "StatusNotification", "MeterValues", "BootNotification",
                        "DiagnosticsStatusNotification", "FirmwareStatusNotification"):
            payload = {"requestedMessage": message, "connectorId": 1}
            assert (await csms.call(CP_ID, "TriggerMessage", payload)) == {"status": "Accepted"}
            await csms.wait_for_call(message, after=mark)
        # TC_055: an unknown connector is rejected
        assert (await csms.call(CP_ID, "TriggerMessage", {"requestedMessage": "Heartbeat", "connectorId": 9})) == \
            {"status": "Rejected"}


async def test_tc062_data_transfer_unknown_vendor(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        reply = await csms.call(CP_ID, "DataTransfer", {"vendorId": "com.example", "messageId": "x", "data": "1"})
        assert reply == {"status": "UnknownVendorId"}


async def test_start_transaction_refused_by_callerror_is_retried(tmp_path: Path, csms: TestCsms) -> None:
    calls = 0

    def flaky(_cp: str, payload: dict[str, object]) -> dict[str, object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise CallErrorReply("InternalError", "database busy")
        return {"transactionId": 42, "idTagInfo": {"status": "Accepted"}}

    csms.set_handler("StartTransaction", flaky)
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "TransactionMessageRetryInterval", "value": "1"})
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 42, timeout_s=5)
        assert len(csms.calls("StartTransaction")) == 2


@pytest.mark.parametrize("frame", [
    "not json at all",
    '{"an": "object"}',
    '[2, "id-1", "NoSuchAction", {}]',
    '[2, "id-2", "ChangeConfiguration", {"key": 5}]',
    '[2, "id-3", "Reset", {"type": "Lukewarm"}]',
    '[3, "no-such-call", {}]',
    '[2, "id-4"]',
    '[2, "id-5", "GetConfiguration", "not an object"]',
])
async def test_malformed_frames_get_a_callerror_and_the_link_lives_on(
    tmp_path: Path, csms: TestCsms, frame: str
) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        mark = len(csms.frames)
        await csms.send_raw(CP_ID, frame)
        await asyncio.sleep(0.2)
        replies = [f for f in csms.frames[mark:] if f.direction == "in" and f.message_type != "CALL"]
        if frame.startswith("[2,"):
            assert replies and replies[0].message_type == "CALLERROR", replies
            assert replies[0].unique_id == frame.split('"')[1]
        assert charger.app.status()["csms_connected"]
        reply = await csms.call(CP_ID, "GetConfiguration", {"key": ["NumberOfConnectors"]})
        assert reply["configurationKey"][0]["value"] == "1"
        assert not charger.sim().contactor.commanded_closed()


def in_s(seconds: float) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def test_tc046_reservation_then_local_start_with_the_reserved_card(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        reply = await csms.call(CP_ID, "ReserveNow", {"connectorId": 1, "expiryDate": in_s(60), "idTag": CARD,
                                                      "reservationId": 7})
        assert reply == {"status": "Accepted"}
        await charger.wait_status("Reserved")
        charger.sim().apply("plug")
        charger.sim().apply("tap", "SOMEONE-ELSE")
        await asyncio.sleep(0.3)
        assert charger.status()["session"] is None and charger.status()["status"] == "Reserved"
        charger.sim().apply("tap", CARD)
        start = await csms.wait_for_call("StartTransaction")
        assert start.payload is not None and start.payload["reservationId"] == 7
        assert await charger.store.reservations() == []


async def test_tc047_reservation_expires(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ReserveNow", {"connectorId": 1, "expiryDate": in_s(1), "idTag": CARD,
                                              "reservationId": 8})
        await charger.wait_status("Reserved")
        await charger.wait_status("Available", timeout_s=4)
        await csms.wait_for_call("StatusNotification", lambda p: p["status"] == "Reserved")


async def test_tc048_tc051_tc052_reservation_refusals_and_cancel(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        base = {"expiryDate": in_s(60), "idTag": CARD}
        assert (await csms.call(CP_ID, "CancelReservation", {"reservationId": 99})) == {"status": "Rejected"}
        assert (await csms.call(CP_ID, "ReserveNow", {**base, "connectorId": 4, "reservationId": 1}))["status"] == \
            "Rejected"
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        assert (await csms.call(CP_ID, "ReserveNow", {**base, "connectorId": 1, "reservationId": 1}))["status"] == \
            "Occupied"
        assert (await csms.call(CP_ID, "ReserveNow", {**base, "connectorId": 0, "reservationId": 1}))["status"] == \
            "Occupied"
        charger.sim().apply("unplug")
        charger.sim().apply("fault", "ground-fault")
        await charger.wait_status("Faulted")
        assert (await csms.call(CP_ID, "ReserveNow", {**base, "connectorId": 1, "reservationId": 1}))["status"] == \
            "Faulted"
        charger.sim().apply("clear-fault")
        await charger.wait_status("Available")
        await csms.call(CP_ID, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
        await charger.wait_status("Unavailable")
        assert (await csms.call(CP_ID, "ReserveNow", {**base, "connectorId": 1, "reservationId": 1}))["status"] == \
            "Unavailable"
        await csms.call(CP_ID, "ChangeAvailability", {"connectorId": 1, "type": "Operative"})
        await charger.wait_status("Available")
        assert (await csms.call(CP_ID, "ReserveNow", {**base, "connectorId": 0, "reservationId": 2}))["status"] == \
            "Accepted"
        await charger.wait_status("Reserved")
        assert (await csms.call(CP_ID, "CancelReservation", {"reservationId": 2})) == {"status": "Accepted"}
        await charger.wait_status("Available")


async def test_tc053_reserved_connector_takes_a_card_with_the_same_parent(tmp_path: Path, csms: TestCsms) -> None:
    def with_parent(_cp: str, payload: dict[str, object]) -> dict[str, object]:
        return {"idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET-7"}}

    csms.set_handler("Authorize", with_parent)
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ReserveNow", {"connectorId": 1, "expiryDate": in_s(60), "idTag": "DRIVER-A",
                                              "parentIdTag": "FLEET-7", "reservationId": 3})
        await charger.wait_status("Reserved")
    async with running_charger(config) as charger:  # the reservation survives a restart
        await registered(charger)
        await charger.wait_status("Reserved")
        charger.sim().apply("plug")
        charger.sim().apply("tap", "DRIVER-B")
        start = await csms.wait_for_call("StartTransaction")
        assert start.payload is not None and start.payload["idTag"] == "DRIVER-B"
        assert start.payload["reservationId"] == 3


async def test_minimum_status_duration_suppresses_short_lived_statuses(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "MinimumStatusDuration", "value": "1"})
        mark = len(csms.frames)
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        await asyncio.sleep(1.5)
        sent = [f.payload["status"] for f in csms.frames[mark:]
                if f.direction == "in" and f.action == "StatusNotification" and f.payload is not None]
        assert "Preparing" not in sent
        charger.sim().apply("plug")
        await csms.wait_for_call("StatusNotification", lambda p: p["status"] == "Preparing", after=mark,
                                 timeout_s=3)


async def test_tc005_1_ev_side_disconnect_stops_and_unlocks(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        charger.sim().apply("unplug")
        stop = await csms.wait_for_call("StopTransaction")
        assert stop.payload is not None and stop.payload["reason"] == "EVDisconnected"
        await charger.wait_for(lambda: not charger.sim().lock.is_locked(), what="unlocked")


async def test_tc005_2_stop_but_keep_the_cable_locked_until_the_card_returns(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "UnlockConnectorOnEVSideDisconnect", "value": "false"})
        await charger.charge(card=CARD)
        charger.sim().apply("unplug")
        await csms.wait_for_call("StopTransaction")
        await asyncio.sleep(0.3)
        assert charger.sim().lock.is_locked()
        charger.sim().apply("tap", "SOMEONE-ELSE")
        await asyncio.sleep(0.3)
        assert charger.sim().lock.is_locked()
        charger.sim().apply("tap", CARD)
        await charger.wait_for(lambda: not charger.sim().lock.is_locked(), what="released by its owner")


async def test_tc005_3_ev_side_disconnect_suspends_when_configured(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "StopTransactionOnEVSideDisconnect", "value": "false"})
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "UnlockConnectorOnEVSideDisconnect", "value": "false"})
        await charger.charge(card=CARD)
        charger.sim().apply("unplug")
        await charger.wait_status("SuspendedEV")
        assert not charger.sim().contactor.commanded_closed()
        assert csms.calls("StopTransaction") == []
        charger.sim().apply("plug")
        charger.sim().apply("charge")
        await charger.wait_status("Charging")
        charger.sim().apply("tap", CARD)
        stop = await csms.wait_for_call("StopTransaction")
        assert stop.payload is not None and stop.payload["reason"] == "Local"


async def test_stop_transaction_carries_stop_txn_sampled_and_aligned_data(tmp_path: Path, csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 1})
    async with running_charger(config) as charger:
        await registered(charger)
        for key, value in (("StopTxnSampledData", "Energy.Active.Import.Register,Power.Active.Import"),
                           ("StopTxnAlignedData", "Energy.Active.Import.Register"),
                           ("ClockAlignedDataInterval", "1")):
            assert (await csms.call(CP_ID, "ChangeConfiguration", {"key": key, "value": value}))["status"] == \
                "Accepted"
        await charger.charge(card=CARD)
        await asyncio.sleep(2.5)
        charger.sim().apply("unplug")
        stop = await csms.wait_for_call("StopTransaction")
        assert stop.payload is not None
        data = stop.payload["transactionData"]
        contexts = [v["context"] for m in data for v in m["sampledValue"]]
        assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
        assert "Sample.Periodic" in contexts and "Sample.Clock" in contexts
        periodic = [v["measurand"] for m in data for v in m["sampledValue"] if v["context"] == "Sample.Periodic"]
        assert "Power.Active.Import" in periodic
        assert data[-1]["sampledValue"][0]["value"] == str(stop.payload["meterStop"])


async def test_tc004_1_identification_first_then_plug_in(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        charger.sim().apply("tap", CARD)
        await charger.wait_status("Preparing")
        await csms.wait_for_call("Authorize")
        assert csms.calls("StartTransaction") == []
        charger.sim().apply("plug")
        start = await csms.wait_for_call("StartTransaction")
        assert start.payload is not None and start.payload["idTag"] == CARD
        charger.sim().apply("charge")
        await charger.wait_status("Charging")


async def test_tc004_2_identification_first_then_connection_timeout(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "ConnectionTimeOut", "value": "1"})
        charger.sim().apply("tap", CARD)
        await charger.wait_status("Preparing")
        await charger.wait_status("Available", timeout_s=4)
        charger.sim().apply("plug")
        await asyncio.sleep(0.3)
        assert csms.calls("StartTransaction") == []


async def test_tc011_remote_start_first_then_plug_in_or_time_out(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "ConnectionTimeOut", "value": "1"})
        assert (await csms.call(CP_ID, "RemoteStartTransaction", {"idTag": CARD})) == {"status": "Accepted"}
        await charger.wait_status("Preparing")
        await charger.wait_status("Available", timeout_s=4)  # TC_011_2: nobody plugged in
        assert (await csms.call(CP_ID, "RemoteStartTransaction", {"idTag": CARD})) == {"status": "Accepted"}
        await charger.wait_status("Preparing")
        charger.sim().apply("plug")  # TC_011_1
        start = await csms.wait_for_call("StartTransaction")
        assert start.payload is not None and start.payload["connectorId"] == 1


async def test_tc068_the_same_card_stops_the_transaction(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        charger.sim().apply("tap", CARD)
        stop = await csms.wait_for_call("StopTransaction")
        assert stop.payload is not None and stop.payload["reason"] == "Local" and stop.payload["idTag"] == CARD
        await charger.wait_status("Finishing")


async def test_tc046_2_remote_start_on_a_reserved_connector(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ReserveNow", {"connectorId": 1, "expiryDate": in_s(60), "idTag": CARD,
                                              "reservationId": 11})
        await charger.wait_status("Reserved")
        charger.sim().apply("plug")
        assert (await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 1, "idTag": CARD})) == \
            {"status": "Accepted"}
        start = await csms.wait_for_call("StartTransaction")
        assert start.payload is not None and start.payload["reservationId"] == 11
