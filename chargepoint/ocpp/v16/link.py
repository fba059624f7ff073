"""The OCPP 1.6J session on one WebSocket: framing, CALL/CALLRESULT pairing and bad-input policy.

Built on ``ocpp.v16.ChargePoint`` (routing, schema validation, CALLERROR generation) with these changes:
- ``call_raw`` sends an already camelCase payload (the outbox stores wire payloads) and returns the raw reply;
- a frame that is not valid OCPP but still shows a CALL's unique id gets a CALLERROR instead of silence, and
  a CALL without a usable id (not a non-empty string) gets nothing: no answer could be matched to it;
- whatever the frame, ``route_message`` does not raise: an unexpected error while handling a CALL becomes an
  InternalError CALLERROR with a logged traceback (the ``ocpp`` library's own policy for handler errors);
- a reply whose id matches no CALL in flight is dropped at once, so it can never be taken for a later reply;
- a lost connection fails the CALL in flight at once (``LinkLost``) instead of leaving it to its timeout;
- the CSMS's CALLs are handled by a task of their own, at most ``CALL_QUEUE_MAX`` waiting and ``CALL_RATE_PER_S``
  admitted per second (burst ``CALL_BURST``): the excess is answered with a CALLERROR at once, and replies to the
  charger's own CALLs are never stuck behind them (a flood must not make a driver's Authorize time out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from typing import Any, Protocol

import ocpp.messages as ocpp_messages
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, MessageType, unpack, validate_payload
from ocpp.v16 import ChargePoint as _LibChargePoint
from websockets.exceptions import ConnectionClosed

from chargepoint.logbook import RECENT_FRAMES
from chargepoint.logfields import log_fields
from chargepoint.message_log import FRAME_MAX_CHARS, IN, OCPP_MESSAGE_LOG, OUT
from chargepoint.redaction import RedactSecrets, redact

log = logging.getLogger(__name__)

# Validate frames on the event loop: ~0.15-0.35 ms each (REFERENCE B.3) costs less than two thread hops per
# message, and keeps one CALL in flight simple. The safety path does not wait on this task.
ocpp_messages.ASYNC_VALIDATION = False

# Loggers that see frames or handshake headers of the charger's connection.
_FRAME_LOGGERS = ("ocpp", "websockets.client", __name__, f"{__name__}.frames")


def install_log_redaction() -> None:
    for name in _FRAME_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


install_log_redaction()

# OCPP-J 1.6 §4.2.3: unparseable content of a message with an identifiable id.
_FORMAT_ERROR = "FormationViolation"
# The library also raises errors named as in OCPP 2.0; a 1.6 connection answers only with 1.6's codes (4.2.3).
_V16_CODES = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",  # sic: 1.6's spelling
    "MessageTypeNotSupported": "NotSupported",
    "RpcFrameworkError": "ProtocolError",
}


def _call_error(unique_id: str, error: Exception) -> CallError:
    """The CALLERROR for ``error``, in OCPP 1.6's vocabulary (InternalError for anything unexpected)."""
    if isinstance(error, OCPPError):
        return CallError(unique_id, _V16_CODES.get(error.code, error.code), str(error.description),
                         error.details or {})
    return CallError(unique_id, "InternalError", "An unexpected error occurred.", {})


class CallFailed(Exception):
    """The CSMS answered a CALL with CALLERROR (or with a CALLRESULT that does not validate)."""

    def __init__(self, code: str, description: str, details: Any, unique_id: str | None = None) -> None:
        self.code = code
        self.description = description
        self.details = details
        self.unique_id = unique_id  # of the CALL, for the log's ocpp_message_id
        super().__init__(f"{code}: {description}")


class CallTimedOut(TimeoutError):
    """The CSMS did not answer a CALL in time."""

    def __init__(self, action: str, unique_id: str, timeout_s: float) -> None:
        self.action = action
        self.unique_id = unique_id  # of the CALL, for the log's ocpp_message_id
        super().__init__(f"no answer within {timeout_s:g} s")


class _NotReading(Exception):
    """The CSMS lets our answers pile up while it floods us."""


class LinkLost(ConnectionClosed):
    """The connection ended while a CALL waited for its answer: whether the CSMS got it is unknown."""

    def __init__(self) -> None:
        super().__init__(None, None)

    def __str__(self) -> str:
        return "the connection to the CSMS was lost with a CALL in flight"


class Connection(Protocol):
    async def send(self, message: str) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self) -> None: ...


