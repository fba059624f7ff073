"""Checks a tariff before the charger prices anything with it.

``validate_tariff`` raises :class:`TariffError` at the first problem, with the place in the tariff first
(``energy.prices[1]: negative price -0.10``), so the message reads the same in the log, the CLI and a reply
to the CSMS.

Coverage: every component must have a price at every local minute of the week from the elements whose
conditions are :attr:`Conditions.time_only` (time of day, day of week). Elements with energy, power,
duration or date conditions come and go during a session, so they cannot be the only price of a moment.
"""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import time
from decimal import Decimal

from chargepoint.pricing.currencies import ISO_4217
from chargepoint.pricing.tariff import Component, ComponentKind, Conditions, Tariff, TariffError, TaxRate

MAX_TARIFF_ID_LENGTH = 60  # OCPP 2.1 identifierString of TariffType.tariffId

_DAY_US = 86_400_000_000
_WEEK_US = 7 * _DAY_US
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# (minimum, maximum) field pairs of Conditions that must not be negative and, when both set, min < max.
_THRESHOLDS = (
    ("min_energy_Wh", "max_energy_Wh"),
    ("min_power_W", "max_power_W"),
    ("min_duration_s", "max_duration_s"),
    ("min_charging_time_s", "max_charging_time_s"),
    ("min_idle_time_s", "max_idle_time_s"),
)
_FIXED_FEE_ALLOWED = frozenset({"start_time_of_day", "end_time_of_day", "days_of_week", "valid_from_date",
                                "valid_to_date"})


def validate_tariff(tariff: Tariff) -> None:
    """Raise :class:`TariffError` naming the first problem of ``tariff``; return if it can be used."""
    if not isinstance(tariff.tariff_id, str) or not tariff.tariff_id.strip():
        raise TariffError("tariff_id: must not be empty")
    if len(tariff.tariff_id) > MAX_TARIFF_ID_LENGTH:
        raise TariffError(f"tariff_id: {len(tariff.tariff_id)} characters, at most {MAX_TARIFF_ID_LENGTH} allowed")
    if tariff.currency not in ISO_4217:
        raise TariffError(f"currency: {tariff.currency!r} is not an ISO 4217 currency code (such as EUR)")
    _money("min_cost", tariff.min_cost)
    _money("max_cost", tariff.max_cost)
    if tariff.min_cost is not None and tariff.max_cost is not None and tariff.min_cost > tariff.max_cost:
        raise TariffError(f"min_cost: {tariff.min_cost} is above max_cost {tariff.max_cost}")
    if not isinstance(tariff.idle_grace_s, int) or tariff.idle_grace_s < 0:
        raise TariffError(f"idle_grace_s: must be a whole number of seconds >= 0, got {tariff.idle_grace_s!r}")
    _taxes("tax_rates", tariff.tax_rates)
    present = [(kind, c) for kind in ComponentKind if (c := tariff.component(kind)) is not None]
    if not present:
        raise TariffError("tariff has no component: give at least one of energy, charging_time, idle_time, fixed_fee")
    for kind, component in present:
        _component(kind, component)
    for kind, component in present:
        _coverage(kind, component)


def _money(where: str, amount: Decimal | None) -> None:
    if amount is None:
        return
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise TariffError(f"{where}: must be a finite Decimal, got {amount!r}")
    if amount < 0:
        raise TariffError(f"{where}: negative amount {amount}")


def _taxes(where: str, rates: tuple[TaxRate, ...]) -> None:
    for i, rate in enumerate(rates):
        place = f"{where}[{i}]"
        if not isinstance(rate.name, str) or not rate.name.strip():
            raise TariffError(f"{place}: tax name must not be empty")
        if not isinstance(rate.percent, Decimal) or not rate.percent.is_finite():
            raise TariffError(f"{place}: percent must be a finite Decimal, got {rate.percent!r}")
        if not 0 <= rate.percent <= 100:
            raise TariffError(f"{place}: percent {rate.percent} is outside 0..100")
        if not isinstance(rate.stack, int) or rate.stack < 0:
            raise TariffError(f"{place}: stack must be a whole number >= 0, got {rate.stack!r}")


def _component(kind: ComponentKind, component: Component) -> None:
    if not component.prices:
        raise TariffError(f"{kind}: needs at least one price element")
    if component.tax_rates is not None:
        _taxes(f"{kind}.tax_rates", component.tax_rates)
    for i, element in enumerate(component.prices):
        place = f"{kind}.prices[{i}]"
        price = element.price
        if not isinstance(price, Decimal) or not price.is_finite():
            raise TariffError(f"{place}: price must be a finite Decimal, got {price!r}")
        if price < 0:
            raise TariffError(f"{place}: negative price {price}")
        _conditions(f"{place}.conditions", element.conditions, fixed_fee=kind is ComponentKind.fixed_fee)


