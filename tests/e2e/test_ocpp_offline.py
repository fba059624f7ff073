"""Outages: nothing lost, nothing duplicated, dead links replaced (OCTT TC_036-TC_039, REFERENCE C.4)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from simulators.csms import TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import Charger, running_charger

CARD = "04A1B2C3"



async def go_offline(charger: Charger, csms: TestCsms) -> None:
    csms.accepting = False
    await csms.disconnect(CP_ID)
    await charger.wait_for(lambda: not charger.app.status()["csms_connected"], what="offline")


async def drained(charger: Charger) -> None:
    for _ in range(250):  # the reply to the last message may still be in processing
        if await charger.store.outbox_len() == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the outbox did not drain")


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def test_tc039_offline_transaction_is_delivered_in_order_after_the_outage(
    tmp_path: Path, csms: TestCsms
) -> None:
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 1})
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.call(CP_ID, "SendLocalList", {"listVersion": 1, "updateType": "Full", "localAuthorizationList": [
            {"idTag": CARD, "idTagInfo": {"status": "Accepted"}}]})
        await go_offline(charger, csms)
        await charger.charge(card=CARD)  # authorized from the local list while offline
        await asyncio.sleep(2.5)  # sampled meter values pile up in the outbox
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        await charger.app.flush_store()
        queued = await charger.store.outbox_len()
        assert queued >= 3  # start, >= 1 meter values, stop
        offline_end = datetime.now().astimezone()
        mark = len(csms.frames)
        csms.accepting = True
        stop = await csms.wait_for_call("StopTransaction", after=mark, timeout_s=15)
        tx = [f for f in csms.frames[mark:] if f.direction == "in" and f.action in
              ("StartTransaction", "MeterValues", "StopTransaction") and f.message_type == "CALL"]
        actions = [f.action for f in tx]
        assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction"
        assert set(actions[1:-1]) == {"MeterValues"}
        assert len(tx) == queued
        transaction_id = next(iter(csms.transaction_ids))
        assert stop.payload is not None and stop.payload["transactionId"] == transaction_id
        assert all(f.payload is not None and f.payload["transactionId"] == transaction_id for f in tx[1:])
        # Timestamps say when things happened, not when they were delivered.
        assert tx[0].payload is not None and parse(tx[0].payload["timestamp"]) < offline_end
        stamps = [parse(f.payload["meterValue"][0]["timestamp"]) for f in tx[1:-1] if f.payload is not None]
        assert stamps == sorted(stamps)
        await drained(charger)


async def test_tc037_offline_start_unknown_card_then_csms_says_invalid(tmp_path: Path, csms: TestCsms) -> None:
    csms.rejected_id_tags.add("STRANGER")
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "AllowOfflineTxForUnknownId", "value": "true"})
        await go_offline(charger, csms)
        await charger.charge(card="STRANGER")
        csms.accepting = True
        stop = await csms.wait_for_call("StopTransaction", timeout_s=15)
        assert stop.payload is not None and stop.payload["reason"] == "DeAuthorized"  # StopTransactionOnInvalidId


async def test_offline_unknown_card_is_refused_by_default(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await go_offline(charger, csms)
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        charger.sim().apply("tap", "STRANGER")
        await asyncio.sleep(0.3)
        assert charger.status()["session"] is None


async def test_tc007_tc061_cached_card_works_offline_until_the_cache_is_cleared(
    tmp_path: Path, csms: TestCsms
) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)  # Authorize.conf Accepted lands in the cache
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        await go_offline(charger, csms)
        await charger.charge(card=CARD)
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        csms.accepting = True
        await registered(charger)
        await charger.wait_for(lambda: len(csms.calls("StopTransaction")) == 2, timeout_s=10, what="offline stop")
        await drained(charger)
        assert (await csms.call(CP_ID, "ClearCache", {})) == {"status": "Accepted"}
        await go_offline(charger, csms)
        charger.sim().apply("plug")
        charger.sim().apply("tap", CARD)
        await asyncio.sleep(0.3)
        assert charger.status()["session"] is None


async def test_tc042_tc043_local_list_versions_and_persistence(tmp_path: Path, csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        await registered(charger)
        assert (await csms.call(CP_ID, "GetLocalListVersion", {})) == {"listVersion": 0}
        full = {"listVersion": 5, "updateType": "Full",
                "localAuthorizationList": [{"idTag": "A1", "idTagInfo": {"status": "Accepted"}},
                                           {"idTag": "B2", "idTagInfo": {"status": "Blocked"}}]}
        assert (await csms.call(CP_ID, "SendLocalList", full)) == {"status": "Accepted"}
        stale = {"listVersion": 5, "updateType": "Differential", "localAuthorizationList": [{"idTag": "C3"}]}
        assert (await csms.call(CP_ID, "SendLocalList", stale)) == {"status": "VersionMismatch"}
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"})
        assert (await csms.call(CP_ID, "GetLocalListVersion", {})) == {"listVersion": -1}
        assert (await csms.call(CP_ID, "SendLocalList", full)) == {"status": "NotSupported"}
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "true"})
    async with running_charger(config) as charger:
        await registered(charger)
        assert (await csms.call(CP_ID, "GetLocalListVersion", {})) == {"listVersion": 5}


async def test_tc069_a_card_with_the_same_parent_stops_the_transaction(tmp_path: Path, csms: TestCsms) -> None:
    def with_parent(_cp: str, payload: dict[str, object]) -> dict[str, object]:
        return {"idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET-7"}}

    csms.set_handler("Authorize", with_parent)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card="DRIVER-A")
        charger.sim().apply("tap", "DRIVER-B")
        stop = await csms.wait_for_call("StopTransaction")
        assert stop.payload is not None and stop.payload["reason"] == "Local"
        assert stop.payload["idTag"] == "DRIVER-B"  # the tag that stopped it, not the one that started it


async def test_a_half_open_link_is_detected_and_replaced(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        # Applies on the open link: the keep-alive timer is re-armed, no reconnect needed.
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "WebSocketPingInterval", "value": "1"})
        boots = len(csms.calls("BootNotification"))
        mark = len(csms.frames)
        await csms.freeze(CP_ID)
        started = asyncio.get_running_loop().time()
        await charger.wait_for(lambda: not charger.app.status()["csms_connected"], timeout_s=8, what="dead link")
        detected_s = asyncio.get_running_loop().time() - started
        assert detected_s < 1 + 1 + 2 + 1  # ping interval + pong timeout + close timeout + slack
        await csms.unfreeze(CP_ID)
        await csms.wait_for_call("Heartbeat", after=mark, timeout_s=8)  # a new link resumes the registration
        await registered(charger)
        assert len(csms.calls("BootNotification")) == boots  # a reconnect is no reboot


async def test_transaction_messages_survive_a_restart_while_offline(tmp_path: Path, csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 0})
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "AllowOfflineTxForUnknownId", "value": "true"})
        await go_offline(charger, csms)
        await charger.charge(card=CARD)
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
    csms.accepting = True
    async with running_charger(config) as charger:
        await registered(charger)
        stop = await csms.wait_for_call("StopTransaction", timeout_s=10)
        assert [f.action for f in csms.frames if f.direction == "in" and f.action in
                ("StartTransaction", "StopTransaction") and f.message_type == "CALL"] == \
            ["StartTransaction", "StopTransaction"]
        assert stop.payload is not None and stop.payload["reason"] == "EVDisconnected"


async def test_tc037_2_invalid_card_charges_up_to_max_energy_on_invalid_id(tmp_path: Path, csms: TestCsms) -> None:
    csms.rejected_id_tags.add("STRANGER")
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        for key, value in (("AllowOfflineTxForUnknownId", "true"), ("StopTransactionOnInvalidId", "false"),
                           ("MaxEnergyOnInvalidId", "300")):
            await csms.call(CP_ID, "ChangeConfiguration", {"key": key, "value": value})
        await go_offline(charger, csms)
        await charger.charge(card="STRANGER")
        csms.accepting = True
        await csms.wait_for_call("StartTransaction", timeout_s=15)
        # The transaction goes on (no StopTransaction) until MaxEnergyOnInvalidId, then the EVSE suspends it.
        await charger.wait_status("SuspendedEVSE", timeout_s=15)
        assert charger.status()["session"]["energy_Wh"] >= 300
        assert csms.calls("StopTransaction") == []
        # No energy any more: the PWM went first, the contactor follows once the EV has stopped drawing.
        await charger.wait_for(lambda: not charger.sim().contactor.commanded_closed(), what="contactor open")
