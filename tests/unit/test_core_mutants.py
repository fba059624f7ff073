"""Behaviour of the pure core that surviving mutants (``./dev mutate core``) showed no test pinned down.

Each test names the rule it checks; docs/testing.md lists the mutants they were written for and the equivalent
ones left alone.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

import pytest

from chargepoint.core.commands import (
    AuthorizeTag,
    BeginSession,
    CancelTimer,
    CloseContactor,
    Command,
    ConnectorStatus,
    EndSession,
    Fault,
    LockConnector,
    OpenContactor,
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
    LockCompleted,
    LockStateRead,
    MeterSampled,
    PilotChanged,
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
from chargepoint.core.measurands import SUPPORTED_MEASURANDS, UnsupportedMeasurands, parse_measurands
from chargepoint.core.ocpp_auth import Authorizer, AuthSettings, IdTagEntry, LocalDecision, UpdateStatus
from chargepoint.core.pilot import PilotState, cable_rating_from_resistance, pp_resistance_ohm
from chargepoint.core.session import Connector, ConnectorSettings
from chargepoint.core.smart_charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    ChargingSchedulePeriod,
    CompositeSchedule,
    ProfileError,
    ProfileStore,
    composite_schedule,
    composite_to_ocpp,
    current_limit_A,
    profile_from_ocpp,
    profile_to_ocpp,
)

S = ConnectorStatus
P = PilotState
T = TimerName
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _meter(energy_Wh: int, current_A: float = 0.0) -> MeterSampled:
    return MeterSampled(energy_Wh, 230.0 * 3 * current_A, (current_A, current_A, current_A), 0.0)


class Driver:
    """Feeds events 0.1 s apart (their own at_s is replaced) and keeps every command."""

    def __init__(self, settings: ConnectorSettings | None = None) -> None:
        self.connector = Connector(1, settings or ConnectorSettings())
        self.now_s = 0.0
        self.commands: list[Command] = list(self.connector.start(0.0))

    def send(self, event: Event, after_s: float = 0.1) -> list[Command]:
        self.now_s += after_s
        out = self.connector.handle(dataclasses.replace(event, at_s=self.now_s))
        self.commands.extend(out)
        return out

    def status(self) -> ConnectorStatus:
        return self.connector.status

    def send_all(self, events: list[Event]) -> list[Command]:
        return [command for event in events for command in self.send(event)]


_UP_TO_PLUGGED: list[Event] = [ContactorFeedbackChanged(False, 0.0), _meter(1000), PilotChanged(P.B, 0.0)]
_TO_CHARGING: list[Event] = [
    *_UP_TO_PLUGGED,
    TagPresented("ALICE", 0.0),
    AuthorizationDecided("ALICE", True, 0.0),
    LockCompleted(locked=True, ok=True, at_s=0.0),
    PilotChanged(P.C, 0.0),
    ContactorFeedbackChanged(True, 0.0),
    _meter(1100, 16.0),
]


def charging() -> Driver:
    driver = Driver()
    driver.send_all(_TO_CHARGING)
    assert driver.status() is S.Charging
    return driver


# ------------------------------------------------------------------------------------------ reservations


def test_the_reserved_card_begins_a_session_that_uses_the_reservation_up() -> None:
    driver = Driver()
    driver.send_all([ContactorFeedbackChanged(False, 0.0), _meter(1000),
                     ReservationMade(reservation_id=7, id_tag="ALICE", parent_id_tag=None, at_s=0.0)])
    assert driver.status() is S.Reserved
    assert driver.send(TagPresented("ALICE", 0.0)) == [AuthorizeTag("ALICE")]
    driver.send(AuthorizationDecided("ALICE", True, 0.0))
    out = driver.send(PilotChanged(P.B, 0.0))
    assert BeginSession("ALICE", 1000, reservation_id=7) in out
    assert driver.connector.session is not None and driver.connector.session.id_tag == "ALICE"


def test_a_session_without_a_reservation_names_none() -> None:
    driver = Driver()
    out = driver.send_all([*_UP_TO_PLUGGED, TagPresented("ALICE", 0.0), AuthorizationDecided("ALICE", True, 0.0)])
    assert BeginSession("ALICE", 1000, reservation_id=None) in out


def test_ending_another_reservation_keeps_this_one() -> None:
    driver = Driver()
    driver.send_all([ContactorFeedbackChanged(False, 0.0), _meter(1000),
                     ReservationMade(reservation_id=7, id_tag="ALICE", parent_id_tag=None, at_s=0.0)])
    driver.send(ReservationEnded(reservation_id=8, at_s=0.0))
    assert driver.status() is S.Reserved
    # Still held for ALICE: BOB's card is not even sent for authorization.
    assert driver.send(TagPresented("BOB", 0.0)) == []
    driver.send(ReservationEnded(reservation_id=7, at_s=0.0))
    assert driver.status() is S.Available
    assert driver.send(TagPresented("BOB", 0.0)) == [AuthorizeTag("BOB")]


# ------------------------------------------------------------------------------------------ remote start


def test_a_remote_start_during_a_session_asks_for_no_authorization() -> None:
    driver = charging()
    assert driver.send(RemoteStartRequested("BOB", pre_authorized=False, at_s=0.0)) == []
    assert driver.connector.session is not None and driver.connector.session.id_tag == "ALICE"


def test_a_remote_start_while_another_card_is_being_authorized_is_ignored() -> None:
    driver = Driver()
    driver.send_all([*_UP_TO_PLUGGED, TagPresented("ALICE", 0.0)])
    assert driver.send(RemoteStartRequested("BOB", pre_authorized=False, at_s=0.0)) == []
    # The answer for ALICE still counts: BOB's request did not take her place.
    out = driver.send(AuthorizationDecided("ALICE", True, 0.0))
    assert BeginSession("ALICE", 1000) in out


def test_a_remote_start_on_a_faulted_connector_is_ignored() -> None:
    driver = Driver()
    driver.send_all([*_UP_TO_PLUGGED, ResidualCurrentChanged(True, 0.0)])
    assert driver.status() is S.Faulted
    assert driver.send(RemoteStartRequested("BOB", pre_authorized=False, at_s=0.0)) == []
    assert driver.send(RemoteStartRequested("BOB", pre_authorized=True, at_s=0.0)) == []
    assert driver.connector.session is None


def test_a_remote_start_on_an_inoperative_connector_is_ignored() -> None:
    driver = Driver()
    driver.send_all([*_UP_TO_PLUGGED, AvailabilityChanged(False, 0.0)])
    assert driver.status() is S.Unavailable
    assert driver.send(RemoteStartRequested("BOB", pre_authorized=False, at_s=0.0)) == []
    assert driver.send(RemoteStartRequested("BOB", pre_authorized=True, at_s=0.0)) == []
    assert driver.connector.session is None


# ------------------------------------------------------------------------------------------ lock


def test_the_lock_is_commanded_once_while_it_moves() -> None:
    driver = Driver()
    driver.send_all([*_UP_TO_PLUGGED, TagPresented("ALICE", 0.0), AuthorizationDecided("ALICE", True, 0.0),
                     _meter(1001), PilotChanged(P.C, 0.0), _meter(1002)])
    assert driver.commands.count(LockConnector()) == 1
    driver.send(LockCompleted(locked=True, ok=True, at_s=0.0))
    assert driver.commands.count(LockConnector()) == 1


def test_a_bolt_forced_open_during_a_session_is_a_lock_failure_that_opens_the_contactor() -> None:
    driver = charging()
    out = driver.send(LockStateRead(locked=False, at_s=0.0))
    assert out[0] == OpenContactor()
    assert driver.status() is S.Faulted
    assert driver.connector.active_faults == {Fault.ConnectorLockFailure}
    assert driver.connector.error_code == "ConnectorLockFailure"


# ------------------------------------------------------------------------------------------ PWM updates


def test_a_pwm_update_made_moot_before_it_is_due_is_cancelled() -> None:
    driver = charging()
    # 32 A is offered; a 16 A limit within the 5 s after the last change waits for its turn.
    out = driver.send(CurrentLimitChanged("csms", 16.0, 0.0))
    timers = [c for c in out if isinstance(c, StartTimer)]
    assert [t.name for t in timers] == [T.PWM_UPDATE]
    assert timers[0].duration_s == pytest.approx(5.0 - 0.4)  # SetPwm went out 0.4 s ago
    assert not any(isinstance(c, SetPwm) for c in out)
    # The limit goes before the update is due: the offer is right as it is, the pending update is cancelled.
    out = driver.send(CurrentLimitChanged("csms", None, 0.0))
    assert CancelTimer(T.PWM_UPDATE) in out
    assert not any(isinstance(c, SetPwm) for c in out)
    assert driver.send(TimerExpired(T.PWM_UPDATE, 0.0), after_s=5.0) == []


# ------------------------------------------------------------------------------------------ OCPP authorization


class _NoOffset(tzinfo):
    """A tzinfo that does not know its offset: such a datetime is naive for every comparison."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_authorization_refuses_a_datetime_whose_tzinfo_knows_no_offset() -> None:
    authorizer = Authorizer(AuthSettings())
    with pytest.raises(ValueError, match="timezone-aware"):
        authorizer.decide("ALICE", datetime(2026, 12, 5, 12, 0, tzinfo=_NoOffset()), online=True)


