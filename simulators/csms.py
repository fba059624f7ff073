# mypy: disallow-subclassing-any=False, disallow-untyped-decorators=False
# (ocpp ships no type hints: its ChargePoint base class and @on decorator are Any to mypy.)
"""A test CSMS (OCPP 1.6J Central System) on loopback, for end-to-end tests and ``chargepoint demo``.

Incoming CALLs go through the ``ocpp`` library's central-system machinery (``ocpp.v16.ChargePoint``
with one ``@on`` route per charge-point-initiated action), so they are schema-validated and a schema
violation gets the library's own CALLERROR. Each route only asks ``TestCsms`` for the reply: a
default (``boot_status``, ``rejected_id_tags`` ...) or a handler installed with ``set_handler``.

Every frame in either direction is recorded, in order, as a ``Frame`` (unparseable text as RAW),
and the test side gets stimulus methods: ``call`` (CSMS-initiated CALLs), ``send_raw``,
``disconnect``, ``accepting = False`` (HTTP 503 for new connections), ``freeze``/``unfreeze``
(a half-open link: the TCP connection stays up but nothing is read, answered or PONGed, so the
charger can only notice through its WebSocket ping timeout) and ``cut_link_on`` (the link drops as a
CALL arrives, before the CSMS has it, or once it is handled, before its answer is out). The server
itself never pings.

Security profiles (REFERENCE.md D.1): ``passwords`` turns on HTTP Basic auth (profiles 1/2),
``ssl_context`` serves wss:// (profile 2) and ``require_client_cert`` demands a client certificate
whose CN is the charge point id (profile 3). ``make_test_pki`` builds the certificates.

California Pricing (OCA CostAndPrice over DataTransfer): ``cost_message`` sends one costmsg DataTransfer
(SetUserPrice, RunningCost, FinalCost) with ``data`` serialized to a JSON string. With ``cost_and_price`` set
(a ``CsmsPricing``), the CSMS prices every transaction itself: RunningCost after each MeterValues that
carries a transactionId, FinalCost after each StopTransaction, and Accepted for the charger's
ConnectorUnplugged. Those CALLs are follow-ups: queued while the charger's CALL is answered and sent by a
per-connection task once the answer is out, never from inside the handler.

Handlers run one at a time per charge point (OCPP-J allows one CALL in flight per direction), on a
task separate from the reader, so a handler may itself ``await csms.call(...)`` on the same charger.

Size: a test server, not firmware: the OCPP 1.6 central system that the end-to-end tests and the demo drive, with
its scripted behaviours, test PKI and frame log in one place.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hmac
import inspect
import json
import logging
import secrets
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, TypeVar
from urllib.parse import unquote

from ocpp.charge_point import camel_to_snake_case
from ocpp.exceptions import FormatViolationError, OCPPError
from ocpp.messages import Call, CallResult, validate_payload
from ocpp.routing import on
from ocpp.v16 import ChargePoint as _OcppChargePoint
from ocpp.v16 import call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

logger = logging.getLogger(__name__)

OCPP16_SUBPROTOCOL: Final = Subprotocol("ocpp1.6")
OCPP_VERSION: Final = "1.6"

MessageType = Literal["CALL", "CALLRESULT", "CALLERROR", "RAW"]
Payload = dict[str, Any]
Handler = Callable[[str, Payload], Payload | Awaitable[Payload]]
FollowUp = Callable[[], Awaitable[None]]
_T = TypeVar("_T")

COSTMSG_VENDOR_ID: Final = "org.openchargealliance.costmsg"
_FOLLOW_UP_WAIT_S: Final = 60.0  # how long a follow-up waits for the answer to the CALL it follows


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket message, in either direction, as recorded by the CSMS."""

    direction: Literal["in", "out"]  # in = from the charge point
    charge_point_id: str
    message_type: MessageType  # RAW = text that is not an OCPP-J message
    unique_id: str | None
    action: str | None  # for CALLRESULT/CALLERROR: the action of the CALL it answers, when known
    payload: Payload | None  # CALLERROR: {"errorCode", "errorDescription", "errorDetails"}
    raw: str
    at: datetime  # UTC, when received or sent

    def describe(self) -> str:
        arrow = "<-" if self.direction == "in" else "->"
        return f"{self.charge_point_id} {arrow} {self.message_type} {self.action or ''} {self.raw}"


