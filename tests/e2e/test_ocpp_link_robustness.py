"""The link to the CSMS when it dies, floods or never settles (issue 13 points 2 and 8), seen on the wire."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.server import ServerConnection

from chargepoint.ocpp.v16.link import CALL_QUEUE_MAX, REFUSALS_PENDING_MAX
from simulators.csms import DropCall, TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import make_config, running_charger

CARD = "04A1B2C3"


async def test_a_dropped_link_fails_the_call_in_flight_at_once_and_it_is_resent(
    tmp_path: Path, csms: TestCsms, caplog: pytest.LogCaptureFixture
) -> None:
    """The CSMS gets the StartTransaction, its answer is lost and the connection dies: the charger must not wait
    out the 30 s CALL timeout but reconnect (back-off 1-2 s) and send it again, and the new connection lives."""
    caplog.set_level(logging.INFO, logger="chargepoint.ocpp.v16.connection")
    dropped_at: list[float] = []

    def lose_answer_and_link(_cp: str, _payload: dict[str, object]) -> dict[str, object]:
        if not dropped_at:
            dropped_at.append(time.monotonic())
            asyncio.get_running_loop().call_soon(asyncio.ensure_future, csms.disconnect(CP_ID, abrupt=True))
            raise DropCall
        return {"transactionId": 77, "idTagInfo": {"status": "Accepted"}}

    csms.set_handler("StartTransaction", lose_answer_and_link)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        charger.sim().apply("plug")
        charger.sim().apply("tap", CARD)
        await charger.wait_for(lambda: bool(dropped_at), what="the first StartTransaction")
        await csms.wait_for_call("StartTransaction", timeout_s=6, after=len(csms.frames))
        resent_after_s = time.monotonic() - dropped_at[0]
        assert resent_after_s < 6, resent_after_s
        starts = csms.calls("StartTransaction")
        assert len(starts) == 2 and starts[0].payload == starts[1].payload  # the same message, sent again
        await charger.wait_for(lambda: (charger.status()["session"] or {}).get("transaction_id") == 77,
                               what="the transaction confirmed")
        await asyncio.sleep(1.0)
        connects = [r for r in caplog.records if r.getMessage().startswith("connected to the CSMS")]
        assert len(connects) == 2 and csms.connected(CP_ID)  # the lost answer closed no healthy connection


async def test_a_server_that_closes_at_once_makes_the_back_off_grow(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A server that accepts the WebSocket and closes it at once must not get a reconnect every 1-2 s: the
    back-off grows until a connection has stayed up for a while."""
    caplog.set_level(logging.INFO, logger="chargepoint.ocpp.v16.connection")
    accepted: list[float] = []

    def ceilings() -> list[float]:
        return [float(m.group(1)) for r in caplog.records
                if (m := re.search(r"back-off up to ([0-9.]+) s", r.getMessage()))]

    async def close_at_once(ws: ServerConnection) -> None:
        accepted.append(time.monotonic())
        await ws.close()

    async with websockets.serve(close_at_once, "127.0.0.1", 0, subprotocols=[websockets.Subprotocol("ocpp1.6")]) \
            as server:
        port = server.sockets[0].getsockname()[1]
        config = make_config(tmp_path, ocpp={"csms_url": f"ws://127.0.0.1:{port}", "charge_point_id": CP_ID})
        async with running_charger(config) as charger:
            await charger.wait_for(lambda: len(ceilings()) >= 3, timeout_s=15, what="three reconnects")
    assert len(accepted) >= 3
    assert ceilings()[:3] == [2.0, 3.0, 5.0], ceilings()


