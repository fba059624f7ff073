"""``chargepoint report``: availability (as NEVI counts it) and sessions per connector and for the charger, and
``chargepoint availability exclude``: declare time that does not count (maintenance, vandalism ...).

The report reads the database directly (read-only), so it works whether the daemon runs or not: a technician can
read a charger's history while its service is stopped.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from chargepoint.analytics.period_report import iso
from chargepoint.cli import charts_html, charts_svg, charts_text
from chargepoint.cli.charts_data import report_timeline, week_grid
from chargepoint.cli.common import _load, config_option, read_database
from chargepoint.store import history as _history
from chargepoint.store.history import EXCLUSION_REASONS
from chargepoint.store.period import period_figures

DEFAULT_DAYS = 30



def parse_time(text: str, option: str) -> datetime:
    """ISO 8601 with an offset (a bare date means its midnight UTC); a clear error otherwise."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time (e.g. 2026-12-01T00:00:00+01:00)",
                                 param_hint=option) from None
    if at.tzinfo is None:
        if len(text) > 10:
            raise click.BadParameter(f"{text!r} has no UTC offset (add Z or +01:00)", param_hint=option)
        at = at.replace(tzinfo=UTC)
    return at


def _iso(at: datetime) -> str:
    return iso(at)


def build_report(conn: sqlite3.Connection, connectors: int, start: datetime, end: datetime,
                 zone: tzinfo = UTC, currency: str = "EUR") -> dict[str, Any]:
    return period_figures(conn, connectors, start, end, zone, currency)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


TABLE_HEADERS = ("", "uptime", "sessions", "energy", "faults", "outage", "excluded", "MTBF", "MTTR")


def _table_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """The availability table, one row per connector and one for the charger, as the text and HTML show it."""
    rows: Sequence[tuple[str, dict[str, Any]]] = [
        *((f"connector {c['id']}", c) for c in report["connectors"]), ("charger", report["charger"])]
    table: list[tuple[str, ...]] = []
    for name, c in rows:
        uptime = "-" if c["uptime_percent"] is None else f"{c['uptime_percent']:.2f} %"
        mtbf = "-" if c["mtbf_h"] is None else f"{c['mtbf_h']:.1f} h"
        mttr = "-" if c["mttr_min"] is None else f"{c['mttr_min']:.0f} min"
        table.append((name, uptime, str(c["sessions"]), f"{c['energy_Wh'] / 1000:.1f} kWh", str(c["faults"]),
                      _hours(c["outage_s"]), _hours(c["excluded_s"]), mtbf, mttr))
    return table


def _title(report: dict[str, Any]) -> str:
    return f"Availability and use, {report['from']} to {report['to']}"


def _use_line(report: dict[str, Any]) -> str:
    u = report["usage"]
    power = "-" if u["average_power_W"] is None else (f"{u['average_power_W'] / 1000:.1f} kW average, "
                                                      f"{u['peak_power_W'] / 1000:.1f} kW peak")
    revenue = ", ".join(f"{amount} {currency}" for currency, amount in u["revenue"].items()) or "-"
    return (f"Use: {u['sessions']} sessions, {u['energy_Wh'] / 1000:.1f} kWh, revenue {revenue}; {power}; "
            f"plugged in {_hours(u['plugged_s'])}, drawing {_hours(u['drawing_s'])}, idle after charging "
            f"{_hours(u['idle_after_charging_s'])}; {u['unique_cards']} cards; {u['turned_away']} drivers turned "
            "away (tried while no connector was free)")


def _print(report: dict[str, Any]) -> None:
    click.echo(f"{_title(report)} (uptime as NEVI counts it: grid loss and declared exclusions do not count)")
    click.echo(f"{'':<12} {'uptime':>9} {'sessions':>9} {'energy':>12} {'faults':>7} {'outage':>9} "
               f"{'excluded':>9} {'MTBF':>9} {'MTTR':>9}")
    for row in _table_rows(report):
        name, uptime, sessions, energy, faults, outage, excluded, mtbf, mttr = row
        click.echo(f"{name:<12} {uptime:>9} {sessions:>9} {energy:>12} {faults:>7} {outage:>9} {excluded:>9} "
                   f"{mtbf:>9} {mttr:>9}")
    click.echo(_use_line(report))
    for c in report["connectors"]:
        for o in c["outages"]:
            excluded = f", {o['excluded_s']} s excluded" if o["excluded_s"] else ""
            click.echo(f"  connector {c['id']}: {o['start']} .. {o['end']} {o['cause']} ({o['duration_s']} s"
                       f"{excluded})")


def text_charts(report: dict[str, Any], width: int, lines: int) -> str:
    """The report's pictures for the terminal: energy per day, occupancy by hour of the week, availability."""
    u = report["usage"]
    days = u["days"]
    names = [f"connector {c['id']}" for c in report["connectors"]]
    return "\n\n".join([
        charts_text.bar_chart(charts_text.short_dates([d["date"] for d in days]), [d["energy_Wh"] / 1000 for d in days],
                              "Energy per day, kWh", width, charts_text.plot_height(lines)),
        charts_text.heatmap(week_grid(u["hour_of_week_occupancy"]), width,
                            "Occupancy by hour of the week, local time"),
        charts_text.timeline(report_timeline(report, charts_text.timeline_columns(width, names)), "Availability"),
    ])


