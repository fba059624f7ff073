"""The cost of a charging session under a :class:`Tariff`, kept up to date sample by sample.

The runtime feeds a :class:`CostMeter` with meter :class:`Sample` s (time, energy register, session state) and
reads :class:`CostBreakdown` s out. Pure: no I/O, no clock; every moment comes from the samples.

Semantics
---------
* **Intervals.** Two consecutive samples bound an interval. The state of the earlier sample is the state of the
  whole interval (``Sample.state`` applies from that moment on). The energy of the interval is the difference of
  the two registers, or 0 Wh when the register went backwards (meter swapped or reset: the new register is the
  new baseline). That energy is spread linearly over the interval.
* **Pieces.** An interval is cut wherever the price of a component may change: at every local time of day used
  by a time-of-day condition of the energy, charging-time or idle-time component, at local midnight (day of
  week, dates), at UTC-offset changes, and where a running total crosses an energy, duration, charging-time or
  idle-time threshold, or the idle grace (interpolated: the first microsecond at which the total has reached
  it). Local times are walked in wall time with :mod:`zoneinfo`, so DST days have 23 or 25 hours: a window
  02:00-03:00 that does not exist on spring-forward day has zero length, and on fall-back day it happens twice.
* **Prices.** For each piece, each component uses the first price element whose conditions hold at the piece's
  start, with the running totals as of that moment (energy since session start, time since session start,
  time charging, time idle) and the interval's average power (energy / duration). No element matching means
  that piece is free for that component (validation makes sure some element covers every time of the week).
  An interval without duration (two samples at the same instant) prices its energy at that instant, cut at
  energy thresholds; it and :meth:`CostMeter.breakdown` ``(at=...)`` see the average power of the last interval
  that had a duration (0 W before the first).
* **States.** charging: charging time. idle (the EV occupies the connector without drawing): idle time, except
  before the session's first energy when the tariff's ``idle_before_energy`` is off. held (the charger, a
  charging limit or a fault holds power back): neither; it counts only in the duration.
* **Components.** energy: kWh x price per kWh. charging_time: hours in state charging x price per hour.
  idle_time: hours of idle time beyond the first ``idle_grace_s`` of it (summed over the session) x price
  per hour; its line's quantity is those billed hours. fixed_fee: once, the price of the first element whose
  conditions hold at the session start. Without energy (0 Wh so far) the fixed fee (its line 0, quantity 0) and
  the minimum cost apply only when the tariff's ``charge_without_energy`` is set.
* **Money.** Amounts accumulate unrounded (``Decimal``, 40 significant digits, exact for unsplit intervals).
  :meth:`CostMeter.breakdown` rounds each component to the :class:`MoneyFormat` and taxes it with
  ``tariff.taxes_of(kind)``: stack 0 taxes the net amount, stack n the net amount plus the taxes of the lower
  stacks; every tax amount is rounded. A line's ``incl_tax`` is ``excl_tax`` plus its taxes. With
  ``tariff.tax_method`` ``on_total`` each rate is instead applied once to the sum of the rounded net amounts it
  taxes, rounded once, and shared out over the lines by running-sum rounding (``_taxed_on_total``).
* **Caps.** The sum of the rounded components (excl. tax) is compared with ``min_cost``/``max_cost``. Below the
  minimum a ``min_cost`` line adds the difference (type of cost ``MinCost``); above the maximum a ``max_cost``
  line with a negative amount takes the excess off (``MaxCost``), so the total excl. tax is the cap (rounded to
  the money format, should it have more decimals). The adjustment line carries whatever makes the totals those
  of the cap taxed as one amount at the tariff's own rates (``tariff.tax_rates``): under a cap the total including
  tax is constant, whatever tax roundings or rate mix the components have. Totals are the sums of the lines, so
  the lines always add up to the totals exactly.

Guarantees (``tests/unit/test_pricing_properties.py``): the total excluding tax never decreases as samples are
added; the total including tax never decreases when the tariff has no cap, and stays constant while a cap
applies. Where a cap starts or stops applying, the per-component tax roundings (and, with components taxed at
other rates than the tariff's, the rate mix) may move the total including tax by a rounding unit per tax amount.
Lines always add up to the totals; an energy-only flat tariff costs the same however the session is sampled
(within one rounding unit).

Speed: the calendar of local split instants is computed a day at a time and cached, with the price elements
that the calendar allows in each of its segments, so ``add()`` only looks at the pieces of the new interval.

Size: one algorithm (cutting intervals, pricing the pieces, caps and taxes) with the statement of its semantics; the
parts share the running totals and are tested together against a reference.
"""

from __future__ import annotations

import decimal
import enum
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any, Final
from zoneinfo import ZoneInfo

from chargepoint.pricing.tariff import ComponentKind, MoneyFormat, PriceElement, Tariff, TaxMethod, TaxRate

