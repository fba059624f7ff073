"""Behaviour of the pure core that surviving mutants (``./dev mutate core``) showed no test pinned down.

Each test names the rule it checks; docs/testing.md lists the mutants they were written for and the equivalent
ones left alone.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta, tzinfo

import pytest

from chargepoint.core.commands import (
    AuthorizeTag,
    BeginSession,
    CancelTimer,
    Command,
    ConnectorStatus,
    Fault,
    LockConnector,
    OpenContactor,
    SetPwm,
    StartTimer,
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
    TagPresented,
    TimerExpired,
    TimerName,
)
from chargepoint.core.measurands import SUPPORTED_MEASURANDS, UnsupportedMeasurands, parse_measurands
from chargepoint.core.ocpp_auth import Authorizer, AuthSettings, UpdateStatus
from chargepoint.core.pilot import PilotState, cable_rating_from_resistance, pp_resistance_ohm
from chargepoint.core.session import Connector, ConnectorSettings
from chargepoint.core.smart_charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    ChargingSchedulePeriod,
    ProfileError,
    ProfileStore,
    composite_schedule,
    profile_from_ocpp,
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
    assert message.startswith("cannot measure Temperature, SoC ")
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
    ],
    ids=["no-schedule", "unknown-schedule-key", "no-periods", "no-unit", "bad-kind", "bad-duration", "bad-validTo",
         "relative-with-start"],
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
