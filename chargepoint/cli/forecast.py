"""``chargepoint forecast [--weeks N] [--json]``: daily sessions and energy for the coming weeks, the forecast's
back-tested error next to the seasonal-naive baseline's, and when the site needs more connectors.

Reads the database (read-only), so it works whether the daemon runs or not. The model is in
``chargepoint/analytics/forecast.py``; here: the history as daily figures in the site's time zone (the pricing
time zone), the public holidays of ``[forecast] country``, and the busiest hour's arrivals and plugged-in time from
the last four weeks.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import sqlite3
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from chargepoint.analytics.forecast import DayDemand, Forecast, forecast
from chargepoint.analytics.period import analyse_tally
from chargepoint.analytics.usage import Session
from chargepoint.cli import charts_html, charts_svg, charts_text
from chargepoint.cli.charts_data import WEEKDAYS, band
from chargepoint.cli.common import _load, config_option, read_database
from chargepoint.cli.report import write_html
from chargepoint.store.period import iter_sessions
from chargepoint.store.period import sessions as period_sessions
from chargepoint.store.rollup import period_tally

PROFILE_WEEKS = 4
PLOT_HISTORY_WEEKS = 4
EXIT_USAGE = 2



def holiday_dates(country: str, years: range) -> frozenset[date]:
    if not country:
        return frozenset()
    code, _, subdivision = country.partition("-")
    try:
        calendar = _country_calendar(code)
        found = calendar(subdiv=subdivision or None, years=list(years))
    except NotImplementedError:
        raise click.UsageError(f"[forecast] country = {country!r}: the holidays package knows no such country "
                               "(ISO 3166 code, e.g. DE or DE-BY)") from None
    return frozenset(found.keys())


def _country_calendar(code: str) -> Callable[..., Mapping[date, str]]:
    """The holidays package's class for one country, its module imported alone: the package's ``countries`` imports
    every country (8 MiB, a sixth of what a forecast may use on a small board). Should the package's layout change,
    it is asked the usual way."""
    import holidays  # only here: its data is large and only the forecast needs it
    from holidays import registry

    found = next(((module, entity) for module, (entity, *codes) in registry.COUNTRIES.items() if code in codes), None)
    if found is None:
        raise NotImplementedError(code)
    if "holidays.countries" not in sys.modules:
        spec = importlib.util.find_spec("holidays.countries")
        if spec is not None and spec.submodule_search_locations:
            package = types.ModuleType("holidays.countries")
            package.__path__ = list(spec.submodule_search_locations)
            sys.modules["holidays.countries"] = package
    try:
        calendar: Callable[..., Mapping[date, str]] = getattr(
            importlib.import_module(f"holidays.countries.{found[0]}"), found[1])
    except (ImportError, AttributeError):
        return functools.partial(holidays.country_holidays, code)
    return calendar


def daily_history(sessions: Iterable[Session], zone: tzinfo, today: date) -> tuple[date | None, list[DayDemand]]:
    """The day of the first session, and one figure per local day from it to the day before ``today``, days without
    sessions included as zero; the sessions taken in one pass (years of them need not sit in memory)."""
    by_day: dict[date, list[float]] = {}
    first: date | None = None
    for s in sessions:
        day = s.start.astimezone(zone).date()
        first = day if first is None or day < first else first
        if day < today:
            figures = by_day.setdefault(day, [0.0, 0.0])
            figures[0] += 1
            figures[1] += s.energy_Wh
    days = []
    day = first or today
    while day < today:
        sessions_n, energy_Wh = by_day.get(day, [0.0, 0.0])
        days.append(DayDemand(day, sessions_n, energy_Wh))
        day += timedelta(days=1)
    return first, days


def build_forecast(conn: sqlite3.Connection, connectors: int, zone: tzinfo, country: str, threshold: float,
                   weeks: int, now: datetime) -> tuple[Forecast, list[DayDemand]]:
    """The forecast, and the daily history it was made from (oldest first)."""
    today = now.astimezone(zone).date()
    first, history = daily_history(iter_sessions(conn, "", "~", "EUR"), zone, today)
    if first is None:
        return forecast([], frozenset(), weeks, [0.0] * 168, [0.0] * 168, 0.0, connectors, threshold), []
    holidays = holiday_dates(country, range(first.year, today.year + 3))
    # The busiest hour and how long drivers stay, from the recent weeks (what the site is like now).
    recent_start = max(datetime.combine(first, datetime.min.time(), zone),
                       datetime.combine(today - timedelta(weeks=PROFILE_WEEKS), datetime.min.time(), zone))
    recent_end = datetime.combine(today, datetime.min.time(), zone)
    if recent_start >= recent_end:
        recent_start = recent_end - timedelta(days=1)
    chosen = period_sessions(conn, _utc_text(recent_start), _utc_text(recent_end), "EUR")
    t = period_tally(conn, connectors, recent_start.timestamp(), recent_end.timestamp())
    _, recent = analyse_tally(t, chosen, [], connectors, zone)
    plugged_h = (sum((s.stop - s.start).total_seconds() for s in chosen) / len(chosen) / 3600) if chosen else 0.0
    result = forecast(history, holidays, weeks, recent.hour_of_week_arrivals, recent.hour_of_week_occupancy,
                      plugged_h, connectors, threshold)
    return result, history


def _utc_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def to_json(result: Forecast, history_days: int) -> dict[str, Any]:
    c = result.capacity
    return {
        "history_days": history_days,
        "daily": [{"date": d.day.isoformat(), "sessions": d.sessions, "energy_Wh": d.energy_Wh} for d in result.daily],
        "backtest": {"mape_percent": result.sessions_backtest.mape_percent,
                     "baseline_mape_percent": result.sessions_backtest.baseline_mape_percent,
                     "energy_mape_percent": result.energy_backtest.mape_percent,
                     "energy_baseline_mape_percent": result.energy_backtest.baseline_mape_percent,
                     "weeks": result.sessions_backtest.weeks},
        "capacity": {"busy_probability_at_peak": c.busy_probability_at_peak, "threshold": c.threshold,
                     "exceeded_on": None if c.exceeded_on is None else c.exceeded_on.isoformat(),
                     "connectors": c.connectors, "peak_hour_of_week": c.peak_hour_of_week,
                     "arrivals_per_hour_at_peak": c.arrivals_per_hour_at_peak, "mean_plugged_h": c.mean_plugged_h,
                     "offered_load_erlang": c.offered_load_erlang},
        "hour_of_week_occupancy": result.hour_of_week_occupancy,
    }


def _summary(data: dict[str, Any]) -> list[str]:
    """The back-test and the capacity advice, in words."""
    lines = []
    b = data["backtest"]
    if b["mape_percent"] is None:
        lines.append("Back-test: not enough history yet (three weeks are needed)")
    else:
        lines.append(f"Back-test over {b['weeks']} weeks: sessions off by {b['mape_percent']} % a day on average "
                     f"(same weekday last week: {b['baseline_mape_percent']} %)")
    c = data["capacity"]
    if c["peak_hour_of_week"] is None:
        lines.append("Capacity: no sessions in the last four weeks to judge by")
        return lines
    peak = c["peak_hour_of_week"]
    lines.append(f"Capacity: busiest hour {WEEKDAYS[peak // 24]} {peak % 24:02d}:00, {c['arrivals_per_hour_at_peak']} "
                 f"arrivals an hour staying {c['mean_plugged_h']} h: a driver finds all {c['connectors']} connectors "
                 f"busy with probability {c['busy_probability_at_peak']:.1%} (threshold {c['threshold']:.0%})")
    if c["exceeded_on"] is None:
        lines.append("  not expected to pass the threshold within two years")
    else:
        lines.append(f"  add connectors by {c['exceeded_on']}: the threshold is passed from then on")
    return lines


def _print(data: dict[str, Any]) -> None:
    click.echo(f"Forecast from {data['history_days']} days of history")
    for d in data["daily"]:
        weekday = WEEKDAYS[date.fromisoformat(d["date"]).weekday()]
        click.echo(f"  {d['date']} {weekday}  {d['sessions']:6.1f} sessions  {d['energy_Wh'] / 1000:8.1f} kWh")
    for line in _summary(data):
        click.echo(line)


def _chart_series(data: dict[str, Any], history: list[DayDemand]
                  ) -> tuple[list[tuple[str, float]], list[tuple[str, float]], tuple[list[float], list[float]] | None]:
    """The sessions of the last weeks of history (as many as are forecast, at least four), the forecast's, and its
    band: the forecast +- its back-tested error."""
    shown = history[-max(PLOT_HISTORY_WEEKS, len(data["daily"]) // 7) * 7:]
    past = [(d.day.isoformat(), d.sessions) for d in shown]
    ahead = [(d["date"], float(d["sessions"])) for d in data["daily"]]
    return past, ahead, band([v for _, v in ahead], data["backtest"]["mape_percent"])


def text_chart(data: dict[str, Any], history: list[DayDemand], width: int, lines: int) -> str:
    past, ahead, error_band = _chart_series(data, history)
    dates = iter(charts_text.short_dates([d for d, _ in past + ahead]))
    past = [(next(dates), v) for _, v in past]
    ahead = [(next(dates), v) for _, v in ahead]
    return charts_text.forecast_chart(past, ahead, error_band, "Sessions per day: history and forecast", width,
                                      charts_text.plot_height(lines))


def html_forecast(data: dict[str, Any], history: list[DayDemand]) -> str:
    past, ahead, error_band = _chart_series(data, history)
    fragments = [
        charts_html.paragraph(f"From {data['history_days']} days of history. The shaded band is the forecast +- its "
                              "back-tested error.", "note"),
        charts_html.figure(charts_svg.forecast_chart(past, ahead, error_band, "Sessions per day", "sessions")),
        *(charts_html.paragraph(line) for line in _summary(data)),
        charts_html.table(("date", "weekday", "sessions", "energy"), [
            (d["date"], WEEKDAYS[date.fromisoformat(d["date"]).weekday()], f"{d['sessions']:.1f}",
             f"{d['energy_Wh'] / 1000:.1f} kWh") for d in data["daily"]]),
    ]
    return charts_html.page("Demand forecast and capacity", fragments)


@click.command(name="forecast")
@config_option
@click.option("--weeks", default=4, show_default=True, type=click.IntRange(1, 26), help="Weeks to forecast.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-plot", "no_plot", is_flag=True, help="Leave the chart out of the text output.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the forecast with its chart as a standalone HTML file.")
def forecast_command(config_path: Path, weeks: int, as_json: bool, no_plot: bool, html_path: Path | None) -> None:
    """Sessions and energy per day for the coming weeks, the forecast's tested error, and capacity advice."""
    config = _load(config_path)
    zone = ZoneInfo(config.pricing.time_zone)
    f = config.forecast
    try:
        (result, history), _ = read_database(config_path, "the history", lambda conn: build_forecast(
            conn, config.charger.connectors, zone, f.country, f.busy_threshold, weeks, datetime.now(UTC)))
    except click.UsageError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_USAGE)
    data = to_json(result, len(history))
    if as_json:
        click.echo(json.dumps(data))
    else:
        _print(data)
        if not no_plot:
            click.echo()
            click.echo(text_chart(data, history, *charts_text.terminal_size()))
    if html_path is not None:
        write_html(html_path, html_forecast(data, history))
