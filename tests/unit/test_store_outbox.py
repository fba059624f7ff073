"""The store's outbox, on real SQLite files (no mocks): order, delivery marks, retries, persistence.

The outbox is what makes a transaction message survive a power cut between "queued" and "answered": a message
leaves it only through ``outbox_delivered`` (the CSMS answered) or ``outbox_drop_session`` (its StartTransaction
was refused for good); reading the head, or marking a retry, never removes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from chargepoint.core.ocpp_auth import IdTagEntry
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.v16.authorization import OcppAuthorization
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ocpp.v16.link import CallFailed
from chargepoint.ocpp.v16.outbox import Outbox
from chargepoint.ocpp.v16.smart_charging import SmartCharging
from chargepoint.ports.charger import ChargerPort
from chargepoint.store import OutboxMessage, OutboxRow, Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "chargepoint.db")
    yield opened
    await opened.close()


def message(action: str, n: int, session_id: str | None = None) -> OutboxMessage:
    return OutboxMessage(action, {"n": n, "text": f"{action} #{n}"}, session_id)


async def drain(store: Store) -> list[OutboxRow]:
    """Deliver everything, head first, as the outbox does after each confirmed answer; the rows in order."""
    rows: list[OutboxRow] = []
    while (row := await store.outbox_head()) is not None:
        rows.append(row)
        await store.outbox_delivered(row.seq)
    return rows


async def test_an_empty_outbox_has_no_head_and_no_length(store: Store) -> None:
    assert await store.outbox_head() is None
    assert await store.outbox_len() == 0


async def test_messages_leave_in_the_order_they_were_queued_across_calls_and_batches(store: Store) -> None:
    await store.enqueue([message("A", 1), message("B", 2)])
    await store.enqueue([message("C", 3)])
    await store.enqueue([message("D", 4), message("E", 5), message("F", 6)])
    assert await store.outbox_len() == 6
    rows = await drain(store)
    assert [r.action for r in rows] == ["A", "B", "C", "D", "E", "F"]
    assert [r.payload for r in rows] == [{"n": n, "text": f"{a} #{n}"} for a, n in zip("ABCDEF", range(1, 7),
                                                                                         strict=True)]
    assert [r.seq for r in rows] == sorted(r.seq for r in rows) and len({r.seq for r in rows}) == 6
    assert await store.outbox_len() == 0


async def test_a_fresh_message_has_no_attempts_no_wait_and_its_queueing_time(store: Store) -> None:
    before = datetime.now(UTC)
    await store.enqueue([OutboxMessage("Heartbeat", {})])
    after = datetime.now(UTC)
    row = await store.outbox_head()
    assert row is not None
    assert (row.action, row.payload, row.session_id, row.attempts, row.not_before) == ("Heartbeat", {}, None, 0, 0)
    assert row.csms_transaction_id is None
    assert before <= row.created_at <= after and row.created_at.tzinfo is not None


async def test_reading_the_head_removes_nothing_only_a_delivery_does(store: Store) -> None:
    """Exactly once: a message whose answer never came (the head read, the CALL sent, no CALLRESULT) is still
    there to be resent, unchanged, under the same sequence number."""
    await store.enqueue([message("A", 1), message("B", 2)])
    first = await store.outbox_head()
    again = await store.outbox_head()
    assert first is not None and again == first
    assert await store.outbox_len() == 2
    await store.outbox_delivered(first.seq)
    head = await store.outbox_head()
    assert head is not None and head.action == "B"
    assert await store.outbox_len() == 1


async def test_delivering_one_message_removes_that_one_only(store: Store) -> None:
    await store.enqueue([message("A", 1), message("B", 2), message("C", 3)])
    first = await store.outbox_head()
    assert first is not None
    await store.outbox_delivered(first.seq)
    # A late second answer to the same message removes nothing else.
    await store.outbox_delivered(first.seq)
    assert await store.outbox_len() == 2
    assert [r.action for r in await drain(store)] == ["B", "C"]


async def test_a_retry_records_the_exact_attempt_count_and_time_and_keeps_the_message(store: Store) -> None:
    await store.enqueue([message("A", 1)])
    row = await store.outbox_head()
    assert row is not None
    not_before = time.time() + 60
    await store.outbox_retry_later(row.seq, 1, not_before)
    retried = await store.outbox_head()
    assert retried is not None
    assert (retried.seq, retried.action, retried.payload) == (row.seq, row.action, row.payload)
    assert retried.attempts == 1
    assert retried.not_before == pytest.approx(not_before)
    await store.outbox_retry_later(row.seq, 2, not_before + 120)
    retried = await store.outbox_head()
    assert retried is not None and retried.attempts == 2 and retried.not_before == pytest.approx(not_before + 120)
    assert await store.outbox_len() == 1


async def test_a_message_waiting_for_its_retry_holds_back_the_ones_behind_it(store: Store) -> None:
    """Strict order: a StopTransaction must not overtake the MeterValues before it that waits to be retried."""
    await store.enqueue([message("MeterValues", 1), message("StopTransaction", 2)])
    head = await store.outbox_head()
    assert head is not None and head.action == "MeterValues"
    await store.outbox_retry_later(head.seq, 1, time.time() + 3600)
    waiting = await store.outbox_head()
    assert waiting is not None and waiting.action == "MeterValues" and waiting.not_before > time.time()
    # Another message queued meanwhile does not get ahead either.
    await store.enqueue([message("StatusNotification", 3)])
    assert [r.action for r in await drain(store)] == ["MeterValues", "StopTransaction", "StatusNotification"]


async def test_the_outbox_survives_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "chargepoint.db"
    store = await Store.open(path)
    await store.enqueue([message("A", 1), message("B", 2), message("C", 3)])
    head = await store.outbox_head()
    assert head is not None
    await store.outbox_delivered(head.seq)  # A answered before the power cut
    second = await store.outbox_head()
    assert second is not None
    not_before = time.time() + 30
    await store.outbox_retry_later(second.seq, 2, not_before)  # B refused twice
    await store.close()

    store = await Store.open(path)
    try:
        assert await store.outbox_len() == 2
        reloaded = await store.outbox_head()
        assert reloaded is not None
        assert (reloaded.seq, reloaded.action, reloaded.attempts) == (second.seq, "B", 2)
        assert reloaded.not_before == pytest.approx(not_before)
        assert reloaded.created_at == second.created_at
        await store.enqueue([message("D", 4)])  # numbering goes on after the reopen: D stays behind C
        assert [r.action for r in await drain(store)] == ["B", "C", "D"]
    finally:
        await store.close()


async def test_a_start_confirmation_records_the_csms_id_for_the_sessions_later_messages(store: Store) -> None:
    session = await store.begin_session(1, "CARD", 100, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    await store.record_meter(session.session_id, 150, T0 + timedelta(seconds=60),
                             messages=[message("MeterValues", 2, session.session_id)])
    await store.end_session(session.session_id, 200, T0 + timedelta(seconds=120), "Local",
                            messages=lambda record: [message("StopTransaction", 3, record.session_id)])
    start = await store.outbox_head()
    assert start is not None and start.action == "StartTransaction" and start.session_id == session.session_id
    assert start.csms_transaction_id is None  # not known before the CSMS answered
    await store.outbox_delivered(start.seq, (session.session_id, 42))
    assert await store.csms_transaction_id(session.session_id) == 42
    found = await store.session_by_csms_id(42)
    assert found is not None and found.session_id == session.session_id
    rest = await drain(store)
    assert [(r.action, r.csms_transaction_id) for r in rest] == [("MeterValues", 42), ("StopTransaction", 42)]


async def test_messages_without_a_session_know_no_transaction_id(store: Store) -> None:
    session = await store.begin_session(1, "CARD", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    start = await store.outbox_head()
    assert start is not None
    await store.outbox_delivered(start.seq, (session.session_id, 7))
    await store.enqueue([message("DataTransfer", 2)])
    row = await store.outbox_head()
    assert row is not None and row.session_id is None and row.csms_transaction_id is None


async def test_a_transaction_id_the_csms_hands_out_twice_belongs_to_the_newest_session(store: Store) -> None:
    first = await store.begin_session(1, "A", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    second = await store.begin_session(2, "B", 0, T0, messages=lambda sid: [message("StartTransaction", 2, sid)])
    rows = await drain_with_ids(store, {first.session_id: 5, second.session_id: 5})
    assert [r.session_id for r in rows] == [first.session_id, second.session_id]
    assert await store.csms_transaction_id(first.session_id) is None
    assert await store.csms_transaction_id(second.session_id) == 5


async def drain_with_ids(store: Store, ids: dict[str, int]) -> list[OutboxRow]:
    rows: list[OutboxRow] = []
    while (row := await store.outbox_head()) is not None:
        rows.append(row)
        assert row.session_id is not None
        await store.outbox_delivered(row.seq, (row.session_id, ids[row.session_id]))
    return rows


async def test_dropping_a_session_removes_its_messages_and_no_others(store: Store) -> None:
    refused = await store.begin_session(1, "A", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    other = await store.begin_session(2, "B", 0, T0, messages=lambda sid: [message("StartTransaction", 2, sid)])
    await store.record_meter(refused.session_id, 10, T0 + timedelta(seconds=1),
                             messages=[message("MeterValues", 3, refused.session_id)])
    await store.enqueue([message("StatusNotification", 4)])
    await store.end_session(refused.session_id, 20, T0 + timedelta(seconds=2), "Local",
                            messages=lambda record: [message("StopTransaction", 5, record.session_id)])
    assert await store.outbox_drop_session(refused.session_id) == 3
    rows = await drain(store)
    assert [(r.action, r.session_id) for r in rows] == [("StartTransaction", other.session_id),
                                                        ("StatusNotification", None)]
    assert await store.outbox_drop_session(refused.session_id) == 0


async def test_a_session_and_its_start_message_are_written_together(store: Store) -> None:
    """Either both exist or neither: a failing message builder leaves no session and no message behind."""

    def broken(_session_id: str) -> list[OutboxMessage]:
        raise RuntimeError("builder failed")

    with pytest.raises(RuntimeError):
        await store.begin_session(1, "CARD", 0, T0, messages=broken)
    assert await store.open_sessions() == []
    assert await store.outbox_len() == 0


# ----------------------------------------------------------------------------- the Outbox's refusals, on a real store


class _RefusingLink:
    """A link to a CSMS that answers every CALL with CALLERROR ``code``; it records what it was sent."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.sent: list[str] = []
        self.called = asyncio.Event()

    async def call_raw(self, action: str, payload: dict[str, Any], unique_id: str | None = None) -> dict[str, Any]:
        self.sent.append(action)
        self.called.set()
        raise CallFailed(self.code, f"{action} is not for me", {})

    async def close(self) -> None:
        pass


