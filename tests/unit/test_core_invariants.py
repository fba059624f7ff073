"""Safety invariants of the connector state machine under random event sequences.

Hypothesis draws sequences of 1-60 actions over every event type. Some actions are concrete events
(an arbitrary pilot state, a card, an RCD trip ...); others are *replies* that a real runtime would
produce (the contactor feedback following the last command, the lock completing, a running timer
expiring, the CSMS answering the pending authorization), so that sequences reach Charging often
instead of stalling in Preparing. The very first event is always a meter sample so that sessions
can begin. After every event the safety invariant and the command-stream bookkeeping are checked.

``CHARGEPOINT_HYPOTHESIS_EXAMPLES`` raises the number of examples (default 300), e.g. for a nightly
run: ``CHARGEPOINT_HYPOTHESIS_EXAMPLES=20000 pytest tests/unit/test_core_invariants.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import event as hyp_event
from hypothesis import strategies as st

from chargepoint.core.commands import (
    AuthorizeTag,
    BeginSession,
    CancelTimer,
    CloseContactor,
    Command,
    ConnectorStatus,
    EndSession,
    LockConnector,
    OpenContactor,
    ReportStatus,
    SetPilotHigh,
    SetPilotNegative,
    SetPwm,
    StartTimer,
    UnlockConnector,
)
from chargepoint.core.events import (
    AuthorizationDecided,
    AvailabilityChanged,
    ContactorFeedbackChanged,
    CurrentLimitChanged,
    Event,
    FaultsCleared,
    LimitReached,
    LockCompleted,
    MainsChanged,
    MeterFailed,
    MeterSampled,
    PilotChanged,
    PilotFailed,
    RemoteStartRequested,
    ReservationEnded,
    ReservationMade,
    ResidualCurrentChanged,
    StopRequested,
    TagPresented,
    TimerExpired,
    TimerName,
    UnlockRequested,
)
from chargepoint.core.pilot import PilotState
from chargepoint.core.session import Connector, ConnectorSettings

MAX_EXAMPLES = int(os.environ.get("CHARGEPOINT_HYPOTHESIS_EXAMPLES", "300"))

TAGS = ("ALICE", "BOB", "FREEVEND")
OPENING_PILOT_STATES = frozenset(
    {PilotState.A, PilotState.B, PilotState.E, PilotState.F, PilotState.DIODE_FAILURE}
)

SETTINGS = (
    ConnectorSettings(),
    ConnectorSettings(free_vend_id_tag="FREEVEND"),
    ConnectorSettings(
        max_current_A=16.0, connection_timeout_s=3.0, pwm_min_update_interval_s=1.0,
        overcurrent_grace_s=1.0,
    ),
)

# ----------------------------------------------------------------------------- action strategies
# An action is a tuple (kind, *args); ``_Harness.to_event`` turns it into an Event (or None to skip).

# Steps between events, chosen around the thresholds: feedback 0.5 s, PWM 5 s, grace 5 s, connection 60 s.
_dt = st.sampled_from([0.001, 0.05, 0.3, 0.6, 1.0, 2.5, 5.0, 6.0, 61.0])
_currents = st.tuples(*[st.sampled_from([0.0, 6.0, 15.9, 16.0, 18.5, 31.0, 34.5, 40.0])] * 3)

_random_actions: st.SearchStrategy[tuple[Any, ...]] = st.one_of(
    st.tuples(st.just("pilot"), st.sampled_from(list(PilotState))),
    # Weight the ordinary states up: most real traffic is A/B/C.
    st.tuples(st.just("pilot"), st.sampled_from([PilotState.A, PilotState.B, PilotState.C])),
    st.tuples(st.just("pilot_failed")),
    st.tuples(st.just("tag"), st.sampled_from(TAGS)),
    st.tuples(st.just("decide_pending"), st.booleans(), st.sampled_from([None, "FLEET"])),
    st.tuples(st.just("decide"), st.sampled_from(TAGS), st.booleans()),
    st.tuples(st.just("feedback_follows")),
    st.tuples(st.just("feedback"), st.booleans()),
    st.tuples(st.just("rcd"), st.booleans()),
    st.tuples(st.just("mains"), st.booleans()),
    st.tuples(st.just("meter"), st.integers(min_value=0, max_value=5000), _currents),
    st.tuples(st.just("meter_failed")),
    st.tuples(st.just("lock_follows"), st.booleans()),
    st.tuples(st.just("lock"), st.booleans(), st.booleans()),
    st.tuples(st.just("timer_running")),
    st.tuples(st.just("timer"), st.sampled_from(list(TimerName))),
    st.tuples(
        st.just("limit"), st.sampled_from(["lm", "csms"]),
        st.one_of(st.none(), st.sampled_from([0.0, 5.9, 6.0, 10.0, 16.0, 51.5, 63.0])),
    ),
    st.tuples(st.just("availability"), st.booleans()),
    st.tuples(st.just("stop"), st.sampled_from(["Remote", "HardReset", "Local"])),
    st.tuples(st.just("limit_reached"), st.sampled_from(["CostLimitReached", "EnergyLimitReached"])),
    st.tuples(st.just("clear")),
    st.tuples(st.just("remote_start"), st.sampled_from(TAGS), st.booleans()),
    st.tuples(st.just("unlock")),
    st.tuples(st.just("reserve"), st.sampled_from([1, 2]), st.sampled_from(TAGS), st.sampled_from([None, "FLEET"])),
    st.tuples(st.just("reservation_ended"), st.sampled_from([1, 2])),
)
# "assist" is the cooperative next step towards charging (see ``_Harness.assist``); without it
# fewer than one sequence in ten ever closes the contactor.
# (one_of would flatten and give it 1/21 of the draws; this gives it one half.)
_actions = st.tuples(st.booleans(), _random_actions).map(lambda t: t[1] if not t[0] else ("assist",))
# 1-60 steps drawn as up to 6 bursts of up to 10: a flat st.lists averages ~6 elements, too short to
# charge, stop and charge again, and a drawn-length list (flatmap) shrinks badly.
_steps = st.lists(
    st.lists(st.tuples(_dt, _actions), min_size=1, max_size=10), min_size=1, max_size=6
).map(lambda bursts: [step for burst in bursts for step in burst])


# ----------------------------------------------------------------------------- harness


@dataclass
class _Harness:
    """A runtime stand-in: feeds events, mirrors outputs from the commands, checks invariants."""

    connector: Connector
    now_s: float = 0.0
    energy_Wh: int = 10_000
    contactor_closed_cmd: bool = False  # as the command stream says
    pwm_cmd: float | None = None
    negative_cmd: bool = False
    session_open: bool = False
    last_lock_cmd: bool | None = None  # True: LockConnector outstanding, False: UnlockConnector
    timers_due_s: dict[TimerName, float] = field(default_factory=dict)
    statuses: list[ConnectorStatus] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    def to_event(self, action: tuple[Any, ...], at_s: float) -> Event | None:
        c = self.connector
        kind, *args = action
        match kind:
            case "assist":
                return self.assist(at_s)
            case "pilot":
                return PilotChanged(args[0], at_s)
            case "pilot_failed":
                return PilotFailed("adc timeout", at_s)
            case "tag":
                return TagPresented(args[0], at_s)
            case "decide_pending":
                pending = c.facts.pending_tag
                if pending is None:
                    return None
                return AuthorizationDecided(pending, args[0], at_s, parent_id_tag=args[1])
            case "decide":
                return AuthorizationDecided(args[0], args[1], at_s)
            case "feedback_follows":
                return ContactorFeedbackChanged(self.contactor_closed_cmd, at_s)
            case "feedback":
                return ContactorFeedbackChanged(args[0], at_s)
            case "rcd":
                return ResidualCurrentChanged(args[0], at_s)
            case "mains":
                return MainsChanged(args[0], at_s)
            case "meter":
                self.energy_Wh += args[0]
                return MeterSampled(self.energy_Wh, 230.0 * sum(args[1]), args[1], at_s)
            case "meter_failed":
                return MeterFailed("modbus timeout", at_s)
            case "lock_follows":
                if self.last_lock_cmd is None:
                    return None
                locked, self.last_lock_cmd = self.last_lock_cmd, None
                return LockCompleted(locked=locked, ok=args[0], at_s=at_s)
            case "lock":
                return LockCompleted(locked=args[0], ok=args[1], at_s=at_s)
            case "timer_running":
                if not self.timers_due_s:
                    return None
                name = min(self.timers_due_s, key=lambda n: self.timers_due_s[n])
                return TimerExpired(name, max(at_s, self.timers_due_s[name]))
            case "timer":
                return TimerExpired(args[0], at_s)
            case "limit":
                return CurrentLimitChanged(args[0], args[1], at_s)
            case "availability":
                return AvailabilityChanged(args[0], at_s)
            case "stop":
                return StopRequested(args[0], at_s)
            case "limit_reached":
                return LimitReached(args[0], at_s)
            case "clear":
                return FaultsCleared(at_s)
            case "remote_start":
                return RemoteStartRequested(args[0], args[1], at_s)
            case "unlock":
                return UnlockRequested(at_s)
            case "reserve":
                return ReservationMade(args[0], args[1], args[2], at_s)
            case "reservation_ended":
                return ReservationEnded(args[0], at_s)
        raise AssertionError(f"unknown action {kind}")

    def assist(self, at_s: float) -> Event:
        """What a cooperative EV, driver, CSMS and hardware would do next to get energy flowing."""
        c = self.connector
        f = c.facts
        if self.last_lock_cmd is not None:
            return self.to_event(("lock_follows", True), at_s) or FaultsCleared(at_s)
        if c.contactor_commanded != f.feedback_closed:
            return ContactorFeedbackChanged(self.contactor_closed_cmd, at_s)
        if f.faults:
            if f.rcd_tripped:
                return ResidualCurrentChanged(False, at_s)
            if not f.pilot.plugged:
                return PilotChanged(PilotState.B, at_s)
            return FaultsCleared(at_s)
        if not f.mains_present:
            return MainsChanged(True, at_s)
        if not f.pilot.plugged:
            return PilotChanged(PilotState.B, at_s)
        if f.pending_tag is not None:
            return AuthorizationDecided(f.pending_tag, True, at_s)
        if f.session is None:
            if c.status is ConnectorStatus.Finishing or f.connection_timed_out:
                return PilotChanged(PilotState.A, at_s)
            return TagPresented("ALICE", at_s)
        if not f.pilot.requests_energy:
            return PilotChanged(PilotState.C, at_s)
        return MeterSampled(self.energy_Wh, 0.0, (0.0, 0.0, 0.0), at_s)

    def feed(self, event: Event) -> list[Command]:
        c = self.connector
        was_closed = c.contactor_commanded
        faults_before = set(c.facts.faults)
        sessions_before = c.session
        self.now_s = event.at_s
        if isinstance(event, TimerExpired):
            self.timers_due_s.pop(event.name, None)

        out = c.handle(event)  # any exception (MachineError: illegal status move) fails the test

        self.commands.extend(out)
        self._mirror(out)
        self._check_command_stream(out, sessions_before is not None)
        self._check_safety()
        opening_cause = (
            (isinstance(event, PilotChanged) and event.state in OPENING_PILOT_STATES)
            or (isinstance(event, ResidualCurrentChanged) and event.tripped)
            or (isinstance(event, MainsChanged) and not event.present)
            or bool(c.facts.faults - faults_before)
        )
        if was_closed and opening_cause:
            assert out[:1] == [OpenContactor()], f"{event} while closed must open first: {out}"
        if was_closed and not c.contactor_commanded:
            if isinstance(event, LimitReached):
                # Not a fault: the offer is withdrawn first, and the contactor opens in the very same batch.
                assert out[:2] == [SetPilotHigh(), OpenContactor()], f"limit stop must be PWM off, open: {out}"
            else:
                assert out[:1] == [OpenContactor()], f"contactor released but not first: {out}"
        return out

    def _mirror(self, out: list[Command]) -> None:
        for cmd in out:
            match cmd:
                case CloseContactor():
                    assert not self.contactor_closed_cmd, "CloseContactor while already closed"
                    self.contactor_closed_cmd = True
                case OpenContactor():
                    assert self.contactor_closed_cmd, "OpenContactor while already open"
                    self.contactor_closed_cmd = False
                case SetPwm(duty_percent=duty):
                    assert 8.0 <= duty <= 97.0
                    assert not self.negative_cmd, "PWM straight from -12 V, without X1 in between"
                    self.pwm_cmd = duty
                case SetPilotHigh():
                    self.pwm_cmd, self.negative_cmd = None, False
                case SetPilotNegative():
                    self.pwm_cmd, self.negative_cmd = None, True
                case StartTimer(name=name, duration_s=duration_s):
                    assert duration_s > 0
                    self.timers_due_s[name] = self.now_s + duration_s
                case CancelTimer(name=name):
                    self.timers_due_s.pop(name, None)
                case LockConnector():
                    self.last_lock_cmd = True
                case UnlockConnector():
                    self.last_lock_cmd = False
                case ReportStatus(status=status):
                    self.statuses.append(status)

    def _check_command_stream(self, out: list[Command], had_session: bool) -> None:
        c = self.connector
        # Outputs as commanded agree with what the connector believes it commanded.
        assert self.contactor_closed_cmd == c.contactor_commanded
        assert self.pwm_cmd == c.pwm_duty_percent
        assert self.negative_cmd == c.pilot_negative
        # Sessions nest properly: Begin, End, Begin, End ...
        for cmd in out:
            if isinstance(cmd, BeginSession):
                assert not self.session_open, "two BeginSession without EndSession between them"
                self.session_open = True
            elif isinstance(cmd, EndSession):
                assert self.session_open, "EndSession without a BeginSession"
                self.session_open = False
        assert self.session_open == (c.session is not None)
        # CloseContactor is never emitted before the first PWM of a session or without a session.
        if CloseContactor() in out:
            assert c.session is not None
        # Only the pending card is sent for authorization, and only one at a time.
        asked = [cmd for cmd in out if isinstance(cmd, AuthorizeTag)]
        assert len(asked) <= 1
        if asked:
            assert c.facts.pending_tag == asked[0].id_tag
        # The status is a legal value and the last report matches it.
        assert isinstance(c.status, ConnectorStatus)
        if self.statuses:
            assert self.statuses[-1] == c.status

    def _check_safety(self) -> None:
        c = self.connector
        f = c.facts
        if not c.contactor_commanded:
            return
        assert f.session is not None, "closed without a session"
        assert f.authorized_tag is not None and f.authorized_tag == f.session.id_tag, "not authorized"
        assert f.pilot_known and f.pilot in (PilotState.C, PilotState.D), f"pilot {f.pilot}"
        assert not f.faults, f"closed with faults {f.faults}"
        assert f.mains_present, "closed without mains"
        assert not f.rcd_tripped, "closed with RCD tripped"
        assert f.locked and not f.lock_pending, "closed without a confirmed lock"
        assert c.pwm_duty_percent is not None, "closed without PWM"
        assert not c.pilot_negative


def _run(settings_index: int, steps: list[tuple[float, tuple[Any, ...]]]) -> _Harness:
    harness = _Harness(Connector(1, SETTINGS[settings_index]))
    harness._mirror(harness.connector.start(0.0))
    harness.feed(MeterSampled(harness.energy_Wh, 0.0, (0.0, 0.0, 0.0), 0.01))
    at_s = 0.01
    for dt_s, action in steps:
        at_s += dt_s
        event = harness.to_event(action, at_s)
        if event is None:
            continue
        at_s = event.at_s
        harness.feed(event)
    return harness


# ----------------------------------------------------------------------------- properties


@pytest.mark.timeout(60 + MAX_EXAMPLES // 20)  # ~10 ms an example, with room for slow runners
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
@given(settings_index=st.integers(min_value=0, max_value=len(SETTINGS) - 1), steps=_steps)
def test_random_event_sequences_keep_the_safety_invariant(
    settings_index: int, steps: list[tuple[float, tuple[Any, ...]]]
) -> None:
    harness = _run(settings_index, steps)
    # Statistics only (pytest --hypothesis-show-statistics): how often sequences reach energy.
    hyp_event(f"reached Charging: {ConnectorStatus.Charging in harness.statuses}")
    hyp_event(f"closed contactor: {CloseContactor() in harness.commands}")


# ----------------------------------------------------------------------------- harness self-tests
# The property above is only worth something if its harness reaches the interesting states and
# notices a violation. These fixed sequences prove both.

_TO_CHARGING: list[tuple[float, tuple[Any, ...]]] = [
    (0.1, ("pilot", PilotState.B)),
    (0.1, ("tag", "ALICE")),
    (0.1, ("decide_pending", True, None)),
    (0.1, ("lock_follows", True)),
    (0.1, ("pilot", PilotState.C)),
    (0.1, ("feedback_follows",)),
]


def test_harness_reaches_charging_with_replies() -> None:
    harness = _run(0, _TO_CHARGING)
    assert harness.connector.status is ConnectorStatus.Charging
    assert harness.contactor_closed_cmd


def test_harness_fires_running_timers_at_their_due_time() -> None:
    harness = _run(0, [(0.1, ("pilot", PilotState.B)), (0.1, ("timer_running",))])
    # The connection timer (60 s) fired: plugged without a card falls back to Available.
    assert harness.now_s == pytest.approx(0.11 + 60.0)
    assert harness.connector.status is ConnectorStatus.Available


class _RecklessConnector(Connector):
    """A deliberately broken core: it never opens the contactor."""

    def _open_contactor(self, out: list[Command]) -> None:
        pass


def test_harness_detects_a_contactor_left_closed_against_the_invariant() -> None:
    harness = _Harness(_RecklessConnector(1, ConnectorSettings()))
    harness.feed(MeterSampled(harness.energy_Wh, 0.0, (0.0, 0.0, 0.0), 0.01))
    at_s = 0.01
    for dt_s, action in _TO_CHARGING:
        at_s += dt_s
        event = harness.to_event(action, at_s)
        assert event is not None
        harness.feed(event)
    with pytest.raises(AssertionError, match="pilot"):
        harness.feed(PilotChanged(PilotState.B, at_s + 1.0))
