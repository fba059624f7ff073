"""``chargepoint report`` and ``chargepoint availability exclude`` on a real database file, run as a technician would
(a subprocess, the daemon not running): the outside contract's JSON fields, the figures, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chargepoint.store import HistoryEvent, Store

ROOT = Path(__file__).resolve().parents[2]
DAY0 = datetime(2026, 11, 2, tzinfo=UTC)
H = timedelta(hours=1)


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargepoint", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def event(at: datetime, connector_id: int, kind: str, value: str, detail: str = "") -> HistoryEvent:
    return HistoryEvent(at.isoformat(timespec="microseconds"), 0.0, 1, connector_id, kind, value, detail)


@pytest.fixture
async def charger_day(tmp_path: Path) -> Path:
    """Two connectors, one day: connector 2 faulted 10:00-12:00 (GroundFailure); mains lost 20:00-21:00 on both;
    two sessions on connector 1 (10 kWh and 5 kWh), one on connector 2 (7.5 kWh)."""
    store = await Store.open(tmp_path / "chargepoint.db")
    try:
        await store.history_append([
            event(DAY0, 0, "boot", "0.1.0"),
            event(DAY0, 1, "status", "Available"), event(DAY0, 2, "status", "Available"),
            event(DAY0 + 10 * H, 2, "status", "Faulted", "GroundFailure"),
            event(DAY0 + 10 * H, 2, "fault", "GroundFailure", "raised"),
            event(DAY0 + 12 * H, 2, "fault", "GroundFailure", "cleared"),
            event(DAY0 + 12 * H, 2, "status", "Available"),
            *(event(DAY0 + 20 * H, n, kind, value, detail) for n in (1, 2)
              for kind, value, detail in (("mains", "lost", ""), ("status", "Unavailable", "mains"))),
            *(event(DAY0 + 21 * H, n, kind, value) for n in (1, 2) for kind, value in (("mains", "back"),
                                                                                          ("status", "Available"))),
        ])
        for connector_id, start_h, energy_Wh in ((1, 8, 10_000), (1, 14, 5_000), (2, 15, 7_500)):
            session = await store.begin_session(connector_id, "CARD", 1000, DAY0 + start_h * H)
            await store.end_session(session.session_id, 1000 + energy_Wh, DAY0 + (start_h + 1) * H, "Local")
    finally:
        await store.close()
    config = tmp_path / "config.toml"
    config.write_text(f'[hardware]\nbackend = "sim"\n[charger]\nconnectors = 2\n[storage]\ndir = "{tmp_path}"\n')
    return config


def report(config: Path, *args: str) -> dict[str, Any]:
    done = cli(config, "report", "--from", "2026-11-02T00:00:00+00:00", "--to", "2026-11-03T00:00:00Z", "--json",
               *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_report_gives_uptime_sessions_energy_and_faults_per_connector_and_for_the_charger(
        charger_day: Path) -> None:
    result = report(charger_day)
    assert (result["from"], result["to"]) == ("2026-11-02T00:00:00+00:00", "2026-11-03T00:00:00+00:00")
    one, two = result["connectors"]
    assert (one["id"], one["uptime_percent"], one["sessions"], one["energy_Wh"], one["faults"]) == (
        1, 100.0, 2, 15_000, 0)  # the mains loss is the grid's
    assert (two["id"], two["sessions"], two["energy_Wh"], two["faults"]) == (2, 1, 7_500, 1)
    assert two["uptime_percent"] == pytest.approx(100 * 22 / 24, abs=0.001)
    assert two["outages"][0] == {"start": "2026-11-02T10:00:00+00:00", "end": "2026-11-02T12:00:00+00:00",
                                 "duration_s": 7200, "cause": "Faulted:GroundFailure", "excluded_s": 0}
    assert two["excluded_s"] == 3600 and two["outage_s"] == 3 * 3600
    assert two["mttr_min"] == 120.0 and two["status_s"]["Faulted"] == 7200
    charger = result["charger"]
    assert (charger["sessions"], charger["energy_Wh"], charger["faults"]) == (3, 22_500, 1)
    use = result["usage"]
    assert (use["sessions"], use["energy_Wh"], use["unique_cards"], use["turned_away"]) == (3, 22_500, 1, 0)
    assert use["days"] == [{"date": "2026-11-02", "sessions": 3, "energy_Wh": 22_500, "revenue": {}}]
    assert use["average_power_W"] == round((10_000 + 5_000 + 7_500) / 3)  # each session took one hour
    assert len(use["hour_of_week_occupancy"]) == len(use["hour_of_week_arrivals"]) == 168
    assert charger["uptime_percent"] == pytest.approx(100 * 46 / 48, abs=0.001)


def test_declared_maintenance_is_left_out_of_the_count(charger_day: Path) -> None:
    done = cli(charger_day, "availability", "exclude", "--from", "2026-11-02T11:00:00+01:00", "--to",
               "2026-11-02T13:00:00+01:00", "--reason", "maintenance", "--connector", "2", "--note", "ticket 42")
    assert done.returncode == 0, done.stderr
    assert "maintenance, connector 2, 2026-11-02T10:00:00+00:00 to 2026-11-02T12:00:00+00:00" in done.stdout
    two = report(charger_day)["connectors"][1]
    assert two["outages"][0]["excluded_s"] == 7200
    assert two["uptime_percent"] == 100.0


def test_the_text_report_names_each_outage(charger_day: Path) -> None:
    done = cli(charger_day, "report", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-03T00:00:00Z")
    assert done.returncode == 0, done.stderr
    assert "connector 2: 2026-11-02T10:00:00+00:00 .. 2026-11-02T12:00:00+00:00 Faulted:GroundFailure" in done.stdout
    assert "91.67 %" in done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--from", "yesterday"), "is not an ISO 8601 time"),
    (("--from", "2026-11-02T00:00:00"), "has no UTC offset"),
    (("--from", "2026-11-03T00:00:00Z", "--to", "2026-11-02T00:00:00Z"), "is not before --to"),
])
def test_bad_times_are_refused_naming_the_option(charger_day: Path, args: tuple[str, ...], message: str) -> None:
    done = cli(charger_day, "report", *args)
    assert done.returncode == 2 and message in done.stderr


def test_an_unknown_exclusion_reason_is_refused(charger_day: Path) -> None:
    done = cli(charger_day, "availability", "exclude", "--from", "2026-11-02T00:00:00Z", "--to",
               "2026-11-02T01:00:00Z", "--reason", "weather")
    assert done.returncode == 2 and "'weather' is not one of" in done.stderr


# ----------------------------------------------------------------- pictures: terminal charts and the HTML file

PLOT_TITLES = ("Energy per day, kWh", "Occupancy by hour of the week", "Availability, one character = ")


def cli_not_a_terminal(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """As ``cli``, with no $COLUMNS/$LINES: the output is a pipe, so the charts take 80 x 24."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "chargepoint", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)


