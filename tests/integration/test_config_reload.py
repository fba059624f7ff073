"""Changing the configuration of a running charger as a technician does: ``config set`` (validated, comments kept,
the previous file kept), ``chargepoint reload`` and SIGHUP applying what needs no restart without ending the running
session, ``config diff`` and ``status`` naming what waits for a restart, and an invalid file changing nothing."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.integration.test_cli import CONFIG, Daemon, cli

PRICING = """
# The site's prices (set by the operator's tariff sheet).
[pricing]
currency = "EUR"
default_tariff = "adhoc"

[pricing.tariffs.adhoc]
energy = [{ price_per_kWh = "0.50" }]
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(dir=tmp_path) + PRICING)
    return path


def config(daemon: Daemon, *args: str) -> tuple[int, str, str]:
    result = cli("config", *args, "--config", str(daemon.config_path))
    return result.returncode, result.stdout, result.stderr


def running(daemon: Daemon) -> dict[str, object]:
    result = cli("config", "diff", "--json", "--config", str(daemon.config_path), check=True)
    return {row["key"]: row for row in json.loads(result.stdout)}


def test_a_reload_applies_prices_and_limits_without_ending_the_session(daemon: Daemon) -> None:
    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    session = daemon.wait_status("Charging")["session"]
    assert isinstance(session, dict)

    # Live keys: the price of sessions that start from now on, the history's length.
    code, out, err = config(daemon, "set", "pricing.tariffs.adhoc.energy", '[{ price_per_kWh = "0.70" }]')
    assert code == 0, err
    assert "applies with 'chargepoint reload'" in out
    assert config(daemon, "set", "history.keep_days", "90")[0] == 0
    # A key that needs a restart.
    code, out, _ = config(daemon, "set", "charger.max_current_A", "16")
    assert code == 0 and "applies after a restart" in out
    text = daemon.config_path.read_text()
    assert "# The site's prices (set by the operator's tariff sheet)." in text  # comments kept
    assert "max_current_A = 16" in text
    assert (daemon.config_path.parent / "config.toml.bak").read_text().count("max_current_A") == 0

    diff = running(daemon)
    assert diff["history.keep_days"]["file"] == 90 and diff["history.keep_days"]["running"] == 400

    reload = cli("reload", "--config", str(daemon.config_path))
    assert reload.returncode == 0, reload.stderr
    assert "applied without a restart: history.keep_days, pricing.tariffs.adhoc.energy" in reload.stdout
    assert "needs a restart" in reload.stdout and "charger.max_current_A" in reload.stdout

    diff = running(daemon)
    assert diff["history.keep_days"]["running"] == 90
    assert diff["charger.max_current_A"]["running"] == 32.0 and diff["charger.max_current_A"]["file"] == 16
    connector = daemon.wait_status("Charging")
    still = connector["session"]
    assert isinstance(still, dict)
    for key in ("transaction_id", "id_tag", "started_at", "tariff_id"):
        assert still[key] == session[key], key  # the same session, going on
    assert connector["offered_current_A"] == pytest.approx(32.0, abs=0.1)  # the limit waits for the restart
    assert daemon.status()["restart_needed"] == ["charger.max_current_A"]
    human = cli("status", "--config", str(daemon.config_path), check=True).stdout
    assert "wait for a restart: charger.max_current_A" in human

    # The running session kept its price; the next one has the new one.
    assert daemon.sim("unplug").returncode == 0
    daemon.wait_status("Available")
    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    daemon.wait_status("Charging")
    time.sleep(0.5)
    assert daemon.sim("unplug").returncode == 0
    daemon.wait_status("Available")
    sessions = json.loads(cli("sessions", "--json", "--config", str(daemon.config_path), check=True).stdout)
    tariffs = [(s["energy_Wh"], s["cost"]) for s in sessions[:2]]
    newest, first = tariffs
    assert first[1] == f"{first[0] / 1000 * 0.5:.2f}" and newest[1] == f"{newest[0] / 1000 * 0.7:.2f}"
    assert daemon.stop() == 0


def test_sighup_reloads_and_an_invalid_file_changes_nothing(daemon: Daemon) -> None:
    assert daemon.process is not None
    assert config(daemon, "set", "logging.level", "DEBUG")[0] == 0
    daemon.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while running(daemon).get("logging.level", {}).get("running") != "DEBUG":
        assert time.monotonic() < deadline, daemon.log()[-2000:]
        time.sleep(0.1)
    assert daemon.process.poll() is None  # SIGHUP no longer kills the daemon

    # Written by hand, wrong: nothing changes, and the reload says why (file, key, reason).
    daemon.config_path.write_text(daemon.config_path.read_text().replace('level = "DEBUG"', 'level = "LOUD"'))
    reload = cli("reload", "--config", str(daemon.config_path))
    assert reload.returncode == 2
    assert f"{daemon.config_path}: logging.level:" in reload.stderr
    daemon.config_path.write_text(daemon.config_path.read_text().replace('level = "LOUD"', 'level = "INFO"'))
    assert daemon.status()["connectors"][0]["status"] == "Available"  # type: ignore[index]
    assert daemon.stop() == 0


def test_config_set_refuses_what_would_not_validate_and_writes_nothing(daemon: Daemon) -> None:
    before = daemon.config_path.read_text()
    for key, value, reason in (
        ("hardware.meter.baudrate", "9601", "9601 is not a standard serial speed"),
        ("charger.max_current_A", "eighty", "charger.max_current_A"),
        ("charger.max_curent_A", "16", "charger.max_curent_A: no such key"),
        ("ocpp.security_profile", "1", "ocpp.csms_url: required key is missing"),
    ):
        code, _, err = config(daemon, "set", key, value)
        assert code == 2 and reason in err, err
    assert daemon.config_path.read_text() == before
    assert not (daemon.config_path.parent / "config.toml.bak").exists()
    assert daemon.stop() == 0


def test_get_and_show_effective_name_the_source_of_every_value_with_the_daemon_stopped(config_path: Path) -> None:
    assert cli("config", "get", "pricing.currency", "--config", str(config_path), check=True).stdout == "EUR\n"
    got = json.loads(cli("config", "get", "charger.max_current_A", "--json", "--config", str(config_path),
                         check=True).stdout)
    assert got == {"key": "charger.max_current_A", "value": 32.0, "source": "default"}
    rows = json.loads(cli("config", "show", "--effective", "--json", "--config", str(config_path), check=True).stdout)
    sources = {row["key"]: row["source"] for row in rows}
    assert sources["pricing.currency"] == "file" and sources["charger.meter_poll_interval_s"] == "file"
    assert sources["charger.phases"] == "default"
    assert cli("config", "unset", "charger.meter_poll_interval_s", "--config", str(config_path), check=True)
    assert "meter_poll_interval_s" not in config_path.read_text()
    missing = cli("config", "unset", "charger.phases", "--config", str(config_path))
    assert missing.returncode == 2 and "not in the file" in missing.stderr


def test_the_daemon_logs_the_site_warnings_at_start(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(dir=tmp_path).replace(
        "[charger]\n", "[charger]\ntethered_cable = true\nmax_current_A = 40\ncable_rating_A = 20\n", 1))
    daemon = Daemon(path)
    daemon.start()
    try:
        assert "config: " in daemon.log() and "charger.max_current_A: 40 A is above charger.cable_rating_A 20 A" in (
            daemon.log())
        assert daemon.connector()["cable_max_A"] == 20.0
    finally:
        assert daemon.stop() == 0
