"""``chargepoint`` command line for technicians. Errors name the file, the key and the reason."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import click

from chargepoint.cli.common import (
    EXIT_CONFIG,
    _load_for_daemon,
    _request,
    ask_daemon,
    config_option,
    interruptible,
    read_database,
)
from chargepoint.cli.lazy import LazyGroup
from chargepoint.config.loader import load_config_for_service
from chargepoint.errors import ConfigError, ControlError

SIM_ACTIONS = ("plug", "charge", "pause", "vent", "unplug", "tap", "fault", "clear-fault", "card")
ACTIONS_WITH_ARGUMENT = {"tap": "card UID", "fault": "fault kind", "card": "payment card token"}



# Commands in modules of their own, imported only when run (or listed by --help): a command pays in start-up time
# and memory only for what it uses, which a small board and a report's memory target notice.
LAZY_COMMANDS = {
    "board-sim": "chargepoint.cli.board_sim:board_sim",
    "ledger": "chargepoint.cli.ledger:ledger_group",
    "report": "chargepoint.cli.report:report_command",
    "availability": "chargepoint.cli.maintenance:availability_group",
    "unlock": "chargepoint.cli.maintenance:unlock_command",
    "diagnostics": "chargepoint.cli.maintenance:diagnostics_command",
    "backup": "chargepoint.cli.maintenance:backup_command",
    "restore": "chargepoint.cli.maintenance:restore_command",
    "completion": "chargepoint.cli.maintenance:completion_command",
    "doctor": "chargepoint.cli.doctor:doctor_command",
    "history": "chargepoint.cli.history:history_group",
    "forecast": "chargepoint.cli.forecast:forecast_command",
    "faults": "chargepoint.cli.faults:faults_command",
    "qr": "chargepoint.cli.qr:qr_command",
    "events": "chargepoint.cli.events:events_command",
    "payments": "chargepoint.cli.payments:payments_command",
    "logs": "chargepoint.cli.logs:logs_group",
    "config": "chargepoint.cli.config_cmd:config_group",
    "reload": "chargepoint.cli.config_cmd:reload_command",
    "update": "chargepoint.cli.update:update_command",
}


@click.group(cls=LazyGroup, lazy_commands=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chargepoint")
def cli() -> None:
    """Firmware and technician tool for the chargepoint AC charger."""


@cli.command(context_settings={"ignore_unknown_options": True})
@config_option
def run(config_path: Path) -> None:
    """Run the charger in the foreground (what the systemd service starts)."""
    from chargepoint.composition.boot import main as boot_main

    sys.exit(boot_main(["--config", str(config_path)]))


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with --watch: one a line).")
@click.option("--watch", is_flag=True, help="Show it again every --interval seconds until Ctrl-C.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.2, 3600), help="Seconds.")
def status(config_path: Path, as_json: bool, watch: bool, interval: float) -> None:
    """Show the state of the running charger: each connector's status and why, the meter per phase (stale when
    it has gone silent), the session, the CSMS link with its last error."""
    try:
        config, problems = load_config_for_service(config_path)
    except ConfigError as exc:
        _status_held_safe(config_path, exc, as_json)
    for problem in problems:
        click.echo(f"warning: {problem} (the charger keeps its last valid prices)", err=True)
    if watch:
        interruptible()
    try:
        while True:
            data = _request(config, {"op": "status"})["status"]
            if as_json:
                click.echo(json.dumps(data))
            else:
                if watch:
                    click.clear()
                click.echo("\n".join(status_lines(data)))
            if not watch:
                return
            time.sleep(interval)
    except KeyboardInterrupt:  # the way out of --watch
        return


CAUSE_WORDS = {"MainsLost": "mains lost", "StorageFull": "disk full", "Inoperative": "set inoperative"}


def status_lines(data: dict[str, Any]) -> list[str]:
    """``chargepoint status`` as text: what a technician reads to diagnose."""
    link = data.get("csms")
    if link is None:
        csms = "none (standalone)"
    else:
        csms = ("connected" if link["connected"] else "NOT connected") + (f" since {link['since']}" if link["since"]
                                                                          else "")
        if link.get("last_error") and not link["connected"]:
            csms += f"; last error {link['last_error_at']}: {link['last_error']}"
    lines = [f"CSMS: {csms}", f"mode: {data['mode']}    hardware: {data['hardware']}"]
    if data.get("restart_needed"):
        lines.append(f"config: changed keys wait for a restart: {', '.join(data['restart_needed'])} "
                     "(chargepoint config diff)")
    for c in data["connectors"]:
        why = ", ".join(CAUSE_WORDS.get(cause, cause) for cause in c.get("causes", []))
        line = (f"connector {c['id']}: {c['status']}" + (f" ({why})" if why else "")
                + (f" [OCPP {c['error_code']}]" if c["error_code"] != "NoError" else "")
                + f", pilot {c['pilot_state']}, offering {c['offered_current_A']:.1f} A"
                + f", contactor {'closed' if c['contactor_closed'] else 'open'}")
        lines.append(line)
        meter = c.get("meter")
        if meter is None:
            lines.append("  meter: no reading yet")
        else:
            phases = "  ".join(
                f"L{n} {p['voltage_V']:.0f} V {p['current_A']:.1f} A"
                + ("" if p["power_W"] is None else f" {p['power_W'] / 1000:.2f} kW")
                for n, p in enumerate(meter["phases"], start=1))
            state = (f"STALE: no answer for {meter['age_s']:.0f} s, last values shown" if meter["stale"]
                     else f"{meter['power_W'] / 1000:.2f} kW")
            lines.append(f"  meter: {state}; {meter['energy_Wh'] / 1000:.3f} kWh; {phases}")
        session = c["session"]
        if session is not None:
            cost = ""
            if session.get("cost") is not None:
                source = " (operator)" if session.get("cost_source") == "csms" else ""
                cost = f", {session['cost']} {session['currency']}{source}"
                if session.get("tariff_id"):
                    cost += f", tariff {session['tariff_id']}"
            lines.append(f"  session {session['transaction_id']} for {session['id_tag']}: "
                         f"{session['energy_Wh'] / 1000:.3f} kWh since {session['started_at']}{cost}")
    return lines


def _status_held_safe(config_path: Path, exc: ConfigError, as_json: bool) -> None:
    """The file does not validate: say why, and show what a daemon held safe by it reports (exit 2 either way)."""
    import tomllib

    from chargepoint.cli.control_client import request
    from chargepoint.composition.safe_mode import socket_path

    for problem in exc.problems:
        click.echo(f"error: {problem}", err=True)
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raw = {}
    try:
        import asyncio

        reply = asyncio.run(request(socket_path(raw), {"op": "status"}))
    except ControlError:
        click.echo("no daemon is answering", err=True)
        sys.exit(EXIT_CONFIG)
    data = reply.get("status", {})
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(f"charger: {data.get('mode', 'unknown')}; it is held safe (no charging) until the file validates")
    sys.exit(EXIT_CONFIG)


@cli.command()
@config_option
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one row per session) for a spreadsheet.")
def sessions(config_path: Path, limit: int, as_json: bool, as_csv: bool) -> None:
    """List the most recent charging sessions with energy, duration, tariff and cost (from the database when the
    daemon is stopped)."""
    reply = ask_daemon(_load_for_daemon(config_path), {"op": "sessions", "limit": limit})
    if reply is not None:
        rows = reply["sessions"]
    else:
        rows, _ = read_database(config_path, "the sessions", lambda conn: stored_sessions(conn, limit))
    if as_json:
        click.echo(json.dumps(rows))
        return
    if as_csv:
        click.echo(sessions_csv(rows), nl=False)
        return
    for row in rows:
        energy = "open" if row["energy_Wh"] is None else f"{row['energy_Wh'] / 1000:.3f} kWh"
        duration = "" if row.get("duration_s") is None else _duration(row["duration_s"])
        cost = "" if row.get("cost") is None else f"{row['cost']} {row['currency']}"
        click.echo(f"{row['started_at']}  connector {row['connector_id']}  {row['id_tag']:<20} {energy:>12} "
                   f"{duration:>8}  {row.get('tariff_id') or '-':<12} {cost:>12}  {row['stop_reason'] or ''}")


def stored_sessions(conn: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    """The sessions as the daemon shows them, read from its database (read-only)."""
    from chargepoint.runtime import views
    from chargepoint.store import ledger, pricing
    from chargepoint.store.store import read_recent_sessions

    records = read_recent_sessions(conn, limit)
    hashes = ledger.session_hashes(conn, [r.session_id for r in records])
    return [views.session_row(r, pricing.fetch(conn, r.session_id), hashes.get(r.session_id)) for r in records]


CSV_COLUMNS = ("session_id", "connector_id", "id_tag", "started_at", "stopped_at", "energy_Wh", "duration_s",
               "tariff_id", "package", "cost", "currency", "local_cost", "csms_cost", "stop_reason", "payment_method",
               "ledger_seq", "ledger_hash", "signed_meter_data", "meter_public_key")


def sessions_csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in CSV_COLUMNS})
    return out.getvalue()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


@cli.command()
@config_option
@click.argument("id_tag", required=False)
@click.option("--set", "balance", help="Set the card's balance to this amount.")
@click.option("--add", help="Top up the card's balance by this amount.")
def prepaid(config_path: Path, id_tag: str | None, balance: str | None, add: str | None) -> None:
    """Show or change prepaid balances held on the charger (debited when each session ends)."""
    if (balance is not None or add is not None) and id_tag is None:
        raise click.UsageError("--set and --add need an ID_TAG")
    if balance is not None and add is not None:
        raise click.UsageError("give --set or --add, not both")
    payload = {"op": "prepaid", "id_tag": id_tag, "balance": balance, "add": add}
    reply = _request(_load_for_daemon(config_path), payload)
    for account in reply["accounts"]:
        click.echo(f"{account['id_tag']:<20} {account['balance']:>12} {account['currency']}  "
                   f"(updated {account['updated_at']})")


@cli.command()
@config_option
@click.option("--connector", default=1, show_default=True, type=click.IntRange(min=1), help="Connector id.")
@click.option("--cable-A", "cable_A", type=click.Choice(["13", "20", "32", "63"]), default=None,
              help="plug: the rating the cable's PP resistor codes (default 32).")
@click.option("--decline", is_flag=True, help="card: the terminal declines it.")
@click.option("--timeout", "times_out", is_flag=True, help="card: the terminal never answers.")
@click.option("--partial", "partial", default=None, metavar="AMOUNT", help="card: only AMOUNT is approved.")
@click.argument("action", type=click.Choice(SIM_ACTIONS))
@click.argument("argument", required=False)
def sim(config_path: Path, connector: int, cable_A: str | None, decline: bool, times_out: bool, partial: str | None,
        action: str, argument: str | None) -> None:
    """Drive the simulated hardware of a running daemon.

    \b
    ACTION: plug [--cable-A N], charge, pause, vent, unplug, tap UID, fault KIND, clear-fault,
            card TOKEN [--decline | --timeout | --partial AMOUNT] (a payment card at the terminal)
    Fault kinds: ground-fault, lock-failure, fixed-cable, power-loss, weld, meter-offline,
    pilot-short, pilot-negative, diode-failure, overcurrent, contactor-stuck-open, pilot-stall,
    pp-open, rcd-wire-break, lock-forced, install-failure, tamper
    """
    if action in ACTIONS_WITH_ARGUMENT and not argument:
        raise click.UsageError(f"'{action}' needs a {ACTIONS_WITH_ARGUMENT[action]}")
    if action not in ACTIONS_WITH_ARGUMENT and argument:
        raise click.UsageError(f"'{action}' takes no argument (got {argument!r})")
    if cable_A is not None:
        if action != "plug":
            raise click.UsageError("--cable-A goes with 'plug' only")
        argument = cable_A
    outcomes = [o for o, given in (("decline", decline), ("timeout", times_out), (f"partial={partial}", partial))
                if given]
    if outcomes and action != "card":
        raise click.UsageError("--decline, --timeout and --partial go with 'card' only")
    if len(outcomes) > 1:
        raise click.UsageError("one of --decline, --timeout and --partial")
    if outcomes:
        argument = f"{argument}|{outcomes[0]}"
    reply = _request(_load_for_daemon(config_path),
                     {"op": "sim", "connector": connector, "action": action, "argument": argument})
    click.echo(reply["message"])


@cli.command(name="selftest")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of the checks.")
def selftest_command(config_path: Path, as_json: bool) -> None:
    """Check the devices of an idle charger: pilot, diode, RCD, contactor, meter, card reader, lock. Exit 1 on any
    failure. The contactor closes for 100 ms and the lock cycles when no EV is plugged in."""
    reply = _request(_load_for_daemon(config_path), {"op": "selftest"})
    checks = reply["checks"]
    if as_json:
        click.echo(json.dumps(checks))
    else:
        click.echo(f"{'connector':<10} {'check':<10} {'result':<7} detail")
        for row in checks:
            click.echo(f"{row['connector_id']:<10} {row['check']:<10} {row['result'].upper():<7} {row['detail']}")
    sys.exit(1 if any(row["result"] == "fail" for row in checks) else 0)


@cli.group(name="fault")
def fault_group() -> None:
    """Faults of the running charger: list them, clear latched ones after repair."""


@fault_group.command(name="list")
@config_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="History lines.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def fault_list(config_path: Path, limit: int, as_json: bool) -> None:
    """Active faults (latched or not) and the newest lines of the fault log."""
    reply = _request(_load_for_daemon(config_path), {"op": "fault-list", "limit": limit})
    data = {"active": reply["active"], "history": reply["history"]}
    if as_json:
        click.echo(json.dumps(data))
        return
    if not data["active"]:
        click.echo("no active faults")
    for f in data["active"]:
        kind = "latched: clear with 'chargepoint fault clear' after repair" if f["latched"] else "clears with its cause"
        click.echo(f"connector {f['connector_id']}: {f['code']} ({f['error_code']}), {kind}")
    if data["history"]:
        click.echo("history:")
    for h in data["history"]:
        click.echo(f"  {h['at']}  connector {h['connector_id']}  {h['code']:<20} {h['action']:<8} {h['source']}")


@fault_group.command(name="clear")
@config_option
@click.option("--connector", type=click.IntRange(min=1), default=None, help="Connector id (default: all).")
def fault_clear(config_path: Path, connector: int | None) -> None:
    """Clear latched faults whose condition is gone (weld repaired, RCD reset ...). Exit 1 if any remain."""
    reply = _request(_load_for_daemon(config_path), {"op": "fault-clear", "connector": connector})
    remaining = False
    for c in reply["connectors"]:
        cleared = ", ".join(c["cleared"]) or "nothing latched"
        click.echo(f"connector {c['connector_id']}: cleared {cleared}")
        if c["remaining"]:
            remaining = True
            click.echo(f"connector {c['connector_id']}: still latched (the condition is still there): "
                       f"{', '.join(c['remaining'])}", err=True)
    sys.exit(1 if remaining else 0)


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the temporary directory (config, database, log).")
@click.option("--charge-seconds", default=8.0, show_default=True, type=click.FloatRange(1, 120))
@click.option("--card", is_flag=True, help="Pay by card at the (simulated) payment terminal: pre-authorisation, "
              "capture of the session's cost, release of the rest.")
def demo(keep: bool, charge_seconds: float, card: bool) -> None:
    """Run a complete simulated charging session and narrate it."""
    from chargepoint.cli.demo import run_demo

    sys.exit(run_demo(keep=keep, charge_seconds=charge_seconds, card=card))


def main() -> None:
    # One name however it was started (python -m chargepoint too): usage lines and shell completion use it.
    cli(prog_name="chargepoint")
