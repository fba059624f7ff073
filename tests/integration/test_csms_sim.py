"""The test CSMS (simulators/csms.py) against a bare websockets client playing the charge point.

Deliberately independent of the firmware's OCPP code: these tests pin the simulator's behaviour so
that end-to-end failures can be blamed on the charger, not on the CSMS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from simulators.csms import OCPP16_SUBPROTOCOL, CallErrorReply, DropCall, Frame, TestCsms, make_test_pki, pki_available

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "AC22"}


@pytest.fixture
async def csms() -> AsyncIterator[TestCsms]:
    async with TestCsms() as server:
        yield server


@asynccontextmanager
async def charge_point(server: TestCsms, cp_id: str = "CP1", **kwargs: Any) -> AsyncIterator[ClientConnection]:
    kwargs.setdefault("subprotocols", [OCPP16_SUBPROTOCOL])
    kwargs.setdefault("close_timeout", 0.5)
    async with websockets.connect(server.url + "/" + cp_id, open_timeout=2, **kwargs) as ws:
        await server.wait_connected(cp_id, timeout_s=2)
        yield ws


async def rpc(ws: ClientConnection, unique_id: str, action: str, payload: dict[str, Any]) -> list[Any]:
    await ws.send(json.dumps([2, unique_id, action, payload]))
    async with asyncio.timeout(2):
        reply = json.loads(await ws.recv())
    assert isinstance(reply, list)
    return reply


def summary(frames: list[Frame]) -> list[tuple[str, str, str | None, str | None]]:
    return [(f.direction, f.message_type, f.unique_id, f.action) for f in frames]


async def test_boot_heartbeat_and_transactions_are_answered_and_recorded_in_order(csms: TestCsms) -> None:
    csms.heartbeat_interval_s = 60
    csms.rejected_id_tags.add("BAD")
    async with charge_point(csms) as ws:
        boot = await rpc(ws, "b1", "BootNotification", BOOT)
        heartbeat = await rpc(ws, "h1", "Heartbeat", {})
        start = await rpc(
            ws,
            "s1",
            "StartTransaction",
            {"connectorId": 1, "idTag": "GOOD", "meterStart": 10, "timestamp": "2025-01-01T00:00:00Z"},
        )
        refused = await rpc(
            ws,
            "s2",
            "StartTransaction",
            {"connectorId": 1, "idTag": "BAD", "meterStart": 10, "timestamp": "2025-01-01T00:00:00Z"},
        )
        stop = await rpc(
            ws,
            "t1",
            "StopTransaction",
            {"transactionId": 1, "idTag": "GOOD", "meterStop": 99, "timestamp": "2025-01-01T01:00:00Z"},
        )

    assert boot[:2] == [3, "b1"]
    assert boot[2]["status"] == "Accepted" and boot[2]["interval"] == 60
    assert boot[2]["currentTime"].endswith("Z")
    assert heartbeat[2].keys() == {"currentTime"}
    assert start[2] == {"idTagInfo": {"status": "Accepted"}, "transactionId": 1}
    assert refused[2] == {"idTagInfo": {"status": "Invalid"}, "transactionId": 2}
    assert stop[2] == {"idTagInfo": {"status": "Accepted"}}
    assert csms.transaction_ids[1]["idTag"] == "GOOD"
    assert summary(csms.frames) == [
        ("in", "CALL", "b1", "BootNotification"),
        ("out", "CALLRESULT", "b1", "BootNotification"),
        ("in", "CALL", "h1", "Heartbeat"),
        ("out", "CALLRESULT", "h1", "Heartbeat"),
        ("in", "CALL", "s1", "StartTransaction"),
        ("out", "CALLRESULT", "s1", "StartTransaction"),
        ("in", "CALL", "s2", "StartTransaction"),
        ("out", "CALLRESULT", "s2", "StartTransaction"),
        ("in", "CALL", "t1", "StopTransaction"),
        ("out", "CALLRESULT", "t1", "StopTransaction"),
    ]
    assert csms.frames[0].payload == BOOT and csms.frames[0].charge_point_id == "CP1"
    assert all(f.at.tzinfo is not None for f in csms.frames)
    assert [f.at for f in csms.frames] == sorted(f.at for f in csms.frames)
    assert [f.unique_id for f in csms.calls("StartTransaction", "CP1")] == ["s1", "s2"]
    assert csms.calls("StartTransaction", "OTHER") == []


@pytest.mark.parametrize(
    ("action", "payload", "expected"),
    [
        ("Authorize", {"idTag": "X"}, {"idTagInfo": {"status": "Accepted"}}),
        ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}, {}),
        (
            "MeterValues",
            {"connectorId": 1, "meterValue": [{"timestamp": "2025-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}]},
            {},
        ),
        ("DataTransfer", {"vendorId": "acme"}, {"status": "UnknownVendorId"}),
        ("DiagnosticsStatusNotification", {"status": "Idle"}, {}),
        ("FirmwareStatusNotification", {"status": "Idle"}, {}),
        ("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": "2025-01-01T00:00:00Z"}, {}),
        ("SignCertificate", {"csr": "-----BEGIN CERTIFICATE REQUEST-----"}, {"status": "Accepted"}),
        ("LogStatusNotification", {"status": "Idle"}, {}),
        ("SignedFirmwareStatusNotification", {"status": "Idle"}, {}),
        ("StopTransaction", {"transactionId": 5, "meterStop": 1, "timestamp": "2025-01-01T00:00:00Z"}, {}),
    ],
)
async def test_every_charge_point_action_has_a_default_reply(
    csms: TestCsms, action: str, payload: dict[str, Any], expected: dict[str, Any]
) -> None:
    async with charge_point(csms) as ws:
        assert await rpc(ws, "1", action, payload) == [3, "1", expected]


async def test_boot_status_pending_is_replied(csms: TestCsms) -> None:
    csms.boot_status = "Pending"
    async with charge_point(csms) as ws:
        assert (await rpc(ws, "1", "BootNotification", BOOT))[2]["status"] == "Pending"


async def test_handler_override_sync_async_call_error_and_restore(csms: TestCsms) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def authorize(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        seen.append((cp_id, payload))
        return {"idTagInfo": {"status": "Blocked", "parentIdTag": "P"}}

    async def data_transfer(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"status": "Accepted", "data": payload["vendorId"]}

    def heartbeat(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise CallErrorReply("InternalError", "database down", {"retry": True})

    csms.set_handler("Authorize", authorize)
    csms.set_handler("DataTransfer", data_transfer)
    csms.set_handler("Heartbeat", heartbeat)
    async with charge_point(csms) as ws:
        assert await rpc(ws, "a", "Authorize", {"idTag": "T1"}) == [
            3,
            "a",
            {"idTagInfo": {"status": "Blocked", "parentIdTag": "P"}},
        ]
        assert await rpc(ws, "d", "DataTransfer", {"vendorId": "acme"}) == [
            3,
            "d",
            {"status": "Accepted", "data": "acme"},
        ]
        assert await rpc(ws, "h", "Heartbeat", {}) == [4, "h", "InternalError", "database down", {"retry": True}]
        csms.set_handler("Authorize", None)
        assert await rpc(ws, "a2", "Authorize", {"idTag": "T1"}) == [3, "a2", {"idTagInfo": {"status": "Accepted"}}]
    assert seen == [("CP1", {"idTag": "T1"})]
    error = csms.frames[5]
    assert (error.direction, error.message_type, error.action) == ("out", "CALLERROR", "Heartbeat")
    assert error.payload == {
        "errorCode": "InternalError",
        "errorDescription": "database down",
        "errorDetails": {"retry": True},
    }
    with pytest.raises(ValueError, match="Reset"):
        csms.set_handler("Reset", authorize)  # CSMS -> CP actions are not ours to answer


async def test_drop_call_leaves_the_call_unanswered(csms: TestCsms) -> None:
    def lose_reply(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise DropCall

    csms.set_handler("StartTransaction", lose_reply)
    async with charge_point(csms) as ws:
        start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2025-01-01T00:00:00Z"}
        await ws.send(json.dumps([2, "s1", "StartTransaction", start]))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await ws.recv()
        assert await rpc(ws, "h", "Heartbeat", {}) != []  # the link is still fine
    assert summary(csms.frames)[:2] == [("in", "CALL", "s1", "StartTransaction"), ("in", "CALL", "h", "Heartbeat")]
    assert list(csms.transaction_ids) == [1]  # processed, answer lost


async def test_schema_violation_gets_the_library_call_error_and_is_recorded(csms: TestCsms) -> None:
    async with charge_point(csms) as ws:
        reply = await rpc(ws, "x", "BootNotification", {"chargePointVendor": "Acme"})  # model missing
        unknown = await rpc(ws, "y", "Reset", {"type": "Hard"})  # a CSMS -> CP action
    assert reply[:3] == [4, "x", "ProtocolError"]
    assert unknown[:3] == [4, "y", "NotImplemented"]
    assert summary(csms.frames) == [
        ("in", "CALL", "x", "BootNotification"),
        ("out", "CALLERROR", "x", "BootNotification"),
        ("in", "CALL", "y", "Reset"),
        ("out", "CALLERROR", "y", "Reset"),
    ]


async def test_unparseable_text_is_recorded_as_raw(csms: TestCsms) -> None:
    async with charge_point(csms) as ws:
        await ws.send("not json at all")
        await ws.send('{"an": "object"}')
        assert (await rpc(ws, "h", "Heartbeat", {}))[1] == "h"  # still alive
    assert [(f.message_type, f.raw) for f in csms.frames[:2]] == [
        ("RAW", "not json at all"),
        ("RAW", '{"an": "object"}'),
    ]
    assert csms.frames[0].unique_id is None and csms.frames[0].payload is None


async def test_wait_for_call_matches_predicate_and_after_and_times_out_with_history(csms: TestCsms) -> None:
    async with charge_point(csms) as ws:

        async def send_later() -> None:
            for connector in (1, 2):
                status = {"connectorId": connector, "errorCode": "NoError", "status": "Preparing"}
                await rpc(ws, f"s{connector}", "StatusNotification", status)

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(send_later())
            frame = await csms.wait_for_call("StatusNotification", lambda p: p["connectorId"] == 2, timeout_s=2)
        assert frame.unique_id == "s2"
        index = csms.frames.index(frame)
        again = await csms.wait_for_call("StatusNotification", timeout_s=1, after=index)
        assert again is frame
        with pytest.raises(TimeoutError, match=r"no StatusNotification CALL within 0.1 s(.|\n)*CALLRESULT"):
            await csms.wait_for_call("StatusNotification", timeout_s=0.1, after=index + 1)


async def test_csms_call_round_trip_call_error_and_timeout(csms: TestCsms) -> None:
    async with charge_point(csms) as ws:

        async def answer(reply_with_error: bool) -> list[Any]:
            request = json.loads(await ws.recv())
            if reply_with_error:
                await ws.send(json.dumps([4, request[1], "NotSupported", "no resets here", {}]))
            else:
                await ws.send(json.dumps([3, request[1], {"status": "Accepted"}]))
            assert isinstance(request, list)
            return request

        async with asyncio.TaskGroup() as tasks:
            answered = tasks.create_task(answer(False))
            result = await csms.call("CP1", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "30"})
        assert result == {"status": "Accepted"}
        assert answered.result()[2:] == ["ChangeConfiguration", {"key": "HeartbeatInterval", "value": "30"}]

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(answer(True))
            with pytest.raises(CallErrorReply) as error:
                await csms.call("CP1", "Reset", {"type": "Soft"})
        assert (error.value.code, error.value.description) == ("NotSupported", "no resets here")

        with pytest.raises(TimeoutError, match="did not answer"):
            await csms.call("CP1", "TriggerMessage", {"requestedMessage": "Heartbeat"}, timeout_s=0.2)
    calls = summary(csms.frames)
    assert calls[0][:2] == ("out", "CALL") and calls[0][3] == "ChangeConfiguration"
    assert calls[1][:2] == ("in", "CALLRESULT") and calls[1][3] == "ChangeConfiguration"
    assert calls[3][:2] == ("in", "CALLERROR") and calls[3][3] == "Reset"
    with pytest.raises(ConnectionError):
        await csms.call("NOPE", "Reset", {"type": "Soft"})


async def test_send_raw_reaches_the_charge_point_and_is_recorded(csms: TestCsms) -> None:
    async with charge_point(csms) as ws:
        await csms.send_raw("CP1", "[2, broken")
        assert await ws.recv() == "[2, broken"
    assert summary(csms.frames) == [("out", "RAW", None, None)]


@pytest.mark.parametrize("subprotocols", [None, [Subprotocol("ocpp2.0.1")]])
async def test_other_or_missing_subprotocol_is_refused(csms: TestCsms, subprotocols: list[Subprotocol] | None) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(csms.url + "/CP1", subprotocols=subprotocols, open_timeout=2)
    assert refused.value.response.status_code == 400
    assert not csms.connected("CP1")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    "headers",
    [{}, basic("CP1", "wrong"), basic("CP2", "secret-0123456789"), {"Authorization": "Basic !!!"}],
    ids=["no header", "wrong password", "other charge point id", "garbage"],
)
async def test_basic_auth_refuses_bad_credentials_with_401(headers: dict[str, str]) -> None:
    async with TestCsms(passwords={"CP1": "secret-0123456789"}) as server:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(server.url + "/CP1", subprotocols=[OCPP16_SUBPROTOCOL], additional_headers=headers)
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"].startswith("Basic")


async def test_basic_auth_accepts_the_right_password() -> None:
    server = TestCsms(passwords={"CP1": "secret:with:colons"})
    async with server, charge_point(server, additional_headers=basic("CP1", "secret:with:colons")) as ws:
        assert (await rpc(ws, "1", "BootNotification", BOOT))[0] == 3


async def test_not_accepting_refuses_new_connections_with_503(csms: TestCsms) -> None:
    csms.accepting = False
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(csms.url + "/CP1", subprotocols=[OCPP16_SUBPROTOCOL])
    assert refused.value.response.status_code == 503
    csms.accepting = True
    async with charge_point(csms):
        assert csms.connected("CP1")


async def test_disconnect_closes_the_socket_and_the_charge_point_can_return(csms: TestCsms) -> None:
    async with charge_point(csms) as ws:
        await csms.disconnect("CP1")
        assert not csms.connected("CP1")
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(2):
                await ws.recv()
        assert ws.close_code == 1001
    async with charge_point(csms) as ws:
        await csms.disconnect("CP1", abrupt=True)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(2):
                await ws.recv()
    await csms.disconnect("CP1")  # not connected: nothing to do


async def test_several_charge_points_at_once_and_reconnect_replaces_the_old_link(csms: TestCsms) -> None:
    async with charge_point(csms, "CP1") as one, charge_point(csms, "CP2") as two:
        await rpc(one, "1", "Heartbeat", {})
        await rpc(two, "1", "Heartbeat", {})
        assert {f.charge_point_id for f in csms.frames} == {"CP1", "CP2"}
        async with charge_point(csms, "CP1") as again:
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(2):
                    await one.recv()
            assert (await rpc(again, "2", "Heartbeat", {}))[1] == "2"
            assert csms.connected("CP1") and csms.connected("CP2")


async def test_freeze_makes_the_client_ping_time_out_and_unfreeze_drops_the_dead_link(csms: TestCsms) -> None:
    async with charge_point(csms, ping_interval=0.2, ping_timeout=0.2, close_timeout=0.2) as ws:
        await rpc(ws, "1", "Heartbeat", {})
        await csms.freeze("CP1")
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(2):
                await ws.recv()
        assert time.monotonic() - started < 1.0
        assert "keepalive ping timeout" in str(closed.value)
        assert csms.connected("CP1")  # half-open: the CSMS has not noticed
        await csms.unfreeze("CP1")
        await csms._wait_until(lambda: True if not csms.connected("CP1") else None, 2, lambda: "still connected")


async def test_frozen_link_neither_answers_nor_reads_until_unfrozen(csms: TestCsms) -> None:
    async with charge_point(csms, ping_interval=None) as ws:
        await csms.freeze("CP1")
        await ws.send(json.dumps([2, "h", "Heartbeat", {}]))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await ws.recv()
        assert csms.frames == []  # not even read
        await csms.unfreeze("CP1")
        async with asyncio.timeout(2):
            reply = json.loads(await ws.recv())
        assert reply[:2] == [3, "h"]


@pytest.mark.skipif(not pki_available(), reason="needs the openssl command")
async def test_tls_with_client_certificate(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path, "CP1")
    async with TestCsms(ssl_context=pki.server_context(), require_client_cert=True) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        async with charge_point(server, ssl=pki.client_context()) as ws:
            assert (await rpc(ws, "1", "BootNotification", BOOT))[0] == 3
        with pytest.raises((OSError, InvalidHandshake, ConnectionClosed)):  # ssl.SSLError is an OSError
            async with charge_point(server, ssl=pki.client_context(with_client_cert=False)) as ws:
                await rpc(ws, "2", "Heartbeat", {})  # TLS 1.3 may report the refusal only on first use
        other = pki.client_context(cert=pki.issue_client_certificate("CP2"))
        with pytest.raises(InvalidStatus) as refused:  # a valid certificate, but for another charge point
            await websockets.connect(server.url + "/CP1", subprotocols=[OCPP16_SUBPROTOCOL], ssl=other)
        assert refused.value.response.status_code == 403
        async with charge_point(server, "CP2", ssl=other) as ws:
            assert (await rpc(ws, "3", "Heartbeat", {}))[0] == 3
