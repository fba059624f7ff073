"""Table-driven (situation, event) -> (status, commands) tests of the connector state machine.

Each case drives a fresh ``Connector`` to a named situation through real events (no poking at its
facts), applies one event and compares the new status and the exact command list.
"""

from __future__ import annotations

import dataclasses

import pytest

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
    RecordMeter,
    ReportStatus,
    SetPilotHigh,
    SetPilotNegative,
    SetPwm,
    StartTimer,
    TripShunt,
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
    ResidualCurrentChanged,
    StopRequested,
    TagPresented,
    TimerExpired,
    TimerName,
)
from chargepoint.core.pilot import PilotState
from chargepoint.core.session import Connector, ConnectorSettings

S = ConnectorStatus
P = PilotState
T = TimerName

METER_START_WH = 1234
METER_NOW_WH = 1300
DEFAULT = ConnectorSettings()  # 32 A, feedback 0.5 s, connection 60 s, PWM every 5 s, grace 5 s
FREE_VEND = ConnectorSettings(free_vend_id_tag="FREEVEND")
DUTY_32A = 53.3
DUTY_16A = 26.6


def _meter(energy_Wh: int, current_A: float = 0.0) -> MeterSampled:
    return MeterSampled(energy_Wh, 230.0 * 3 * current_A, (current_A, current_A, current_A), 0.0)


def _report(status: ConnectorStatus, error_code: str = "NoError") -> ReportStatus:
    return ReportStatus(status=status, error_code=error_code)


class Driver:
    """Feeds events with increasing timestamps; the event's own at_s is replaced."""

    def __init__(self, settings: ConnectorSettings = DEFAULT) -> None:
        self.connector = Connector(1, settings)
        self.now_s = 0.0
        self.commands: list[Command] = list(self.connector.start(0.0))

    def send(self, event: Event, after_s: float = 0.1) -> list[Command]:
        self.now_s += after_s
        out = self.connector.handle(dataclasses.replace(event, at_s=self.now_s))
        self.commands.extend(out)
        return out

    def status(self) -> ConnectorStatus:
        return self.connector.status


# How to reach each starting situation, as events (the at_s of these is ignored).
_TO_CHARGING: list[Event] = [
    ContactorFeedbackChanged(False, 0.0),  # the runtime reports the mirror contact as soon as it starts
    _meter(METER_START_WH),
    PilotChanged(P.B, 0.0),
    TagPresented("ALICE", 0.0),
    AuthorizationDecided("ALICE", True, 0.0),
    LockCompleted(locked=True, ok=True, at_s=0.0),
    PilotChanged(P.C, 0.0),
    ContactorFeedbackChanged(True, 0.0),
    _meter(METER_NOW_WH, 16.0),
]
SITUATIONS: dict[str, tuple[ConnectorSettings, list[Event], ConnectorStatus]] = {
    "available": (DEFAULT, _TO_CHARGING[:2], S.Available),
    "available_free_vend": (FREE_VEND, _TO_CHARGING[:2], S.Available),
    "preparing_plugged": (DEFAULT, _TO_CHARGING[:3], S.Preparing),
    "pending_plugged": (DEFAULT, _TO_CHARGING[:4], S.Preparing),
    "authorized_waiting_plug": (
        DEFAULT,
        [_meter(METER_START_WH), TagPresented("ALICE", 0.0), AuthorizationDecided("ALICE", True, 0.0)],
        S.Preparing,
    ),
    "locking": (DEFAULT, _TO_CHARGING[:5], S.Preparing),
    "suspended_ev": (DEFAULT, _TO_CHARGING[:6], S.SuspendedEV),
    "closing": (DEFAULT, _TO_CHARGING[:7], S.SuspendedEV),  # CloseContactor sent, no feedback yet
    "charging": (DEFAULT, _TO_CHARGING, S.Charging),
    "opening": (DEFAULT, [*_TO_CHARGING, PilotChanged(P.B, 0.0)], S.SuspendedEV),  # feedback still closed
    "opening_after_unplug": (DEFAULT, [*_TO_CHARGING, PilotChanged(P.A, 0.0)], S.Available),
    "finishing": (
        DEFAULT,
        # A tap stops gently: PWM off, the EV stops drawing, then the contactor opens and the plug is released.
        [*_TO_CHARGING, TagPresented("ALICE", 0.0), _meter(METER_NOW_WH, 0.0), ContactorFeedbackChanged(False, 0.0),
         LockCompleted(locked=False, ok=True, at_s=0.0)],
        S.Finishing,
    ),
    "stopping": (DEFAULT, [*_TO_CHARGING, StopRequested("Remote", 0.0)], S.SuspendedEVSE),
    "stopping_by_card": (DEFAULT, [*_TO_CHARGING, TagPresented("ALICE", 0.0)], S.SuspendedEVSE),
    "faulted_ground": (
        DEFAULT,
        [*_TO_CHARGING, ResidualCurrentChanged(True, 0.0), ContactorFeedbackChanged(False, 0.0)],
        S.Faulted,
    ),
    "charging_unavailable_requested": (
        DEFAULT, [*_TO_CHARGING, AvailabilityChanged(False, 0.0)], S.Charging,
    ),
}


