"""``chargepoint history import --csv FILE`` and ``history export --csv|--json``: sessions from a CSMS export or an
earlier charger join the charger's own for reports and forecasts; the export writes the same columns, so one
charger's history can be imported by its successor.

Import columns: ``start`` and ``stop`` (ISO 8601 with offset), ``connector``, ``energy_Wh``, optionally ``id_tag``
and ``cost``. Every row is checked before anything is written; an error names the line and the column, and
nothing is imported. Importing the same file again adds nothing.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from chargepoint.cli.common import _load, config_option, read_database
from chargepoint.store import history as _history
from chargepoint.store.history import ImportedSession

REQUIRED = ("start", "stop", "connector", "energy_Wh")
OPTIONAL = ("id_tag", "cost")
EXPORT_COLUMNS = (*REQUIRED, *OPTIONAL, "source")
EXIT_INVALID = 1



@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


def _time(text: str, column: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{column} {text!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise ValueError(f"{column} {text!r} has no UTC offset")
    return at


def parse_sessions_csv(text: str, source: str, connectors: int) -> tuple[list[ImportedSession], list[RowError]]:
    """The sessions of a CSV text, or the errors of its rows (line numbers count the header as line 1)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        return [], [RowError(1, f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (needed: "
                                f"{', '.join(REQUIRED)}; optional: {', '.join(OPTIONAL)})")]
    sessions: list[ImportedSession] = []
    errors: list[RowError] = []
    for line, raw in enumerate(reader, start=2):
        if None in raw:  # DictReader keeps the surplus of a row under None (a decimal comma not quoted ...)
            errors.append(RowError(line, f"{len(header) + len(raw[None])} fields, the header has {len(header)} "
                                         "(quote a value that holds a comma)"))
            continue
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        try:
            start, stop = _time(row["start"], "start"), _time(row["stop"], "stop")
            if stop < start:
                raise ValueError(f"stop {row['stop']} is before start {row['start']}")
            try:
                connector = int(row["connector"])
            except ValueError:
                raise ValueError(f"connector {row['connector']!r} is not a number") from None
            if not 1 <= connector <= connectors:
                raise ValueError(f"connector {connector} does not exist (this charger has 1 to {connectors})")
            try:
                energy_Wh = int(Decimal(row["energy_Wh"]))
            except (InvalidOperation, ValueError):
                raise ValueError(f"energy_Wh {row['energy_Wh']!r} is not a number") from None
            if energy_Wh < 0:
                raise ValueError(f"energy_Wh {energy_Wh} is negative")
            cost: Decimal | None = None
            if row.get("cost"):
                try:
                    cost = Decimal(row["cost"])
                except InvalidOperation:
                    raise ValueError(f"cost {row['cost']!r} is not an amount") from None
                if not cost.is_finite() or cost < 0:
                    raise ValueError(f"cost {row['cost']!r} is not an amount of money")
        except ValueError as exc:
            errors.append(RowError(line, str(exc)))
            continue
        sessions.append(ImportedSession(start.isoformat(), stop.isoformat(), connector, energy_Wh,
                                        row.get("id_tag") or None, cost, source))
    return sessions, errors


@click.group(name="history")
def history_group() -> None:
    """Import sessions from a CSMS export or an earlier charger; export the charger's sessions."""


@history_group.command(name="import")
@config_option
@click.option("--csv", "csv_path", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="CSV with columns start, stop, connector, energy_Wh[, id_tag, cost].")
def import_command(config_path: Path, csv_path: Path) -> None:
    """Import sessions; all rows or none. Importing the same rows again adds nothing."""
    config = _load(config_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"error: {csv_path}: cannot read ({exc})", err=True)
        sys.exit(2)
    sessions, errors = parse_sessions_csv(text, csv_path.name, config.charger.connectors)
    if errors:
        for error in errors[:20]:
            click.echo(f"error: {csv_path}: {error}", err=True)
        if len(errors) > 20:
            click.echo(f"error: {csv_path}: {len(errors) - 20} more lines with errors", err=True)
        click.echo(f"nothing imported: {len(errors)} line{'s' if len(errors) > 1 else ''} with errors", err=True)
        sys.exit(EXIT_INVALID)
    database = config.storage.database_path
    if not database.is_file():
        click.echo(f"error: {database}: no database (has the charger run with this config?)", err=True)
        sys.exit(2)
    try:
        conn = sqlite3.connect(database, timeout=5)
        try:
            with conn:  # one transaction: all or none
                added = _history.import_sessions(conn, sessions, datetime.now(UTC).isoformat(timespec="microseconds"))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        click.echo(f"error: {database}: cannot import ({exc})", err=True)
        sys.exit(2)
    click.echo(f"imported {added} session{'' if added == 1 else 's'} from {csv_path} "
               f"({len(sessions) - added} already there)")


def _export_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    own = conn.execute(
        "SELECT s.started_at, s.stopped_at, s.connector_id, s.meter_start_Wh, s.meter_stop_Wh, s.id_tag, p.cost "
        "FROM sessions s LEFT JOIN session_pricing p ON p.session_id = s.session_id "
        "WHERE s.stopped_at IS NOT NULL ORDER BY s.started_at").fetchall()
    for started, stopped, connector, start_Wh, stop_Wh, id_tag, cost in own:
        rows.append({"start": started, "stop": stopped, "connector": connector, "energy_Wh": stop_Wh - start_Wh,
                     "id_tag": id_tag, "cost": cost, "source": "charger"})
    for s in _history.imported_sessions(conn, "", "~"):
        rows.append({"start": s.start, "stop": s.stop, "connector": s.connector_id, "energy_Wh": s.energy_Wh,
                     "id_tag": s.id_tag, "cost": None if s.cost is None else str(s.cost), "source": s.source})
    rows.sort(key=lambda r: datetime.fromisoformat(r["start"]))
    return rows


@history_group.command(name="export")
@config_option
@click.option("--csv", "as_csv", is_flag=True, help="CSV, the columns 'history import' takes (and source).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def export_command(config_path: Path, as_csv: bool, as_json: bool) -> None:
    """Every finished session, the charger's own and imported ones, oldest first."""
    if as_csv == as_json:
        raise click.UsageError("give --csv or --json")
    rows, _ = read_database(config_path, "the sessions", _export_rows)
    if as_json:
        click.echo(json.dumps({"sessions": rows}))
        return
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in EXPORT_COLUMNS})
    click.echo(out.getvalue(), nl=False)
