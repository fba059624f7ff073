"""The test CSMS's California Pricing side (simulators/csms.py) against a bare websockets charge point.

``cost_message`` must put its data on the wire as a JSON *string* (OCPP 1.6 DataTransfer.data) with exact
decimals, and the pricing mode must follow MeterValues with RunningCost and StopTransaction with FinalCost,
after answering the charge point's CALL and without waiting for the charge point to answer its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from simulators.csms import OCPP16_SUBPROTOCOL, CsmsPricing, TestCsms, json_with_decimals

D = Decimal
PRICING = CsmsPricing(kwh_price=D("0.30"), hour_price=D("1.00"), flat_fee=D("0.50"), currency="EUR")
START = {"connectorId": 1, "idTag": "ABC123", "meterStart": 1000, "timestamp": "2025-01-01T10:00:00Z"}


@pytest.fixture
async def csms() -> AsyncIterator[TestCsms]:
    async with TestCsms() as server:
        yield server


@asynccontextmanager
async def charge_point(server: TestCsms, cp_id: str = "CP1") -> AsyncIterator[ClientConnection]:
    async with websockets.connect(
        server.url + "/" + cp_id, subprotocols=[OCPP16_SUBPROTOCOL], open_timeout=2, close_timeout=0.5
    ) as ws:
        await server.wait_connected(cp_id, timeout_s=2)
        yield ws


async def receive(ws: ClientConnection, timeout_s: float = 2) -> list[Any]:
    async with asyncio.timeout(timeout_s):
        message = json.loads(await ws.recv(), parse_float=Decimal)
    assert isinstance(message, list)
    return message


async def nothing_more(ws: ClientConnection, wait_s: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await receive(ws, wait_s)


async def request(ws: ClientConnection, unique_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a CALL; its CALLRESULT must be the next frame (follow-ups come only after it)."""
    await ws.send(json.dumps([2, unique_id, action, payload]))
    reply = await receive(ws)
    assert reply[:2] == [3, unique_id], reply
    assert isinstance(reply[2], dict)
    return reply[2]


async def cost_call(ws: ClientConnection, message_id: str) -> tuple[str, dict[str, Any]]:
    """The next frame must be a costmsg DataTransfer CALL; returns (unique id, parsed data)."""
    call = await receive(ws)
    assert call[0] == 2 and call[2] == "DataTransfer", call
    payload = call[3]
    assert payload["vendorId"] == "org.openchargealliance.costmsg"
    assert payload["messageId"] == message_id
    assert isinstance(payload["data"], str)
    data = json.loads(payload["data"], parse_float=Decimal)
    assert isinstance(data, dict)
    return call[1], data