def drive(situation: str) -> Driver:
    settings, events, expected = SITUATIONS[situation]
    driver = Driver(settings)
    for event in events:
        driver.send(event)
    assert driver.status() is expected, f"could not reach {situation}: {driver.status()}"
    return driver


# The commands every "session ends while energy flows" case starts with, OpenContactor first.
# A stop that is not a fault: the offer goes, the EV gets stop_wait_s to stop drawing, the contactor stays closed.
_STOP_GENTLY: list[Command] = [SetPilotHigh(), StartTimer(T.STOP_WAIT, 3.0)]


def _open_and_end(reason: str, meter_stop_Wh: int = METER_NOW_WH, stop_wait: bool = False) -> list[Command]:
    return [
        OpenContactor(),
        *([CancelTimer(T.STOP_WAIT)] if stop_wait else []),
        StartTimer(T.CONTACTOR_FEEDBACK, 0.5),
        EndSession(reason=reason, meter_stop_Wh=meter_stop_Wh),
        # No UnlockConnector yet: the plug stays locked until the mirror contact confirms the contactor open.
    ]


CASES = [
    # --- plug, then card
    pytest.param("available", PilotChanged(P.B, 0.0), S.Preparing,
                 [StartTimer(T.CONNECTION, 60.0), _report(S.Preparing)], id="plug-starts-connection-timer"),
    pytest.param("preparing_plugged", TagPresented("ALICE", 0.0), S.Preparing,
                 [AuthorizeTag("ALICE")], id="card-while-plugged-asks-authorization"),
    pytest.param("pending_plugged", AuthorizationDecided("ALICE", True, 0.0), S.Preparing,
                 [BeginSession("ALICE", METER_START_WH), LockConnector(), CancelTimer(T.CONNECTION)],
                 id="accepted-begins-session-with-meter-start-and-locks"),
    pytest.param("locking", LockCompleted(locked=True, ok=True, at_s=0.0), S.SuspendedEV,
                 [SetPwm(DUTY_32A), _report(S.SuspendedEV)], id="lock-confirmed-starts-pwm-not-contactor-in-B"),
    pytest.param("suspended_ev", PilotChanged(P.C, 0.0), S.SuspendedEV,
                 [CloseContactor(), StartTimer(T.CONTACTOR_FEEDBACK, 0.5)], id="state-C-closes-contactor"),
    pytest.param("closing", ContactorFeedbackChanged(True, 0.0), S.Charging,
                 [CancelTimer(T.CONTACTOR_FEEDBACK), _report(S.Charging)], id="feedback-closed-is-charging"),
    # --- card, then plug
    pytest.param("available", TagPresented("ALICE", 0.0), S.Available,
                 [AuthorizeTag("ALICE")], id="card-first-asks-authorization"),
    pytest.param("authorized_waiting_plug", PilotChanged(P.C, 0.0), S.Preparing,
                 [BeginSession("ALICE", METER_START_WH), LockConnector(), CancelTimer(T.CONNECTION)],
                 id="plug-after-card-begins-session"),
    pytest.param("authorized_waiting_plug", TagPresented("ALICE", 0.0), S.Available,
                 [CancelTimer(T.CONNECTION), _report(S.Available)], id="second-tap-before-plug-cancels"),
    # --- free vend
    pytest.param("available_free_vend", PilotChanged(P.B, 0.0), S.Preparing,
                 [BeginSession("FREEVEND", METER_START_WH), LockConnector(), _report(S.Preparing)],
                 id="free-vend-plug-begins-session"),
    # --- rejected and stray answers
    pytest.param("pending_plugged", AuthorizationDecided("ALICE", False, 0.0), S.Preparing, [],
                 id="rejected-card-begins-nothing"),
    pytest.param("pending_plugged", AuthorizationDecided("MALLORY", True, 0.0), S.Preparing, [],
                 id="answer-for-another-card-is-ignored"),
    pytest.param("pending_plugged", TagPresented("BOB", 0.0), S.Preparing, [],
                 id="second-card-while-authorizing-is-ignored"),
    # --- EV pauses, unplugs
    pytest.param("charging", PilotChanged(P.B, 0.0), S.SuspendedEV,
                 [OpenContactor(), StartTimer(T.CONTACTOR_FEEDBACK, 0.5), _report(S.SuspendedEV)],
                 id="C-to-B-opens-contactor"),
    pytest.param("charging", PilotChanged(P.A, 0.0), S.Available,
                 [*_open_and_end("EVDisconnected"), SetPilotHigh(), _report(S.Available)],
                 id="unplug-while-charging-opens-first-and-ends"),
    pytest.param("opening_after_unplug", ContactorFeedbackChanged(False, 0.0), S.Available,
                 [CancelTimer(T.CONTACTOR_FEEDBACK), UnlockConnector()],
                 id="plug-released-once-contacts-confirmed-open"),
    # --- stop by card
    pytest.param("charging", TagPresented("ALICE", 0.0), S.SuspendedEVSE,
                 [*_STOP_GENTLY, _report(S.SuspendedEVSE)], id="same-card-stops-gently"),
    pytest.param("stopping_by_card", _meter(METER_NOW_WH, 0.0), S.Finishing,
                 [RecordMeter(METER_NOW_WH), CancelTimer(T.STOP_WAIT), OpenContactor(),
                  StartTimer(T.CONTACTOR_FEEDBACK, 0.5),
                  EndSession(reason="Local", meter_stop_Wh=METER_NOW_WH, stopped_by="ALICE"), _report(S.Finishing)],
                 id="card-stop-ends-once-the-ev-stopped-drawing"),
    pytest.param("charging", TagPresented("BOB", 0.0), S.Charging, [], id="other-card-does-not-stop"),
    pytest.param("finishing", PilotChanged(P.A, 0.0), S.Available, [_report(S.Available)],
                 id="unplug-after-finishing-is-available"),
    pytest.param("charging", StopRequested("Remote", 0.0), S.SuspendedEVSE,
                 [*_STOP_GENTLY, _report(S.SuspendedEVSE)], id="remote-stop-withdraws-pwm-first"),
    pytest.param("stopping", _meter(METER_NOW_WH + 1, 0.0), S.Finishing,
                 [RecordMeter(METER_NOW_WH + 1), CancelTimer(T.STOP_WAIT), OpenContactor(),
                  StartTimer(T.CONTACTOR_FEEDBACK, 0.5),
                  EndSession(reason="Remote", meter_stop_Wh=METER_NOW_WH + 1), _report(S.Finishing)],
                 id="remote-stop-opens-once-the-ev-stopped-drawing"),
    pytest.param("stopping", _meter(METER_NOW_WH + 1, 15.0), S.SuspendedEVSE, [RecordMeter(METER_NOW_WH + 1)],
                 id="remote-stop-waits-while-the-ev-draws"),
    pytest.param("stopping", TimerExpired(T.STOP_WAIT, 0.0), S.Finishing,
                 [OpenContactor(), StartTimer(T.CONTACTOR_FEEDBACK, 0.5),
                  EndSession(reason="Remote", meter_stop_Wh=METER_NOW_WH), _report(S.Finishing)],
                 id="remote-stop-opens-under-load-after-stop-wait"),
    pytest.param("stopping", PilotChanged(P.B, 0.0), S.Finishing,
                 [*_open_and_end("Remote", stop_wait=True), _report(S.Finishing)],
                 id="remote-stop-opens-when-the-ev-goes-to-B"),
    pytest.param("stopping", ResidualCurrentChanged(True, 0.0), S.Faulted,
                 [*_open_and_end("Remote", stop_wait=True), SetPilotNegative(), _report(S.Faulted, "GroundFailure")],
                 id="a-fault-while-stopping-breaks-load-at-once"),
    # --- a session limit (cost, energy, time): PWM off first, the contactor opens when the EV has stopped
    pytest.param("charging", LimitReached("CostLimitReached", 0.0), S.SuspendedEVSE,
                 [*_STOP_GENTLY, _report(S.SuspendedEVSE)], id="limit-reached-withdraws-pwm-first"),
    pytest.param("suspended_ev", LimitReached("TimeLimitReached", 0.0), S.Finishing,
                 [EndSession(reason="TimeLimitReached", meter_stop_Wh=METER_START_WH), UnlockConnector(),
                  SetPilotHigh(), _report(S.Finishing)],
                 id="limit-reached-while-suspended-ends-without-contactor-command"),
    pytest.param("available", LimitReached("CostLimitReached", 0.0), S.Available, [],
                 id="limit-reached-without-session-is-ignored"),
    # --- protection
    pytest.param("charging", ResidualCurrentChanged(True, 0.0), S.Faulted,
                 [*_open_and_end("EmergencyStop"), SetPilotNegative(), _report(S.Faulted, "GroundFailure")],
                 id="rcd-trip-opens-first-and-drives-F"),
    pytest.param("faulted_ground", ResidualCurrentChanged(False, 0.0), S.Finishing,
                 [SetPilotHigh(), _report(S.Finishing)], id="rcd-reset-clears-ground-failure"),
    pytest.param("charging", PilotChanged(P.E, 0.0), S.Faulted,
                 [*_open_and_end("Other"), SetPilotHigh(), _report(S.Faulted, "EVCommunicationError")],
                 id="pilot-E-faults"),
    pytest.param("charging", PilotChanged(P.DIODE_FAILURE, 0.0), S.Faulted,
                 [*_open_and_end("Other"), SetPilotHigh(), _report(S.Faulted, "EVCommunicationError")],
                 id="diode-failure-faults"),
    pytest.param("charging", PilotChanged(P.F, 0.0), S.Faulted,
                 [*_open_and_end("Other"), SetPilotHigh(), _report(S.Faulted, "EVCommunicationError")],
                 id="pilot-F-not-driven-by-us-faults"),
    pytest.param("charging", PilotFailed("adc", 0.0), S.Faulted,
                 [*_open_and_end("Other"), SetPilotHigh(), _report(S.Faulted, "InternalError")],
                 id="pilot-sampler-lost-faults"),
    pytest.param("closing", TimerExpired(T.CONTACTOR_FEEDBACK, 0.0), S.Faulted,
                 [*_open_and_end("EmergencyStop", METER_START_WH), UnlockConnector(), SetPilotHigh(),
                  _report(S.Faulted, "PowerSwitchFailure")],
                 id="contactor-never-confirms-close"),
    pytest.param("charging", ContactorFeedbackChanged(False, 0.0), S.Faulted,
                 [*_open_and_end("EmergencyStop"), UnlockConnector(), SetPilotHigh(),
                  _report(S.Faulted, "PowerSwitchFailure")],
                 id="contactor-drops-out-by-itself"),
    pytest.param("opening", TimerExpired(T.CONTACTOR_FEEDBACK, 0.0), S.Faulted,
                 # The contacts may be live: the plug stays locked.
                 [TripShunt(), EndSession("EmergencyStop", METER_NOW_WH), SetPilotNegative(),
                  _report(S.Faulted, "PowerSwitchFailure")],
                 id="contactor-stays-closed-after-open-is-welded"),
    pytest.param("charging", MeterFailed("modbus", 0.0), S.Faulted,
                 [*_open_and_end("Other"), SetPilotHigh(), _report(S.Faulted, "PowerMeterFailure")],
                 id="meter-failure-faults"),
    pytest.param("charging", MainsChanged(False, 0.0), S.Unavailable,
                 [*_open_and_end("PowerLoss"), SetPilotHigh(), _report(S.Unavailable)],
                 id="mains-lost-ends-with-power-loss"),
    pytest.param("locking", LockCompleted(locked=True, ok=False, at_s=0.0), S.Faulted,
                 [EndSession("Other", METER_START_WH), _report(S.Faulted, "ConnectorLockFailure")],
                 id="lock-failure-faults-without-pwm"),
    # --- current limits
    pytest.param("charging", CurrentLimitChanged("lm", 5.9, 0.0), S.SuspendedEVSE,
                 [*_STOP_GENTLY, _report(S.SuspendedEVSE)], id="limit-below-6A-pauses-with-X1-first"),
    # --- availability
    pytest.param("charging", AvailabilityChanged(False, 0.0), S.Charging, [],
                 id="inoperative-during-session-keeps-charging"),
    pytest.param("charging_unavailable_requested", StopRequested("Remote", 0.0), S.SuspendedEVSE,
                 [*_STOP_GENTLY, _report(S.SuspendedEVSE)], id="inoperative-session-stops-gently"),
    pytest.param("available", AvailabilityChanged(False, 0.0), S.Unavailable, [_report(S.Unavailable)],
                 id="inoperative-when-idle"),
]


