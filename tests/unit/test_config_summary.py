"""The configuration at start-up is one log line: the main facts and the keys not at their defaults, secrets masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chargepoint.composition import config_summary as summary_module
from chargepoint.composition.config_summary import config_summary
from chargepoint.config.loader import parse_config

SECRET = "0123456789abcdefXYZ"


def config(tmp_path: Path, **sections: dict[str, Any]) -> Any:
    data: dict[str, Any] = {"hardware": {"backend": "sim"}, "storage": {"dir": str(tmp_path)}, **sections}
    return parse_config(data, tmp_path / "config.toml")


def test_the_summary_is_one_line_with_the_main_facts_and_the_changed_keys(tmp_path: Path) -> None:
    line = config_summary(config(tmp_path, charger={"connectors": 2, "max_current_A": 16.0},
                                 ocpp={"csms_url": "wss://csms.example/ocpp", "charge_point_id": "CP-7",
                                       "security_profile": 1, "authorization_key": SECRET}))
    assert "\n" not in line
    assert line.startswith("configuration: hardware sim, 2 connector(s), OCPP wss://csms.example/ocpp as CP-7 "
                           "(security profile 1), free vend off, storage ")
    assert " charger.connectors=2 " in line and " charger.max_current_A=16.0 " in line
    assert " ocpp.authorization_key=******** " in line
    assert SECRET not in line
    assert line.endswith("(every key: chargepoint config show)")


def test_keys_at_their_defaults_are_left_out(tmp_path: Path) -> None:
    line = config_summary(config(tmp_path, charger={"connectors": 1}))
    assert "charger.connectors" not in line
    assert "standalone, free vend on" in line


def test_a_long_configuration_is_cut_and_says_how_many_keys_are_left(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(summary_module, "LINE_MAX_CHARS", 300)
    line = config_summary(config(tmp_path, charger={"connectors": 2, "max_current_A": 16.0},
                                 ocpp={"csms_url": "wss://csms.example/ocpp", "charge_point_id": "CP-7"}))
    assert len(line) <= 300
    assert "more (every key: chargepoint config show)" in line