class CallErrorReply(Exception):
    """A CALLERROR: raise it from a handler to answer with one; ``TestCsms.call`` raises it when the CP does."""

    def __init__(self, code: str, description: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.details: dict[str, Any] = details if details is not None else {}


class DropCall(Exception):
    """Raise from a handler to leave the CALL unanswered (a lost CALLRESULT: the charger must time out).

    The default reply is still computed (a StartTransaction still gets its transaction id, as when a
    CSMS processes a request whose answer is lost), but nothing is sent or recorded.
    """


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(raw: str) -> tuple[MessageType, str | None, str | None, Payload | None]:
    """Classify an OCPP-J frame leniently: anything that is not a well-formed message is RAW."""
    try:
        message = json.loads(raw)
    except ValueError:
        return "RAW", None, None, None
    if not isinstance(message, list) or len(message) < 3 or not isinstance(message[1], str):
        return "RAW", None, None, None
    kind, unique_id = message[0], message[1]
    if kind == 2 and len(message) == 4 and isinstance(message[2], str):
        payload = message[3] if isinstance(message[3], dict) else None
        return "CALL", unique_id, message[2], payload
    if kind == 3 and len(message) == 3:
        return "CALLRESULT", unique_id, None, message[2] if isinstance(message[2], dict) else None
    if kind == 4 and len(message) in (4, 5):
        details = message[4] if len(message) == 5 else None
        error = {"errorCode": message[2], "errorDescription": message[3], "errorDetails": details}
        return "CALLERROR", unique_id, None, error
    return "RAW", None, None, None


def _as_ocpp_error(reply: CallErrorReply) -> OCPPError:
    error = OCPPError(description=reply.description, details=reply.details)
    error.code = reply.code  # the library's create_call_error reads .code from any OCPPError
    return error


class _Session:
    """One charge point's WebSocket connection: recording, freezing and CSMS-initiated CALLs."""

    def __init__(self, csms: TestCsms, charge_point_id: str, ws: ServerConnection) -> None:
        self.csms = csms
        self.charge_point_id = charge_point_id
        self.ws = ws
        self.ocpp = _CentralSystemRole(charge_point_id, self, csms)
        self.frozen = False
        self.thawed = asyncio.Event()
        self.thawed.set()
        self.incoming: asyncio.Queue[tuple[str, str, Payload | None]] = asyncio.Queue()
        self.call_payloads: dict[str, Payload] = {}  # unique id -> camelCase payload of the CALL being handled
        self.in_call_actions: dict[str, str] = {}  # CALLs from the CP awaiting our answer
        self.out_call_actions: dict[str, str] = {}  # our CALLs awaiting the CP's answer
        self.pending: dict[str, asyncio.Future[Frame]] = {}
        self.unanswered: set[str] = set()  # unique ids whose reply a handler dropped
        self.call_lock = asyncio.Lock()
        # CSMS CALLs to send once the answer to the CP's CALL (by unique id) is out.
        self.follow_ups: asyncio.Queue[tuple[str, str, FollowUp]] = asyncio.Queue()

    async def send(self, text: str) -> None:
        """The library's (and our) only way out: waits while frozen, records, sends."""
        await self.thawed.wait()
        message_type, unique_id, action, payload = _parse(text)
        if message_type in ("CALLRESULT", "CALLERROR") and unique_id is not None:
            if unique_id in self.unanswered:
                self.unanswered.discard(unique_id)
                self.in_call_actions.pop(unique_id, None)
                return
            action = self.in_call_actions.pop(unique_id, None)
            if action is not None and self.csms._take_cut(action, "answer"):
                # Handled (a StartTransaction has its id), but the answer dies with the link.
                logger.info("%s: link cut before the answer to %s %s", self.charge_point_id, action, unique_id)
                self.ws.transport.abort()
                return
        elif message_type == "CALL" and unique_id is not None and action is not None:
            self.out_call_actions[unique_id] = action
        self.csms._record(Frame("out", self.charge_point_id, message_type, unique_id, action, payload, text, _now()))
        await self.ws.send(text)

    async def read(self) -> None:
        """Record each incoming frame; answers to our CALLs resolve ``pending``, CALLs go to the worker."""
        while True:
            await self.thawed.wait()
            try:
                data = await self.ws.recv()
            except ConnectionClosed:
                return
            text = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
            message_type, unique_id, action, payload = _parse(text)
            if isinstance(data, bytes):  # OCPP-J is text only
                message_type, unique_id, action, payload = "RAW", None, None, None
            if message_type == "CALL" and action is not None and self.csms._take_cut(action, "receipt"):
                # Sent by the charger, lost with the link: never recorded, never handled.
                logger.info("%s: link cut as %s %s arrived", self.charge_point_id, action, unique_id)
                self.ws.transport.abort()
                return
            if message_type in ("CALLRESULT", "CALLERROR") and unique_id is not None:
                action = self.out_call_actions.pop(unique_id, None)
            frame = Frame("in", self.charge_point_id, message_type, unique_id, action, payload, text, _now())
            self.csms._record(frame)
            if message_type == "CALL" and unique_id is not None and action is not None:
                self.in_call_actions[unique_id] = action
                self.incoming.put_nowait((text, unique_id, payload))
            elif (
                unique_id is not None
                and (future := self.pending.pop(unique_id, None)) is not None
                and not future.done()  # a timed-out call() cancels its future
            ):
                future.set_result(frame)

    async def process_calls(self) -> None:
        """Route CALLs through the ocpp library one at a time (its validation, routes and CALLERRORs)."""
        while True:
            text, unique_id, payload = await self.incoming.get()
            await self.thawed.wait()
            if payload is not None:
                self.call_payloads[unique_id] = payload
            try:
                await self.ocpp.route_message(text)
            except ConnectionClosed:
                return
            finally:
                self.call_payloads.pop(unique_id, None)

    async def run_follow_ups(self) -> None:
        """Send queued follow-up CALLs in order, each only after the CP's CALL that caused it was answered."""
        while True:
            after_unique_id, what, follow_up = await self.follow_ups.get()
            try:
                await self.csms._wait_until(
                    lambda: True if after_unique_id not in self.in_call_actions else None,  # noqa: B023
                    _FOLLOW_UP_WAIT_S,
                    lambda: f"the answer to {after_unique_id} was not sent",  # noqa: B023
                )
            except TimeoutError as exc:
                logger.warning("%s: follow-up %s skipped: %s", self.charge_point_id, what, exc)
                continue
            try:
                await follow_up()
            except (ConnectionClosed, ConnectionError):
                return
            except (CallErrorReply, OCPPError, TimeoutError) as exc:
                logger.warning("%s: follow-up %s failed: %s", self.charge_point_id, what, exc)

    async def call(self, action: str, payload: Payload, timeout_s: float, validate: bool) -> Payload:
        unique_id = str(uuid.uuid4())
        if validate:  # on a copy: the library may rewrite floats as Decimal
            await validate_payload(Call(unique_id, action, copy.deepcopy(payload)), OCPP_VERSION)
        request = Call(unique_id, action, payload).to_json()
        try:
            async with asyncio.timeout(timeout_s):
                async with self.call_lock:
                    future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
                    self.pending[unique_id] = future
                    await self.ocpp._send(request)
                    answer = await future
        except TimeoutError:
            raise TimeoutError(f"{self.charge_point_id} did not answer {request} within {timeout_s} s") from None
        finally:
            self.pending.pop(unique_id, None)
        if answer.message_type == "CALLERROR":
            error = answer.payload or {}
            raise CallErrorReply(
                str(error.get("errorCode")), str(error.get("errorDescription") or ""), error.get("errorDetails")
            )
        if answer.payload is None:
            raise FormatViolationError(details={"cause": f"CALLRESULT payload is not an object: {answer.raw}"})
        if validate:
            await validate_payload(CallResult(unique_id, copy.deepcopy(answer.payload), action), OCPP_VERSION)
        return answer.payload

    def end(self) -> None:
        self.thawed.set()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"{self.charge_point_id} disconnected"))
        self.pending.clear()