@pytest.mark.parametrize(("situation", "event", "status", "commands"), CASES)
def test_transition(situation: str, event: Event, status: ConnectorStatus, commands: list[Command]) -> None:
    driver = drive(situation)
    was_closed = driver.connector.contactor_commanded

    out = driver.send(event)

    assert driver.status() is status
    assert out == commands
    if OpenContactor() in commands:
        assert was_closed and not driver.connector.contactor_commanded
    if status is S.Faulted:
        assert not driver.connector.contactor_commanded


def test_every_situation_is_reachable_and_has_the_expected_outputs() -> None:
    closed = {name for name in SITUATIONS if drive(name).connector.contactor_commanded}
    assert closed == {"closing", "charging", "charging_unavailable_requested", "stopping", "stopping_by_card"}
    assert drive("stopping").connector.pwm_duty_percent is None
    assert drive("suspended_ev").connector.pwm_duty_percent == DUTY_32A
    assert drive("locking").connector.pwm_duty_percent is None
    assert drive("faulted_ground").connector.pilot_negative


# ----------------------------------------------------------------------------- sequences


def test_plug_then_card_full_sequence_reports_in_order() -> None:
    driver = drive("charging")
    reports = [c.status for c in driver.commands if isinstance(c, ReportStatus)]
    assert reports == [S.Available, S.Preparing, S.SuspendedEV, S.Charging]
    order = [type(c) for c in driver.commands if type(c) in (BeginSession, LockConnector, SetPwm, CloseContactor)]
    assert order == [BeginSession, LockConnector, SetPwm, CloseContactor]
    assert driver.connector.session is not None
    assert driver.connector.session.meter_start_Wh == METER_START_WH
    assert driver.connector.offered_current_A == pytest.approx(32.0, abs=0.05)