def test_a_failed_local_list_update_reports_the_version_still_installed() -> None:
    authorizer = Authorizer(AuthSettings())
    ok = [{"idTag": "ALICE", "idTagInfo": {"status": "Accepted"}}]
    assert authorizer.send_local_list(3, "Full", ok).status is UpdateStatus.Accepted
    malformed = [{"idTag": "BOB", "idTagInfo": "Accepted"}]  # idTagInfo must be an object
    for entries in (malformed, [{"idTag": ""}], [*ok, *ok]):
        result = authorizer.send_local_list(4, "Differential", entries)
        assert (result.status, result.version) == (UpdateStatus.Failed, 3)
    assert authorizer.local_list_version() == 3


# ------------------------------------------------------------------------------------------ proximity pilot


def test_a_pp_shorted_to_pe_reads_zero_ohm_and_no_cable() -> None:
    # The driver's defaults: 330 Ohm pull-up to 3.3 V.
    assert pp_resistance_ohm(0.0, 3.3, 330.0) == 0.0
    assert pp_resistance_ohm(-0.05, 3.3, 330.0) == 0.0  # ADC noise below zero is still a short
    assert cable_rating_from_resistance(pp_resistance_ohm(0.0, 3.3, 330.0)) is None


def test_a_63_amp_cable_reads_its_100_ohm() -> None:
    pp_V = 3.3 * 100.0 / (330.0 + 100.0)  # the divider: 0.767 V
    assert pp_resistance_ohm(pp_V, 3.3, 330.0) == pytest.approx(100.0)
    assert cable_rating_from_resistance(pp_resistance_ohm(pp_V, 3.3, 330.0)) == 63.0
    assert math.isinf(pp_resistance_ohm(3.3, 3.3, 330.0))  # open PP: no cable


