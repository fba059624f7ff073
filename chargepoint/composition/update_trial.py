"""Firmware updates in the daemon (``[update]``): the release installer the OCPP adapter uses, and the health check
of a new firmware on trial.

At start, with a trial of this very version in the state file (the update guard switched ``.venv`` to it), the
daemon checks itself once it is ready: every connector's meter read and fresh, no fault that was not there when
the update was staged (a lost board link shows as one: the pilot goes silent), no config errors, and with
``[ocpp]`` the CSMS connected. All of it within ``[update] health_timeout_s`` of the start: then the update is
committed, and the OCPP adapter reports Installed. Otherwise the reason is written (``rollback``) and the daemon
restarts itself: the update guard switches back and the previous firmware reports InstallationFailed.

A firmware on trial that does not take the configuration the old one ran with asks for the rollback at once
(``boot.py``) instead of holding the charger safe until someone restarts it.

When a restart comes while an update waits for the guard (staged, or rollback), the daemon exits instead of
re-executing itself in place, so that the service manager runs the guard (``must_exit_for_update``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from chargepoint import __version__
from chargepoint.config.schema import Config, UpdateSettings
from chargepoint.release import guard
from chargepoint.release.installer import TEST_DEPENDENCIES_ENV, InstallSettings, ReleaseInstaller
from chargepoint.release.package import Trust, load_public_key, load_roots

log = logging.getLogger(__name__)

POLL_S = 0.5
SETTLE_S = 1.0  # every check must hold this long before the update is kept


def state_file(config: Config) -> Path:
    return config.storage.dir / guard.STATE_FILE


def install_settings(config: Config, update: UpdateSettings, *, test_dependencies: bool = True) -> InstallSettings:
    seam = os.environ.get(TEST_DEPENDENCIES_ENV) if test_dependencies else None
    return InstallSettings(install_root=update.install_root, state_file=state_file(config),
                           work_dir=config.storage.dir / "firmware", health_timeout_s=update.health_timeout_s,
                           start_attempts=update.start_attempts, allow_downgrade=update.allow_downgrade,
                           dependencies_from=Path(seam) if seam else None)


def trust_of(config: Config) -> Trust:
    """The configured root and key, and the ManufacturerRootCertificates the CSMS installed (read each time)."""
    update = config.update
    roots = []
    keys = []
    if update is not None and update.manufacturer_root_file is not None:
        roots.extend(load_roots(update.manufacturer_root_file))
    if update is not None and update.public_key_file is not None:
        keys.append(load_public_key(update.public_key_file))
    if config.ocpp is not None:
        from chargepoint.ocpp.certificates import CertificateStore, RootKind

        roots.extend(CertificateStore(config.storage.dir / "certs").roots(RootKind.ManufacturerRootCertificate))
    return Trust(tuple(roots), tuple(keys))


def release_installer(config: Config, faults: Callable[[], Mapping[str, Sequence[str]]] | None) -> ReleaseInstaller:
    assert config.update is not None
    return ReleaseInstaller(install_settings(config, config.update), lambda: trust_of(config), faults)


def faults_of(status: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each connector's active faults, from ``status()``: what a new firmware must not add to."""
    return {str(c["id"]): list(c.get("faults") or []) for c in status.get("connectors", [])}


def health_problems(status: Mapping[str, Any], faults_before: Mapping[str, Sequence[str]],
                    csms_required: bool) -> list[str]:
    """What keeps a running firmware from passing its health check (empty: healthy)."""
    problems = [f"config error: {e}" for e in status.get("config_errors") or []]
    for connector in status.get("connectors", []):
        number = connector["id"]
        meter = connector.get("meter")
        if connector.get("meter_energy_Wh") is None or not isinstance(meter, dict) or meter.get("stale"):
            problems.append(f"connector {number}: no fresh meter reading")
        new = sorted(set(connector.get("faults") or []) - set(faults_before.get(str(number), [])))
        if new:
            problems.append(f"connector {number}: new fault {', '.join(new)}")
    if csms_required and not status.get("csms_connected"):
        problems.append("the CSMS is not connected")
    return problems


def must_exit_for_update(config: Config) -> bool:
    """A restart now must go through the service manager: the update guard has work (a staged release, or a
    rollback the health check asked for)."""
    if config.update is None:
        return False
    state = guard.read_state(state_file(config))
    return state is not None and state["phase"] in (guard.STAGED, guard.ROLLBACK)


class UpdateTrial:
    """The health check of a firmware on trial; ``start`` once the daemon is ready, ``stop`` when it stops."""

    def __init__(self, config: Config, status: Callable[[], Mapping[str, Any]],
                 restart: Callable[[], Any], version: str = __version__) -> None:
        self.config = config
        self.path = state_file(config)
        self.status = status
        self.restart = restart  # async: restarts the daemon (the soft reset)
        self.version = version
        self.started_s = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        state = guard.read_state(self.path)
        if state is None or state["phase"] in guard.OVER:
            return
        if state["phase"] == guard.STAGED:
            # The guard runs before every start under systemd: it did not, so the staged release never runs.
            log.error("chargepoint %s was staged but the update guard did not run before this start (is the "
                      "unit's ExecStartPre in place?): the update is abandoned", state.get("version"))
            guard.write_state(self.path, {**state, "phase": guard.ROLLED_BACK, "ended_at": time.time(),
                                          "reason": "the service started without the update guard: never switched"})
            return
        if str(state.get("version")) != self.version:
            log.error("chargepoint %s is on trial, but %s started: the update is abandoned", state.get("version"),
                      self.version)
            guard.write_state(self.path, {**state, "phase": guard.ROLLED_BACK, "ended_at": time.time(),
                                          "reason": f"chargepoint {self.version} started instead of "
                                                    f"{state.get('version')}"})
            return
        if state["phase"] == guard.TRIAL:
            self._task = asyncio.create_task(self._check(state), name="update health check")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _check(self, state: dict[str, Any]) -> None:
        timeout_s = float(state.get("health_timeout_s", 120))
        deadline = self.started_s + timeout_s
        faults_before = state.get("faults_before") or {}
        csms = self.config.ocpp is not None
        log.warning("chargepoint %s is on trial (start %s of %s): health check within %.0f s", self.version,
                    state.get("attempts"), state.get("max_attempts"), timeout_s)
        healthy_since: float | None = None
        problems: list[str] = ["not checked yet"]
        while time.monotonic() < deadline:
            problems = health_problems(self.status(), faults_before, csms)
            now = time.monotonic()
            if problems:
                healthy_since = None
            elif healthy_since is None:
                healthy_since = now
            elif now - healthy_since >= SETTLE_S:
                guard.write_state(self.path, {**state, "phase": guard.COMMITTED, "ended_at": time.time(),
                                              "reason": ""})
                log.warning("chargepoint %s passed its health check: the update is kept", self.version)
                return
            await asyncio.sleep(POLL_S)
        reason = (f"chargepoint {self.version} failed its health check within {timeout_s:.0f} s: "
                  f"{'; '.join(problems)}")
        log.error("%s: rolling back to %s", reason, state.get("previous_version"))
        guard.request_rollback(self.path, self.version, reason)
        await self.restart()
