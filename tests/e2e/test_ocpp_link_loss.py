"""Durability at the moment of sending: the link drops, or the answer is lost, before the CSMS confirmed a
transaction message. The charger must keep the message and send it again once it is back, so that the CSMS ends
up with every transaction message exactly once and in order (issue 13 point 11).

OCPP 1.6 has no idempotency key, so when the link drops after the CSMS handled a message the charger cannot tell
whether it arrived: it sends the very same message again. As in ``test_ocpp_durability.py``, such a resend counts
as a retransmission, not a duplicate, when it is byte-identical in payload to the earlier send and nothing else
was sent between the two; the test CSMS answers a retransmitted StartTransaction with the transaction it already
opened. A message lost on its way must arrive exactly once.

These tests hold whether a dropped link fails the CALL in flight at once or only at its answer timeout: the
answer timeout is shortened here so that either takes a second or two.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chargepoint.ocpp.v16.connection as ocpp_connection
from simulators.csms import CallErrorReply, DropCall, Frame, TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.e2e.test_ocpp_offline import go_offline
from tests.integration.harness import Charger, running_charger

CARD = "04A1B2C3"
TRANSACTION_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")

pytestmark = pytest.mark.timeout(45)


@pytest.fixture(autouse=True)
def short_call_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A lost answer is noticed after 2 s instead of 30 s (the charger's CALL timeout)."""
    monkeypatch.setattr(ocpp_connection, "CALL_TIMEOUT_S", 2.0, raising=False)
    yield


def transaction_calls(csms: TestCsms) -> list[Frame]:
    return [f for f in csms.frames if f.direction == "in" and f.message_type == "CALL"
            and f.action in TRANSACTION_ACTIONS]


def without_retransmissions(frames: list[Frame]) -> list[Frame]:
    """Each identical resend right after the same message (nothing between the two) counted once."""
    kept: list[Frame] = []
    for frame in frames:
        if kept and kept[-1].action == frame.action and kept[-1].payload == frame.payload:
            continue
        kept.append(frame)
    return kept


def ever_queued(charger: Charger) -> int:
    """How many transaction messages the outbox was ever given (its AUTOINCREMENT counter, less the security event
    notifications queued through it), read from the SQLite file."""
    conn = sqlite3.connect(charger.store.path)
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        security = int(conn.execute("SELECT count(*) FROM security_log WHERE queued = 1").fetchone()[0])
    finally:
        conn.close()
    return 0 if row is None else int(row[0]) - security


async def drained(charger: Charger) -> None:
    for _ in range(200):  # the answer to the last message may still be in processing
        if await charger.store.outbox_len() == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox did not drain")


async def one_session(charger: Charger, csms: TestCsms, charging_s: float = 0.0) -> Frame:
    """Charge with a card, stop by unplugging; the CSMS's StopTransaction frame."""
    await charger.charge(card=CARD)
    if charging_s:
        await asyncio.sleep(charging_s)
    charger.sim().apply("unplug")
    await charger.wait_status("Available")
    stop = await csms.wait_for_call("StopTransaction", timeout_s=15)
    await drained(charger)
    return stop


def assert_exactly_once_in_order(charger: Charger, csms: TestCsms) -> list[Frame]:
    """Every message the outbox was given reached the CSMS once (identical retransmissions aside), in order: one
    StartTransaction, its MeterValues in timestamp order, one StopTransaction, all with the CSMS's one id."""
    sent = without_retransmissions(transaction_calls(csms))
    actions = [f.action for f in sent]
    assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction", actions
    assert set(actions[1:-1]) <= {"MeterValues"}, actions
    assert len(sent) == ever_queued(charger), (actions, ever_queued(charger))
    assert len(csms.transaction_ids) == 1, csms.transaction_ids
    (transaction_id,) = csms.transaction_ids
    assert all(f.payload is not None and f.payload["transactionId"] == transaction_id for f in sent[1:])
    stamps = [f.payload["meterValue"][0]["timestamp"] for f in sent[1:-1] if f.payload is not None]
    assert stamps == sorted(stamps)
    return sent


