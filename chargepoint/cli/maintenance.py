"""A technician's maintenance commands: take a connector out of service and back (``availability``), unlock a
plug (``unlock``), the diagnostics bundle the CSMS would get (``diagnostics``), ``backup`` and ``restore`` of
configuration, keys and database, and shell completion (``completion``).

``availability`` and ``unlock`` go through the running charger's core, with the rules a CSMS's ChangeAvailability
and UnlockConnector follow: a running session goes on and the connector changes when it ends (Scheduled); an unlock
ends the session gently first and never releases a plug while the contacts may be live.
"""

from __future__ import annotations

import base64
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from chargepoint.cli.common import _load, _request, ask_daemon, config_option
from chargepoint.cli.report import exclude

connector_option = click.option("--connector", type=click.IntRange(0, 8), default=None,
                                help="The connector (0: every connector; the default).")
EXIT_REFUSED = 1
EXIT_NOT_RUNNING = 3


@click.group(name="availability")
@connector_option
@click.pass_context
def availability_group(ctx: click.Context, connector: int | None) -> None:
    """Take a connector out of service (inoperative) or back (operative), as the CSMS's ChangeAvailability does and
    kept across restarts; or declare time that does not count against availability (exclude)."""
    ctx.obj = connector


availability_group.add_command(exclude)


def _set_availability(config_path: Path, connector: int | None, operative: bool) -> None:
    chosen = click.get_current_context().find_object(int) if connector is None else connector
    config = _load(config_path)
    reply = _request(config, {"op": "availability", "connector": chosen or 0, "operative": operative})
    state = "operative" if operative else "inoperative"
    for connector_id in reply["connectors"]:
        when = (" once its running session ends (it is not stopped)" if connector_id in reply.get("scheduled", [])
                else "")
        click.echo(f"connector {connector_id}: {state}{when}")


@availability_group.command(name="operative")
@config_option
@connector_option
def operative(config_path: Path, connector: int | None) -> None:
    """Back in service."""
    _set_availability(config_path, connector, True)


@availability_group.command(name="inoperative")
@config_option
@connector_option
def inoperative(config_path: Path, connector: int | None) -> None:
    """Out of service: Unavailable, no new session."""
    _set_availability(config_path, connector, False)


@click.command(name="unlock")
@config_option
@click.option("--connector", type=click.IntRange(1, 8), default=1, show_default=True, help="The connector.")
def unlock_command(config_path: Path, connector: int) -> None:
    """Release the plug's lock (a stuck plug): a running session ends first; refused while the contacts may be
    live. Exit 0 when unlocked, 1 otherwise."""
    result = _request(_load(config_path), {"op": "unlock", "connector": connector})["result"]
    explain = {"Unlocked": "unlocked", "UnlockFailed": "NOT unlocked (the lock did not open, or the contacts may be "
               "live: see chargepoint status)", "NotSupported": "nothing to unlock: a tethered cable has no lock"}
    click.echo(f"connector {connector}: {explain.get(result, result)}")
    if result != "Unlocked":
        sys.exit(EXIT_REFUSED)


@click.command(name="diagnostics")
@config_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True), required=False)
def diagnostics_command(config_path: Path, file: Path | None) -> None:
    """Write the diagnostics bundle the CSMS gets with GetDiagnostics (status, configuration and log, secrets
    masked) to FILE, or to a directory, or to the current one under its usual name."""
    config = _load(config_path)
    reply = ask_daemon(config, {"op": "diagnostics"})
    if reply is None:
        click.echo("error: the daemon is not running: the bundle holds its live state and log (start it, or use "
                   "chargepoint backup for the files)", err=True)
        sys.exit(EXIT_NOT_RUNNING)
    target = file or Path(".")
    if target.is_dir():
        target = target / reply["name"]
    target.write_bytes(base64.b64decode(reply["bundle"]))
    click.echo(f"{target}: {target.stat().st_size} bytes")


@click.command(name="backup")
@config_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), required=False)
def backup_command(config_path: Path, file: Path | None) -> None:
    """Save configuration, keys and database into FILE (default: chargepoint-backup-<serial>-<time>.tar.gz): safe
    while the daemon runs. It holds secrets: it is written readable by its owner only."""
    from chargepoint.cli.backup import backup

    config = _load(config_path)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    archive = file or Path(f"chargepoint-backup-{config.identity.serial_number}-{stamp}.tar.gz")
    manifest = backup(config, config_path, archive)
    click.echo(f"{archive}: {len(manifest['files'])} files ({', '.join(manifest['files'])})")


@click.command(name="restore")
@config_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--yes", is_flag=True, help="Do not ask.")
def restore_command(config_path: Path, file: Path, yes: bool) -> None:
    """Put back what FILE (from chargepoint backup) holds, checked first; the daemon must be stopped
    (systemctl stop chargepoint). What it replaces stays as <name>.before-restore."""
    from chargepoint.cli.backup import BackupError, read_archive, restore

    config = _load(config_path)
    if ask_daemon(config, {"op": "status"}) is not None:
        click.echo("error: the daemon is running: stop it first (systemctl stop chargepoint)", err=True)
        sys.exit(EXIT_REFUSED)
    try:
        manifest, _ = read_archive(file)
        if not yes:
            click.confirm(f"restore the backup of {manifest['serial_number']} made {manifest['created_at']} over "
                          f"{config_path} and {config.storage.dir}?", abort=True)
        written = restore(file, config, config_path)
    except BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    for path in written:
        click.echo(f"restored {path}")
    click.echo("start the charger again: systemctl start chargepoint")


@click.command(name="completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]), default="bash")
def completion_command(shell: str) -> None:
    """Print the shell completion script (install.sh puts bash's in /etc/bash_completion.d):
    eval "$(chargepoint completion bash)"."""
    from click.shell_completion import get_completion_class

    from chargepoint.cli.main import cli

    completion = get_completion_class(shell)
    assert completion is not None
    click.echo(completion(cli, {}, "chargepoint", "_CHARGEPOINT_COMPLETE").source())
