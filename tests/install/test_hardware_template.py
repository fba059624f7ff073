"""config/hardware.toml, the configuration install.sh gives a real charger: valid, no simulator anywhere, and every
value the technician must supply marked, so that install.sh can list what is left."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from chargepoint.config.loader import load_config

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "config" / "hardware.toml"
PLACEHOLDER = "CHANGE-ME"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargepoint", *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_the_template_passes_config_validate() -> None:
    result = _cli("config", "validate", "--config", str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_the_template_selects_no_simulator() -> None:
    config = load_config(TEMPLATE)
    assert config.hardware.backend in ("rpi", "board")
    assert config.hardware.payment.backend in ("none", "zvt")  # not "sim", and not "auto" (sim with a sim backend)
    assert config.hardware.rfid.backend == "nfc"
    meter = config.hardware.meter
    assert meter is not None and meter.transport == "rtu"  # the real meter on RS-485
    assert config.ocpp is not None and not config.free_vend  # a charger of an operator: cards are authorized
    assert "sim" not in re.findall(r'^\s*backend\s*=\s*"([^"]*)"', TEMPLATE.read_text(), flags=re.M)


def test_the_placeholders_are_the_identity_and_the_csms() -> None:
    keys = re.findall(rf'^\s*(\w+)\s*=.*{PLACEHOLDER}', TEMPLATE.read_text(), flags=re.M)
    assert keys == ["serial_number", "csms_url", "charge_point_id", "authorization_key"]
    config = load_config(TEMPLATE)
    assert config.ocpp is not None
    assert PLACEHOLDER in config.ocpp.csms_url and config.ocpp.csms_url.endswith(".invalid/ocpp")  # never resolves


def test_no_doc_tells_a_technician_to_install_a_simulator_config() -> None:
    for doc in (REPO / "docs" / "deployment.md", REPO / "docs" / "install.md", REPO / "README.md"):
        text = doc.read_text()
        for example in ("example.toml", "sim.toml"):
            assert not re.search(rf"(cp|install)\s[^\n]*config/{example}\s+/etc/chargepoint", text), (doc, example)


def test_install_md_uses_only_commands_that_exist() -> None:
    help_text = _cli("--help").stdout
    commands = set(re.findall(r"^  ([a-z][a-z-]+)\s", help_text.split("Commands:")[1], flags=re.M))
    text = (REPO / "docs" / "install.md").read_text()
    code = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S) + re.findall(r"`([^`\n]+)`", text)
    used = {word for snippet in code for word in re.findall(r"\bchargepoint (?=([a-z][a-z-]*))", snippet)}
    used.discard("chargepoint")  # sudo -u chargepoint chargepoint ...
    assert used, "no chargepoint command found in docs/install.md"
    assert used <= commands, used - commands
    subcommands = {word for snippet in code for word in re.findall(r"\bchargepoint config ([a-z]+)", snippet)}
    assert subcommands <= {"validate", "show", "reference"}, subcommands
