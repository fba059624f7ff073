"""``chargepoint ledger verify | export``: the tamper-evident ledger, read straight from the database (read-only),
so it works whether the daemon runs or not."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import click

from chargepoint.cli.common import read_database
from chargepoint.store import ledger as _ledger

EXIT_BROKEN = 1


@click.group(name="ledger")
def ledger_group() -> None:
    """The tamper-evident ledger of sessions and payments."""


@ledger_group.command(name="verify")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("/etc/chargepoint/config.toml"), envvar="CHARGEPOINT_CONFIG", show_default=True,
              help="Configuration file (TOML).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify(config_path: Path, as_json: bool) -> None:
    """Check every record's hash, order and signature. Exit 0 if intact, 1 at the first broken, missing or
    reordered record (named), 2 if the ledger cannot be read."""

    def work(conn: sqlite3.Connection) -> tuple[list[tuple[int, str, str, str, str, str, str | None]], str | None]:
        stored_key = conn.execute("SELECT value FROM kv WHERE key = ?", (_ledger.PUBLIC_KEY_KV,)).fetchone()
        return _ledger.raw_rows(conn), None if stored_key is None else str(stored_key[0])

    (rows, stored_key), config = read_database(config_path, "the ledger", work)
    state_dir = config.storage.dir
    device_key = _ledger.public_key_of(state_dir / _ledger.KEY_FILE)
    key_source = "the device key" if device_key else "the key recorded in the database"
    if device_key and stored_key and device_key != stored_key:
        verdict = _ledger.Verdict(False, 0, None, None, "the database names another signing key than the device's")
    else:
        verdict = _ledger.verify(rows, device_key or stored_key)
    if as_json:
        click.echo(json.dumps({"ok": verdict.ok, "records": verdict.records, "head_seq": verdict.head_seq,
                               "head_hash": verdict.head_hash, "problem": verdict.problem, "signed": verdict.signed}))
    elif verdict.ok:
        head = f"head #{verdict.head_seq} {verdict.head_hash}" if verdict.head_seq else "empty"
        signed = f", every record signed by {key_source}" if verdict.signed else ", not signed"
        click.echo(f"ledger intact: {verdict.records} records, {head}{signed}")
    else:
        click.echo(f"ledger BROKEN: {verdict.problem} ({verdict.records} records intact before it)", err=True)
    sys.exit(0 if verdict.ok else EXIT_BROKEN)


@ledger_group.command(name="export")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("/etc/chargepoint/config.toml"), envvar="CHARGEPOINT_CONFIG", show_default=True,
              help="Configuration file (TOML).")
@click.option("--since", "since_seq", default=0, type=click.IntRange(min=0), help="Only records after this one.")
def export(config_path: Path, since_seq: int) -> None:
    """Every record as a JSON line, with its hashes and signature (the chain, for an auditor)."""
    records, _ = read_database(config_path, "the ledger", lambda conn: _ledger.records(conn, since_seq))
    for record in records:
        click.echo(json.dumps(record.to_json(), sort_keys=True))
