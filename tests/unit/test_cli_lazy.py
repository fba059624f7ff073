"""The command line imports a subcommand's module only when that command runs."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from chargepoint.cli.main import LAZY_COMMANDS, cli


def test_every_lazy_command_resolves_and_is_listed() -> None:
    ctx = click.Context(cli)
    assert set(LAZY_COMMANDS) <= set(cli.list_commands(ctx))
    for name in LAZY_COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name
    help_text = CliRunner().invoke(cli, ["--help"]).output
    for name in LAZY_COMMANDS:
        assert name in help_text


def test_report_does_not_import_the_writer_or_other_commands() -> None:
    probe = (
        "import sys\n"
        "from chargepoint.cli.main import cli\n"
        "import click\n"
        "cli.get_command(click.Context(cli), 'report')\n"
        "loaded = set(sys.modules)\n"
        "print(sorted(m for m in ('chargepoint.store.store', 'chargepoint.store.ledger', 'chargepoint.cli.forecast',"
        " 'chargepoint.cli.ledger', 'chargepoint.cli.qr', 'asyncio') if m in loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