# ------------------------------------------------------------------------------------------ measurands


def test_an_unsupported_measurand_is_named_with_the_supported_ones() -> None:
    with pytest.raises(UnsupportedMeasurands) as caught:
        parse_measurands("Voltage, Temperature,SoC")
    message = str(caught.value)
    assert message == ("cannot measure Temperature, SoC (supported: Current.Import, Current.Offered, "
                       "Energy.Active.Import.Register, Power.Active.Import, Voltage)")
    assert all(name in message for name in SUPPORTED_MEASURANDS)


# ------------------------------------------------------------------------------------------ smart charging


def _profile(**changes: object) -> dict[str, object]:
    schedule: dict[str, object] = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                                        "limit": 16.0}]}
    profile: dict[str, object] = {"chargingProfileId": 1, "stackLevel": 0,
                                  "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
                                  "chargingSchedule": schedule}
    for key, value in changes.items():
        if key.startswith("schedule_"):
            name = key.removeprefix("schedule_")
            if value is None:
                schedule.pop(name)
            else:
                schedule[name] = value
        elif value is None:
            profile.pop(key)
        else:
            profile[key] = value
    return profile


@pytest.mark.parametrize(
    ("payload", "message_start"),
    [
        (_profile(chargingSchedule=None), "csChargingProfiles.chargingSchedule is required"),
        (_profile(schedule_colour="red"), "chargingSchedule: unknown field(s) colour"),
        (_profile(schedule_chargingSchedulePeriod=None), "chargingSchedule.chargingSchedulePeriod is required"),
        (_profile(schedule_chargingRateUnit=None), "chargingSchedule.chargingRateUnit is required"),
        (_profile(chargingProfileKind="Weekly"), "chargingProfileKind 'Weekly' is not one of"),
        (_profile(schedule_duration="1h"), "duration must be an integer"),
        (_profile(validTo=20261205), "validTo must be an ISO 8601 string"),
        (_profile(schedule_startSchedule="2026-12-05T12:00:00Z"),
         "a Relative profile must not have chargingSchedule.startSchedule"),
        (_profile(chargingSchedule=[]), "csChargingProfiles.chargingSchedule must be an object"),
        (_profile(schedule_chargingSchedulePeriod={"startPeriod": 0}),
         "chargingSchedule.chargingSchedulePeriod must be an array"),
        (_profile(schedule_chargingSchedulePeriod=[7]), "chargingSchedulePeriod[0] must be an object"),
        (_profile(schedule_chargingSchedulePeriod=[{"limit": 16.0}]),
         "chargingSchedulePeriod[0].startPeriod is required"),
        (_profile(chargingProfileKind=None), "csChargingProfiles.chargingProfileKind is required"),
        (_profile(chargingProfileKind="Absolute", schedule_startSchedule="noon"),
         "startSchedule 'noon' is not an ISO 8601 date-time"),
        (_profile(stackLevel=None), "csChargingProfiles.stackLevel is required"),
        (_profile(chargingProfileId="one"), "chargingProfileId must be an integer"),
        (_profile(chargingProfilePurpose=None), "csChargingProfiles.chargingProfilePurpose is required"),
        (_profile(schedule_minChargingRate="6 A"), "minChargingRate must be a number"),
        (_profile(validFrom=20261205), "validFrom must be an ISO 8601 string"),
    ],
    ids=["no-schedule", "unknown-schedule-key", "no-periods", "no-unit", "bad-kind", "bad-duration", "bad-validTo",
         "relative-with-start", "schedule-not-object", "periods-not-array", "period-not-object", "no-start-period",
         "no-kind", "bad-start-schedule", "no-stack-level", "bad-profile-id", "no-purpose", "bad-min-rate",
         "bad-validFrom"],
)
def test_a_rejected_profile_names_the_faulty_field(payload: dict[str, object], message_start: str) -> None:
    """The reason is logged with the SetChargingProfile refusal: it must point at the field by its OCPP name."""
    with pytest.raises(ProfileError) as caught:
        profile_from_ocpp(payload, received_at=NOW)
    assert str(caught.value).startswith(message_start)