_CTX: Final = decimal.Context(
    prec=40,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_DAY_US: Final = 86_400_000_000
_US_PER_S: Final = 1_000_000
_US_PER_HOUR: Final = 3_600_000_000
_INF: Final = float("inf")
_HOURS_QUANTUM: Final = Decimal("0.000001")
_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_SNAPSHOT_VERSION: Final = 1

TYPE_OF_COST: Final = ("NormalCost", "MinCost", "MaxCost")
LINE_KINDS: Final = ("energy", "charging_time", "idle_time", "fixed_fee", "min_cost", "max_cost")


class SessionState(enum.StrEnum):
    """What the session does from a sample on.

    ``charging``: energy may flow (the EV draws). ``idle``: the EV occupies the connector without drawing
    (it paused or finished). ``held``: the charger holds power back (its own suspension, a smart-charging limit,
    a fault): neither charging time nor idle time.
    """

    charging = "Charging"
    idle = "Idle"
    held = "Held"


@dataclass(frozen=True, slots=True)
class Sample:
    at: datetime  # timezone-aware (UTC)
    energy_Wh: int  # the meter register (cumulative import, not since session start)
    state: SessionState  # state from this moment on (applies to the interval after this sample)


@dataclass(frozen=True, slots=True)
class CostLine:
    kind: str  # "energy" | "charging_time" | "idle_time" | "fixed_fee" | "min_cost" | "max_cost"
    quantity: Decimal  # kWh, hours (to 6 decimals), or 1 (fixed fee); 0 for the min/max adjustment lines
    excl_tax: Decimal  # rounded to the MoneyFormat; negative only on a max_cost line
    taxes: tuple[tuple[str, Decimal], ...]  # (tax name, rounded amount)
    incl_tax: Decimal  # excl_tax + sum(taxes)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "quantity": str(self.quantity),
            "excl_tax": str(self.excl_tax),
            "taxes": [{"name": name, "amount": str(amount)} for name, amount in self.taxes],
            "incl_tax": str(self.incl_tax),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "line") -> CostLine:
        kind = _get(data, "kind", str, where)
        if kind not in LINE_KINDS:
            raise ValueError(f"{where}.kind: unknown line kind {kind!r}")
        taxes_data = _get(data, "taxes", list, where)
        taxes = []
        for i, item in enumerate(taxes_data):
            place = f"{where}.taxes[{i}]"
            if not isinstance(item, Mapping):
                raise ValueError(f"{place}: expected an object")
            taxes.append((_get(item, "name", str, place), _decimal(item, "amount", place)))
        return cls(kind, _decimal(data, "quantity", where), _decimal(data, "excl_tax", where), tuple(taxes),
                   _decimal(data, "incl_tax", where))


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    tariff_id: str
    currency: str
    lines: tuple[CostLine, ...]  # energy, charging_time, idle_time, fixed_fee (those the tariff has), adjustment
    total_excl_tax: Decimal
    total_tax: Decimal
    total_incl_tax: Decimal
    type_of_cost: str  # "NormalCost" | "MinCost" | "MaxCost" (OCPP 2.1 names)
    energy_Wh: int
    duration_s: float
    charging_time_s: float
    idle_time_s: float
    tax_method: str = "per_line"  # TaxMethod: how the lines' taxes were computed (stated on the receipt)

    def to_json(self) -> dict[str, Any]:
        """JSON-able; money and quantities as decimal strings."""
        return {
            "tariff_id": self.tariff_id,
            "currency": self.currency,
            "lines": [line.to_json() for line in self.lines],
            "total_excl_tax": str(self.total_excl_tax),
            "total_tax": str(self.total_tax),
            "total_incl_tax": str(self.total_incl_tax),
            "type_of_cost": self.type_of_cost,
            "energy_Wh": self.energy_Wh,
            "duration_s": self.duration_s,
            "charging_time_s": self.charging_time_s,
            "idle_time_s": self.idle_time_s,
            "tax_method": self.tax_method,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CostBreakdown:
        """The inverse of :meth:`to_json`; ``ValueError`` naming the field on malformed input."""
        if not isinstance(data, Mapping):
            raise ValueError("breakdown: expected an object")
        lines_data = _get(data, "lines", list, "breakdown")
        lines = []
        for i, item in enumerate(lines_data):
            if not isinstance(item, Mapping):
                raise ValueError(f"breakdown.lines[{i}]: expected an object")
            lines.append(CostLine.from_json(item, f"breakdown.lines[{i}]"))
        type_of_cost = _get(data, "type_of_cost", str, "breakdown")
        if type_of_cost not in TYPE_OF_COST:
            raise ValueError(f"breakdown.type_of_cost: unknown type {type_of_cost!r}")
        return cls(
            tariff_id=_get(data, "tariff_id", str, "breakdown"),
            currency=_get(data, "currency", str, "breakdown"),
            lines=tuple(lines),
            total_excl_tax=_decimal(data, "total_excl_tax", "breakdown"),
            total_tax=_decimal(data, "total_tax", "breakdown"),
            total_incl_tax=_decimal(data, "total_incl_tax", "breakdown"),
            type_of_cost=type_of_cost,
            energy_Wh=_get(data, "energy_Wh", int, "breakdown"),
            duration_s=float(_get(data, "duration_s", (int, float), "breakdown")),
            charging_time_s=float(_get(data, "charging_time_s", (int, float), "breakdown")),
            idle_time_s=float(_get(data, "idle_time_s", (int, float), "breakdown")),
            tax_method=_tax_method_of(data),
        )


# ------------------------------------------------------------------------------------------ compiled tariff

# (energy min, max [Wh], power min, max [W], duration min, max, charging min, max, idle min, max [µs])
_Thresholds = tuple[float, float, float, float, float, float, float, float, float, float]
_Candidate = tuple[Decimal, _Thresholds | None]


@dataclass(frozen=True, slots=True)
class _Element:
    """A price element with its conditions in integers: local times in µs since midnight, dates as ordinals."""

    price: Decimal
    tod_start: int | None
    tod_end: int | None
    days_mask: int  # bit n set: ISO weekday n allowed; 0: any day
    from_ordinal: int | None
    to_ordinal: int | None
    thresholds: _Thresholds | None  # None: no session-dependent condition

    def on_calendar(self, ordinal: int, weekday: int, tod: int) -> bool:
        if self.tod_start is not None or self.tod_end is not None:
            start = 0 if self.tod_start is None else self.tod_start
            end = _DAY_US if self.tod_end is None else self.tod_end
            if start < end:
                if not start <= tod < end:
                    return False
            elif end <= tod < start:
                return False
        if self.days_mask and not (self.days_mask >> weekday) & 1:
            return False
        if self.from_ordinal is not None and ordinal < self.from_ordinal:
            return False
        return self.to_ordinal is None or ordinal < self.to_ordinal


def _tod_us(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * _US_PER_S + t.microsecond


def _seconds_us(value: float | None) -> int | None:
    return None if value is None else round(value * _US_PER_S)


def _low(value: float | None) -> float:
    return -_INF if value is None else value


def _high(value: float | None) -> float:
    return _INF if value is None else value


def _compile(element: PriceElement) -> _Element:
    c = element.conditions
    mask = 0
    for day in c.days_of_week or ():
        mask |= 1 << day
    limits = (
        c.min_energy_Wh, c.max_energy_Wh, c.min_power_W, c.max_power_W,
        _seconds_us(c.min_duration_s), _seconds_us(c.max_duration_s),
        _seconds_us(c.min_charging_time_s), _seconds_us(c.max_charging_time_s),
        _seconds_us(c.min_idle_time_s), _seconds_us(c.max_idle_time_s),
    )
    thresholds: _Thresholds | None = None
    if any(v is not None for v in limits):
        thresholds = (
            _low(limits[0]), _high(limits[1]), _low(limits[2]), _high(limits[3]), _low(limits[4]),
            _high(limits[5]), _low(limits[6]), _high(limits[7]), _low(limits[8]), _high(limits[9]),
        )
    return _Element(
        price=element.price,
        tod_start=None if c.start_time_of_day is None else _tod_us(c.start_time_of_day),
        tod_end=None if c.end_time_of_day is None else _tod_us(c.end_time_of_day),
        days_mask=mask,
        from_ordinal=None if c.valid_from_date is None else c.valid_from_date.toordinal(),
        to_ordinal=None if c.valid_to_date is None else c.valid_to_date.toordinal(),
        thresholds=thresholds,
    )


def _match(candidates: tuple[_Candidate, ...], e: int, p: float, d: int, c: int, i: int) -> Decimal | None:
    for price, th in candidates:
        if th is None or (
            th[0] <= e < th[1] and th[2] <= p < th[3] and th[4] <= d < th[5] and th[6] <= c < th[7]
            and th[8] <= i < th[9]
        ):
            return price
    return None


def _sorted_ints(values: Iterable[int | None]) -> tuple[int, ...]:
    return tuple(sorted({v for v in values if v is not None}))


def _us(at: datetime) -> int:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"sample time {at.isoformat()} has no time zone (expected an aware UTC datetime)")
    return (at - _EPOCH) // _ONE_US


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


# Component slots in the per-segment candidate tuples.
_ENERGY, _CHARGING, _IDLE = 0, 1, 2
_TIMED_KINDS: Final = (ComponentKind.energy, ComponentKind.charging_time, ComponentKind.idle_time)


class CostMeter:
    """The running cost of one session. ``add()`` each sample in time order, ``breakdown()`` when needed."""

    def __init__(self, tariff: Tariff, tz: ZoneInfo, money: MoneyFormat, start: Sample) -> None:
        self._setup(tariff, tz, money)
        at = _us(start.at)
        self._start_us = at
        self._last_us = at
        self._last_register = start.energy_Wh
        self._state = SessionState(start.state)
        self._energy_Wh = 0
        self._duration_us = 0
        self._charging_us = 0
        self._idle_us = 0
        self._idle_billed_us = 0
        self._power_W = 0.0
        self._acc_energy = Decimal(0)  # sum of price per kWh x Wh
        self._acc_charging = Decimal(0)  # sum of price per hour x µs
        self._acc_idle = Decimal(0)  # sum of price per hour x µs
        self._fixed_fee = self._fixed_fee_at(at)
        self._init_calendar(at)

    # ----------------------------------------------------------------- set-up

    def _setup(self, tariff: Tariff, tz: ZoneInfo, money: MoneyFormat) -> None:
        self.tariff = tariff
        self.tz = tz
        self.money = money
        self._elements: list[tuple[_Element, ...] | None] = []
        tods: set[int] = {0}
        energy_th: list[int | None] = []
        duration_th: list[int | None] = []
        charging_th: list[int | None] = []
        idle_th: list[int | None] = []
        for kind in _TIMED_KINDS:
            component = tariff.component(kind)
            if component is None:
                self._elements.append(None)
                continue
            self._elements.append(tuple(_compile(e) for e in component.prices))
            for element in component.prices:
                c = element.conditions
                for t in (c.start_time_of_day, c.end_time_of_day):
                    if t is not None:
                        tods.add(_tod_us(t))
                energy_th += (c.min_energy_Wh, c.max_energy_Wh)
                duration_th += (_seconds_us(c.min_duration_s), _seconds_us(c.max_duration_s))
                charging_th += (_seconds_us(c.min_charging_time_s), _seconds_us(c.max_charging_time_s))
                idle_th += (_seconds_us(c.min_idle_time_s), _seconds_us(c.max_idle_time_s))
        self._idle_grace_us = max(0, tariff.idle_grace_s) * _US_PER_S
        if self._elements[_IDLE] is not None and self._idle_grace_us > 0:
            idle_th.append(self._idle_grace_us)
        self._energy_th = _sorted_ints(energy_th)
        self._duration_th = _sorted_ints(duration_th)
        self._charging_th = _sorted_ints(charging_th)
        self._idle_th = _sorted_ints(idle_th)
        self._boundaries = tuple(
            time(us // 3_600_000_000, us // 60_000_000 % 60, us // _US_PER_S % 60, us % _US_PER_S)
            for us in sorted(tods)
            if us < _DAY_US
        )
        self._quantum = _ONE.scaleb(-money.decimals)  # as MoneyFormat.round
        self._rounding = money.rounding.decimal_mode
        self._zero = self._round(_ZERO)
        self._taxers = tuple(
            (kind, _Taxer(tariff.taxes_of(kind), self._quantum, self._rounding))
            for kind in ComponentKind
            if tariff.component(kind) is not None
        )
        self._adjustment = _Taxer(tariff.tax_rates, self._quantum, self._rounding)
        self._fixed_elements = (
            None if tariff.fixed_fee is None else tuple(_compile(e) for e in tariff.fixed_fee.prices)
        )

    def _local(self, us: int) -> tuple[int, int, int]:
        """(date ordinal, ISO weekday, µs since local midnight) of a UTC instant."""
        local = _at(us).astimezone(self.tz)
        return local.toordinal(), local.isoweekday(), _tod_us(local.time())

    def _fixed_fee_at(self, at: int) -> Decimal | None:
        if self._fixed_elements is None:
            return None
        ordinal, weekday, tod = self._local(at)
        candidates = tuple(
            (e.price, e.thresholds) for e in self._fixed_elements if e.on_calendar(ordinal, weekday, tod)
        )
        return _match(candidates, 0, 0.0, 0, 0, 0)

    # ----------------------------------------------------------------- calendar of local split instants

    def _init_calendar(self, at: int) -> None:
        self._cal: list[int] = []  # UTC µs at which local time crosses a boundary, midnight or an offset change
        self._cal_local: list[tuple[int, int, int]] = []  # local (ordinal, weekday, tod) at each instant
        self._cal_candidates: list[tuple[tuple[_Candidate, ...], ...] | None] = []
        self._cal_pending: set[int] = set()
        self._cal_complete = -(1 << 62)  # every split instant before this is in _cal
        self._cal_next = _at(at).astimezone(self.tz).date() - timedelta(days=1)
        # Two days ahead: a session of a day or less never extends the calendar in add().
        self._extend_calendar(at + 2 * _DAY_US)

    def _utc(self, day: date, t: time, fold: int) -> int:
        return (datetime.combine(day, t, tzinfo=self.tz).replace(fold=fold) - _EPOCH) // _ONE_US

    def _offset(self, us: int) -> timedelta | None:
        return _at(us).astimezone(self.tz).utcoffset()

    def _extend_calendar(self, until: int) -> None:
        """Make the calendar complete up to and including ``until``."""
        while self._cal_complete <= until:
            day = self._cal_next
            following = day + timedelta(days=1)
            instants = self._cal_pending
            for t in self._boundaries:
                instants.add(self._utc(day, t, 0))
                instants.add(self._utc(day, t, 1))
            day_start, day_end = self._utc(day, time(0), 0), self._utc(following, time(0), 0)
            offset = self._offset(day_start)
            if day_end - 1 > day_start and self._offset(day_end - 1) != offset:
                low, high = day_start, day_end - 1  # offset(low) == offset != offset(high)
                while high - low > 1:
                    middle = (low + high) // 2
                    if self._offset(middle) == offset:
                        low = middle
                    else:
                        high = middle
                instants.add(high)
            complete = day_end
            # Instants before the old limit are the fold=1 twins of wall times skipped by a gap: not needed.
            ready = sorted(u for u in instants if self._cal_complete <= u < complete)
            self._cal_pending = {u for u in instants if u >= complete}
            for u in ready:
                self._cal.append(u)
                self._cal_local.append(self._local(u))
                self._cal_candidates.append(None)
            self._cal_complete = complete
            self._cal_next = following

    def _candidates(self, segment: int) -> tuple[tuple[_Candidate, ...], ...]:
        """Per timed component, the elements whose calendar conditions hold in that segment, in tariff order."""
        cached = self._cal_candidates[segment]
        if cached is not None:
            return cached
        ordinal, weekday, tod = self._cal_local[segment]
        result: list[tuple[_Candidate, ...]] = []
        for elements in self._elements:
            candidates: list[_Candidate] = []
            for element in elements or ():
                if element.on_calendar(ordinal, weekday, tod):
                    candidates.append((element.price, element.thresholds))
                    if element.thresholds is None:
                        break  # always matches: nothing after it can be chosen
            result.append(tuple(candidates))
        cached = tuple(result)
        self._cal_candidates[segment] = cached
        return cached

    # ----------------------------------------------------------------- pricing an interval

    def _price(
        self, t0: int, t1: int, energy_Wh: int, state: SessionState, power_W: float,
        e0: int, d0: int, c0: int, i0: int,
    ) -> tuple[Decimal, Decimal, Decimal, int]:
        """Price [t0, t1) given the totals at t0: (price x Wh, charging price x µs, idle price x µs, billed idle µs)."""
        self._extend_calendar(t1)
        cal = self._cal
        energy_elements = self._elements[_ENERGY] is not None and energy_Wh > 0
        charging = state is SessionState.charging
        idling = self._idles(state, e0)
        charging_elements = charging and self._elements[_CHARGING] is not None
        idle_elements = idling and self._elements[_IDLE] is not None
        acc_energy = acc_charging = acc_idle = Decimal(0)
        billed = 0
        span = t1 - t0
        if span == 0:
            if energy_elements:
                candidates = self._candidates(bisect_right(cal, t0) - 1)[_ENERGY]
                th = self._energy_th
                points = [e0, *(x for x in th[bisect_right(th, e0):] if x < e0 + energy_Wh), e0 + energy_Wh]
                for low, high in pairwise(points):
                    price = _match(candidates, low, power_W, d0, c0, i0)
                    if price is not None:
                        acc_energy += price * (high - low)
            return acc_energy, acc_charging, acc_idle, billed

        splits: list[int] = []
        k = bisect_right(cal, t0)
        segment = k - 1
        while k < len(cal) and cal[k] < t1:
            splits.append(cal[k])
            k += 1
        if energy_Wh > 0 and self._energy_th:
            th = self._energy_th
            j = bisect_right(th, e0)
            while j < len(th) and th[j] <= e0 + energy_Wh:
                at = t0 - ((e0 - th[j]) * span // energy_Wh)  # first µs with e0 + floor(E*dt/T) >= threshold
                if at < t1:
                    splits.append(at)
                j += 1
        for th, base, moving in (
            (self._duration_th, d0, True), (self._charging_th, c0, charging), (self._idle_th, i0, idling),
        ):
            if moving and th:
                j = bisect_right(th, base)
                while j < len(th) and th[j] < base + span:
                    splits.append(t0 + th[j] - base)
                    j += 1
        if splits:
            splits.sort()
            bounds = [t0]
            for u in splits:
                if u != bounds[-1]:
                    bounds.append(u)
            bounds.append(t1)
        else:
            bounds = [t0, t1]

        last_cal = len(cal) - 1
        for n in range(len(bounds) - 1):
            a, b = bounds[n], bounds[n + 1]
            while segment < last_cal and cal[segment + 1] <= a:
                segment += 1
            by_kind = self._candidates(segment)
            elapsed = a - t0
            e = e0 + energy_Wh * elapsed // span
            d = d0 + elapsed
            c = c0 + elapsed if charging else c0
            i = i0 + elapsed if idling else i0
            length = b - a
            if energy_elements:
                price = _match(by_kind[_ENERGY], e, power_W, d, c, i)
                if price is not None:
                    acc_energy += price * length
            if charging_elements:
                price = _match(by_kind[_CHARGING], e, power_W, d, c, i)
                if price is not None:
                    acc_charging += price * length
            if idle_elements and i >= self._idle_grace_us:
                billed += length
                price = _match(by_kind[_IDLE], e, power_W, d, c, i)
                if price is not None:
                    acc_idle += price * length
        if energy_elements:
            acc_energy = acc_energy * energy_Wh / span  # sum of price x length x E / T: exact when unsplit
        return acc_energy, acc_charging, acc_idle, billed

    def _idles(self, state: SessionState, energy_Wh: int) -> bool:
        """Whether time in ``state`` with ``energy_Wh`` delivered so far is idle time."""
        return state is SessionState.idle and (energy_Wh > 0 or self.tariff.idle_before_energy)

    # ----------------------------------------------------------------- public API

    def add(self, sample: Sample) -> None:
        """Extend the session to ``sample.at``. ``ValueError`` if the sample is earlier than the last one."""
        t1 = _us(sample.at)
        t0 = self._last_us
        if t1 < t0:
            raise ValueError(
                f"sample at {sample.at.isoformat()} is before the previous one at {_at(t0).isoformat()}"
            )
        energy_Wh = max(0, sample.energy_Wh - self._last_register)
        span = t1 - t0
        power_W = energy_Wh * 3_600_000_000 / span if span > 0 else self._power_W
        with decimal.localcontext(_CTX):
            acc_energy, acc_charging, acc_idle, billed = self._price(
                t0, t1, energy_Wh, self._state, power_W,
                self._energy_Wh, self._duration_us, self._charging_us, self._idle_us,
            )
            self._acc_energy += acc_energy
            self._acc_charging += acc_charging
            self._acc_idle += acc_idle
        self._idle_billed_us += billed
        if self._state is SessionState.charging:
            self._charging_us += span
        elif self._idles(self._state, self._energy_Wh):
            self._idle_us += span
        self._energy_Wh += energy_Wh
        self._duration_us += span
        if span > 0:
            self._power_W = power_W
        self._last_us = t1
        self._last_register = sample.energy_Wh
        self._state = SessionState(sample.state)

    def breakdown(self, at: datetime | None = None) -> CostBreakdown:
        """The cost so far. ``at`` later than the last sample extends the time-based components to that
        moment (no energy, the last state); earlier is a ``ValueError``."""
        acc_energy, acc_charging, acc_idle = self._acc_energy, self._acc_charging, self._acc_idle
        billed, duration, charging_us, idle_us = (
            self._idle_billed_us, self._duration_us, self._charging_us, self._idle_us,
        )
        with decimal.localcontext(_CTX):
            if at is not None:
                t = _us(at)
                if t < self._last_us:
                    raise ValueError(f"breakdown at {at.isoformat()} is before the last sample")
                if t > self._last_us:
                    _, more_charging, more_idle, more_billed = self._price(
                        self._last_us, t, 0, self._state, self._power_W,
                        self._energy_Wh, duration, charging_us, idle_us,
                    )
                    acc_charging += more_charging
                    acc_idle += more_idle
                    billed += more_billed
                    span = t - self._last_us
                    duration += span
                    if self._state is SessionState.charging:
                        charging_us += span
                    elif self._idles(self._state, self._energy_Wh):
                        idle_us += span
            return self._breakdown(acc_energy, acc_charging, acc_idle, billed, duration, charging_us, idle_us)

    def _breakdown(
        self, acc_energy: Decimal, acc_charging: Decimal, acc_idle: Decimal, billed_us: int,
        duration_us: int, charging_us: int, idle_us: int, energy_flowed: bool | None = None,
    ) -> CostBreakdown:
        tariff = self.tariff
        if energy_flowed is None:
            energy_flowed = self._energy_Wh > 0
        # Without energy the fixed fee and the minimum apply only where the tariff says so.
        entry = energy_flowed or tariff.charge_without_energy
        lines: list[CostLine] = []
        for kind, taxer in self._taxers:
            if kind is ComponentKind.energy:
                quantity, unrounded = Decimal(self._energy_Wh).scaleb(-3), acc_energy / 1000
            elif kind is ComponentKind.charging_time:
                quantity, unrounded = _hours(charging_us), acc_charging / _US_PER_HOUR
            elif kind is ComponentKind.idle_time:
                quantity, unrounded = _hours(billed_us), acc_idle / _US_PER_HOUR
            elif entry and self._fixed_fee is not None:
                quantity, unrounded = _ONE, self._fixed_fee
            else:
                quantity, unrounded = _ZERO, _ZERO
            lines.append(taxer.line(kind.value, quantity, self._round(unrounded)))
        if tariff.tax_method is TaxMethod.on_total:
            lines = _taxed_on_total(lines, [tariff.taxes_of(kind) for kind, _ in self._taxers], self._quantum,
                                    self._rounding)
        subtotal = self._zero
        for line in lines:
            subtotal += line.excl_tax
        type_of_cost = "NormalCost"
        if entry and tariff.min_cost is not None and subtotal < tariff.min_cost:
            type_of_cost = "MinCost"
            lines.append(self._cap_line("min_cost", tariff.min_cost, subtotal, lines))
        elif tariff.max_cost is not None and subtotal > tariff.max_cost:
            type_of_cost = "MaxCost"
            lines.append(self._cap_line("max_cost", tariff.max_cost, subtotal, lines))
        total_excl = total_tax = total_incl = self._zero
        for line in lines:
            total_excl += line.excl_tax
            total_incl += line.incl_tax
            for _, amount in line.taxes:
                total_tax += amount
        return CostBreakdown(
            tariff_id=tariff.tariff_id,
            currency=tariff.currency,
            lines=tuple(lines),
            total_excl_tax=total_excl,
            total_tax=total_tax,
            total_incl_tax=total_incl,
            type_of_cost=type_of_cost,
            energy_Wh=self._energy_Wh,
            duration_s=duration_us / _US_PER_S,
            charging_time_s=charging_us / _US_PER_S,
            idle_time_s=idle_us / _US_PER_S,
            tax_method=str(tariff.tax_method),
        )

    def entry_cost(self) -> Decimal:
        """What the session costs (including tax) the moment its first energy flows: the fixed fee, or the minimum
        cost where that is more, plus what has accrued so far. What a prepaid balance must cover to start."""
        with decimal.localcontext(_CTX):
            return self._breakdown(
                self._acc_energy, self._acc_charging, self._acc_idle, self._idle_billed_us, self._duration_us,
                self._charging_us, self._idle_us, energy_flowed=True,
            ).total_incl_tax

    def _cap_line(self, kind: str, cap: Decimal, subtotal: Decimal, lines: list[CostLine]) -> CostLine:
        """The adjustment that makes the totals those of the cap taxed as one amount at the tariff's rates.

        So under a cap the total including tax is the same whatever the components do (it cannot wobble with
        their separate tax roundings, nor follow a mix of rates), and the lines still add up exactly."""
        capped = self._adjustment.line(kind, _ZERO, self._round(cap))
        names = [name for name, _ in capped.taxes]
        amounts = [amount for _, amount in capped.taxes]
        for line in lines:
            for name, amount in line.taxes:
                # The first tax of that name takes the difference (two rates may share a name).
                if name in names:
                    amounts[names.index(name)] -= amount
                else:
                    names.append(name)
                    amounts.append(-amount)
        excl = capped.excl_tax - subtotal
        incl = excl
        for amount in amounts:
            incl += amount
        return CostLine(kind, _ZERO, excl, tuple(zip(names, amounts, strict=True)), incl)

    def _round(self, amount: Decimal) -> Decimal:
        """``MoneyFormat.round`` with the quantum and mode looked up once."""
        return amount.quantize(self._quantum, rounding=self._rounding)

    def snapshot(self) -> dict[str, Any]:
        """The accumulator state, JSON-able, for :meth:`restore` after a restart."""
        return {
            "version": _SNAPSHOT_VERSION,
            "tariff_id": self.tariff.tariff_id,
            "start_at": _at(self._start_us).isoformat(),
            "last_at": _at(self._last_us).isoformat(),
            "last_register_Wh": self._last_register,
            "state": str(self._state),
            "energy_Wh": self._energy_Wh,
            "duration_us": self._duration_us,
            "charging_us": self._charging_us,
            "idle_us": self._idle_us,
            "idle_billed_us": self._idle_billed_us,
            "power_W": self._power_W,
            "energy_price_Wh": str(self._acc_energy),
            "charging_price_us": str(self._acc_charging),
            "idle_price_us": str(self._acc_idle),
            "fixed_fee": None if self._fixed_fee is None else str(self._fixed_fee),
        }

    @classmethod
    def restore(cls, tariff: Tariff, tz: ZoneInfo, money: MoneyFormat, snapshot: Mapping[str, Any]) -> CostMeter:
        """A meter that continues exactly where the one that took ``snapshot`` was (same tariff required)."""
        where = "snapshot"
        if not isinstance(snapshot, Mapping):
            raise ValueError(f"{where}: expected an object")
        version = _get(snapshot, "version", int, where)
        if version != _SNAPSHOT_VERSION:
            raise ValueError(f"{where}.version: unsupported version {version}")
        tariff_id = _get(snapshot, "tariff_id", str, where)
        if tariff_id != tariff.tariff_id:
            raise ValueError(f"{where}.tariff_id: taken with tariff {tariff_id!r}, not {tariff.tariff_id!r}")
        meter = cls.__new__(cls)
        meter._setup(tariff, tz, money)
        meter._start_us = _us(_datetime(snapshot, "start_at", where))
        meter._last_us = _us(_datetime(snapshot, "last_at", where))
        meter._last_register = _get(snapshot, "last_register_Wh", int, where)
        try:
            meter._state = SessionState(_get(snapshot, "state", str, where))
        except ValueError:
            raise ValueError(f"{where}.state: unknown state {snapshot['state']!r}") from None
        meter._energy_Wh = _get(snapshot, "energy_Wh", int, where)
        meter._duration_us = _get(snapshot, "duration_us", int, where)
        meter._charging_us = _get(snapshot, "charging_us", int, where)
        meter._idle_us = _get(snapshot, "idle_us", int, where)
        meter._idle_billed_us = _get(snapshot, "idle_billed_us", int, where)
        meter._power_W = float(_get(snapshot, "power_W", (int, float), where))
        meter._acc_energy = _decimal(snapshot, "energy_price_Wh", where)
        meter._acc_charging = _decimal(snapshot, "charging_price_us", where)
        meter._acc_idle = _decimal(snapshot, "idle_price_us", where)
        meter._fixed_fee = None if snapshot.get("fixed_fee") is None else _decimal(snapshot, "fixed_fee", where)
        meter._init_calendar(meter._last_us)
        return meter


def evaluate(tariff: Tariff, samples: Sequence[Sample], tz: ZoneInfo, money: MoneyFormat) -> CostBreakdown:
    """The cost of a whole session: the first sample starts it, the last ends it."""
    if not samples:
        raise ValueError("evaluate needs at least one sample (the session start)")
    meter = CostMeter(tariff, tz, money, samples[0])
    for sample in samples[1:]:
        meter.add(sample)
    return meter.breakdown()


# ------------------------------------------------------------------------------------------ helpers


def _hours(us: int) -> Decimal:
    return (Decimal(us) / _US_PER_HOUR).quantize(_HOURS_QUANTUM)


class _Taxer:
    """The taxes of one set of rates (stack 0 on the net amount, stack n also on the taxes of lower stacks),
    each rounded; remembers the last amount, as most breakdowns repeat it."""

    __slots__ = ("_last", "_names", "_plan", "_quantum", "_rounding")

    def __init__(self, rates: Sequence[TaxRate], quantum: Decimal, rounding: str) -> None:
        order = sorted(range(len(rates)), key=lambda n: rates[n].stack)
        self._plan = tuple(
            (n, rates[n].percent.scaleb(-2), tuple(m for m in order if rates[m].stack < rates[n].stack))
            for n in order
        )
        self._names = tuple(rate.name for rate in rates)
        self._quantum = quantum
        self._rounding = rounding
        self._last: tuple[Decimal, tuple[tuple[str, Decimal], ...], Decimal] | None = None

    def line(self, kind: str, quantity: Decimal, excl: Decimal) -> CostLine:
        last = self._last
        if last is None or last[0] != excl:
            amounts = [_ZERO] * len(self._names)
            incl = excl
            for n, fraction, lower in self._plan:
                base = excl
                for m in lower:
                    base += amounts[m]
                amounts[n] = (base * fraction).quantize(self._quantum, rounding=self._rounding)
                incl += amounts[n]
            last = self._last = (excl, tuple(zip(self._names, amounts, strict=True)), incl)
        return CostLine(kind, quantity, excl, last[1], last[2])


def _taxed_on_total(
    lines: list[CostLine], rates: list[tuple[TaxRate, ...]], quantum: Decimal, rounding: str,
) -> list[CostLine]:
    """The lines with their taxes recomputed by :attr:`TaxMethod.on_total`.

    Each rate (by name, percent and stack) is applied once to the sum of its bases over the lines it taxes (a
    line's base: its net amount plus its taxes of lower stacks) and rounded once; that total is shared out in line
    order by running-sum rounding (a line gets round(running exact sum) minus what the lines before it got), so
    the lines' taxes add up to the tax on the total exactly and each is within a rounding unit of its own share.
    """
    amounts = [[_ZERO] * len(line_rates) for line_rates in rates]
    for stack in sorted({rate.stack for line_rates in rates for rate in line_rates}):
        keys: list[tuple[str, Decimal]] = []
        for line_rates in rates:
            for rate in line_rates:
                if rate.stack == stack and (rate.name, rate.percent) not in keys:
                    keys.append((rate.name, rate.percent))
        for key in keys:
            exact = _ZERO
            given = _ZERO
            for n, line_rates in enumerate(rates):
                for m, rate in enumerate(line_rates):
                    if rate.stack != stack or (rate.name, rate.percent) != key:
                        continue
                    base = lines[n].excl_tax
                    for k, lower in enumerate(line_rates):
                        if lower.stack < stack:
                            base += amounts[n][k]
                    exact += base * rate.percent.scaleb(-2)
                    amounts[n][m] = exact.quantize(quantum, rounding=rounding) - given
                    given += amounts[n][m]
    result = []
    for line, line_rates, line_amounts in zip(lines, rates, amounts, strict=True):
        incl = line.excl_tax
        for amount in line_amounts:
            incl += amount
        taxes = tuple((rate.name, amount) for rate, amount in zip(line_rates, line_amounts, strict=True))
        result.append(CostLine(line.kind, line.quantity, line.excl_tax, taxes, incl))
    return result


def waived(b: CostBreakdown) -> CostBreakdown:
    """``b`` with every amount zero (quantities kept): a session the charger ended by its own fault before any
    energy flowed costs nothing."""
    zero = b.total_excl_tax - b.total_excl_tax
    lines = tuple(
        CostLine(line.kind, line.quantity, zero, tuple((name, zero) for name, _ in line.taxes), zero)
        for line in b.lines if line.kind not in ("min_cost", "max_cost")
    )
    return CostBreakdown(b.tariff_id, b.currency, lines, zero, zero, zero, "NormalCost", b.energy_Wh, b.duration_s,
                         b.charging_time_s, b.idle_time_s, b.tax_method)


def _tax_method_of(data: Mapping[str, Any]) -> str:
    """Breakdowns stored before the tax method was recorded were taxed per line."""
    method = data.get("tax_method", str(TaxMethod.per_line))
    if method not in tuple(TaxMethod):
        raise ValueError(f"breakdown.tax_method: unknown method {method!r}")
    return str(method)


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ValueError(f"{where}.{key}: missing")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{where}.{key}: expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__


def _decimal(data: Mapping[str, Any], key: str, where: str) -> Decimal:
    text = _get(data, key, str, where)
    try:
        value = Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(f"{where}.{key}: not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"{where}.{key}: not a finite number: {text!r}")
    return value


def _datetime(data: Mapping[str, Any], key: str, where: str) -> datetime:
    text = _get(data, key, str, where)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}.{key}: not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise ValueError(f"{where}.{key}: time without offset: {text!r}")
    return value


__all__ = [
    "CostBreakdown",
    "CostLine",
    "CostMeter",
    "Sample",
    "SessionState",
    "evaluate",
    "waived",
]
