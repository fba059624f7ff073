"""Safety rules of the connector core, one fault injection each: cable rating, ventilation, over-current,
gentle stops, latched faults, weld and unlock, contactor chatter."""

from __future__ import annotations

import pytest

from chargepoint.core.commands import (
    CloseContactor,
    ConnectorStatus,
    Fault,
    OpenContactor,
    RunRcdTest,
    SetPilotHigh,
    SetPwm,
    StartTimer,
    TripShunt,
    UnlockConnector,
    UnlockRefused,
)
from chargepoint.core.events import (
    AuthorizationDecided,
    CableChanged,
    ContactorFeedbackChanged,
    CurrentLimitChanged,
    FaultsCleared,
    LatchedFaultsRestored,
    LockCompleted,
    LockStateRead,
    MeterSampled,
    PilotChanged,
    ResidualCurrentChanged,
    SelfTested,
    StopRequested,
    TagPresented,
    TimerExpired,
    TimerName,
    UnlockRequested,
)
from chargepoint.core.pilot import PilotState, current_from_duty
from chargepoint.core.session import ConnectorSettings
from tests.unit.test_core_session import METER_NOW_WH, Driver, _meter

S = ConnectorStatus
P = PilotState
T = TimerName
DEFAULT = ConnectorSettings()
SOCKET = ConnectorSettings(tethered_cable=False)


def _charging(settings: ConnectorSettings = DEFAULT, cable_A: float | None = 32.0) -> Driver:
    driver = Driver(settings)
    driver.send(ContactorFeedbackChanged(False, 0.0))
    driver.send(_meter(1000))
    driver.send(PilotChanged(P.B, 0.0))
    driver.send(CableChanged(cable_A, 0.0))
    driver.send(TagPresented("ALICE", 0.0))
    driver.send(AuthorizationDecided("ALICE", True, 0.0))
    driver.send(LockCompleted(locked=True, ok=True, at_s=0.0))
    driver.send(PilotChanged(P.C, 0.0))
    if driver.connector.contactor_commanded:
        driver.send(ContactorFeedbackChanged(True, 0.0))
    return driver


def _offered_A(driver: Driver) -> float:
    duty = driver.connector.pwm_duty_percent
    return 0.0 if duty is None else current_from_duty(duty)


# ----------------------------------------------------------------------------- offered current


def test_socket_offers_what_the_plugged_cable_is_rated_for() -> None:
    assert _offered_A(_charging(SOCKET, cable_A=20.0)) == pytest.approx(19.98)
    assert _offered_A(_charging(SOCKET, cable_A=13.0)) == pytest.approx(12.96)


def test_socket_without_a_cable_rating_offers_nothing() -> None:
    driver = _charging(SOCKET, cable_A=None)
    assert driver.connector.pwm_duty_percent is None
    assert not driver.connector.contactor_commanded
    assert driver.status() is S.SuspendedEVSE


def test_pp_opening_mid_session_withdraws_the_offer_at_once() -> None:
    driver = _charging(SOCKET, cable_A=32.0)
    out = driver.send(CableChanged(None, 0.0))
    assert out[0] == SetPilotHigh()


def test_tethered_cable_rating_caps_the_offer() -> None:
    assert _offered_A(_charging(ConnectorSettings(cable_rating_A=16.0))) == pytest.approx(15.96)


def test_board_limit_caps_the_offer_and_a_lower_hard_limit_is_not_rate_limited() -> None:
    driver = _charging()
    driver.send(CurrentLimitChanged("hardware", 16.0, 0.0))
    driver.send(TimerExpired(T.PWM_UPDATE, 0.0), after_s=5.0)
    assert _offered_A(driver) == pytest.approx(15.96)
    driver = _charging(SOCKET, cable_A=32.0)
    out = driver.send(CableChanged(20.0, 0.0), after_s=0.1)  # 0.1 s after the last duty change
    assert SetPwm(33.3) in out


# ----------------------------------------------------------------------------- state D


def test_state_D_without_ventilation_opens_and_suspends() -> None:
    driver = _charging()
    out = driver.send(PilotChanged(P.D, 0.0))
    assert out[0] == OpenContactor()
    assert driver.status() is S.SuspendedEVSE
    assert driver.connector.pwm_duty_percent is None
    driver.send(ContactorFeedbackChanged(False, 0.0))
    assert not driver.connector.contactor_commanded


