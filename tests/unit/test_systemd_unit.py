"""The shipped systemd unit: valid for systemd, and letting the daemon reach every device a driver opens."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "chargepoint.service"


def _settings() -> list[tuple[str, str]]:
    pairs = []
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            pairs.append((key, value))
    return pairs


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed here")
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(tmp_path: Path) -> None:
    executable = shutil.which("true")
    assert executable is not None
    unit = tmp_path / "chargepoint.service"
    unit.write_text(UNIT.read_text().replace("/opt/chargepoint/.venv/bin/chargepoint", executable))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_the_unit_lets_the_drivers_reach_their_devices() -> None:
    allowed = {value.split()[0] for key, value in _settings() if key == "DeviceAllow"}
    # gpiochip (GPIO lines), spi (pilot/PP ADC), the serial ports of an EVSE board or meter, USB card readers,
    # the hardware watchdog.
    assert allowed >= {"char-gpiochip", "char-spi", "char-ttyAMA", "char-ttyS", "char-ttyUSB", "char-ttyACM",
                       "char-usb_device", "/dev/watchdog", "char-watchdog"}
    settings = dict(_settings())
    assert settings["DevicePolicy"] == "closed"  # everything else stays out
    assert settings["ProtectKernelTunables"] == "no"  # sysfs PWM is written under /sys/devices/platform
    assert settings["ProtectSystem"] == "strict" and settings["NoNewPrivileges"] == "yes"
    assert "Nice" in settings


def test_no_exec_start_pre_can_keep_the_charger_down() -> None:
    """No config validation before the start (the daemon holds the charger safe itself). The one command before it
    is the update guard: its failure is ignored ("-") and it runs with the system python3 outside the venvs, so
    neither a broken firmware nor a missing guard keeps the daemon from starting; nor does a start limit."""
    pre = [value for key, value in _settings() if key == "ExecStartPre"]
    assert pre == ["-+/usr/bin/python3 /opt/chargepoint/update-guard.py --config /etc/chargepoint/config.toml"]
    assert dict(_settings())["Restart"] == "always"
    assert dict(_settings())["StartLimitIntervalSec"] == "0"
