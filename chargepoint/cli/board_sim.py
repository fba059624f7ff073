"""``chargepoint board-sim``: a simulated EVSE controller board on a pseudo-terminal, for a daemon with
``[hardware] backend = "board"`` to drive. The one CLI module that imports a simulator (the import contract
``cli-no-simulators`` names it): a board is a device of its own, with no daemon to ask."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command(name="board-sim")
@click.argument("kind", type=click.Choice(["openevse", "evse-din"]))
@click.option("--link", "link", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Path of the symlink to the board's serial device (what [hardware.board] link names).")
def board_sim(kind: str, link: Path) -> None:
    """Run a simulated board until SIGTERM; EV stimuli on stdin, one JSON line per output change on stdout.

    \b
    Stimuli (one per line):
      plug [A] | charge | pause | vent | unplug | cable A | fault rcd|diode|weld | clear
    """
    from simulators.boards.main import main

    sys.exit(main(kind, link))