async def test_a_start_transaction_lost_with_the_link_is_sent_again_and_arrives_once(tmp_path: Path,
                                                                                    csms: TestCsms) -> None:
    csms.cut_link_on("StartTransaction", before="receipt")
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 0})
    async with running_charger(config) as charger:
        await registered(charger)
        boots = len(csms.calls("BootNotification"))
        await one_session(charger, csms)
        assert len(csms.calls("StartTransaction")) == 1  # the first never reached the CSMS
        assert len(csms.calls("BootNotification")) == boots  # a reconnect, not a reboot
        assert_exactly_once_in_order(charger, csms)
        assert csms.retransmitted_starts == 0


async def test_a_start_transaction_whose_answer_is_lost_with_the_link_is_retransmitted_unchanged(
    tmp_path: Path, csms: TestCsms
) -> None:
    csms.cut_link_on("StartTransaction", before="answer")
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 0})
    async with running_charger(config) as charger:
        await registered(charger)
        stop = await one_session(charger, csms)
        starts = csms.calls("StartTransaction")
        assert len(starts) == 2 and starts[0].payload == starts[1].payload  # the CSMS had it: same message again
        assert starts[0].unique_id != starts[1].unique_id
        assert csms.retransmitted_starts == 1
        assert_exactly_once_in_order(charger, csms)
        assert stop.payload is not None and stop.payload["transactionId"] == next(iter(csms.transaction_ids))
        session = (await charger.store.recent_sessions(1))[0]
        assert await charger.store.csms_transaction_id(session.session_id) == stop.payload["transactionId"]


@pytest.mark.parametrize("before", ["receipt", "answer"])
async def test_meter_values_and_stop_survive_a_link_drop_each(tmp_path: Path, csms: TestCsms, before: Any) -> None:
    csms.cut_link_on("MeterValues", before=before)
    csms.cut_link_on("StopTransaction", before=before)
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 1})
    async with running_charger(config) as charger:
        await registered(charger)
        await one_session(charger, csms, charging_s=1.5)
        sent = assert_exactly_once_in_order(charger, csms)
        assert any(f.action == "MeterValues" for f in sent)
        all_calls = transaction_calls(csms)
        stops = [f for f in all_calls if f.action == "StopTransaction"]
        # Lost on its way: arrives once. Answer lost: the CSMS sees the same StopTransaction twice in a row.
        assert len(stops) == (1 if before == "receipt" else 2)
        assert all(f.payload == stops[0].payload for f in stops)
        assert all_calls[-len(stops):] == stops  # nothing overtook it, nothing came between the two


async def test_an_answer_lost_on_a_live_link_is_waited_for_then_the_message_is_sent_again(
    tmp_path: Path, csms: TestCsms
) -> None:
    lost: list[str] = []

    def lose_first_answer(_cp: str, payload: dict[str, Any]) -> dict[str, Any]:
        if not lost:
            lost.append("StopTransaction")
            raise DropCall
        return {"idTagInfo": {"status": "Accepted"}}

    csms.set_handler("StopTransaction", lose_first_answer)
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 0})
    async with running_charger(config) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        await charger.wait_for(lambda: len(csms.calls("StopTransaction")) == 2, timeout_s=15, what="the resend")
        await drained(charger)
        stops = csms.calls("StopTransaction")
        assert stops[0].payload == stops[1].payload
        assert_exactly_once_in_order(charger, csms)


