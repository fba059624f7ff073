"""Safety invariants of the connector state machine under random event sequences.

The invariants are judged against an independent model of IEC 61851-1 kept by the harness from the events it
sent and the commands it got back (never from the connector's own facts): what the pilot, RCD, mains, lock, cable
and meter last said, what the pilot offered and since when. Meter samples draw unequal phase currents.

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

import dataclasses
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
    CableChanged,
    ContactorFeedbackChanged,
    CurrentLimitChanged,
    Event,
    FaultsCleared,
    LatchedFaultsRestored,
    LimitReached,
    LockCompleted,
    LockStateRead,
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
from chargepoint.core.pilot import PilotState, current_from_duty
from chargepoint.core.session import Connector, ConnectorSettings

MAX_EXAMPLES = int(os.environ.get("CHARGEPOINT_HYPOTHESIS_EXAMPLES", "300"))

TAGS = ("ALICE", "BOB", "FREEVEND")
OPENING_PILOT_STATES = frozenset(
    {PilotState.A, PilotState.B, PilotState.E, PilotState.F, PilotState.DIODE_FAILURE}
)

SETTINGS = (
    ConnectorSettings(),
    ConnectorSettings(free_vend_id_tag="FREEVEND", tethered_cable=False),
    ConnectorSettings(
        max_current_A=16.0, connection_timeout_s=3.0, pwm_min_update_interval_s=1.0,
        overcurrent_grace_s=1.0, overcurrent_trip_s=0.5, cable_rating_A=13.0, ventilation_available=True,
        stop_wait_s=1.0,
    ),
    ConnectorSettings(tethered_cable=False, ventilation_available=True, contactor_closes_per_min_max=2),
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
    st.tuples(st.just("cable"), st.sampled_from([None, 13.0, 20.0, 32.0, 63.0])),
    st.tuples(st.just("lock_state"), st.booleans()),
    st.tuples(st.just("restore"), st.sampled_from(["ContactorWelded", "OverCurrentFailure", "GroundFailure"])),
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
class _Model:
    """What IEC 61851-1 lets the contactor do, rebuilt from the events sent and the commands received."""

    settings: ConnectorSettings
    pilot: PilotState | None = None
    pilot_lost: bool = False
    rcd_tripped: bool = False
    mains_present: bool = True
    meter_failed: bool = False
    cable_A: float | None = None
    locked: bool = False  # the last lock movement that completed
    lock_in_flight: bool = False
    limits_A: dict[str, float] = field(default_factory=dict)
    offers: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])  # (since_s, offered_A)
    pwm_off_since_s: float | None = 0.0
    over_since_s: float | None = None  # first of an unbroken run of samples above the tolerated draw

    def cable_limit_A(self) -> float:
        if self.settings.tethered_cable:
            return self.settings.cable_rating_A
        return 0.0 if self.cable_A is None else self.cable_A

    def offered_within_grace_A(self, at_s: float) -> float:
        window_start_s = at_s - self.settings.overcurrent_grace_s
        return max(
            offered_A for i, (_, offered_A) in enumerate(self.offers)
            if i == len(self.offers) - 1 or self.offers[i + 1][0] > window_start_s
        )

    def event(self, event: Event, contactor_closed: bool) -> None:
        match event:
            case PilotChanged(state=state):
                self.pilot, self.pilot_lost = state, False
            case PilotFailed():
                self.pilot_lost = True
            case ResidualCurrentChanged(tripped=tripped):
                self.rcd_tripped = tripped
            case MainsChanged(present=present):
                self.mains_present = present
            case MeterFailed():
                self.meter_failed = True
            case MeterSampled(current_A=current_A, at_s=at_s):
                self.meter_failed = False
                tolerated_A = self.offered_within_grace_A(at_s) * (1 + self.settings.overcurrent_margin_percent / 100)
                if contactor_closed and max(current_A) > tolerated_A:
                    self.over_since_s = at_s if self.over_since_s is None else self.over_since_s
                else:
                    self.over_since_s = None
            case CableChanged(max_A=max_A):
                self.cable_A = max_A
            case LockCompleted(locked=locked, ok=ok):
                self.lock_in_flight = False
                if ok:
                    self.locked = locked
            case LockStateRead(locked=locked):
                self.locked = locked
            case CurrentLimitChanged(source=source, current_A=current_A):
                if current_A is None:
                    self.limits_A.pop(source, None)
                else:
                    self.limits_A[source] = max(0.0, current_A)

    def command(self, command: Command, at_s: float) -> None:
        match command:
            case SetPwm(duty_percent=duty):
                self.offers.append((at_s, current_from_duty(duty)))
                self.pwm_off_since_s = None
            case SetPilotHigh() | SetPilotNegative():
                self.offers.append((at_s, 0.0))
                if self.pwm_off_since_s is None:
                    self.pwm_off_since_s = at_s
            case OpenContactor():
                self.over_since_s = None
            case LockConnector() | UnlockConnector():
                self.lock_in_flight = True
                if isinstance(command, UnlockConnector):
                    self.locked = False  # not confirmed locked any more, whatever the actuator does

    def check(self, closed: bool, session_open: bool, pwm_duty: float | None, at_s: float) -> None:
        s = self.settings
        if pwm_duty is not None:
            offered_A = current_from_duty(pwm_duty)
            assert offered_A <= self.cable_limit_A() + 1e-9, f"offered {offered_A} A over the cable's rating"
            assert offered_A <= s.max_current_A + 1e-9, f"offered {offered_A} A over the maximum"
        if not closed:
            return
        assert session_open, "closed without a session"
        assert self.pilot is PilotState.C or (self.pilot is PilotState.D and s.ventilation_available), (
            f"closed with pilot {self.pilot} (ventilation {s.ventilation_available})")
        assert not self.pilot_lost, "closed while the pilot sampler is lost"
        assert not self.rcd_tripped, "closed with RCD tripped"
        assert self.mains_present, "closed without mains"
        assert not self.meter_failed, "closed without a meter"
        assert self.locked and not self.lock_in_flight, "closed without a confirmed lock"
        if pwm_duty is None:
            assert self.pwm_off_since_s is not None
            assert at_s - self.pwm_off_since_s <= s.stop_wait_s + 1e-9, "closed without PWM beyond stop_wait_s"
        if self.over_since_s is not None:
            assert at_s - self.over_since_s <= s.overcurrent_trip_s + 1e-9, "over-current not cut within its bound"


@dataclass
class _Harness:
    """A runtime stand-in: feeds events, fires timers when due, mirrors outputs, checks the model's invariants."""

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
    model: _Model = field(init=False)

    def __post_init__(self) -> None:
        self.model = _Model(self.connector.settings)

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
                if self.last_lock_cmd is not None:
                    return None  # a movement is in flight: its completion is the only one that can come
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
            case "cable":
                return CableChanged(args[0], at_s)
            case "lock_state":
                return LockStateRead(args[0], at_s)
            case "restore":
                return LatchedFaultsRestored((args[0],), at_s)
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
        if not c.settings.tethered_cable and self.model.cable_A is None:
            return CableChanged(32.0, at_s)
        if f.pending_tag is not None:
            return AuthorizationDecided(f.pending_tag, True, at_s)
        if f.session is None:
            if c.status is ConnectorStatus.Finishing or f.connection_timed_out:
                return PilotChanged(PilotState.A, at_s)
            return TagPresented("ALICE", at_s)
        if not f.pilot.requests_energy:
            return PilotChanged(PilotState.C, at_s)
        return MeterSampled(self.energy_Wh, 0.0, (0.0, 0.0, 0.0), at_s)

    def fire_due_timers(self, until_s: float) -> None:
        """A runtime's timers fire on time: every timer due before the next event expires first."""
        while self.timers_due_s:
            name = min(self.timers_due_s, key=lambda n: self.timers_due_s[n])
            due_s = self.timers_due_s[name]
            if due_s > until_s:
                return
            self.feed(TimerExpired(name, max(due_s, self.now_s)))

    def feed(self, event: Event) -> list[Command]:
        c = self.connector
        was_closed = c.contactor_commanded
        pwm_before = c.pwm_duty_percent
        sessions_before = c.session
        self.now_s = event.at_s
        if isinstance(event, TimerExpired):
            self.timers_due_s.pop(event.name, None)
        self.model.event(event, self.contactor_closed_cmd)

        out = c.handle(event)  # any exception (MachineError: illegal status move) fails the test

        self.commands.extend(out)
        self._mirror(out)
        self._check_command_stream(out, sessions_before is not None)
        self.model.check(self.contactor_closed_cmd, self.session_open, self.pwm_cmd, self.now_s)
        if was_closed and not c.contactor_commanded and out[:1] != [OpenContactor()]:
            # Only a gentle stop may put anything before the open: its PWM was already off.
            assert pwm_before is None and c.pwm_duty_percent is None, f"released under an offer: {out}"
        return out

    def _mirror(self, out: list[Command]) -> None:
        for cmd in out:
            self.model.command(cmd, self.now_s)
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


