"""Regression tests for field bugs of other OCPP stacks (../shared/REFERENCE.md section 2, C.4).

Covered elsewhere: offline start then StopTransaction with transactionId -1 (libocpp #495) and only a
StopTransaction after an offline session plus restart (MicroOcpp #454): test_ocpp_offline.py
(tc039, restart while offline); StopTransaction sent twice after an offline stop and reboot (libocpp #907),
wrong stop reason after an outage (openevse #787), session left Charging after a power cut (MicroOcpp #100)
and power-loss stop only with ResumeTransactionsOnBoot (EVerest #1515): test_ocpp_process.py (kill -9);
a pong timeout that never reconnects (libocpp #1175): test_ocpp_offline.py (half-open link).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from simulators.csms import TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import running_charger

CARD = "04A1B2C3"



def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def test_microocpp_298_finished_offline_transaction_does_not_block_new_sessions(
    tmp_path: Path, csms: TestCsms
) -> None:
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "AllowOfflineTxForUnknownId", "value": "true"})
        csms.accepting = False
        await csms.disconnect(CP_ID)
        await charger.wait_for(lambda: not charger.app.status()["csms_connected"])
        await charger.charge(card=CARD)
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
    csms.accepting = True
    async with running_charger(config) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: len(csms.calls("StartTransaction")) == 2, timeout_s=10)


async def test_microocpp_50_no_transaction_message_is_resent_while_its_answer_is_pending(
    tmp_path: Path, csms: TestCsms
) -> None:
    async def slow(_cp: str, payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(2.0)
        return {"transactionId": 5, "idTagInfo": {"status": "Accepted"}}

    csms.set_handler("StartTransaction", slow)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 5, timeout_s=6)
        assert len(csms.calls("StartTransaction")) == 1


async def test_microocpp_354_timestamps_follow_the_csms_clock(tmp_path: Path, csms: TestCsms) -> None:
    skew = timedelta(hours=3)

    def boot(_cp: str, payload: dict[str, Any]) -> dict[str, Any]:
        csms_now = datetime.now(UTC) + skew
        return {"status": "Accepted", "interval": 300,
                "currentTime": csms_now.isoformat(timespec="milliseconds").replace("+00:00", "Z")}

    csms.set_handler("BootNotification", boot)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        start = await csms.wait_for_call("StartTransaction")
        status = csms.calls("StatusNotification")[-1]
        for stamp in (start.payload["timestamp"], status.payload["timestamp"]):  # type: ignore[index]
            assert abs(parse(stamp) - (datetime.now(UTC) + skew)) < timedelta(seconds=5)


async def test_libocpp_445_clock_aligned_meter_values_are_aligned(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "ClockAlignedDataInterval", "value": "2"})
        first = await csms.wait_for_call(
            "MeterValues", lambda p: p["meterValue"][0]["sampledValue"][0].get("context") == "Sample.Clock",
            timeout_s=5)
        stamp = parse(first.payload["meterValue"][0]["timestamp"])  # type: ignore[index]
        offset_s = (stamp - stamp.replace(second=0, microsecond=0)).total_seconds() % 2
        assert min(offset_s, 2 - offset_s) < 0.3


async def test_libocpp_1130_status_timestamp_is_the_report_time(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        charger.sim().apply("plug")
        frame = await csms.wait_for_call("StatusNotification", lambda p: p["status"] == "Preparing")
        assert frame.payload is not None
        assert abs(parse(frame.payload["timestamp"]) - frame.at) < timedelta(seconds=1)


async def test_a_large_clock_correction_is_logged(tmp_path: Path, csms: TestCsms, caplog: Any) -> None:
    def boot(_cp: str, payload: dict[str, Any]) -> dict[str, Any]:
        csms_now = datetime.now(UTC) + timedelta(hours=2)
        return {"status": "Accepted", "interval": 300,
                "currentTime": csms_now.isoformat(timespec="milliseconds").replace("+00:00", "Z")}

    csms.set_handler("BootNotification", boot)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
    assert any("timestamps of messages recorded before this synchronisation" in r.getMessage()
               for r in caplog.records)
