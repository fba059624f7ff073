"""Wire behaviour fixed for issue 12 (reservations against remote starts, transaction profiles ending with their
transaction, offered current never above the limit), each seen on the wire against the test CSMS."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators.csms import DropCall, TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.e2e.test_ocpp_smart_charging import profile
from tests.integration.harness import running_charger


def in_s(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def test_remote_start_for_another_tag_on_a_reserved_connector_is_rejected(tmp_path: Path,
                                                                                csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ReserveNow", {"connectorId": 1, "expiryDate": in_s(60), "idTag": "DRIVER-A",
                                              "reservationId": 4})
        await charger.wait_status("Reserved")
        reply = await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 1, "idTag": "STRANGER"})
        assert reply == {"status": "Rejected"}
        await asyncio.sleep(0.3)
        assert charger.status()["status"] == "Reserved"
        reply = await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 1, "idTag": "DRIVER-A"})
        assert reply == {"status": "Accepted"}


async def test_a_group_reservation_takes_remote_starts_of_its_group_only(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        entries = [
            {"idTag": "DRIVER-B", "idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET-7"}},
            {"idTag": "DRIVER-C", "idTagInfo": {"status": "Accepted", "parentIdTag": "OTHER-9"}},
        ]
        assert (await csms.call(CP_ID, "SendLocalList", {"listVersion": 1, "updateType": "Full",
                                                         "localAuthorizationList": entries}))["status"] == "Accepted"
        await csms.call(CP_ID, "ReserveNow", {"connectorId": 1, "expiryDate": in_s(60), "idTag": "DRIVER-A",
                                              "parentIdTag": "FLEET-7", "reservationId": 5})
        await charger.wait_status("Reserved")
        assert await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 1, "idTag": "DRIVER-C"}) == \
            {"status": "Rejected"}  # another group
        assert await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 1, "idTag": "UNKNOWN"}) == \
            {"status": "Rejected"}  # group not known here
        assert await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 1, "idTag": "DRIVER-B"}) == \
            {"status": "Accepted"}


async def test_a_card_of_another_group_cannot_take_a_group_reservation(tmp_path: Path, csms: TestCsms) -> None:
    csms.set_handler("Authorize", lambda _cp, p: {"idTagInfo": {"status": "Accepted", "parentIdTag": "OTHER-9"}})
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ReserveNow", {"connectorId": 1, "expiryDate": in_s(60), "idTag": "DRIVER-A",
                                              "parentIdTag": "FLEET-7", "reservationId": 6})
        await charger.wait_status("Reserved")
        charger.sim().apply("plug")
        charger.sim().apply("tap", "DRIVER-C")
        await csms.wait_for_call("Authorize")
        await asyncio.sleep(0.5)
        assert csms.calls("StartTransaction") == []
        assert charger.status()["session"] is None


async def test_a_remote_start_profile_ends_with_its_transaction(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        charger.sim().apply("plug")
        reply = await csms.call(CP_ID, "RemoteStartTransaction", {
            "connectorId": 1, "idTag": "04A1B2C3", "chargingProfile": profile(7, "TxProfile", 12)})
        assert reply == {"status": "Accepted"}
        charger.sim().apply("charge")
        await charger.wait_for(lambda: abs(charger.status()["offered_current_A"] - 12) < 0.2, what="12 A offer")
        # The offer never means more than the limit (12 A is 20.0 %; a 10 A limit would be 16.6 %, 9.96 A).
        assert charger.status()["offered_current_A"] <= 12.0
        charger.sim().apply("tap", "04A1B2C3")
        await csms.wait_for_call("StopTransaction")
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        # The next session is not capped by the last one's TxProfile.
        charger.sim().apply("plug")
        charger.sim().apply("tap", "04A1B2C3")
        charger.sim().apply("charge")
        await charger.wait_status("Charging", timeout_s=10)
        await charger.wait_for(lambda: charger.status()["offered_current_A"] > 30, timeout_s=5, what="no cap")
        schedule = await csms.call(CP_ID, "GetCompositeSchedule", {"connectorId": 1, "duration": 60,
                                                                    "chargingRateUnit": "A"})
        periods = schedule.get("chargingSchedule", {}).get("chargingSchedulePeriod", [])
        assert all(period["limit"] > 12 for period in periods), schedule


async def test_offered_current_never_exceeds_a_smart_charging_limit(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card="04A1B2C3")
        for limit_A, offered_A in ((10, 9.96), (7, 6.96)):
            await csms.call(CP_ID, "SetChargingProfile", {
                "connectorId": 1, "csChargingProfiles": profile(8, "TxDefaultProfile", limit_A, kind="Absolute")})
            await charger.wait_for(lambda o=offered_A: abs(charger.status()["offered_current_A"] - o) < 0.001,
                                   timeout_s=8, what=f"{offered_A} A")
            assert charger.sim().offered_A() <= limit_A


async def test_a_remote_start_that_never_began_does_not_cap_a_later_session(tmp_path: Path, csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms, charger={"connection_timeout_s": 0.5})
    async with running_charger(config) as charger:
        await registered(charger)
        reply = await csms.call(CP_ID, "RemoteStartTransaction", {
            "connectorId": 1, "idTag": "REMOTE-1", "chargingProfile": profile(9, "TxProfile", 8)})
        assert reply == {"status": "Accepted"}
        await charger.wait_status("Preparing")  # authorized, waiting for a plug ...
        await charger.wait_status("Available", timeout_s=10)  # ... that never comes: the remote start times out
        assert csms.calls("StartTransaction") == []
        await charger.charge(card="04A1B2C3")  # a later session, another driver
        await csms.wait_for_call("StartTransaction")
        await asyncio.sleep(0.5)
        assert charger.status()["offered_current_A"] > 30  # not capped at 8 A by the stale remote-start profile


async def test_soft_reset_sends_the_stop_transaction_before_the_new_boot_notification(tmp_path: Path,
                                                                                    csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        await registered(charger)
        await charger.charge(card="04A1B2C3")
        await csms.wait_for_call("StartTransaction")
        assert await csms.call(CP_ID, "Reset", {"type": "Soft"}) == {"status": "Accepted"}
        await charger.wait_for(lambda: charger.app.reexec_requested, what="reset requested")
    async with running_charger(config) as charger:  # in place of the re-exec: the charger starts again
        await registered(charger)
    sent = [f.action for f in csms.frames if f.direction == "in" and f.action in ("StopTransaction",
                                                                                  "BootNotification")]
    assert sent == ["BootNotification", "StopTransaction", "BootNotification"], sent
    stop = csms.calls("StopTransaction")[0]
    assert stop.payload is not None and stop.payload["reason"] == "SoftReset"


async def test_a_flood_of_replies_to_calls_never_made_is_dropped_while_a_call_waits(tmp_path: Path,
                                                                                   csms: TestCsms) -> None:
    """Issue 13.1: a thousand stray CALLRESULTs while a transaction's MeterValues waits for its answer must not
    exhaust the stack (the library matched replies recursively) and end the session."""
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 1})
    async with running_charger(config) as charger:
        await registered(charger)
        await charger.charge(card="04A1B2C3")
        dropped: list[str] = []

        def drop_once(_cp: str, payload: dict[str, object]) -> dict[str, object]:
            if not dropped:
                dropped.append("MeterValues")
                raise DropCall  # the transaction's MeterValues waits for an answer that never comes
            return {}

        csms.set_handler("MeterValues", drop_once)
        await charger.wait_for(lambda: bool(dropped), what="a MeterValues left waiting")
        for i in range(3000):
            await csms.send_raw(CP_ID, f'[3,"bogus-{i}",{{}}]')
        await asyncio.sleep(0.5)
        assert charger.status()["status"] == "Charging"  # the daemon and its session live on
        assert csms.calls("StopTransaction") == []


async def test_binary_frames_are_refused_and_errors_use_only_ocpp16_codes(tmp_path: Path, csms: TestCsms) -> None:
    """Issue 13.5 and 13.6."""
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        mark = len(csms.frames)
        session = csms._session(CP_ID)
        await session.ws.send(b'[2,"bin-1","GetConfiguration",{}]')  # a binary frame: never processed as a CALL
        await asyncio.sleep(0.3)
        replies = [f for f in csms.frames[mark:] if f.direction == "in" and f.unique_id == "bin-1"]
        assert [f.message_type for f in replies] == ["CALLERROR"]
        assert replies[0].payload is None or "configurationKey" not in str(replies[0].raw)
        mark = len(csms.frames)
        await csms.send_raw(CP_ID, '[2,"v-1","ChangeAvailability",{"connectorId":"one","type":"Operative"}]')
        await asyncio.sleep(0.3)
        errors = [f.raw for f in csms.frames[mark:] if f.direction == "in" and f.message_type == "CALLERROR"]
        assert errors and all('"FormatViolation"' not in raw for raw in errors), errors
        assert any(code in errors[0] for code in ("FormationViolation", "TypeConstraintViolation")), errors
        assert charger.app.status()["csms_connected"]


async def test_frames_are_logged_at_debug_truncated_and_a_call_is_one_info_line(
    tmp_path: Path, csms: TestCsms, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13.7: a hostile CSMS must not fill the disk through the log."""
    caplog.set_level(logging.DEBUG)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        caplog.clear()
        huge = "X" * 50_000
        for i in range(20):
            await csms.send_raw(CP_ID, f'[2,"big-{i}","DataTransfer",{{"vendorId":"{huge}"}}]')
        await asyncio.sleep(0.5)
        info = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith(("ocpp", "chargepoint"))]
        assert all(len(r.getMessage()) < 1000 for r in caplog.records), max(len(r.getMessage()) for r in caplog.records)
        calls = [r for r in info if "CSMS calls" in r.getMessage()]
        assert len(calls) == 20
        assert len(info) <= 2 * 20  # a summary per CALL, and a warning at most for its refusal
        assert any(r.levelno == logging.DEBUG and "big-0" in r.getMessage() for r in caplog.records)