def meter_values(transaction_id: int | None, energy: str, at: str, unit: str = "Wh") -> dict[str, Any]:
    payload: dict[str, Any] = {
        "connectorId": 1,
        "meterValue": [{"timestamp": at, "sampledValue": [
            {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": energy, "measurand": "Energy.Active.Import.Register", "unit": unit},
        ]}],
    }
    if transaction_id is not None:
        payload["transactionId"] = transaction_id
    return payload


def test_json_with_decimals_keeps_the_text_of_each_number() -> None:
    text = json_with_decimals({"cost": D("12.30"), "n": [D("0.1"), 3, None, True], "s": "ä\""})
    assert text == '{"cost":12.30,"n":[0.1,3,null,true],"s":"\\u00e4\\""}'
    assert json.loads(text, parse_float=Decimal)["cost"] == D("12.30")
    with pytest.raises(ValueError):
        json_with_decimals({"cost": D("NaN")})


async def test_cost_message_sends_data_as_a_json_string_and_returns_the_answer(csms: TestCsms) -> None:
    async with charge_point(csms) as ws:

        async def answer() -> list[Any]:
            call = await receive(ws)
            await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            return call

        running_cost = {"transactionId": 7, "cost": D("1.20"), "state": "Charging",
                        "chargingPrice": {"kWhPrice": D("0.30")}, "priceText": "0.30 EUR/kWh"}
        async with asyncio.TaskGroup() as tasks:
            answered = tasks.create_task(answer())
            reply = await csms.cost_message("CP1", "RunningCost", running_cost)
        assert reply == {"status": "Accepted"}
        call = answered.result()
        assert call[2] == "DataTransfer"
        assert call[3]["vendorId"] == "org.openchargealliance.costmsg"
        assert call[3]["messageId"] == "RunningCost"
        assert isinstance(call[3]["data"], str)
        assert '"cost":1.20' in call[3]["data"]  # a JSON number, with its trailing zero
        assert json.loads(call[3]["data"], parse_float=Decimal) == running_cost

        async def answer_unknown_vendor() -> None:
            call = await receive(ws)
            assert call[3]["vendorId"] == "chargepoint"
            await ws.send(json.dumps([3, call[1], {"status": "UnknownVendorId"}]))

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(answer_unknown_vendor())
            reply = await csms.cost_message("CP1", "SetTransactionLimit", {"transactionId": 7, "maxCost": D(5)},
                                            vendor_id="chargepoint")
        assert reply == {"status": "UnknownVendorId"}
    out = [f for f in csms.frames if f.direction == "out" and f.message_type == "CALL"]
    assert [f.action for f in out] == ["DataTransfer", "DataTransfer"]


async def test_pricing_mode_sends_running_cost_after_meter_values_and_final_cost_after_stop() -> None:
    async with TestCsms(cost_and_price=PRICING) as server, charge_point(server) as ws:
        start = await request(ws, "s1", "StartTransaction", START)
        transaction_id = start["transactionId"]

        # 2500 Wh and 30 min since the start: 0.50 + 2.5 x 0.30 + 0.5 x 1.00 = 1.75
        assert await request(ws, "m1", "MeterValues",
                             meter_values(transaction_id, "3500", "2025-01-01T10:30:00Z")) == {}
        unique_id, data = await cost_call(ws, "RunningCost")
        assert data == {
            "transactionId": transaction_id,
            "timestamp": "2025-01-01T10:30:00.000Z",
            "meterValue": 3500,
            "cost": D("1.75"),
            "state": "Charging",
            "chargingPrice": {"kWhPrice": D("0.30"), "hourPrice": D("1.00"), "flatFee": D("0.50")},
            "priceText": "0.30 EUR/kWh, 1.00 EUR/h, 0.50 EUR per session",
        }
        await ws.send(json.dumps([3, unique_id, {"status": "Accepted"}]))

        # kWh readings are converted: 4.0 kWh = 3000 Wh since the start, 45 min: 0.50 + 0.90 + 0.75 = 2.15
        await request(ws, "m2", "MeterValues", meter_values(transaction_id, "4.0", "2025-01-01T10:45:00Z", "kWh"))
        unique_id, data = await cost_call(ws, "RunningCost")
        assert (data["meterValue"], data["cost"]) == (4000, D("2.15"))
        await ws.send(json.dumps([3, unique_id, {"status": "Accepted"}]))

        # 4000 Wh in 1 h: 0.50 + 1.20 + 1.00 = 2.70
        stop = {"transactionId": transaction_id, "meterStop": 5000, "timestamp": "2025-01-01T11:00:00Z"}
        assert await request(ws, "t1", "StopTransaction", stop) == {}
        unique_id, data = await cost_call(ws, "FinalCost")
        assert data["transactionId"] == transaction_id
        assert data["cost"] == D("2.70")
        assert data["priceText"] == "Total 2.70 EUR for 4.000 kWh (0.30 EUR/kWh, 1.00 EUR/h, 0.50 EUR per session)"
        await ws.send(json.dumps([3, unique_id, {"status": "Accepted"}]))

        # the charger reports the unplug after the idle period: Accepted
        unplugged = {"vendorId": "org.openchargealliance.costmsg", "messageId": "ConnectorUnplugged",
                     "data": json.dumps({"transactionId": transaction_id, "timestamp": "2025-01-01T11:20:00Z"})}
        assert await request(ws, "d1", "DataTransfer", unplugged) == {"status": "Accepted"}
        other = {"vendorId": "org.openchargealliance.costmsg", "messageId": "Whatever"}
        assert await request(ws, "d2", "DataTransfer", other) == {"status": "UnknownMessageId"}
        assert await request(ws, "d3", "DataTransfer", {"vendorId": "com.example"}) == {"status": "UnknownVendorId"}
        await nothing_more(ws)

    assert [f.unique_id for f in server.calls("DataTransfer", "CP1")] == ["d1", "d2", "d3"]
    answers = [f.payload for f in server.frames
               if f.direction == "in" and f.message_type == "CALLRESULT" and f.action == "DataTransfer"]
    assert answers == [{"status": "Accepted"}] * 3


async def test_follow_up_waits_for_the_answer_and_does_not_block_the_next_call() -> None:
    async with TestCsms() as server, charge_point(server) as ws:
        server.cost_and_price = CsmsPricing(kwh_price=D("0.25"))  # switched on after the start: settable
        transaction_id = (await request(ws, "s1", "StartTransaction", START))["transactionId"]
        await request(ws, "m1", "MeterValues", meter_values(transaction_id, "2000", "2025-01-01T10:10:00Z"))
        running_id, data = await cost_call(ws, "RunningCost")
        assert (data["cost"], data["priceText"]) == (D("0.25"), "0.25 EUR/kWh")
        assert data["chargingPrice"] == {"kWhPrice": D("0.25")}
        # The RunningCost CALL is still unanswered: the CSMS keeps answering the charger's CALLs.
        assert "currentTime" in await request(ws, "h1", "Heartbeat", {})
        await ws.send(json.dumps([3, running_id, {"status": "Rejected"}]))
        await nothing_more(ws)
    order = [(f.direction, f.message_type, f.action) for f in server.frames]
    assert order.index(("out", "CALLRESULT", "MeterValues")) < order.index(("out", "CALL", "DataTransfer"))


async def test_no_cost_follow_ups_without_pricing_mode_or_transaction(csms: TestCsms) -> None:
    async with charge_point(csms) as ws:
        transaction_id = (await request(ws, "s1", "StartTransaction", START))["transactionId"]
        await request(ws, "m1", "MeterValues", meter_values(transaction_id, "2000", "2025-01-01T10:10:00Z"))
        await request(ws, "t1", "StopTransaction",
                      {"transactionId": transaction_id, "meterStop": 2000, "timestamp": "2025-01-01T10:20:00Z"})
        unplugged = {"vendorId": "org.openchargealliance.costmsg", "messageId": "ConnectorUnplugged", "data": "{}"}
        assert await request(ws, "d1", "DataTransfer", unplugged) == {"status": "UnknownVendorId"}
        await nothing_more(ws)

        csms.cost_and_price = PRICING
        await request(ws, "m2", "MeterValues", meter_values(None, "2000", "2025-01-01T10:10:00Z"))  # no transaction
        await request(ws, "m3", "MeterValues", meter_values(99, "2000", "2025-01-01T10:10:00Z"))  # not started here
        await request(ws, "t2", "StopTransaction",
                      {"transactionId": 99, "meterStop": 2000, "timestamp": "2025-01-01T10:20:00Z"})
        await nothing_more(ws)
    assert not [f for f in csms.frames if f.direction == "out" and f.message_type == "CALL"]


async def test_meter_values_without_an_energy_reading_reuse_the_last_one() -> None:
    async with TestCsms(cost_and_price=CsmsPricing(kwh_price=D("0.40"), flat_fee=D("1"))) as server, \
            charge_point(server) as ws:
        transaction_id = (await request(ws, "s1", "StartTransaction", START))["transactionId"]
        power_only = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [
            {"timestamp": "2025-01-01T10:05:00Z",
             "sampledValue": [{"value": "7000", "measurand": "Power.Active.Import", "unit": "W"}]}]}
        await request(ws, "m1", "MeterValues", power_only)
        unique_id, data = await cost_call(ws, "RunningCost")
        assert (data["meterValue"], data["cost"]) == (1000, D("1.00"))  # meterStart, flat fee only
        await ws.send(json.dumps([3, unique_id, {"status": "Accepted"}]))
