"""How ``ZvtTerminal`` reaches its terminal: a link carries whole APDUs both ways, over TCP or a serial line.

The protocol in ``zvt.py`` is the same on both. Over TCP an APDU goes on the wire as it is; over RS-232 it goes in a
frame with a CRC that the other side acknowledges byte by byte (``zvt_serial``). What a link cannot do it reports as
``LinkDown``, a ``PaymentError`` and so an ``OSError``, which the driver turns into ``TerminalUnavailable``.

Split from ``zvt.py`` to keep that module about the protocol and under 500 lines.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from hal.drivers import zvt_frames as zf
from hal.payment import PaymentError


class LinkDown(PaymentError):
    """The link could not be opened, broke, or the terminal stopped acknowledging.

    ``maybe_delivered``: the last APDU went out and was not refused, so the terminal may be acting on it."""

    def __init__(self, detail: str, *, maybe_delivered: bool = False) -> None:
        super().__init__(detail)
        self.maybe_delivered = maybe_delivered


class ZvtLink(Protocol):
    """One connection to one terminal, used by one request at a time."""

    name: str  # where the terminal is, for messages: "host:port" or the serial device

    @property
    def is_open(self) -> bool:
        """Open and not known to be broken (a reset or end-of-file seen while idle makes it False)."""
        ...

    async def open(self, timeout_s: float) -> None: ...

    async def send(self, apdu: bytes) -> None:
        """Send one encoded APDU; ``OSError`` (``LinkDown``) if it could not."""
        ...

    async def receive(self) -> zf.Apdu:
        """The next APDU from the terminal; ``OSError`` (``LinkDown``) once the link is gone."""
        ...

    async def close(self) -> None: ...


class TcpLink:
    """``ZvtLink`` over TCP: APDUs back to back on the stream, each delimited by its own length field."""

    def __init__(self, host: str, port: int) -> None:
        self.name = f"{host}:{port}"
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def is_open(self) -> bool:
        reader, writer = self._reader, self._writer
        return (writer is not None and not writer.is_closing() and reader is not None and not reader.at_eof()
                and reader.exception() is None)

    async def open(self, timeout_s: float) -> None:
        await self.close()
        async with asyncio.timeout(timeout_s):
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)

    async def send(self, apdu: bytes) -> None:
        if self._writer is None:
            raise LinkDown(f"{self.name} is not connected")
        self._writer.write(apdu)
        await self._writer.drain()

    async def receive(self) -> zf.Apdu:
        if self._reader is None:
            raise LinkDown(f"{self.name} is not connected")
        try:
            header = await self._reader.readexactly(3)
            more, n = zf.header_length(header)
            if more:
                n = int.from_bytes(await self._reader.readexactly(2), "little")
            data = await self._reader.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            raise LinkDown("the terminal closed the connection") from exc
        return zf.Apdu(header[:2], data)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
