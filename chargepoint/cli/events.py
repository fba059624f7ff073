"""``chargepoint events``: the security log (fraud and security events), read straight from the database
(read-only), so it works whether the daemon runs or not."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import click

from chargepoint.cli.common import _load
from chargepoint.store import security_log


@click.command(name="events")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("/etc/chargepoint/config.toml"), envvar="CHARGEPOINT_CONFIG", show_default=True,
              help="Configuration file (TOML).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, security_log.KEPT),
              help="Newest events to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def events_command(config_path: Path, limit: int, as_json: bool) -> None:
    """Security events, newest first: tampering, refused codes and certificates, failed logins, resets ..."""
    database = _load(config_path).storage.database_path
    if not database.is_file():
        click.echo(f"error: {database}: no database (has the charger run with this config?)", err=True)
        sys.exit(2)
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            entries = security_log.entries(conn, limit)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        click.echo(f"error: {database}: cannot read the security log ({exc})", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps({"events": [{"at": e.at, "type": e.kind, "tech_info": e.tech_info,
                                           "critical": e.critical, "sent_to_csms": e.queued} for e in entries]}))
        return
    if not entries:
        click.echo("no security events")
    for e in entries:
        flag = "!" if e.critical else " "
        click.echo(f"{e.at} {flag} {e.kind:<36} {e.tech_info}")
