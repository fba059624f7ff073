"""``chargepoint update``: install a signed release by hand, see where an update stands, roll back.

    sudo chargepoint update chargepoint-0.2.0.release.tar      check, install beside, restart into the trial
    chargepoint update --status [--json]                        the last update: phase, versions, reason
    sudo chargepoint update --rollback                          back to the firmware before (.venv-previous)

The release is checked first (signature against ``[update]``'s root or key and the ManufacturerRootCertificates
the CSMS installed, then every file's hash) and nothing is installed when it fails. The new firmware goes into a venv
of its own; ``systemctl restart chargepoint`` then lets the update guard switch to it, and the new firmware's health
check keeps it or brings the previous one back, exactly as for an update from the CSMS. ``--no-restart`` stops
before the restart and says what to run. docs/install.md, "Updates and rollback".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from chargepoint import __version__
from chargepoint.cli.common import _load, ask_daemon, config_option

EXIT_REFUSED = 1
EXIT_NOT_SET_UP = 2
RESTART = ["systemctl", "restart", "chargepoint.service"]


@click.command(name="update")
@config_option
@click.argument("release", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--status", "show_status", is_flag=True, help="Show where the last update stands.")
@click.option("--json", "as_json", is_flag=True, help="With --status: one JSON object.")
@click.option("--rollback", is_flag=True, help="Switch back to the firmware before (.venv-previous).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-restart", is_flag=True, help="Install (or roll back) but leave the restart to you.")
@click.option("--allow-downgrade", is_flag=True, help="Install a release older than the running firmware.")
def update_command(config_path: Path, release: Path | None, show_status: bool, as_json: bool, rollback: bool,
                   yes: bool, no_restart: bool, allow_downgrade: bool) -> None:
    """Install a signed release (checked first; kept only once the new firmware proves healthy), show the last
    update (--status) or go back to the previous firmware (--rollback)."""
    if sum((release is not None, show_status, rollback)) != 1:
        raise click.UsageError("give a release file, or --status, or --rollback")
    config = _load(config_path)
    if config.update is None:
        click.echo(f"error: {config_path} has no [update] section: releases cannot be checked or installed "
                   "(docs/install.md, \"Updates and rollback\")", err=True)
        sys.exit(EXIT_NOT_SET_UP)
    from chargepoint.composition import update_trial

    settings = update_trial.install_settings(config, config.update)
    if allow_downgrade:
        from dataclasses import replace

        settings = replace(settings, allow_downgrade=True)
    if show_status:
        _show_status(settings.state_file, settings.install_root, as_json)
        return
    _check_writable(settings.install_root)
    if rollback:
        _rollback(config.storage.database_path, settings.state_file, settings.install_root, yes, no_restart)
        return
    assert release is not None
    _install(config, release, settings, yes, no_restart)


def _check_writable(root: Path) -> None:
    venvs = root / "venvs"
    if not os.access(venvs if venvs.is_dir() else root, os.W_OK):
        click.echo(f"error: {root} is not writable: run it as root (sudo chargepoint update ...)", err=True)
        sys.exit(EXIT_REFUSED)


def _install(config: Any, release: Path, settings: Any, yes: bool, no_restart: bool) -> None:
    from chargepoint.composition.update_trial import faults_of, trust_of
    from chargepoint.ocpp.file_transfer import InstallError, InstallRefused
    from chargepoint.release.installer import install_release
    from chargepoint.release.package import check_version, open_release

    try:
        trust = trust_of(config)
        with tempfile.TemporaryDirectory() as temp:
            checked = open_release(release, Path(temp), trust)
        check_version(checked.version, settings.running_version, settings.allow_downgrade)
    except InstallRefused as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    except (OSError, ValueError) as exc:
        click.echo(f"error: the keys to check the release with: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(f"{release.name}: chargepoint {checked.version}, signed by {checked.signer}")
    status = ask_daemon(config, {"op": "status"})
    running = None if status is None else status.get("status")
    sessions = [] if running is None else [c["id"] for c in running.get("connectors", []) if c.get("session")]
    if not yes:
        warning = (f" The restart ends the session on connector {', '.join(map(str, sessions))}." if sessions
                   else "")
        if not click.confirm(f"Install chargepoint {checked.version} (running {__version__}) and "
                             f"{'stage it' if no_restart else 'restart into it'}?{warning}"):
            sys.exit(EXIT_REFUSED)
    click.echo(f"installing into {settings.install_root / 'venvs'} (pip, from the release's wheels only) ...")
    try:
        staged = install_release(release, settings, trust, faults_before=None if running is None else
                                 faults_of(running))
    except InstallError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(f"chargepoint {staged['version']} is installed in {settings.install_root / staged['new']} and staged")
    _restart(no_restart, "the update guard switches to it at the start, and its health check keeps it or rolls back")


def _rollback(database: Path, state_file: Path, root: Path, yes: bool, no_restart: bool) -> None:
    from chargepoint.release import guard

    state = guard.read_state(state_file)
    current = guard.link_target(root / guard.LINK)
    if state is not None and state["phase"] in (guard.COMMITTED, guard.TRIAL, guard.ROLLBACK) and (
            state.get("new") == current and state.get("previous")):
        target = str(state["previous"])
        state = {**state, "previous_before": current}  # by hand: .venv-previous keeps the one we leave
    else:  # no update of ours on record: the link install.sh keeps
        target = guard.link_target(root / guard.PREVIOUS_LINK) or ""
        state = {"phase": guard.COMMITTED, "version": guard.venv_version(root, current), "new": current,
                 "previous": target or None, "previous_before": current,
                 "previous_version": guard.venv_version(root, target)}
    if not target or not (root / target).is_dir():
        click.echo(f"error: no previous firmware to go back to ({root / guard.PREVIOUS_LINK})", err=True)
        sys.exit(EXIT_REFUSED)
    if not yes and not click.confirm(f"Switch {root / guard.LINK} from {current} back to {target}?"):
        sys.exit(EXIT_REFUSED)
    line = guard.Guard(root, state_file, database).roll_back(state, "rolled back by hand (chargepoint update "
                                                                    "--rollback)")
    click.echo(line)
    _restart(no_restart, "the previous firmware runs from then on")


def _restart(no_restart: bool, what: str) -> None:
    if no_restart:
        click.echo(f"not restarted (--no-restart): run sudo {' '.join(RESTART)}; {what}")
        return
    try:
        subprocess.run(RESTART, check=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        click.echo(f"error: {' '.join(RESTART)} failed ({exc}): restart the service by hand; {what}", err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(f"restarted: {what}; see chargepoint update --status")


def _show_status(state_file: Path, root: Path, as_json: bool) -> None:
    from chargepoint.release import guard

    state = guard.read_state(state_file)
    links = {name: guard.link_target(root / name) for name in (guard.LINK, guard.PREVIOUS_LINK)}
    if as_json:
        click.echo(json.dumps({"state": state, "links": links, "running_version": __version__}, sort_keys=True))
        return
    click.echo(f"{root / guard.LINK} -> {links[guard.LINK]}    {guard.PREVIOUS_LINK} -> {links[guard.PREVIOUS_LINK]}")
    if state is None:
        click.echo("no update on record")
        return
    click.echo(f"last update: chargepoint {state.get('previous_version')} -> {state.get('version')}: "
               f"{state['phase']}")
    lines = [("staged", _when(state.get("staged_at"))), ("trial started", _when(state.get("started_at"))),
             ("starts", f"{state.get('attempts')} of {state.get('max_attempts')}" if state.get("attempts") else None),
             ("deadline", _when(state.get("deadline")) if state["phase"] == guard.TRIAL else None),
             ("ended", _when(state.get("ended_at"))), ("reason", state.get("reason") or None),
             ("signed by", state.get("signer"))]
    for label, value in lines:
        if value:
            click.echo(f"  {label}: {value}")


def _when(epoch: object) -> str | None:
    if not isinstance(epoch, int | float):
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))