def _conditions(place: str, c: Conditions, *, fixed_fee: bool) -> None:
    if fixed_fee:
        for f in fields(Conditions):
            name = f.name
            if name not in _FIXED_FEE_ALLOWED and getattr(c, name) is not None:
                raise TariffError(
                    f"{place}: fixed_fee {name} condition not supported (a fixed fee is charged once, at the "
                    "session start: only time of day, day of week and dates)"
                )
    if (c.start_time_of_day is None) != (c.end_time_of_day is None):
        raise TariffError(f"{place}: start_time_of_day and end_time_of_day must be given together")
    if c.start_time_of_day is not None and c.end_time_of_day is not None:
        for name in ("start_time_of_day", "end_time_of_day"):
            value = getattr(c, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                raise TariffError(f"{place}: {name} must be a local time of day without time zone, got {value!r}")
        if c.start_time_of_day == c.end_time_of_day:
            raise TariffError(
                f"{place}: start_time_of_day equals end_time_of_day ({_hhmm(c.start_time_of_day)}); "
                "leave both out for the whole day"
            )
    if c.days_of_week is not None:
        if not c.days_of_week:
            raise TariffError(f"{place}: days_of_week is empty; leave it out for every day")
        wrong = sorted((d for d in c.days_of_week if not isinstance(d, int) or not 1 <= d <= 7), key=repr)
        if wrong:
            raise TariffError(f"{place}: days_of_week {wrong} outside 1..7 (1 = Monday)")
    if c.valid_from_date is not None and c.valid_to_date is not None and c.valid_from_date >= c.valid_to_date:
        raise TariffError(
            f"{place}: valid_from_date {c.valid_from_date.isoformat()} is not before valid_to_date "
            f"{c.valid_to_date.isoformat()}"
        )
    for low_name, high_name in _THRESHOLDS:
        low, high = getattr(c, low_name), getattr(c, high_name)
        for name, value in ((low_name, low), (high_name, high)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise TariffError(f"{place}: {name} must be a finite number, got {value!r}")
            if value < 0:
                raise TariffError(f"{place}: {name} is negative ({value})")
        if low is not None and high is not None and low >= high:
            raise TariffError(f"{place}: {low_name} {low} is not below {high_name} {high}")


def _tod_us(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _coverage(kind: ComponentKind, component: Component) -> None:
    """Every moment of the week has a price from an element without session-dependent conditions."""
    spans: list[tuple[int, int]] = []
    for element in component.prices:
        c = element.conditions
        if not c.time_only:
            continue
        if c.start_time_of_day is None or c.end_time_of_day is None:
            windows = [(0, _DAY_US)]
        else:
            start, end = _tod_us(c.start_time_of_day), _tod_us(c.end_time_of_day)
            windows = [(start, end)] if start < end else [(start, _DAY_US), (0, end)]
        days = range(1, 8) if c.days_of_week is None else sorted(c.days_of_week)
        for day in days:
            base = (day - 1) * _DAY_US
            spans.extend((base + a, base + b) for a, b in windows if a < b)
    spans.sort()
    covered_to = 0
    for start, end in spans:
        if start > covered_to:
            break
        covered_to = max(covered_to, end)
        if covered_to >= _WEEK_US:
            return
    gap_end = _WEEK_US
    for start, _ in spans:
        if start > covered_to:
            gap_end = start
            break
    raise TariffError(
        f"{kind}: no price on {_span(covered_to, gap_end)} (conditions leave that time uncovered; only elements "
        "with nothing but time-of-day and day-of-week conditions count)"
    )


def _span(start_us: int, end_us: int) -> str:
    """``Tuesday 06:00-07:59`` (last minute inclusive); seconds only when the span has them."""
    whole_minutes = start_us % 60_000_000 == 0 and end_us % 60_000_000 == 0
    last_us = end_us - (60_000_000 if whole_minutes else 1_000_000)
    first_day, last_day = start_us // _DAY_US, last_us // _DAY_US

    def clock(us: int) -> str:
        seconds = (us % _DAY_US) // 1_000_000
        text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}"
        return text if whole_minutes else f"{text}:{seconds % 60:02d}"

    head = f"{_WEEKDAYS[first_day]} {clock(start_us)}"
    if last_day == first_day:
        return f"{head}-{clock(last_us)}"
    return f"{head}-{_WEEKDAYS[last_day]} {clock(last_us)}"


def _hhmm(t: time | None) -> str:
    return "?" if t is None else t.isoformat(timespec="minutes" if t.second == 0 and t.microsecond == 0 else "auto")