def test_state_D_charges_where_ventilation_is_available() -> None:
    driver = _charging(ConnectorSettings(ventilation_available=True))
    out = driver.send(PilotChanged(P.D, 0.0))
    assert OpenContactor() not in out
    assert driver.status() is S.Charging


# ----------------------------------------------------------------------------- over-current


def _sample(current_A: tuple[float, float, float]) -> MeterSampled:
    return MeterSampled(METER_NOW_WH, 0.0, current_A, 0.0)


def test_7_9A_on_a_6A_limit_trips() -> None:
    driver = _charging()
    driver.send(CurrentLimitChanged("csms", 6.0, 0.0), after_s=6.0)
    assert _offered_A(driver) == 6.0
    driver.send(_sample((7.9, 7.9, 7.9)), after_s=6.0)  # beyond the 5 s to follow; 6.6 A tolerated
    out = driver.send(TimerExpired(T.OVERCURRENT, 0.0), after_s=2.0)
    assert out[0] == OpenContactor()
    assert driver.connector.error_code == "OverCurrentFailure"


def test_one_overloaded_phase_trips_whatever_the_others_draw() -> None:
    driver = _charging()
    out = driver.send(_sample((40.0, 0.0, 0.0)), after_s=6.0)
    assert StartTimer(T.OVERCURRENT, 2.0) in out


def test_over_current_clears_on_unplug_and_latches_when_it_repeats() -> None:
    driver = _charging()
    for trip in range(3):
        driver.send(_sample((40.0, 40.0, 40.0)), after_s=6.0)
        driver.send(TimerExpired(T.OVERCURRENT, 0.0), after_s=2.0)
        assert Fault.OverCurrentFailure in driver.connector.active_faults
        driver.send(ContactorFeedbackChanged(False, 0.0))
        driver.send(LockCompleted(locked=False, ok=True, at_s=0.0))
        driver.send(PilotChanged(P.A, 0.0))
        if trip < 2:
            assert driver.status() is S.Available  # one trip: the EV that over-drew has left
            driver.send(PilotChanged(P.B, 0.0))
            driver.send(TagPresented("ALICE", 0.0))
            driver.send(AuthorizationDecided("ALICE", True, 0.0))
            driver.send(LockCompleted(locked=True, ok=True, at_s=0.0))
            driver.send(PilotChanged(P.C, 0.0))
            driver.send(ContactorFeedbackChanged(True, 0.0))
            assert driver.status() is S.Charging
    assert driver.status() is S.Faulted  # the third within an hour latched
    assert driver.connector.latched_faults == {Fault.OverCurrentFailure}
    driver.send(FaultsCleared(0.0))
    assert driver.status() is S.Available


# ----------------------------------------------------------------------------- gentle stops


def test_deauthorization_stops_gently_and_ends_when_the_ev_has_stopped() -> None:
    driver = _charging()
    out = driver.send(StopRequested("DeAuthorized", 0.0))
    assert OpenContactor() not in out and driver.connector.pwm_duty_percent is None
    out = driver.send(_sample((0.3, 0.2, 0.0)))
    assert OpenContactor() in out
    assert driver.connector.session is None


# ----------------------------------------------------------------------------- RCD


def test_single_rcd_trip_clears_with_the_module_and_a_repeat_latches() -> None:
    driver = _charging(ConnectorSettings(rcd_reclose_max=1))
    driver.send(ResidualCurrentChanged(True, 0.0))
    driver.send(ResidualCurrentChanged(False, 0.0))
    assert Fault.GroundFailure not in driver.connector.active_faults
    driver.send(ResidualCurrentChanged(True, 0.0))
    driver.send(ResidualCurrentChanged(False, 0.0))
    assert driver.connector.latched_faults == {Fault.GroundFailure}
    assert driver.status() is S.Faulted


def test_fault_clear_keeps_an_rcd_fault_whose_module_still_trips() -> None:
    driver = _charging(ConnectorSettings(rcd_reclose_max=0))
    driver.send(ResidualCurrentChanged(True, 0.0))
    driver.send(FaultsCleared(0.0))
    assert Fault.GroundFailure in driver.connector.latched_faults
    driver.send(ResidualCurrentChanged(False, 0.0))
    driver.send(FaultsCleared(0.0))
    assert not driver.connector.active_faults


# ----------------------------------------------------------------------------- latched faults


def test_diode_failure_latches_until_cleared() -> None:
    driver = _charging()
    driver.send(PilotChanged(P.DIODE_FAILURE, 0.0))
    driver.send(PilotChanged(P.A, 0.0))
    assert driver.status() is S.Faulted
    driver.send(FaultsCleared(0.0))
    assert driver.status() is S.Available