def _now() -> datetime:
    return datetime.now(UTC)


class _CentralSystemRole(_OcppChargePoint):
    """``ocpp.v16.ChargePoint`` in the central-system role: each route asks ``TestCsms`` for the reply."""

    def __init__(self, charge_point_id: str, session: _Session, csms: TestCsms) -> None:
        super().__init__(charge_point_id, session)
        self._session = session
        self._csms = csms

    async def _answer(self, action: str, call_unique_id: str) -> Any:
        payload = copy.deepcopy(self._session.call_payloads.get(call_unique_id, {}))
        try:
            reply = await self._csms._reply(self.id, action, payload)
        except CallErrorReply as error:
            raise _as_ocpp_error(error) from error
        except DropCall:
            self._session.unanswered.add(call_unique_id)
            reply = await self._csms._default_reply(self.id, action, payload)
        else:
            self._csms._after_reply(self._session, call_unique_id, action, payload, reply)
        # The library serialises call_result dataclasses; it converts the keys back to camelCase.
        return getattr(call_result, action)(**camel_to_snake_case(reply))

    @on(Action.authorize)
    async def _on_authorize(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.authorize, call_unique_id)

    @on(Action.boot_notification)
    async def _on_boot_notification(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.boot_notification, call_unique_id)

    @on(Action.data_transfer)
    async def _on_data_transfer(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.data_transfer, call_unique_id)

    @on(Action.diagnostics_status_notification)
    async def _on_diagnostics_status_notification(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.diagnostics_status_notification, call_unique_id)

    @on(Action.firmware_status_notification)
    async def _on_firmware_status_notification(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.firmware_status_notification, call_unique_id)

    @on(Action.heartbeat)
    async def _on_heartbeat(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.heartbeat, call_unique_id)

    @on(Action.log_status_notification)
    async def _on_log_status_notification(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.log_status_notification, call_unique_id)

    @on(Action.meter_values)
    async def _on_meter_values(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.meter_values, call_unique_id)

    @on(Action.security_event_notification)
    async def _on_security_event_notification(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.security_event_notification, call_unique_id)

    @on(Action.sign_certificate)
    async def _on_sign_certificate(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.sign_certificate, call_unique_id)

    @on(Action.signed_firmware_status_notification)
    async def _on_signed_firmware_status_notification(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.signed_firmware_status_notification, call_unique_id)

    @on(Action.start_transaction)
    async def _on_start_transaction(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.start_transaction, call_unique_id)

    @on(Action.status_notification)
    async def _on_status_notification(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.status_notification, call_unique_id)

    @on(Action.stop_transaction)
    async def _on_stop_transaction(self, call_unique_id: str, **_: Any) -> Any:
        return await self._answer(Action.stop_transaction, call_unique_id)