def test_card_then_plug_in_C_closes_as_soon_as_the_lock_confirms() -> None:
    driver = drive("authorized_waiting_plug")
    driver.send(PilotChanged(P.C, 0.0))
    assert not driver.connector.contactor_commanded  # lock not confirmed yet
    out = driver.send(LockCompleted(locked=True, ok=True, at_s=0.0))
    assert out[:3] == [SetPwm(DUTY_32A), CloseContactor(), StartTimer(T.CONTACTOR_FEEDBACK, 0.5)]
    driver.send(ContactorFeedbackChanged(True, 0.0))
    assert driver.status() is S.Charging


def test_free_vend_charges_without_any_card_and_any_card_stops() -> None:
    driver = drive("available_free_vend")
    for event in (PilotChanged(P.B, 0.0), LockCompleted(locked=True, ok=True, at_s=0.0),
                  PilotChanged(P.C, 0.0), ContactorFeedbackChanged(True, 0.0)):
        driver.send(event)
    assert driver.status() is S.Charging
    assert AuthorizeTag("FREEVEND") not in driver.commands
    driver.send(TagPresented("ANYONE", 0.0))  # PWM off first; the contactor opens once the EV stopped drawing
    out = driver.send(_meter(METER_START_WH, 0.0))
    assert OpenContactor() in out
    assert EndSession("Local", METER_START_WH, stopped_by="ANYONE") in out
    # Still plugged after the stop: free vend must not silently start a new session.
    driver.send(ContactorFeedbackChanged(False, 0.0))
    driver.send(LockCompleted(locked=False, ok=True, at_s=0.0))
    assert driver.status() is S.Finishing
    assert driver.connector.session is None


