"""Install a signed release beside the running firmware, for the update guard to switch to at the next start.

``install_release`` (blocking; ``chargepoint update`` calls it directly, the daemon through ``ReleaseInstaller``):

1. checks the release (``package.open_release``) and its version against the running one; a refusal installs
   nothing;
2. makes ``<install root>/venvs/<version>-<hash>`` with the interpreter that runs this firmware (the system
   ``python3`` its venv was made from) and installs chargepoint from the release's wheels only
   (``pip install --no-index --find-links``), with the extras the running venv has (``rpi`` on a Pi), checks
   that the new venv imports chargepoint of that version, and writes its build marker as install.sh does;
3. writes the state ``staged`` (``guard.py``): the update guard switches ``.venv`` at the next start of the service.

The running firmware is untouched until the restart, and a failure at any step removes the half-made venv.

``ReleaseInstaller`` is the OCPP adapter's ``TrialInstaller``: ``install`` runs the above in a worker thread;
``outcome`` reads the state file after the restart until the trial is over.

Test seam: ``dependencies_from`` (tests only; the daemon takes it from the environment variable
``CHARGEPOINT_RELEASE_TEST_DEPENDENCIES``) adds a ``.pth`` file to the new venv that puts an existing
site-packages directory on its path, so that pip finds the dependencies installed and a test release needs to carry
chargepoint's wheel only. The charger's path never sets it: every wheel comes from the release.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chargepoint import __version__
from chargepoint.ocpp.file_transfer import InstallError, InstallOutcome, InstallRefused
from chargepoint.release import guard
from chargepoint.release.package import Trust, check_version, open_release

log = logging.getLogger(__name__)

TEST_DEPENDENCIES_ENV = "CHARGEPOINT_RELEASE_TEST_DEPENDENCIES"
TEST_DEPENDENCIES_PTH = "_chargepoint_test_dependencies.pth"
PIP_TIMEOUT_S = 1800.0
OUTPUT_TAIL_CHARS = 1500
OUTCOME_POLL_S = 0.5


@dataclass(frozen=True)
class InstallSettings:
    """Where and how releases are installed (from ``[update]`` and ``[storage]``)."""

    install_root: Path
    state_file: Path
    work_dir: Path
    health_timeout_s: float = 120.0
    start_attempts: int = 3
    allow_downgrade: bool = False
    python: str = ""  # the interpreter that makes venvs; default: the one this firmware's venv was made from
    running_version: str = __version__
    dependencies_from: Path | None = None  # TEST SEAM (module docstring); None on a charger

    @property
    def interpreter(self) -> str:
        return self.python or os.path.realpath(sys.executable)


def current_extras(root: Path) -> str:
    """The pip extras of the running venv, from its build marker ("rpi" on a Pi, "" otherwise)."""
    try:
        text = (root / guard.LINK / guard.BUILD_MARKER).read_text(encoding="utf-8")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "extras":
            return value.strip()
    return ""


def install_release(image: Path, settings: InstallSettings, trust: Trust, *, verified: bool = False,
                    faults_before: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Check ``image``, install it beside the running firmware and stage it; returns the state written."""
    state = guard.read_state(settings.state_file)
    if state is not None and state["phase"] in (guard.TRIAL, guard.ROLLBACK):
        raise InstallError(f"chargepoint {state.get('version')} is on trial: wait until it is kept or rolled back "
                           "(chargepoint update --status)")
    unpack = settings.work_dir / "release"
    shutil.rmtree(unpack, ignore_errors=True)
    try:
        release = open_release(image, unpack, trust, verified=verified)
        check_version(release.version, settings.running_version, settings.allow_downgrade)
        log.info("release %s: chargepoint %s signed by %s (payload SHA-256 %s)", image.name, release.version,
                 release.signer, release.payload_sha256)
        extras = current_extras(settings.install_root)
        build_id = f"{release.version}-" + hashlib.sha256(
            f"{release.payload_sha256}\nextras={extras}".encode()).hexdigest()[:12]
        relative = f"venvs/{build_id}"
        venv = settings.install_root / relative
        if not (venv / guard.BUILD_MARKER).is_file():
            _build_venv(venv, release.version, release.wheels, extras, release.payload_sha256, settings)
        else:
            log.info("release %s: %s is built already", release.version, venv)
    finally:
        shutil.rmtree(unpack, ignore_errors=True)
    staged = {
        "phase": guard.STAGED, "version": release.version, "previous_version": settings.running_version,
        "new": relative, "previous": guard.link_target(settings.install_root / guard.LINK),
        "staged_at": time.time(), "health_timeout_s": settings.health_timeout_s,
        "max_attempts": settings.start_attempts, "payload_sha256": release.payload_sha256, "signer": release.signer,
        "image": image.name, "faults_before": {k: list(v) for k, v in (faults_before or {}).items()},
    }
    guard.write_state(settings.state_file, staged)
    log.warning("chargepoint %s is installed in %s and waits for the restart (the update guard switches to it)",
                release.version, venv)
    return staged


