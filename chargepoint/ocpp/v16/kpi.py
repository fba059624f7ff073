"""The daily KPI summary: once a day, after local midnight (``[pricing] time_zone``), the previous day's availability
and use as an OCPP 1.6 DataTransfer, when ``[ocpp] kpi_vendor_id`` is set.

    DataTransfer {vendorId: <kpi_vendor_id>, messageId: "DailyKpi", data: "<JSON>"}

``data`` is one JSON object (``kpi_data``): the day, its zone and bounds, and per connector and for the charger the
figures ``chargepoint report --json`` gives for that day (uptime as NEVI counts it, sessions, energy, faults, outage
and excluded seconds, failed starts). docs/ocpp16.md describes it.

It goes through the durable outbox, so it waits while the CSMS is offline, in order with the transaction messages;
a CSMS that refuses it (CALLERROR, ``Rejected``, ``UnknownVendorId``) gets it once and never holds a transaction
message up (``is_kpi`` lets the outbox tell it apart). The last day queued is kept in the store, so a day is queued
once across restarts, and the days missed while the charger was off (up to ``MAX_CATCH_UP_DAYS``) follow at the next
start. The first day ever sent is yesterday's: a new summary does not replay the whole history.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from chargepoint.analytics.availability import Exclusion
from chargepoint.analytics.period_report import period_report
from chargepoint.analytics.timeline import Mark
from chargepoint.analytics.usage import Session
from chargepoint.errors import StoreError
from chargepoint.store import OutboxMessage, Store

log = logging.getLogger(__name__)

KPI_MESSAGE_ID = "DailyKpi"
DATA_VERSION = 1
KV_LAST_DAY = "ocpp.kpi.last_day"
SETTLE_S = 60.0  # after midnight, before the day counts as over: its last events are written once a second
CHECK_S = 300.0  # a wall clock set late (no RTC until NTP answers) or moved is noticed within this
MAX_CATCH_UP_DAYS = 31
CLOCK_PLAUSIBLE_FROM_YEAR = 2024  # before this the system clock is not set yet: no day is due

Enqueue = Callable[[Sequence[OutboxMessage]], Awaitable[None]]


def is_kpi(action: str, payload: Mapping[str, Any]) -> bool:
    """Whether an outbox message is a daily KPI summary."""
    return action == "DataTransfer" and payload.get("messageId") == KPI_MESSAGE_ID


def _figures(c: Mapping[str, Any]) -> dict[str, Any]:
    return {"uptime_percent": c["uptime_percent"], "sessions": c["sessions"], "energy_Wh": c["energy_Wh"],
            "faults": c["faults"], "outage_s": c["outage_s"], "excluded_s": c["excluded_s"],
            "failed_starts": c["failed_starts"]}


def kpi_data(day: date, zone_name: str, report: Mapping[str, Any]) -> dict[str, Any]:
    """The DataTransfer's ``data`` (before JSON encoding) from the day's report (``period_report``'s dict)."""
    return {
        "version": DATA_VERSION,
        "date": day.isoformat(),
        "time_zone": zone_name,
        "from": report["from"],
        "to": report["to"],
        "connectors": [{"id": c["id"], **_figures(c)} for c in report["connectors"]],
        "charger": _figures(report["charger"]),
    }


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The local day's first instant and the next day's (23 or 25 hours apart on the days the clocks change)."""
    return datetime.combine(day, time(), zone), datetime.combine(day + timedelta(days=1), time(), zone)


class DailyKpi:
    def __init__(self, vendor_id: str, store: Store, time_zone: str, connectors: int, enqueue: Enqueue,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.vendor_id = vendor_id
        self.store = store
        self.zone_name = time_zone
        self.zone = ZoneInfo(time_zone)
        self.connectors = connectors
        self._enqueue = enqueue
        self._now = now
        self._loaded = False
        self._last_day: date | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.send_due()
            except StoreError as exc:
                log.warning("daily KPI summary: cannot read the history now (%s); trying again later", exc)
            await asyncio.sleep(self._seconds_to_next_check())

    def _seconds_to_next_check(self) -> float:
        now = self._now()
        _, midnight = day_bounds(now.astimezone(self.zone).date(), self.zone)
        return max(1.0, min(CHECK_S, (midnight - now).total_seconds() + SETTLE_S))

    async def send_due(self) -> list[date]:
        """Queue the summary of every day that ended and was not queued yet; the days queued."""
        now = self._now()
        if now.year < CLOCK_PLAUSIBLE_FROM_YEAR:
            return []
        last_due = (now - timedelta(seconds=SETTLE_S)).astimezone(self.zone).date() - timedelta(days=1)
        if not self._loaded:
            text = await self.store.get_kv(KV_LAST_DAY)
            try:
                self._last_day = None if text is None else date.fromisoformat(text)
            except ValueError:
                log.warning("daily KPI summary: %s = %r is no date; starting again from yesterday", KV_LAST_DAY, text)
            self._loaded = True
        if self._last_day is None:
            day = last_due
        else:
            day = max(self._last_day + timedelta(days=1), last_due - timedelta(days=MAX_CATCH_UP_DAYS - 1))
        queued = []
        while day <= last_due:
            data = await self.summary(day)
            if data is not None:
                await self._enqueue([OutboxMessage("DataTransfer", {
                    "vendorId": self.vendor_id, "messageId": KPI_MESSAGE_ID,
                    "data": json.dumps(data, separators=(",", ":"))})])
                queued.append(day)
                log.info("daily KPI summary of %s queued", day)
            # After the message: a power cut in between sends the day twice rather than never (the date tells).
            await self.store.set_kv(KV_LAST_DAY, day.isoformat())
            self._last_day = day
            day += timedelta(days=1)
        return queued

    async def summary(self, day: date) -> dict[str, Any] | None:
        """The ``data`` of ``day``; None for a day before the charger was installed (nothing to say)."""
        start, end = day_bounds(day, self.zone)
        events = [Mark(datetime.fromisoformat(e.at).timestamp(), e.connector_id, e.kind, e.value, e.detail)
                  for e in await self.store.history_events(start, end)]
        sessions = [Session(r.started_at, r.stopped_at or r.last_meter_at, r.connector_id,
                            (r.meter_stop_Wh if r.meter_stop_Wh is not None else r.last_meter_Wh) - r.meter_start_Wh,
                            r.id_tag) for r, _ in await self.store.sessions_between(start, end)]
        sessions += [Session(datetime.fromisoformat(i.start), datetime.fromisoformat(i.stop), i.connector_id,
                             i.energy_Wh, i.id_tag) for i in await self.store.imported_sessions(start, end)]
        exclusions = [Exclusion(datetime.fromisoformat(x.start), datetime.fromisoformat(x.end), x.connector_id,
                                x.reason) for x in await self.store.exclusions(start, end)]
        report = period_report(events, sessions, exclusions, self.connectors, start, end, self.zone)
        if report["charger"]["period_s"] == 0 and not sessions:
            return None
        return kpi_data(day, self.zone_name, report)