# OCPP-J 1.6 4.1.1: a CSMS has one CALL at a time in flight, so a few waiting is generous, and a bulk configuration
# (one ChangeConfiguration after the other) fits in the burst.
CALL_QUEUE_MAX = 8
CALL_RATE_PER_S = 50.0
CALL_BURST = 200
# Over-limit CALLs summed up in one warning per this many seconds, not one line each.
REFUSALS_LOG_EVERY_S = 10.0
# Refusals wait here for the writer, so the reader never blocks on a CSMS that floods and does not read what we
# send; one that lets this many pile up has its link closed.
REFUSALS_PENDING_MAX = 10_000  # about 1 MB
_REPLY_FRAME = re.compile(r"\s*\[\s*[34]\s*,")


class _BoundedWarnings:
    """Warnings about what the CSMS sends, at most ``per_window`` per ``window_s``: replies are not rate-limited
    like CALLs, and a flood of broken ones must not flood the log. What was left out is counted and said."""

    def __init__(self, per_window: int = 10, window_s: float = REFUSALS_LOG_EVERY_S) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._window_start_s = -float("inf")
        self._logged = 0
        self._suppressed = 0

    def warning(self, msg: str, *args: object, extra: dict[str, object] | None = None) -> None:
        now_s = time.monotonic()
        if now_s - self._window_start_s >= self.window_s:
            if self._suppressed:
                log.warning("%d more warnings about frames from the CSMS were left out of the log", self._suppressed)
            self._window_start_s, self._logged, self._suppressed = now_s, 0, 0
        if self._logged < self.per_window:
            self._logged += 1
            log.warning(msg, *args, extra=extra)
        else:
            self._suppressed += 1

    def flush(self) -> None:
        if self._suppressed:
            log.warning("%d more warnings about frames from the CSMS were left out of the log", self._suppressed)
            self._suppressed = 0


class _TokenBucket:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at_s = time.monotonic()

    def take(self) -> bool:
        now_s = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now_s - self._at_s) * self.rate_per_s)
        self._at_s = now_s
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


# Frames go to the debug log and to the recent frames of the diagnostics bundle cut to this many characters (a
# hostile CSMS must not fill the disk); the OCPP message log file keeps them up to message_log.FRAME_MAX_CHARS.
FRAME_LOG_MAX_CHARS = 500
_frames = logging.getLogger(f"{__name__}.frames")
_VERBS = {OUT: "send", IN: "receive message"}


class _FrameLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger handed to the library: its per-frame INFO lines ("send ...", "receive message ...") become
    the message log's lines and truncated DEBUG lines; its warnings and errors stay what they are."""

    def info(self, msg: object, *args: object, **kwargs: object) -> None:
        if len(args) == 2 and msg in ("%s: send %s", "%s: receive message %s"):
            _frame(OUT if msg == "%s: send %s" else IN, str(args[0]), args[1])
        else:
            _frame_text(redact((str(msg) % args if args else str(msg))[:8 * FRAME_LOG_MAX_CHARS]))


def _frame(direction: str, charge_point_id: str, frame: object) -> None:
    """One frame in or out: to the OCPP message log, the recent frames of the diagnostics bundle and DEBUG."""
    whole = frame if isinstance(frame, str | bytes) else str(frame)
    head = whole[:FRAME_MAX_CHARS]
    # Masked before any cut that could part a key's name from its value (they sit side by side in
    # ChangeConfiguration); the cut at the file's limit keeps a huge frame cheap.
    masked = redact(head if isinstance(head, str) else str(head))
    OCPP_MESSAGE_LOG.write(direction, masked, len(whole) - len(head))
    _frame_text(f"{charge_point_id}: {_VERBS[direction]} {masked[:FRAME_LOG_MAX_CHARS]}")


def _frame_text(text: str) -> None:
    text = text[:FRAME_LOG_MAX_CHARS]
    RECENT_FRAMES.add(text)
    if _frames.isEnabledFor(logging.DEBUG):
        _frames.debug("%s", text)


