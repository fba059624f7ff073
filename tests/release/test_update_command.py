"""``chargepoint update`` by hand, run from the installed venv: check, install beside, stage; the guard switches at the
next start; --status; --rollback. A package that does not check out installs nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chargepoint.release import guard
from chargepoint.release.installer import TEST_DEPENDENCIES_ENV
from tests.release.conftest import Kit
from tests.release.harness import BASE_PYTHON, INITIAL, copy_install_root
from tests.release.kit import make_release, member, pem, rewrite_tar

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def command(root: Path, config: Path, kit: Kit, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env[TEST_DEPENDENCIES_ENV] = str(kit.dependencies)
    return subprocess.run([str(root / ".venv" / "bin" / "python"), "-m", "chargepoint", *args, "--config",
                           str(config)], capture_output=True, text=True, env=env, cwd=config.parent, timeout=90,
                          check=False)


def status(root: Path, config: Path, kit: Kit) -> dict[str, Any]:
    result = command(root, config, kit, "update", "--status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_chargepoint_update_stages_a_release_the_guard_switches_to_and_rollback_goes_back(
        tmp_path: Path, kit: Kit) -> None:
    root = copy_install_root(kit.pristine_root, tmp_path / "opt-chargepoint")
    (tmp_path / "data").mkdir()
    (tmp_path / "root.pem").write_text(pem(kit.maker.root))
    config = tmp_path / "config.toml"
    config.write_text(f'[hardware]\nbackend = "sim"\n[storage]\ndir = "data"\n'
                      f'[update]\ninstall_root = "{root}"\nmanufacturer_root_file = "root.pem"\n')
    release = make_release([kit.good], kit.maker, tmp_path / "dist")

    # Refused before anything is installed: tampered, and unsigned.
    payload = bytearray(member(release, "payload.tar"))
    payload[100] ^= 0x01
    tampered = tmp_path / "tampered.tar"
    rewrite_tar(release, tampered, {"payload.tar": bytes(payload)})
    for package, reason in ((tampered, "signature does not match"),
                            (release.with_name("chargepoint-0.2.0.payload.tar"), "is not signed")):
        result = command(root, config, kit, "update", str(package), "--yes", "--no-restart")
        assert result.returncode == 1 and reason in result.stderr, result.stderr
    assert sorted(p.name for p in (root / "venvs").iterdir()) == ["0.1.0-test"]
    assert status(root, config, kit)["state"] is None

    result = command(root, config, kit, "update", str(release), "--yes", "--no-restart")
    assert result.returncode == 0, result.stderr
    assert "chargepoint 0.2.0, signed by CN=Charger Maker Firmware Signing" in result.stdout
    assert "not restarted (--no-restart): run sudo systemctl restart chargepoint.service" in result.stdout
    data = status(root, config, kit)
    assert data["state"]["phase"] == guard.STAGED and data["links"][".venv"] == INITIAL  # nothing switched yet

    # The next start of the service: the guard switches to it.
    started = subprocess.run([BASE_PYTHON, "-I", str(root / "update-guard.py"), "--config", str(config)],
                             capture_output=True, text=True, check=True)
    assert "chargepoint 0.2.0 on trial" in started.stdout
    data = status(root, config, kit)  # now from the new venv
    assert data["running_version"] == "0.2.0" and data["state"]["phase"] == guard.TRIAL
    assert data["links"][".venv-previous"] == INITIAL

    result = command(root, config, kit, "update", "--rollback", "--yes", "--no-restart")
    assert result.returncode == 0, result.stderr
    assert "switched .venv back to venvs/0.1.0-test" in result.stdout
    data = status(root, config, kit)
    assert data["running_version"] == "0.1.0" and data["state"]["phase"] == guard.ROLLED_BACK
    assert data["state"]["reason"] == "rolled back by hand (chargepoint update --rollback)"
    assert data["links"][".venv"] == INITIAL
    text = command(root, config, kit, "update", "--status").stdout
    assert "last update: chargepoint 0.1.0 -> 0.2.0: rolled-back" in text
