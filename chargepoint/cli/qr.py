"""``chargepoint qr``: the payment QR code a connector shows now, on the terminal (and as a PNG)."""

from __future__ import annotations

import io
from pathlib import Path

import click
import segno

from chargepoint.cli.common import _load_for_daemon, _request


@click.command(name="qr")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("/etc/chargepoint/config.toml"), envvar="CHARGEPOINT_CONFIG", show_default=True,
              help="Configuration file (TOML).")
@click.option("--connector", type=click.IntRange(min=1), default=1, show_default=True, help="Connector id.")
@click.option("--png", "png_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the code as a PNG image (what a graphic display shows).")
def qr_command(config_path: Path, connector: int, png_path: Path | None) -> None:
    """Show the mobile-payment QR code of a connector (exit 1 if none is shown now, saying why)."""
    reply = _request(_load_for_daemon(config_path), {"op": "qr", "connector": connector})
    url = str(reply["url"])
    code = segno.make(url, error="m")
    out = io.StringIO()
    code.terminal(out=out, compact=True)
    click.echo(out.getvalue().rstrip("\n"))
    click.echo(url)
    if png_path is not None:
        code.save(str(png_path), scale=6, border=4)
        click.echo(f"written to {png_path}")