async def test_a_flood_of_csms_calls_does_not_starve_a_drivers_authorize(tmp_path: Path, csms: TestCsms) -> None:
    """Thousands of CALLs arrive ahead of the answer to the charger's Authorize: the excess over the rate limit is
    refused at once with a CALLERROR, every CALL is answered, and the card is authorized online promptly."""
    flood = 4000
    tapped_at: list[float] = []

    async def flood_then_accept(_cp: str, _payload: dict[str, object]) -> dict[str, object]:
        session = csms._session(CP_ID)
        for i in range(flood):  # all of them in the stream before the Authorize answer
            await session.ws.send(f'[2,"flood-{i}","DataTransfer",{{"vendorId":"hostile"}}]')
        return {"idTagInfo": {"status": "Accepted"}}

    csms.set_handler("Authorize", flood_then_accept)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        charger.sim().apply("plug")
        tapped_at.append(time.monotonic())
        charger.sim().apply("tap", CARD)
        start = await csms.wait_for_call("StartTransaction", timeout_s=20)
        assert start.payload is not None and start.payload["idTag"] == CARD
        assert time.monotonic() - tapped_at[0] < 5
        await charger.wait_for(lambda: sum(1 for f in csms.frames if f.direction == "in"
                                           and (f.unique_id or "").startswith("flood-")) >= flood,
                               timeout_s=20, what="every flood CALL answered")
        answers = [f for f in csms.frames if f.direction == "in" and (f.unique_id or "").startswith("flood-")]
        assert len(answers) == flood and len({f.unique_id for f in answers}) == flood
        refused = [f for f in answers if f.message_type == "CALLERROR"]
        assert refused and all(f.payload is not None and f.payload["errorCode"] == "GenericError" for f in refused)
        assert flood - len(refused) >= CALL_QUEUE_MAX  # as many as may wait are handled, not refused
        assert charger.app.status()["csms_connected"]
        assert charger.status()["status"] == "Charging" or charger.status()["session"] is not None


async def test_a_csms_that_floods_and_never_reads_is_disconnected(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The charger's reader must not block on its own answers to a CSMS that floods and reads nothing (both sides
    would wait on writes for ever); past REFUSALS_PENDING_MAX answers waiting, the link is closed and logged."""
    flooded = asyncio.Event()

    async def flood_without_reading(ws: ServerConnection) -> None:
        padding = "p" * 1000  # long ids make long answers, so they outgrow the sockets' buffers
        for i in range(REFUSALS_PENDING_MAX + 5000):
            await ws.send(f'[2,"{padding}-{i}","Heartbeat",{{}}]')
        flooded.set()
        await ws.wait_closed()

    async with websockets.serve(flood_without_reading, "127.0.0.1", 0, max_size=None,
                                subprotocols=[websockets.Subprotocol("ocpp1.6")]) as server:
        port = server.sockets[0].getsockname()[1]
        config = make_config(tmp_path, ocpp={"csms_url": f"ws://127.0.0.1:{port}", "charge_point_id": CP_ID})
        async with running_charger(config) as charger:
            await charger.wait_for(lambda: any("does not read" in r.getMessage() for r in caplog.records),
                                   timeout_s=30, what="the link closed")
            assert charger.status()["status"] == "Available"  # the charger itself goes on


async def test_a_flood_of_broken_replies_leaves_a_few_log_lines(tmp_path: Path, csms: TestCsms,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Replies are not rate-limited like CALLs (they may be the answer the charger waits for), so their warnings are:
    ten per 10 s, then a count of what was left out."""
    caplog.set_level(logging.INFO)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        caplog.clear()
        for i in range(3000):
            await csms.send_raw(CP_ID, f'[4, "broken-{i}", {{}}]')  # a CALLERROR without its fields
        await asyncio.sleep(0.5)
        assert charger.app.status()["csms_connected"]
    warnings = [r for r in caplog.records if r.name == "chargepoint.ocpp.v16.link" and r.levelno == logging.WARNING]
    broken = [r for r in warnings if "invalid OCPP frame" in r.getMessage()]
    assert len(broken) == 10, len(broken)
    assert any(r.getMessage() == "2990 more warnings about frames from the CSMS were left out of the log"
               for r in warnings), [r.getMessage() for r in warnings]