def _schedule() -> ChargingSchedule:
    return ChargingSchedule(charging_rate_unit=ChargingRateUnit.A, periods=(ChargingSchedulePeriod(0, 16.0),),
                            start_schedule=NOW)


@pytest.mark.parametrize("field", ["valid_from", "valid_to"])
def test_a_profile_with_a_naive_validity_bound_is_refused(field: str) -> None:
    valid_from, valid_to = NOW - timedelta(hours=1), NOW + timedelta(hours=1)
    if field == "valid_from":
        valid_from, ocpp_name = valid_from.replace(tzinfo=None), "validFrom"
    else:
        valid_to, ocpp_name = valid_to.replace(tzinfo=None), "validTo"
    with pytest.raises(ProfileError) as caught:
        ChargingProfile(profile_id=1, stack_level=0, purpose=ChargingProfilePurpose.TxDefaultProfile,
                        kind=ChargingProfileKind.Absolute, schedule=_schedule(), valid_from=valid_from,
                        valid_to=valid_to)
    assert str(caught.value) == f"{ocpp_name} must be timezone-aware"


def test_a_composite_schedule_for_a_naive_now_is_refused_naming_now() -> None:
    with pytest.raises(ValueError) as caught:
        composite_schedule(ProfileStore(), 1, NOW.replace(tzinfo=None), 3600, ChargingRateUnit.A,
                           transaction_start=None, transaction_id=None)
    assert str(caught.value) == "now must be timezone-aware"


# ------------------------------------------------------------------------------------------ second sample (seed 2)


def _group_session() -> Driver:
    """ALICE (of group FLEET, as her authorization said) is charging."""
    driver = Driver()
    driver.send_all([*_UP_TO_PLUGGED, TagPresented("ALICE", 0.0), AuthorizationDecided("ALICE", True, 0.0, "FLEET"),
                     LockCompleted(locked=True, ok=True, at_s=0.0), PilotChanged(P.C, 0.0),
                     ContactorFeedbackChanged(True, 0.0), _meter(1100, 16.0)])
    assert driver.status() is S.Charging
    return driver