def test_rejected_card_falls_back_to_available_after_connection_timeout() -> None:
    driver = drive("pending_plugged")
    driver.send(AuthorizationDecided("ALICE", False, 0.0))
    out = driver.send(TimerExpired(T.CONNECTION, 0.0), after_s=60.0)
    assert out == [_report(S.Available)]
    assert driver.connector.session is None


@pytest.mark.parametrize(
    ("situation", "later_event", "status_after_later_event"),
    [
        # Plugged without authorization: Available (still plugged), a card can still start later.
        ("preparing_plugged", AuthorizationDecided("ALICE", True, 0.0), S.Preparing),
        # Authorized without a plug: the authorization lapses; a plug alone starts nothing.
        ("authorized_waiting_plug", PilotChanged(P.B, 0.0), S.Preparing),
    ],
)
def test_connection_timeout(situation: str, later_event: Event, status_after_later_event: ConnectorStatus) -> None:
    driver = drive(situation)
    out = driver.send(TimerExpired(T.CONNECTION, 0.0), after_s=60.0)
    assert out == [_report(S.Available)]
    assert driver.status() is S.Available
    if isinstance(later_event, AuthorizationDecided):
        driver.send(TagPresented("ALICE", 0.0))
    out = driver.send(later_event)
    assert driver.status() is status_after_later_event
    began = any(isinstance(c, BeginSession) for c in out)
    assert began == isinstance(later_event, AuthorizationDecided)


