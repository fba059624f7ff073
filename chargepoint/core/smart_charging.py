"""OCPP 1.6 smart charging: charging profiles, their installation rules and the composite schedule.

Pure: no I/O, no clock, no OCPP library types. Every time comes in as an argument, so the runtime
owns the clock and tests never sleep. The runtime persists the ``profile_to_ocpp`` dicts of
``ProfileStore.all()`` and hands them back through ``ProfileStore.load`` at boot.

How a limit is found for a connector at a moment ``t`` (``GetCompositeSchedule``, OCPP 1.6 §3.13):

1. Per purpose, the *winner* is the valid profile with the highest stack level that has a period
   covering ``t``; a profile whose schedule has ended (``duration``), has not started yet, or is
   outside ``validFrom``/``validTo`` lets the next stack level through.
2. A TxProfile of the active transaction overrides the TxDefaultProfile.
3. The ChargePointMaxProfile (connector 0) caps the result: the limit is the minimum of the two,
   each converted to the requested unit with ``W = A × voltage_V × phases`` (the period's
   ``number_phases`` if given, else the ``phases`` argument).

Choices where the specification is silent or where implementations differ:

- Times are whole seconds (periods are whole seconds in OCPP): every datetime is floored to the
  second. All datetimes must be timezone-aware; the parser reads a naive OCPP time as UTC.
- ``validFrom`` is inclusive, ``validTo`` exclusive.
- Recurring profiles repeat every 86 400 s (Daily) or 604 800 s (Weekly) of UTC time from
  ``startSchedule``, which is only an anchor: the recurrence also applies before it (use
  ``validFrom`` to delay it). A ``duration`` longer than the recurrence is cut by the next
  occurrence; without ``duration`` the last period lasts until the next occurrence (as libocpp).
- Relative profiles start at ``transaction_start``; without a transaction they contribute nothing.
  Absolute and Recurring TxDefaultProfiles apply with or without a transaction, so the composite
  schedule of an idle connector shows what a new transaction would get.
- A TxProfile needs an active transaction; ``install`` binds a TxProfile sent without
  ``transactionId`` to the active transaction (the 1.6 note on RemoteStartTransaction), so it can
  never leak into the next one.
- A TxDefaultProfile on connector 0 applies to every connector; at equal stack level a profile
  installed on the connector itself wins over the one on connector 0.
- Composite of connector 0: the ChargePointMaxProfile alone (summing per-connector limits is the
  caller's business).
- Stretches where no profile applies are filled with ``default_limit`` (in the requested unit),
  as libocpp does: a 1.6 schedule cannot have holes, because each period lasts until the next one
  starts. ``default_limit=None`` means libocpp's default, 48 A per phase (33 120 W at 230 V × 3);
  the runtime should pass its hardware maximum. ``current_limit_A`` returns ``None`` instead.
- ``number_phases`` of a composite period is the smallest ``number_phases`` stated by the
  applicable limits (any layer restricting the phases restricts the result), ``None`` if none does.
- A converted limit (A→W or W→A) is floored to 0.1, the resolution of OCPP limits, so a
  conversion never offers more than the profile allows.
- An Absolute profile without ``startSchedule`` is invalid unless ``profile_from_ocpp`` gets
  ``received_at`` (libocpp's AllowChargingProfileWithoutStartSchedule: it starts on reception).

Size: the profile model, its parser, the installation rules and the composite-schedule algorithm of one OCPP feature
(section 3.13), sharing the profile types; each part is short. It splits into model and composite when the OCPP
2.0.1 profiles arrive.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from chargepoint.core.errors import ChargePointError

__all__ = [
    "DEFAULT_LIMIT_A",
    "ChargingProfile",
    "ChargingProfileKind",
    "ChargingProfilePurpose",
    "ChargingProfileStatus",
    "ChargingRateUnit",
    "ChargingSchedule",
    "ChargingSchedulePeriod",
    "CompositeSchedule",
    "ProfileError",
    "ProfileStore",
    "RecurrencyKind",
    "composite_schedule",
    "composite_to_ocpp",
    "convert_limit",
    "current_limit_A",
    "next_change",
    "profile_from_ocpp",
    "profile_to_ocpp",
]

DEFAULT_LIMIT_A = 48.0
"""Fill for stretches without a profile when the caller gives no ``default_limit`` (libocpp's)."""

MAX_NUMBER_PHASES = 3
_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_E = TypeVar("_E", bound=StrEnum)


class ProfileError(ChargePointError, ValueError):
    """A charging profile is malformed or breaks an OCPP 1.6 rule; the message says which."""


class ChargingProfilePurpose(StrEnum):
    ChargePointMaxProfile = "ChargePointMaxProfile"
    TxDefaultProfile = "TxDefaultProfile"
    TxProfile = "TxProfile"


class ChargingProfileKind(StrEnum):
    Absolute = "Absolute"
    Recurring = "Recurring"
    Relative = "Relative"


class RecurrencyKind(StrEnum):
    Daily = "Daily"
    Weekly = "Weekly"


class ChargingRateUnit(StrEnum):
    A = "A"
    W = "W"


class ChargingProfileStatus(StrEnum):
    """SetChargingProfile.conf status (a ``str``: compare it with ``"Accepted"``)."""

    Accepted = "Accepted"
    Rejected = "Rejected"


_RECURRENCE_S = {RecurrencyKind.Daily: _DAY_S, RecurrencyKind.Weekly: _WEEK_S}


def _require_aware(value: datetime | None, name: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise ProfileError(f"{name} must be timezone-aware")


@dataclass(frozen=True, slots=True)
class ChargingSchedulePeriod:
    """One step of a schedule: from ``start_period_s`` after the schedule start, at most ``limit``."""

    start_period_s: int
    limit: float
    number_phases: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", float(self.limit))  # an int from JSON or a caller stays a float
        if self.start_period_s < 0:
            raise ProfileError(f"startPeriod {self.start_period_s} is negative")
        if not math.isfinite(self.limit) or self.limit < 0:
            raise ProfileError(f"limit {self.limit} must be a finite number >= 0")
        if self.number_phases is not None and not 1 <= self.number_phases <= MAX_NUMBER_PHASES:
            raise ProfileError(f"numberPhases {self.number_phases} must be 1..{MAX_NUMBER_PHASES}")


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    charging_rate_unit: ChargingRateUnit
    periods: tuple[ChargingSchedulePeriod, ...]
    duration_s: int | None = None
    start_schedule: datetime | None = None
    min_charging_rate: float | None = None

    def __post_init__(self) -> None:
        if not self.periods:
            raise ProfileError("chargingSchedulePeriod must hold at least one period")
        if self.periods[0].start_period_s != 0:
            raise ProfileError(f"the first period must start at 0, not {self.periods[0].start_period_s}")
        for before, after in zip(self.periods, self.periods[1:], strict=False):
            if after.start_period_s <= before.start_period_s:
                raise ProfileError(f"startPeriod must increase: {after.start_period_s} follows {before.start_period_s}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ProfileError(f"duration {self.duration_s} must be > 0")
        if self.min_charging_rate is not None and (
            not math.isfinite(self.min_charging_rate) or self.min_charging_rate < 0
        ):
            raise ProfileError(f"minChargingRate {self.min_charging_rate} must be a finite number >= 0")
        _require_aware(self.start_schedule, "startSchedule")


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """A ``csChargingProfiles`` object. Construction enforces the rules that need no context."""

    profile_id: int
    stack_level: int
    purpose: ChargingProfilePurpose
    kind: ChargingProfileKind
    schedule: ChargingSchedule
    transaction_id: int | None = None
    recurrency_kind: RecurrencyKind | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    def __post_init__(self) -> None:
        if self.stack_level < 0:
            raise ProfileError(f"stackLevel {self.stack_level} is negative")
        if self.transaction_id is not None and self.purpose is not ChargingProfilePurpose.TxProfile:
            raise ProfileError(f"transactionId is only allowed on a TxProfile, not on a {self.purpose}")
        start = self.schedule.start_schedule
        if self.kind is ChargingProfileKind.Absolute and start is None:
            raise ProfileError("an Absolute profile needs chargingSchedule.startSchedule")
        if self.kind is ChargingProfileKind.Relative and start is not None:
            raise ProfileError("a Relative profile must not have chargingSchedule.startSchedule")
        if self.kind is ChargingProfileKind.Recurring:
            if self.recurrency_kind is None:
                raise ProfileError("a Recurring profile needs recurrencyKind")
            if start is None:
                raise ProfileError("a Recurring profile needs chargingSchedule.startSchedule")
        if self.purpose is ChargingProfilePurpose.ChargePointMaxProfile and self.kind is ChargingProfileKind.Relative:
            raise ProfileError("a ChargePointMaxProfile cannot be Relative: there is no transaction to start from")
        _require_aware(self.valid_from, "validFrom")
        _require_aware(self.valid_to, "validTo")
        if self.valid_from is not None and self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ProfileError("validTo must be later than validFrom")


@dataclass(frozen=True, slots=True)
class CompositeSchedule:
    """A GetCompositeSchedule result: ``periods`` start relative to ``start`` and cover ``duration_s``."""

    start: datetime
    duration_s: int
    unit: ChargingRateUnit
    periods: tuple[ChargingSchedulePeriod, ...]


# --------------------------------------------------------------------------------------------------
# OCPP JSON mapping

_PROFILE_KEYS = frozenset(
    {
        "chargingProfileId",
        "transactionId",
        "stackLevel",
        "chargingProfilePurpose",
        "chargingProfileKind",
        "recurrencyKind",
        "validFrom",
        "validTo",
        "chargingSchedule",
    }
)
_SCHEDULE_KEYS = frozenset(
    {"duration", "startSchedule", "chargingRateUnit", "chargingSchedulePeriod", "minChargingRate"}
)
_PERIOD_KEYS = frozenset({"startPeriod", "limit", "numberPhases"})


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ProfileError(f"{where} must be an object")
    return value


def _check_keys(obj: Mapping[str, object], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ProfileError(f"{where}: unknown field(s) {', '.join(unknown)}")


def _get(obj: Mapping[str, object], key: str, where: str, *, required: bool) -> object:
    value = obj.get(key)
    if value is None and required:
        raise ProfileError(f"{where}.{key} is required")
    return value


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{name} must be an integer, got {value!r}")
    return value


def _opt_int(value: object, name: str) -> int | None:
    return None if value is None else _int(value, name)


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(f"{name} must be a number, got {value!r}")
    return float(value)


def _opt_number(value: object, name: str) -> float | None:
    return None if value is None else _number(value, name)


def _enum(cls: type[_E], value: object, name: str) -> _E:
    try:
        return cls(str(value))
    except ValueError:
        allowed = ", ".join(member.value for member in cls)
        raise ProfileError(f"{name} {value!r} is not one of {allowed}") from None


def _time(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProfileError(f"{name} must be an ISO 8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ProfileError(f"{name} {value!r} is not an ISO 8601 date-time") from None
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)  # OCPP times are UTC; be lenient about a missing "Z"
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ProfileError(f"{name} {value!r} is out of range") from None


def _format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def profile_from_ocpp(
    payload: Mapping[str, object],
    *,
    max_stack_level: int | None = None,
    max_periods: int | None = None,
    received_at: datetime | None = None,
) -> ChargingProfile:
    """Parse an OCPP 1.6 ``csChargingProfiles`` object (camelCase JSON, as decoded by ``json``).

    ``max_stack_level``/``max_periods`` (ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods)
    are checked when given. ``received_at`` becomes the start of an Absolute profile that has no
    ``startSchedule``; without it such a profile is an error. Raises ``ProfileError``.
    """
    where = "csChargingProfiles"
    obj = _mapping(payload, where)
    _check_keys(obj, _PROFILE_KEYS, where)
    sched = _mapping(_get(obj, "chargingSchedule", where, required=True), f"{where}.chargingSchedule")
    _check_keys(sched, _SCHEDULE_KEYS, "chargingSchedule")
    raw_periods = _get(sched, "chargingSchedulePeriod", "chargingSchedule", required=True)
    if not isinstance(raw_periods, list | tuple):
        raise ProfileError("chargingSchedule.chargingSchedulePeriod must be an array")
    if max_periods is not None and len(raw_periods) > max_periods:
        raise ProfileError(f"{len(raw_periods)} periods exceed ChargingScheduleMaxPeriods {max_periods}")
    periods = []
    for index, raw in enumerate(raw_periods):
        name = f"chargingSchedulePeriod[{index}]"
        item = _mapping(raw, name)
        _check_keys(item, _PERIOD_KEYS, name)
        periods.append(
            ChargingSchedulePeriod(
                start_period_s=_int(_get(item, "startPeriod", name, required=True), f"{name}.startPeriod"),
                limit=_number(_get(item, "limit", name, required=True), f"{name}.limit"),
                number_phases=_opt_int(item.get("numberPhases"), f"{name}.numberPhases"),
            )
        )
    kind = _enum(ChargingProfileKind, _get(obj, "chargingProfileKind", where, required=True), "chargingProfileKind")
    start_schedule = _time(sched.get("startSchedule"), "startSchedule")
    if start_schedule is None and kind is ChargingProfileKind.Absolute and received_at is not None:
        _require_aware(received_at, "received_at")
        start_schedule = received_at.astimezone(UTC)
    stack_level = _int(_get(obj, "stackLevel", where, required=True), "stackLevel")
    if max_stack_level is not None and stack_level > max_stack_level:
        raise ProfileError(f"stackLevel {stack_level} exceeds ChargeProfileMaxStackLevel {max_stack_level}")
    raw_recurrency = obj.get("recurrencyKind")
    return ChargingProfile(
        profile_id=_int(_get(obj, "chargingProfileId", where, required=True), "chargingProfileId"),
        stack_level=stack_level,
        purpose=_enum(
            ChargingProfilePurpose,
            _get(obj, "chargingProfilePurpose", where, required=True),
            "chargingProfilePurpose",
        ),
        kind=kind,
        schedule=ChargingSchedule(
            charging_rate_unit=_enum(
                ChargingRateUnit,
                _get(sched, "chargingRateUnit", "chargingSchedule", required=True),
                "chargingRateUnit",
            ),
            periods=tuple(periods),
            duration_s=_opt_int(sched.get("duration"), "duration"),
            start_schedule=start_schedule,
            min_charging_rate=_opt_number(sched.get("minChargingRate"), "minChargingRate"),
        ),
        transaction_id=_opt_int(obj.get("transactionId"), "transactionId"),
        recurrency_kind=None if raw_recurrency is None else _enum(RecurrencyKind, raw_recurrency, "recurrencyKind"),
        valid_from=_time(obj.get("validFrom"), "validFrom"),
        valid_to=_time(obj.get("validTo"), "validTo"),
    )


def profile_to_ocpp(profile: ChargingProfile) -> dict[str, Any]:
    """The OCPP 1.6 ``csChargingProfiles`` JSON object; ``profile_from_ocpp`` reads it back unchanged."""
    sched = profile.schedule
    periods: list[dict[str, Any]] = []
    for period in sched.periods:
        item: dict[str, Any] = {"startPeriod": period.start_period_s, "limit": period.limit}
        if period.number_phases is not None:
            item["numberPhases"] = period.number_phases
        periods.append(item)
    schedule: dict[str, Any] = {"chargingRateUnit": sched.charging_rate_unit.value, "chargingSchedulePeriod": periods}
    if sched.duration_s is not None:
        schedule["duration"] = sched.duration_s
    if sched.start_schedule is not None:
        schedule["startSchedule"] = _format_time(sched.start_schedule)
    if sched.min_charging_rate is not None:
        schedule["minChargingRate"] = sched.min_charging_rate
    out: dict[str, Any] = {
        "chargingProfileId": profile.profile_id,
        "stackLevel": profile.stack_level,
        "chargingProfilePurpose": profile.purpose.value,
        "chargingProfileKind": profile.kind.value,
        "chargingSchedule": schedule,
    }
    if profile.transaction_id is not None:
        out["transactionId"] = profile.transaction_id
    if profile.recurrency_kind is not None:
        out["recurrencyKind"] = profile.recurrency_kind.value
    if profile.valid_from is not None:
        out["validFrom"] = _format_time(profile.valid_from)
    if profile.valid_to is not None:
        out["validTo"] = _format_time(profile.valid_to)
    return out


def composite_to_ocpp(schedule: CompositeSchedule) -> dict[str, Any]:
    """The ``chargingSchedule`` of a GetCompositeSchedule.conf (``scheduleStart`` is ``start`` too)."""
    periods: list[dict[str, Any]] = []
    for period in schedule.periods:
        item: dict[str, Any] = {"startPeriod": period.start_period_s, "limit": period.limit}
        if period.number_phases is not None:
            item["numberPhases"] = period.number_phases
        periods.append(item)
    return {
        "duration": schedule.duration_s,
        "startSchedule": _format_time(schedule.start),
        "chargingRateUnit": schedule.unit.value,
        "chargingSchedulePeriod": periods,
    }


# --------------------------------------------------------------------------------------------------
# Installed profiles


@dataclass(slots=True)
class ProfileStore:
    """Installed profiles per connector (0 = the whole charge point), in installation order."""

    max_stack_level: int = 8
    max_profiles: int = 32
    max_periods: int = 48
    _items: list[tuple[int, ChargingProfile]] = field(default_factory=list, init=False, repr=False)

    def check(
        self,
        connector_id: int,
        profile: ChargingProfile,
        *,
        active_transaction_id: int | None,
        connector_count: int,
    ) -> str | None:
        """Why ``install`` would reject this profile, or ``None`` if it would accept it."""
        purpose = profile.purpose
        if not 0 <= connector_id <= connector_count:
            return f"connector {connector_id} does not exist (0..{connector_count})"
        if profile.stack_level > self.max_stack_level:
            return f"stackLevel {profile.stack_level} exceeds the maximum {self.max_stack_level}"
        if len(profile.schedule.periods) > self.max_periods:
            return f"{len(profile.schedule.periods)} periods exceed the maximum {self.max_periods}"
        if purpose is ChargingProfilePurpose.ChargePointMaxProfile and connector_id != 0:
            return "a ChargePointMaxProfile can only be set on connector 0"
        if purpose is ChargingProfilePurpose.TxProfile:
            if connector_id == 0:
                return "a TxProfile must be set on a connector, not on 0"
            if active_transaction_id is None:
                return f"a TxProfile needs a transaction, none is active on connector {connector_id}"
            if profile.transaction_id is not None and profile.transaction_id != active_transaction_id:
                return (
                    f"transactionId {profile.transaction_id} is not the active transaction "
                    f"{active_transaction_id} of connector {connector_id}"
                )
        if len(self._without_replaced(connector_id, profile)) >= self.max_profiles:
            return f"{self.max_profiles} profiles are installed already"
        return None

    def install(
        self,
        connector_id: int,
        profile: ChargingProfile,
        *,
        active_transaction_id: int | None,
        connector_count: int,
    ) -> ChargingProfileStatus:
        """SetChargingProfile: Accepted (installed, replacing any profile with the same id and any
        profile with the same stack level and purpose on the same connector) or Rejected."""
        if (
            self.check(
                connector_id, profile, active_transaction_id=active_transaction_id, connector_count=connector_count
            )
            is not None
        ):
            return ChargingProfileStatus.Rejected
        if profile.purpose is ChargingProfilePurpose.TxProfile and profile.transaction_id is None:
            profile = replace(profile, transaction_id=active_transaction_id)
        self._items = [*self._without_replaced(connector_id, profile), (connector_id, profile)]
        return ChargingProfileStatus.Accepted

    def _without_replaced(self, connector_id: int, profile: ChargingProfile) -> list[tuple[int, ChargingProfile]]:
        return [
            (cid, p)
            for cid, p in self._items
            if p.profile_id != profile.profile_id
            and not (cid == connector_id and p.stack_level == profile.stack_level and p.purpose is profile.purpose)
        ]

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """ClearChargingProfile: by id (other criteria ignored), else every profile matching all the
        given criteria (``None`` matches anything; no criteria clears all). True = Accepted, False = Unknown."""

        def matches(cid: int, p: ChargingProfile) -> bool:
            if profile_id is not None:
                return p.profile_id == profile_id
            return (
                (connector_id is None or cid == connector_id)
                and (purpose is None or p.purpose is purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        kept = [(cid, p) for cid, p in self._items if not matches(cid, p)]
        removed = len(kept) != len(self._items)
        self._items = kept
        return removed

    def end_transaction(self, connector_id: int) -> None:
        """The transaction on this connector ended: its TxProfiles go (OCPP 1.6 §3.13.4)."""
        self._items = [
            (cid, p)
            for cid, p in self._items
            if not (cid == connector_id and p.purpose is ChargingProfilePurpose.TxProfile)
        ]

    def all(self) -> list[tuple[int, ChargingProfile]]:
        return list(self._items)

    def load(self, items: Iterable[tuple[int, ChargingProfile]]) -> None:
        """Replace the contents (boot). The replacement rules apply in order, so the later of two
        clashing profiles stays; the context checks of ``install`` are not repeated."""
        self._items = []
        for connector_id, profile in items:
            self._items = [*self._without_replaced(connector_id, profile), (connector_id, profile)]

    def __len__(self) -> int:
        return len(self._items)


# --------------------------------------------------------------------------------------------------
# Evaluation. Internally every time is an integer number of seconds since the Unix epoch.


def _seconds(value: datetime, name: str = "time") -> int:
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return (value - _EPOCH) // timedelta(seconds=1)


def _datetime(epoch_s: int) -> datetime:
    return _EPOCH + timedelta(seconds=epoch_s)


def _floor_tenth(value: float) -> float:
    return math.floor(value * 10 + 1e-6) / 10


def convert_limit(
    limit: float, from_unit: ChargingRateUnit, to_unit: ChargingRateUnit, *, voltage_V: float, phases: int
) -> float:
    """``W = A × voltage_V × phases``; a converted value is floored to 0.1."""
    if from_unit is to_unit:
        return limit
    if from_unit is ChargingRateUnit.A:
        return _floor_tenth(limit * voltage_V * phases)
    return _floor_tenth(limit / (voltage_V * phases))


@dataclass(frozen=True, slots=True)
class _Limit:
    limit: float
    number_phases: int | None


@dataclass(frozen=True, slots=True)
class _Candidate:
    connector_id: int
    profile: ChargingProfile
    starts: tuple[int, ...]  # period starts, for bisect
    valid_from_s: int | None
    valid_to_s: int | None
    anchor_s: int | None  # startSchedule (Absolute, Recurring) or transaction start (Relative)
    recurrence_s: int | None

    @staticmethod
    def of(connector_id: int, profile: ChargingProfile, tx_start_s: int | None) -> _Candidate | None:
        sched = profile.schedule
        if profile.kind is ChargingProfileKind.Relative:
            anchor = tx_start_s
        else:
            assert sched.start_schedule is not None  # enforced by ChargingProfile
            anchor = _seconds(sched.start_schedule)
        if anchor is None:
            return None  # Relative without a transaction
        recurrence = (
            _RECURRENCE_S[profile.recurrency_kind]
            if profile.kind is ChargingProfileKind.Recurring and profile.recurrency_kind is not None
            else None
        )
        return _Candidate(
            connector_id=connector_id,
            profile=profile,
            starts=tuple(p.start_period_s for p in sched.periods),
            valid_from_s=None if profile.valid_from is None else _seconds(profile.valid_from),
            valid_to_s=None if profile.valid_to is None else _seconds(profile.valid_to),
            anchor_s=anchor,
            recurrence_s=recurrence,
        )

    def period_at(self, t: int) -> ChargingSchedulePeriod | None:
        """The period in force at ``t``, or None if the profile does not apply then."""
        if self.valid_from_s is not None and t < self.valid_from_s:
            return None
        if self.valid_to_s is not None and t >= self.valid_to_s:
            return None
        assert self.anchor_s is not None
        offset = t - self.anchor_s
        if self.recurrence_s is not None:
            offset %= self.recurrence_s
        if offset < 0:
            return None
        duration = self.profile.schedule.duration_s
        if duration is not None and offset >= duration:
            return None
        return self.profile.schedule.periods[bisect.bisect_right(self.starts, offset) - 1]

    def _occurrence_edges(self, base: int) -> Iterator[int]:
        yield base
        for start in self.starts:
            yield base + start
        if self.profile.schedule.duration_s is not None:
            yield base + self.profile.schedule.duration_s

    def finite_edges(self) -> Iterator[int]:
        """Moments where this profile may change, except the repeating ones of a Recurring profile."""
        if self.valid_from_s is not None:
            yield self.valid_from_s
        if self.valid_to_s is not None:
            yield self.valid_to_s
        if self.recurrence_s is None:
            assert self.anchor_s is not None
            yield from self._occurrence_edges(self.anchor_s)

    def periodic_edges(self, lo: int, hi: int) -> Iterator[int]:
        """The repeating change moments of a Recurring profile in ``[lo, hi)``."""
        if self.recurrence_s is None or hi <= lo:
            return
        assert self.anchor_s is not None
        first = (lo - self.anchor_s) // self.recurrence_s
        last = (hi - 1 - self.anchor_s) // self.recurrence_s
        for k in range(first, last + 1):
            base = self.anchor_s + k * self.recurrence_s
            for edge in self._occurrence_edges(base):
                if lo <= edge < hi:
                    yield edge


@dataclass(frozen=True, slots=True)
class _Selection:
    """The profiles that can matter for one connector and transaction, best first per purpose."""

    max_profiles: tuple[_Candidate, ...]
    tx_profiles: tuple[_Candidate, ...]
    tx_default_profiles: tuple[_Candidate, ...]
    unit: ChargingRateUnit
    voltage_V: float
    phases: int

    @property
    def candidates(self) -> tuple[_Candidate, ...]:
        return self.max_profiles + self.tx_profiles + self.tx_default_profiles

    def limit_at(self, t: int) -> _Limit | None:
        """The composite limit at ``t`` in ``unit``, or None when no profile applies."""
        base = _winner(self.tx_profiles, t) or _winner(self.tx_default_profiles, t)
        cap = _winner(self.max_profiles, t)
        found = [winner for winner in (base, cap) if winner is not None]
        if not found:
            return None
        limit = min(
            convert_limit(
                period.limit,
                cand.profile.schedule.charging_rate_unit,
                self.unit,
                voltage_V=self.voltage_V,
                phases=period.number_phases or self.phases,
            )
            for cand, period in found
        )
        stated = [period.number_phases for _, period in found if period.number_phases is not None]
        return _Limit(limit, min(stated) if stated else None)

    def edges(self, lo: int, hi: int) -> list[int]:
        """Sorted moments in ``(lo, hi)`` where the limit may change."""
        found: set[int] = set()
        for cand in self.candidates:
            found.update(edge for edge in cand.finite_edges() if lo < edge < hi)
            found.update(edge for edge in cand.periodic_edges(lo + 1, hi))
        return sorted(found)


def _winner(group: tuple[_Candidate, ...], t: int) -> tuple[_Candidate, ChargingSchedulePeriod] | None:
    for cand in group:  # best first
        period = cand.period_at(t)
        if period is not None:
            return cand, period
    return None


def _select(
    store: ProfileStore,
    connector_id: int,
    unit: ChargingRateUnit,
    *,
    transaction_start: datetime | None,
    transaction_id: int | None,
    voltage_V: float,
    phases: int,
) -> _Selection:
    if voltage_V <= 0 or not 1 <= phases <= MAX_NUMBER_PHASES:
        raise ValueError(f"voltage_V must be > 0 and phases 1..{MAX_NUMBER_PHASES}")
    tx_start_s = None if transaction_start is None else _seconds(transaction_start, "transaction_start")
    groups: dict[ChargingProfilePurpose, list[_Candidate]] = {purpose: [] for purpose in ChargingProfilePurpose}
    for cid, profile in store.all():
        purpose = profile.purpose
        if purpose is ChargingProfilePurpose.ChargePointMaxProfile:
            relevant = cid == 0
        elif purpose is ChargingProfilePurpose.TxDefaultProfile:
            relevant = connector_id > 0 and cid in (0, connector_id)
        else:
            relevant = (
                connector_id > 0
                and cid == connector_id
                and transaction_id is not None
                and profile.transaction_id in (None, transaction_id)
            )
        if relevant:
            cand = _Candidate.of(cid, profile, tx_start_s)
            if cand is not None:
                groups[purpose].append(cand)
    for members in groups.values():
        # Highest stack level first; at equal level a profile on the connector beats one on 0.
        members.sort(key=lambda c: (c.profile.stack_level, c.connector_id != 0), reverse=True)
    return _Selection(
        max_profiles=tuple(groups[ChargingProfilePurpose.ChargePointMaxProfile]),
        tx_profiles=tuple(groups[ChargingProfilePurpose.TxProfile]),
        tx_default_profiles=tuple(groups[ChargingProfilePurpose.TxDefaultProfile]),
        unit=unit,
        voltage_V=voltage_V,
        phases=phases,
    )


def composite_schedule(
    store: ProfileStore,
    connector_id: int,
    now: datetime,
    duration_s: int,
    unit: ChargingRateUnit,
    *,
    transaction_start: datetime | None,
    transaction_id: int | None,
    voltage_V: float = 230.0,
    phases: int = 3,
    default_limit: float | None = None,
) -> CompositeSchedule:
    """GetCompositeSchedule for ``[now, now + duration_s)``, ``now`` floored to the second.

    Consecutive periods with equal limit and phases are merged. Stretches without any applicable
    profile get ``default_limit`` (in ``unit``); ``None`` means ``DEFAULT_LIMIT_A`` converted to
    ``unit`` with ``phases``.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s {duration_s} must be > 0")
    selection = _select(
        store,
        connector_id,
        unit,
        transaction_start=transaction_start,
        transaction_id=transaction_id,
        voltage_V=voltage_V,
        phases=phases,
    )
    fill = (
        default_limit
        if default_limit is not None
        else convert_limit(DEFAULT_LIMIT_A, ChargingRateUnit.A, unit, voltage_V=voltage_V, phases=phases)
    )
    start = _seconds(now, "now")
    end = start + duration_s
    periods: list[ChargingSchedulePeriod] = []
    for t in [start, *selection.edges(start, end)]:
        found = selection.limit_at(t)
        limit = _Limit(fill, None) if found is None else found
        if periods and periods[-1].limit == limit.limit and periods[-1].number_phases == limit.number_phases:
            continue
        periods.append(ChargingSchedulePeriod(t - start, limit.limit, limit.number_phases))
    return CompositeSchedule(start=_datetime(start), duration_s=duration_s, unit=unit, periods=tuple(periods))


def current_limit_A(
    store: ProfileStore,
    connector_id: int,
    now: datetime,
    *,
    transaction_start: datetime | None,
    transaction_id: int | None,
    voltage_V: float = 230.0,
    phases: int = 3,
) -> float | None:
    """The limit in amperes per phase right now (what the PWM offers), ``None`` if no profile applies."""
    selection = _select(
        store,
        connector_id,
        ChargingRateUnit.A,
        transaction_start=transaction_start,
        transaction_id=transaction_id,
        voltage_V=voltage_V,
        phases=phases,
    )
    found = selection.limit_at(_seconds(now, "now"))
    return None if found is None else found.limit


def next_change(
    store: ProfileStore,
    connector_id: int,
    now: datetime,
    *,
    transaction_start: datetime | None,
    transaction_id: int | None,
    voltage_V: float = 230.0,
    phases: int = 3,
) -> datetime | None:
    """The first moment after ``now`` when the limit in A (or its number of phases) changes, or
    ``None`` if it never does with the profiles installed now. Re-ask after any install/clear.

    Between two consecutive non-repeating edges (validity bounds, Absolute and Relative periods),
    the limit repeats weekly, so one quiet week there means quiet until the next such edge.
    """
    selection = _select(
        store,
        connector_id,
        ChargingRateUnit.A,
        transaction_start=transaction_start,
        transaction_id=transaction_id,
        voltage_V=voltage_V,
        phases=phases,
    )
    start = _seconds(now, "now")
    current = selection.limit_at(start)
    finite = sorted({e for cand in selection.candidates for e in cand.finite_edges() if e > start})
    stretch_start = start
    for stretch_end in [*finite, None]:
        horizon = stretch_start + _WEEK_S + 1 if stretch_end is None else min(stretch_end, stretch_start + _WEEK_S + 1)
        periodic = sorted({e for cand in selection.candidates for e in cand.periodic_edges(stretch_start + 1, horizon)})
        for t in periodic:
            if selection.limit_at(t) != current:
                return _datetime(t)
        if stretch_end is None:
            return None
        if selection.limit_at(stretch_end) != current:
            return _datetime(stretch_end)
        stretch_start = stretch_end
    return None  # pragma: no cover - the loop always returns at stretch_end None