def _run(settings_index: int, steps: list[tuple[float, tuple[Any, ...]]]) -> _Harness:
    harness = _Harness(Connector(1, SETTINGS[settings_index]))
    harness._mirror(harness.connector.start(0.0))
    harness.feed(MeterSampled(harness.energy_Wh, 0.0, (0.0, 0.0, 0.0), 0.01))
    at_s = 0.01
    for dt_s, action in steps:
        at_s += dt_s
        harness.fire_due_timers(at_s)
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

    def _open_contactor(self, out: list[Command], first: bool = True) -> None:
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


# Mutants of the core that once went unnoticed: the independent model must catch each of them.


class _IgnoresCableRating(Connector):
    def cable_limit_A(self) -> float:
        return self.settings.max_current_A


class _JudgesLowestPhase(Connector):
    def _check_overcurrent(self, sample: MeterSampled, out: list[Command]) -> None:
        Connector._check_overcurrent(self, dataclasses.replace(sample, current_A=(min(sample.current_A),) * 3), out)


class _IgnoresVentilation(Connector):
    def _pilot_may_charge(self) -> bool:
        return self.facts.pilot_known and self.facts.pilot.requests_energy


def _drive_to_charging(harness: _Harness) -> float:
    harness.feed(MeterSampled(harness.energy_Wh, 0.0, (0.0, 0.0, 0.0), 0.01))
    at_s = 0.01
    for dt_s, action in _TO_CHARGING:
        at_s += dt_s
        event = harness.to_event(action, at_s)
        assert event is not None
        harness.feed(event)
    return at_s


