"""Fuzzing of inbound OCPP-J frames: whatever the CSMS sends, ``Link.route_message`` answers exactly the CALLs.

The frames are fed to the real ``route_message`` on a fake in-memory connection (ocpp ``tests/conftest.py``
style), once on a bare ``Link`` (no handlers: every well-formed CALL gets NotImplemented/NotSupported) and
once on the real ``ChargePointHandlers`` with a stub client (schema validation and the handlers run).

The oracle, from OCPP-J 1.6 §4: a frame that parses as a JSON array whose first element is 2 and whose
second is a non-empty string is a CALL with an identifiable id and gets exactly one reply, a CALLRESULT or a
CALLERROR carrying that id; nothing else is ever answered (an answer to an unidentifiable message could be
taken for the answer to a real one). Replies are strict JSON. ``route_message`` never raises.

``CHARGEPOINT_HYPOTHESIS_EXAMPLES`` raises the number of examples (default 300).
"""

from __future__ import annotations

import asyncio
import json
import os
import string
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.v16.enums import Action

from chargepoint.core.ocpp_auth import Authorizer, AuthSettings
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.v16.handlers import ChargePointHandlers
from chargepoint.ocpp.v16.link import CallFailed, Link

EXAMPLES = int(os.environ.get("CHARGEPOINT_HYPOTHESIS_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.timeout(60 + EXAMPLES // 2)

ACTIONS = sorted(action.value for action in Action)


class FakeConnection:
    """Records what the charger sends; ``recv`` is never called by ``route_message``."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.sent_something = asyncio.Event()

    async def send(self, message: str) -> None:
        assert isinstance(message, str)
        self.sent.append(message)
        self.sent_something.set()

    async def recv(self) -> str:
        raise AssertionError("route_message must not read from the connection")

    async def close(self) -> None:
        return None


class _StubConnector:
    session = None
    status = "Available"


class _StubApp:
    def __init__(self) -> None:
        self.connectors = {1: _StubConnector()}
        self.posted: list[Any] = []

    pricing = None

    def start_remotely(self, connector_id: int, id_tag: str, pre_authorized: bool) -> None:
        self.posted.append((connector_id, ("start", id_tag, pre_authorized)))

    def stop_transaction(self, connector_id: int, reason: str) -> None:
        self.posted.append((connector_id, ("stop", reason)))

    async def set_operative(self, connector_ids: list[int], operative: bool) -> None:
        return None

    async def reset(self, hard: bool) -> None:
        return None

    async def unlock(self, connector_id: int) -> str:
        return "Unlocked"

    async def reserve(self, record: Any) -> str:
        return "Rejected"

    async def cancel_reservation(self, reservation_id: int) -> bool:
        return False


class _StubMeterValues:
    def has_values(self, connector_id: int) -> bool:
        return True


class _StubClient:
    """Just what ``ChargePointHandlers`` touches, with real key table and authorizer."""

    def __init__(self) -> None:
        self.app = _StubApp()
        self.keys = OcppConfiguration(1)
        self.authorizer = Authorizer(AuthSettings())
        self.clock_offset_s = 0.0
        self.registration_rejected = False
        self.meter_values = _StubMeterValues()

    async def persist_key(self, name: str, value: str) -> None:
        return None

    def reconnect_if_credentials_changed(self) -> None:
        return None

    async def clear_cache(self) -> bool:
        return self.authorizer.clear_cache()

    async def send_local_list(self, version: int, update_type: str, entries: list[Any] | None) -> str:
        return str(self.authorizer.send_local_list(version, update_type, entries).status)

    async def install_remote_start_profile(self, connector_id: int, profile: dict[str, Any]) -> bool:
        return False

    async def triggered(self, requested_message: str, connector_id: int | None) -> None:
        return None


def bare_link() -> tuple[Link, FakeConnection]:
    connection = FakeConnection()
    return Link("CP-FUZZ", connection, 0.05), connection


def handlers_link() -> tuple[Link, FakeConnection]:
    connection = FakeConnection()
    client = _StubClient()
    link = ChargePointHandlers("CP-FUZZ", connection, 0.05, client, client.app)  # type: ignore[arg-type]
    return link, connection


# ---------------------------------------------------------------------------------------------- oracle


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str) -> Any:
    """RFC 8259 JSON only: Python's NaN/Infinity extensions are refused."""
    return json.loads(text, parse_constant=_reject_constant)


def expected_reply_id(frame: str | bytes) -> str | None:
    """The id a reply must carry, or None if the frame must not be answered."""
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):  # not JSON (or nested deeper than any parser here accepts)
        return None
    if (
        isinstance(data, list)
        and len(data) >= 2
        and not isinstance(data[0], bool)
        and data[0] == 2
        and isinstance(data[1], str)
        and data[1]
    ):
        return data[1]
    return None


async def route(link: Link, connection: FakeConnection, frame: str | bytes) -> list[str]:
    before = len(connection.sent)
    await link.route_message(frame)  # must not raise, whatever the frame
    # Hooks run by @after may send CALLs of their own later; none exist on these stubs, but give them a turn.
    await asyncio.sleep(0)
    return connection.sent[before:]


def check_replies(frame: str | bytes, replies: list[str]) -> None:
    wanted = expected_reply_id(frame)
    if wanted is None:
        assert replies == [], f"answered a frame that is not an identifiable CALL: {frame!r:.300} -> {replies!r:.300}"
        return
    assert len(replies) == 1, f"{len(replies)} replies to {frame!r:.300}: {replies!r:.300}"
    reply = strict_json(replies[0])
    assert isinstance(reply, list), reply
    assert reply[0] in (3, 4), reply
    assert reply[1] == wanted, f"reply id {reply[1]!r:.80} is not the CALL's {wanted!r:.80}"
    if reply[0] == 3:
        assert len(reply) == 3 and isinstance(reply[2], dict), reply
    else:
        assert len(reply) == 5, reply
        assert isinstance(reply[2], str) and reply[2], reply
        assert isinstance(reply[3], str), reply
        assert isinstance(reply[4], dict), reply


def run_frames(make: Any, frames: list[str | bytes]) -> None:
    async def body() -> None:
        link, connection = make()
        for frame in frames:
            check_replies(frame, await route(link, connection, frame))

    asyncio.run(body())


# ---------------------------------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=20), json_values, max_size=6)

unique_ids = (
    st.uuids().map(str)
    | st.text(max_size=40)
    | st.just("")
    | st.integers()
    | st.none()
    | st.lists(st.integers(), max_size=2)
    | st.text(alphabet=string.ascii_letters, min_size=37, max_size=200)  # longer than OCPP's 36
)
actions = st.sampled_from(ACTIONS) | st.text(max_size=30) | json_values

message_type_ids = st.sampled_from([2, 3, 4]) | st.integers(-3, 10) | st.just(2.0) | st.booleans() | json_scalars


@st.composite
def shaped_frames(draw: st.DrawFn) -> str:
    """Arrays shaped like CALL/CALLRESULT/CALLERROR, with random ids, actions, payloads and lengths."""
    kind = draw(message_type_ids)
    elements: list[Any] = [kind, draw(unique_ids)]
    if kind == 3:
        elements.append(draw(json_objects | json_values))
    elif kind == 4:
        elements += [draw(st.text(max_size=30) | json_values), draw(st.text(max_size=30) | json_values),
                     draw(json_objects | json_values)]
    else:
        elements += [draw(actions), draw(json_objects | json_values)]
    cut = draw(st.integers(0, len(elements) + 2))
    elements = elements[:cut] + draw(st.lists(json_values, max_size=max(0, cut - len(elements))))
    return json.dumps(elements, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))


