"""``chargepoint status`` diagnoses, against a real daemon on simulated hardware: a welded and a stuck-open contactor
have codes of their own, mains loss is not an operator's Unavailable, a silent meter's last values are marked
stale (and no power is shown as live), every phase is shown, the CSMS link says why it is down; ``status --watch``
keeps showing; ``sessions`` reads the database while the daemon is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_cli import CONFIG, ROOT, Daemon, cli


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    # A CSMS that is not there: the link stays down and says why.
    text = CONFIG.format(dir=tmp_path).replace("[charger]\n", "[charger]\nfree_vend = true\n", 1)
    path.write_text(text + '[ocpp]\ncsms_url = "ws://127.0.0.1:9"\ncharge_point_id = "CP1"\n')
    return path


def wait_for(daemon: Daemon, check: object, timeout_s: float = 10) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        connector = daemon.connector()
        if callable(check) and check(connector):
            return connector
        assert time.monotonic() < deadline, f"{connector}\n{daemon.log()[-2000:]}"
        time.sleep(0.1)


def test_weld_and_stuck_open_contactors_have_codes_of_their_own(daemon: Daemon) -> None:
    assert daemon.sim("fault", "contactor-stuck-open").returncode == 0
    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    stuck = wait_for(daemon, lambda c: c["status"] == "Faulted")
    assert stuck["causes"] == ["ContactorStuckOpen"] and stuck["error_code"] == "PowerSwitchFailure"
    text = cli("status", "--config", str(daemon.config_path), check=True).stdout
    assert "connector 1: Faulted (ContactorStuckOpen) [OCPP PowerSwitchFailure]" in text
    assert daemon.stop() == 0


def test_weld_is_told_apart(daemon: Daemon) -> None:
    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    daemon.wait_status("Charging")
    assert daemon.sim("fault", "weld").returncode == 0
    assert daemon.sim("unplug").returncode == 0
    welded = wait_for(daemon, lambda c: c["status"] == "Faulted")
    assert "ContactorWelded" in welded["causes"]  # type: ignore[operator]
    assert "ContactorStuckOpen" not in welded["causes"]  # type: ignore[operator]
    assert daemon.stop() == 0


def test_mains_loss_is_not_an_operators_unavailable_and_a_silent_meter_is_stale(daemon: Daemon) -> None:
    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    live = wait_for(daemon, lambda c: c["status"] == "Charging" and (c["power_W"] or 0) > 1000)
    meter = live["meter"]
    assert isinstance(meter, dict) and meter["stale"] is False
    assert [round(p["voltage_V"]) for p in meter["phases"]] == [230, 230, 230]
    assert all(p["current_A"] > 0 and p["power_W"] > 0 for p in meter["phases"])
    assert sum(p["power_W"] for p in meter["phases"]) == pytest.approx(meter["power_W"], rel=0.02)

    assert daemon.sim("fault", "meter-offline").returncode == 0
    silent = wait_for(daemon, lambda c: c["meter"]["stale"], timeout_s=15)  # type: ignore[index]
    assert silent["power_W"] is None  # the last 11 kW are not shown as the present
    assert silent["meter"]["age_s"] > 2  # type: ignore[index]
    text = cli("status", "--config", str(daemon.config_path), check=True).stdout
    assert "meter: STALE: no answer for" in text
    assert daemon.sim("clear-fault").returncode == 0

    assert daemon.sim("unplug").returncode == 0
    daemon.wait_status("Available")
    assert daemon.sim("fault", "power-loss").returncode == 0
    lost = wait_for(daemon, lambda c: c["status"] == "Unavailable")
    assert lost["causes"] == ["MainsLost"]
    assert "connector 1: Unavailable (mains lost)" in cli("status", "--config", str(daemon.config_path)).stdout
    assert daemon.stop() == 0


def test_the_csms_link_says_why_it_is_down(daemon: Daemon) -> None:
    deadline = time.monotonic() + 15
    while (link := daemon.status()["csms"])["last_error"] is None:  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert link["connected"] is False and link["url"] == "ws://127.0.0.1:9"  # type: ignore[index]
    text = cli("status", "--config", str(daemon.config_path), check=True).stdout
    assert "CSMS: NOT connected since" in text and "last error" in text
    assert daemon.stop() == 0


def test_status_watch_shows_again_until_interrupted(daemon: Daemon) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    watcher = subprocess.Popen([sys.executable, "-m", "chargepoint", "status", "--watch", "--json", "--interval",
                                "0.3", "--config", str(daemon.config_path)], stdout=subprocess.PIPE, text=True,
                               env=env, cwd=ROOT)
    assert watcher.stdout is not None
    first = json.loads(watcher.stdout.readline())
    assert daemon.sim("plug").returncode == 0
    deadline = time.monotonic() + 10
    while json.loads(watcher.stdout.readline())["connectors"][0]["status"] == first["connectors"][0]["status"]:
        assert time.monotonic() < deadline
    watcher.send_signal(signal.SIGINT)
    assert watcher.wait(timeout=10) == 0
    assert daemon.stop() == 0


def test_sessions_are_read_from_the_database_while_the_daemon_is_stopped(daemon: Daemon) -> None:
    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    daemon.wait_status("Charging")
    time.sleep(0.5)
    assert daemon.sim("unplug").returncode == 0
    daemon.wait_status("Available")
    running = json.loads(cli("sessions", "--json", "--config", str(daemon.config_path), check=True).stdout)
    assert daemon.stop() == 0
    stopped = cli("sessions", "--json", "--config", str(daemon.config_path))
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) == running
    assert cli("faults", "--history", "--config", str(daemon.config_path)).returncode == 0