def test_stop_by_card_then_unplug_is_available() -> None:
    driver = drive("charging")
    driver.send(TagPresented("ALICE", 0.0))
    out = driver.send(_meter(METER_NOW_WH, 0.0))
    assert OpenContactor() in out
    assert driver.status() is S.Finishing
    driver.send(ContactorFeedbackChanged(False, 0.0))
    driver.send(LockCompleted(locked=False, ok=True, at_s=0.0))
    driver.send(PilotChanged(P.A, 0.0))
    assert driver.status() is S.Available
    ends = [c for c in driver.commands if isinstance(c, EndSession)]
    assert ends == [EndSession("Local", METER_NOW_WH, stopped_by="ALICE")]


def test_rcd_trip_and_reset_back_to_available() -> None:
    driver = drive("charging")
    out = driver.send(ResidualCurrentChanged(True, 0.0))
    assert out[0] == OpenContactor()
    # No new session while tripped, even with a fresh card.
    driver.send(ContactorFeedbackChanged(False, 0.0))
    assert driver.send(TagPresented("BOB", 0.0)) == []
    driver.send(ResidualCurrentChanged(False, 0.0))
    driver.send(PilotChanged(P.A, 0.0))
    assert driver.status() is S.Available
    assert not driver.connector.pilot_negative


def test_welded_contactor_is_latched_until_feedback_opens_and_faults_are_cleared() -> None:
    driver = drive("opening")
    driver.send(TimerExpired(T.CONTACTOR_FEEDBACK, 0.0), after_s=0.5)
    assert driver.status() is S.Faulted
    assert driver.connector.error_code == "PowerSwitchFailure"

    assert driver.send(FaultsCleared(0.0)) == []  # still welded: clearing would be a lie
    assert driver.status() is S.Faulted
    assert driver.send(PilotChanged(P.C, 0.0)) == []  # our own -12 V / a new request changes nothing
    assert driver.status() is S.Faulted

    driver.send(ContactorFeedbackChanged(False, 0.0))
    assert driver.status() is S.Faulted  # latched: needs a technician
    out = driver.send(FaultsCleared(0.0))
    assert out == [SetPilotHigh(), _report(S.Finishing)]
    assert not driver.connector.contactor_commanded