class _Connection:
    def __init__(self, link: Any) -> None:
        self.link = link
        self.registered = asyncio.Event()
        self.registered.set()


def outbox_on(store: Store, link: _RefusingLink, attempts: int = 3) -> Outbox:
    """The real Outbox on ``store``; only the link is simulated (charger, authorization and smart charging are
    reached on a confirmed StartTransaction only, which a refusing CSMS never gives)."""
    keys = OcppConfiguration(1, {"TransactionMessageAttempts": str(attempts), "TransactionMessageRetryInterval": "60"})
    unused: Any = None
    return Outbox(keys, store, cast(CsmsConnection, _Connection(link)), unused, unused, unused)


async def deliver_head(outbox: Outbox) -> None:
    row = await outbox.store.outbox_head()
    assert row is not None
    await outbox._deliver(row)


async def test_a_refused_security_event_is_dropped_at_once_and_never_holds_up_a_transaction(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await store.enqueue([OutboxMessage("SecurityEventNotification", {"type": "StartupOfTheDevice",
                                                                     "timestamp": "2024-05-01T12:00:00Z"})])
    session = await store.begin_session(1, "CARD", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    link = _RefusingLink("NotImplemented")
    outbox = outbox_on(store, link)
    with caplog.at_level(logging.WARNING, logger="chargepoint.ocpp.v16.outbox"):
        await deliver_head(outbox)
    assert link.sent == ["SecurityEventNotification"]
    head = await store.outbox_head()  # gone after one refusal; the StartTransaction is next, with no wait
    assert head is not None and (head.action, head.session_id, head.attempts) == ("StartTransaction",
                                                                                  session.session_id, 0)
    assert await store.outbox_len() == 1
    assert ("the CSMS refused SecurityEventNotification StartupOfTheDevice (NotImplemented: SecurityEventNotification "
            "is not for me): not sent again") in [r.getMessage() for r in caplog.records]


async def test_a_refused_transaction_message_waits_for_its_retry(store: Store) -> None:
    await store.begin_session(1, "CARD", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    outbox = outbox_on(store, _RefusingLink("InternalError"), attempts=3)
    before = time.time()
    await deliver_head(outbox)
    head = await store.outbox_head()
    assert head is not None and head.action == "StartTransaction" and head.attempts == 1
    assert before + 60 <= head.not_before <= time.time() + 60  # TransactionMessageRetryInterval x 1


async def test_a_start_refused_for_the_last_time_takes_its_sessions_messages_out_at_once(store: Store) -> None:
    refused = await store.begin_session(1, "A", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    await store.record_meter(refused.session_id, 10, T0 + timedelta(seconds=1),
                             messages=[message("MeterValues", 2, refused.session_id)])
    await store.enqueue([message("StatusNotification", 3)])
    await store.end_session(refused.session_id, 20, T0 + timedelta(seconds=2), "Local",
                            messages=lambda record: [message("StopTransaction", 4, record.session_id)])
    link = _RefusingLink("InternalError")
    outbox = outbox_on(store, link, attempts=1)
    await deliver_head(outbox)
    assert link.sent == ["StartTransaction"]
    # Its MeterValues and StopTransaction went with it, in the same step; the message of no session stays.
    assert [(r.action, r.session_id) for r in await drain(store)] == [("StatusNotification", None)]


async def test_each_refusal_is_logged_with_the_csms_reason_the_attempt_and_the_wait(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """A technician reading the journal sees what was refused, why, how often, and when it goes again."""
    await store.begin_session(1, "CARD", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    outbox = outbox_on(store, _RefusingLink("InternalError"), attempts=2)
    with caplog.at_level(logging.WARNING, logger="chargepoint.ocpp.v16.outbox"):
        await deliver_head(outbox)
        head = await store.outbox_head()
        assert head is not None
        await outbox._deliver(head)
    assert [r.getMessage() for r in caplog.records] == [
        "StartTransaction refused (InternalError: StartTransaction is not for me); attempt 1 of 2 again in 60 s",
        "StartTransaction refused 2 times (InternalError: StartTransaction is not for me): dropped",
    ]
    assert await store.outbox_head() is None


async def test_messages_of_a_session_the_csms_never_confirmed_are_dropped_unsent_with_the_reason(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """A session keeps charging after its StartTransaction was refused for good; what it queues later names no
    transaction the CSMS knows, so it is dropped instead of sent, and the journal says so."""
    refused = await store.begin_session(1, "A", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    link = _RefusingLink("InternalError")
    outbox = outbox_on(store, link, attempts=1)
    await deliver_head(outbox)
    await store.record_meter(refused.session_id, 10, T0 + timedelta(seconds=1),
                             messages=[message("MeterValues", 2, refused.session_id)])
    await store.enqueue([OutboxMessage("DataTransfer", {"vendorId": "x", "data": "{}"}, refused.session_id)])
    await store.end_session(refused.session_id, 20, T0 + timedelta(seconds=2), "Local",
                            messages=lambda record: [message("StopTransaction", 4, record.session_id)])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="chargepoint.ocpp.v16.outbox"):
        for _ in range(3):
            await deliver_head(outbox)
    assert link.sent == ["StartTransaction"]  # none of the three went to the CSMS
    assert await store.outbox_head() is None
    sid = refused.session_id
    assert [r.getMessage() for r in caplog.records] == [
        f"dropping MeterValues of session {sid}: the CSMS never confirmed its start",
        f"dropping DataTransfer of session {sid}: the CSMS never confirmed its start",
        f"dropping StopTransaction of session {sid}: the CSMS never confirmed its start",
    ]


async def test_a_transaction_message_refused_for_good_goes_alone_and_its_session_stays(store: Store) -> None:
    """Only a StartTransaction refused for good takes its session's other messages with it: a MeterValues the
    CSMS keeps refusing is dropped by itself, and the session's StopTransaction still goes."""
    session = await store.begin_session(1, "A", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    start = await store.outbox_head()
    assert start is not None
    await store.outbox_delivered(start.seq, (session.session_id, 7))  # the CSMS confirmed the start
    await store.record_meter(session.session_id, 10, T0 + timedelta(seconds=1),
                             messages=[message("MeterValues", 2, session.session_id)])
    await store.end_session(session.session_id, 20, T0 + timedelta(seconds=2), "Local",
                            messages=lambda record: [message("StopTransaction", 3, record.session_id)])
    link = _RefusingLink("InternalError")
    await deliver_head(outbox_on(store, link, attempts=1))
    assert link.sent == ["MeterValues"]
    assert [(r.action, r.session_id) for r in await drain(store)] == [("StopTransaction", session.session_id)]


async def test_an_idle_outbox_sleeps_until_a_message_is_queued_then_sends_it(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    link = _RefusingLink("InternalError")
    outbox = outbox_on(store, link)
    reads = 0
    real_head = store.outbox_head

    async def counted_head() -> OutboxRow | None:
        nonlocal reads
        reads += 1
        return await real_head()

    monkeypatch.setattr(store, "outbox_head", counted_head)
    task = asyncio.create_task(outbox.run())
    try:
        await asyncio.sleep(0.3)
        assert reads <= 2  # an empty outbox waits to be woken; it does not poll the store
        assert outbox.drained.is_set()
        await outbox.enqueue([OutboxMessage("StatusNotification", {"connectorId": 1})])
        async with asyncio.timeout(2):
            await link.called.wait()
        assert link.sent == ["StatusNotification"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _AnsweringLink:
    """A CSMS that accepts every CALL with the given answers."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def call_raw(self, action: str, payload: dict[str, Any], unique_id: str | None = None) -> dict[str, Any]:
        self.sent.append((action, payload))
        return self.answers.get(action, {})

    async def close(self) -> None:
        pass


class _Charger:
    def __init__(self) -> None:
        self.connectors: dict[int, Any] = {}
        self.confirmed: list[tuple[int, str, int]] = []

    def transaction_confirmed(self, connector_id: int, session_id: str, transaction_id: int) -> None:
        self.confirmed.append((connector_id, session_id, transaction_id))


class _SmartCharging:
    """Records what smart charging is told: a remote start's TxProfile is installed for exactly that transaction."""

    def __init__(self) -> None:
        self.started: list[tuple[int, int, str]] = []

    async def transaction_started(self, connector_id: int, transaction_id: int, id_tag: str) -> None:
        self.started.append((connector_id, transaction_id, id_tag))


async def test_the_idtag_info_of_a_start_answer_lands_in_the_authorization_cache(store: Store) -> None:
    """StartTransaction.conf carries the card's idTagInfo: the next time the charger is offline it knows the card."""
    session = await store.begin_session(
        1, "CARD", 0, T0,
        messages=lambda sid: [OutboxMessage("StartTransaction", {"connectorId": 1, "idTag": "CARD", "meterStart": 0,
                                                                 "timestamp": "2024-05-01T12:00:00Z"}, sid)])
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    link = _AnsweringLink({"StartTransaction": {"transactionId": 42, "idTagInfo": {
        "status": "Accepted", "expiryDate": expiry.isoformat(), "parentIdTag": "FLEET"}}})
    keys = OcppConfiguration(1)
    connection = cast(CsmsConnection, _Connection(link))
    authorization = OcppAuthorization(keys, store, connection)
    charger = _Charger()
    smart = _SmartCharging()
    outbox = Outbox(keys, store, connection, cast(ChargerPort, charger), authorization, cast(SmartCharging, smart))
    await deliver_head(outbox)
    assert [action for action, _ in link.sent] == ["StartTransaction"]
    assert charger.confirmed == [(1, session.session_id, 42)]
    assert smart.started == [(1, 42, "CARD")]
    assert await store.csms_transaction_id(session.session_id) == 42
    assert await store.auth_cache_all() == [IdTagEntry("CARD", "Accepted", expiry, "FLEET")]


class _SilentLink:
    """A link whose CALL is never answered: the CALL times out (or the link drops with ``error``)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.sent: list[str] = []
        self.closed = False

    async def call_raw(self, action: str, payload: dict[str, Any], unique_id: str | None = None) -> dict[str, Any]:
        self.sent.append(action)
        raise self.error

    async def close(self) -> None:
        self.closed = True


async def test_a_message_whose_answer_never_came_stays_unchanged_and_the_link_is_dropped(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await store.begin_session(1, "CARD", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    before = await store.outbox_head()
    link = _SilentLink(TimeoutError("no answer within 30 s"))
    unused: Any = None
    outbox = Outbox(OcppConfiguration(1), store, cast(CsmsConnection, _Connection(link)), unused, unused, unused)
    with caplog.at_level(logging.WARNING, logger="chargepoint.ocpp.v16.outbox"):
        await deliver_head(outbox)
    assert link.sent == ["StartTransaction"] and link.closed  # this link can no longer be trusted
    assert await store.outbox_head() == before  # not delivered, not counted as a refusal: sent again as it is
    assert "StartTransaction not answered (no answer within 30 s); will resend" in [
        r.getMessage() for r in caplog.records]


async def test_an_answer_that_never_came_is_logged_by_the_errors_name_when_it_has_no_text(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await store.begin_session(1, "CARD", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    unused: Any = None
    outbox = Outbox(OcppConfiguration(1), store, cast(CsmsConnection, _Connection(_SilentLink(TimeoutError()))),
                    unused, unused, unused)
    with caplog.at_level(logging.WARNING, logger="chargepoint.ocpp.v16.outbox"):
        await deliver_head(outbox)
    assert "StartTransaction not answered (TimeoutError); will resend" in [r.getMessage() for r in caplog.records]


async def test_a_stop_transaction_answer_without_id_tag_info_is_delivered_and_caches_nothing(store: Store) -> None:
    """StopTransaction.conf's idTagInfo is optional: an answer without it is a plain delivery."""
    session = await store.begin_session(1, "CARD", 0, T0, messages=lambda sid: [message("StartTransaction", 1, sid)])
    start = await store.outbox_head()
    assert start is not None
    await store.outbox_delivered(start.seq, (session.session_id, 9))
    await store.end_session(session.session_id, 10, T0 + timedelta(minutes=1), "Local",
                            messages=lambda record: [OutboxMessage("StopTransaction", {"idTag": "CARD"},
                                                                   record.session_id)])
    link = _AnsweringLink({"StopTransaction": {}})
    keys = OcppConfiguration(1)
    connection = cast(CsmsConnection, _Connection(link))
    outbox = Outbox(keys, store, connection, cast(ChargerPort, _Charger()), OcppAuthorization(keys, store, connection),
                    cast(SmartCharging, _SmartCharging()))
    await deliver_head(outbox)
    assert [action for action, _ in link.sent] == ["StopTransaction"]
    assert await store.outbox_head() is None
    assert await store.auth_cache_all() == []
