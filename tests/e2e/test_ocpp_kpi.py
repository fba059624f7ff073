"""The daily KPI summary on the wire (DataTransfer vendorId = [ocpp] kpi_vendor_id, messageId DailyKpi): yesterday's
figures from the recorded history, once across restarts, queued while the CSMS is away, off without a vendor id,
and never holding up a transaction message when the CSMS refuses it."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chargepoint.config.schema import Config
from chargepoint.ocpp.v16.kpi import KV_LAST_DAY, MAX_CATCH_UP_DAYS, DailyKpi
from chargepoint.store import HistoryEvent, Store
from simulators.csms import CallErrorReply, Frame, TestCsms
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import Charger, running_charger

CARD = "04A1B2C3"
VENDOR = "com.example.kpi"
ZONE = "Europe/Berlin"
H = timedelta(hours=1)


def kpi_config(tmp_path: Path, csms: TestCsms, vendor_id: str = VENDOR) -> Config:
    return ocpp_config(tmp_path, csms, ocpp={"kpi_vendor_id": vendor_id}, pricing={"time_zone": ZONE})


def event(at: datetime, connector_id: int, kind: str, value: str, detail: str = "") -> HistoryEvent:
    return HistoryEvent(at.isoformat(timespec="microseconds"), 0.0, 1, connector_id, kind, value, detail)


async def seed_yesterday(config: Config, installed_days_before: int = 0) -> tuple[date, datetime, datetime]:
    """Yesterday (local): the charger up all day, faulted 10:00-12:00 (GroundFailure), one 7.5 kWh session
    14:00-15:00; installed at its start, or ``installed_days_before`` days before and up since. Returns the day and
    its bounds."""
    zone = ZoneInfo(ZONE)
    day = datetime.now(zone).date() - timedelta(days=1)
    start, end = datetime.combine(day, time(), zone), datetime.combine(day + timedelta(days=1), time(), zone)
    installed = datetime.combine(day - timedelta(days=installed_days_before), time(), zone)
    store = await Store.open(config.storage.database_path)
    try:
        await store.history_append([
            event(installed, 0, "boot", "0.1.0"), event(installed, 1, "status", "Available"),
            event(start + 10 * H, 1, "status", "Faulted", "GroundFailure"),
            event(start + 10 * H, 1, "fault", "GroundFailure", "raised"),
            event(start + 12 * H, 1, "fault", "GroundFailure", "cleared"),
            event(start + 12 * H, 1, "status", "Available"),
            event(start + 14 * H, 1, "status", "Charging"), event(start + 15 * H, 1, "status", "Available"),
        ])
        session = await store.begin_session(1, CARD, 1000, start + 14 * H)
        await store.end_session(session.session_id, 8500, start + 15 * H, "Local")
    finally:
        await store.close()
    return day, start, end


def kpis(csms: TestCsms) -> list[Frame]:
    return [f for f in csms.calls("DataTransfer") if f.payload is not None and f.payload.get("messageId") == "DailyKpi"]


async def drained(charger: Charger) -> None:
    for _ in range(250):
        if await charger.store.outbox_len() == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the outbox did not drain")


async def test_yesterdays_summary_arrives_with_its_figures_and_only_once(tmp_path: Path, csms: TestCsms) -> None:
    accepted: dict[str, Any] = {"status": "Accepted"}
    csms.set_handler("DataTransfer", lambda _cp, _payload: accepted)
    config = kpi_config(tmp_path, csms)
    day, start, end = await seed_yesterday(config)
    async with running_charger(config) as charger:
        await registered(charger)
        frame = await csms.wait_for_call("DataTransfer", lambda p: p.get("messageId") == "DailyKpi")
        assert frame.payload is not None and frame.payload["vendorId"] == VENDOR
        data = json.loads(frame.payload["data"])
        period_s = (end - start).total_seconds()  # 23 or 25 hours on the days the clocks change
        figures = {"uptime_percent": round(100 * (period_s - 7200) / period_s, 3), "sessions": 1, "energy_Wh": 7500,
                   "faults": 1, "outage_s": 7200, "excluded_s": 0, "failed_starts": 0}
        assert data == {
            "version": 1, "date": day.isoformat(), "time_zone": ZONE,
            "from": start.astimezone(ZoneInfo("UTC")).isoformat(timespec="seconds"),
            "to": end.astimezone(ZoneInfo("UTC")).isoformat(timespec="seconds"),
            "connectors": [{"id": 1, **figures}], "charger": figures,
        }
        await drained(charger)
        assert await charger.store.get_kv(KV_LAST_DAY) == day.isoformat()
    async with running_charger(config) as charger:  # a restart: the day was sent
        await registered(charger)
        await asyncio.sleep(0.5)
        await drained(charger)
    assert len(kpis(csms)) == 1


async def test_a_day_missed_while_off_is_sent_at_the_next_start(tmp_path: Path, csms: TestCsms) -> None:
    config = kpi_config(tmp_path, csms)
    day, _, _ = await seed_yesterday(config, installed_days_before=5)
    store = await Store.open(config.storage.database_path)
    try:
        await store.set_kv(KV_LAST_DAY, (day - timedelta(days=2)).isoformat())  # off for the two days before today
    finally:
        await store.close()
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.wait_for_call("DataTransfer", lambda p: json.loads(p["data"])["date"] == day.isoformat())
        await drained(charger)
    dates = [json.loads(f.payload["data"])["date"] for f in kpis(csms) if f.payload is not None]
    assert dates == [(day - timedelta(days=1)).isoformat(), day.isoformat()]


async def test_the_summary_waits_in_the_outbox_while_the_csms_is_away(tmp_path: Path, csms: TestCsms) -> None:
    config = kpi_config(tmp_path, csms)
    day, _, _ = await seed_yesterday(config)
    csms.accepting = False
    async with running_charger(config) as charger:
        await charger.wait_for(lambda: charger.ocpp is not None and charger.ocpp.kpi is not None
                               and charger.ocpp.kpi._last_day == day, what="the summary queued")
        assert await charger.store.outbox_len() >= 1
        assert kpis(csms) == []
        csms.accepting = True
        frame = await csms.wait_for_call("DataTransfer", lambda p: p.get("messageId") == "DailyKpi", timeout_s=20)
        assert frame.payload is not None and json.loads(frame.payload["data"])["date"] == day.isoformat()
        await drained(charger)


async def test_no_summary_without_a_vendor_id(tmp_path: Path, csms: TestCsms) -> None:
    config = kpi_config(tmp_path, csms, vendor_id="")
    await seed_yesterday(config)
    async with running_charger(config) as charger:
        await registered(charger)
        assert charger.ocpp is not None and charger.ocpp.kpi is None
        await asyncio.sleep(0.5)
        await drained(charger)
        assert await charger.store.get_kv(KV_LAST_DAY) is None
    assert csms.calls("DataTransfer") == []


def unknown_vendor(_cp: str, _payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": "UnknownVendorId"}


def not_supported(_cp: str, _payload: dict[str, Any]) -> dict[str, Any]:
    raise CallErrorReply("NotSupported", "no DataTransfer here")


@pytest.mark.parametrize("refusal", [unknown_vendor, not_supported], ids=["UnknownVendorId", "CALLERROR"])
async def test_a_refused_summary_never_holds_up_the_transaction_messages(
        tmp_path: Path, csms: TestCsms, refusal: Any) -> None:
    csms.set_handler("DataTransfer", refusal)
    config = kpi_config(tmp_path, csms)
    await seed_yesterday(config)
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.wait_for_call("DataTransfer", lambda p: p.get("messageId") == "DailyKpi")
        await charger.charge(card=CARD)
        await csms.wait_for_call("StartTransaction", timeout_s=5)
        charger.sim().apply("unplug")
        # Not after TransactionMessageRetryInterval (60 s) behind a summary retried at the head of the queue.
        await csms.wait_for_call("StopTransaction", timeout_s=5)
        await drained(charger)
    assert len(kpis(csms)) == 1  # refused once, not sent again


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def test_a_day_is_due_a_minute_after_local_midnight_and_only_on_a_plausible_clock(tmp_path: Path) -> None:
    zone = ZoneInfo(ZONE)
    store = await Store.open(tmp_path / "chargepoint.db")
    queued: list[Any] = []

    async def enqueue(messages: Any) -> None:
        queued.extend(messages)

    try:
        day0 = date(2026, 3, 28)  # the night after it, Berlin's clocks go forward: a 23-hour day follows
        await store.history_append([event(datetime.combine(day0, time(8), zone), 0, "boot", "0.1.0"),
                                    event(datetime.combine(day0, time(8), zone), 1, "status", "Available")])
        clock = Clock(datetime.combine(day0 + timedelta(days=1), time(0, 0, 30), zone))
        kpi = DailyKpi(VENDOR, store, ZONE, 1, enqueue, clock)
        assert await kpi.send_due() == []  # half a minute after midnight: the day's last events may be unwritten
        clock.at += timedelta(minutes=1)
        assert await kpi.send_due() == [day0]
        assert await kpi.send_due() == []
        message = queued[0]
        assert (message.action, message.payload["vendorId"], message.payload["messageId"]) == (
            "DataTransfer", VENDOR, "DailyKpi")
        data = json.loads(message.payload["data"])
        assert data["connectors"][0]["uptime_percent"] == 100.0 and data["from"] == "2026-03-27T23:00:00+00:00"
        clock.at = datetime.combine(day0 + timedelta(days=2), time(0, 5), zone)
        assert await kpi.send_due() == [day0 + timedelta(days=1)]
        short = json.loads(queued[1].payload["data"])
        assert (short["from"], short["to"]) == ("2026-03-28T23:00:00+00:00", "2026-03-29T22:00:00+00:00")
        assert short["charger"]["outage_s"] == 0 and short["connectors"][0]["sessions"] == 0
        clock.at = datetime.combine(day0 + timedelta(days=200), time(1), zone)  # off for months
        caught_up = await kpi.send_due()
        assert len(caught_up) == MAX_CATCH_UP_DAYS and caught_up[-1] == day0 + timedelta(days=199)
        assert await store.get_kv(KV_LAST_DAY) == caught_up[-1].isoformat()
        later = DailyKpi(VENDOR, store, ZONE, 1, enqueue, Clock(datetime(1970, 1, 2, tzinfo=zone)))
        assert await later.send_due() == []  # the system clock is not set yet
    finally:
        await store.close()


async def test_days_before_the_charger_was_installed_are_not_sent(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "chargepoint.db")
    queued: list[Any] = []

    async def enqueue(messages: Any) -> None:
        queued.extend(messages)

    try:
        kpi = DailyKpi(VENDOR, store, ZONE, 1, enqueue, Clock(datetime(2026, 5, 2, 1, tzinfo=ZoneInfo(ZONE))))
        assert await kpi.send_due() == [] and queued == []
        assert await store.get_kv(KV_LAST_DAY) == "2026-05-01"  # nothing to say, and done with
    finally:
        await store.close()