class TestCsms:
    """An OCPP 1.6J Central System on a real ``websockets`` server; charge points connect to ``url/<id>``."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        passwords: dict[str, str] | None = None,
        require_client_cert: bool = False,
        cost_and_price: CsmsPricing | None = None,
    ) -> None:
        if require_client_cert:
            if ssl_context is None:
                raise ValueError("require_client_cert needs an ssl_context")
            ssl_context.verify_mode = ssl.CERT_REQUIRED
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.passwords = passwords
        self.require_client_cert = require_client_cert
        self.boot_status: str = "Accepted"
        self.heartbeat_interval_s: int = 300
        self.rejected_id_tags: set[str] = set()
        self.accepting: bool = True
        self.frames: list[Frame] = []
        self.transaction_ids: dict[int, Payload] = {}
        self.retransmitted_starts = 0  # StartTransaction payloads seen again (answered with the same id)
        self.on_frame: Callable[[Frame], None] | None = None  # called with each frame as it is recorded
        # Pricing mode: RunningCost after MeterValues, FinalCost after StopTransaction (None: off).
        self.cost_and_price: CsmsPricing | None = cost_and_price
        self._priced: dict[tuple[str, int], _PricedTransaction] = {}  # (charge point, transactionId)
        self._handlers: dict[str, Handler] = {}
        self._cuts: list[tuple[str, Literal["receipt", "answer"]]] = []  # see cut_link_on
        self._sessions: dict[str, _Session] = {}
        self._server: Server | None = None
        self._changed = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("TestCsms already started")
        self._server = await serve(
            self._serve_connection,
            self.host,
            self.port,
            ssl=self.ssl_context,
            subprotocols=[OCPP16_SUBPROTOCOL],  # websockets refuses a missing or other subprotocol (HTTP 400)
            process_request=self._process_request,
            ping_interval=None,  # the charger pings; a CSMS ping would defeat freeze()
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        for session in list(self._sessions.values()):
            if session.frozen:  # no close handshake is possible on a frozen link
                session.ws.transport.abort()
                session.end()
        server.close()
        await server.wait_closed()

    async def __aenter__(self) -> TestCsms:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("TestCsms not started")
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}"

    # --- observation --------------------------------------------------------------------------------

    def calls(self, action: str, charge_point_id: str | None = None) -> list[Frame]:
        """Incoming CALLs of ``action``, in order."""
        return [
            frame
            for frame in self.frames
            if frame.direction == "in"
            and frame.message_type == "CALL"
            and frame.action == action
            and (charge_point_id is None or frame.charge_point_id == charge_point_id)
        ]

    async def wait_for_call(
        self,
        action: str,
        predicate: Callable[[Payload], bool] | None = None,
        *,
        timeout_s: float = 10,
        after: int = 0,
    ) -> Frame:
        """First incoming CALL of ``action`` with frame index >= ``after`` whose payload matches ``predicate``."""

        def find() -> Frame | None:
            for frame in self.frames[after:]:
                if (
                    frame.direction == "in"
                    and frame.message_type == "CALL"
                    and frame.action == action
                    and (predicate is None or (frame.payload is not None and predicate(frame.payload)))
                ):
                    return frame
            return None

        def failure() -> str:
            seen = [f"[{i}] {frame.describe()}" for i, frame in enumerate(self.frames) if i >= after]
            return f"no {action} CALL within {timeout_s} s; frames from index {after}:\n" + "\n".join(seen)

        return await self._wait_until(find, timeout_s, failure)

    def connected(self, charge_point_id: str) -> bool:
        return charge_point_id in self._sessions

    async def wait_connected(self, charge_point_id: str, timeout_s: float = 10) -> None:
        await self._wait_until(
            lambda: True if charge_point_id in self._sessions else None,
            timeout_s,
            lambda: f"{charge_point_id} did not connect within {timeout_s} s",
        )

    # --- replies to the charge point ----------------------------------------------------------------

    def set_handler(self, action: str, handler: Handler | None) -> None:
        """Override the reply to a CP->CSMS action; ``None`` restores the default.

        ``handler(charge_point_id, camelCase payload)`` returns the camelCase reply (or an awaitable of
        it), or raises ``CallErrorReply`` (CALLERROR) or ``DropCall`` (no answer at all). A reply the
        1.6 schema rejects, or any other exception, gets the library's InternalError/validation CALLERROR.
        """
        if action not in _DEFAULT_REPLIES:
            raise ValueError(f"{action} is not a charge-point-initiated OCPP 1.6 action")
        if handler is None:
            self._handlers.pop(action, None)
        else:
            self._handlers[action] = handler

    async def _reply(self, charge_point_id: str, action: str, payload: Payload) -> Payload:
        handler = self._handlers.get(action)
        if handler is None:
            return await self._default_reply(charge_point_id, action, payload)
        reply = handler(charge_point_id, payload)
        if inspect.isawaitable(reply):
            return await reply
        return reply

    async def _default_reply(self, charge_point_id: str, action: str, payload: Payload) -> Payload:
        return _DEFAULT_REPLIES[action](self, payload)

    def _data_transfer(self, payload: Payload) -> Payload:
        if self.cost_and_price is None or payload.get("vendorId") != COSTMSG_VENDOR_ID:
            return {"status": "UnknownVendorId"}
        if payload.get("messageId") == "ConnectorUnplugged":
            return {"status": "Accepted"}
        return {"status": "UnknownMessageId"}

    def _after_reply(self, session: _Session, call_unique_id: str, action: str, payload: Payload,
                     reply: Payload) -> None:
        """Queue the pricing mode's follow-up CALLs for a CALL just answered with ``reply``."""
        pricing = self.cost_and_price
        if pricing is None:
            return
        cp_id = session.charge_point_id
        try:
            follow_up = self._pricing_follow_up(pricing, cp_id, action, payload, reply)
        except (ArithmeticError, ValueError, TypeError) as exc:  # InvalidOperation is an ArithmeticError
            logger.warning("%s: cannot price %s %s: %s", cp_id, action, payload, exc)
            return
        if follow_up is not None:
            message_id, data = follow_up

            async def send() -> None:
                await self.cost_message(cp_id, message_id, data)

            session.follow_ups.put_nowait((call_unique_id, message_id, send))

    def _pricing_follow_up(self, pricing: CsmsPricing, cp_id: str, action: str, payload: Payload,
                           reply: Payload) -> tuple[str, Payload] | None:
        if action == "StartTransaction" and isinstance(reply.get("transactionId"), int):
            meter_start = int(payload["meterStart"])
            self._priced[(cp_id, reply["transactionId"])] = _PricedTransaction(
                meter_start, _parse_time(payload["timestamp"]), Decimal(meter_start)
            )
            return None
        if action == "MeterValues" and "transactionId" in payload:
            transaction_id = int(payload["transactionId"])
            priced = self._priced.get((cp_id, transaction_id))
            if priced is None:
                logger.info("%s: MeterValues for transaction %s, not started here: no RunningCost", cp_id,
                            transaction_id)
                return None
            at = priced.started_at
            for meter_value in payload.get("meterValue", []):
                at = _parse_time(meter_value["timestamp"])
                energy_Wh = _energy_Wh(meter_value.get("sampledValue", []))
                if energy_Wh is not None:
                    priced.energy_Wh = energy_Wh
            energy_Wh = priced.energy_Wh - priced.meter_start_Wh
            cost = pricing.cost(energy_Wh, (at - priced.started_at).total_seconds())
            return "RunningCost", {
                "transactionId": transaction_id,
                "timestamp": _iso(at),
                "meterValue": int(priced.energy_Wh.to_integral_value(ROUND_HALF_UP)),
                "cost": cost,
                "state": "Charging",
                "chargingPrice": pricing.charging_price(),
                "priceText": pricing.price_text(),
            }
        if action == "StopTransaction":
            transaction_id = int(payload["transactionId"])
            priced = self._priced.pop((cp_id, transaction_id), None)
            if priced is None:
                logger.info("%s: StopTransaction for transaction %s, not started here: no FinalCost", cp_id,
                            transaction_id)
                return None
            energy_Wh = Decimal(int(payload["meterStop"]) - priced.meter_start_Wh)
            duration_s = (_parse_time(payload["timestamp"]) - priced.started_at).total_seconds()
            cost = pricing.cost(energy_Wh, duration_s)
            kwh = (energy_Wh / 1000).quantize(Decimal("0.001"), ROUND_HALF_UP)
            return "FinalCost", {
                "transactionId": transaction_id,
                "cost": cost,
                "priceText": f"Total {cost} {pricing.currency} for {kwh} kWh ({pricing.price_text()})",
            }
        return None

    def _id_tag_info(self, id_tag: str) -> Payload:
        return {"status": "Invalid" if id_tag in self.rejected_id_tags else "Accepted"}

    def _start_transaction(self, payload: Payload) -> Payload:
        # A charger that lost power between sending and reading the answer sends the very same
        # StartTransaction again (OCPP 1.6 has no message idempotency key): like a careful CSMS, answer a
        # retransmission with the transaction it already opened instead of opening a second one.
        for known_id, known in self.transaction_ids.items():
            if known == payload:
                self.retransmitted_starts += 1
                return {"idTagInfo": self._id_tag_info(str(payload.get("idTag", ""))), "transactionId": known_id}
        transaction_id = max(self.transaction_ids, default=0) + 1
        self.transaction_ids[transaction_id] = payload
        return {"idTagInfo": self._id_tag_info(str(payload.get("idTag", ""))), "transactionId": transaction_id}

    # --- stimuli ------------------------------------------------------------------------------------

    async def call(
        self,
        charge_point_id: str,
        action: str,
        payload: Payload,
        *,
        timeout_s: float = 10,
        validate: bool = True,
    ) -> Payload:
        """A CSMS-initiated CALL; returns the CP's camelCase CALLRESULT payload.

        Raises ``CallErrorReply`` if the CP answers CALLERROR, ``TimeoutError`` if it does not answer,
        ``ConnectionError`` if it disconnects first, and the library's ``OCPPError`` subclass if the
        request (before sending) or the CP's answer violates the 1.6 schema (``validate=False`` skips both).
        """
        return await self._session(charge_point_id).call(action, payload, timeout_s, validate)

    async def cost_message(
        self,
        charge_point_id: str,
        message_id: str,
        data: dict[str, Any],
        vendor_id: str = COSTMSG_VENDOR_ID,
        *,
        timeout_s: float = 10,
    ) -> Payload:
        """A CostAndPrice DataTransfer (SetUserPrice, RunningCost, FinalCost ...); returns the CP's answer.

        ``data`` goes out as a JSON string, as 1.6 requires; ``Decimal`` values become JSON numbers written
        exactly as their text (``Decimal("0.30")`` -> ``0.30``).
        """
        payload = {"vendorId": vendor_id, "messageId": message_id, "data": json_with_decimals(data)}
        return await self.call(charge_point_id, "DataTransfer", payload, timeout_s=timeout_s)

    async def send_raw(self, charge_point_id: str, text: str) -> None:
        """Send arbitrary text (recorded like any other frame)."""
        await self._session(charge_point_id).send(text)

    async def disconnect(self, charge_point_id: str, *, abrupt: bool = False) -> None:
        """Close the charge point's connection (1001 Going Away; ``abrupt``: TCP abort, no close frame)."""
        session = self._sessions.get(charge_point_id)
        if session is None:
            return
        if abrupt or session.frozen:
            session.ws.transport.abort()
            session.end()
        else:
            await session.ws.close(code=1001, reason="CSMS restart")
        await self._wait_until(
            lambda: True if self._sessions.get(charge_point_id) is not session else None,
            30,
            lambda: f"{charge_point_id}'s connection handler did not finish",
        )

    def cut_link_on(self, action: str, before: Literal["receipt", "answer"], times: int = 1) -> None:
        """Drop the link (TCP abort, no close frame) at the next ``times`` CALLs of ``action`` from any charge point.

        ``before="receipt"``: the CALL is lost on its way; the CSMS neither records nor handles it. ``before="answer"``:
        the CALL is recorded and handled (a StartTransaction gets its transactionId), then the link drops before the
        answer is sent, so the charger cannot know whether the CSMS has it.
        """
        if action not in _DEFAULT_REPLIES:
            raise ValueError(f"{action} is not a charge-point-initiated OCPP 1.6 action")
        self._cuts.extend([(action, before)] * times)

    def _take_cut(self, action: str, before: Literal["receipt", "answer"]) -> bool:
        try:
            self._cuts.remove((action, before))
        except ValueError:
            return False
        return True

    async def freeze(self, charge_point_id: str) -> None:
        """Half-open link: stop reading (so no PONGs), answering and sending until ``unfreeze``."""
        session = self._session(charge_point_id)
        if not session.frozen:
            session.frozen = True
            session.thawed.clear()
            session.ws.transport.pause_reading()

    async def unfreeze(self, charge_point_id: str) -> None:
        session = self._sessions.get(charge_point_id)
        if session is not None and session.frozen:
            session.frozen = False
            session.ws.transport.resume_reading()
            session.thawed.set()

    # --- internals ----------------------------------------------------------------------------------

    def _session(self, charge_point_id: str) -> _Session:
        try:
            return self._sessions[charge_point_id]
        except KeyError:
            raise ConnectionError(f"{charge_point_id} is not connected") from None

    def _record(self, frame: Frame) -> None:
        self.frames.append(frame)
        if self.on_frame is not None:
            self.on_frame(frame)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(self, check: Callable[[], _T | None], timeout_s: float, failure: Callable[[], str]) -> _T:
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    changed = self._changed
                    found = check()
                    if found is not None:
                        return found
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(failure()) from None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not self.accepting:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "CSMS down\n")
        charge_point_id = _charge_point_id(request.path)
        if not charge_point_id:
            return connection.respond(HTTPStatus.NOT_FOUND, "Expected /<charge point id>\n")
        if self.passwords is not None and not self._password_ok(charge_point_id, request):
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
            return response
        if self.require_client_cert and _client_cert_cn(connection) != charge_point_id:
            return connection.respond(HTTPStatus.FORBIDDEN, "Client certificate CN is not the charge point id\n")
        return None

    def _password_ok(self, charge_point_id: str, request: Request) -> bool:
        assert self.passwords is not None
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = self.passwords.get(charge_point_id)
        return (
            bool(sep)
            and expected is not None
            and user == charge_point_id
            and hmac.compare_digest(password.encode(), expected.encode())
        )

    async def _serve_connection(self, ws: ServerConnection) -> None:
        charge_point_id = _charge_point_id(ws.request.path if ws.request is not None else "")
        previous = self._sessions.get(charge_point_id)
        if previous is not None:  # a reconnect replaces a stale connection
            logger.info("%s reconnected; closing its previous connection", charge_point_id)
            previous.ws.transport.abort()
            previous.end()
        session = _Session(self, charge_point_id, ws)
        self._sessions[charge_point_id] = session
        self._notify()
        try:
            async with asyncio.TaskGroup() as tasks:
                worker = tasks.create_task(session.process_calls())
                follow_ups = tasks.create_task(session.run_follow_ups())
                await session.read()
                worker.cancel()
                follow_ups.cancel()
        finally:
            session.end()
            if self._sessions.get(charge_point_id) is session:
                del self._sessions[charge_point_id]
            self._notify()


