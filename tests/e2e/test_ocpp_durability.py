"""Durability: the real daemon, charging on every connector, killed with SIGKILL at random moments and
restarted while the test CSMS goes down and comes back; no transaction message may be lost or duplicated.

The scenario lives in ``bench/ocpp.py`` (``durability``) so that ``python -m bench --durability`` runs the
same code at scale (10,000 messages, 50 kills). Knobs: ``CHARGEPOINT_DURABILITY_MESSAGES`` (default 300),
``CHARGEPOINT_DURABILITY_KILLS`` (default 8), ``CHARGEPOINT_DURABILITY_CONNECTORS`` (default 8) and
``CHARGEPOINT_DURABILITY_SEED`` (default random; the seed is printed and named in any failure).

What is checked at the CSMS after the final drain:
- every queued transaction message (the outbox's AUTOINCREMENT counter says how many were ever written)
  arrived, and exactly once, except identical retransmissions: a message sent again after a kill or a
  CSMS outage that cut its answer off, byte-identical to the earlier send, with no other message between
  the two (the charger cannot have moved on without deleting it);
- every transactionId referenced is one the CSMS assigned, every transaction is stopped exactly once,
  the meter values of each transaction arrive in timestamp order, and the outbox is empty.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.ocpp import DurabilityReport, Interruption, analyse, durability
from simulators.csms import Frame

MESSAGES = int(os.environ.get("CHARGEPOINT_DURABILITY_MESSAGES", "300"))
KILLS = int(os.environ.get("CHARGEPOINT_DURABILITY_KILLS", "8"))
CONNECTORS = int(os.environ.get("CHARGEPOINT_DURABILITY_CONNECTORS", "8"))
SEED = os.environ.get("CHARGEPOINT_DURABILITY_SEED")


@pytest.mark.timeout(120 + MESSAGES // 2 + KILLS * 10)
async def test_kill_9_and_csms_outages_lose_and_duplicate_no_transaction_message(tmp_path: Path) -> None:
    report = await durability(
        tmp_path,
        messages=MESSAGES,
        kills=KILLS,
        connectors=CONNECTORS,
        seed=None if SEED is None else int(SEED),
        say=lambda line: print(line, flush=True),
    )
    summary = "\n".join(report.lines())
    print(summary)
    log = (tmp_path / "daemon.log").read_text(errors="replace")
    assert report.ok, f"{summary}\n(rerun with CHARGEPOINT_DURABILITY_SEED={report.seed})\n--- daemon log tail:\n" \
        f"{log[-5000:]}"
    assert report.lost == 0 and report.duplicated == 0, summary
    assert report.kills == KILLS, summary
    assert report.enqueued >= MESSAGES, summary
    assert report.left_in_outbox == 0, summary
    assert report.transactions > KILLS, summary  # a session per connector per run, at least


# --- the accounting itself, on hand-made frame sequences ------------------------------------------------


def call(unique_id: str, action: str, payload: dict[str, Any]) -> Frame:
    raw = json.dumps([2, unique_id, action, payload], separators=(",", ":"))
    return Frame("in", "CP", "CALL", unique_id, action, payload, raw, datetime.now(UTC))


START = {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "2025-01-01T00:00:00.000Z"}


def meter(at: str, value: int = 1, transaction_id: int = 1) -> dict[str, Any]:
    return {"connectorId": 1, "transactionId": transaction_id, "meterValue": [
        {"timestamp": at, "sampledValue": [{"value": str(value), "context": "Sample.Periodic"}]}]}


STOP = {"transactionId": 1, "idTag": "A", "meterStop": 5, "timestamp": "2025-01-01T00:00:09.000Z", "reason": "Local"}


def accounted(frames: list[Frame], marks: list[int], enqueued: int) -> DurabilityReport:
    report = DurabilityReport(seed=0, enqueued=enqueued)
    analyse(frames, [Interruption("kill", m) for m in marks], {1: START}, report)
    return report


def test_an_identical_resend_after_a_kill_is_a_retransmission() -> None:
    frames = [call("a", "StartTransaction", START), call("b", "MeterValues", meter("2025-01-01T00:00:01.000Z")),
              call("c", "MeterValues", meter("2025-01-01T00:00:01.000Z")), call("d", "StopTransaction", STOP)]
    report = accounted(frames, marks=[2], enqueued=3)
    assert (report.delivered, report.retransmissions, report.duplicated, report.lost) == (3, 1, 0, 0)
    assert report.ok, report.problems


def test_a_resend_without_an_interruption_is_a_duplicate() -> None:
    frames = [call("a", "StartTransaction", START), call("b", "MeterValues", meter("2025-01-01T00:00:01.000Z")),
              call("c", "MeterValues", meter("2025-01-01T00:00:01.000Z")), call("d", "StopTransaction", STOP)]
    report = accounted(frames, marks=[], enqueued=3)
    assert report.duplicated == 1 and not report.ok


def test_a_resend_after_the_charger_moved_on_is_a_duplicate() -> None:
    frames = [call("a", "StartTransaction", START), call("b", "MeterValues", meter("2025-01-01T00:00:01.000Z")),
              call("c", "MeterValues", meter("2025-01-01T00:00:02.000Z")),
              call("d", "MeterValues", meter("2025-01-01T00:00:01.000Z")), call("e", "StopTransaction", STOP)]
    report = accounted(frames, marks=[3], enqueued=4)
    assert report.duplicated == 1 and not report.ok


def test_the_same_message_with_other_content_is_a_duplicate() -> None:
    frames = [call("a", "StartTransaction", START), call("b", "MeterValues", meter("2025-01-01T00:00:01.000Z", 1)),
              call("c", "MeterValues", meter("2025-01-01T00:00:01.000Z", 2)), call("d", "StopTransaction", STOP)]
    report = accounted(frames, marks=[2], enqueued=4)
    assert report.duplicated == 1 and not report.ok


def test_missing_messages_unknown_transactions_and_disorder_are_reported() -> None:
    frames = [call("a", "StartTransaction", START), call("b", "MeterValues", meter("2025-01-01T00:00:02.000Z")),
              call("c", "MeterValues", meter("2025-01-01T00:00:01.000Z")),
              call("d", "MeterValues", meter("2025-01-01T00:00:03.000Z", transaction_id=7))]
    report = accounted(frames, marks=[], enqueued=6)
    assert report.lost == 2
    problems = "\n".join(report.problems)
    assert "unknown transaction 7" in problems
    assert "transaction 1 stopped 0 times" in problems
    assert "out of timestamp order" in problems
