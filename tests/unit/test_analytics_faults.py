"""Fault periods paired from the fault log's raise, latch and clearance lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargepoint.analytics.faults import FaultLine, fault_periods

T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
M = timedelta(minutes=1)


def test_raises_pair_with_their_clearances_per_connector_and_code() -> None:
    lines = [FaultLine(T0, 1, "GroundFailure", "raised", "rcd"),
             FaultLine(T0 + M, 2, "GroundFailure", "raised", "rcd"),
             FaultLine(T0 + 2 * M, 1, "GroundFailure", "latched", "rcd"),
             FaultLine(T0 + 5 * M, 1, "GroundFailure", "cleared", "technician"),
             FaultLine(T0 + 6 * M, 1, "ContactorWelded", "raised", "contactor")]
    periods = fault_periods(lines)
    assert [(p.connector_id, p.code, p.start, p.end, p.latched, p.raised_by, p.cleared_by) for p in periods] == [
        (1, "GroundFailure", T0, T0 + 5 * M, True, "rcd", "technician"),
        (2, "GroundFailure", T0 + M, None, False, "rcd", None),
        (1, "ContactorWelded", T0 + 6 * M, None, False, "contactor", None),
    ]
    assert periods[0].duration_s(T0 + 60 * M) == 300 and periods[1].duration_s(T0 + 11 * M) == 600


def test_a_clearance_without_its_raise_is_left_out_and_a_repeated_raise_stays_one_period() -> None:
    lines = [FaultLine(T0, 1, "ContactorStuckOpen", "cleared", "x"),
             FaultLine(T0 + M, 1, "OverCurrentFailure", "raised", "a"),
             FaultLine(T0 + 2 * M, 1, "OverCurrentFailure", "raised", "b"),
             FaultLine(T0 + 3 * M, 1, "OverCurrentFailure", "cleared", "c")]
    assert [(p.code, p.start, p.end, p.raised_by) for p in fault_periods(lines)] == [
        ("OverCurrentFailure", T0 + M, T0 + 3 * M, "a")]