@st.composite
def valid_action_frames(draw: st.DrawFn) -> str:
    """Well-formed CALLs of real OCPP actions with random payloads (mostly schema violations)."""
    payload = draw(json_objects)
    return json.dumps([2, draw(st.uuids().map(str)), draw(st.sampled_from(ACTIONS)), payload])


@st.composite
def huge_frames(draw: st.DrawFn) -> str | bytes:
    """Sizes and depths at the edges: long ids and strings, deep nesting, giant integers, binary junk."""
    size = draw(st.sampled_from([1_000, 70_000, 1_000_000]))
    choice = draw(st.integers(0, 7))
    uid = draw(st.uuids().map(str))
    if choice == 0:
        return json.dumps([2, "x" * size, "Heartbeat", {}])
    if choice == 1:
        return json.dumps([2, uid, "DataTransfer", {"vendorId": "v", "data": "d" * size}])
    if choice == 2:
        depth = draw(st.sampled_from([100, 5_000, 200_000]))
        return f'[2,"{uid}","DataTransfer",{{"vendorId":"v","data":' + "[" * depth + "]" * depth + "}]"
    if choice == 3:
        return "[" * draw(st.sampled_from([10, 5_000, 200_000]))
    if choice == 4:
        return f'[2,"{uid}","Reset",{{"type":' + "9" * draw(st.sampled_from([100, 5_000])) + "}]"
    if choice == 5:
        return json.dumps([2, uid, "x" * size, {}])
    if choice == 6:
        return draw(st.binary(max_size=64)) + json.dumps([2, uid, "Heartbeat", {}]).encode()
    return json.dumps([3, uid, {"k" * size: "v"}])