def test_contactor_feedback_timeout_is_latched_until_cleared() -> None:
    driver = drive("closing")
    driver.send(TimerExpired(T.CONTACTOR_FEEDBACK, 0.0), after_s=0.5)
    assert driver.connector.error_code == "PowerSwitchFailure"
    driver.send(ContactorFeedbackChanged(False, 0.0))
    assert driver.status() is S.Faulted
    driver.send(FaultsCleared(0.0))
    assert driver.status() is S.Finishing


def test_meter_recovers_from_failure() -> None:
    driver = drive("charging")
    driver.send(MeterFailed("modbus", 0.0))
    driver.send(ContactorFeedbackChanged(False, 0.0))
    out = driver.send(_meter(METER_NOW_WH + 5))
    assert out == [_report(S.Finishing)]


def test_mains_lost_and_restored() -> None:
    driver = drive("charging")
    driver.send(MainsChanged(False, 0.0))
    driver.send(ContactorFeedbackChanged(False, 0.0))
    assert driver.send(TagPresented("ALICE", 0.0)) == []  # no authorization without mains
    out = driver.send(MainsChanged(True, 0.0))
    assert out == [_report(S.Finishing)]
    assert driver.connector.session is None


# ----------------------------------------------------------------------------- PWM rate limit


def test_limit_change_within_update_interval_is_deferred_to_a_timer() -> None:
    driver = drive("charging")
    last_pwm_at_s = driver.now_s - 0.3  # SetPwm came with the LockCompleted, three events ago
    out = driver.send(CurrentLimitChanged("lm", 16.0, 0.0))
    assert len(out) == 1 and isinstance(out[0], StartTimer)
    assert out[0].name is T.PWM_UPDATE
    assert out[0].duration_s == pytest.approx(last_pwm_at_s + 5.0 - driver.now_s)
    assert driver.connector.pwm_duty_percent == DUTY_32A
    # A further change while waiting does not restart the timer.
    assert driver.send(CurrentLimitChanged("lm", 13.0, 0.0)) == []

    out = driver.send(TimerExpired(T.PWM_UPDATE, 0.0), after_s=last_pwm_at_s + 5.0 - driver.now_s)
    assert out == [SetPwm(21.6)]  # the latest limit, 13 A
    assert driver.status() is S.Charging


def test_limit_change_after_update_interval_applies_at_once() -> None:
    driver = drive("charging")
    assert driver.send(CurrentLimitChanged("lm", 16.0, 0.0), after_s=6.0) == [SetPwm(DUTY_16A)]
    # The lowest of several sources wins; removing it restores the next lowest (after the interval).
    driver.send(CurrentLimitChanged("csms", 20.0, 0.0), after_s=6.0)
    assert driver.connector.pwm_duty_percent == DUTY_16A
    assert driver.send(CurrentLimitChanged("lm", None, 0.0), after_s=6.0) == [SetPwm(33.3)]


def test_limit_back_above_6A_resumes_pwm_and_closes() -> None:
    driver = drive("charging")
    driver.send(CurrentLimitChanged("lm", 0.0, 0.0))
    assert driver.connector.contactor_commanded  # the EV first stops drawing
    assert OpenContactor() in driver.send(_meter(METER_NOW_WH, 0.2))
    driver.send(ContactorFeedbackChanged(False, 0.0))
    assert driver.status() is S.SuspendedEVSE
    out = driver.send(CurrentLimitChanged("lm", 10.0, 0.0))
    assert out == [SetPwm(16.6), CloseContactor(), StartTimer(T.CONTACTOR_FEEDBACK, 0.5)]


# ----------------------------------------------------------------------------- overcurrent


def test_overcurrent_beyond_margin_trips_after_trip_time() -> None:
    driver = drive("charging")  # offers 31.98 A; more than 10 % above (35.18 A) for 2 s trips
    assert driver.send(_meter(METER_NOW_WH, 35.0), after_s=6.0) == [RecordMeter(METER_NOW_WH)]
    assert driver.send(_meter(METER_NOW_WH, 36.0), after_s=1.0) == [
        StartTimer(T.OVERCURRENT, 2.0), RecordMeter(METER_NOW_WH)]
    out = driver.send(TimerExpired(T.OVERCURRENT, 0.0), after_s=2.0)
    assert out[0] == OpenContactor()
    assert driver.status() is S.Faulted
    assert driver.connector.error_code == "OverCurrentFailure"
    assert EndSession("EmergencyStop", METER_NOW_WH) in out


