"""``chargepoint payments``: the card payment journal, read straight from the database (read-only), so it works
whether the daemon runs or not."""

from __future__ import annotations

import json
from pathlib import Path

import click

from chargepoint.cli.common import read_database
from chargepoint.store import payments as _payments


@click.command(name="payments")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("/etc/chargepoint/config.toml"), envvar="CHARGEPOINT_CONFIG", show_default=True,
              help="Configuration file (TOML).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Newest payments.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def payments_command(config_path: Path, limit: int, as_json: bool) -> None:
    """Card payments, newest first: connector, session, pre-authorised, captured, released, state, terminal
    reference. Open ones (pre-authorised, a capture or release not yet confirmed) are reconciled by the daemon."""
    records, _ = read_database(config_path, "the payments", lambda conn: _payments.listing(conn, limit))
    if as_json:
        rows = [{**r.to_json(), "status": r.state, "terminal_reference": _reference(r.terminal_id, r.receipt_no)}
                for r in records]
        click.echo(json.dumps({"payments": rows}))
        return
    if not records:
        click.echo("no card payments")
        return
    click.echo(f"{'created (UTC)':<26} {'conn':<4} {'status':<17} {'pre-auth':>9} {'captured':>9} {'released':>9} "
               f"{'card':<16} reference")
    for r in records:
        card = f"{r.card_scheme or ''} ****{r.card_last4}" if r.card_last4 else ""
        click.echo(f"{r.created_at[:26]:<26} {r.connector_id:<4} {r.state:<17} {_amount(r.preauthorized):>9} "
                   f"{_amount(r.captured):>9} {_amount(r.released):>9} {card:<16} "
                   f"{_reference(r.terminal_id, r.receipt_no) or ''}")


def _amount(value: object) -> str:
    return "" if value is None else str(value)


def _reference(terminal_id: str | None, receipt_no: int | None) -> str | None:
    return None if receipt_no is None else f"{terminal_id or '?'}/{receipt_no}"
