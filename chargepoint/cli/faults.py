"""``chargepoint faults --history [--json]``: every fault with its code, start, end and duration, read from the
database (read-only), so it works while the daemon is stopped."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import click

from chargepoint.analytics.faults import FaultLine, fault_periods
from chargepoint.cli.common import config_option, read_database


def _lines(conn: sqlite3.Connection) -> list[FaultLine]:
    rows = conn.execute("SELECT at, connector_id, code, action, source FROM fault_log ORDER BY seq").fetchall()
    return [FaultLine(datetime.fromisoformat(at), connector_id, code, action, source)
            for at, connector_id, code, action, source in rows]


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat(timespec="seconds")


@click.command(name="faults")
@config_option
@click.option("--history", "history", is_flag=True, required=True, help="Every fault, with start, end and duration.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def faults_command(config_path: Path, history: bool, as_json: bool) -> None:
    """The fault history: each fault's code, connector, start, end (none while active), duration, whether it
    latched, what raised and what cleared it. Active faults: 'chargepoint fault list'."""
    lines, _ = read_database(config_path, "the fault log", _lines)
    now = datetime.now(UTC)
    periods = fault_periods(lines)
    rows = [{"connector_id": p.connector_id, "code": p.code, "start": _iso(p.start), "end": _iso(p.end),
             "duration_s": round(p.duration_s(now)), "active": p.end is None, "latched": p.latched,
             "raised_by": p.raised_by, "cleared_by": p.cleared_by} for p in periods]
    if as_json:
        click.echo(json.dumps({"faults": rows}))
        return
    if not rows:
        click.echo("no faults recorded")
    for r in rows:
        end = "still active" if r["active"] else f"until {r['end']}"
        latched = ", latched" if r["latched"] else ""
        click.echo(f"connector {r['connector_id']}  {r['code']:<24} {r['start']} {end} ({r['duration_s']} s{latched})")