def test_latched_faults_survive_a_restart() -> None:
    driver = Driver()
    driver.send(LatchedFaultsRestored(("OverCurrentFailure", "NotAFault"), 0.0))
    assert driver.status() is S.Faulted
    assert driver.connector.latched_faults == {Fault.OverCurrentFailure}


def test_a_stuck_open_contactor_latched_under_its_old_name_comes_back_under_its_own() -> None:
    driver = Driver()
    driver.send(LatchedFaultsRestored(("PowerSwitchFailure",), 0.0))  # stored by the firmware before
    assert driver.connector.latched_faults == {Fault.ContactorStuckOpen}
    assert driver.connector.error_code == "PowerSwitchFailure"  # what OCPP calls both contactor failures


# ----------------------------------------------------------------------------- weld and unlock


def test_weld_trips_the_shunt_keeps_the_plug_locked_and_refuses_unlock() -> None:
    driver = _charging()
    driver.send(PilotChanged(P.B, 0.0))  # opens
    out = driver.send(TimerExpired(T.CONTACTOR_FEEDBACK, 0.0), after_s=0.5)  # still closed: welded
    assert TripShunt() in out
    assert UnlockConnector() not in out
    out = driver.send(UnlockRequested(0.0))
    assert out[0] == UnlockRefused("the contactor is welded: the plug may be live")
    driver.send(PilotChanged(P.A, 0.0))
    assert UnlockConnector() not in driver.commands[-10:]


def test_after_a_restart_the_plug_of_a_welded_contactor_stays_locked() -> None:
    driver = Driver()
    driver.send(LockStateRead(True, 0.0))  # read from the actuator's sensor (unknown reads as locked)
    assert UnlockConnector() not in driver.send(UnlockRequested(0.0))  # feedback not known yet: wait
    out = driver.send(ContactorFeedbackChanged(True, 0.0))  # the mirror contact says closed: welded
    assert TripShunt() in out and UnlockConnector() not in out
    assert UnlockRefused("the contactor is welded: the plug may be live") in out
    assert driver.status() is S.Faulted


def test_after_a_restart_a_healthy_plug_is_released() -> None:
    driver = Driver()
    driver.send(LockStateRead(True, 0.0))
    assert UnlockConnector() in driver.send(ContactorFeedbackChanged(False, 0.0))


# ----------------------------------------------------------------------------- chatter


def test_a_flickering_pilot_cannot_make_the_contactor_chatter() -> None:
    driver = _charging(ConnectorSettings(contactor_closes_per_min_max=4))
    closes = 0
    for _ in range(50):  # B/C flicker, 20 ms apart, for a second
        driver.send(PilotChanged(P.B, 0.0), after_s=0.01)
        closes += driver.send(PilotChanged(P.C, 0.0), after_s=0.01).count(CloseContactor())
    assert closes <= 3  # 4 a minute, one of them the first close
    assert driver.status() is S.SuspendedEVSE
    # The offer is withdrawn while closes are held back: an EVSE board would otherwise close its relay by itself.
    assert driver.connector.pwm_duty_percent is None
    out = driver.send(TimerExpired(T.CONTACTOR_COOLDOWN, 0.0), after_s=60.0)
    assert CloseContactor() in out


# ----------------------------------------------------------------------------- self-tests


def test_rcd_must_pass_its_test_before_the_contactor_closes() -> None:
    driver = _charging(ConnectorSettings(rcd_test_before_session=True))
    assert RunRcdTest() in driver.commands
    assert not driver.connector.contactor_commanded  # EV in C, but the RCD is not tested yet ...
    assert driver.connector.pwm_duty_percent is None  # ... so nothing is offered either
    out = driver.send(SelfTested("rcd", True, 0.0))
    assert CloseContactor() in out


def test_failed_self_tests_latch_their_faults() -> None:
    driver = _charging(ConnectorSettings(rcd_test_before_session=True))
    driver.send(SelfTested("rcd", False, 0.0))
    assert driver.connector.latched_faults == {Fault.RcdTestFailed}
    assert driver.connector.error_code == "GroundFailure"
    driver = Driver()
    driver.send(SelfTested("pilot", False, 0.0))
    assert driver.connector.latched_faults == {Fault.PilotTestFailed}
    driver.send(FaultsCleared(0.0))
    assert driver.status() is S.Available
