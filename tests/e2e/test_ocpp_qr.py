"""Mobile payment by dynamic QR code (issue 14 point 5), end to end: the code on the display, a payment backend
that checks it, the CSMS starting the session, and replayed, forged and offline codes starting nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from chargepoint.config.schema import Config
from simulators.csms import TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import Charger, running_charger
from tests.unit.test_qr_codes import KEY, backend_reads

PAYMENT_URL = "https://pay.example.com/start"


def qr_config(tmp_path: Path, csms: TestCsms) -> Config:
    return ocpp_config(tmp_path, csms, qr={"enabled": True, "payment_url": PAYMENT_URL, "key": KEY.decode()})


def shown_code(charger: Charger, connector_id: int = 1) -> str | None:
    display = charger.status(connector_id)["display"]
    return None if display is None else display.get("qr_code_text")


async def code_on_display(charger: Charger) -> str:
    await charger.wait_for(lambda: shown_code(charger) is not None, timeout_s=5, what="a QR code on the display")
    code = shown_code(charger)
    assert code is not None
    return code


async def remote_start(csms: TestCsms, id_tag: str, connector_id: int = 1) -> dict[str, Any]:
    return await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": connector_id, "idTag": id_tag})


async def test_a_paid_code_starts_a_session_once(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(qr_config(tmp_path, csms)) as charger:
        await registered(charger)
        code = await code_on_display(charger)
        query, id_tag = backend_reads(code)  # the payment page checks the code and takes the payment
        assert (query["cp"], query["c"]) == (CP_ID, "1")
        assert await remote_start(csms, id_tag) == {"status": "Accepted"}
        charger.sim().apply("plug")
        start = await csms.wait_for_call("StartTransaction")
        assert start.payload is not None and start.payload["idTag"] == id_tag
        await charger.wait_for(lambda: charger.status()["session"] is not None, what="the session")
        assert charger.status()["session"]["payment_method"] == "qr"
        await charger.wait_for(lambda: shown_code(charger) is None, what="no code on a busy connector")
        charger.sim().apply("unplug")
        await csms.wait_for_call("StopTransaction")
        await charger.wait_for(lambda: charger.status()["status"] == "Available", what="free again")
        assert await remote_start(csms, id_tag) == {"status": "Rejected"}  # a replay starts nothing
        new_code = await code_on_display(charger)
        assert new_code != code  # replaced after use
        await charger.app.flush_store()
        sessions = await charger.store.recent_sessions()
        assert [s.payment_method for s in sessions] == ["qr"]


async def test_forged_and_misdirected_codes_start_nothing_and_are_security_events(tmp_path: Path,
                                                                                 csms: TestCsms) -> None:
    async with running_charger(qr_config(tmp_path, csms)) as charger:
        await registered(charger)
        _, id_tag = backend_reads(await code_on_display(charger))
        assert await remote_start(csms, "Q" + "A" * 19) == {"status": "Rejected"}  # forged
        await csms.wait_for_call("SecurityEventNotification", lambda p: p["type"] == "QrCodeRefused")
        assert charger.status()["session"] is None
        # An ordinary app start (not a QR idTag) is still a remote start as before.
        assert await remote_start(csms, "APP-USER-1") == {"status": "Accepted"}
        charger.sim().apply("plug")
        await charger.wait_for(lambda: charger.status()["session"] is not None, what="the app's session")
        assert charger.status()["session"]["payment_method"] == "remote"
        assert await remote_start(csms, id_tag) == {"status": "Rejected"}  # the connector is busy


async def test_the_code_is_hidden_while_offline(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(qr_config(tmp_path, csms)) as charger:
        await registered(charger)
        await code_on_display(charger)
        csms.accepting = False
        await csms.disconnect(CP_ID)
        await charger.wait_for(lambda: shown_code(charger) is None, timeout_s=5, what="the code hidden")
        csms.accepting = True
        await code_on_display(charger)
        await asyncio.sleep(0)
