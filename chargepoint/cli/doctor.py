"""``chargepoint doctor``: one command that says what is wrong with a charger and what to do about it.

It checks, in order:
- the configuration, with its site checks;
- the daemon: is it running, is it held safe;
- the devices: the device files the configuration names, and the running charger's faults and meter;
  ``--selftest`` adds the safety self-test of an idle charger;
- the CSMS, step by step: DNS, TCP, TLS, the WebSocket upgrade with Basic auth. It names the step that failed.
- the clock's synchronisation;
- disk space and the database's health;
- the outbox backlog;
- the latched faults.

Each check is ``ok``, ``warn`` or ``fail``, with what was found and, when not ok, what to do.
Exit code: 0 all ok, 1 warnings only, 2 a failure.

It reads the database read-only and works while the daemon is stopped. While the daemon is connected to its CSMS,
the WebSocket step is not repeated: a second connection with the same charge point id could push the daemon's
off.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import os
import shutil
import socket
import sqlite3
import ssl
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import click

from chargepoint.cli.common import ask_daemon
from chargepoint.config import keys as config_keys
from chargepoint.config import site
from chargepoint.config.loader import load_config
from chargepoint.config.schema import Config, MeterSettings
from chargepoint.errors import ConfigError

Status = Literal["ok", "warn", "fail"]
STEP_TIMEOUT_S: Final = 10.0
OUTBOX_WARN_ROWS: Final = 100
OUTBOX_WARN_AGE_S: Final = 3600.0
TIME_ERROR: Final = 5  # adjtimex(2): the clock is not synchronised


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str = ""


def check_config(config_path: Path) -> tuple[Config | None, list[Check]]:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return None, [Check("config", "fail", "; ".join(exc.problems),
                            f"fix the file (chargepoint config validate --config {config_path}); the charger is held "
                            "safe until it validates")]
    warnings = site.warnings(config, config_path)
    if warnings:
        return config, [Check("config", "warn", "; ".join(warnings), "see docs/configuration.md, Site checks")]
    return config, [Check("config", "ok", f"{config_path} is valid")]


def check_daemon(status: dict[str, Any] | None, config: Config) -> Check:
    if status is None:
        return Check("daemon", "fail", f"not running (no answer on {config.storage.control_socket_path})",
                     "systemctl start chargepoint; journalctl -u chargepoint -b says why it stopped")
    if status.get("config_errors"):
        return Check("daemon", "fail", "held safe by an invalid configuration: " + "; ".join(status["config_errors"]),
                     "fix the file; the daemon starts by itself once it validates")
    pending = status.get("restart_needed") or []
    if pending:
        return Check("daemon", "warn", f"running; changed keys wait for a restart: {', '.join(pending)}",
                     "systemctl restart chargepoint (it ends running sessions gently)")
    return Check("daemon", "ok", f"running since {status.get('started_at', '?')}")


def device_files(config: Config) -> list[tuple[str, str]]:
    """(what, device file) the configuration names, for real hardware."""
    hardware = config.hardware
    if hardware.backend == "sim":
        return []
    found: list[tuple[str, str]] = []
    meter = hardware.meter or MeterSettings()
    if meter.transport == "rtu":
        found.append(("energy meter (RS-485)", meter.serial_port))
    if hardware.backend == "board" and hardware.board is not None:
        found.append((f"{hardware.board.kind} board", hardware.board.link))
    if hardware.backend == "rpi":
        found.append(("GPIO (contactor, inputs)", "/dev/gpiochip0"))
        found.append(("pilot ADC (SPI)", "/dev/spidev0.0"))
    if hardware.watchdog_device not in ("", "auto"):
        found.append(("hardware watchdog", hardware.watchdog_device))
    elif hardware.watchdog_device == "auto":
        found.append(("hardware watchdog", "/dev/watchdog"))
    if hardware.payment.backend == "zvt" and hardware.payment.transport == "serial":
        found.append(("payment terminal (RS-232)", hardware.payment.serial_port))
    return found


def check_devices(config: Config, status: dict[str, Any] | None) -> list[Check]:
    checks = []
    missing = [f"{what}: {path}" for what, path in device_files(config) if not os.path.exists(path)]
    if missing:
        checks.append(Check("devices", "fail", "missing: " + "; ".join(missing),
                            "check the wiring and the interfaces in /boot/firmware/config.txt (docs/install.md); "
                            "a USB adapter may have another name (ls /dev/serial/by-id)"))
    elif config.hardware.backend != "sim":
        checks.append(Check("devices", "ok", "device files present: "
                            + ", ".join(path for _, path in device_files(config))))
    if status is None:
        return checks
    for c in status.get("connectors", []):
        meter = c.get("meter")
        if meter is None:
            checks.append(Check(f"meter {c['id']}", "warn", "no reading yet", "wait a few seconds, then check again"))
        elif meter.get("stale"):
            checks.append(Check(f"meter {c['id']}", "fail", f"silent for {meter['age_s']:.0f} s",
                                "check the meter's supply, the RS-485 wiring (A/B, termination) and its Modbus id "
                                "and speed against [hardware.meter]"))
        else:
            checks.append(Check(f"meter {c['id']}", "ok", f"answering, {meter['energy_Wh'] / 1000:.3f} kWh"))
        if c.get("status") in ("Faulted", "Unavailable"):
            why = ", ".join(c.get("causes", [])) or c.get("error_code", "")
            if c.get("status") == "Faulted":
                hint = "repair the cause, then chargepoint fault clear"
            elif "Inoperative" in c.get("causes", []):
                hint = f"chargepoint availability --connector {c['id']} operative"
            else:
                hint = "see chargepoint status"
            checks.append(Check(f"connector {c['id']}", "fail", f"{c['status']} ({why})", hint))
    return checks


def check_selftest(config: Config) -> Check:
    reply = ask_daemon(config, {"op": "selftest"})
    if reply is None:
        return Check("selftest", "fail", "the daemon is not running", "systemctl start chargepoint")
    failed = [row for row in reply["checks"] if row["result"] == "fail"]
    if failed:
        return Check("selftest", "fail", "; ".join(f"connector {row['connector_id']} {row['check']}: {row['detail']}"
                                                   for row in failed), "see docs/hardware.md for each check")
    return Check("selftest", "ok", f"{len(reply['checks'])} checks passed")


def _csms_credentials(config: Config) -> tuple[int, str | None]:
    """The security profile and authorization key in force: the CSMS's (kept in the database) over the file's."""
    assert config.ocpp is not None
    profile: int = config.ocpp.security_profile
    key = None if config.ocpp.authorization_key is None else config.ocpp.authorization_key.get_secret_value()
    database = config.storage.database_path
    if database.is_file():
        try:
            conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
            try:
                rows = dict(conn.execute("SELECT key, value FROM kv WHERE key IN (?, ?)", (
                    config_keys.CSMS_KV_PREFIX + "SecurityProfile", config_keys.CSMS_KV_PREFIX + "AuthorizationKey",
                )).fetchall())
            finally:
                conn.close()
        except sqlite3.Error:
            rows = {}
        profile = int(rows.get(config_keys.CSMS_KV_PREFIX + "SecurityProfile", profile))
        key = rows.get(config_keys.CSMS_KV_PREFIX + "AuthorizationKey", key)
    return profile, key


async def check_csms(config: Config, daemon_connected: bool) -> Check:
    """DNS, TCP, TLS, then the WebSocket upgrade with Basic auth: the first step that fails is named."""
    from chargepoint.ocpp.transport import (
        SUBPROTOCOL,
        TransportSettings,
        describe_connect_failure,
        headers,
        tls_context,
    )

    if config.ocpp is None:
        return Check("csms", "ok", "none configured (standalone charger)")
    profile, key = _csms_credentials(config)
    settings = TransportSettings(config.ocpp.csms_url, config.ocpp.charge_point_id, profile, key, config.ocpp.ca_file,
                                 config.ocpp.client_cert_file, config.ocpp.client_key_file,
                                 open_timeout_s=STEP_TIMEOUT_S)
    parts = urlsplit(settings.csms_url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "wss" else 80)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), STEP_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        return Check("csms", "fail", f"DNS: cannot resolve {host} ({getattr(exc, 'strerror', None) or exc})",
                     "check the host name in ocpp.csms_url and the DNS servers (resolvectl status)")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), STEP_TIMEOUT_S)
        writer.close()
    except (OSError, TimeoutError) as exc:
        return Check("csms", "fail", f"TCP: {host}:{port}: {describe_connect_failure(exc, settings)}",
                     "check the network route and firewall to the CSMS (ip route; can the site's router reach it?)")
    context = tls_context(settings)
    if context is not None:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, server_hostname=host), STEP_TIMEOUT_S)
            writer.close()
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            return Check("csms", "fail", describe_connect_failure(exc, settings),
                         "check ocpp.ca_file (the CA that issued the CSMS certificate), the clock, and at profile 3 "
                         "the client certificate")
    if daemon_connected:
        return Check("csms", "ok", f"{settings.url}: the daemon is connected (DNS, TCP{', TLS' if context else ''} ok)")
    import websockets
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    try:
        connection = await websockets.connect(settings.url, subprotocols=[websockets.Subprotocol(SUBPROTOCOL)],
                                              additional_headers=headers(settings), ssl=context,
                                              open_timeout=STEP_TIMEOUT_S, proxy=None)
        await connection.close()
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
            return Check("csms", "fail", f"Basic auth: the CSMS refused our credentials (HTTP "
                         f"{exc.response.status_code}) at security profile {profile}",
                         "check ocpp.charge_point_id and ocpp.authorization_key with the operator")
        return Check("csms", "fail", f"WebSocket upgrade: {describe_connect_failure(exc, settings)}",
                     "check the path in ocpp.csms_url and ocpp.charge_point_id with the operator")
    return Check("csms", "ok", f"{settings.url}: DNS, TCP{', TLS' if context else ''} and the WebSocket upgrade "
                 "succeed (the daemon is not connected)")


def check_clock() -> Check:
    now = datetime.now(UTC)
    if now.year < 2024:
        return Check("clock", "fail", f"reads {now.isoformat(timespec='seconds')}: not set",
                     "the Pi has no battery clock: it needs NTP (timedatectl set-ntp true) or the CSMS's time")
    state = _adjtimex_state()
    if state is None:
        return Check("clock", "warn", "synchronisation unknown (adjtimex unavailable)", "timedatectl status")
    if state == TIME_ERROR:
        return Check("clock", "warn", f"not synchronised (reads {now.isoformat(timespec='seconds')})",
                     "timedatectl set-ntp true; check that NTP (UDP 123) reaches a time server")
    return Check("clock", "ok", f"synchronised, {now.isoformat(timespec='seconds')}")


def _adjtimex_state() -> int | None:
    """The kernel clock's state (adjtimex(2) with no change): 5 (TIME_ERROR) when not synchronised."""
    name = ctypes.util.find_library("c")
    if name is None or not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    buffer = ctypes.create_string_buffer(512)  # struct timex, modes = 0 (read only), larger than any ABI's
    try:
        state = int(libc.adjtimex(buffer))
    except AttributeError:
        return None
    return None if state < 0 else state


