"""The `chargepoint` command against a real daemon process on simulated hardware."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
[charger]
meter_poll_interval_s = 0.1
contactor_feedback_timeout_s = 0.3
[hardware]
backend = "sim"
[simulator]
contactor_feedback_delay_s = 0.01
lock_delay_s = 0.01
time_scale = 60
[storage]
dir = "{dir}"
reserve_bytes = 65536  # the daemon's reserve file, small in tests
"""


def cli(*args: str, check: bool = False, timeout_s: float = 20) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "chargepoint", *args],
        capture_output=True, text=True, timeout=timeout_s, env=env, cwd=ROOT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
    return result


class Daemon:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.log_path = config_path.parent / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chargepoint", "run", "--config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            if cli("status", "--config", str(self.config_path)).returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"daemon did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict[str, object]:
        result = cli("status", "--config", str(self.config_path), "--json", check=True)
        data = json.loads(result.stdout)
        assert isinstance(data, dict)
        return data

    def connector(self) -> dict[str, object]:
        connectors = self.status()["connectors"]
        assert isinstance(connectors, list)
        first = connectors[0]
        assert isinstance(first, dict)
        return first

    def sim(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cli("sim", "--config", str(self.config_path), *args)

    def wait_status(self, wanted: str, timeout_s: float = 10) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            connector = self.connector()
            if connector["status"] == wanted:
                return connector
            time.sleep(0.05)
        raise AssertionError(f"not {wanted}: {self.connector()}\n{self.log()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=15)
        return self.process.returncode


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(dir=tmp_path))
    return path


def test_status_json_follows_the_contract_through_a_session(daemon: Daemon) -> None:
    status = daemon.status()
    assert status["csms_connected"] is False
    [connector] = status["connectors"]  # type: ignore[misc]
    assert connector["id"] == 1
    assert connector["status"] == "Available"
    assert connector["offered_current_A"] == 0.0
    assert connector["session"] is None

    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    connector = daemon.wait_status("Charging")
    assert connector["offered_current_A"] == pytest.approx(32.0, abs=0.1)
    session = connector["session"]
    assert isinstance(session, dict)
    assert set(session) >= {"transaction_id", "id_tag", "energy_Wh", "cost", "currency"}
    assert session["id_tag"] == "FREEVEND"
    assert isinstance(session["energy_Wh"], int)
    assert session["cost"] is None and session["currency"] is None

    human = cli("status", "--config", str(daemon.config_path), check=True).stdout
    assert "connector 1: Charging" in human

    assert daemon.sim("unplug").returncode == 0
    daemon.wait_status("Available")
    sessions = json.loads(cli("sessions", "--config", str(daemon.config_path), "--json", check=True).stdout)
    assert sessions[0]["stop_reason"] == "EVDisconnected"
    assert daemon.stop() == 0


def test_sim_actions_report_success_and_clear_errors(daemon: Daemon) -> None:
    ok = daemon.sim("tap", "04a1b2c3")
    assert ok.returncode == 0 and "04A1B2C3" in ok.stdout
    bad_kind = daemon.sim("fault", "lightning")
    assert bad_kind.returncode == 1
    assert "unknown fault kind 'lightning'" in bad_kind.stderr
    impossible = daemon.sim("charge")
    assert impossible.returncode == 1 and "no EV is plugged in" in impossible.stderr
    missing = daemon.sim("tap")
    assert missing.returncode == 2 and "card UID" in missing.stderr
    unknown = daemon.sim("dance")
    assert unknown.returncode == 2 and "dance" in unknown.stderr
    wrong_connector = daemon.sim("plug", "--connector", "3")
    assert wrong_connector.returncode == 1 and "3" in wrong_connector.stderr
    assert daemon.sim("fault", "ground-fault").returncode == 0
    daemon.wait_status("Faulted")
    assert daemon.connector()["error_code"] == "GroundFailure"
    assert daemon.sim("clear-fault").returncode == 0
    daemon.wait_status("Available")


def test_cli_without_a_daemon_says_so(config_path: Path) -> None:
    result = cli("status", "--config", str(config_path))
    assert result.returncode == 1
    assert "no daemon is running" in result.stderr


def test_control_socket_is_not_world_accessible(daemon: Daemon, tmp_path: Path) -> None:
    mode = (tmp_path / "control.sock").stat().st_mode & 0o777
    assert mode == 0o600


def test_kill_9_mid_session_is_recovered_as_power_loss_on_restart(daemon: Daemon, config_path: Path) -> None:
    daemon.sim("plug")
    daemon.sim("charge")
    daemon.wait_status("Charging")
    time.sleep(0.5)  # let some readings be persisted
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL

    restarted = Daemon(config_path)
    restarted.start()
    try:
        sessions = json.loads(cli("sessions", "--config", str(config_path), "--json", check=True).stdout)
        assert len(sessions) == 1
        [record] = sessions
        assert record["stop_reason"] == "PowerLoss"
        assert record["meter_stop_Wh"] > record["meter_start_Wh"]
        assert "left open by a crash or power loss" in restarted.log()
    finally:
        restarted.stop()


def test_sigterm_ends_the_session_cleanly(daemon: Daemon, config_path: Path) -> None:
    daemon.sim("plug")
    daemon.sim("charge")
    daemon.wait_status("Charging")
    assert daemon.stop(signal.SIGTERM) == 0
    assert "stopped; hardware safe" in daemon.log()
    import asyncio

    from chargepoint.store import Store

    async def last_session() -> str | None:
        store = await Store.open(config_path.parent / "chargepoint.db")
        try:
            [record] = await store.recent_sessions(1)
            return record.stop_reason
        finally:
            await store.close()

    assert asyncio.run(last_session()) == "Reboot"


def test_latched_fault_needs_fault_clear_and_every_step_is_logged(daemon: Daemon) -> None:
    assert daemon.sim("plug", "--cable-A", "20").returncode == 0
    assert daemon.sim("charge").returncode == 0
    connector = daemon.wait_status("Charging")
    assert connector["cable_max_A"] == 20.0 and connector["contactor_closed"] is True and connector["faults"] == []
    assert connector["offered_current_A"] == pytest.approx(19.98)
    assert daemon.sim("fault", "diode-failure").returncode == 0
    connector = daemon.wait_status("Faulted")
    assert connector["faults"] == ["DiodeFailure"] and connector["contactor_closed"] is False
    # The simulated EV is repaired, but a latched fault stays until a technician clears it.
    assert daemon.sim("clear-fault").returncode == 0
    time.sleep(0.3)
    assert daemon.connector()["faults"] == ["DiodeFailure"]
    listing = json.loads(cli("fault", "list", "--json", "--config", str(daemon.config_path), check=True).stdout)
    assert listing["active"] == [{"connector_id": 1, "code": "DiodeFailure", "latched": True,
                                  "error_code": "EVCommunicationError"}]
    cleared = cli("fault", "clear", "--connector", "1", "--config", str(daemon.config_path))
    assert cleared.returncode == 0, cleared.stderr
    assert "cleared DiodeFailure" in cleared.stdout
    assert daemon.connector()["faults"] == []
    history = json.loads(cli("fault", "list", "--json", "--config", str(daemon.config_path), check=True).stdout)
    actions = [(h["code"], h["action"], h["source"]) for h in history["history"]]
    assert ("DiodeFailure", "raised", "pilot DiodeFailure") in actions
    assert ("DiodeFailure", "latched", "pilot DiodeFailure") in actions
    assert actions[-1] == ("DiodeFailure", "cleared", "technician (chargepoint fault clear)")
    assert all(h["at"] for h in history["history"])
    assert "no active faults" in cli("fault", "list", "--config", str(daemon.config_path), check=True).stdout
    assert daemon.stop() == 0


def test_fault_clear_keeps_a_fault_whose_condition_remains(daemon: Daemon) -> None:
    assert daemon.sim("fault", "weld").returncode == 0
    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    daemon.wait_status("Charging")
    assert daemon.sim("unplug").returncode == 0  # opens: the welded contacts stay closed
    connector = daemon.wait_status("Faulted")
    assert "ContactorWelded" in connector["faults"] and connector["contactor_closed"] is True
    result = cli("fault", "clear", "--config", str(daemon.config_path))
    assert result.returncode == 1 and "ContactorWelded" in result.stderr
    assert "ContactorWelded" in daemon.connector()["faults"]
    assert daemon.stop() == 0


def test_a_bad_config_holds_the_charger_safe_and_reports_until_it_is_fixed(tmp_path: Path) -> None:
    config_path = tmp_path / "config.toml"
    good = CONFIG.format(dir=tmp_path)
    config_path.write_text(good.replace("[charger]\n", "[charger]\nmax_current_A = 500\n"))
    daemon = Daemon(config_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    with daemon.log_path.open("ab") as log:
        daemon.process = subprocess.Popen(
            [sys.executable, "-m", "chargepoint", "run", "--config", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            result = cli("status", "--json", "--config", str(config_path))
            if result.stdout:
                break
            assert daemon.process.poll() is None, daemon.log()  # it stays up: systemd does not loop
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.1)
        assert result.returncode == 2
        assert "max_current_A" in result.stderr
        status = json.loads(result.stdout)
        assert status["mode"] == "safe: invalid configuration" and status["connectors"] == []
        assert any("max_current_A" in problem for problem in status["config_errors"])
        assert "holding the charger safe" in daemon.log()
        assert cli("sim", "plug", "--config", str(config_path)).returncode == 2  # nothing to drive
        config_path.write_text(good)  # the technician fixes the file: the charger comes back by itself
        deadline = time.monotonic() + 15
        while True:  # the held-safe daemon answers until it restarts in place; then, briefly, nobody does
            result = cli("status", "--json", "--config", str(config_path))
            if result.returncode == 0 and json.loads(result.stdout)["config_errors"] == []:
                break
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.2)
        assert daemon.connector()["status"] == "Available"
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