async def test_a_refused_message_is_tried_exactly_transaction_message_attempts_times_and_nothing_overtakes_it(
    tmp_path: Path, csms: TestCsms
) -> None:
    """TransactionMessageAttempts = 3: the refused MeterValues goes out three times, TransactionMessageRetryInterval
    x attempt apart (1 s, then 2 s), then is dropped; the StopTransaction behind it waits for all three."""
    refused: list[dict[str, Any]] = []

    def refuse_the_first(_cp: str, payload: dict[str, Any]) -> dict[str, Any]:
        if not refused or payload == refused[0]:
            refused.append(payload)
            raise CallErrorReply("InternalError", "try again later")
        return {}

    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 1})
    async with running_charger(config) as charger:
        await registered(charger)
        for key, value in (("TransactionMessageAttempts", "3"), ("TransactionMessageRetryInterval", "1")):
            assert await csms.call(CP_ID, "ChangeConfiguration", {"key": key, "value": value}) == \
                {"status": "Accepted"}
        csms.set_handler("MeterValues", refuse_the_first)
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: len(refused) == 3, timeout_s=10, what="three tries")
        await asyncio.sleep(1.5)  # time enough for a fourth try, which must not come
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        await csms.wait_for_call("StopTransaction", timeout_s=15)
        await drained(charger)
        assert len(refused) == 3
        calls = transaction_calls(csms)
        tries = [i for i, f in enumerate(calls) if f.action == "MeterValues" and f.payload == refused[0]]
        assert tries == [1, 2, 3], [f.describe() for f in calls]  # right after the start, nothing in between
        assert [f.action for f in calls[4:]][-1] == "StopTransaction"
        assert len(calls) > 5 and {f.action for f in calls[4:-1]} == {"MeterValues"}  # sampled while it waited
        gaps_s = [(calls[b].at - calls[a].at).total_seconds() for a, b in itertools.pairwise(tries)]
        assert 0.9 <= gaps_s[0] < 1.9 and 1.9 <= gaps_s[1] < 2.9, gaps_s


async def test_a_start_transaction_refused_for_good_takes_its_sessions_messages_with_it(
    tmp_path: Path, csms: TestCsms
) -> None:
    starts: list[dict[str, Any]] = []

    def refuse(_cp: str, payload: dict[str, Any]) -> dict[str, Any]:
        starts.append(payload)
        raise CallErrorReply("InternalError", "down for maintenance")

    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 0})
    async with running_charger(config) as charger:
        await registered(charger)
        for key, value in (("TransactionMessageAttempts", "2"), ("TransactionMessageRetryInterval", "1")):
            await csms.call(CP_ID, "ChangeConfiguration", {"key": key, "value": value})
        csms.set_handler("StartTransaction", refuse)
        await charger.charge(card=CARD)
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        await drained(charger)
        assert len(starts) == 2
        assert [f.action for f in transaction_calls(csms)] == ["StartTransaction", "StartTransaction"]


async def test_the_idtag_info_of_start_and_stop_answers_lands_in_the_authorization_cache(
    tmp_path: Path, csms: TestCsms
) -> None:
    """StartTransaction.conf and StopTransaction.conf carry the card's idTagInfo: the outbox hands it to the cache,
    so the card's status is known the next time the charger is offline."""
    config = ocpp_config(tmp_path, csms, ocpp={"meter_value_sample_interval_s": 0})
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "AllowOfflineTxForUnknownId", "value": "true"})
        await go_offline(charger, csms)
        await one_session_offline(charger)  # an unknown card, let through offline: only its start answer names it
        csms.accepting = True
        await csms.wait_for_call("StopTransaction", timeout_s=15)
        await drained(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "AllowOfflineTxForUnknownId", "value": "false"})
        csms.set_handler("StopTransaction", lambda _cp, _p: {"idTagInfo": {"status": "Blocked"}})
        await go_offline(charger, csms)
        await one_session_offline(charger)  # known from StartTransaction.conf (Accepted)
        mark = len(csms.frames)
        csms.accepting = True
        await csms.wait_for_call("StopTransaction", after=mark, timeout_s=15)
        await drained(charger)
        await go_offline(charger, csms)
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        charger.sim().apply("tap", CARD)  # Blocked, as the last StopTransaction.conf said
        await asyncio.sleep(0.3)
        assert charger.status()["session"] is None


async def one_session_offline(charger: Charger) -> None:
    await charger.charge(card=CARD)
    charger.sim().apply("unplug")
    await charger.wait_status("Available")
