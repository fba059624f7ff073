"""IEC 61851-1 control pilot layer: classify measured levels, convert duty cycle and current.

Pure functions only; the thresholds sit halfway between the nominal levels of annex A
(12/9/6/3/0 V) with a hysteresis band so that a level wobbling on a boundary does not flap.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class PilotOutput(enum.StrEnum):
    """What the EVSE drives onto the control pilot line."""

    HIGH = "high"  # constant +12 V (X1): no PWM, charging not allowed
    PWM = "pwm"  # 1 kHz +-12 V square wave (X2) with a duty cycle that advertises the current
    NEGATIVE = "negative"  # constant -12 V: state F, EVSE not available


@dataclass(frozen=True, slots=True)
class PilotReading:
    """Levels measured on the pilot line over the last PWM period.

    ``high_V`` is the positive plateau (12/9/6/3/0 V for states A/B/C/D/E), ``low_V`` the negative
    one (-12 V while the EV's diode blocks it; close to the high level when the diode is missing or
    shorted). ``measured_at_s`` is on the monotonic clock.
    """

    high_V: float
    low_V: float
    measured_at_s: float
    # What the EVSE drove while the levels were taken (None: the sampler cannot say; the output at classification
    # time is assumed). A sample taken just before a switch to PWM must not be judged as a PWM sample: it would read
    # as a missing diode.
    output: PilotOutput | None = None


class PilotState(enum.StrEnum):
    A = "A"  # no EV
    B = "B"  # EV connected, not requesting
    C = "C"  # EV requests energy
    D = "D"  # EV requests energy, ventilation needed
    E = "E"  # short circuit CP-PE or EVSE not powered
    F = "F"  # -12 V seen on the positive half: EVSE not available or pilot fault
    DIODE_FAILURE = "DiodeFailure"  # negative half does not reach -12 V while PWM runs

    @property
    def plugged(self) -> bool:
        return self in (PilotState.B, PilotState.C, PilotState.D)

    @property
    def requests_energy(self) -> bool:
        return self in (PilotState.C, PilotState.D)

    @property
    def is_fault(self) -> bool:
        return self in (PilotState.E, PilotState.F, PilotState.DIODE_FAILURE)


# Lower bound of each state's band, from highest to lowest level.
_LOWER_BOUND_V: tuple[tuple[PilotState, float], ...] = (
    (PilotState.A, 10.5),
    (PilotState.B, 7.5),
    (PilotState.C, 4.5),
    (PilotState.D, 1.5),
    (PilotState.E, -1.5),
)
HYSTERESIS_V = 0.4
# With PWM on, the EV's diode blocks the negative half: anything above this means the diode is missing.
DIODE_OK_MAX_LOW_V = -10.5
NEGATIVE_MAX_V = -10.0


def _band(high_V: float) -> PilotState:
    for state, bound_V in _LOWER_BOUND_V:
        if high_V >= bound_V:
            return state
    if high_V <= NEGATIVE_MAX_V:
        return PilotState.F
    return PilotState.E


def classify(reading: PilotReading, output: PilotOutput, previous: PilotState | None = None) -> PilotState:
    """The pilot state implied by ``reading`` while the EVSE drives ``output``.

    ``previous`` enables hysteresis: a level inside the hysteresis band around a boundary of the
    previous state keeps that state.
    """
    if math.isnan(reading.high_V) or math.isnan(reading.low_V):
        return PilotState.E
    if output is PilotOutput.NEGATIVE:
        # We drive -12 V ourselves: the line tells nothing about the EV.
        return PilotState.F
    state = _band(reading.high_V)
    if previous is not None and previous != state and previous in _BAND_LIMITS:
        low_V, high_V = _BAND_LIMITS[previous]
        if low_V - HYSTERESIS_V <= reading.high_V < high_V + HYSTERESIS_V:
            state = previous
    if output is PilotOutput.PWM and state.plugged and reading.low_V > DIODE_OK_MAX_LOW_V:
        return PilotState.DIODE_FAILURE
    return state


def _band_limits() -> dict[PilotState, tuple[float, float]]:
    limits: dict[PilotState, tuple[float, float]] = {}
    upper_V = math.inf
    for state, bound_V in _LOWER_BOUND_V:
        limits[state] = (bound_V, upper_V)
        upper_V = bound_V
    return limits


_BAND_LIMITS = _band_limits()

MIN_CURRENT_A = 6.0
MAX_CURRENT_A = 80.0


def duty_from_current(current_A: float) -> float | None:
    """Duty cycle in percent that advertises ``current_A`` (IEC 61851-1 table A.8).

    Returns None below 6 A: no PWM can advertise less, the EVSE must pause instead (X1). Never advertises more than
    ``current_A``: the duty is rounded down to 0.1 %.
    The 51-52.5 A gap of the norm is closed by rounding down to 51 A.
    """
    if current_A < MIN_CURRENT_A:
        return None
    if current_A <= 51.0:
        return _floor_tenth(current_A / 0.6)
    if current_A < 52.5:
        return 85.0
    current_A = min(current_A, MAX_CURRENT_A)
    return _floor_tenth(current_A / 2.5 + 64.0)


def _floor_tenth(duty_percent: float) -> float:
    """Down to 0.1 %: rounding up would advertise more than the limit (13 A is 21.6 %, not 21.7 % = 13.02 A). The
    epsilon absorbs binary noise such as 6 / 0.6 = 10.000000000000002."""
    return math.floor(duty_percent * 10.0 + 1e-6) / 10.0


def current_from_duty(duty_percent: float) -> float:
    """Current in amperes an EV may draw when it sees ``duty_percent`` (0 = not allowed to charge)."""
    if 8.0 <= duty_percent < 10.0:
        return 6.0
    if 10.0 <= duty_percent <= 85.0:
        return duty_percent * 0.6
    if 85.0 < duty_percent <= 96.0:
        return (duty_percent - 64.0) * 2.5
    if 96.0 < duty_percent <= 97.0:
        return 80.0
    return 0.0


# Proximity pilot (IEC 61851-1 annex B, IEC 62196-2): the cable's PP resistor codes its rating. Bands between the
# nominal values (1.5 kOhm 13 A, 680 Ohm 20 A, 220 Ohm 32 A, 100 Ohm 63 A), as other EVSEs decide them.
_PP_BANDS_OHM: tuple[tuple[float, float, float], ...] = (
    (75.0, 150.0, 63.0),
    (150.0, 330.0, 32.0),
    (330.0, 1000.0, 20.0),
    (1000.0, 2200.0, 13.0),
)


def cable_rating_from_resistance(resistance_ohm: float) -> float | None:
    """The current rating a PP resistance codes; None for an open PP (no cable) or a value in no band."""
    if math.isnan(resistance_ohm):
        return None
    for low_ohm, high_ohm, rating_A in _PP_BANDS_OHM:
        if low_ohm <= resistance_ohm < high_ohm:
            return rating_A
    return None


def pp_resistance_ohm(pp_V: float, supply_V: float, pullup_ohm: float) -> float:
    """The resistance from PP to PE that makes ``pp_V`` with a pull-up of ``pullup_ohm`` to ``supply_V`` (inf: open)."""
    if pp_V >= supply_V:
        return math.inf
    return pullup_ohm * max(pp_V, 0.0) / (supply_V - pp_V)
