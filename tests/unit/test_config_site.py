"""What a technician gets wrong in a valid-looking file: the site checks (errors and warnings naming file, key and
reason), one meter-transport default, dotted keys, the sources of values (default, file, CSMS), which keys apply
live, and the file written atomically with comments kept."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chargepoint.config import keys, site
from chargepoint.config.edit import parse_value, set_key, write_atomically
from chargepoint.config.loader import load_config, parse_config
from chargepoint.config.schema import Config, MeterSettings
from chargepoint.errors import ConfigError
from chargepoint.store import Store

ROOT = Path(__file__).resolve().parents[2]
OCPP = "[ocpp]\ncsms_url = 'wss://csms.example/ocpp'\ncharge_point_id = 'CP1'\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


def test_missing_certificate_files_are_errors_naming_file_key_and_path(tmp_path: Path) -> None:
    found = problems(tmp_path, OCPP + "security_profile = 2\nauthorization_key = '0123456789abcdef'\n"
                                      "ca_file = 'certs/csms-ca.pem'\n")
    assert found == [f"{tmp_path / 'config.toml'}: ocpp.ca_file: {tmp_path / 'certs/csms-ca.pem'}: no such file "
                     "(the TLS connection to the CSMS needs it)"]
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs/csms-ca.pem").write_text("PEM")
    load_config(tmp_path / "config.toml")


def test_an_authorization_key_shorter_than_16_characters_is_refused_at_profiles_1_and_2(tmp_path: Path) -> None:
    [found] = problems(tmp_path, OCPP + "security_profile = 1\nauthorization_key = 'short-key'\n")
    assert "authorization_key: security profiles 1 and 2 need 16 to 40 characters" in found and "got 9" in found
    assert "short-key" not in found
    load_config(write(tmp_path, OCPP + "security_profile = 0\nauthorization_key = 'short-key'\n"))


@pytest.mark.parametrize(("table", "rate"), [("hardware.meter", 9601), ("hardware.meter", 115200),
                                             ("hardware.board", 9601)])
def test_non_standard_baud_rates_are_refused(tmp_path: Path, table: str, rate: int) -> None:
    board = '[hardware]\nbackend = "board"\n[hardware.board]\nkind = "evse-din"\nlink = "/dev/ttyAMA0"\n'
    text = (board + f"baudrate = {rate}\n") if table == "hardware.board" else f"[{table}]\nbaudrate = {rate}\n"
    [found] = problems(tmp_path, text)
    assert f"{table}.baudrate: {rate} is not a standard serial speed" in found


def test_a_payment_simulator_on_a_real_charger_is_an_error(tmp_path: Path) -> None:
    text = ('[charger]\ntethered_cable = true\n[hardware]\nbackend = "rpi"\n[hardware.payment]\nbackend = "sim"\n')
    [found] = problems(tmp_path, text)
    assert 'hardware.payment.backend: "sim" with real hardware' in found


def test_one_meter_transport_default_with_or_without_the_table() -> None:
    assert Config().hardware.meter is None
    assert MeterSettings().transport == "rtu"
    assert Config.model_validate({"hardware": {"meter": {"baudrate": 19200}}}).hardware.meter.transport == "rtu"  # type: ignore[union-attr]
    from hal.rpi_board import DEFAULT_METER, rpi_settings

    assert DEFAULT_METER.transport == "rtu"
    assert rpi_settings({"meter": {"baudrate": 19200}}).meter.transport == "rtu"  # type: ignore[union-attr]


def test_warnings_for_settings_that_are_allowed_but_probably_not_meant(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    cable = parse_config({"charger": {"tethered_cable": True, "max_current_A": 80, "cable_rating_A": 32}}, path)
    found = site.warnings(cable, path, model="")
    assert any("charger.max_current_A: 80 A is above charger.cable_rating_A 32 A" in w for w in found)
    assert any("80 A on three phases is above the 63 A of Type 2" in w for w in found)
    assert site.warnings(parse_config({}, path), path, model="") == []
    on_a_pi = site.warnings(parse_config({}, path), path, model="Raspberry Pi 4 Model B Rev 1.5")
    assert on_a_pi == [f'{path}: hardware.backend: "sim" on Raspberry Pi 4 Model B Rev 1.5: the charger drives '
                       'simulators, not its devices (set "rpi" or "board"; see docs/install.md)']
    clear = parse_config({"ocpp": {"csms_url": "ws://csms", "charge_point_id": "CP1", "security_profile": 1,
                                   "authorization_key": "0123456789abcdef"}}, path)
    assert any("sends the authorization key in clear" in w for w in site.warnings(clear, path, model=""))
    board = parse_config({"charger": {"tethered_cable": True}, "hardware": {
        "backend": "board", "board": {"kind": "openevse", "link": "/dev/ttyAMA0", "max_current_A": 16}}}, path)
    assert any("the board's relay limits every offer" in w for w in site.warnings(board, path, model=""))


def test_config_validate_prints_warnings_and_stays_valid(tmp_path: Path) -> None:
    path = write(tmp_path, "[charger]\ntethered_cable = true\nmax_current_A = 40\ncable_rating_A = 20\n")
    result = subprocess.run([sys.executable, "-m", "chargepoint", "config", "validate", "--config", str(path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0
    assert "warning:" in result.stderr and "charger.max_current_A: 40 A is above" in result.stderr


def test_dotted_keys_know_the_schema() -> None:
    assert keys.field_type("charger.max_current_A") is float
    assert keys.is_text(keys.field_type("hardware.meter.transport"))
    assert keys.field_type("pricing.tariffs.adhoc.energy") is not None  # a table of the operator's naming
    for key, message in (("charger.max_curent_A", "no such key (in charger:"),
                         ("hardware.meter", "a table, not a key"),
                         ("charger.max_current_A.x", "is a key, not a table"),
                         ("pricing.tariffs.adhoc", "a table, not a key")):
        with pytest.raises(keys.UnknownKey, match=message.replace("(", r"\(")):
            keys.field_type(key)
    assert parse_value("identity.vendor", "true") == "true"  # text keys take the text as it is
    assert parse_value("charger.free_vend", "true") is True
    assert parse_value("charger.allowed_id_tags", '["AB", "CD"]') == ["AB", "CD"]
    assert parse_value("charger.max_current_A", "eighty") == "eighty"  # for the validation to refuse


def test_which_keys_apply_without_a_restart() -> None:
    assert keys.split_live(["pricing.tariffs.a.energy", "pricing.currency", "history.keep_days", "charger.phases",
                            "logging.level", "ocpp.heartbeat_interval_s"]) == (
        ["pricing.tariffs.a.energy", "history.keep_days", "logging.level"],
        ["pricing.currency", "charger.phases", "ocpp.heartbeat_interval_s"])
    old = Config()
    new = Config.model_validate({"history": {"keep_days": 30}, "charger": {"phases": 1}})
    assert keys.changed_keys(old, new) == ["charger.phases", "history.keep_days"]
    merged = keys.with_live_keys(old, new, ["history.keep_days"])
    assert merged.history.keep_days == 30 and merged.charger.phases == 3


def test_show_effective_names_values_the_csms_set(tmp_path: Path) -> None:
    path = write(tmp_path, f"[storage]\ndir = '{tmp_path}'\n" + OCPP.replace("wss", "ws")
                 + "heartbeat_interval_s = 600\nsecurity_profile = 1\nauthorization_key = '0123456789abcdef'\n")

    async def csms_sets() -> None:
        store = await Store.open(tmp_path / "chargepoint.db")
        try:
            await store.set_kv(keys.CSMS_KV_PREFIX + "HeartbeatInterval", "120")
            await store.set_kv(keys.CSMS_KV_PREFIX + "AuthorizationKey", "fedcba9876543210")
        finally:
            await store.close()

    asyncio.run(csms_sets())
    result = subprocess.run([sys.executable, "-m", "chargepoint", "config", "show", "--effective", "--json",
                             "--config", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    rows = {row["key"]: (row["value"], row["source"]) for row in json.loads(result.stdout)}
    assert rows["ocpp.heartbeat_interval_s"] == ("120", "csms")
    assert rows["ocpp.authorization_key"] == (keys.REDACTED, "csms")
    assert rows["ocpp.meter_value_sample_interval_s"] == (60, "default")
    assert rows["ocpp.charge_point_id"] == ("CP1", "file")
    assert "fedcba9876543210" not in result.stdout and "0123456789abcdef" not in result.stdout


def test_the_mapping_of_csms_keys_matches_what_the_ocpp_client_starts_from() -> None:
    from chargepoint.ocpp.v16 import client

    source = Path(client.__file__).read_text()
    for ocpp_key in keys.CSMS_KEYS.values():
        assert f'"{ocpp_key}"' in source or ocpp_key in ("SecurityProfile", "AuthorizationKey")
    assert client.KV_KEY_PREFIX == keys.CSMS_KV_PREFIX


def test_set_keeps_comments_mode_and_the_previous_file(tmp_path: Path) -> None:
    path = write(tmp_path, "# installed 2026-12-01 by J. Doe\n[charger]\n# fuse: 3 x 25 A\nmax_current_A = 25\n")
    os.chmod(path, 0o640)
    written = set_key(path, "charger.max_current_A", "20")
    assert path.read_text() == "# installed 2026-12-01 by J. Doe\n[charger]\n# fuse: 3 x 25 A\nmax_current_A = 20\n"
    assert written.backup == tmp_path / "config.toml.bak"
    assert "max_current_A = 25" in written.backup.read_text()
    assert os.stat(path).st_mode & 0o777 == 0o640
    set_key(path, "hardware.meter.serial_port", "/dev/ttyAMA0")
    assert load_config(path).hardware.meter.serial_port == "/dev/ttyAMA0"  # type: ignore[union-attr]
    assert not list(tmp_path.glob(".config.toml.*.tmp"))
    with pytest.raises(ConfigError):
        set_key(path, "charger.max_current_A", "200")
    assert "max_current_A = 20" in path.read_text()


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[charger]\nphases = 1\n")
    (tmp_path / f".config.toml.{os.getpid()}.tmp").mkdir()  # the temporary name is taken: the write fails
    with pytest.raises(ConfigError, match="cannot write"):
        write_atomically(path, "[charger]\nphases = 3\n")
    assert path.read_text() == "[charger]\nphases = 1\n"