def check_storage(config: Config) -> list[Check]:
    checks = []
    directory = config.storage.dir
    if not directory.exists():
        return [Check("storage", "fail", f"{directory} does not exist", "install.sh creates it; or fix storage.dir")]
    usage = shutil.disk_usage(directory)
    if usage.free < config.storage.min_free_bytes:
        checks.append(Check("disk", "fail", f"{usage.free // 2**20} MiB free in {directory}, below "
                            f"storage.min_free_bytes ({config.storage.min_free_bytes // 2**20} MiB): no new session "
                            "starts", "free space (journalctl --vacuum-size=100M; old backups)"))
    elif usage.free < 4 * config.storage.min_free_bytes:
        checks.append(Check("disk", "warn", f"{usage.free // 2**20} MiB free in {directory}",
                            "free space before it runs out"))
    else:
        checks.append(Check("disk", "ok", f"{usage.free // 2**20} MiB free in {directory}"))
    database = config.storage.database_path
    if not database.is_file():
        checks.append(Check("database", "warn", f"{database} does not exist yet", "it is made at the first start"))
        return checks
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            backlog, oldest = conn.execute("SELECT count(*), MIN(created_at) FROM outbox").fetchone()
            latched = conn.execute("SELECT connector_id, code, since FROM latched_faults ORDER BY since").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [*checks, Check("database", "fail", f"{database}: {exc}",
                               "stop the daemon and run chargepoint restore from a backup, or let the daemon salvage "
                               "it at the next start (the damaged file is kept)")]
    if result != "ok":
        checks.append(Check("database", "fail", f"{database}: {result}",
                            "restart the daemon: it salvages a damaged database at start (the damaged file is kept)"))
    else:
        checks.append(Check("database", "ok", f"{database}: healthy, {database.stat().st_size // 2**10} KiB"))
    age_s = 0.0 if oldest is None else (datetime.now(UTC) - datetime.fromisoformat(oldest)).total_seconds()
    if backlog > OUTBOX_WARN_ROWS or age_s > OUTBOX_WARN_AGE_S:
        checks.append(Check("outbox", "warn", f"{backlog} messages wait for the CSMS, the oldest for {age_s / 60:.0f} "
                            "min", "they are delivered in order once the link is up: see the csms check"))
    else:
        checks.append(Check("outbox", "ok", f"{backlog} messages waiting"))
    if latched:
        checks.append(Check("faults", "fail", "latched: " + "; ".join(
            f"{'charger' if c == 0 else f'connector {c}'} {code} since {since}" for c, code, since in latched),
            "repair the cause, then chargepoint fault clear (a technician's clearance)"))
    else:
        checks.append(Check("faults", "ok", "none latched"))
    return checks