def test_overcurrent_spike_shorter_than_trip_time_is_forgiven() -> None:
    driver = drive("charging")
    driver.send(_meter(METER_NOW_WH, 40.0), after_s=6.0)
    assert driver.send(_meter(METER_NOW_WH, 30.0), after_s=1.0) == [
        CancelTimer(T.OVERCURRENT), RecordMeter(METER_NOW_WH)]
    assert driver.status() is S.Charging


def test_overcurrent_is_judged_against_the_old_offer_while_the_ev_follows() -> None:
    driver = drive("charging")
    driver.send(CurrentLimitChanged("lm", 10.0, 0.0), after_s=6.0)  # EV has 5 s to follow
    for _ in range(4):
        out = driver.send(_meter(METER_NOW_WH, 30.0), after_s=1.2)
        assert StartTimer(T.OVERCURRENT, 2.0) not in out
    out = driver.send(_meter(METER_NOW_WH, 30.0), after_s=1.0)  # 5.8 s after the change: 30 A > 11 A
    assert StartTimer(T.OVERCURRENT, 2.0) in out


# ----------------------------------------------------------------------------- lock


def test_lock_failure_never_closes_and_clears_on_unplug() -> None:
    driver = drive("locking")
    driver.send(PilotChanged(P.C, 0.0))
    driver.send(LockCompleted(locked=True, ok=False, at_s=0.0))
    driver.send(PilotChanged(P.C, 0.0))
    driver.send(TagPresented("ALICE", 0.0))
    assert CloseContactor() not in driver.commands
    assert not any(isinstance(c, SetPwm) for c in driver.commands)
    assert driver.connector.error_code == "ConnectorLockFailure"
    driver.send(PilotChanged(P.A, 0.0))
    assert driver.status() is S.Available


def test_new_session_waits_for_the_previous_unlock_before_pwm_and_contactor() -> None:
    # Regression: a card tapped while the last session's unlock was still in flight began a session
    # that trusted the stale "locked" fact, started PWM and closed the contactor mid-unlock.
    driver = drive("charging")
    driver.send(TagPresented("ALICE", 0.0))  # stop: PWM off ...
    driver.send(_meter(METER_NOW_WH, 0.0))  # ... the EV stopped drawing: open; UnlockConnector is in flight
    driver.send(ContactorFeedbackChanged(False, 0.0))
    driver.send(TagPresented("BOB", 0.0))
    out = driver.send(AuthorizationDecided("BOB", True, 0.0))
    assert out[0] == BeginSession("BOB", METER_NOW_WH)
    assert driver.status() is S.Preparing
    assert not driver.connector.contactor_commanded
    assert driver.connector.pwm_duty_percent is None

    assert driver.send(LockCompleted(locked=False, ok=True, at_s=0.0)) == [LockConnector()]
    out = driver.send(LockCompleted(locked=True, ok=True, at_s=0.0))
    assert out[:2] == [SetPwm(DUTY_32A), CloseContactor()]


def test_lock_lost_mid_session_suspends_instead_of_raising() -> None:
    # Regression: "session but not locked" was always Preparing, an illegal move from SuspendedEV.
    driver = drive("suspended_ev")
    out = driver.send(LockCompleted(locked=False, ok=True, at_s=0.0))
    assert driver.status() is S.SuspendedEVSE
    assert out == [LockConnector(), SetPilotHigh(), _report(S.SuspendedEVSE)]


# ----------------------------------------------------------------------------- availability


def test_inoperative_during_session_applies_after_unplug_and_back() -> None:
    driver = drive("charging_unavailable_requested")
    driver.send(PilotChanged(P.A, 0.0))
    assert driver.status() is S.Unavailable
    driver.send(ContactorFeedbackChanged(False, 0.0))
    driver.send(PilotChanged(P.B, 0.0))
    assert driver.status() is S.Unavailable  # no Preparing while inoperative
    assert driver.send(TagPresented("ALICE", 0.0)) == []  # and no authorization either
    driver.send(PilotChanged(P.A, 0.0))
    assert driver.send(AvailabilityChanged(True, 0.0)) == [_report(S.Available)]
