"""The dashboard's report (chargepoint/web/report.py, with chargepoint/analytics/period_report.py) is the one
``chargepoint report --json`` prints: the same figures from the same database, read on a connection of its own."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from chargepoint.cli.report import build_report
from chargepoint.store import HistoryEvent, ImportedSession, Store
from chargepoint.web.report import REPORT_DAYS, ReportReader, ReportSettings, period_figures

DAY0 = datetime(2026, 11, 2, tzinfo=UTC)
H = timedelta(hours=1)


def event(at: datetime, connector_id: int, kind: str, value: str, detail: str = "") -> HistoryEvent:
    return HistoryEvent(at.isoformat(timespec="microseconds"), 0.0, 1, connector_id, kind, value, detail)


async def fill(database: Path, day0: datetime) -> None:
    """Two connectors: a ground fault, a mains loss, an exclusion, sessions of our own and an imported one."""
    store = await Store.open(database)
    try:
        await store.history_append([
            event(day0, 0, "boot", "0.1.0"),
            event(day0, 1, "status", "Available"), event(day0, 2, "status", "Available"),
            event(day0 + 10 * H, 2, "status", "Faulted", "GroundFailure"),
            event(day0 + 10 * H, 2, "fault", "GroundFailure", "raised"),
            event(day0 + 12 * H, 2, "fault", "GroundFailure", "cleared"),
            event(day0 + 12 * H, 2, "status", "Available"),
            event(day0 + 14 * H, 1, "status", "Charging"), event(day0 + 15 * H, 1, "status", "Available"),
            *(event(day0 + 20 * H, n, kind, value, detail) for n in (1, 2)
              for kind, value, detail in (("mains", "lost", ""), ("status", "Unavailable", "mains"))),
            *(event(day0 + 21 * H, n, kind, value) for n in (1, 2) for kind, value in (("mains", "back"),
                                                                                          ("status", "Available"))),
        ])
        await store.add_exclusion(2, day0 + 11 * H, day0 + 11.5 * H, "maintenance")
        for connector_id, start_h, energy_Wh in ((1, 8, 10_000), (1, 14, 5_000), (2, 15, 7_500)):
            session = await store.begin_session(connector_id, "CARD", 1000, day0 + start_h * H)
            await store.end_session(session.session_id, 1000 + energy_Wh, day0 + (start_h + 1) * H, "Local")
        await store.import_sessions([ImportedSession(
            (day0 + 30 * H).isoformat(), (day0 + 31 * H).isoformat(), 2, 4_000, "OTHER", None, "csms.csv")])
    finally:
        await store.close()


def read_only(database: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/Los_Angeles"])
async def test_the_figures_are_those_of_chargepoint_report(tmp_path: Path, zone: str) -> None:
    database = tmp_path / "chargepoint.db"
    await fill(database, DAY0)
    start, end = DAY0 - timedelta(days=3), DAY0 + timedelta(days=3)
    conn = read_only(database)
    try:
        ours = period_figures(conn, 2, start, end, ZoneInfo(zone), "EUR")
        theirs = build_report(conn, 2, start, end, ZoneInfo(zone), "EUR")
    finally:
        conn.close()
    assert ours == theirs
    assert ours["usage"]["sessions"] == 4
    assert [c["faults"] for c in ours["connectors"]] == [0, 1]


async def test_the_reader_reports_the_last_30_days_and_keeps_it_a_while(tmp_path: Path) -> None:
    database = tmp_path / "chargepoint.db"
    now = datetime.now(UTC)
    await fill(database, now - timedelta(days=2))
    reader = ReportReader(ReportSettings(database, 2, UTC, "EUR"), cache_s=60)
    try:
        first = await reader.report()
        assert datetime.fromisoformat(first["to"]) - datetime.fromisoformat(first["from"]) == timedelta(
            days=REPORT_DAYS)
        assert abs((datetime.fromisoformat(first["to"]) - now).total_seconds()) < 60
        assert first["usage"]["sessions"] == 4  # three of its own and the imported one
        assert len(first["usage"]["hour_of_week_occupancy"]) == 168
        assert await reader.report() is first  # kept: a dashboard reload costs no second pass
    finally:
        reader.close()


async def test_a_fresh_report_once_the_cache_is_stale(tmp_path: Path) -> None:
    database = tmp_path / "chargepoint.db"
    await fill(database, datetime.now(UTC) - timedelta(days=1))
    reader = ReportReader(ReportSettings(database, 2, UTC, "EUR"), cache_s=0)
    try:
        assert await reader.report() is not await reader.report()
    finally:
        reader.close()


async def test_a_closed_reader_computes_nothing_more(tmp_path: Path) -> None:
    database = tmp_path / "chargepoint.db"
    await fill(database, DAY0)
    reader = ReportReader(ReportSettings(database, 2, UTC, "EUR"))
    reader.close()
    with pytest.raises((RuntimeError, sqlite3.OperationalError)):
        await reader.report()