def html_report(report: dict[str, Any]) -> str:
    """The report as a standalone HTML page: its tables, and its charts as inline SVG."""
    u = report["usage"]
    days = u["days"]
    statuses = sorted({s for c in report["connectors"] for s in c["status_s"]})
    outages = [(f"connector {c['id']}", o["start"], o["end"], o["cause"], f"{o['duration_s']} s",
                f"{o['excluded_s']} s") for c in report["connectors"] for o in c["outages"]]
    fragments = [
        charts_html.paragraph("Uptime as the US NEVI rule counts it (23 CFR 680.116(b)): grid loss and declared "
                              "exclusions do not count.", "note"),
        charts_html.heading("Availability"),
        charts_html.table(TABLE_HEADERS, _table_rows(report)),
        charts_html.figure(charts_svg.timeline(report_timeline(report, 96), "Availability timeline")),
        charts_html.heading("Outages"),
        (charts_html.table(("", "start", "end", "cause", "duration", "excluded"), outages) if outages
         else charts_html.paragraph("None.")),
        charts_html.heading("Time per status"),
        charts_html.table(("", *statuses), [(f"connector {c['id']}", *(_hours(c["status_s"].get(s, 0))
                                                                       for s in statuses))
                                            for c in report["connectors"]]),
        charts_html.heading("Use"),
        charts_html.paragraph(_use_line(report)),
        charts_html.figure(charts_svg.bar_chart([d["date"] for d in days], [d["energy_Wh"] / 1000 for d in days],
                                                "Energy per day", "kWh")),
        charts_html.figure(charts_svg.heatmap(week_grid(u["hour_of_week_occupancy"]),
                                              "Occupancy by hour of the week (local time)")),
        charts_html.table(("date", "sessions", "energy", "revenue"), [
            (d["date"], d["sessions"], f"{d['energy_Wh'] / 1000:.1f} kWh",
             ", ".join(f"{amount} {currency}" for currency, amount in d["revenue"].items()) or "-") for d in days]),
    ]
    return charts_html.page(_title(report), fragments)


def write_html(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.FileError(str(path), hint=exc.strerror or str(exc)) from None
    click.echo(f"HTML written to {path}", err=True)


@click.command(name="report")
@config_option
@click.option("--from", "start_text", help="Start (ISO 8601 with offset); default: 30 days before --to.")
@click.option("--to", "end_text", help="End (ISO 8601 with offset); default: now.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-plot", "no_plot", is_flag=True, help="Leave the charts out of the text output.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the report with its charts as a standalone HTML file.")
def report_command(config_path: Path, start_text: str | None, end_text: str | None, as_json: bool, no_plot: bool,
                   html_path: Path | None) -> None:
    """Uptime per connector (NEVI 23 CFR 680.116(b)), time per status, outages, faults, MTBF, MTTR, sessions and
    energy, for a period, with charts (energy per day, occupancy by hour of the week, availability over time).
    Reads the database, so it works while the daemon is stopped."""
    end = datetime.now(UTC) if end_text is None else parse_time(end_text, "--to")
    start = end - timedelta(days=DEFAULT_DAYS) if start_text is None else parse_time(start_text, "--from")
    if not start < end:
        raise click.BadParameter(f"--from {_iso(start)} is not before --to {_iso(end)}", param_hint="--from")
    config = _load(config_path)
    zone = ZoneInfo(config.pricing.time_zone)
    result, _ = read_database(config_path, "the history", lambda conn: build_report(
        conn, config.charger.connectors, start, end, zone, config.pricing.currency))
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print(result)
        if not no_plot:
            click.echo()
            click.echo(text_charts(result, *charts_text.terminal_size()))
    if html_path is not None:
        write_html(html_path, html_report(result))


@click.command(name="exclude")
@config_option
@click.option("--from", "start_text", required=True, help="Start (ISO 8601 with offset).")
@click.option("--to", "end_text", required=True, help="End (ISO 8601 with offset).")
@click.option("--reason", required=True, type=click.Choice(EXCLUSION_REASONS), help="Why it does not count.")
@click.option("--connector", default=0, show_default=True, type=click.IntRange(0, 8),
              help="The connector (0: every connector).")
@click.option("--note", default="", help="A note for the record (a ticket number ...).")
def exclude(config_path: Path, start_text: str, end_text: str, reason: str, connector: int, note: str) -> None:
    """Record an exclusion; the report then leaves the outage it overlaps out of the count."""
    start, end = parse_time(start_text, "--from"), parse_time(end_text, "--to")
    if not start < end:
        raise click.BadParameter(f"--from {_iso(start)} is not before --to {_iso(end)}", param_hint="--from")
    database = _load(config_path).storage.database_path
    if not database.is_file():
        click.echo(f"error: {database}: no database (has the charger run with this config?)", err=True)
        sys.exit(2)
    try:
        conn = sqlite3.connect(database, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                added = _history.add_exclusion(conn, connector, start.astimezone(UTC).isoformat(
                    timespec="microseconds"), end.astimezone(UTC).isoformat(timespec="microseconds"), reason, note,
                    datetime.now(UTC).isoformat(timespec="microseconds"))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        click.echo(f"error: {database}: cannot record the exclusion ({exc})", err=True)
        sys.exit(2)
    where = "every connector" if connector == 0 else f"connector {connector}"
    click.echo(f"exclusion #{added.id} recorded: {reason}, {where}, {_iso(start)} to {_iso(end)}")
