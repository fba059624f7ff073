"""The lines a simulated ZVT terminal is reached on: a TCP connection, or an RS-232 line on a pseudo-terminal.

Each conversation with the ECR has a link to send APDUs on and a reader that returns the next APDU (None: the
conversation is over); ``simulators/zvt_terminal.py`` runs the terminal's protocol on them.

The serial line is a pseudo-terminal whose master speaks ZVT's serial framing. The ECR (the real driver) opens
the pty's slave - or a symlink to it, as it would open ``/dev/serial/by-id/...`` - and sets its line up as on a
real UART; ``termios`` on the pair shows what it set. Our end uses the driver's own ``FramedLine`` (frames, CRC,
ACK/NAK, repeats) with faults a real cable has:

- ``corrupt_next_frame()``: our next frame goes out with a wrong CRC; the ECR must NAK it and we send it again.
- ``reject_next_frame()``: we NAK the ECR's next frame as if its CRC were wrong; the ECR must repeat it.
- ``lose_next_frame()``: the ECR's next frame never arrives (no answer); the ECR must repeat it after its timeout.
- ``withhold_next_ack()``: the ECR's next frame arrives but our ACK is lost; the ECR must not act twice.
- ``close()``: the line goes away (the pty closes, the device node vanishes), like an unplugged USB adapter.

``stats`` counts what happened on the line, for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from hal.drivers import zvt_frames as zf
from hal.drivers.zvt_serial import ACK_TIMEOUT_S, FramedLine
from hal.drivers.zvt_serial_frames import ACK, NAK, encode_frame

_log = logging.getLogger(__name__)

ApduReader = Callable[[], Awaitable[zf.Apdu | None]]


class ConversationLink(Protocol):
    async def send(self, apdu: bytes) -> None: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class StreamLink:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    async def send(self, apdu: bytes) -> None:
        self.writer.write(apdu)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()


class LineLink:
    """One conversation on a serial line: it ends (a restart, an ECR that stopped answering), the line stays."""

    def __init__(self, line: SimulatedLine) -> None:
        self.line = line

    async def send(self, apdu: bytes) -> None:
        await self.line.send(apdu)

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


def stream_reader(reader: asyncio.StreamReader) -> ApduReader:
    async def receive() -> zf.Apdu | None:
        try:
            header = await reader.readexactly(3)
            more, n = zf.header_length(header)
            if more:
                n = int.from_bytes(await reader.readexactly(2), "little")
            return zf.Apdu(header[:2], await reader.readexactly(n))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return None

    return receive


def line_reader(line: FramedLine) -> ApduReader:
    async def receive() -> zf.Apdu | None:
        while True:
            try:
                raw = await line.receive()
            except OSError:  # the line is gone
                return None
            try:
                return zf.decode_apdu(raw)
            except zf.ZvtFrameError as exc:
                _log.warning("ZVT simulator: a broken APDU in an intact frame: %s", exc)

    return receive




class SimulatedLine(FramedLine):
    """``FramedLine`` that plays the faults of a noisy or broken line on request."""

    def __init__(self, fd: int, name: str, *, baudrate: int = 9600, ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        super().__init__(fd, name, baudrate=baudrate, ack_timeout_s=ack_timeout_s)
        self._corrupt = 0
        self._reject = 0
        self._drop = 0
        self._withhold = 0

    def corrupt_next_frame(self, count: int = 1) -> None:
        self._corrupt += count

    def reject_next_frame(self, count: int = 1) -> None:
        self._reject += count

    def lose_next_frame(self, count: int = 1) -> None:
        self._drop += count

    def withhold_next_ack(self, count: int = 1) -> None:
        self._withhold += count

    def _frame_bytes(self, apdu: bytes) -> bytes:
        frame = encode_frame(apdu)
        if self._corrupt:
            self._corrupt -= 1
            return frame[:-1] + bytes([frame[-1] ^ 0x5A])  # the CRC's high byte garbled
        return frame

    def _answer(self, apdu: bytes) -> tuple[int | None, bool]:
        if self._drop:
            self._drop -= 1
            return None, False
        if self._reject:
            self._reject -= 1
            return NAK, False
        if self._withhold:
            self._withhold -= 1
            return None, True
        return ACK, True


class PtyPort:
    """A pseudo-terminal pair standing in for the cable; ``path`` is what the ECR opens.

    We keep the slave open too (never reading it), so that the ECR closing and reopening the port is not a hangup
    of our master, as on a real line where the terminal cannot tell whether the ECR has the port open."""

    def __init__(self, link_path: Path | None = None, *, baudrate: int = 9600,
                 ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        self.link_path = link_path
        self.baudrate = baudrate
        self.ack_timeout_s = ack_timeout_s
        self.path = ""
        self.line: SimulatedLine | None = None
        self._fds: tuple[int, int] | None = None

    def open(self) -> SimulatedLine:
        """Create the pty (a new one each time) and start our end; must run in the event loop."""
        master, slave = os.openpty()
        tty.setraw(slave)  # until the ECR sets the line up itself, no echo or line editing on what we send
        name = os.ttyname(slave)
        if self.link_path is not None:
            tmp = self.link_path.with_name(self.link_path.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(name)
            tmp.replace(self.link_path)
        self.path = str(self.link_path) if self.link_path is not None else name
        self._fds = (master, slave)
        self.line = SimulatedLine(master, f"simulated terminal at {self.path}", baudrate=self.baudrate,
                                  ack_timeout_s=self.ack_timeout_s)
        self.line.start()
        return self.line

    @property
    def is_open(self) -> bool:
        return self._fds is not None

    def close(self) -> None:
        """The line goes away: the ECR's reads end and its device node disappears."""
        line, fds, self.line, self._fds = self.line, self._fds, None, None
        if line is not None:
            line.close("the line was unplugged")
        if fds is not None:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
