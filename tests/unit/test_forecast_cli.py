"""``chargepoint forecast`` on a real database with ten weeks of imported history, run as an operator would: the
outside contract's JSON fields, public holidays of the configured country, and capacity advice."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from chargepoint.store import ImportedSession, Store

ROOT = Path(__file__).resolve().parents[2]


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargepoint", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


async def _history(database: Path, today: date) -> None:
    """Ten weeks up to yesterday: weekdays 8 sessions at 17:00-19:00 UTC, weekends 3, growing 1 % a day."""
    sessions = []
    for back in range(70, 0, -1):
        day = today - timedelta(days=back)
        count = round((3 if day.weekday() >= 5 else 8) * (1 + 0.01 * (70 - back)))
        for n in range(count):
            start = datetime(day.year, day.month, day.day, 17, tzinfo=UTC) + timedelta(minutes=7 * n)
            sessions.append(ImportedSession(start.isoformat(), (start + timedelta(hours=2)).isoformat(), 1 + n % 2,
                                            12_000, f"CARD{n}", None, "test"))
    store = await Store.open(database)
    try:
        await store.import_sessions(sessions)
    finally:
        await store.close()


def charger(directory: Path, country: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    asyncio.run(_history(directory / "chargepoint.db", datetime.now(UTC).date()))
    config = directory / "config.toml"
    config.write_text(f'[hardware]\nbackend = "sim"\n[charger]\nconnectors = 2\n[storage]\ndir = "{directory}"\n'
                      f'[forecast]\ncountry = "{country}"\nbusy_threshold = 0.5\n')
    return config


def forecast(config: Path, *args: str) -> dict[str, Any]:
    done = cli(config, "forecast", "--json", *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_forecast_gives_the_contract_fields_and_follows_the_weekly_pattern(tmp_path: Path) -> None:
    result = forecast(charger(tmp_path, ""), "--weeks", "2")
    today = datetime.now(UTC).date()
    daily = result["daily"]
    assert [d["date"] for d in daily] == [(today + timedelta(days=n)).isoformat() for n in range(14)]
    weekday = [d["sessions"] for d in daily if date.fromisoformat(d["date"]).weekday() < 5]
    weekend = [d["sessions"] for d in daily if date.fromisoformat(d["date"]).weekday() >= 5]
    assert min(weekday) > 2 * max(weekend)  # eight-ish against three-ish, grown by the trend
    # Energy is forecast on its own; every session drew 12 kWh, so it must agree with the sessions.
    assert all(abs(d["energy_Wh"] - d["sessions"] * 12_000) <= 0.02 * d["energy_Wh"] for d in daily)
    back = result["backtest"]
    assert back["weeks"] == 4 and back["mape_percent"] is not None and back["baseline_mape_percent"] is not None
    capacity = result["capacity"]
    assert capacity["threshold"] == 0.5 and capacity["connectors"] == 2
    assert capacity["peak_hour_of_week"] % 24 == 17  # weekdays 17:00 UTC (the site's time zone here: UTC)
    assert 0 < capacity["busy_probability_at_peak"] < 1
    assert capacity["exceeded_on"] is None or date.fromisoformat(capacity["exceeded_on"]) >= today
    assert result["history_days"] == 70


def test_public_holidays_of_the_configured_country_are_quieter(tmp_path: Path) -> None:
    with_holidays = forecast(charger(tmp_path / "de", "DE"), "--weeks", "26")
    without = forecast(charger(tmp_path / "none", ""), "--weeks", "26")
    year = datetime.now(UTC).year
    christmas = next(date(y, 12, 25) for y in (year, year + 1) if date(y, 12, 25) > datetime.now(UTC).date())
    if christmas.weekday() >= 5:
        christmas = date(christmas.year + 1, 1, 1)  # New Year's Day: a holiday on a weekday as well, mostly
    by_day_de = {d["date"]: d["sessions"] for d in with_holidays["daily"]}
    by_day = {d["date"]: d["sessions"] for d in without["daily"]}
    assert by_day_de[christmas.isoformat()] < 0.6 * by_day[christmas.isoformat()]


def test_an_unknown_country_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    done = cli(charger(tmp_path, "XX"), "forecast")
    assert done.returncode == 2 and "[forecast] country = 'XX'" in done.stderr


def test_the_text_forecast_says_when_to_add_connectors_or_that_it_need_not(tmp_path: Path) -> None:
    done = cli(charger(tmp_path, ""), "forecast", "--weeks", "1")
    assert done.returncode == 0, done.stderr
    assert "Back-test over 4 weeks" in done.stdout and "busiest hour" in done.stdout
    assert ("add connectors by" in done.stdout) or ("not expected to pass the threshold" in done.stdout)


def test_the_text_forecast_draws_the_history_the_forecast_and_its_band_unless_told_not_to(tmp_path: Path) -> None:
    config = charger(tmp_path, "")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # a pipe: 80 x 24
    done = subprocess.run([sys.executable, "-m", "chargepoint", "forecast", "--weeks", "2", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    chart = done.stdout[done.stdout.index("Sessions per day: history and forecast"):]
    assert "• history   o forecast   · +- back-tested error" in chart
    assert max(len(line) for line in chart.splitlines()) <= 80 and "\x1b" not in chart
    quiet = cli(config, "forecast", "--weeks", "2", "--no-plot")
    assert quiet.returncode == 0 and "Back-test over 4 weeks" in quiet.stdout
    assert "Sessions per day" not in quiet.stdout and "•" not in quiet.stdout
    assert forecast(config, "--weeks", "2") == forecast(config, "--weeks", "2", "--no-plot")


def test_html_writes_the_forecast_with_its_band(tmp_path: Path) -> None:
    config = charger(tmp_path, "")
    page = tmp_path / "forecast.html"
    done = cli(config, "forecast", "--weeks", "2", "--html", str(page))
    assert done.returncode == 0, done.stderr
    text = page.read_text(encoding="utf-8")
    root = ET.fromstring(text.removeprefix("<!DOCTYPE html>\n"))
    svg = "{http://www.w3.org/2000/svg}"
    assert len(list(root.iter(f"{svg}svg"))) == 1
    assert [p.get("class") for p in root.iter(f"{svg}polygon")] == ["band"]
    assert {p.get("class") for p in root.iter(f"{svg}polyline")} == {"history", "forecast"}
    assert "Back-test over 4 weeks" in text and "<script" not in text


def test_one_country_module_gives_the_holidays_the_package_gives() -> None:
    """The forecast imports only the configured country's module (memory on a small board): the same dates as the
    package's usual way, which imports every country (each asked in a Python of its own)."""
    countries = ("DE", "DE-BY", "US", "FR", "GB", "JP", "IN", "AT-9")
    light = ("import json, sys\nfrom chargepoint.cli.forecast import holiday_dates\n"
             f"print(json.dumps({{c: sorted(map(str, holiday_dates(c, range(2025, 2028)))) for c in {countries!r}}}))\n"
             "print(len([m for m in sys.modules if m.startswith('holidays.countries.')]))\n")
    usual = ("import json, holidays\n"
             f"print(json.dumps({{c: sorted(map(str, holidays.country_holidays(c.partition('-')[0], "
             f"subdiv=c.partition('-')[2] or None, years=range(2025, 2028)))) for c in {countries!r}}}))\n")
    light_out = subprocess.run([sys.executable, "-c", light], capture_output=True, text=True, check=True).stdout
    usual_out = subprocess.run([sys.executable, "-c", usual], capture_output=True, text=True, check=True).stdout
    light_dates, modules = light_out.splitlines()
    assert json.loads(light_dates) == json.loads(usual_out)
    assert len(json.loads(light_dates)["DE-BY"]) > len(json.loads(light_dates)["DE"]) > 20
    assert int(modules) < 30  # the seven countries asked (and any they build on), not all 200 and more
