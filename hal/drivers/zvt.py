"""A ZVT payment terminal over TCP (ECR interface, port 20007) or a serial line (RS-232): the ``PaymentTerminal``
port.

One connection, one request at a time. The link (``zvt_link``: TCP; ``zvt_serial``: DLE/STX frames with a CRC,
acknowledged byte by byte) only carries APDUs; everything below is the same on both. A request is: send the
command, the terminal acknowledges (``80 00 00``) within ``ack_timeout_s``, then sends any number of intermediate
status (04 FF), status information (04 0F) and print lines (06 D1) / text blocks (06 D3) - each of which we
acknowledge with ``80 00 00`` - and ends with Completion (06 0F) or Abort (06 1E, with its result code). Card
presentation happens between the two, so a pre-authorisation may take the whole ``timeout_s``. When the deadline
passes we send Abort (06 B0) and listen for ``ack_timeout_s`` more: an Abort answer means nothing happened
(``TimedOut`` with 0x6C); silence means the outcome is in doubt (``TimedOut`` without a code) and the link is
dropped.

The connection is opened on first use and registered (06 00: password, config byte, currency); a broken link is
reopened on the next request. Commands: Pre-Authorisation 06 22, Book Total 06 24 (or Partial-Reversal 06 23,
``capture_command = "partial-reversal"``, as Feig cVEND terminals book a reservation), Pre-Authorisation
Reversal 06 25, Reversal 06 30, End-of-Day 06 50, Status Enquiry 05 01, Repeat Receipt 06 20, Log-Off 06 02,
Abort 06 B0.

Reconciliation - what a real terminal offers, and what we use:

- **Open pre-authorisations**: Partial-Reversal (06 23) with receipt number FFFF does not book anything; the
  terminal answers Abort 06 1E with result code B8 and, in BMP 87, the receipt number of an open
  pre-authorisation (FFFF: none). Feig cVEND terminals do this (Qwello/zvt's captures); others may answer 83
  (function not possible), which we report as ``Unknown``. Terminals report one receipt at a time: with several
  open, ``transaction_status`` finds only the one the terminal names.
- **The last transaction**: Repeat Receipt (06 20) makes the terminal send the last transaction's status
  information (04 0F: result, amount, receipt and trace number) and receipt again. Every ZVT terminal has it.
- **Status Enquiry** (05 01) says only whether the terminal is ready (terminal-status byte), not what it did.

``transaction_status(reference)`` asks for the open pre-authorisation and then for the last transaction;
``last_transaction()`` only the latter. Neither changes anything on the terminal.

Card data: only ``MaskedCard`` leaves ``zvt_frames``; APDUs are logged by command and size, never by content.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Final, Literal

from hal.drivers import zvt_frames as zf
from hal.drivers.zvt_link import TcpLink, ZvtLink
from hal.payment import (
    Approved,
    Declined,
    EndOfDay,
    EndOfDayResult,
    MaskedCard,
    Money,
    PaymentProtocolError,
    PaymentResult,
    TerminalReference,
    TerminalStatus,
    TerminalUnavailable,
    TimedOut,
    TransactionState,
    TransactionStatus,
)

_log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 20007
READY: Final = 0x00  # terminal-status byte of a ready terminal


@dataclass(frozen=True, slots=True)
class ZvtSettings:
    host: str  # transport "tcp"
    port: int = DEFAULT_PORT
    password: str = "000000"  # the terminal's ECR password, six digits (sent BCD)
    currency: str = "EUR"
    timeout_s: float = 120.0  # one request, card presentation included
    connect_timeout_s: float = 5.0
    ack_timeout_s: float = 5.0  # the terminal's 80 00 00 after a command; also the grace after our Abort
    capture_command: Literal["book-total", "partial-reversal"] = "book-total"
    transport: Literal["tcp", "serial"] = "tcp"
    serial_port: str = ""  # transport "serial": the device, e.g. /dev/ttyUSB1 or /dev/serial/by-id/...
    baudrate: int = 9600
    frame_ack_timeout_s: float = 2.0  # serial: the terminal's ACK byte after a frame, before we repeat it

    def __post_init__(self) -> None:
        zf.encode_password(self.password)  # six digits, or ValueError
        Money.from_minor_units(0, self.currency)  # a currency we know, or ValueError
        if self.transport == "serial" and not self.serial_port:
            raise ValueError('transport "serial" needs serial_port, the terminal\'s serial device')
        if self.transport not in ("tcp", "serial"):
            raise ValueError(f'transport is "tcp" or "serial", not {self.transport!r}')

    def __repr__(self) -> str:
        where = (f"serial_port={self.serial_port!r}, baudrate={self.baudrate}" if self.transport == "serial"
                 else f"host={self.host!r}, port={self.port}")
        return (f"ZvtSettings(transport={self.transport!r}, {where}, password='******', currency={self.currency!r}, "
                f"timeout_s={self.timeout_s}, capture_command={self.capture_command!r})")


@dataclass(slots=True)
class _Exchange:
    """Everything the terminal sent for one request."""

    status: list[zf.StatusInformation] = field(default_factory=list)
    receipt: list[str] = field(default_factory=list)
    completion: bytes | None = None
    abort: tuple[int, int | None, str | None] | None = None
    nack: int | None = None


class _NoOutcome(Exception):
    """Neither an outcome before the deadline nor an answer to our Abort."""


class _LinkLost(Exception):
    def __init__(self, detail: str, sent: bool) -> None:
        super().__init__(detail)
        self.sent = sent


class ZvtTerminal:
    """``PaymentTerminal`` over ZVT/TCP or ZVT/RS-232 (see the module docstring)."""

    def __init__(self, settings: ZvtSettings) -> None:
        self.settings = settings
        self._lock = asyncio.Lock()
        self._link: ZvtLink | None = None

    @property
    def link_name(self) -> str:
        """Where the terminal is: "host:port" or the serial device."""
        s = self.settings
        return s.serial_port if s.transport == "serial" else f"{s.host}:{s.port}"

    def _new_link(self) -> ZvtLink:
        s = self.settings
        if s.transport == "serial":
            from hal.drivers.zvt_serial import SerialLink

            return SerialLink(s.serial_port, s.baudrate, ack_timeout_s=s.frame_ack_timeout_s)
        return TcpLink(s.host, s.port)

    # --- the port ------------------------------------------------------------------------------------------------

    async def pre_authorize(self, amount: Money, *, timeout_s: float | None = None) -> PaymentResult:
        self._check(amount)
        apdu = zf.pre_authorisation(amount.minor_units, amount.numeric_code)
        result = await self._request(apdu, timeout_s)
        if not isinstance(result, _Exchange):
            return result
        return self._payment_result(result, requested=amount, what="pre-authorisation")

    async def capture(
        self, reference: TerminalReference, amount: Money, *, timeout_s: float | None = None
    ) -> PaymentResult:
        if amount.currency != self.settings.currency:
            raise ValueError(f"the terminal works in {self.settings.currency}, not {amount.currency}")
        if amount.amount < 0:
            raise ValueError(f"cannot capture a negative amount ({amount})")
        if amount.amount == 0:
            return await self.cancel(reference, timeout_s=timeout_s)
        if self.settings.capture_command == "partial-reversal":
            apdu = zf.partial_reversal(reference.receipt_no, amount.minor_units, amount.numeric_code)
        else:
            apdu = zf.book_total(reference.receipt_no, amount.minor_units, amount.numeric_code,
                                 reference.trace_no, reference.aid)
        result = await self._request(apdu, timeout_s)
        if not isinstance(result, _Exchange):
            return result
        return self._payment_result(result, requested=amount, what="capture")

    async def cancel(self, reference: TerminalReference, *, timeout_s: float | None = None) -> PaymentResult:
        money = Money.from_minor_units(0, self.settings.currency)
        apdu = zf.pre_auth_reversal(reference.receipt_no, money.numeric_code)
        result = await self._request(apdu, timeout_s)
        if not isinstance(result, _Exchange):
            return result
        return self._payment_result(result, requested=money, what="cancel", default_reference=reference)

    async def reverse(self, reference: TerminalReference, *, timeout_s: float | None = None) -> PaymentResult:
        """Reversal (06 30) of a booked payment, before the end-of-day (not part of the port)."""
        result = await self._request(zf.reversal(self.settings.password, reference.receipt_no), timeout_s)
        if not isinstance(result, _Exchange):
            return result
        money = Money.from_minor_units(0, self.settings.currency)
        return self._payment_result(result, requested=money, what="reversal", default_reference=reference)

    async def status(self, *, timeout_s: float | None = None) -> TerminalStatus | TimedOut | TerminalUnavailable:
        result = await self._request(zf.status_enquiry(), timeout_s)
        if not isinstance(result, _Exchange):
            return result
        if result.completion is None:
            code = result.nack if result.nack is not None else (result.abort or (0xFF, None, None))[0]
            return TerminalStatus(ready=False, status_code=code, detail=zf.result_text(code))
        done = zf.parse_status_enquiry_completion(result.completion)
        return TerminalStatus(ready=done.terminal_status == READY, status_code=done.terminal_status,
                              terminal_id=done.terminal_id, software_version=done.software_version,
                              detail="ready" if done.terminal_status == READY else "not ready")

    async def end_of_day(self, *, timeout_s: float | None = None) -> EndOfDayResult:
        result = await self._request(zf.end_of_day(self.settings.password), timeout_s)
        if not isinstance(result, _Exchange):
            return result
        failed = self._failure(result)
        if failed is not None:
            return failed
        total = sum((s.amount_minor or 0) for s in result.status)
        tid = next((s.terminal_id for s in result.status if s.terminal_id), None)
        return EndOfDay(total=Money.from_minor_units(total, self.settings.currency), terminal_id=tid,
                        receipt=tuple(result.receipt))

    async def transaction_status(
        self, reference: TerminalReference, *, timeout_s: float | None = None
    ) -> TransactionStatus:
        open_receipt = await self._open_pre_authorisation(timeout_s)
        if isinstance(open_receipt, TransactionStatus):
            return open_receipt
        if open_receipt == reference.receipt_no:
            return TransactionStatus(TransactionState.PreAuthorized, reference, detail="open on the terminal")
        last = await self.last_transaction(timeout_s=timeout_s)
        if last.reference is not None and last.reference.receipt_no == reference.receipt_no:
            return last
        return TransactionStatus(TransactionState.NotFound, reference,
                                 detail="not open and not the last transaction: captured or cancelled before it")

    async def last_transaction(self, *, timeout_s: float | None = None) -> TransactionStatus:
        result = await self._request(zf.repeat_receipt(self.settings.password), timeout_s)
        if not isinstance(result, _Exchange):
            return TransactionStatus(TransactionState.Unknown, detail=result.detail)
        approved = [s for s in result.status if s.result_code == 0 and s.receipt_no is not None]
        if not approved:
            if result.status and result.status[-1].result_code not in (None, 0):
                code = result.status[-1].result_code or 0
                return TransactionStatus(TransactionState.Declined, detail=zf.result_text(code))
            failed = self._failure(result)
            return TransactionStatus(TransactionState.NotFound, detail=failed.reason if isinstance(
                failed, Declined) else "the terminal has no last transaction")
        info = approved[-1]
        reference = self._reference(info)
        amount = self._money(info)
        open_receipt = await self._open_pre_authorisation(timeout_s)
        if open_receipt == reference.receipt_no:
            state = TransactionState.PreAuthorized
        elif info.original_trace_no is not None:
            state = TransactionState.Cancelled  # a reversal names the trace number it reversed (BMP 37)
        else:
            state = TransactionState.Captured
        return TransactionStatus(state, reference, amount, info.card, detail="last transaction (Repeat Receipt)")

    async def log_off(self, *, timeout_s: float | None = None) -> None:
        await self._request(zf.log_off(), timeout_s, ack_only=True)

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()

    # --- results -------------------------------------------------------------------------------------------------

    def _check(self, amount: Money) -> None:
        if amount.currency != self.settings.currency:
            raise ValueError(f"the terminal works in {self.settings.currency}, not {amount.currency}")
        if amount.amount <= 0:
            raise ValueError(f"a pre-authorisation needs a positive amount, not {amount}")

    def _money(self, info: zf.StatusInformation) -> Money | None:
        if info.amount_minor is None:
            return None
        currency = Money.currency_of(info.currency_code) if info.currency_code else None
        return Money.from_minor_units(info.amount_minor, currency or self.settings.currency)

    @staticmethod
    def _reference(info: zf.StatusInformation) -> TerminalReference:
        assert info.receipt_no is not None
        return TerminalReference(info.receipt_no, info.trace_no, info.terminal_id, info.aid)

    def _failure(self, ex: _Exchange) -> Declined | TimedOut | TerminalUnavailable | None:
        """The request's failure, if it failed: a negative acknowledgement, an Abort or a non-zero result code."""
        code: int | None = None
        text: str | None = None
        if ex.nack is not None:
            code = ex.nack
        elif ex.abort is not None:
            code, _, text = ex.abort
        elif ex.status and ex.status[-1].result_code not in (None, 0):
            code = ex.status[-1].result_code
        if code is None:
            return None
        last = ex.status[-1] if ex.status else None
        text = text or (last.additional_text if last is not None else None)
        reason = zf.result_text(code) + (f": {text}" if text else "")
        kind = zf.result_kind(code)
        if kind == "timeout":
            return TimedOut(reason, result_code=code)
        if kind == "unavailable":
            return TerminalUnavailable(reason, result_code=code)
        card = last.card if last is not None and (last.card.last4 or last.card.scheme) else None
        return Declined(reason, result_code=code, card=card, receipt=tuple(ex.receipt))

    def _payment_result(self, ex: _Exchange, *, requested: Money, what: str,
                        default_reference: TerminalReference | None = None) -> PaymentResult:
        failed = self._failure(ex)
        if failed is not None:
            _log.info("ZVT %s not approved: %s", what, failed)
            return failed
        infos = [s for s in ex.status if s.result_code == 0]
        info = infos[-1] if infos else None
        if info is None or info.receipt_no is None:
            if default_reference is None or ex.completion is None:
                raise PaymentProtocolError(f"the terminal completed the {what} without status information")
            reference = default_reference
            approved = requested
            card = MaskedCard()
        else:
            reference = self._reference(info)
            approved = self._money(info) or requested
            card = info.card
        if approved.currency != requested.currency:
            raise PaymentProtocolError(f"the terminal approved {approved} for a {what} of {requested}")
        if what == "pre-authorisation" and approved.amount > requested.amount:
            raise PaymentProtocolError(f"the terminal approved {approved}, more than the {requested} asked")
        _log.info("ZVT %s approved: %s, receipt %s, trace %s, %s", what, approved, reference.receipt_no,
                  reference.trace_no, card)
        return Approved(reference=reference, amount=approved, requested=requested, card=card,
                        receipt=tuple(ex.receipt))

    async def _open_pre_authorisation(self, timeout_s: float | None) -> int | TransactionStatus | None:
        """The receipt number of the open pre-authorisation the terminal names (None: none), or Unknown."""
        currency = Money.from_minor_units(0, self.settings.currency).numeric_code
        result = await self._request(zf.partial_reversal(zf.OPEN_PRE_AUTHS_QUERY, 0, currency), timeout_s)
        if not isinstance(result, _Exchange):
            return TransactionStatus(TransactionState.Unknown, detail=result.detail)
        if result.abort is not None and result.abort[0] == 0xB8:
            receipt = result.abort[1]
            return None if receipt in (None, zf.OPEN_PRE_AUTHS_QUERY) else receipt
        code = result.nack if result.nack is not None else (result.abort[0] if result.abort else None)
        detail = zf.result_text(code) if code is not None else "unexpected answer"
        return TransactionStatus(TransactionState.Unknown, detail=f"open pre-authorisations not available: {detail}")

    # --- the link ------------------------------------------------------------------------------------------------

    async def _request(
        self, apdu: zf.Apdu, timeout_s: float | None, ack_only: bool = False
    ) -> _Exchange | TimedOut | TerminalUnavailable:
        async with self._lock:
            try:
                await self._ensure_connected()
            except PaymentProtocolError as exc:  # before OSError: it is one (HalError)
                await self._drop()
                return TerminalUnavailable(f"the terminal refused the registration: {exc}")
            except (OSError, TimeoutError, _LinkLost) as exc:
                await self._drop()
                return TerminalUnavailable(f"cannot reach the terminal at {self.link_name}: "
                                           f"{exc or type(exc).__name__}")
            try:
                return await self._exchange(apdu, self.settings.timeout_s if timeout_s is None else timeout_s, ack_only)
            except asyncio.CancelledError:
                # The caller gave up (the driver used the RFID reader instead): the terminal must stop waiting for
                # a card, or the next card would go to this request. Abort, briefly, then a fresh connection.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._abort_and_drop())
                raise
            except _NoOutcome as exc:
                await self._drop()
                return TimedOut(str(exc))
            except _LinkLost as exc:
                await self._drop()
                return TerminalUnavailable(f"link to the terminal lost: {exc}", in_doubt=exc.sent)
            except PaymentProtocolError:
                await self._drop()
                raise

    async def _ensure_connected(self) -> None:
        await asyncio.sleep(0)  # let the loop take in an end-of-file or reset that already arrived
        if self._link is not None and self._link.is_open:
            return  # still open: a terminal that closed or restarted while idle gets a fresh connection below
        await self._drop()
        s = self.settings
        self._link = self._new_link()
        await self._link.open(s.connect_timeout_s)
        _log.debug("ZVT: connected to %s, registering", self._link.name)
        currency = Money.from_minor_units(0, s.currency).numeric_code
        ex = await self._exchange(zf.registration(s.password, currency), s.timeout_s)
        code = ex.nack if ex.nack is not None else (ex.abort[0] if ex.abort else None)
        if code is not None:
            raise PaymentProtocolError(zf.result_text(code))

    async def _abort_and_drop(self) -> None:
        with contextlib.suppress(OSError, ConnectionError, TimeoutError, _LinkLost, PaymentProtocolError):
            await self._send(zf.abort(), sent=True)
            async with asyncio.timeout(self.settings.ack_timeout_s):
                while not await self._handle(await self._receive(sent=True), _Exchange(), after_abort=True):
                    pass
        await self._drop()

    async def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            with contextlib.suppress(OSError):
                await link.close()

    async def _send(self, apdu: zf.Apdu, sent: bool) -> None:
        assert self._link is not None
        try:
            await self._link.send(apdu.encode())
        except zf.ZvtFrameError:
            raise
        except OSError as exc:  # ConnectionError and LinkDown among them; a frame nobody ACKed may have arrived
            raise _LinkLost(str(exc) or type(exc).__name__, sent or getattr(exc, "maybe_delivered", False)) from exc

    async def _receive(self, sent: bool) -> zf.Apdu:
        assert self._link is not None
        try:
            return await self._link.receive()
        except zf.ZvtFrameError:  # a broken APDU is the terminal's protocol error, not a lost link
            raise
        except OSError as exc:
            raise _LinkLost(str(exc) or type(exc).__name__, sent) from exc

    async def _exchange(self, apdu: zf.Apdu, timeout_s: float, ack_only: bool = False) -> _Exchange:
        """Send ``apdu`` and collect the answers; on the deadline, Abort and listen ``ack_timeout_s`` more."""
        ex = _Exchange()
        _log.debug("ZVT -> %r", apdu)
        await self._send(apdu, sent=False)
        try:
            async with asyncio.timeout(self.settings.ack_timeout_s):
                first = await self._receive(sent=True)
            if await self._handle_first(first, ex, ack_only):
                return ex
            async with asyncio.timeout(max(0.0, timeout_s - self.settings.ack_timeout_s) or None):
                while not await self._handle(await self._receive(sent=True), ex):
                    pass
            return ex
        except TimeoutError:
            pass
        _log.warning("ZVT: no outcome for %r within %.1f s: aborting", apdu, timeout_s)
        await self._send(zf.abort(), sent=True)
        try:
            async with asyncio.timeout(self.settings.ack_timeout_s):
                while not await self._handle(await self._receive(sent=True), ex, after_abort=True):
                    pass
        except TimeoutError:
            raise _NoOutcome(f"no outcome within {timeout_s} s, and no answer to the Abort: reconcile") from None
        return ex

    async def _handle_first(self, first: zf.Apdu, ex: _Exchange, ack_only: bool) -> bool:
        if first.is_ack:
            return ack_only
        if first.is_nack:
            ex.nack = first.control[1]
            return True
        return await self._handle(first, ex)

    async def _handle(self, apdu: zf.Apdu, ex: _Exchange, after_abort: bool = False) -> bool:
        """Acknowledge and record one answer; True when it ends the request."""
        control = apdu.control
        if control == zf.ACK:
            return False  # the acknowledgement of our Abort
        if control not in (zf.INTERMEDIATE_STATUS, zf.STATUS_INFORMATION, zf.PRINT_LINE, zf.PRINT_TEXT_BLOCK,
                           zf.COMPLETION, zf.ABORT_FROM_PT):
            raise PaymentProtocolError(f"unexpected APDU {control.hex(' ')} from the terminal")
        await self._send(_ACK, sent=True)
        if control == zf.INTERMEDIATE_STATUS:
            _log.debug("ZVT intermediate status %s", zf.parse_intermediate_status(apdu.data))
        elif control == zf.STATUS_INFORMATION:
            ex.status.append(zf.parse_status_information(apdu.data))
        elif control == zf.PRINT_LINE:
            ex.receipt.append(zf.parse_print_line(apdu.data))
        elif control == zf.PRINT_TEXT_BLOCK:
            ex.receipt.extend(zf.parse_print_text_block(apdu.data))
        elif control == zf.COMPLETION:
            ex.completion = apdu.data
            return True
        else:
            ex.abort = zf.parse_abort(apdu.data)
            return True
        return False



_ACK: Final = zf.Apdu(zf.ACK)  # 80 00 00