def _build_venv(venv: Path, version: str, wheels: Path, extras: str, source: str, settings: InstallSettings) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    spec = f"chargepoint{f'[{extras}]' if extras else ''}=={version}"
    log.info("installing %s into %s (from the release's wheels only)", spec, venv)
    try:
        _run([settings.interpreter, "-m", "venv", str(venv)], "making the venv")
        if settings.dependencies_from is not None:
            log.warning("TEST SEAM: %s takes its dependencies from %s", venv, settings.dependencies_from)
            site = _site_packages(venv)
            (site / TEST_DEPENDENCIES_PTH).write_text(f"{settings.dependencies_from}\n", encoding="utf-8")
        python = str(venv / "bin" / "python")
        _run([python, "-m", "pip", "--disable-pip-version-check", "--no-input", "install", "--no-index",
              "--no-cache-dir", "--only-binary", ":all:", "--find-links", str(wheels), spec], f"installing {spec}")
        found = _run([python, "-c", "import chargepoint; print(chargepoint.__version__)"],
                     "importing chargepoint from the new venv").strip()
        if found != version:
            raise InstallError(f"the new venv has chargepoint {found}, not {version}")
        marker = f"version={version}\nbuild={venv.name}\nextras={extras}\nsource=release sha256:{source}\n"
        (venv / guard.BUILD_MARKER).write_text(marker, encoding="utf-8")
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise InstallError(f"{venv}: no site-packages directory")
    return found[0]


def _run(argv: list[str], what: str) -> str:
    # Nothing from the environment or pip's configuration files (an index, find-links) adds to the release.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, env=env,
                                stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{what} failed: {exc}") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        tail = output if len(output) <= OUTPUT_TAIL_CHARS else "…" + output[-OUTPUT_TAIL_CHARS:]
        raise InstallError(f"{what} failed (exit {result.returncode}): {tail}")
    return result.stdout


class ReleaseInstaller:
    """The OCPP adapter's installer of signed releases (``TrialInstaller``)."""

    def __init__(self, settings: InstallSettings, trust: Callable[[], Trust],
                 faults: Callable[[], Mapping[str, Sequence[str]]] | None = None) -> None:
        self.settings = settings
        self.trust = trust
        self.faults = faults

    async def install(self, image: Path, *, verified: bool = False) -> None:
        faults = None if self.faults is None else self.faults()
        try:
            trust = self.trust()
        except (OSError, ValueError) as exc:
            raise InstallRefused(f"the keys to check the release with cannot be read: {exc}", None) from exc
        await asyncio.to_thread(install_release, image, self.settings, trust, verified=verified,
                                faults_before=faults)

    async def outcome(self) -> InstallOutcome | None:
        return await wait_outcome(self.settings.state_file, self.settings.running_version)


async def wait_outcome(state_file: Path, running_version: str) -> InstallOutcome | None:
    """How the last update ended, waiting while it is on trial in this process; None without a record."""
    while True:
        state = guard.read_state(state_file)
        if state is None:
            return None
        phase, version = state["phase"], str(state.get("version"))
        if phase == guard.COMMITTED:
            return InstallOutcome(True, f"chargepoint {version} passed its health check")
        if phase == guard.ROLLED_BACK:
            return InstallOutcome(False, str(state.get("reason") or "rolled back"))
        if phase == guard.STAGED or version != running_version:
            return InstallOutcome(False, f"chargepoint {version} is {phase}, but {running_version} runs")
        await asyncio.sleep(OUTCOME_POLL_S)  # on trial here: the health check decides