def test_a_card_of_the_same_group_stops_the_session_once_its_group_is_known() -> None:
    driver = _group_session()
    # BOB's group is not known yet: his card is sent for authorization, the session goes on.
    assert driver.send(TagPresented("BOB", 0.0)) == [AuthorizeTag("BOB")]
    assert driver.connector.contactor_commanded
    # His authorization names the same group: he stops the session (gently: the EV stops drawing first).
    driver.send(AuthorizationDecided("BOB", True, 0.0, "FLEET"))
    assert driver.connector.pwm_duty_percent is None
    out = driver.send(_meter(1150, 0.0))
    assert OpenContactor() in out
    assert EndSession(reason="Local", meter_stop_Wh=1150, stopped_by="BOB") in out


def test_a_card_of_another_group_does_not_stop_the_session() -> None:
    driver = _group_session()
    driver.send(TagPresented("MALLORY", 0.0))
    out = driver.send(AuthorizationDecided("MALLORY", True, 0.0, "OTHERS"))
    assert out == []
    assert driver.connector.contactor_commanded and driver.connector.pwm_duty_percent is not None


def test_the_contactor_opens_after_a_stop_only_below_one_amp() -> None:
    driver = charging()
    driver.send(StopRequested("Remote", 0.0))
    assert driver.connector.pwm_duty_percent is None
    assert OpenContactor() not in driver.send(_meter(1150, 1.0))  # 1 A on every phase: still drawing
    out = driver.send(_meter(1151, 0.9))
    assert OpenContactor() in out
    assert EndSession(reason="Remote", meter_stop_Wh=1151) in out


def test_the_unlock_is_commanded_once_while_the_bolt_moves() -> None:
    driver = charging()
    driver.send(UnlockRequested(0.0))
    driver.send_all([_meter(1150, 0.0), ContactorFeedbackChanged(False, 0.0)])
    assert driver.commands.count(UnlockConnector()) == 1
    driver.send_all([_meter(1151, 0.0), _meter(1152, 0.0)])
    assert driver.commands.count(UnlockConnector()) == 1
    driver.send(LockCompleted(locked=False, ok=True, at_s=0.0))
    assert driver.commands.count(UnlockConnector()) == 1
    assert driver.status() is S.Finishing


def test_a_remote_start_that_is_not_pre_authorized_waits_for_its_authorization() -> None:
    driver = Driver()
    driver.send_all(_UP_TO_PLUGGED)
    assert driver.send(RemoteStartRequested("BOB", pre_authorized=False, at_s=0.0)) == [AuthorizeTag("BOB")]
    assert driver.connector.session is None
    out = driver.send(AuthorizationDecided("BOB", True, 0.0))
    assert BeginSession("BOB", 1000) in out


def test_a_pre_authorized_remote_start_for_the_reserved_card_uses_the_reservation() -> None:
    driver = Driver()
    driver.send_all([ContactorFeedbackChanged(False, 0.0), _meter(1000),
                     ReservationMade(reservation_id=3, id_tag="ALICE", parent_id_tag=None, at_s=0.0)])
    out = driver.send(RemoteStartRequested("ALICE", pre_authorized=True, at_s=0.0))
    assert not any(isinstance(c, AuthorizeTag) for c in out)  # pre-authorized, and the reservation is hers
    assert driver.status() is S.Preparing
    out = driver.send(PilotChanged(P.B, 0.0))
    assert BeginSession("ALICE", 1000, reservation_id=3) in out


def test_the_contactor_cooldown_lasts_until_the_oldest_close_leaves_the_minute() -> None:
    driver = Driver(ConnectorSettings(contactor_closes_per_min_max=2))
    driver.send_all(_TO_CHARGING[:7])  # closes when the EV goes to C
    first_close_s = driver.now_s
    driver.send_all([PilotChanged(P.B, 0.0), PilotChanged(P.C, 0.0)])  # the second close of the minute
    assert driver.commands.count(CloseContactor()) == 2
    # The EV pauses 59.5 s after the first close: both closes are still in the minute, so the next close must wait
    # the half second until the first leaves it.
    driver.now_s = first_close_s + 59.4
    out = driver.send(PilotChanged(P.B, 0.0))
    timers = [c for c in out if isinstance(c, StartTimer) and c.name is T.CONTACTOR_COOLDOWN]
    assert len(timers) == 1 and timers[0].duration_s == pytest.approx(0.5)


def test_a_rejected_list_entry_keeps_its_group() -> None:
    blocked = IdTagEntry("BOB", "Blocked", None, "FLEET")
    outcome = Authorizer(AuthSettings(), local_list=[blocked]).decide("BOB", NOW, online=False)
    assert outcome.decision is LocalDecision.Rejected
    assert (outcome.status, outcome.parent_id_tag) == ("Blocked", "FLEET")


