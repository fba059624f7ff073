"""Config errors name the file, the key and the reason; the example documents every key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chargepoint.config.loader import load_config, redacted_json
from chargepoint.config.reference import reference_toml
from chargepoint.config.schema import Config
from chargepoint.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[charger]\nmax_curent_A = 16\n", "charger.max_curent_A", "unknown key"),
        ("[chargr]\n", "chargr", "unknown key"),
        ("[charger]\nmax_current_A = 200\n", "charger.max_current_A", "less than or equal to 80"),
        ("[charger]\nmax_current_A = 'lots'\n", "charger.max_current_A", "number"),
        ("[charger]\nphases = 2\n", "charger.phases", "1 or 3"),
        ("[hardware]\nbackend = 'arduino'\n", "hardware.backend", "'sim', 'rpi' or 'board'"),
        ("[ocpp]\ncharge_point_id = 'CP1'\n", "ocpp.csms_url", "required key is missing"),
        ("[ocpp]\ncsms_url = 'http://x'\ncharge_point_id = 'CP1'\n", "ocpp.csms_url", "pattern"),
        ("[ocpp]\ncsms_url = 'ws://x'\ncharge_point_id = 'CP1'\nsecurity_profile = 1\n", "ocpp",
         "authorization_key"),
        ("[charger]\nallowed_id_tags = [1, 2]\n", "charger.allowed_id_tags[0]", "string"),
    ],
)
def test_bad_values_name_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    found = problems(tmp_path, text)
    path = str(tmp_path / "config.toml")
    assert any(p.startswith(f"{path}: {key}: ") and reason in p for p in found), found


def test_all_problems_are_reported_in_one_pass(tmp_path: Path) -> None:
    found = problems(tmp_path, "[charger]\nmax_current_A = 1\nphasez = 3\n[storage]\ndri = '/x'\n")
    assert len(found) == 3


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "[charger]\nmax_current_A = \n")
    assert "invalid TOML" in problem and "line 2" in problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_defaults_and_free_vend_rule(tmp_path: Path) -> None:
    standalone = load_config(write(tmp_path, "[hardware]\nbackend = 'sim'\n"))
    assert standalone.free_vend is True
    assert standalone.charger.max_current_A == 32.0
    with_ocpp = load_config(write(tmp_path, "[ocpp]\ncsms_url = 'ws://h/ocpp'\ncharge_point_id = 'CP1'\n"))
    assert with_ocpp.free_vend is False


def test_relative_storage_dir_is_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[storage]\ndir = 'state'\n"))
    assert config.storage.dir == tmp_path / "state"
    assert config.storage.control_socket_path == tmp_path / "state" / "control.sock"


def test_secrets_are_redacted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[ocpp]\ncsms_url = 'ws://h'\ncharge_point_id = 'CP1'\n"
                                         "security_profile = 1\nauthorization_key = 'hunter2hunter2hunter2'\n"))
    shown = redacted_json(config)
    assert "hunter2" not in shown
    assert "********" in shown


def test_example_config_is_generated_from_the_schema_and_valid() -> None:
    example = ROOT / "config" / "example.toml"
    assert example.read_text() == reference_toml(), "regenerate: chargepoint config reference > config/example.toml"
    load_config(example)
    load_config(ROOT / "config" / "sim.toml")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "chargepoint", *args], capture_output=True, text=True,
                          env=env, timeout=30)


def test_cli_config_validate_exit_codes(tmp_path: Path) -> None:
    good = write(tmp_path, "[hardware]\nbackend = 'sim'\n")
    result = run_cli("config", "validate", "--config", str(good))
    assert result.returncode == 0 and "valid" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[charger]\nmax_curent_A = 16\n")
    result = run_cli("config", "validate", "--config", str(bad))
    assert result.returncode == 2
    assert f"{bad}: charger.max_curent_A: unknown key" in result.stderr


def test_cli_config_show_redacts(tmp_path: Path) -> None:
    path = write(tmp_path, "[ocpp]\ncsms_url = 'ws://h'\ncharge_point_id = 'CP1'\nsecurity_profile = 1\n"
                           "authorization_key = 'topsecretkey12345'\n")
    result = run_cli("config", "show", "--config", str(path))
    assert result.returncode == 0
    assert "topsecretkey12345" not in result.stdout
    assert '"charge_point_id": "CP1"' in result.stdout


def _load_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


def test_a_serial_payment_terminal_needs_no_host_and_a_tcp_one_does(tmp_path: Path) -> None:
    config = _load_text(tmp_path, '[hardware.payment]\nbackend = "zvt"\ntransport = "serial"\n'
                        'serial_port = "/dev/ttyUSB3"\nbaudrate = 115200\n')
    payment = config.hardware.payment
    assert (payment.transport, payment.serial_port, payment.baudrate) == ("serial", "/dev/ttyUSB3", 115200)
    with pytest.raises(ConfigError, match="over tcp needs the terminal's host"):
        _load_text(tmp_path, '[hardware.payment]\nbackend = "zvt"\n')


def test_the_simulated_meter_model_is_chosen_in_the_simulator_section(tmp_path: Path) -> None:
    config = _load_text(tmp_path, '[hardware]\nbackend = "sim"\n[simulator]\nmeter_model = "iskra_wm3m4c"\n')
    assert config.simulator.meter_model == "iskra_wm3m4c"
    with pytest.raises(ConfigError, match="meter_model"):
        _load_text(tmp_path, '[simulator]\nmeter_model = "ferraris"\n')
