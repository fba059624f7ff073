"""The update guard at each start (switch, count, roll back, the database across a rollback, old venvs), the health
check's verdicts and the [update] section's rules."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chargepoint.composition.update_trial import health_problems
from chargepoint.config.loader import parse_config
from chargepoint.errors import ConfigError
from chargepoint.release import guard
from chargepoint.release.guard import Guard

NOW = 1_000_000.0


def venv(root: Path, name: str, version: str) -> str:
    path = root / "venvs" / name
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "chargepoint").write_text("#!/bin/sh\n")
    (path / guard.BUILD_MARKER).write_text(f"version={version}\n")
    return f"venvs/{name}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "opt"
    old = venv(root, "0.1.0-a", "0.1.0")
    (root / guard.LINK).symlink_to(old)
    return root


def database(path: Path, schema_version: int, rows: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS sessions (n INTEGER)")
        db.executemany("INSERT INTO sessions VALUES (?)", [(i,) for i in range(rows)])
        db.execute(f"PRAGMA user_version = {schema_version}")
    db.close()


def rows(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM sessions").fetchone()[0])
    finally:
        db.close()


def stage(root: Path, state_file: Path, **extra: Any) -> None:
    new = venv(root, "0.2.0-b", "0.2.0")
    guard.write_state(state_file, {"phase": guard.STAGED, "version": "0.2.0", "previous_version": "0.1.0",
                                   "new": new, "health_timeout_s": 60, "max_attempts": 2, **extra})


def test_a_staged_release_is_switched_to_and_its_starts_are_counted_until_too_many(root: Path, tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    stage(root, state_file)
    assert "switched .venv to venvs/0.2.0-b" in Guard(root, state_file, None, NOW).run()
    assert guard.link_target(root / guard.LINK) == "venvs/0.2.0-b"
    assert guard.link_target(root / guard.PREVIOUS_LINK) == "venvs/0.1.0-a"
    state = guard.read_state(state_file)
    assert state is not None and state["phase"] == guard.TRIAL and state["attempts"] == 1
    assert "start 2 of 2" in Guard(root, state_file, None, NOW + 1).run()
    line = Guard(root, state_file, None, NOW + 2).run()
    assert line.startswith("rolled back: chargepoint 0.2.0 did not pass its health check in 2 start(s)")
    assert guard.link_target(root / guard.LINK) == "venvs/0.1.0-a"
    assert guard.link_target(root / guard.PREVIOUS_LINK) is None  # as it was before the update
    # Over: the failed venv goes at the next start, the running one stays.
    assert Guard(root, state_file, None, NOW + 3).run().endswith("removed venvs/0.2.0-b")
    assert sorted(p.name for p in (root / "venvs").iterdir()) == ["0.1.0-a"]


def test_past_the_deadline_the_guard_rolls_back_at_the_next_start(root: Path, tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    stage(root, state_file)
    Guard(root, state_file, None, NOW).run()
    line = Guard(root, state_file, None, NOW + 60 + guard.DEADLINE_GRACE_S + 1).run()
    assert "before the trial's deadline" in line and guard.link_target(root / guard.LINK) == "venvs/0.1.0-a"


def test_a_rollback_the_new_firmware_asked_for_is_carried_out_with_its_reason(root: Path, tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    stage(root, state_file)
    Guard(root, state_file, None, NOW).run()
    state = guard.read_state(state_file)
    assert state is not None
    guard.write_state(state_file, {**state, "phase": guard.ROLLBACK, "reason": "the CSMS is not connected"})
    assert Guard(root, state_file, None, NOW + 1).run().startswith("rolled back: the CSMS is not connected")
    state = guard.read_state(state_file)
    assert state is not None and state["phase"] == guard.ROLLED_BACK and state["reason"] == "the CSMS is not connected"


def test_only_the_firmware_on_trial_can_ask_for_its_rollback(root: Path, tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    assert not guard.request_rollback(state_file, "0.2.0", "no state")
    stage(root, state_file)
    assert not guard.request_rollback(state_file, "0.2.0", "staged, not on trial yet")
    Guard(root, state_file, None, NOW).run()
    assert not guard.request_rollback(state_file, "0.1.0", "not the one on trial")
    assert guard.request_rollback(state_file, "0.2.0", "the configuration does not validate")
    assert "the configuration does not validate" in Guard(root, state_file, None, NOW + 1).run()


def test_a_database_migrated_by_the_new_firmware_is_put_back_for_the_old_one(root: Path, tmp_path: Path) -> None:
    state_file, db = tmp_path / "state.json", tmp_path / "chargepoint.db"
    database(db, 13, 5)
    stage(root, state_file)
    Guard(root, state_file, db, NOW).run()
    database(db, 14, 2)  # the new firmware migrated it, and recorded two sessions
    state = guard.read_state(state_file)
    assert state is not None
    guard.write_state(state_file, {**state, "phase": guard.ROLLBACK, "reason": "unhealthy"})
    assert "the database copy from before was put back" in Guard(root, state_file, db, NOW + 1).run()
    assert rows(db) == 5
    assert rows(tmp_path / f"chargepoint.db{guard.DB_FAILED_SUFFIX}") == 7  # the trial's sessions are kept aside


def test_a_database_the_old_firmware_can_still_open_keeps_what_the_trial_recorded(root: Path, tmp_path: Path) -> None:
    state_file, db = tmp_path / "state.json", tmp_path / "chargepoint.db"
    database(db, 13, 5)
    stage(root, state_file)
    Guard(root, state_file, db, NOW).run()
    database(db, 13, 2)
    state = guard.read_state(state_file)
    assert state is not None
    guard.write_state(state_file, {**state, "phase": guard.ROLLBACK, "reason": "unhealthy"})
    assert "database" not in Guard(root, state_file, db, NOW + 1).run()
    assert rows(db) == 7


def test_a_staged_release_that_is_not_there_switches_nothing(root: Path, tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    guard.write_state(state_file, {"phase": guard.STAGED, "version": "0.2.0", "new": "venvs/../../etc"})
    assert "nothing switched" in Guard(root, state_file, None, NOW).run()
    assert guard.link_target(root / guard.LINK) == "venvs/0.1.0-a"
    state = guard.read_state(state_file)
    assert state is not None and state["phase"] == guard.ROLLED_BACK


def test_the_guard_runs_as_a_script_of_the_standard_library_alone(root: Path, tmp_path: Path) -> None:
    """What the unit runs: the file on its own, by the system python, isolated (no project on the path)."""
    script = tmp_path / "update-guard.py"
    script.write_bytes(Path(guard.__file__).read_bytes())
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndir = "data"\n[update]\ninstall_root = "{root}"\n')
    stage(root, data / guard.STATE_FILE)
    result = subprocess.run([os.path.realpath(sys.executable), "-I", str(script), "--config", str(config)],
                            capture_output=True, text=True, check=False, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("update-guard: switched .venv to venvs/0.2.0-b")
    assert guard.paths_from_config(config) == (root, data / guard.STATE_FILE, data / "chargepoint.db")


def connector(number: int = 1, *, energy: int | None = 100, stale: bool = False,
              faults: list[str] | None = None) -> dict[str, Any]:
    return {"id": number, "meter_energy_Wh": energy, "meter": None if energy is None else {"stale": stale},
            "faults": faults or []}


@pytest.mark.parametrize(("status", "before", "csms", "problems"), [
    ({"connectors": [connector()], "csms_connected": True}, {}, True, []),
    ({"connectors": [connector(energy=None)], "csms_connected": True}, {}, True,
     ["connector 1: no fresh meter reading"]),
    ({"connectors": [connector(stale=True)]}, {}, False, ["connector 1: no fresh meter reading"]),
    ({"connectors": [connector(faults=["ContactorWelded", "PilotLost"])]}, {"1": ["ContactorWelded"]}, False,
     ["connector 1: new fault PilotLost"]),
    ({"connectors": [connector()], "csms_connected": False}, {}, True, ["the CSMS is not connected"]),
    ({"connectors": [connector()], "csms_connected": False}, {}, False, []),
    ({"connectors": [], "config_errors": ["x: bad"]}, {}, False, ["config error: x: bad"]),
])
def test_the_health_check_names_what_is_wrong(status: dict[str, Any], before: dict[str, list[str]], csms: bool,
                                              problems: list[str]) -> None:
    assert health_problems(status, before, csms) == problems


@pytest.mark.parametrize(("sections", "message"), [
    ({"update": {}}, "update needs manufacturer_root_file or public_key_file"),
    ({"update": {"public_key_file": "k.pem"}, "ocpp": {"csms_url": "ws://x", "charge_point_id": "A",
                                                       "firmware_install_command": ["rauc", "install"]}},
     "both install firmware"),
    ({"update": {"public_key_file": "k.pem", "health_timeout_s": 5}}, "health_timeout_s"),
])
def test_the_update_section_is_checked(tmp_path: Path, sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(sections, tmp_path / "config.toml")


def test_update_paths_are_relative_to_the_config_file_and_a_missing_key_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"update.public_key_file: .*release.pem: no such file"):
        parse_config({"update": {"public_key_file": "keys/release.pem"}}, tmp_path / "config.toml")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "release.pem").write_text("")
    config = parse_config({"update": {"public_key_file": "keys/release.pem", "install_root": "opt"}},
                          tmp_path / "config.toml")
    assert config.update is not None
    assert config.update.public_key_file == tmp_path / "keys" / "release.pem"
    assert config.update.install_root == tmp_path / "opt"


def test_a_firmware_on_trial_that_cannot_use_the_configuration_asks_for_the_rollback_instead_of_holding_safe(
        root: Path, tmp_path: Path) -> None:
    """Without this it would sit in safe mode (no charging) until someone restarted it."""
    from chargepoint import __version__

    data = tmp_path / "data"
    data.mkdir()
    state_file = data / guard.STATE_FILE
    guard.write_state(state_file, {"phase": guard.TRIAL, "version": __version__, "previous": "venvs/0.1.0-a",
                                   "attempts": 1, "max_attempts": 3, "deadline": NOW * 10})
    config = tmp_path / "config.toml"
    config.write_text(f'[hardware]\nbackend = "sim"\n[storage]\ndir = "data"\n[charger]\nmax_current_A = 500\n'
                      f'[update]\ninstall_root = "{root}"\npublic_key_file = "missing.pem"\n')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    result = subprocess.run([sys.executable, "-m", "chargepoint", "run", "--config", str(config)], env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr
    state = guard.read_state(state_file)
    assert state is not None and state["phase"] == guard.ROLLBACK
    assert state["reason"].startswith(f"chargepoint {__version__} does not take the configuration: ")
    assert "charger.max_current_A" in state["reason"]
