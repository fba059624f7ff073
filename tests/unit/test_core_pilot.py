"""Control pilot layer: level classification with hysteresis, duty cycle <-> current (IEC 61851-1 A.8)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargepoint.core.pilot import (
    HYSTERESIS_V,
    MAX_CURRENT_A,
    MIN_CURRENT_A,
    PilotState,
    classify,
    current_from_duty,
    duty_from_current,
)
from hal.protocols import PilotOutput, PilotReading

P = PilotState
HIGH, PWM, NEGATIVE = PilotOutput.HIGH, PilotOutput.PWM, PilotOutput.NEGATIVE
NOMINAL_V = {P.A: 12.0, P.B: 9.0, P.C: 6.0, P.D: 3.0, P.E: 0.0}


def _reading(high_V: float, low_V: float) -> PilotReading:
    return PilotReading(high_V=high_V, low_V=low_V, measured_at_s=1.0)


def _with(output: PilotOutput, high_V: float) -> PilotReading:
    """The reading an intact EV gives: DC output has low == high; PWM has the diode-blocked -12 V."""
    return _reading(high_V, high_V if output is HIGH else -12.0)


# ----------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("output", "high_V", "low_V", "expected"),
    [
        # X1: constant +12 V, the line sits at one level.
        (HIGH, 12.0, 12.0, P.A),
        (HIGH, 9.0, 9.0, P.B),
        (HIGH, 6.0, 6.0, P.C),
        (HIGH, 3.0, 3.0, P.D),
        (HIGH, 0.0, 0.0, P.E),
        (HIGH, -12.0, -12.0, P.F),
        # X2: PWM, the EV's diode keeps the negative half at -12 V.
        (PWM, 12.0, -12.0, P.A),
        (PWM, 9.0, -12.0, P.B),
        (PWM, 6.0, -12.0, P.C),
        (PWM, 3.0, -12.0, P.D),
        (PWM, 0.0, -12.0, P.E),
        (PWM, -12.0, -12.0, P.F),
        # We drive -12 V ourselves: whatever the line shows is F, never an EV state.
        (NEGATIVE, -12.0, -12.0, P.F),
        (NEGATIVE, 9.0, -12.0, P.F),
        (NEGATIVE, 6.0, 6.0, P.F),
        # Between E and F: not -12 V yet, so a short (E).
        (HIGH, -5.0, -5.0, P.E),
        (HIGH, -10.0, -10.0, P.F),
    ],
)
def test_classify_nominal_levels(output: PilotOutput, high_V: float, low_V: float, expected: PilotState) -> None:
    assert classify(_reading(high_V, low_V), output) is expected


@pytest.mark.parametrize(
    ("output", "high_V", "low_V", "expected"),
    [
        # Missing diode: the negative half follows the positive level while PWM runs.
        (PWM, 9.0, 9.0, P.DIODE_FAILURE),
        (PWM, 6.0, 6.0, P.DIODE_FAILURE),
        (PWM, 3.0, 3.0, P.DIODE_FAILURE),
        (PWM, 9.0, -10.4, P.DIODE_FAILURE),  # just above the -10.5 V limit
        (PWM, 9.0, -10.5, P.B),  # at the limit: fine
        # Only with PWM: at DC there is no negative half to check.
        (HIGH, 9.0, 9.0, P.B),
        (HIGH, 6.0, 0.0, P.C),
        # Only with a plugged state: nothing to check without an EV, and E/F are faults already.
        (PWM, 12.0, 12.0, P.A),
        (PWM, 0.0, 0.0, P.E),
        (NEGATIVE, 9.0, 9.0, P.F),
    ],
)
def test_classify_diode_failure_only_with_pwm_and_a_plugged_state(
    output: PilotOutput, high_V: float, low_V: float, expected: PilotState
) -> None:
    assert classify(_reading(high_V, low_V), output) is expected


@pytest.mark.parametrize(
    ("previous", "high_V", "expected"),
    [
        # Boundary A/B at 10.5 V.
        (None, 10.3, P.B),
        (P.A, 10.3, P.A),  # inside the band margin below A: keeps A
        (P.A, 10.5 - HYSTERESIS_V + 0.05, P.A),
        (P.A, 10.5 - HYSTERESIS_V - 0.05, P.B),  # outside the margin: moves
        (None, 10.7, P.A),
        (P.B, 10.7, P.B),
        (P.B, 10.5 + HYSTERESIS_V - 0.05, P.B),
        (P.B, 10.5 + HYSTERESIS_V + 0.05, P.A),
        # Boundary B/C at 7.5 V.
        (P.B, 7.3, P.B),
        (P.B, 7.0, P.C),
        (P.C, 7.7, P.C),
        (P.C, 8.0, P.B),
        # Boundary C/D at 4.5 V.
        (P.C, 4.3, P.C),
        (P.C, 4.0, P.D),
        (P.D, 4.7, P.D),
        (P.D, 5.0, P.C),
        # Boundary D/E at 1.5 V.
        (P.D, 1.3, P.D),
        (P.D, 1.0, P.E),
        (P.E, 1.7, P.E),
        (P.E, 2.0, P.D),
        # Fault states have no band: no hysteresis out of them.
        (P.DIODE_FAILURE, 9.0, P.B),
        (P.F, 9.0, P.B),
        # Far away from the previous band: no stickiness at all.
        (P.A, 6.0, P.C),
        (P.C, 12.0, P.A),
    ],
)
def test_classify_hysteresis(previous: PilotState | None, high_V: float, expected: PilotState) -> None:
    for output in (HIGH, PWM):
        assert classify(_with(output, high_V), output, previous) is expected, output


def test_hysteresis_does_not_hide_a_missing_diode() -> None:
    # Kept in B by hysteresis, the diode check still runs.
    assert classify(_reading(10.7, 10.7), PWM, P.B) is P.DIODE_FAILURE
    # Kept in A by hysteresis: no EV, no diode to check.
    assert classify(_reading(10.3, 10.3), PWM, P.A) is P.A


@pytest.mark.parametrize("output", list(PilotOutput))
@pytest.mark.parametrize(
    ("high_V", "low_V"), [(math.nan, -12.0), (9.0, math.nan), (math.nan, math.nan)]
)
@pytest.mark.parametrize("previous", [None, P.B, P.C])
def test_classify_nan_is_E(output: PilotOutput, high_V: float, low_V: float, previous: PilotState | None) -> None:
    assert classify(_reading(high_V, low_V), output, previous) is P.E


@settings(max_examples=200, deadline=None)
@given(
    state=st.sampled_from(list(NOMINAL_V)),
    offset_V=st.floats(min_value=-1.0, max_value=1.0),
    previous=st.sampled_from([None, *NOMINAL_V]),
    output=st.sampled_from([HIGH, PWM]),
)
def test_nominal_level_within_one_volt_classifies_right_whatever_came_before(
    state: PilotState, offset_V: float, previous: PilotState | None, output: PilotOutput
) -> None:
    # The usual +-1 V engineering band: hysteresis (0.4 V) must never pull such a level into a neighbour.
    assert classify(_with(output, NOMINAL_V[state] + offset_V), output, previous) is state


def test_state_properties() -> None:
    assert {s for s in PilotState if s.plugged} == {P.B, P.C, P.D}
    assert {s for s in PilotState if s.requests_energy} == {P.C, P.D}
    assert {s for s in PilotState if s.is_fault} == {P.E, P.F, P.DIODE_FAILURE}


# ----------------------------------------------------------------------------- duty <-> current


@pytest.mark.parametrize(
    ("current_A", "duty_percent"),
    [
        (6.0, 10.0),
        (10.0, 16.6),  # 16.7 % would advertise 10.02 A: rounded down
        (13.0, 21.6),
        (16.0, 26.6),
        (20.0, 33.3),
        (32.0, 53.3),
        (51.0, 85.0),
        (51.5, 85.0),  # 51-52.5 A has no duty cycle in the norm: round down to 51 A
        (52.0, 85.0),
        (52.5, 85.0),
        (63.0, 89.2),
        (80.0, 96.0),
        (100.0, 96.0),  # capped at 80 A
    ],
)
def test_duty_from_current(current_A: float, duty_percent: float) -> None:
    assert duty_from_current(current_A) == pytest.approx(duty_percent, abs=1e-9)


@pytest.mark.parametrize("current_A", [0.0, -1.0, 5.0, 5.99])
def test_duty_from_current_below_6A_is_none(current_A: float) -> None:
    assert duty_from_current(current_A) is None


@pytest.mark.parametrize(
    ("duty_percent", "current_A"),
    [
        (0.0, 0.0),
        (5.0, 0.0),  # digital communication: no current by PWM
        (7.9, 0.0),  # 7-8 %: error
        (8.0, 6.0),
        (9.0, 6.0),
        (9.99, 6.0),
        (10.0, 6.0),
        (26.7, 16.02),
        (50.0, 30.0),
        (53.3, 31.98),
        (85.0, 51.0),
        (86.0, 55.0),
        (89.2, 63.0),
        (96.0, 80.0),
        (96.5, 80.0),
        (97.0, 80.0),
        (97.1, 0.0),
        (100.0, 0.0),  # DC: X1
    ],
)
def test_current_from_duty(duty_percent: float, current_A: float) -> None:
    assert current_from_duty(duty_percent) == pytest.approx(current_A, abs=1e-9)


# The duty is rounded DOWN to 0.1 %, so the advertised current is never above the request (a 13 A cable must never
# see 21.7 % = 13.02 A); below it by at most 0.1 % of duty: 0.06 A up to 51 A, 0.25 A from 52.5 A; in the norm's
# gap (51-52.5 A) 51 A is advertised.
EPS_A = 1e-9
TOL_LOW_A = 0.1 * 0.6 + EPS_A
TOL_HIGH_A = 0.1 * 2.5 + EPS_A


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=MIN_CURRENT_A, max_value=MAX_CURRENT_A))
def test_round_trip_never_advertises_more_than_asked(current_A: float) -> None:
    duty = duty_from_current(current_A)
    assert duty is not None
    assert 10.0 <= duty <= 96.0
    advertised_A = current_from_duty(duty)
    assert advertised_A <= current_A + EPS_A
    if current_A <= 51.0:
        assert current_A - advertised_A <= TOL_LOW_A
    elif duty == 85.0:
        assert current_A < 52.75
        assert advertised_A == pytest.approx(51.0)
    else:
        assert current_A - advertised_A <= TOL_HIGH_A


@given(st.floats(min_value=MIN_CURRENT_A, max_value=MAX_CURRENT_A), st.floats(min_value=0.0, max_value=20.0))
def test_duty_from_current_is_monotonic(current_A: float, more_A: float) -> None:
    low, high = duty_from_current(current_A), duty_from_current(current_A + more_A)
    assert low is not None and high is not None
    assert low <= high


@given(st.floats(min_value=8.0, max_value=97.0), st.floats(min_value=0.0, max_value=10.0))
def test_current_from_duty_is_monotonic_over_the_valid_range(duty: float, more: float) -> None:
    assert current_from_duty(duty) <= current_from_duty(min(97.0, duty + more))
