"""``chargepoint board-sim KIND --link PATH``: one simulated board on a pseudo-terminal, until SIGTERM.

The board's end of the line is the pty's master; its slave device gets a symlink at PATH (removed on exit), which
the driver opens as it would open /dev/ttyUSB0. The simulator keeps the slave open too, so that the master never
reads EIO while the driver closes and reopens the line. Lines on stdin are stimuli (``simulators.boards.STIMULI``);
every change of the board's outputs is one JSON line on stdout, flushed at once:
``{"t": <unix time>, "kind": ..., "contactor_closed": bool, "duty_percent": number, "current_A": ..., ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import tty
from pathlib import Path
from typing import Any, TextIO

from simulators.boards import STIMULI, BoardSim
from simulators.boards.evse_din import EvseDinSim
from simulators.boards.openevse import OpenEvseSim

KINDS = ("openevse", "evse-din")
TICK_S = 0.01


def make_board(kind: str, now_s: float) -> BoardSim:
    if kind == "openevse":
        return OpenEvseSim(now_s)
    if kind == "evse-din":
        return EvseDinSim(now_s)
    raise ValueError(f"unknown board kind {kind!r} (known: {', '.join(KINDS)})")


class BoardProcess:
    """The board, its pty and its stdout; everything runs on one event loop."""

    def __init__(self, kind: str, link: Path, out: TextIO) -> None:
        self.kind = kind
        self.link = link
        self.board = make_board(kind, time.monotonic())
        self._out = out
        self._last: dict[str, Any] | None = None
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline before the driver configures the line
        os.set_blocking(self.master, False)

    def publish(self) -> None:
        outputs = {"kind": self.kind, **self.board.outputs()}
        if outputs != self._last:
            self._last = outputs
            self._out.write(json.dumps({"t": round(time.time(), 4), **outputs}) + "\n")
            self._out.flush()

    def send(self, data: bytes) -> None:
        if data:
            with contextlib.suppress(BlockingIOError):  # nobody reads the line: a real UART drops bytes too
                os.write(self.master, data)

    def on_readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        self.send(self.board.receive(data, time.monotonic()))
        self.publish()

    def on_stimulus(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        try:
            self.board.stimulus(words, time.monotonic())
        except ValueError as exc:
            print(f"board-sim: {exc}; stimuli:\n{STIMULI}", file=sys.stderr, flush=True)
        self.publish()

    def open_link(self) -> None:
        if self.link.is_symlink():
            self.link.unlink()  # left behind by a simulator that was killed
        self.link.symlink_to(os.ttyname(self._slave))

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.link.is_symlink():
                self.link.unlink()
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


async def _read_stdin(process: BoardProcess) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        process.on_stimulus(line.decode(errors="replace"))
    await asyncio.Event().wait()  # stdin closed: keep serving until SIGTERM


async def serve(kind: str, link: Path) -> int:
    process = BoardProcess(kind, link, sys.stdout)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        process.open_link()
        loop.add_reader(process.master, process.on_readable)
        process.publish()
        async with asyncio.TaskGroup() as tasks:
            stdin_task = tasks.create_task(_read_stdin(process))
            while not stop.is_set():
                process.send(process.board.tick(time.monotonic()))
                process.publish()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK_S):
                        await stop.wait()
            stdin_task.cancel()
    finally:
        loop.remove_reader(process.master)
        process.close()
    return 0


def main(kind: str, link: Path) -> int:
    if kind not in KINDS:
        print(f"board-sim: unknown kind {kind!r} (known: {', '.join(KINDS)})", file=sys.stderr)
        return 2
    return asyncio.run(serve(kind, link))
