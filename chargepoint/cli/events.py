"""``chargepoint events``: the security log (fraud and security events), read straight from the database
(read-only), so it works whether the daemon runs or not."""

from __future__ import annotations

import json
from pathlib import Path

import click

from chargepoint.cli.common import read_database
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
    entries, _ = read_database(config_path, "the security log", lambda conn: security_log.entries(conn, limit))
    if as_json:
        click.echo(json.dumps({"events": [{"at": e.at, "type": e.kind, "tech_info": e.tech_info,
                                           "critical": e.critical, "sent_to_csms": e.queued} for e in entries]}))
        return
    if not entries:
        click.echo("no security events")
    for e in entries:
        flag = "!" if e.critical else " "
        click.echo(f"{e.at} {flag} {e.kind:<36} {e.tech_info}")