def diagnose(config_path: Path, selftest: bool) -> list[Check]:
    config, checks = check_config(config_path)
    if config is None:
        return checks
    reply = ask_daemon(config, {"op": "status"})
    status = None if reply is None else reply["status"]
    checks.append(check_daemon(status, config))
    checks += check_devices(config, status)
    if selftest:
        checks.append(check_selftest(config))
    connected = bool(status and (status.get("csms") or {}).get("connected"))
    checks.append(asyncio.run(check_csms(config, connected)))
    checks.append(check_clock())
    checks += check_storage(config)
    return checks


@click.command(name="doctor")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("/etc/chargepoint/config.toml"), envvar="CHARGEPOINT_CONFIG", show_default=True,
              help="Configuration file (TOML).")
@click.option("--json", "as_json", is_flag=True, help='Print {"ok": ..., "checks": [{name, status, detail, hint}]}.')
@click.option("--selftest", is_flag=True, help="Also run the safety self-test (the charger must be idle).")
def doctor_command(config_path: Path, as_json: bool, selftest: bool) -> None:
    """Say what is wrong and what to do: configuration, daemon, devices, CSMS (DNS, TCP, TLS, WebSocket, auth),
    clock, disk and database, outbox, faults. Exit 0 all ok, 1 warnings, 2 a failure."""
    checks = diagnose(config_path, selftest)
    worst = "fail" if any(c.status == "fail" for c in checks) else "warn" if any(
        c.status == "warn" for c in checks) else "ok"
    if as_json:
        click.echo(json.dumps({"ok": worst == "ok", "checks": [asdict(c) for c in checks]}))
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        for c in checks:
            click.echo(f"[{marks[c.status]}] {c.name}: {c.detail}")
            if c.hint and c.status != "ok":
                click.echo(f"       -> {c.hint}")
    sys.exit({"ok": 0, "warn": 1, "fail": 2}[worst])