@pytest.fixture
def berlin_local_time() -> Iterator[None]:
    """The process's local time zone is Europe/Berlin (a charger's clock set to local time)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.usefixtures("berlin_local_time")
def test_profile_times_go_out_in_utc_whatever_the_local_time_zone() -> None:
    profile = ChargingProfile(profile_id=1, stack_level=0, purpose=ChargingProfilePurpose.TxDefaultProfile,
                              kind=ChargingProfileKind.Absolute, schedule=_schedule(),
                              valid_to=datetime(2026, 12, 6, 0, 0, tzinfo=UTC))
    data = profile_to_ocpp(profile)
    assert data["chargingSchedule"]["startSchedule"] == "2026-12-05T12:00:00Z"
    assert data["validTo"] == "2026-12-06T00:00:00Z"


def test_a_composite_schedule_keeps_each_periods_number_of_phases() -> None:
    composite = CompositeSchedule(start=NOW, duration_s=3600, unit=ChargingRateUnit.A,
                                  periods=(ChargingSchedulePeriod(0, 16.0, 1), ChargingSchedulePeriod(600, 10.0)))
    assert composite_to_ocpp(composite)["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 16.0, "numberPhases": 1}, {"startPeriod": 600, "limit": 10.0}]


def _store_with(*periods: tuple[int, float]) -> ProfileStore:
    store = ProfileStore()
    schedule = ChargingSchedule(charging_rate_unit=ChargingRateUnit.A, start_schedule=NOW,
                                periods=tuple(ChargingSchedulePeriod(start, limit) for start, limit in periods))
    profile = ChargingProfile(profile_id=1, stack_level=0, purpose=ChargingProfilePurpose.TxDefaultProfile,
                              kind=ChargingProfileKind.Absolute, schedule=schedule)
    assert store.install(1, profile, active_transaction_id=None, connector_count=1) == "Accepted"
    return store


def test_a_change_at_the_very_end_of_a_composite_schedule_is_not_part_of_it() -> None:
    store = _store_with((0, 16.0), (3600, 10.0))
    composite = composite_schedule(store, 1, NOW, 3600, ChargingRateUnit.A, transaction_start=None,
                                   transaction_id=None)
    assert composite.periods == (ChargingSchedulePeriod(0, 16.0),)
    longer = composite_schedule(store, 1, NOW, 3601, ChargingRateUnit.A, transaction_start=None,
                                transaction_id=None)
    assert longer.periods == (ChargingSchedulePeriod(0, 16.0), ChargingSchedulePeriod(3600, 10.0))


def test_a_composite_schedule_needs_a_positive_voltage() -> None:
    store = _store_with((0, 16.0))
    for voltage_V in (0.0, -230.0):
        with pytest.raises(ValueError, match="voltage_V must be > 0"):
            composite_schedule(store, 1, NOW, 3600, ChargingRateUnit.W, transaction_start=None,
                               transaction_id=None, voltage_V=voltage_V)


def test_the_current_limit_for_a_naive_now_is_refused_naming_now() -> None:
    with pytest.raises(ValueError) as caught:
        current_limit_A(_store_with((0, 16.0)), 1, NOW.replace(tzinfo=None), transaction_start=None,
                        transaction_id=None)
    assert str(caught.value) == "now must be timezone-aware"


def test_a_naive_schedule_start_is_refused() -> None:
    with pytest.raises(ProfileError) as caught:
        ChargingSchedule(charging_rate_unit=ChargingRateUnit.A, periods=(ChargingSchedulePeriod(0, 16.0),),
                         start_schedule=NOW.replace(tzinfo=None))
    assert str(caught.value) == "startSchedule must be timezone-aware"


def test_a_tx_profile_on_connector_0_is_refused_saying_why() -> None:
    profile = ChargingProfile(profile_id=1, stack_level=0, purpose=ChargingProfilePurpose.TxProfile,
                              kind=ChargingProfileKind.Relative,
                              schedule=ChargingSchedule(charging_rate_unit=ChargingRateUnit.A,
                                                        periods=(ChargingSchedulePeriod(0, 16.0),)))
    reason = ProfileStore().check(0, profile, active_transaction_id=5, connector_count=1)
    assert reason == "a TxProfile must be set on a connector, not on 0"