def _charge_point_id(path: str) -> str:
    segments = [segment for segment in path.split("?", 1)[0].split("/") if segment]
    return unquote(segments[-1]) if segments else ""


def _client_cert_cn(connection: ServerConnection) -> str | None:
    cert = connection.transport.get_extra_info("peercert")
    if not isinstance(cert, dict):
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


# --- California Pricing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsmsPricing:
    """The test CSMS's own prices in pricing mode (final prices, as California Pricing shows them)."""

    kwh_price: Decimal
    hour_price: Decimal | None = None  # per hour since StartTransaction
    flat_fee: Decimal | None = None  # once per transaction
    currency: str = "EUR"  # label in the price texts
    decimals: int = 2  # of the costs sent

    def cost(self, energy_Wh: Decimal, duration_s: float) -> Decimal:
        """flat fee + kWh x kWh price + hours x hour price, rounded half up to ``decimals``."""
        total = self.flat_fee or Decimal(0)
        total += energy_Wh / 1000 * self.kwh_price
        if self.hour_price is not None:
            total += Decimal(str(max(0.0, duration_s))) / 3600 * self.hour_price
        return total.quantize(Decimal(1).scaleb(-self.decimals), ROUND_HALF_UP)

    def charging_price(self) -> Payload:
        price: Payload = {"kWhPrice": self.kwh_price}
        if self.hour_price is not None:
            price["hourPrice"] = self.hour_price
        if self.flat_fee is not None:
            price["flatFee"] = self.flat_fee
        return price

    def price_text(self) -> str:
        """E.g. ``0.30 EUR/kWh, 1.00 EUR/h, 0.50 EUR per session``."""
        parts = [f"{self.kwh_price} {self.currency}/kWh"]
        if self.hour_price is not None:
            parts.append(f"{self.hour_price} {self.currency}/h")
        if self.flat_fee is not None:
            parts.append(f"{self.flat_fee} {self.currency} per session")
        return ", ".join(parts)


