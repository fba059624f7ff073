"""``chargepoint config ...`` and ``chargepoint reload``: check, show, read and change the configuration file, and
have the running daemon take the changes that need no restart.

Read-only commands work while the daemon is stopped: what the CSMS set is read from the database (read-only), the
running configuration asked from the daemon only when it runs.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from chargepoint.cli.common import EXIT_CONFIG, _load, ask_daemon, config_option
from chargepoint.config import keys as config_keys
from chargepoint.config import site
from chargepoint.config.loader import redacted_json
from chargepoint.config.schema import Config
from chargepoint.errors import ConfigError

EXIT_NOT_RUNNING = 3



@click.group(name="config")
def config_group() -> None:
    """Check, show, read and change the configuration (changes are validated before they are written)."""


@config_group.command()
@config_option
def validate(config_path: Path) -> None:
    """Check the file, and the site it describes; exit 0 when valid (warnings on stderr), 2 with one line per
    problem otherwise."""
    config = _load(config_path)
    for warning in site.warnings(config, config_path):
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{config_path}: valid")


@config_group.command()
@config_option
@click.option("--effective", is_flag=True, help="Every key with its value and where it comes from (default, file, "
              "csms: set over OCPP, which wins over the file).")
@click.option("--json", "as_json", is_flag=True, help="With --effective: a JSON list of {key, value, source}.")
def show(config_path: Path, effective: bool, as_json: bool) -> None:
    """Print the effective configuration with defaults filled in and secrets redacted."""
    config = _load(config_path)
    if not effective:
        click.echo(redacted_json(config))
        return
    rows = config_keys.effective(config, _file_data(config_path), _csms_values(config))
    if as_json:
        click.echo(json.dumps([{"key": k, "value": v, "source": s} for k, v, s in rows]))
        return
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        click.echo(f"{key:<{width}}  {_shown(value):<30}  ({source})")


@config_group.command()
def reference() -> None:
    """Print a config file documenting every key with its default."""
    from chargepoint.config.reference import reference_toml

    click.echo(reference_toml(), nl=False)


@config_group.command(name="get")
@config_option
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print {key, value, source}.")
def get_command(config_path: Path, key: str, as_json: bool) -> None:
    """Print the value of KEY (dotted, e.g. charger.max_current_A) in force: the CSMS's, the file's or the
    default (secrets redacted)."""
    _known(key)
    config = _load(config_path)
    rows = {k: (v, s) for k, v, s in config_keys.effective(config, _file_data(config_path), _csms_values(config))}
    if key not in rows:  # a key of an absent optional table ([ocpp] left out ...)
        click.echo(f"error: {key}: not set (its table is not in {config_path})", err=True)
        sys.exit(1)
    value, source = rows[key]
    click.echo(json.dumps({"key": key, "value": value, "source": source}) if as_json else _shown(value))


@config_group.command(name="set")
@config_option
@click.argument("key")
@click.argument("value")
@click.option("--reload", "then_reload", is_flag=True, help="Then have the running daemon take the change.")
def set_command(config_path: Path, key: str, value: str, then_reload: bool) -> None:
    """Set KEY to VALUE in the file: text as it is, numbers, true/false, lists as TOML (["A", "B"]). The whole
    file is validated first; nothing is written if it would not be valid. Comments are kept, the previous file
    stays as <file>.bak."""
    from chargepoint.config.edit import set_key

    _known(key)
    try:
        written = set_key(config_path, key, value)
    except ConfigError as exc:
        _fail(exc)
    _report_written(written.path, written.backup, written.warnings, key, written.config, then_reload)


@config_group.command(name="unset")
@config_option
@click.argument("key")
@click.option("--reload", "then_reload", is_flag=True, help="Then have the running daemon take the change.")
def unset_command(config_path: Path, key: str, then_reload: bool) -> None:
    """Take KEY out of the file, so that its default applies (validated first, as set)."""
    from chargepoint.config.edit import unset_key

    _known(key)
    try:
        written = unset_key(config_path, key)
    except ConfigError as exc:
        _fail(exc)
    _report_written(written.path, written.backup, written.warnings, key, written.config, then_reload)


@config_group.command(name="diff")
@config_option
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {key, default, file, running, csms}.")
def diff_command(config_path: Path, as_json: bool) -> None:
    """The keys where the file, the running daemon and the defaults differ (and what the CSMS set): what a reload
    or a restart would change, and what was changed from the defaults."""
    config = _load(config_path)
    defaults = config_keys.flatten(config_keys.plain(Config()))
    in_file = config_keys.flatten(config_keys.plain(config))
    file_keys = set(config_keys.flatten(_file_data(config_path)))
    running_reply = _ask({"op": "config"}, config)
    running = None if running_reply is None else config_keys.flatten(running_reply["config"])
    csms = _csms_values(config)
    rows: list[dict[str, Any]] = []
    for key in sorted(set(in_file) | set(defaults) | set(running or {})):
        ocpp_key = config_keys.CSMS_KEYS.get(key)
        csms_value = None if ocpp_key is None else csms.get(ocpp_key)
        if key == "ocpp.authorization_key" and csms_value is not None:
            csms_value = config_keys.REDACTED
        values = {"default": defaults.get(key), "file": in_file.get(key) if _in(key, file_keys) else None,
                  "running": None if running is None else running.get(key), "csms": csms_value}
        effective_file = in_file.get(key)
        differs = (_in(key, file_keys) and effective_file != defaults.get(key)) or (
            running is not None and running.get(key) != effective_file) or csms_value is not None
        if differs:
            rows.append({"key": key, **values})
    if as_json:
        click.echo(json.dumps(rows))
        return
    if running is None:
        click.echo("(the daemon is not running: no running values)", err=True)
    elif running_reply is not None and running_reply.get("restart_needed"):
        click.echo(f"a restart is needed for: {', '.join(running_reply['restart_needed'])}", err=True)
    if not rows:
        click.echo("no differences: every key has its default, and the daemon runs with the file")
    for row in rows:
        parts = [f"default {_shown(row['default'])}"]
        if _in(row["key"], file_keys):
            parts.append(f"file {_shown(row['file'])}")
        if running is not None:
            parts.append(f"running {_shown(row['running'])}")
        if row["csms"] is not None:
            parts.append(f"csms {_shown(row['csms'])} (wins)")
        click.echo(f"{row['key']}: {', '.join(parts)}")


@click.command(name="reload")
@config_option
def reload_command(config_path: Path) -> None:
    """Have the running daemon read its file again (as systemctl reload chargepoint does): the keys that need no
    restart apply at once, no session ends; it says which keys need a restart. An invalid file changes nothing."""
    config = _load(config_path)
    reply = _ask({"op": "reload"}, config)
    if reply is None:
        click.echo(f"error: the daemon is not running (no control socket at {config.storage.control_socket_path})",
                   err=True)
        sys.exit(EXIT_NOT_RUNNING)
    _print_reload(reply)


def _print_reload(reply: dict[str, Any]) -> None:
    applied, restart = reply.get("applied", []), reply.get("restart_needed", [])
    if not applied and not restart:
        click.echo("reloaded: nothing changed")
    if applied:
        click.echo(f"applied without a restart: {', '.join(applied)}")
    if restart:
        click.echo(f"needs a restart (systemctl restart chargepoint; it ends running sessions): {', '.join(restart)}")


def _report_written(path: Path, backup: Path | None, warnings: list[str], key: str, config: Config,
                    then_reload: bool) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    kept = f"; the previous file is {backup}" if backup is not None else ""
    click.echo(f"{path}: {key} written{kept}")
    ocpp_key = config_keys.CSMS_KEYS.get(key)
    if ocpp_key is not None and ocpp_key in _csms_values(config):
        click.echo(f"note: the CSMS has set {ocpp_key}; its value wins over the file's until it changes it",
                   err=True)
    if then_reload:
        reply = _ask({"op": "reload"}, config)
        if reply is None:
            click.echo("the daemon is not running: the change applies when it starts")
        else:
            _print_reload(reply)
    elif config_keys.is_live(key):
        click.echo("applies with 'chargepoint reload' (or systemctl reload chargepoint), no session ends")
    else:
        click.echo("applies after a restart (systemctl restart chargepoint; it ends running sessions)")


def _known(key: str) -> None:
    try:
        config_keys.field_type(key)
    except config_keys.UnknownKey as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


def _fail(exc: ConfigError) -> Any:
    for problem in exc.problems:
        click.echo(f"error: {problem}", err=True)
    click.echo("nothing was written", err=True)
    sys.exit(EXIT_CONFIG)


def _in(key: str, file_keys: set[str]) -> bool:
    return key in file_keys or any(key.startswith(f"{k}.") for k in file_keys)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _file_data(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}  # _load has said what is wrong with it already


def _csms_values(config: Config) -> dict[str, str]:
    """The OCPP keys the CSMS set, from the database (read-only); none when there is no database."""
    database = config.storage.database_path
    if not database.is_file():
        return {}
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("SELECT key, value FROM kv WHERE key >= ? AND key < ?",
                                (config_keys.CSMS_KV_PREFIX, config_keys.CSMS_KV_PREFIX + "\uffff")).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return {}
    wanted = set(config_keys.CSMS_KEYS.values())
    found = {key.removeprefix(config_keys.CSMS_KV_PREFIX): value for key, value in rows}
    return {k: v for k, v in found.items() if k in wanted}


def _ask(payload: dict[str, Any], config: Config) -> dict[str, Any] | None:
    return ask_daemon(config, payload)
