"""``chargepoint doctor`` against a real daemon on simulated hardware: what it finds, what it says to do, its exit
code and --json, running and stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli import CONFIG, Daemon, cli


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(dir=tmp_path))
    return path


def test_doctor_against_a_running_and_a_stopped_daemon(daemon: Daemon) -> None:
    result = cli("doctor", "--json", "--config", str(daemon.config_path))
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["config"]["status"] == "ok" and checks["daemon"]["status"] == "ok"
    assert checks["meter 1"]["status"] == "ok" and checks["csms"]["detail"].startswith("none configured")
    assert checks["database"]["status"] == "ok" and checks["faults"]["status"] == "ok"
    assert "clock" in checks
    assert result.returncode == (0 if report["ok"] else 1)  # at most a warning (the clock, in a container)

    assert daemon.sim("fault", "meter-offline").returncode == 0
    for _ in range(100):
        report = json.loads(cli("doctor", "--json", "--config", str(daemon.config_path)).stdout)
        meter = {c["name"]: c for c in report["checks"]}["meter 1"]
        if meter["status"] == "fail":
            break
    assert meter["status"] == "fail" and "RS-485" in meter["hint"]
    assert daemon.stop() == 0

    text = cli("doctor", "--config", str(daemon.config_path))
    assert text.returncode == 2
    assert "[FAIL] daemon: not running" in text.stdout and "-> systemctl start chargepoint" in text.stdout