@dataclass(slots=True)
class _PricedTransaction:
    meter_start_Wh: int
    started_at: datetime
    energy_Wh: Decimal  # the latest register reading


def json_with_decimals(value: Any) -> str:
    """Compact JSON in which a ``Decimal`` is a number written exactly as its text (json.dumps refuses them)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return str(value)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            items.append(json.dumps(key) + ":" + json_with_decimals(item))
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_with_decimals(item) for item in value) + "]"
    return json.dumps(value, allow_nan=False)


def _parse_time(text: Any) -> datetime:
    at = datetime.fromisoformat(str(text))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _energy_Wh(sampled_values: list[Payload]) -> Decimal | None:
    """The last Energy.Active.Import.Register reading (the default measurand) of all phases, in Wh."""
    found = None
    for sampled in sampled_values:
        if sampled.get("measurand", "Energy.Active.Import.Register") != "Energy.Active.Import.Register":
            continue
        if sampled.get("phase") is not None:
            continue
        try:
            value = Decimal(str(sampled["value"]))
        except InvalidOperation:
            raise ValueError(f"energy reading {sampled['value']!r} is not a number") from None
        found = value * 1000 if sampled.get("unit") == "kWh" else value
    return found


_DEFAULT_REPLIES: Final[dict[str, Callable[[TestCsms, Payload], Payload]]] = {
    "Authorize": lambda csms, p: {"idTagInfo": csms._id_tag_info(str(p.get("idTag", "")))},
    "BootNotification": lambda csms, p: {
        "status": csms.boot_status,
        "currentTime": _now_iso(),
        "interval": csms.heartbeat_interval_s,
    },
    "DataTransfer": lambda csms, p: csms._data_transfer(p),
    "DiagnosticsStatusNotification": lambda csms, p: {},
    "FirmwareStatusNotification": lambda csms, p: {},
    "Heartbeat": lambda csms, p: {"currentTime": _now_iso()},
    "LogStatusNotification": lambda csms, p: {},
    "MeterValues": lambda csms, p: {},
    "SecurityEventNotification": lambda csms, p: {},
    "SignCertificate": lambda csms, p: {"status": "Accepted"},
    "SignedFirmwareStatusNotification": lambda csms, p: {},
    "StartTransaction": lambda csms, p: csms._start_transaction(p),
    "StatusNotification": lambda csms, p: {},
    "StopTransaction": lambda csms, p: {"idTagInfo": {"status": "Accepted"}} if "idTag" in p else {},
}


# --- test PKI ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestPki:
    """A throwaway CA with a server certificate (127.0.0.1, localhost) and a client certificate (CN = id)."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    directory: Path
    charge_point_id: str
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        context.load_verify_locations(cafile=self.ca_cert)  # trusted issuer of client certificates
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_context(self, with_client_cert: bool = True, *, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        """What the charger would use: trust the test CA and present the client certificate (or ``cert``)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cafile=self.ca_cert)
        if cert is not None:
            context.load_cert_chain(*cert)
        elif with_client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def issue_client_certificate(self, charge_point_id: str) -> tuple[Path, Path]:
        """Another client certificate from the same CA (CN = ``charge_point_id``); returns (cert, key)."""
        stem = "client-" + secrets.token_hex(4)
        cert, key = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        _issue(self, charge_point_id, "client_ext", cert, key)
        return cert, key


_OPENSSL_CONFIG: Final = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def pki_available() -> bool:
    """Whether ``make_test_pki`` can run here (it needs the ``openssl`` command)."""
    return shutil.which("openssl") is not None


def make_test_pki(tmp_dir: Path, charge_point_id: str) -> TestPki:
    """Generate EC P-256 certificates valid for two days in ``tmp_dir`` with the ``openssl`` command.

    (The ``cryptography`` package is not a dependency of this project, so the command line is used.)
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    (tmp_dir / "openssl.cnf").write_text(_OPENSSL_CONFIG)
    pki = TestPki(
        directory=tmp_dir,
        charge_point_id=charge_point_id,
        ca_cert=tmp_dir / "ca.pem",
        ca_key=tmp_dir / "ca.key",
        server_cert=tmp_dir / "server.pem",
        server_key=tmp_dir / "server.key",
        client_cert=tmp_dir / "client.pem",
        client_key=tmp_dir / "client.key",
    )
    _openssl(tmp_dir, "req", "-x509", *_new_key(tmp_dir), "-extensions", "ca_ext", "-days", "2",
             "-subj", "/CN=chargepoint test CA", "-keyout", str(pki.ca_key), "-out", str(pki.ca_cert))  # fmt: skip
    _issue(pki, "localhost", "server_ext", pki.server_cert, pki.server_key)
    _issue(pki, charge_point_id, "client_ext", pki.client_cert, pki.client_key)
    return pki


def _openssl(cwd: Path, *args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("make_test_pki needs the openssl command")
    subprocess.run([openssl, *args], check=True, capture_output=True, cwd=cwd)


def _new_key(directory: Path) -> list[str]:
    config = str(directory / "openssl.cnf")
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-config", config]


def _issue(pki: TestPki, common_name: str, extensions: str, cert: Path, key: Path) -> None:
    directory = pki.directory
    csr = cert.with_suffix(".csr")
    _openssl(directory, "req", "-new", *_new_key(directory), "-subj", "/CN=" + _escape_dn(common_name),
             "-keyout", str(key), "-out", str(csr))  # fmt: skip
    _openssl(directory, "x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
             "-set_serial", "0x" + secrets.token_hex(16), "-days", "2",
             "-extfile", str(directory / "openssl.cnf"), "-extensions", extensions, "-out", str(cert))  # fmt: skip


def _escape_dn(value: str) -> str:
    return value.replace("\\", "\\\\").replace("/", "\\/").replace("+", "\\+").replace("=", "\\=")


__all__ = [
    "COSTMSG_VENDOR_ID",
    "OCPP16_SUBPROTOCOL",
    "CallErrorReply",
    "CsmsPricing",
    "DropCall",
    "Frame",
    "TestCsms",
    "TestPki",
    "json_with_decimals",
    "make_test_pki",
    "pki_available",
]