class Link(_LibChargePoint):
    """One connected session. ``handlers`` is the object whose ``@on`` methods answer CSMS calls."""

    def __init__(self, charge_point_id: str, connection: Connection, response_timeout_s: float) -> None:
        super().__init__(charge_point_id, connection, response_timeout=response_timeout_s,
                         logger=_FrameLog(logging.getLogger("ocpp"), {}))
        self._call_in_flight: str | None = None  # the unique id of our CALL waiting for its answer
        self._lost = asyncio.Event()
        self._calls: asyncio.Queue[str | bytes] = asyncio.Queue(CALL_QUEUE_MAX)
        self._admission = _TokenBucket(CALL_RATE_PER_S, CALL_BURST)
        self._refused = 0  # CSMS CALLs refused over the limits since the last warning
        self._refusals: asyncio.Queue[str] = asyncio.Queue(REFUSALS_PENDING_MAX)
        self._warnings = _BoundedWarnings()
        self._refusals_logged_s = 0.0
        # The camelCase payload of the CALL being handled, for handlers that want the wire form.
        self.current_payload: dict[str, Any] = {}

    async def call_raw(self, action: str, payload: dict[str, Any], unique_id: str | None = None) -> dict[str, Any]:
        """Send one CALL and return the CALLRESULT payload; CallFailed on CALLERROR, TimeoutError on silence."""
        call = Call(unique_id=unique_id or str(self._unique_id_generator()), action=action, payload=payload)
        await validate_payload(call, self._ocpp_version)
        async with self._call_lock:
            if self._lost.is_set():
                raise LinkLost()
            self._call_in_flight = call.unique_id
            try:
                await self._send(call.to_json())
                response = await self._reply_or_loss(call.unique_id)
            except TimeoutError as exc:
                raise CallTimedOut(action, call.unique_id, self._response_timeout) from exc
            finally:
                self._call_in_flight = None
        if response.message_type_id == MessageType.CallError:
            raise CallFailed(response.error_code, response.error_description, response.error_details, call.unique_id)
        response.action = action
        try:
            await validate_payload(response, self._ocpp_version)
        except OCPPError as exc:
            # The CSMS answered, but with something invalid: treat it like a CALLERROR of that kind.
            raise CallFailed(type(exc).__name__, str(exc), None, call.unique_id) from exc
        payload_out = response.payload
        assert isinstance(payload_out, dict)
        return payload_out

    async def _reply_or_loss(self, unique_id: str) -> Any:
        reply = asyncio.ensure_future(self._get_specific_response(unique_id, self._response_timeout))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait((reply, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            reply.cancel()
            lost.cancel()
        if reply.done() and not reply.cancelled():
            return reply.result()  # the answer, or TimeoutError
        raise LinkLost()

    def lost(self) -> None:
        """The connection is gone: a CALL waiting for its answer fails now, and no new one is sent."""
        self._lost.set()

    async def close(self) -> None:
        """Close this link's connection (a CALL went unanswered: it cannot be trusted any more)."""
        self.lost()
        await self._connection.close()

    async def start(self) -> None:
        """Read frames until the connection ends: replies go to the waiting CALL at once, CSMS CALLs to the
        handler task, within the limits."""
        handler = asyncio.create_task(self._handle_calls())
        writer = asyncio.create_task(self._send_refusals())
        try:
            while True:
                raw = await self._connection.recv()
                if isinstance(raw, str) and _REPLY_FRAME.match(raw):
                    _frame(IN, self.id, raw)
                    await self.route_message(raw)
                elif self._admission.take():
                    try:
                        self._calls.put_nowait(raw)
                    except asyncio.QueueFull:
                        self._refuse(raw, f"more than {CALL_QUEUE_MAX} CALLs waiting")
                else:
                    self._refuse(raw, f"more than {CALL_RATE_PER_S:g} CALLs per second")
                # recv() returns without suspending while frames are buffered: yield after each one, so a flood
                # never holds the event loop (and the pilot, contactor and meter loops on it) for long.
                await asyncio.sleep(0)
        except _NotReading:
            log.error("closing the link: the CSMS floods CALLs and does not read the %d answers waiting for it",
                      REFUSALS_PENDING_MAX)
            await self._connection.close()
            raise ConnectionClosed(None, None) from None
        finally:
            if self._refused:
                log.warning("refused %d more CALL(s) from the CSMS over the limits", self._refused)
            self._warnings.flush()
            self.lost()
            for task in (handler, writer):
                task.cancel()
            for task in (handler, writer):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _handle_calls(self) -> None:
        while True:
            raw = await self._calls.get()
            _frame(IN, self.id, raw)
            await self.route_message(raw)

    async def _send_refusals(self) -> None:
        while True:
            await self._send(await self._refusals.get())

    def _refuse(self, raw: str | bytes, why: str) -> None:
        """A CSMS CALL over the limits: a CALLERROR (nothing else is done with it), queued for the writer; a
        warning now and then."""
        self._refused += 1
        now_s = time.monotonic()
        if now_s - self._refusals_logged_s >= REFUSALS_LOG_EVERY_S:
            log.warning("refused %d CALL(s) from the CSMS: %s", self._refused, why)
            self._refused = 0
            self._refusals_logged_s = now_s
        unique_id = _call_id(raw)
        if unique_id is not None:
            try:
                self._refusals.put_nowait(CallError(unique_id, "GenericError", f"refused: {why}", {}).to_json())
            except asyncio.QueueFull:
                raise _NotReading from None

    async def route_message(self, raw_msg: str | bytes) -> None:
        if isinstance(raw_msg, bytes):
            # OCPP-J is text frames only: a binary frame is refused, never processed (a CALLERROR if it names one).
            self._warnings.warning("refusing a binary WebSocket frame from the CSMS (%d bytes)", len(raw_msg))
            unique_id = _call_id(raw_msg)
            if unique_id is not None:
                await self._send(CallError(unique_id, _FORMAT_ERROR, "OCPP-J uses text frames only", {}).to_json())
            return
        try:
            msg = unpack(raw_msg)
        except (OCPPError, ValueError, RecursionError) as exc:
            # ValueError: JSON the library does not wrap (an integer beyond Python's digit limit);
            # RecursionError: nesting deeper than the JSON parser accepts.
            unique_id = _call_id(raw_msg)
            self._warnings.warning("invalid OCPP frame from the CSMS (%s): %.200r", exc, raw_msg)
            if unique_id is not None:
                description = exc.description if isinstance(exc, OCPPError) else str(exc)
                await self._send(CallError(unique_id, _FORMAT_ERROR, str(description), {}).to_json())
            return
        if msg.message_type_id == MessageType.Call:
            if not isinstance(msg.unique_id, str) or not msg.unique_id:
                self._warnings.warning("dropping a CALL without a usable unique id: %.200r", raw_msg)
                return
            if not isinstance(msg.action, str):
                await self._send(CallError(msg.unique_id, _FORMAT_ERROR, "action must be a string", {}).to_json())
                return
            if not isinstance(msg.payload, dict):
                await self._send(CallError(msg.unique_id, _FORMAT_ERROR, "payload must be an object", {}).to_json())
                return
            self.current_payload = msg.payload
            fields = log_fields(ocpp_message_id=msg.unique_id[:100], ocpp_action=msg.action[:60])
            log.info("CSMS calls %.60s (%.40s)", msg.action, msg.unique_id, extra=fields)  # the one INFO line of a CALL
            if not _finite(msg.payload):
                await self._send(CallError(msg.unique_id, _FORMAT_ERROR, "NaN and Infinity are not JSON numbers",
                                           {}).to_json())
                return
            try:
                await self._handle_call(msg)
            except ArithmeticError as error:
                # A number the schema's checks cannot even compute with (1e308 against multipleOf 0.1).
                self._warnings.warning("CALL %.60s %.40s refused: a number out of range (%.100s)", msg.action,
                                       msg.unique_id, error, extra=fields)
                await self._send(CallError(msg.unique_id, "PropertyConstraintViolation", "a number is out of range",
                                           {}).to_json())
            except OCPPError as error:
                self._warnings.warning("CALL %.60s %.40s refused: %.300s", msg.action, msg.unique_id, error,
                                       extra=fields)
                await self._send(_call_error(msg.unique_id, error).to_json())
            except Exception as error:  # the one catch-all: a CALL must get an answer (InternalError)
                log.exception("CALL %.100s %.100s failed", msg.action, msg.unique_id, extra=fields)
                await self._send(_call_error(msg.unique_id, error).to_json())
            return
        if self._call_in_flight is None or msg.unique_id != self._call_in_flight:
            # Dropped at once, whatever their number: the library's reply matching recurses once per stray reply.
            log.debug("dropping a reply to no CALL in flight: %.200r", raw_msg)
            return
        self._response_queue.put_nowait(msg)


def _call_id(raw: str | bytes) -> str | None:
    """The unique id of something that looks like a CALL, however broken the rest is."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if isinstance(data, list) and len(data) >= 2 and data[0] == 2 and isinstance(data[1], str) and data[1]:
        # The id as sent, even beyond OCPP's 36 characters: a shortened id would match no CALL at the CSMS.
        return data[1]
    return None


def _finite(value: Any, depth: int = 0) -> bool:
    """No NaN or Infinity anywhere in a payload (Python's JSON parser accepts them, JSON does not)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if depth > 32:
        return True  # deeper than any OCPP payload: the schema refuses it anyway
    if isinstance(value, dict):
        return all(_finite(item, depth + 1) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item, depth + 1) for item in value)
    return True
