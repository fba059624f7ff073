"""``chargepoint logs ocpp [--follow] [--lines N]``: the OCPP message log, read from its files, so it works whether
the daemon runs or not. The daemon's own log is in the journal (``journalctl -u chargepoint``).

``--follow`` behaves like ``tail -F``: it keeps printing what is added, and when the daemon rotates the log (the
file becomes ``ocpp.log.1`` and a new ``ocpp.log`` begins) it reads what was left in the old file, then the new one
from its start.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import click

from chargepoint.cli.common import _load, config_option, interruptible
from chargepoint.message_log import OCPP_LOG_FILE

BLOCK_BYTES = 64 * 1024
POLL_S = 0.2



@click.group(name="logs")
def logs_group() -> None:
    """Read the charger's logs from their files (the daemon's own log: journalctl -u chargepoint)."""


@logs_group.command(name="ocpp")
@config_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing frames as they come, across rotations (Ctrl-C ends).")
@click.option("--lines", "-n", "lines", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many of the last frames to print first.")
def ocpp_command(config_path: Path, follow: bool, lines: int) -> None:
    """Every OCPP frame in and out, one per line: UTC time, 'in' or 'out', the frame (secrets masked)."""
    config = _load(config_path)
    path = config.storage.dir / OCPP_LOG_FILE
    if not config.logging.ocpp_log:
        click.echo(f"note: [logging] ocpp_log = false in {config_path}: the charger writes no new OCPP messages",
                   err=True)
    try:
        current = _open(path)
        end = 0 if current is None else os.fstat(current.fileno()).st_size
        for line in last_lines(path, lines, current, end):
            click.echo(line)
        if not follow:
            if current is None and not rotated(path):
                click.echo(f"no OCPP messages logged yet ({path} does not exist)", err=True)
            return
        interruptible()
        for line in follow_lines(path, current, end):
            click.echo(line)
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # | head: the reader has gone
        _silence_stdout()


def rotated(path: Path) -> list[Path]:
    """The rotated files that exist (``ocpp.log.1``, ``.2`` ...), newest first."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)")
    found = []
    if path.parent.is_dir():
        for entry in path.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
    return [entry for _, entry in sorted(found)]


def last_lines(path: Path, count: int, current: BinaryIO | None = None, end: int | None = None) -> list[str]:
    """The last ``count`` lines of the log, oldest first, taken from the rotated files too when the current one has
    fewer. ``current``/``end``: the current file already open and the offset it is read up to."""
    found: list[str] = []
    if count == 0:
        return found
    if current is not None:
        found = _tail(current, count, os.fstat(current.fileno()).st_size if end is None else end)
    for older in rotated(path):
        if len(found) >= count:
            break
        try:
            with older.open("rb") as file:
                found = _tail(file, count - len(found), os.fstat(file.fileno()).st_size) + found
        except OSError:
            continue
    return found[-count:]


def follow_lines(path: Path, current: BinaryIO | None, position: int) -> Iterator[str]:
    """The lines added to the log from ``position`` of ``current`` on, forever, across rotations: when the file
    read is rotated, the rest of it is read, then each newer file in turn (even those rotated away meanwhile)."""
    pending = b""
    file = current
    if file is not None:
        file.seek(position)
    while True:
        data = file.read() if file is not None else b""
        if not data:
            newer = _newer_file(path, file)
            if newer is None:
                time.sleep(POLL_S)
                continue
            if file is not None:
                data = file.read()  # what was written between the last read and the rotation
                file.close()
            file = newer
        pending += data
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield raw.decode("utf-8", "replace")


def _newer_file(path: Path, file: BinaryIO | None) -> BinaryIO | None:
    """The file that follows ``file`` in the log (opened at its start), or None while ``file`` is the newest.

    The files are matched by inode, as they are renamed under the reader: ``file`` may be ``ocpp.log.3`` by now,
    and ``ocpp.log.2`` is next. A file cut shorter than read (truncated in place) starts again from its start."""
    for _ in range(10):  # the names may shift while we look: look again
        chain = []
        for candidate in reversed([path, *rotated(path)]):  # oldest first
            try:
                stat = candidate.stat()
            except OSError:
                continue
            chain.append((candidate, (stat.st_dev, stat.st_ino)))
        if not chain:
            return None
        if file is None:
            wanted = chain[-1]
        else:
            mine = os.fstat(file.fileno())
            ids = [file_id for _, file_id in chain]
            if (mine.st_dev, mine.st_ino) not in ids:
                wanted = chain[0]  # ours was deleted: every file left is newer
            else:
                at = ids.index((mine.st_dev, mine.st_ino))
                if at == len(chain) - 1:
                    if mine.st_size < file.tell():
                        file.seek(0)  # truncated in place
                    return None
                wanted = chain[at + 1]
        try:
            opened = wanted[0].open("rb")
        except OSError:
            continue
        stat = os.fstat(opened.fileno())
        if (stat.st_dev, stat.st_ino) == wanted[1]:
            return opened
        opened.close()
    return None


def _open(path: Path) -> BinaryIO | None:
    try:
        return path.open("rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        click.echo(f"error: {path}: {exc.strerror or exc}", err=True)
        sys.exit(1)


def _tail(file: BinaryIO, count: int, end: int) -> list[str]:
    """The last ``count`` lines of ``file`` up to offset ``end``, read backwards in blocks."""
    data = b""
    at = end
    while at > 0 and data.count(b"\n") <= count:
        size = min(BLOCK_BYTES, at)
        at -= size
        file.seek(at)
        data = file.read(size) + data
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if at > 0:
        lines = lines[1:]  # the first one is cut
    return [line.decode("utf-8", "replace") for line in lines[-count:]]


def _silence_stdout() -> None:
    """After a broken pipe, Python's exit would complain while flushing stdout: point it at /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