any_frames = (
    st.text(max_size=200)
    | json_values.map(json.dumps)
    | shaped_frames()
    | valid_action_frames()
    | st.binary(max_size=100)
    | shaped_frames().map(str.encode)
)


# ---------------------------------------------------------------------------------------------- properties


@FUZZ
@given(frames=st.lists(any_frames, min_size=1, max_size=8))
def test_bare_link_answers_exactly_the_identifiable_calls(frames: list[str | bytes]) -> None:
    run_frames(bare_link, frames)


@FUZZ
@given(frames=st.lists(any_frames, min_size=1, max_size=8))
def test_real_handlers_answer_exactly_the_identifiable_calls(frames: list[str | bytes]) -> None:
    run_frames(handlers_link, frames)


@settings(max_examples=max(30, EXAMPLES // 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=huge_frames())
def test_huge_frames_are_answered_or_ignored_without_raising(frame: str | bytes) -> None:
    run_frames(bare_link, [frame])
    run_frames(handlers_link, [frame])


@FUZZ
@given(reply=shaped_frames() | any_frames, answer_with_the_call_id=st.booleans())
def test_a_call_in_flight_ends_in_a_result_a_callerror_or_a_timeout(
    reply: str | bytes, answer_with_the_call_id: bool
) -> None:
    """Whatever comes back while our CALL waits, ``call_raw`` returns a payload or raises CallFailed/TimeoutError."""

    async def body() -> None:
        link, connection = bare_link()
        link._response_timeout = 0.005
        call = asyncio.create_task(link.call_raw("Heartbeat", {}, unique_id="call-1"))
        await connection.sent_something.wait()
        frame = reply
        if answer_with_the_call_id:
            try:
                data = json.loads(reply)
            except (ValueError, RecursionError):
                data = None
            if isinstance(data, list) and len(data) >= 2:
                data[1] = "call-1"
                frame = json.dumps(data)
        replies = await route(link, connection, frame)
        check_replies(frame, replies)
        try:
            result = await call
        except (CallFailed, TimeoutError):
            return
        assert isinstance(result, dict)

    asyncio.run(body())


# ---------------------------------------------------------------------------------------------- examples

# Frames that broke route_message before link.py was hardened (each one raised or answered wrongly).
REGRESSIONS: list[str | bytes] = [
    '[2,"id-1",["unhashable"],{}]',  # action that is not a string: TypeError from the route map
    '[2,"id-2",{"a":1},{}]',
    '[2,"id-3","Reset",{"type":' + "9" * 5000 + "}]",  # int too long for Python: ValueError, not JSONDecodeError
    "[" * 100_000,  # RecursionError in json.loads
    '[2,"","Heartbeat",{}]',  # empty id: nothing to answer to
    "[2,17,\"Heartbeat\",{}]",  # id not a string
    '[2,null,"Reset",{"type":"Soft"}]',
    '[2,"' + "i" * 50 + '",17]',  # long id on the malformed path: answered with the full id
    '[2.0,"id-4","Heartbeat",{}]',
]


def test_known_bad_frames() -> None:
    run_frames(bare_link, list(REGRESSIONS))
    run_frames(handlers_link, list(REGRESSIONS))


def test_a_valid_call_is_answered_by_its_handler() -> None:
    async def body() -> None:
        link, connection = handlers_link()
        replies = await route(link, connection, '[2,"ok-1","GetLocalListVersion",{}]')
        assert [strict_json(r) for r in replies] == [[3, "ok-1", {"listVersion": 0}]]

    asyncio.run(body())


def test_a_megabyte_frame_is_handled_promptly() -> None:
    frame = json.dumps([2, "big", "DataTransfer", {"vendorId": "v", "data": "d" * 1_000_000}])
    t0 = time.perf_counter()
    run_frames(handlers_link, [frame])
    assert time.perf_counter() - t0 < 10  # generous: a guard against quadratic behaviour, not a benchmark


def test_callerrors_use_only_ocpp16_error_codes() -> None:
    """Issue 13.5: the library raises some errors named as in OCPP 2.0; 1.6 answers with its own codes."""
    from ocpp.exceptions import (
        FormatViolationError,
        InternalError,
        OccurrenceConstraintViolationError,
        TypeConstraintViolationError,
    )

    from chargepoint.ocpp.v16.link import _call_error

    assert _call_error("a", FormatViolationError("x")).error_code == "FormationViolation"
    assert _call_error("b", OccurrenceConstraintViolationError("x")).error_code == "OccurenceConstraintViolation"
    assert _call_error("c", TypeConstraintViolationError("x")).error_code == "TypeConstraintViolation"
    assert _call_error("d", InternalError("x")).error_code == "InternalError"
    assert _call_error("e", ValueError("boom")).error_code == "InternalError"
