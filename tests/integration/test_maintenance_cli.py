"""A technician's maintenance commands against a real daemon on simulated hardware: a connector taken out of service
and back (kept across a restart), a plug unlocked through the core's rules, the diagnostics bundle written to a
file, a backup made while charging and restored onto a damaged charger, and shell completion."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.integration.test_cli import CONFIG, ROOT, Daemon, cli


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(dir=tmp_path) + "[identity]\nserial_number = \"SN-4711\"\n")
    return path


def run(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, "--config", str(daemon.config_path))


def test_a_connector_out_of_service_and_back_kept_across_a_restart(daemon: Daemon) -> None:
    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    daemon.wait_status("Charging")
    taken = cli("availability", "--connector", "1", "inoperative", "--config", str(daemon.config_path))
    assert taken.returncode == 0, taken.stderr
    assert "connector 1: inoperative once its running session ends" in taken.stdout
    time.sleep(0.5)
    assert daemon.connector()["status"] == "Charging"  # as ChangeAvailability's Scheduled: the session goes on
    assert daemon.sim("unplug").returncode == 0
    out = daemon.wait_status("Unavailable")
    assert out["causes"] == ["Inoperative"] and out["session"] is None
    assert daemon.sim("plug").returncode == 0
    time.sleep(0.5)
    assert daemon.connector()["session"] is None  # no new session while inoperative

    assert daemon.stop() == 0
    daemon.start()
    assert daemon.wait_status("Unavailable")["causes"] == ["Inoperative"]
    assert run(daemon, "availability", "operative", "--connector", "1").returncode == 0
    daemon.wait_status("Available")  # (a simulator starts unplugged after a restart)
    missing = run(daemon, "availability", "inoperative", "--connector", "7")
    assert missing.returncode == 1 and "no connector 7" in missing.stderr
    assert daemon.stop() == 0


def test_unlock_goes_through_the_core(daemon: Daemon) -> None:
    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    daemon.wait_status("Charging")
    unlocked = run(daemon, "unlock", "--connector", "1")
    assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr
    assert "connector 1: unlocked" in unlocked.stdout
    connector = daemon.connector()
    assert connector["session"] is None and connector["contactor_closed"] is False
    assert daemon.stop() == 0


def test_diagnostics_writes_the_bundle_the_csms_would_get(daemon: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    result = run(daemon, "diagnostics", str(target))
    assert result.returncode == 0, result.stderr
    [bundle] = list(target.glob("diagnostics-*.tar.gz"))
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
        status = json.load(tar.extractfile("status.json"))  # type: ignore[arg-type]
    assert {"README.txt", "status.json", "config.json", "log.txt", "faults.json"} <= names
    assert status["connectors"][0]["id"] == 1
    assert daemon.stop() == 0
    stopped = cli("diagnostics", str(target), "--config", str(daemon.config_path))
    assert stopped.returncode == 3 and "not running" in stopped.stderr


def test_backup_while_charging_and_restore_onto_a_damaged_charger(daemon: Daemon, tmp_path: Path) -> None:
    assert daemon.sim("plug").returncode == 0
    assert daemon.sim("charge").returncode == 0
    daemon.wait_status("Charging")
    time.sleep(0.3)
    assert daemon.sim("unplug").returncode == 0
    daemon.wait_status("Available")
    sessions = json.loads(run(daemon, "sessions", "--json").stdout)
    archive = tmp_path / "backup.tar.gz"
    made = run(daemon, "backup", str(archive))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert {"manifest.json", "config/config.toml", "state/chargepoint.db", "state/ledger.key"} <= set(
            tar.getnames())
    refused = run(daemon, "restore", str(archive), "--yes")
    assert refused.returncode == 1 and "the daemon is running" in refused.stderr
    assert daemon.stop() == 0

    # The SD card "fails": database and ledger key gone, the config edited.
    database = tmp_path / "chargepoint.db"
    database.unlink()
    (tmp_path / "ledger.key").unlink()
    original = daemon.config_path.read_text()
    daemon.config_path.write_text(original.replace("SN-4711", "SN-BROKEN"))
    restored = run(daemon, "restore", str(archive), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert daemon.config_path.read_text() == original
    assert (tmp_path / "config.toml.before-restore").read_text().count("SN-BROKEN") == 1
    daemon.start()
    assert json.loads(run(daemon, "sessions", "--json").stdout) == sessions
    assert run(daemon, "ledger", "verify").returncode == 0
    assert daemon.stop() == 0

    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as tar, tarfile.open(damaged, "w:gz") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "config/config.toml":
                data = data.replace(b"SN-4711", b"SN-4712")
            out.addfile(member, __import__("io").BytesIO(data))
    bad = run(daemon, "restore", str(damaged), "--yes")
    assert bad.returncode == 1 and "SHA-256 differs" in bad.stderr
    assert daemon.config_path.read_text() == original


def test_shell_completion_completes_commands(tmp_path: Path) -> None:
    script = cli("completion", "bash").stdout
    assert "_CHARGEPOINT_COMPLETE" in script and "complete " in script
    env = dict(os.environ, PYTHONPATH=str(ROOT), _CHARGEPOINT_COMPLETE="bash_complete", COMP_WORDS="chargepoint unl",
               COMP_CWORD="1")
    words = subprocess.run([sys.executable, "-m", "chargepoint"], env=env, capture_output=True, text=True,
                           cwd=ROOT, timeout=60).stdout
    assert "unlock" in words
