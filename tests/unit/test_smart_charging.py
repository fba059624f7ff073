"""OCPP 1.6 smart charging: profile parsing, installation rules and the composite schedule.

Table-driven cases pin the rules one by one (and the OCTT test cases TC_056 ... TC_082); hypothesis
checks the JSON round trip and compares the engine with a brute-force reference written here,
independently of the engine, on random sets of profiles. The random profiles live on a 15-minute
grid, so evaluating the reference on every grid point is an exhaustive check, not a sample.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargepoint.core.smart_charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingProfileStatus,
    ChargingRateUnit,
    ChargingSchedule,
    ChargingSchedulePeriod,
    CompositeSchedule,
    ProfileError,
    ProfileStore,
    RecurrencyKind,
    composite_schedule,
    composite_to_ocpp,
    convert_limit,
    current_limit_A,
    next_change,
    profile_from_ocpp,
    profile_to_ocpp,
)

A = ChargingRateUnit.A
W = ChargingRateUnit.W
CP_MAX = ChargingProfilePurpose.ChargePointMaxProfile
TX_DEFAULT = ChargingProfilePurpose.TxDefaultProfile
TX = ChargingProfilePurpose.TxProfile
ABSOLUTE = ChargingProfileKind.Absolute
RECURRING = ChargingProfileKind.Recurring
RELATIVE = ChargingProfileKind.Relative

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday, midnight UTC
HOUR = 3600
DAY = 86_400


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def profile(
    profile_id: int = 1,
    *,
    stack_level: int = 0,
    purpose: ChargingProfilePurpose = TX_DEFAULT,
    kind: ChargingProfileKind = ABSOLUTE,
    periods: Sequence[tuple[int, float] | tuple[int, float, int]] = ((0, 16.0),),
    unit: ChargingRateUnit = A,
    duration_s: int | None = None,
    start: datetime | None = T0,
    transaction_id: int | None = None,
    recurrency: RecurrencyKind | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
) -> ChargingProfile:
    if kind is RELATIVE:
        start = None
    if kind is RECURRING and recurrency is None:
        recurrency = RecurrencyKind.Daily
    return ChargingProfile(
        profile_id=profile_id,
        stack_level=stack_level,
        purpose=purpose,
        kind=kind,
        schedule=ChargingSchedule(
            charging_rate_unit=unit,
            periods=tuple(ChargingSchedulePeriod(*p) for p in periods),
            duration_s=duration_s,
            start_schedule=start,
        ),
        transaction_id=transaction_id,
        recurrency_kind=recurrency,
        valid_from=valid_from,
        valid_to=valid_to,
    )


def store_of(*items: tuple[int, ChargingProfile]) -> ProfileStore:
    store = ProfileStore()
    store.load(items)
    return store


def ocpp_payload(**changes: Any) -> dict[str, Any]:
    """A valid TxDefaultProfile as a CSMS sends it; ``changes`` override or (value None) drop keys.
    Keys of the schedule are written ``schedule__key``, of the first period ``period__key``."""
    payload: dict[str, Any] = {
        "chargingProfileId": 7,
        "stackLevel": 2,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": "2024-01-01T00:00:00Z",
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}, {"startPeriod": 600, "limit": 10.5}],
        },
    }
    for key, value in changes.items():
        if key.startswith("schedule__"):
            target, name = payload["chargingSchedule"], key.removeprefix("schedule__")
        elif key.startswith("period__"):
            target, name = payload["chargingSchedule"]["chargingSchedulePeriod"][0], key.removeprefix("period__")
        else:
            target, name = payload, key
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return payload


# ------------------------------------------------------------------------------------------------
# Parsing OCPP JSON


def test_parse_reads_every_field_and_normalises_to_utc() -> None:
    parsed = profile_from_ocpp(
        {
            "chargingProfileId": 3,
            "transactionId": 42,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Recurring",
            "recurrencyKind": "Weekly",
            "validFrom": "2024-01-01T01:00:00+01:00",
            "validTo": "2024-02-01T00:00:00",  # naive: read as UTC
            "chargingSchedule": {
                "duration": 3600,
                "startSchedule": "2024-01-01T08:00:00.250Z",
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000, "numberPhases": 3}],
                "minChargingRate": 1380,
            },
        }
    )
    assert parsed == ChargingProfile(
        profile_id=3,
        stack_level=1,
        purpose=TX,
        kind=RECURRING,
        schedule=ChargingSchedule(
            charging_rate_unit=W,
            periods=(ChargingSchedulePeriod(0, 11000.0, 3),),
            duration_s=3600,
            start_schedule=datetime(2024, 1, 1, 8, 0, 0, 250_000, tzinfo=UTC),
            min_charging_rate=1380.0,
        ),
        transaction_id=42,
        recurrency_kind=RecurrencyKind.Weekly,
        valid_from=T0,
        valid_to=datetime(2024, 2, 1, tzinfo=UTC),
    )
    assert parsed.valid_from is not None and parsed.valid_from.tzinfo is UTC
    assert isinstance(parsed.schedule.periods[0].limit, float)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"schedule__chargingSchedulePeriod": [{"startPeriod": 60, "limit": 6}]}, "first period must start at 0"),
        (
            {
                "schedule__chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 6},
                    {"startPeriod": 600, "limit": 8},
                    {"startPeriod": 600, "limit": 10},
                ]
            },
            "must increase",
        ),
        ({"schedule__chargingSchedulePeriod": []}, "at least one period"),
        ({"period__limit": -1}, "limit -1.0 must be a finite number >= 0"),
        ({"period__limit": "16"}, "must be a number"),
        ({"period__limit": True}, "must be a number"),
        ({"period__numberPhases": 4}, "numberPhases 4"),
        ({"period__numberPhases": 0}, "numberPhases 0"),
        ({"period__startPeriod": 1.5}, "must be an integer"),
        ({"chargingProfileKind": "Relative"}, "Relative profile must not have chargingSchedule.startSchedule"),
        ({"chargingProfileKind": "Recurring"}, "Recurring profile needs recurrencyKind"),
        (
            {"chargingProfileKind": "Recurring", "recurrencyKind": "Daily", "schedule__startSchedule": None},
            "Recurring profile needs chargingSchedule.startSchedule",
        ),
        ({"schedule__startSchedule": None}, "Absolute profile needs chargingSchedule.startSchedule"),
        ({"recurrencyKind": "Monthly", "chargingProfileKind": "Recurring"}, "recurrencyKind 'Monthly' is not one of"),
        ({"chargingProfilePurpose": "TxMaxProfile"}, "chargingProfilePurpose 'TxMaxProfile' is not one of"),
        ({"schedule__chargingRateUnit": "kW"}, "chargingRateUnit 'kW'"),
        ({"stackLevel": -1}, "stackLevel -1 is negative"),
        ({"stackLevel": 9}, "exceeds ChargeProfileMaxStackLevel 8"),
        ({"stackLevel": None}, "stackLevel is required"),
        ({"chargingSchedule": None}, "chargingSchedule is required"),
        ({"schedule__duration": 0}, "duration 0 must be > 0"),
        ({"schedule__startSchedule": "yesterday"}, "not an ISO 8601 date-time"),
        ({"schedule__startSchedule": "0001-01-01T00:00:00+14:00"}, "out of range"),
        ({"validFrom": "2024-01-02T00:00:00Z", "validTo": "2024-01-01T00:00:00Z"}, "validTo must be later"),
        ({"transactionId": 5}, "transactionId is only allowed on a TxProfile"),
        (
            {
                "chargingProfilePurpose": "ChargePointMaxProfile",
                "chargingProfileKind": "Relative",
                "schedule__startSchedule": None,
            },
            "ChargePointMaxProfile cannot be Relative",
        ),
        ({"chargingProfileID": 7}, "unknown field(s) chargingProfileID"),
        (
            {"schedule__chargingSchedulePeriod": [{"startPeriod": s * 60, "limit": 6} for s in range(49)]},
            "49 periods exceed ChargingScheduleMaxPeriods 48",
        ),
    ],
)
def test_parse_rejects_invalid_content_with_a_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProfileError, match=None) as caught:
        profile_from_ocpp(ocpp_payload(**changes), max_stack_level=8, max_periods=48)
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_parse_accepts_the_valid_base_payload() -> None:
    parsed = profile_from_ocpp(ocpp_payload(), max_stack_level=8, max_periods=48)
    assert parsed.schedule.periods == (ChargingSchedulePeriod(0, 16.0), ChargingSchedulePeriod(600, 10.5))


def test_absolute_without_start_schedule_starts_on_reception_when_allowed() -> None:
    received = at(123)
    parsed = profile_from_ocpp(ocpp_payload(schedule__startSchedule=None), received_at=received)
    assert parsed.schedule.start_schedule == received


def test_to_ocpp_writes_camel_case_and_utc_z() -> None:
    built = profile(
        9,
        stack_level=3,
        purpose=TX,
        transaction_id=4,
        periods=[(0, 6.0, 1)],
        duration_s=60,
        start=datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
        valid_to=at(DAY),
    )
    assert profile_to_ocpp(built) == {
        "chargingProfileId": 9,
        "transactionId": 4,
        "stackLevel": 3,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "validTo": "2024-01-02T00:00:00Z",
        "chargingSchedule": {
            "duration": 60,
            "startSchedule": "2024-01-01T00:00:00Z",
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.0, "numberPhases": 1}],
        },
    }


aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]),
)


@st.composite
def any_profile(draw: st.DrawFn) -> ChargingProfile:
    purpose = draw(st.sampled_from(ChargingProfilePurpose))
    kinds = [k for k in ChargingProfileKind if not (purpose is CP_MAX and k is RELATIVE)]
    kind = draw(st.sampled_from(kinds))
    starts = sorted(draw(st.sets(st.integers(1, 10 * DAY), max_size=5)))
    periods = tuple(
        ChargingSchedulePeriod(
            s,
            draw(st.floats(0, 1e6, allow_nan=False, allow_infinity=False)),
            draw(st.none() | st.integers(1, 3)),
        )
        for s in [0, *starts]
    )
    valid_from = draw(st.none() | aware_datetimes)
    valid_to = draw(st.none() | aware_datetimes)
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        valid_to = valid_from + timedelta(seconds=1)
    return ChargingProfile(
        profile_id=draw(st.integers(-(2**31), 2**31 - 1)),
        stack_level=draw(st.integers(0, 100)),
        purpose=purpose,
        kind=kind,
        schedule=ChargingSchedule(
            charging_rate_unit=draw(st.sampled_from(ChargingRateUnit)),
            periods=periods,
            duration_s=draw(st.none() | st.integers(1, 10**7)),
            start_schedule=None if kind is RELATIVE else draw(aware_datetimes),
            min_charging_rate=draw(st.none() | st.floats(0, 1e4, allow_nan=False)),
        ),
        transaction_id=draw(st.none() | st.integers(0, 2**31 - 1)) if purpose is TX else None,
        recurrency_kind=draw(st.sampled_from(RecurrencyKind))
        if kind is RECURRING
        else draw(st.none() | st.sampled_from(RecurrencyKind)),
        valid_from=valid_from,
        valid_to=valid_to,
    )


@given(any_profile())
def test_ocpp_json_round_trip(original: ChargingProfile) -> None:
    wire = json.loads(json.dumps(profile_to_ocpp(original)))
    assert profile_from_ocpp(wire) == original
    assert profile_to_ocpp(profile_from_ocpp(wire)) == wire


json_garbage = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELD_PATHS = [
    *[(key,) for key in ocpp_payload()],
    ("recurrencyKind",),
    ("validFrom",),
    ("transactionId",),
    *[("chargingSchedule", key) for key in ("duration", "startSchedule", "chargingRateUnit", "minChargingRate")],
    ("chargingSchedule", "chargingSchedulePeriod"),
    *[("chargingSchedule", "chargingSchedulePeriod", 0, key) for key in ("startPeriod", "limit", "numberPhases")],
]


@given(st.sampled_from(FIELD_PATHS), json_garbage)
def test_parse_of_a_garbled_field_raises_only_profile_error(path: tuple[str | int, ...], garbage: Any) -> None:
    payload: Any = ocpp_payload()
    target = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = garbage
    with contextlib.suppress(ProfileError):
        profile_from_ocpp(payload)


@given(json_garbage)
def test_parse_of_garbage_raises_only_profile_error(garbage: Any) -> None:
    with contextlib.suppress(ProfileError):
        profile_from_ocpp(garbage if isinstance(garbage, dict) else {"chargingSchedule": garbage})


# ------------------------------------------------------------------------------------------------
# Installation rules (SetChargingProfile)

Accepted = ChargingProfileStatus.Accepted
Rejected = ChargingProfileStatus.Rejected


@pytest.mark.parametrize(
    ("case", "connector_id", "new", "active_tx", "expected"),
    [
        ("CP max on 0", 0, profile(purpose=CP_MAX), None, Accepted),
        ("CP max on a connector", 1, profile(purpose=CP_MAX), None, Rejected),
        ("TxDefault on 0", 0, profile(), None, Accepted),
        ("TxDefault on a connector", 2, profile(), None, Accepted),
        ("TxDefault during a transaction", 1, profile(), 5, Accepted),
        ("TxProfile with its transaction", 1, profile(purpose=TX, transaction_id=5), 5, Accepted),
        ("TxProfile without transactionId", 1, profile(purpose=TX), 5, Accepted),
        ("TxProfile without transaction (TC_058_1)", 1, profile(purpose=TX), None, Rejected),
        ("TxProfile wrong transactionId (TC_058_2)", 1, profile(purpose=TX, transaction_id=6), 5, Rejected),
        ("TxProfile on connector 0", 0, profile(purpose=TX), 5, Rejected),
        ("connector beyond count", 3, profile(), None, Rejected),
        ("negative connector", -1, profile(), None, Rejected),
        ("stack level at max", 1, profile(stack_level=8), None, Accepted),
        ("stack level above max", 1, profile(stack_level=9), None, Rejected),
        ("too many periods", 1, profile(periods=[(60 * i, 6.0) for i in range(49)]), None, Rejected),
        ("max periods", 1, profile(periods=[(60 * i, 6.0) for i in range(48)]), None, Accepted),
    ],
)
def test_install_rules(
    case: str, connector_id: int, new: ChargingProfile, active_tx: int | None, expected: ChargingProfileStatus
) -> None:
    store = ProfileStore()
    status = store.install(connector_id, new, active_transaction_id=active_tx, connector_count=2)
    assert status == expected, (
        case,
        store.check(connector_id, new, active_transaction_id=active_tx, connector_count=2),
    )
    assert status == str(expected)  # a plain "Accepted"/"Rejected" string for the conf
    assert len(store) == (1 if expected is Accepted else 0)


def test_check_explains_a_rejection() -> None:
    reason = ProfileStore().check(1, profile(purpose=TX, transaction_id=6), active_transaction_id=5, connector_count=2)
    assert reason == "transactionId 6 is not the active transaction 5 of connector 1"


def test_install_replaces_same_id_on_any_connector() -> None:
    store = ProfileStore()
    store.install(1, profile(1, stack_level=0), active_transaction_id=None, connector_count=2)
    store.install(2, profile(1, stack_level=3, periods=[(0, 8.0)]), active_transaction_id=None, connector_count=2)
    assert store.all() == [(2, profile(1, stack_level=3, periods=[(0, 8.0)]))]


@pytest.mark.parametrize(
    ("second_connector", "second_purpose", "second_stack", "replaced"),
    [
        (1, TX_DEFAULT, 2, True),  # same connector, stack level and purpose
        (2, TX_DEFAULT, 2, False),  # another connector
        (0, TX_DEFAULT, 2, False),  # connector 0 is a different connector
        (1, TX_DEFAULT, 3, False),  # another stack level
        (1, TX, 2, False),  # another purpose
    ],
)
def test_install_replaces_same_stack_level_and_purpose_on_the_same_connector(
    second_connector: int, second_purpose: ChargingProfilePurpose, second_stack: int, replaced: bool
) -> None:
    store = ProfileStore()
    first = profile(1, stack_level=2)
    second = profile(2, stack_level=second_stack, purpose=second_purpose, transaction_id=None)
    assert store.install(1, first, active_transaction_id=5, connector_count=2) is Accepted
    assert store.install(second_connector, second, active_transaction_id=5, connector_count=2) is Accepted
    ids = [p.profile_id for _, p in store.all()]
    assert ids == ([2] if replaced else [1, 2])


def test_install_binds_a_tx_profile_without_transaction_id_to_the_active_transaction() -> None:
    store = ProfileStore()
    store.install(1, profile(purpose=TX), active_transaction_id=5, connector_count=2)
    assert store.all() == [(1, profile(purpose=TX, transaction_id=5))]


def test_install_rejects_beyond_max_profiles_but_replacement_still_fits() -> None:
    store = ProfileStore(max_profiles=2)
    assert store.install(1, profile(1, stack_level=0), active_transaction_id=None, connector_count=2) is Accepted
    assert store.install(1, profile(2, stack_level=1), active_transaction_id=None, connector_count=2) is Accepted
    assert store.install(1, profile(3, stack_level=2), active_transaction_id=None, connector_count=2) is Rejected
    assert store.install(1, profile(2, stack_level=5), active_transaction_id=None, connector_count=2) is Accepted
    assert store.install(1, profile(3, stack_level=0), active_transaction_id=None, connector_count=2) is Accepted
    assert sorted(p.profile_id for _, p in store.all()) == [2, 3]


def test_rejected_install_leaves_the_store_unchanged() -> None:
    store = store_of((1, profile(1)))
    assert store.install(1, profile(1, purpose=TX), active_transaction_id=None, connector_count=2) is Rejected
    assert store.all() == [(1, profile(1))]


# ------------------------------------------------------------------------------------------------
# ClearChargingProfile, transaction end, load


def clearing_store() -> ProfileStore:
    return store_of(
        (0, profile(1, purpose=CP_MAX, stack_level=0)),
        (0, profile(2, stack_level=1)),
        (1, profile(3, stack_level=1)),
        (1, profile(4, stack_level=2, purpose=TX, transaction_id=5)),
        (2, profile(5, stack_level=2)),
    )


@pytest.mark.parametrize(
    ("criteria", "removed"),
    [
        ({"profile_id": 3}, {3}),
        ({"profile_id": 3, "connector_id": 2, "purpose": CP_MAX}, {3}),  # other criteria ignored
        ({"profile_id": 99}, set()),
        ({"profile_id": 99, "connector_id": 1}, set()),  # id given: criteria not used as fallback
        ({"connector_id": 1}, {3, 4}),
        ({"connector_id": 0}, {1, 2}),
        ({"purpose": TX_DEFAULT}, {2, 3, 5}),
        ({"stack_level": 2}, {4, 5}),
        ({"connector_id": 1, "purpose": TX_DEFAULT, "stack_level": 1}, {3}),
        ({"connector_id": 1, "purpose": TX_DEFAULT, "stack_level": 2}, set()),
        ({"connector_id": 2, "purpose": CP_MAX}, set()),
        ({}, {1, 2, 3, 4, 5}),
    ],
)
def test_clear(criteria: dict[str, Any], removed: set[int]) -> None:
    store = clearing_store()
    assert store.clear(**criteria) is bool(removed)
    assert {p.profile_id for _, p in store.all()} == {1, 2, 3, 4, 5} - removed


def test_transaction_end_removes_only_that_connectors_tx_profiles() -> None:
    store = store_of(
        (1, profile(1, purpose=TX, transaction_id=5)),
        (1, profile(2)),
        (2, profile(3, purpose=TX, transaction_id=6)),
    )
    store.end_transaction(1)
    assert [p.profile_id for _, p in store.all()] == [2, 3]


def test_load_replaces_contents_and_applies_replacement_rules() -> None:
    store = store_of((1, profile(9)))
    store.load([(1, profile(1, stack_level=1)), (1, profile(2, stack_level=1)), (2, profile(2, stack_level=4))])
    assert store.all() == [(2, profile(2, stack_level=4))]


# ------------------------------------------------------------------------------------------------
# Composite schedule: table of scenarios


def periods_of(schedule: CompositeSchedule) -> list[tuple[int, float]]:
    return [(p.start_period_s, p.limit) for p in schedule.periods]


Scenario = tuple[str, list[tuple[int, ChargingProfile]], dict[str, Any], list[tuple[int, float]]]
TX_ON = {"transaction_id": 5, "transaction_start": at(0)}
SCENARIOS: list[Scenario] = [
    ("nothing installed: default fill", [], {}, [(0, 99.0)]),
    (
        "higher stack level wins",
        [(1, profile(1, stack_level=0, periods=[(0, 10)])), (1, profile(2, stack_level=1, periods=[(0, 20)]))],
        {},
        [(0, 20.0)],
    ),
    (
        "higher stack level wins even if lower is on the connector",
        [(1, profile(1, stack_level=1, periods=[(0, 10)])), (0, profile(2, stack_level=2, periods=[(0, 20)]))],
        {},
        [(0, 20.0)],
    ),
    (
        "equal stack level: connector beats connector 0",
        [(1, profile(1, stack_level=1, periods=[(0, 10)])), (0, profile(2, stack_level=1, periods=[(0, 20)]))],
        {},
        [(0, 10.0)],
    ),
    ("TxDefault on 0 applies to connector 1", [(0, profile(1, periods=[(0, 12)]))], {}, [(0, 12.0)]),
    ("TxDefault of connector 2 does not apply", [(2, profile(1, periods=[(0, 12)]))], {}, [(0, 99.0)]),
    (
        "lower stack level shows once the higher one's duration ends",
        [
            (1, profile(1, stack_level=0, periods=[(0, 10)])),
            (1, profile(2, stack_level=1, periods=[(0, 20)], duration_s=1800)),
        ],
        {},
        [(0, 20.0), (1800, 10.0)],
    ),
    (
        "duration cut-off leaves the default",
        [(1, profile(1, periods=[(0, 10), (600, 8)], duration_s=900))],
        {},
        [(0, 10.0), (600, 8.0), (900, 99.0)],
    ),
    (
        "period beyond duration never applies",
        [(1, profile(1, periods=[(0, 10), (1200, 8)], duration_s=900))],
        {},
        [(0, 10.0), (900, 99.0)],
    ),
    ("absolute not started yet", [(1, profile(1, periods=[(0, 10)], start=at(1800)))], {}, [(0, 99.0), (1800, 10.0)]),
    (
        "TxProfile overrides TxDefault, even upwards",
        [
            (1, profile(1, stack_level=5, periods=[(0, 10)])),
            (1, profile(2, purpose=TX, transaction_id=5, periods=[(0, 25)])),
        ],
        TX_ON,
        [(0, 25.0)],
    ),
    (
        "TxProfile of another transaction is ignored",
        [(1, profile(1, periods=[(0, 10)])), (1, profile(2, purpose=TX, transaction_id=6, periods=[(0, 25)]))],
        TX_ON,
        [(0, 10.0)],
    ),
    (
        "TxProfile needs a transaction",
        [(1, profile(2, purpose=TX, transaction_id=5, periods=[(0, 25)]))],
        {},
        [(0, 99.0)],
    ),
    (
        "TxDefault takes over when the TxProfile ends",
        [
            (1, profile(1, periods=[(0, 10)])),
            (1, profile(2, purpose=TX, transaction_id=5, periods=[(0, 25)], duration_s=600)),
        ],
        TX_ON,
        [(0, 25.0), (600, 10.0)],
    ),
    (
        "ChargePointMax caps",
        [(0, profile(1, purpose=CP_MAX, periods=[(0, 16), (1800, 32)])), (1, profile(2, periods=[(0, 20)]))],
        {},
        [(0, 16.0), (1800, 20.0)],
    ),
    ("ChargePointMax alone", [(0, profile(1, purpose=CP_MAX, periods=[(0, 16)]))], {}, [(0, 16.0)]),
    (
        "ChargePointMax caps the TxProfile",
        [
            (0, profile(1, purpose=CP_MAX, periods=[(0, 16)])),
            (1, profile(2, purpose=TX, transaction_id=5, periods=[(0, 32)])),
        ],
        TX_ON,
        [(0, 16.0)],
    ),
    (
        "ChargePointMax stack levels",
        [
            (0, profile(1, purpose=CP_MAX, stack_level=0, periods=[(0, 16)])),
            (0, profile(2, purpose=CP_MAX, stack_level=1, periods=[(0, 30)], duration_s=600)),
        ],
        {},
        [(0, 30.0), (600, 16.0)],
    ),
    (
        "relative starts at the transaction",
        [(1, profile(1, kind=RELATIVE, periods=[(0, 6), (900, 12)]))],
        {"transaction_id": 5, "transaction_start": at(-600)},
        [(0, 6.0), (300, 12.0)],
    ),
    (
        "relative without transaction contributes nothing",
        [(1, profile(1, kind=RELATIVE, periods=[(0, 6)]))],
        {},
        [(0, 99.0)],
    ),
    (
        "validFrom and validTo",
        [(1, profile(1, periods=[(0, 10)], valid_from=at(600), valid_to=at(1200)))],
        {},
        [(0, 99.0), (600, 10.0), (1200, 99.0)],
    ),
    (
        "expired higher stack lets lower through",
        [
            (1, profile(1, stack_level=0, periods=[(0, 10)])),
            (1, profile(2, stack_level=3, periods=[(0, 4)], valid_to=at(900))),
        ],
        {},
        [(0, 4.0), (900, 10.0)],
    ),
    (
        "daily recurring across midnight",
        [(1, profile(1, kind=RECURRING, start=at(-2 * HOUR), periods=[(0, 32), (8 * HOUR, 10)]))],
        {"now": at(-3 * HOUR), "duration_s": DAY},
        [(0, 10.0), (HOUR, 32.0), (9 * HOUR, 10.0)],
    ),
    (
        "daily recurring with duration, anchor in the future",
        [(1, profile(1, kind=RECURRING, start=at(30 * DAY + 22 * HOUR), periods=[(0, 32)], duration_s=2 * HOUR))],
        {"duration_s": 2 * DAY},
        [(0, 99.0), (22 * HOUR, 32.0), (24 * HOUR, 99.0), (46 * HOUR, 32.0)],
    ),
    (
        "weekly recurring",
        [
            (
                1,
                profile(
                    1,
                    kind=RECURRING,
                    recurrency=RecurrencyKind.Weekly,
                    start=at(2 * DAY),
                    periods=[(0, 6)],
                    duration_s=DAY,
                ),
            )
        ],
        {"duration_s": 14 * DAY},
        [(0, 99.0), (2 * DAY, 6.0), (3 * DAY, 99.0), (9 * DAY, 6.0), (10 * DAY, 99.0)],
    ),
    (
        "equal neighbours merge",
        [
            (1, profile(1, periods=[(0, 10), (600, 10), (1200, 12)])),
            (0, profile(2, purpose=CP_MAX, periods=[(0, 10), (900, 11)])),
        ],
        {},
        [(0, 10.0), (1200, 11.0)],
    ),
    (
        "A profile reported in W uses numberPhases",
        [(1, profile(1, periods=[(0, 16, 1), (600, 16)]))],
        {"unit": W},
        [(0, 3680.0), (600, 11040.0)],
    ),
    (
        "W profile reported in A uses numberPhases",
        [(1, profile(1, unit=W, periods=[(0, 7360, 1), (600, 7360)]))],
        {},
        [(0, 32.0), (600, 10.6)],
    ),
    (
        "W vs A compared in the requested unit",
        [(0, profile(1, purpose=CP_MAX, unit=W, periods=[(0, 11040)])), (1, profile(2, periods=[(0, 20), (600, 10)]))],
        {},
        [(0, 16.0), (600, 10.0)],
    ),
    (
        "other voltage and phases",
        [(1, profile(1, periods=[(0, 10)]))],
        {"unit": W, "voltage_V": 120.0, "phases": 1, "default_limit": 1.0},
        [(0, 1200.0)],
    ),
    (
        "connector 0 sees only ChargePointMax",
        [(0, profile(1, purpose=CP_MAX, periods=[(0, 32)])), (0, profile(2, periods=[(0, 6)]))],
        {"connector_id": 0},
        [(0, 32.0)],
    ),
]


@pytest.mark.parametrize(("case", "items", "query", "expected"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_composite_schedule(
    case: str, items: list[tuple[int, ChargingProfile]], query: dict[str, Any], expected: list[tuple[int, float]]
) -> None:
    args: dict[str, Any] = {
        "connector_id": 1,
        "now": at(0),
        "duration_s": 3600,
        "unit": A,
        "transaction_start": None,
        "transaction_id": None,
        "default_limit": 99.0,
    }
    args.update(query)
    result = composite_schedule(store_of(*items), **args)
    assert periods_of(result) == expected
    assert result.start == args["now"] and result.duration_s == args["duration_s"] and result.unit is args["unit"]


def test_composite_phases_are_the_smallest_stated() -> None:
    store = store_of(
        (0, profile(1, purpose=CP_MAX, periods=[(0, 16, 3)])),
        (1, profile(2, periods=[(0, 32, 1), (600, 32)])),
    )
    result = composite_schedule(store, 1, at(0), 1200, A, transaction_start=None, transaction_id=None)
    assert result.periods == (ChargingSchedulePeriod(0, 16.0, 1), ChargingSchedulePeriod(600, 16.0, 3))


def test_composite_default_fill_follows_libocpp_without_default_limit() -> None:
    store = ProfileStore()
    in_a = composite_schedule(store, 1, at(0), 60, A, transaction_start=None, transaction_id=None)
    in_w = composite_schedule(store, 1, at(0), 60, W, transaction_start=None, transaction_id=None)
    assert periods_of(in_a) == [(0, 48.0)]
    assert periods_of(in_w) == [(0, 33120.0)]


def test_composite_floors_now_to_the_second_and_serialises() -> None:
    store = store_of((1, profile(1, periods=[(0, 10), (60, 6)])))
    result = composite_schedule(
        store,
        1,
        at(30) + timedelta(microseconds=900_000),
        120,
        A,
        transaction_start=None,
        transaction_id=None,
        default_limit=32.0,
    )
    assert composite_to_ocpp(result) == {
        "duration": 120,
        "startSchedule": "2024-01-01T00:00:30Z",
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}, {"startPeriod": 30, "limit": 6.0}],
    }


@pytest.mark.parametrize(
    ("bad", "error"),
    [({"duration_s": 0}, "duration_s"), ({"now": datetime(2024, 1, 1)}, "timezone-aware"), ({"phases": 4}, "phases")],
)
def test_composite_rejects_bad_arguments(bad: dict[str, Any], error: str) -> None:
    args: dict[str, Any] = {
        "now": at(0),
        "duration_s": 60,
        "unit": A,
        "transaction_start": None,
        "transaction_id": None,
    }
    args.update(bad)
    with pytest.raises(ValueError, match=error):
        composite_schedule(ProfileStore(), 1, **args)


@pytest.mark.parametrize(
    ("limit", "from_unit", "to_unit", "phases", "expected"),
    [
        (16, A, W, 3, 11040.0),
        (16, A, W, 1, 3680.0),
        (11040, W, A, 3, 16.0),
        (7360, W, A, 3, 10.6),
        (7360, W, A, 1, 32.0),
        (10, A, A, 1, 10),
    ],
)
def test_convert_limit(
    limit: float, from_unit: ChargingRateUnit, to_unit: ChargingRateUnit, phases: int, expected: float
) -> None:
    assert convert_limit(limit, from_unit, to_unit, voltage_V=230.0, phases=phases) == expected


# ------------------------------------------------------------------------------------------------
# current_limit_A and next_change


def test_current_limit_is_none_without_profiles_and_per_phase_amperes_with_them() -> None:
    assert current_limit_A(ProfileStore(), 1, at(0), transaction_start=None, transaction_id=None) is None
    store = store_of((1, profile(1, unit=W, periods=[(0, 7360, 2)])))
    assert current_limit_A(store, 1, at(0), transaction_start=None, transaction_id=None) == 16.0


@pytest.mark.parametrize(
    ("items", "now", "tx", "expected"),
    [
        ([], at(0), None, None),
        ([(1, profile(1, periods=[(0, 10)]))], at(0), None, None),
        ([(1, profile(1, periods=[(0, 10), (600, 10), (900, 6)]))], at(0), None, at(900)),  # 600 is no change
        ([(1, profile(1, periods=[(0, 10)], duration_s=600))], at(0), None, at(600)),
        ([(1, profile(1, periods=[(0, 10)], start=at(HOUR)))], at(0), None, at(HOUR)),
        ([(1, profile(1, periods=[(0, 10)], valid_to=at(50 * DAY)))], at(0), None, at(50 * DAY)),
        (
            [(1, profile(1, kind=RECURRING, start=at(22 * HOUR), periods=[(0, 32), (8 * HOUR, 10)]))],
            at(23 * HOUR),
            None,
            at(30 * HOUR),
        ),
        ([(1, profile(1, kind=RECURRING, start=at(22 * HOUR), periods=[(0, 10)]))], at(0), None, None),
        (
            [
                (
                    1,
                    profile(
                        1,
                        kind=RECURRING,
                        recurrency=RecurrencyKind.Weekly,
                        start=at(-DAY),
                        periods=[(0, 8)],
                        duration_s=HOUR,
                    ),
                )
            ],
            at(HOUR),
            None,
            at(6 * DAY),
        ),
        # A weekly change that only appears after a far-away validFrom.
        (
            [
                (
                    1,
                    profile(
                        1,
                        kind=RECURRING,
                        recurrency=RecurrencyKind.Weekly,
                        start=at(0),
                        periods=[(0, 8), (3 * DAY, 6)],
                        valid_from=at(100 * DAY),
                        stack_level=1,
                    ),
                ),
                (1, profile(2, stack_level=0, periods=[(0, 8)])),
            ],
            at(0),
            None,
            at(101 * DAY),
        ),
        ([(1, profile(1, kind=RELATIVE, periods=[(0, 6), (HOUR, 16)]))], at(10), 0, at(HOUR)),
        ([(1, profile(1, periods=[(0, 6, 3), (60, 6, 1)]))], at(0), None, at(60)),  # phases change
    ],
)
def test_next_change(
    items: list[tuple[int, ChargingProfile]], now: datetime, tx: int | None, expected: datetime | None
) -> None:
    start = None if tx is None else at(tx)
    assert next_change(store_of(*items), 1, now, transaction_start=start, transaction_id=None) == expected


# ------------------------------------------------------------------------------------------------
# OCTT test cases (OCPP 1.6 compliance test tool)


def csms_profile(**fields: Any) -> ChargingProfile:
    """A profile as the OCTT sends it, through the JSON parser."""
    return profile_from_ocpp(fields, max_stack_level=8, max_periods=48)


def test_tc_056_tx_default_profile_limits_the_next_transaction() -> None:
    store = ProfileStore()
    status = store.install(
        1,
        csms_profile(
            chargingProfileId=1,
            stackLevel=0,
            chargingProfilePurpose="TxDefaultProfile",
            chargingProfileKind="Relative",
            chargingSchedule={"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]},
        ),
        active_transaction_id=None,
        connector_count=1,
    )
    assert status == "Accepted"
    assert current_limit_A(store, 1, at(0), transaction_start=None, transaction_id=None) is None
    assert current_limit_A(store, 1, at(60), transaction_start=at(30), transaction_id=1) == 6.0


def test_tc_057_tx_profile_for_the_running_transaction() -> None:
    store = store_of((1, profile(1, periods=[(0, 10)])))
    tx_profile = csms_profile(
        chargingProfileId=2,
        transactionId=1,
        stackLevel=0,
        chargingProfilePurpose="TxProfile",
        chargingProfileKind="Relative",
        chargingSchedule={"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]},
    )
    assert store.install(1, tx_profile, active_transaction_id=1, connector_count=1) == "Accepted"
    assert current_limit_A(store, 1, at(60), transaction_start=at(0), transaction_id=1) == 6.0
    store.end_transaction(1)
    assert current_limit_A(store, 1, at(60), transaction_start=None, transaction_id=None) == 10.0


@pytest.mark.parametrize(("case", "transaction_id", "active"), [("TC_058_1", None, None), ("TC_058_2", 2, 1)])
def test_tc_058_tx_profile_without_matching_transaction_is_rejected(
    case: str, transaction_id: int | None, active: int | None
) -> None:
    fields: dict[str, Any] = {
        "chargingProfileId": 3,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]},
    }
    if transaction_id is not None:
        fields["transactionId"] = transaction_id
    store = ProfileStore()
    assert store.install(1, csms_profile(**fields), active_transaction_id=active, connector_count=1) == "Rejected"
    assert store.all() == []


def test_tc_066_get_composite_schedule() -> None:
    store = ProfileStore()
    installs = [
        (0, profile(1, purpose=CP_MAX, periods=[(0, 16)]), None),
        (1, profile(2, kind=RELATIVE, periods=[(0, 10), (120, 20)]), 1),
        (
            1,
            profile(
                3, purpose=TX, transaction_id=1, kind=RELATIVE, periods=[(0, 6), (200, 12), (260, 32)], duration_s=300
            ),
            1,
        ),
    ]
    for connector_id, new, active in installs:
        assert store.install(connector_id, new, active_transaction_id=active, connector_count=1) == "Accepted"
    result = composite_schedule(store, 1, at(0), 400, A, transaction_start=at(0), transaction_id=1, default_limit=32.0)
    assert composite_to_ocpp(result)["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 6.0},
        {"startPeriod": 200, "limit": 12.0},
        {"startPeriod": 260, "limit": 16.0},
    ]


def test_tc_067_clear_charging_profile() -> None:
    store = ProfileStore()
    store.install(1, profile(1, stack_level=0, periods=[(0, 10)]), active_transaction_id=None, connector_count=1)
    store.install(1, profile(2, stack_level=1, periods=[(0, 6)]), active_transaction_id=None, connector_count=1)
    assert store.clear(profile_id=2) is True  # Accepted
    assert current_limit_A(store, 1, at(0), transaction_start=None, transaction_id=None) == 10.0
    assert store.clear(profile_id=2) is False  # Unknown
    assert store.clear(connector_id=1, purpose=TX_DEFAULT, stack_level=0) is True
    assert current_limit_A(store, 1, at(0), transaction_start=None, transaction_id=None) is None
    assert store.clear() is False


def test_tc_072_stacking_charging_profiles() -> None:
    store = ProfileStore()
    base = profile(1, stack_level=0, kind=RELATIVE, periods=[(0, 10)])
    top = profile(2, stack_level=1, kind=RELATIVE, periods=[(0, 6)], duration_s=260)
    for new in (base, top):
        assert store.install(1, new, active_transaction_id=1, connector_count=1) == "Accepted"
    result = composite_schedule(store, 1, at(0), 400, A, transaction_start=at(0), transaction_id=1)
    assert periods_of(result) == [(0, 6.0), (260, 10.0)]


def test_tc_082_tx_default_profile_during_a_transaction_applies_at_once() -> None:
    store = store_of((1, profile(1, stack_level=0, periods=[(0, 16)])))
    assert current_limit_A(store, 1, at(600), transaction_start=at(0), transaction_id=1) == 16.0
    new = profile(2, stack_level=1, start=at(500), periods=[(0, 8)])
    assert store.install(0, new, active_transaction_id=1, connector_count=1) == "Accepted"
    assert current_limit_A(store, 1, at(600), transaction_start=at(0), transaction_id=1) == 8.0


# ------------------------------------------------------------------------------------------------
# Properties against a brute-force reference

GRID = 900  # every random time is a multiple of 15 minutes after T0
_REF_STEP = {RecurrencyKind.Daily: timedelta(days=1), RecurrencyKind.Weekly: timedelta(days=7)}


def ref_period(p: ChargingProfile, t: datetime, tx_start: datetime | None) -> ChargingSchedulePeriod | None:
    """The period of ``p`` in force at ``t``, written as plainly as possible."""
    if p.valid_from is not None and t < p.valid_from:
        return None
    if p.valid_to is not None and t >= p.valid_to:
        return None
    if p.kind is RELATIVE:
        if tx_start is None:
            return None
        begin = tx_start
    else:
        assert p.schedule.start_schedule is not None
        begin = p.schedule.start_schedule
        if p.kind is RECURRING:
            assert p.recurrency_kind is not None
            step = _REF_STEP[p.recurrency_kind]
            while begin > t:
                begin -= step
            while begin + step <= t:
                begin += step
    elapsed = (t - begin).total_seconds()
    if elapsed < 0 or (p.schedule.duration_s is not None and elapsed >= p.schedule.duration_s):
        return None
    current = None
    for period in p.schedule.periods:
        if period.start_period_s <= elapsed:
            current = period
    return current


def ref_to_a(period: ChargingSchedulePeriod, unit: ChargingRateUnit) -> float:
    if unit is A:
        return period.limit
    return math.floor(period.limit / (230.0 * (period.number_phases or 3)) * 10 + 1e-6) / 10


def ref_limit(
    items: list[tuple[int, ChargingProfile]], t: datetime, tx_start: datetime | None, tx_id: int | None
) -> tuple[float, int | None] | None:
    """Composite limit in A at ``t`` for connector 1: per purpose the best stack level that covers ``t``."""

    def winner(candidates: list[tuple[int, ChargingProfile]]) -> tuple[ChargingProfile, ChargingSchedulePeriod] | None:
        best: tuple[tuple[int, bool], ChargingProfile, ChargingSchedulePeriod] | None = None
        for cid, p in candidates:
            period = ref_period(p, t, tx_start)
            rank = (p.stack_level, cid == 1)
            if period is not None and (best is None or rank > best[0]):
                best = (rank, p, period)
        return None if best is None else (best[1], best[2])

    tx = winner(
        [
            (c, p)
            for c, p in items
            if p.purpose is TX and c == 1 and tx_id is not None and p.transaction_id in (None, tx_id)
        ]
    )
    default = winner([(c, p) for c, p in items if p.purpose is TX_DEFAULT and c in (0, 1)])
    cap = winner([(c, p) for c, p in items if p.purpose is CP_MAX and c == 0])
    chosen = [w for w in (tx or default, cap) if w is not None]
    if not chosen:
        return None
    phases = [period.number_phases for _, period in chosen if period.number_phases is not None]
    return min(ref_to_a(period, p.schedule.charging_rate_unit) for p, period in chosen), min(phases, default=None)


grid_time = st.integers(-10 * DAY // GRID, 10 * DAY // GRID).map(lambda k: at(k * GRID))


@st.composite
def grid_profile(draw: st.DrawFn, profile_id: int) -> tuple[int, ChargingProfile]:
    purpose = draw(st.sampled_from(ChargingProfilePurpose))
    kind = draw(st.sampled_from([k for k in ChargingProfileKind if not (purpose is CP_MAX and k is RELATIVE)]))
    unit = draw(st.sampled_from(ChargingRateUnit))
    limits = [0.0, 6.0, 10.0, 16.0, 32.0] if unit is A else [0.0, 1380.0, 4140.0, 7360.0, 11040.0]
    gaps = draw(st.lists(st.integers(1, 16), max_size=3))
    starts = [0]
    for gap in gaps:
        starts.append(starts[-1] + gap * GRID)
    periods = tuple(
        ChargingSchedulePeriod(s, draw(st.sampled_from(limits)), draw(st.none() | st.sampled_from([1, 3])))
        for s in starts
    )
    valid_from = draw(st.none() | grid_time)
    valid_to = draw(st.none() | grid_time)
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        valid_from, valid_to = valid_to, valid_from + timedelta(seconds=GRID)
    connector = 0 if purpose is CP_MAX else (1 if purpose is TX else draw(st.sampled_from([0, 1, 2])))
    return connector, ChargingProfile(
        profile_id=profile_id,
        stack_level=draw(st.integers(0, 3)),
        purpose=purpose,
        kind=kind,
        schedule=ChargingSchedule(
            charging_rate_unit=unit,
            periods=periods,
            duration_s=draw(st.none() | st.integers(1, 48).map(lambda k: k * GRID)),
            start_schedule=None if kind is RELATIVE else draw(grid_time),
        ),
        transaction_id=draw(st.none() | st.sampled_from([1, 2])) if purpose is TX else None,
        recurrency_kind=draw(st.sampled_from(RecurrencyKind)) if kind is RECURRING else None,
        valid_from=valid_from,
        valid_to=valid_to,
    )


@st.composite
def situation(
    draw: st.DrawFn,
) -> tuple[ProfileStore, list[tuple[int, ChargingProfile]], datetime, datetime | None, int | None]:
    count = draw(st.integers(0, 6))
    items = [draw(grid_profile(i)) for i in range(count)]
    store = store_of(*items)
    now = draw(st.integers(-2 * DAY // GRID, 2 * DAY // GRID).map(lambda k: at(k * GRID)))
    tx_id = draw(st.none() | st.sampled_from([1, 2]))
    tx_start = None if tx_id is None else now - timedelta(seconds=GRID * draw(st.integers(0, 40)))
    return store, store.all(), now, tx_start, tx_id


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(situation(), st.integers(1, 3 * DAY // GRID))
def test_composite_equals_the_minimum_of_the_per_purpose_winners(
    case: tuple[ProfileStore, list[tuple[int, ChargingProfile]], datetime, datetime | None, int | None], steps: int
) -> None:
    store, items, now, tx_start, tx_id = case
    result = composite_schedule(
        store, 1, now, steps * GRID, A, transaction_start=tx_start, transaction_id=tx_id, default_limit=999.0
    )
    starts = [p.start_period_s for p in result.periods]
    assert starts[0] == 0 and starts == sorted(set(starts))
    for before, after in zip(result.periods, result.periods[1:], strict=False):
        assert (before.limit, before.number_phases) != (after.limit, after.number_phases)  # merged
    for k in range(steps):
        t = now + timedelta(seconds=k * GRID)
        in_force = [p for p in result.periods if p.start_period_s <= k * GRID][-1]
        expected = ref_limit(items, t, tx_start, tx_id)
        assert (in_force.limit, in_force.number_phases) == (expected if expected is not None else (999.0, None)), t
        assert current_limit_A(store, 1, t, transaction_start=tx_start, transaction_id=tx_id) == (
            None if expected is None else expected[0]
        )
        # Every period starts on a grid point, so no change can hide between two of them.
        assert all(s % GRID == 0 for s in starts)


@PROPERTY_SETTINGS
@given(situation())
def test_next_change_is_the_first_change_of_the_limit(
    case: tuple[ProfileStore, list[tuple[int, ChargingProfile]], datetime, datetime | None, int | None],
) -> None:
    store, items, now, tx_start, tx_id = case
    found = next_change(store, 1, now, transaction_start=tx_start, transaction_id=tx_id)
    current = ref_limit(items, now, tx_start, tx_id)
    # All random edges lie within 13 days of now and the pattern repeats weekly after the last one.
    horizon = (found - now) // timedelta(seconds=GRID) if found is not None else 21 * DAY // GRID
    first_change = next(
        (
            k
            for k in range(1, horizon + 1)
            if ref_limit(items, now + timedelta(seconds=k * GRID), tx_start, tx_id) != current
        ),
        None,
    )
    if found is None:
        assert first_change is None
    else:
        assert first_change is not None
        assert found == now + timedelta(seconds=first_change * GRID)


# ------------------------------------------------------------------------------------------------
# Dataclass invariants


@pytest.mark.parametrize(
    "build",
    [
        lambda: ChargingSchedulePeriod(-1, 6.0),
        lambda: ChargingSchedulePeriod(0, math.inf),
        lambda: ChargingSchedule(A, (ChargingSchedulePeriod(0, 6.0),), start_schedule=datetime(2024, 1, 1)),
        lambda: ChargingSchedule(A, (ChargingSchedulePeriod(0, 6.0),), min_charging_rate=-1.0),
        lambda: replace(profile(), valid_from=datetime(2024, 1, 1)),
        lambda: replace(profile(), stack_level=-1),
    ],
)
def test_invalid_objects_cannot_be_built(build: Callable[[], object]) -> None:
    with pytest.raises(ProfileError):
        build()