DAY_ARGS = ("report", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-03T00:00:00Z")


def test_the_text_report_draws_energy_occupancy_and_availability(charger_day: Path) -> None:
    done = cli_not_a_terminal(charger_day, *DAY_ARGS)
    assert done.returncode == 0, done.stderr
    assert "91.67 %" in done.stdout
    for title in PLOT_TITLES:
        assert title in done.stdout
    charts = done.stdout[done.stdout.index(PLOT_TITLES[0]):]
    assert max(len(line) for line in charts.splitlines()) <= 80
    assert "one character = 1 h from 2026-11-02T00:00+00:00" in done.stdout
    # Connector 2: up, faulted 10-12 (counted), the grid's outage 20-21 (not counted), up again.
    assert "connector 2  " + "█" * 10 + "XX" + "█" * 8 + "░" + "█" * 3 in done.stdout
    assert "connector 1  " + "█" * 20 + "░" + "█" * 3 in done.stdout
    assert "\x1b" not in done.stdout


def test_no_plot_leaves_the_charts_out(charger_day: Path) -> None:
    done = cli_not_a_terminal(charger_day, *DAY_ARGS, "--no-plot")
    assert done.returncode == 0, done.stderr
    assert "91.67 %" in done.stdout and "Faulted:GroundFailure" in done.stdout
    assert not any(title in done.stdout for title in PLOT_TITLES)
    assert "█" not in done.stdout


def test_json_has_no_charts_and_its_fields_are_unchanged(charger_day: Path) -> None:
    done = cli_not_a_terminal(charger_day, *DAY_ARGS, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"from", "to", "connectors", "charger", "usage"}
    assert done.stdout == cli_not_a_terminal(charger_day, *DAY_ARGS, "--json", "--no-plot").stdout


def test_an_empty_period_draws_without_failing(charger_day: Path) -> None:
    done = cli_not_a_terminal(charger_day, "report", "--from", "2025-01-01T00:00:00Z", "--to",
                              "2025-01-08T00:00:00Z")
    assert done.returncode == 0, done.stderr
    assert all(title in done.stdout for title in PLOT_TITLES)
    assert "connector 1  " + "·" * 56 + "\n" in done.stdout  # 3-hour steps; not yet installed


def test_html_writes_a_standalone_page_with_a_chart_per_picture_and_the_uptime(charger_day: Path,
                                                                               tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    done = cli_not_a_terminal(charger_day, *DAY_ARGS, "--json", "--html", str(page))
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"from", "to", "connectors", "charger", "usage"}  # stdout as before
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    root = ET.fromstring(text.removeprefix("<!DOCTYPE html>\n"))
    svgs = list(root.iter("{http://www.w3.org/2000/svg}svg"))
    assert len(svgs) == text.count("<svg") == 3  # availability timeline, energy per day, occupancy
    assert "91.67 %" in text and "100.00 %" in text and "Faulted:GroundFailure" in text
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text


def test_html_to_a_place_that_cannot_be_written_is_a_clear_error(charger_day: Path, tmp_path: Path) -> None:
    done = cli_not_a_terminal(charger_day, *DAY_ARGS, "--html", str(tmp_path / "no" / "such" / "dir.html"))
    assert done.returncode != 0 and "dir.html" in done.stderr