def _profile_with_limit(unique_id: str, limit: str) -> str:
    return (f'[2,"{unique_id}","SetChargingProfile",{{"connectorId":1,"csChargingProfiles":{{"chargingProfileId":1,'
            '"stackLevel":0,"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute",'
            '"chargingSchedule":{"chargingRateUnit":"A","startSchedule":"2020-01-01T00:00:00Z",'
            f'"chargingSchedulePeriod":[{{"startPeriod":0,"limit":{limit}}}]}}}}}}]')


async def test_out_of_range_values_are_refused_by_name_not_with_internal_error(tmp_path: Path,
                                                                               csms: TestCsms) -> None:
    """Issue 13.4."""
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        frames = {
            "p-huge": _profile_with_limit("p-huge", "1e308"),
            "p-nan": _profile_with_limit("p-nan", "NaN"),
            "p-inf": _profile_with_limit("p-inf", "Infinity"),
            "g-neg": '[2,"g-neg","GetCompositeSchedule",{"connectorId":1,"duration":-5}]',
            "t-neg": '[2,"t-neg","TriggerMessage",{"requestedMessage":"StatusNotification","connectorId":-1}]',
            "t-big": '[2,"t-big","TriggerMessage",{"requestedMessage":"StatusNotification",'
                     '"connectorId":1180591620717411303424}]',
        }
        mark = len(csms.frames)
        for text in frames.values():
            await csms.send_raw(CP_ID, text)
        await asyncio.sleep(0.5)
        answers = {f.unique_id: f.raw for f in csms.frames[mark:] if f.direction == "in" and f.unique_id in frames}
        assert set(answers) == set(frames), answers
        for raw in answers.values():
            assert "InternalError" not in raw, raw
            assert raw.startswith("[4,") or '"Rejected"' in raw, raw
        assert "PropertyConstraintViolation" in answers["p-huge"]
        assert "FormationViolation" in answers["p-nan"] and "FormationViolation" in answers["p-inf"]
        assert charger.app.status()["csms_connected"]