def test_model_catches_a_core_that_offers_above_a_16A_cable() -> None:
    settings = ConnectorSettings(max_current_A=32.0, cable_rating_A=16.0)
    _drive_to_charging(_Harness(Connector(1, settings)))  # the real core passes
    with pytest.raises(AssertionError, match="over the cable's rating"):
        _drive_to_charging(_Harness(_IgnoresCableRating(1, settings)))


def _overdraw_on_one_phase(harness: _Harness) -> None:
    at_s = _drive_to_charging(harness) + 6.0  # past the grace time
    for _ in range(6):  # phase 1 at 45 A on a 32 A offer, the others idle, for 3 s
        at_s += 0.5
        harness.fire_due_timers(at_s)
        if harness.connector.contactor_commanded:
            harness.feed(MeterSampled(harness.energy_Wh, 0.0, (45.0, 0.0, 0.0), at_s))


def test_model_catches_a_core_that_judges_over_current_on_the_lowest_phase() -> None:
    _overdraw_on_one_phase(_Harness(Connector(1, ConnectorSettings())))
    with pytest.raises(AssertionError, match="over-current not cut"):
        _overdraw_on_one_phase(_Harness(_JudgesLowestPhase(1, ConnectorSettings())))


def test_model_catches_a_core_that_gives_energy_in_D_without_ventilation() -> None:
    for connector_class in (Connector, _IgnoresVentilation):
        harness = _Harness(connector_class(1, ConnectorSettings()))
        at_s = _drive_to_charging(harness)
        if connector_class is Connector:
            harness.feed(PilotChanged(PilotState.D, at_s + 0.1))
            assert not harness.connector.contactor_commanded
        else:
            with pytest.raises(AssertionError, match="closed with pilot D"):
                harness.feed(PilotChanged(PilotState.D, at_s + 0.1))
