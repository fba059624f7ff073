"""What the ``chargepoint`` commands share: loading the config (errors name the file, the key and the reason) and
asking the running daemon over its control socket."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from chargepoint.config.loader import load_config, load_config_for_service
from chargepoint.config.schema import Config
from chargepoint.errors import ConfigError, ControlError

EXIT_CONFIG = 2

config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
    default=Path("/etc/chargepoint/config.toml"), envvar="CHARGEPOINT_CONFIG", show_default=True,
    help="Configuration file (TOML).")


def _load(config_path: Path) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(EXIT_CONFIG)


def _load_for_daemon(config_path: Path) -> Config:
    """For commands that talk to the running daemon: like the daemon, a bad [pricing] section alone is a warning
    (the daemon keeps its last valid prices), so the charger can still be inspected and driven."""
    try:
        config, problems = load_config_for_service(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(EXIT_CONFIG)
    for problem in problems:
        click.echo(f"warning: {problem} (the charger keeps its last valid prices)", err=True)
    return config


def _request(config: Config, payload: dict[str, Any]) -> dict[str, Any]:
    import asyncio  # only the commands that talk to the daemon need it

    from chargepoint.cli.control_client import request

    try:
        reply = asyncio.run(request(config.storage.control_socket_path, payload))
    except ControlError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if not reply.get("ok"):
        click.echo(f"error: {reply.get('error', 'the daemon refused the request')}", err=True)
        sys.exit(1)
    return reply


_T = TypeVar("_T")
EXIT_UNREADABLE = 2


def read_database(config_path: Path, what: str, work: Callable[[sqlite3.Connection], _T]) -> tuple[_T, Config]:
    """Run ``work`` on the charger's database opened read-only, whether the daemon runs or not; a missing or
    unreadable database is an error naming the file (exit 2)."""
    config = _load(config_path)
    database = config.storage.database_path
    if not database.is_file():
        click.echo(f"error: {database}: no database (has the charger run with this config?)", err=True)
        sys.exit(EXIT_UNREADABLE)
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return work(conn), config
        finally:
            conn.close()
    except sqlite3.Error as exc:
        click.echo(f"error: {database}: cannot read {what} ({exc})", err=True)
        sys.exit(EXIT_UNREADABLE)


def ask_daemon(config: Config, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The running daemon's reply; None when none runs (no control socket, or a stale one nobody listens on), for
    the commands that can do without it. A refusal is an error (exit 1)."""
    import asyncio

    from chargepoint.cli.control_client import request

    path = config.storage.control_socket_path
    if not path.exists():
        return None
    try:
        reply = asyncio.run(request(path, payload, timeout_s=30.0))
    except ControlError as exc:
        if "stale" in str(exc) or "does not exist" in str(exc):
            return None
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if not reply.get("ok"):
        for problem in reply.get("problems") or [reply.get("error", "the daemon refused the request")]:
            click.echo(f"error: {problem}", err=True)
        sys.exit(EXIT_CONFIG if reply.get("problems") else 1)
    return reply


def interruptible() -> None:
    """For the commands that run until Ctrl-C (status --watch, logs --follow): Ctrl-C ends them even when they
    were started with SIGINT ignored (from a background job or a script), as a shell does to background children."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
