"""A ZVT payment terminal on loopback: a real asyncio TCP server the real ``ZvtTerminal`` driver talks to, and on
request the same terminal on a serial line (``serve_serial``: ZVT's RS-232 framing on a pseudo-terminal).

It speaks the protocol (APDUs, ``80 00 00`` acknowledgements both ways, intermediate status, status information,
print lines, completion and abort with the spec's result codes) and keeps a terminal's books: pre-authorisations
by receipt number with their authorised, captured and released amounts, and a ledger of every step. It refuses
what a terminal refuses: a capture above its pre-authorisation (B7), a capture or cancel of a pre-authorisation
that is not open - a double capture among them (B8).

Stimulus (for tests and, later, ``chargepoint sim card``):

- ``present_card(token, outcome=...)`` queues the next card; a pre-authorisation waits for one (the terminal's
  own ``card_timeout_s``, then Abort 6C). Outcomes: ``approve``, ``decline`` (result code, 05 by default),
  ``partial`` (approves ``partial_amount`` only), ``timeout`` (the card is never read: no answer, not even to
  the ECR's Abort), ``restart`` (the terminal approves, then restarts before it can say so: the connection
  closes mid-transaction; Repeat Receipt and the open-pre-authorisation query tell the driver afterwards).
- ``go_offline()`` / ``go_online()``: connections refused / accepted again on the same port (a serial line
  unplugged / plugged in again); ``restart()`` drops every connection and keeps the books (a ``state_file`` keeps
  them across test processes too).
- ``serve_serial(path)``: the terminal on a pty (``path`` a symlink to it); ``serial_line`` plays a noisy line
  (``simulators/zvt_lines.py``: corrupt, reject, lose a frame, withhold an ACK) and counts frames;
  ``drop_serial_line()`` unplugs it, ``serve_serial()`` again plugs a new one in at the same path.
- ``ledger``, ``pre_authorisations``, ``open_pre_authorisations()``: what happened, for assertions.

Size: one terminal's whole protocol surface (registration, pre-authorisation, booking, reversal, end-of-day,
status enquiry, repeat receipt, the open-pre-authorisation query, abort) plus its books and its stimulus API;
each command is short, but a terminal without any of them would not be one the driver can be tested against.
How the terminal is reached (TCP, the serial line and its faults) lives in ``simulators/zvt_lines.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

from hal.drivers import zvt_frames as zf
from hal.drivers.zvt import ZvtSettings, ZvtTerminal
from hal.payment import (
    EndOfDayResult,
    Money,
    PaymentResult,
    TerminalReference,
    TerminalStatus,
    TerminalUnavailable,
    TimedOut,
    TransactionStatus,
)
from simulators.zvt_lines import (
    ConversationLink,
    LineLink,
    PtyPort,
    SimulatedLine,
    StreamLink,
    line_reader,
    stream_reader,
)

_log = logging.getLogger(__name__)

SOFTWARE_VERSION: Final = "chargepoint-zvt-sim 1.0"
TEST_PAN: Final = "4111111111111111"  # the well-known Visa test number: never a real card
_ACK_WAIT_S: Final = 5.0


class Outcome(enum.StrEnum):
    Approve = "approve"
    Decline = "decline"
    Partial = "partial"
    Timeout = "timeout"
    Restart = "restart"


@dataclass(frozen=True, slots=True)
class CardPresentation:
    """One card held to the terminal, and what the terminal (or the issuer behind it) will make of it."""

    token: str
    outcome: Outcome = Outcome.Approve
    partial_amount: Decimal | None = None  # Outcome.Partial: what is approved
    decline_code: int = 0x05
    pan: str = TEST_PAN
    masked_by_terminal: bool = True  # False: a non-compliant terminal that sends the whole PAN
    scheme: str = "Visa"


@dataclass(slots=True)
class PreAuthorisation:
    receipt_no: int
    trace_no: int
    token: str
    authorized_minor: int
    captured_minor: int | None = None
    released_minor: int | None = None
    state: str = "open"  # open | captured | cancelled


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    kind: str  # pre-authorisation | declined | capture | capture-refused | cancel | cancel-refused | end-of-day
    receipt_no: int | None
    amount_minor: int
    token: str | None = None
    detail: str = ""
    at: float = field(default_factory=time.time)


@dataclass(slots=True, eq=False)
class _Connection:
    link: ConversationLink
    inbox: asyncio.Queue[zf.Apdu | None] = field(default_factory=asyncio.Queue)
    busy: bool = False
    abort: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class _Closed(Exception):
    pass


class ZvtTerminalSimulator:
    """One terminal on ``host:port`` (port 0: the kernel picks one at ``start``)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, password: str = "000000", currency: str = "EUR",
        terminal_id: str = "52523535", card_timeout_s: float = 60.0, state_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.password = password
        self.currency = currency
        self.terminal_id = terminal_id
        self.card_timeout_s = card_timeout_s
        self.state_file = state_file
        self.pre_authorisations: dict[int, PreAuthorisation] = {}
        self.ledger: list[LedgerEntry] = []
        self.registered = False
        self._cards: asyncio.Queue[CardPresentation] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._port: PtyPort | None = None  # the serial line, once serve_serial() was asked for
        self._serial_unplugged = False  # by go_offline(): go_online() plugs it in again
        self._listened = False  # start() was called: go_online() listens again
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_receipt = 1
        self._next_trace = 1
        self._last_status: bytes | None = None  # the last transaction's 04 0F, for Repeat Receipt
        self._eod_from = 0  # ledger index of the first entry since the last end-of-day
        self.hold_bookings = asyncio.Event()  # clear it to hold bookings (crash tests); set: book at once
        self.hold_bookings.set()
        self.booking_received = asyncio.Event()  # set when a booking arrives
        self._load()

    # --- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            return
        self._listened = True
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        _log.debug("ZVT simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        await self.go_offline()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def online(self) -> bool:
        return self._server is not None or (self._port is not None and self._port.is_open)

    async def go_offline(self) -> None:
        """Stop listening (connections are refused), unplug the serial line, and drop every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._port is not None and self._port.is_open:
            self._serial_unplugged = True
            self.drop_serial_line()
        await self.restart()
        if server is not None:
            await server.wait_closed()

    async def go_online(self) -> None:
        if self._serial_unplugged:
            self._serial_unplugged = False
            await self.serve_serial()
        if self._listened or self._port is None:
            await self.start()

    async def restart(self) -> None:
        """The terminal reboots: every connection drops; the books stay."""
        for conn in list(self._connections):
            conn.link.close()
            conn.closed.set()
            conn.inbox.put_nowait(None)  # a serial conversation has no socket whose closing would end it
        for conn in list(self._connections):
            await conn.link.wait_closed()
        self.registered = False

    async def serve_serial(self, link_path: Path | None = None, *, baudrate: int = 9600,
                           ack_timeout_s: float = 2.0) -> str:
        """Serve ZVT's serial framing on a new pseudo-terminal; returns the device the ECR opens: ``link_path``, a
        symlink to the pty, if given, else the pty itself. Called again after ``drop_serial_line`` (without
        arguments), it plugs a new line in: at the same ``link_path``, or on a new pty without one."""
        if self._port is None or link_path is not None:
            if self._port is not None:
                self.drop_serial_line()
            self._port = PtyPort(link_path, baudrate=baudrate, ack_timeout_s=ack_timeout_s)
        if not self._port.is_open:
            line = self._port.open()
            self._spawn(self._serve_line(line))
            _log.debug("ZVT simulator serving RS-232 framing at %s", self._port.path)
        return self._port.path

    @property
    def serial_line(self) -> SimulatedLine | None:
        """Our end of the serial line (fault hooks, ``stats``), while one is plugged in."""
        return self._port.line if self._port is not None else None

    def drop_serial_line(self) -> None:
        """The line goes away mid-whatever: the ECR's reads end and the device disappears until ``serve_serial``."""
        if self._port is not None:
            self._port.close()

    # --- stimulus and inspection ---------------------------------------------------------------------------------

    def present_card(
        self, token: str, outcome: Outcome | str = Outcome.Approve, *, partial_amount: Decimal | None = None,
        decline_code: int = 0x05, pan: str = TEST_PAN, masked_by_terminal: bool = True, scheme: str = "Visa",
    ) -> CardPresentation:
        """Queue the next card presentation with its scripted outcome."""
        outcome = Outcome(outcome)
        if outcome is Outcome.Partial and partial_amount is None:
            raise ValueError("a partial approval needs partial_amount")
        card = CardPresentation(token, outcome, partial_amount, decline_code, pan, masked_by_terminal, scheme)
        self._cards.put_nowait(card)
        return card

    def connection_count(self) -> int:
        """ECR connections the terminal is serving (one it has not yet seen go is still counted)."""
        return len(self._connections)

    def open_pre_authorisations(self) -> list[PreAuthorisation]:
        return [p for p in self.pre_authorisations.values() if p.state == "open"]

    def entries(self, kind: str) -> list[LedgerEntry]:
        return [e for e in self.ledger if e.kind == kind]

    # --- persistence ---------------------------------------------------------------------------------------------

    def _load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        state = json.loads(self.state_file.read_text(encoding="utf-8"))
        self.pre_authorisations = {p["receipt_no"]: PreAuthorisation(**p) for p in state["pre_authorisations"]}
        self.ledger = [LedgerEntry(**e) for e in state["ledger"]]
        self._next_receipt, self._next_trace = state["next_receipt"], state["next_trace"]
        self._last_status = bytes.fromhex(state["last_status"]) if state["last_status"] else None
        self._eod_from = state["eod_from"]

    def _save(self) -> None:
        if self.state_file is None:
            return
        state = {
            "pre_authorisations": [asdict(p) for p in self.pre_authorisations.values()],
            "ledger": [asdict(e) for e in self.ledger], "next_receipt": self._next_receipt,
            "next_trace": self._next_trace, "last_status": self._last_status.hex() if self._last_status else None,
            "eod_from": self._eod_from,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(self.state_file)

    def _record(self, entry: LedgerEntry) -> None:
        self.ledger.append(entry)
        self._save()

    def _numbers(self) -> tuple[int, int]:
        receipt, trace = self._next_receipt, self._next_trace
        self._next_receipt = receipt % 9999 + 1
        self._next_trace = trace % 999999 + 1
        return receipt, trace

    # --- the link ------------------------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._converse(_Connection(StreamLink(writer)), stream_reader(reader))
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _serve_line(self, line: SimulatedLine) -> None:
        while not line.closed:
            await self._converse(_Connection(LineLink(line)), line_reader(line))

    async def _converse(self, conn: _Connection, receive: Callable[[], Awaitable[zf.Apdu | None]]) -> None:
        self._connections.add(conn)
        pump = asyncio.create_task(self._pump(receive, conn))
        try:
            while (apdu := await conn.inbox.get()) is not None:
                conn.busy = True
                conn.abort.clear()
                try:
                    await self._dispatch(conn, apdu)
                finally:
                    conn.busy = False
        except (_Closed, ConnectionError, OSError):
            pass
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._connections.discard(conn)
            conn.link.close()

    async def _pump(self, receive: Callable[[], Awaitable[zf.Apdu | None]], conn: _Connection) -> None:
        """Reads APDUs into the inbox; an Abort (06 B0) during a request sets ``conn.abort`` instead."""
        try:
            while (apdu := await receive()) is not None:
                if apdu.control == zf.ABORT_FROM_ECR and conn.busy:
                    conn.abort.set()
                else:
                    conn.inbox.put_nowait(apdu)
        finally:
            conn.closed.set()
            conn.inbox.put_nowait(None)

    async def _send(self, conn: _Connection, control: bytes, data: bytes = b"", *, await_ack: bool = True) -> None:
        if conn.closed.is_set():
            raise _Closed
        await conn.link.send(zf.Apdu(control, data).encode())
        if await_ack:
            try:
                async with asyncio.timeout(_ACK_WAIT_S):
                    answer = await conn.inbox.get()
            except TimeoutError:
                raise _Closed from None
            if answer is None:
                raise _Closed
            if answer.control != zf.ACK:
                _log.warning("ZVT simulator: expected 80 00 00, got %r", answer)

    async def _ack(self, conn: _Connection) -> None:
        await self._send(conn, zf.ACK, await_ack=False)

    async def _abort(self, conn: _Connection, code: int, extra: bytes = b"") -> None:
        await self._send(conn, zf.ABORT_FROM_PT, bytes([code]) + extra)

    async def _complete(self, conn: _Connection) -> None:
        numeric = Money.from_minor_units(0, self.currency).numeric_code
        await self._send(conn, zf.COMPLETION, b"\x29" + bytes.fromhex(self.terminal_id) + b"\x49"
                         + zf.bcd_encode(numeric, 2))

    # --- commands ------------------------------------------------------------------------------------------------

    async def _dispatch(self, conn: _Connection, apdu: zf.Apdu) -> None:
        handlers = {
            zf.REGISTRATION: self._registration, zf.PRE_AUTHORISATION: self._pre_authorisation,
            zf.BOOK_TOTAL: self._booking, zf.PARTIAL_REVERSAL: self._booking,
            zf.PRE_AUTH_REVERSAL: self._pre_auth_reversal, zf.END_OF_DAY: self._end_of_day,
            zf.STATUS_ENQUIRY: self._status_enquiry, zf.REPEAT_RECEIPT: self._repeat_receipt,
        }
        if apdu.control in (zf.LOG_OFF, zf.ABORT_FROM_ECR, zf.ACK):
            if apdu.control != zf.ACK:
                await self._ack(conn)
            return
        handler = handlers.get(apdu.control)
        if handler is None:
            await self._send(conn, bytes([zf.NACK_CLASS, 0x83]), await_ack=False)  # function not possible
            return
        try:
            await handler(conn, apdu.data)
        except zf.ZvtFrameError:
            await self._abort(conn, 0x9A)  # ZVT protocol error

    async def _registration(self, conn: _Connection, data: bytes) -> None:
        if data[:3].hex() != self.password:
            await self._send(conn, bytes([zf.NACK_CLASS, 0x6B]), await_ack=False)
            return
        await self._ack(conn)
        self.registered = True
        await self._complete(conn)

    async def _wait_for_card(self, conn: _Connection) -> CardPresentation | None:
        """The next card, or None if the ECR aborted or nobody presented one in ``card_timeout_s``."""
        card = asyncio.ensure_future(self._cards.get())
        abort = asyncio.ensure_future(conn.abort.wait())
        closed = asyncio.ensure_future(conn.closed.wait())
        try:
            await asyncio.wait({card, abort, closed}, timeout=self.card_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (abort, closed):
                task.cancel()
            if not card.done():
                card.cancel()
        if closed.done() and not abort.done():
            if card.done() and not card.cancelled():
                self._cards.put_nowait(card.result())  # the ECR went away with the card: it stays for the next
            raise _Closed
        if card.done() and not card.cancelled() and not abort.done():
            return card.result()
        if card.done() and not card.cancelled():
            self._cards.put_nowait(card.result())  # the ECR aborted first: the card stays for the next request
        return None

    async def _pre_authorisation(self, conn: _Connection, data: bytes) -> None:
        fields = zf.parse_command_bmps(data)
        requested = zf.bcd_decode(fields[0x04])
        await self._ack(conn)
        await self._send(conn, zf.INTERMEDIATE_STATUS, b"\x0a")  # "insert card"
        card = await self._wait_for_card(conn)
        if card is None:
            if conn.abort.is_set():
                await self._ack(conn)  # the ECR's Abort
            await self._abort(conn, 0x6C)
            return
        if card.outcome is Outcome.Timeout:
            await conn.closed.wait()  # the card is never read; not even the ECR's Abort is answered
            raise _Closed
        pan_bmp = zf.pan_to_bmp22(card.pan, masked=card.masked_by_terminal)
        if card.outcome is Outcome.Decline:
            self._record(LedgerEntry("declined", None, requested, card.token, zf.result_text(card.decline_code)))
            status = zf.encode_status_information(result_code=card.decline_code, terminal_id=self.terminal_id,
                                                  pan_bmp22=pan_bmp, card_name=card.scheme,
                                                  additional_text="Abgelehnt")
            self._last_status = status
            await self._send(conn, zf.STATUS_INFORMATION, status)
            await self._abort(conn, card.decline_code)
            return
        approved = requested
        if card.outcome is Outcome.Partial and card.partial_amount is not None:
            approved = min(requested, Money(card.partial_amount, self.currency).minor_units)
        receipt, trace = self._numbers()
        self.pre_authorisations[receipt] = PreAuthorisation(receipt, trace, card.token, approved)
        self._record(LedgerEntry("pre-authorisation", receipt, approved, card.token))
        status = self._approval(approved, receipt, trace, pan_bmp, card)
        self._last_status = status
        self._save()
        if card.outcome is Outcome.Restart:
            await self.restart()
            raise _Closed
        await self._send(conn, zf.STATUS_INFORMATION, status)
        await self._print(conn, ["Reservierung", f"Betrag EUR {Decimal(approved).scaleb(-2)}", f"Beleg {receipt}"])
        await self._complete(conn)

    def _approval(self, amount: int, receipt: int, trace: int, pan_bmp: bytes | None = None,
                  card: CardPresentation | None = None, original_trace: int | None = None) -> bytes:
        numeric = Money.from_minor_units(0, self.currency).numeric_code
        return zf.encode_status_information(
            result_code=0, amount_minor=amount, currency_code=numeric, trace_no=trace, receipt_no=receipt,
            terminal_id=self.terminal_id, aid=f"{trace:06d}", pan_bmp22=pan_bmp,
            card_name=card.scheme if card is not None else None, original_trace_no=original_trace,
            card_uid=_uid(card.token) if card is not None else None,
        )

    async def _print(self, conn: _Connection, lines: list[str]) -> None:
        for line in lines:
            await self._send(conn, zf.PRINT_LINE, b"\x00" + line.encode("cp437"))

    async def _booking(self, conn: _Connection, data: bytes) -> None:
        """Book Total (06 24) and Partial-Reversal (06 23): book the amount, release the rest; 06 23 with
        receipt FFFF names an open pre-authorisation instead (2.10.1)."""
        fields = zf.parse_command_bmps(data)
        await self._ack(conn)
        if fields.get(0x87) == b"\xff\xff":
            open_ = self.open_pre_authorisations()
            receipt_bytes = zf.bcd_encode(open_[0].receipt_no, 2) if open_ else b"\xff\xff"
            await self._abort(conn, 0xB8, b"\x87" + receipt_bytes)
            return
        receipt = zf.bcd_decode(fields[0x87])
        amount = zf.bcd_decode(fields[0x04]) if 0x04 in fields else None
        self.booking_received.set()
        # A stimulus for crash tests: the terminal takes its time (the ECR may die meanwhile); what it was asked,
        # it books all the same, as a real terminal does.
        await self.hold_bookings.wait()
        pre = self.pre_authorisations.get(receipt)
        if pre is None or pre.state != "open":
            why = "no such pre-authorisation" if pre is None else f"pre-authorisation already {pre.state}"
            self._record(LedgerEntry("capture-refused", receipt, amount or 0, None, why))
            await self._abort(conn, 0xB8)
            return
        amount = pre.authorized_minor if amount is None else amount
        if amount > pre.authorized_minor:
            self._record(LedgerEntry("capture-refused", receipt, amount, pre.token, "above the pre-authorisation"))
            await self._abort(conn, 0xB7)
            return
        pre.state, pre.captured_minor, pre.released_minor = "captured", amount, pre.authorized_minor - amount
        booking_receipt, trace = self._numbers()
        self._record(LedgerEntry("capture", receipt, amount, pre.token, f"booking receipt {booking_receipt}"))
        status = self._approval(amount, booking_receipt, trace)
        self._last_status = status
        self._save()
        await self._send(conn, zf.STATUS_INFORMATION, status)
        await self._print(conn, ["Buchung", f"Betrag EUR {Decimal(amount).scaleb(-2)}"])
        await self._complete(conn)

    async def _pre_auth_reversal(self, conn: _Connection, data: bytes) -> None:
        fields = zf.parse_command_bmps(data)
        await self._ack(conn)
        receipt = zf.bcd_decode(fields.get(0x87, b"\x00\x00"))
        pre = self.pre_authorisations.get(receipt)
        if pre is None or pre.state != "open":
            self._record(LedgerEntry("cancel-refused", receipt, 0, None, "not open"))
            await self._abort(conn, 0xB8)
            return
        pre.state, pre.released_minor = "cancelled", pre.authorized_minor
        reversal_receipt, trace = self._numbers()
        self._record(LedgerEntry("cancel", receipt, pre.authorized_minor, pre.token))
        status = self._approval(pre.authorized_minor, reversal_receipt, trace, original_trace=pre.trace_no)
        self._last_status = status
        self._save()
        await self._send(conn, zf.STATUS_INFORMATION, status)
        await self._complete(conn)

    async def _end_of_day(self, conn: _Connection, data: bytes) -> None:
        if data[:3].hex() != self.password:
            await self._send(conn, bytes([zf.NACK_CLASS, 0x6B]), await_ack=False)
            return
        await self._ack(conn)
        captures = [e for e in self.ledger[self._eod_from:] if e.kind == "capture"]
        total = sum(e.amount_minor for e in captures)
        self._record(LedgerEntry("end-of-day", None, total, None, f"{len(captures)} bookings"))
        self._eod_from = len(self.ledger)
        self._save()
        numeric = Money.from_minor_units(0, self.currency).numeric_code
        await self._send(conn, zf.STATUS_INFORMATION, zf.encode_status_information(
            result_code=0, amount_minor=total, currency_code=numeric, terminal_id=self.terminal_id))
        await self._print(conn, ["Kassenschnitt", f"Summe EUR {Decimal(total).scaleb(-2)}"])
        await self._complete(conn)

    async def _status_enquiry(self, conn: _Connection, data: bytes) -> None:
        await self._ack(conn)
        await self._send(conn, zf.COMPLETION, zf.encode_llvar(SOFTWARE_VERSION.encode(), 3) + b"\x00")

    async def _repeat_receipt(self, conn: _Connection, data: bytes) -> None:
        await self._ack(conn)
        if self._last_status is None:
            await self._abort(conn, 0x83)
            return
        await self._send(conn, zf.STATUS_INFORMATION, self._last_status)
        await self._print(conn, ["Belegwiederholung"])
        await self._complete(conn)


def _uid(token: str) -> bytes:
    """A card's token as the terminal sends it (TLV 4C): hex tokens as their bytes (a UID), others as text."""
    try:
        return bytes.fromhex(token)
    except ValueError:
        return token.encode()


class SimulatedPaymentTerminal:
    """The ``PaymentTerminal`` of the sim backend: the real ZVT driver talking to a ``ZvtTerminalSimulator`` on an
    ephemeral loopback port, or with ``transport="serial"`` on a pseudo-terminal with ZVT's RS-232 framing. The
    simulator starts with the first request (no loop is running when the hardware is built) and stops with
    ``aclose``; ``simulator`` is its stimulus port (``present_card``, the ledger)."""

    def __init__(self, *, password: str = "000000", currency: str = "EUR", timeout_s: float = 120.0,
                 capture_command: str = "book-total", transport: Literal["tcp", "serial"] = "tcp",
                 baudrate: int = 9600) -> None:
        self.simulator = ZvtTerminalSimulator(password=password, currency=currency)
        self.settings = (password, currency, timeout_s, capture_command)
        self.transport = transport
        self.baudrate = baudrate
        self._driver: ZvtTerminal | None = None

    async def driver(self) -> ZvtTerminal:
        if self._driver is None:
            password, currency, timeout_s, capture = self.settings
            serial_port = ""
            if self.transport == "serial":
                serial_port = await self.simulator.serve_serial(baudrate=self.baudrate)
            else:
                await self.simulator.start()
            self._driver = ZvtTerminal(ZvtSettings(
                self.simulator.host, self.simulator.port, password=password, currency=currency, timeout_s=timeout_s,
                capture_command="partial-reversal" if capture == "partial-reversal" else "book-total",
                transport=self.transport, serial_port=serial_port, baudrate=self.baudrate,
            ))
        return self._driver

    async def pre_authorize(self, amount: Money, *, timeout_s: float | None = None) -> PaymentResult:
        return await (await self.driver()).pre_authorize(amount, timeout_s=timeout_s)

    async def capture(
        self, reference: TerminalReference, amount: Money, *, timeout_s: float | None = None
    ) -> PaymentResult:
        return await (await self.driver()).capture(reference, amount, timeout_s=timeout_s)

    async def cancel(self, reference: TerminalReference, *, timeout_s: float | None = None) -> PaymentResult:
        return await (await self.driver()).cancel(reference, timeout_s=timeout_s)

    async def status(self, *, timeout_s: float | None = None) -> TerminalStatus | TimedOut | TerminalUnavailable:
        return await (await self.driver()).status(timeout_s=timeout_s)

    async def end_of_day(self, *, timeout_s: float | None = None) -> EndOfDayResult:
        return await (await self.driver()).end_of_day(timeout_s=timeout_s)

    async def transaction_status(
        self, reference: TerminalReference, *, timeout_s: float | None = None
    ) -> TransactionStatus:
        return await (await self.driver()).transaction_status(reference, timeout_s=timeout_s)

    async def last_transaction(self, *, timeout_s: float | None = None) -> TransactionStatus:
        return await (await self.driver()).last_transaction(timeout_s=timeout_s)

    async def aclose(self) -> None:
        if self._driver is not None:
            await self._driver.aclose()
        await self.simulator.stop()
