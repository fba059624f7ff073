"""Invariants of the cost engine under random tariffs and sessions, and a check against a slow reference.

Hypothesis draws tariffs (time-of-day windows, days, dates, duration/charging/idle/energy/power thresholds,
stacked taxes, caps, idle grace) and sessions around DST changes in several time zones (Berlin, New York,
Lord Howe with its 30-minute shift, Kolkata without DST). Sample times, windows and time thresholds fall on
whole minutes, so a reference that prices minute by minute with exact fractions, looking the price up at each
minute's start in local time, must agree with the meter's accumulators (energy thresholds are left out of
that comparison: their crossings fall between minutes).

``CHARGEPOINT_HYPOTHESIS_EXAMPLES`` sets the number of examples per property (default 200).
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargepoint.pricing.cost import CostBreakdown, CostMeter, Sample, SessionState
from chargepoint.pricing.tariff import (
    Component,
    ComponentKind,
    Conditions,
    MoneyFormat,
    PriceElement,
    Rounding,
    Tariff,
    TaxMethod,
    TaxRate,
)

MAX_EXAMPLES = int(os.environ.get("CHARGEPOINT_HYPOTHESIS_EXAMPLES", "200"))
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")
# UTC midnights near DST changes of those zones (2026).
AROUND = tuple(datetime(2026, m, d, tzinfo=UTC) for m, d in ((3, 8), (3, 29), (4, 5), (10, 4), (10, 25), (11, 1)))
MINUTE_US = 60_000_000


# ------------------------------------------------------------------------------------------------ strategies

# Strategies are built once here: building them inside the composites costs more than the pricing under test.
prices = st.integers(0, 999).map(lambda n: Decimal(n).scaleb(-2))
minute_of_day = st.integers(0, 1439).map(lambda m: time(m // 60, m % 60))
days = st.frozensets(st.integers(1, 7), min_size=1)
one_in_2, one_in_4, one_in_5, one_in_6 = (st.integers(0, n - 1).map(lambda v: v == 0) for n in (2, 4, 5, 6))
day_shift, day_count = st.integers(-2, 2), st.integers(1, 3)
element_count = st.integers(0, 4)
# (minimum name, maximum name, optional value, scale): values in minutes, hundreds of watts, watt-hours.
_minutes = st.one_of(st.none(), st.integers(0, 600))
THRESHOLDS = (
    ("min_duration_s", "max_duration_s", _minutes, 60),
    ("min_charging_time_s", "max_charging_time_s", _minutes, 60),
    ("min_idle_time_s", "max_idle_time_s", _minutes, 60),
    ("min_power_W", "max_power_W", st.one_of(st.none(), st.sampled_from([0, 37, 74, 110, 220])), 100),
)
ENERGY_THRESHOLD = ("min_energy_Wh", "max_energy_Wh", st.one_of(st.none(), st.integers(0, 60_000)), 1)
tax_rate = st.builds(TaxRate, st.sampled_from(["VAT", "Levy", "City"]),
                     st.integers(0, 2500).map(lambda n: Decimal(n).scaleb(-2)), st.integers(0, 2))
tax_rates = st.lists(tax_rate, max_size=3).map(tuple)
component_kinds = st.sets(st.sampled_from(list(ComponentKind)), min_size=1)
optional_price = st.one_of(st.none(), prices)
optional_high_price = st.one_of(st.none(), prices.map(lambda p: p * 5))
grace_s = st.sampled_from([0, 0, 600, 1800, 7200])
zones = st.sampled_from(ZONES)
around = st.sampled_from(AROUND)
start_shift_min = st.integers(-1440, 1440)
states = st.sampled_from([SessionState.charging, SessionState.charging, SessionState.idle, SessionState.held])
registers = st.integers(0, 10**9)
step_min, step_Wh, reset_Wh = st.integers(0, 240), st.integers(0, 30_000), st.integers(0, 10**6)
sample_count = st.integers(0, 12)
one_in_16 = st.integers(0, 15).map(lambda v: v == 0)
money_formats = st.builds(MoneyFormat, st.sampled_from([0, 2, 3]), st.sampled_from(list(Rounding)))


@st.composite
def conditions(draw: st.DrawFn, near: date, energy: bool) -> Conditions:
    fields: dict[str, Any] = {}
    if draw(one_in_2):
        start, end = draw(minute_of_day), draw(minute_of_day)
        if start != end:
            fields["start_time_of_day"], fields["end_time_of_day"] = start, end
    if draw(one_in_4):
        fields["days_of_week"] = draw(days)
    if draw(one_in_6):
        first = near + timedelta(days=draw(day_shift))
        fields["valid_from_date"] = first
        fields["valid_to_date"] = first + timedelta(days=draw(day_count))
    for low_name, high_name, values, scale in (*THRESHOLDS, *((ENERGY_THRESHOLD,) if energy else ())):
        if draw(one_in_5):
            low, high = draw(values), draw(values)
            if low is not None and high is not None and low >= high:
                low, high = high, low + 1 if low == high else low
            fields[low_name] = None if low is None else low * scale
            fields[high_name] = None if high is None else high * scale
    for name in ("min_power_W", "max_power_W"):
        if fields.get(name) is not None:
            fields[name] = float(fields[name])
    return Conditions(**fields)


@st.composite
def components(draw: st.DrawFn, near: date, energy: bool, fixed: bool = False) -> Component:
    if fixed:  # a fixed fee only looks at the calendar
        items = [PriceElement(draw(prices), Conditions(days_of_week=draw(days)))]
    else:
        items = [PriceElement(draw(prices), draw(conditions(near, energy))) for _ in range(draw(element_count))]
    if not items or not draw(one_in_5):
        items.append(PriceElement(draw(prices)))  # the fallback (sometimes missing: those pieces are free)
    rates = draw(tax_rates) if draw(one_in_4) else None
    return Component(tuple(items), rates)


@dataclass(frozen=True)
class Session:
    tz: ZoneInfo
    tariff: Tariff
    samples: tuple[Sample, ...]
    money: MoneyFormat


@st.composite
def sessions(draw: st.DrawFn, energy_thresholds: bool = True, caps: bool = True, flat_energy: bool = False) -> Session:
    tz = ZoneInfo(draw(zones))
    start = draw(around) + timedelta(minutes=draw(start_shift_min))
    near = start.astimezone(tz).date()
    if flat_energy:
        tariff = Tariff("P", "EUR", energy=Component((PriceElement(draw(prices)),)), tax_rates=draw(tax_rates))
    else:
        kinds = draw(component_kinds)
        parts = {
            kind.value: draw(components(near, energy_thresholds, fixed=kind is ComponentKind.fixed_fee))
            for kind in kinds
        }
        cap_low = draw(optional_price) if caps else None
        cap_high = draw(optional_high_price) if caps else None
        if cap_low is not None and cap_high is not None and cap_low > cap_high:
            cap_low, cap_high = cap_high, cap_low
        tariff = Tariff(
            "P", "EUR", parts.get("energy"), parts.get("charging_time"), parts.get("idle_time"), parts.get("fixed_fee"),
            idle_grace_s=draw(grace_s), min_cost=cap_low, max_cost=cap_high, tax_rates=draw(tax_rates),
            charge_without_energy=draw(st.booleans()), idle_before_energy=draw(st.booleans()),
            tax_method=draw(st.sampled_from(list(TaxMethod))),
        )
    register = draw(registers)
    samples = [Sample(start, register, draw(states))]
    for _ in range(draw(sample_count)):
        at = samples[-1].at + timedelta(minutes=draw(step_min))
        if draw(one_in_16):
            register = draw(reset_Wh)  # meter swapped: may go backwards
        else:
            register += draw(step_Wh)
        samples.append(Sample(at, register, draw(states)))
    return Session(tz, tariff, tuple(samples), draw(money_formats))


# ------------------------------------------------------------------------------------------------ helpers


def running(session: Session) -> list[CostBreakdown]:
    meter = CostMeter(session.tariff, session.tz, session.money, session.samples[0])
    out = [meter.breakdown()]
    for sample in session.samples[1:]:
        meter.add(sample)
        out.append(meter.breakdown())
    return out


def unit(money: MoneyFormat) -> Decimal:
    return Decimal(1).scaleb(-money.decimals)


def holds(c: Conditions, local: datetime, e: Fraction, power_W: float, d_us: int, c_us: int, i_us: int) -> bool:
    """The Conditions docstring, read literally (independently of the meter's compiled form)."""
    if c.start_time_of_day is not None and c.end_time_of_day is not None:
        now, start, end = local.time().replace(tzinfo=None), c.start_time_of_day, c.end_time_of_day
        if not (start <= now < end if start < end else now >= start or now < end):
            return False
    if c.days_of_week is not None and local.isoweekday() not in c.days_of_week:
        return False
    if c.valid_from_date is not None and local.date() < c.valid_from_date:
        return False
    if c.valid_to_date is not None and local.date() >= c.valid_to_date:
        return False
    for low, high, value in (
        (c.min_energy_Wh, c.max_energy_Wh, e),
        (c.min_power_W, c.max_power_W, power_W),
        (c.min_duration_s, c.max_duration_s, Fraction(d_us, 1_000_000)),
        (c.min_charging_time_s, c.max_charging_time_s, Fraction(c_us, 1_000_000)),
        (c.min_idle_time_s, c.max_idle_time_s, Fraction(i_us, 1_000_000)),
    ):
        if (low is not None and value < low) or (high is not None and value >= high):
            return False
    return True


def first_price(component: Component | None, *state: Any) -> Fraction | None:
    if component is None:
        return None
    for element in component.prices:
        if holds(element.conditions, *state):
            return Fraction(element.price)
    return None


def reference(session: Session) -> tuple[Fraction, Fraction, Fraction, int]:
    """Minute by minute: (sum price x Wh, charging price x µs, idle price x µs, billed idle µs)."""
    t = session.tariff
    energy = charging = idle = Fraction(0)
    billed = 0
    e, d, c, i = Fraction(0), 0, 0, 0
    power_W = 0.0
    for s0, s1 in itertools.pairwise(session.samples):
        span_us = (s1.at - s0.at) // timedelta(microseconds=1)
        minutes = span_us // MINUTE_US
        delta = max(0, s1.energy_Wh - s0.energy_Wh)
        if minutes == 0:
            if delta:
                price = first_price(t.energy, s0.at.astimezone(session.tz), e, power_W, d, c, i)
                energy += (price or 0) * delta
                e += delta
            continue
        power_W = delta * 3_600_000_000 / span_us
        per_minute = Fraction(delta, minutes)
        e_start = e
        for m in range(minutes):
            local = (s0.at + timedelta(minutes=m)).astimezone(session.tz)
            state = (local, e, power_W, d, c, i)
            if delta:
                energy += (first_price(t.energy, *state) or 0) * per_minute
            if s0.state is SessionState.charging:
                charging += (first_price(t.charging_time, *state) or 0) * MINUTE_US
                c += MINUTE_US
            elif s0.state is SessionState.held or not (e_start > 0 or t.idle_before_energy):
                pass  # the charger holds power back, or the wait before the first energy does not count
            else:
                if i >= t.idle_grace_s * 1_000_000 and t.idle_time is not None:
                    billed += MINUTE_US
                    idle += (first_price(t.idle_time, *state) or 0) * MINUTE_US
                i += MINUTE_US
            e += per_minute
            d += MINUTE_US
    return energy, charging, idle, billed


# ------------------------------------------------------------------------------------------------ properties


@SETTINGS
@given(sessions(energy_thresholds=False))
def test_accumulators_match_a_minute_by_minute_reference(session: Session) -> None:
    meter = CostMeter(session.tariff, session.tz, session.money, session.samples[0])
    for sample in session.samples[1:]:
        meter.add(sample)
    snapshot = meter.snapshot()

    energy, charging, idle, billed = reference(session)

    tolerance = Fraction(1, 10**20)
    assert abs(Fraction(Decimal(snapshot["energy_price_Wh"])) - energy) <= tolerance
    assert Fraction(Decimal(snapshot["charging_price_us"])) == charging
    assert Fraction(Decimal(snapshot["idle_price_us"])) == idle
    assert snapshot["idle_billed_us"] == billed


@SETTINGS
@given(sessions())
def test_running_total_never_decreases(session: Session) -> None:
    totals = running(session)

    t = session.tariff
    capped = t.min_cost is not None or t.max_cost is not None
    # Components taxed like the cap line (the tariff's rates); otherwise a cap line trades amounts between
    # different tax rates and only the total excluding tax is monotonic (see the cost module's docstring).
    same_rates = all(t.taxes_of(kind) == t.tax_rates for kind in ComponentKind)
    for before, after in itertools.pairwise(totals):
        assert after.total_excl_tax >= before.total_excl_tax
        if before.type_of_cost == after.type_of_cost != "NormalCost":
            # Under a cap the totals are the cap's, taxed as one amount: constant whatever the rates.
            assert after.total_incl_tax == before.total_incl_tax
        if not capped:
            assert after.total_incl_tax >= before.total_incl_tax
        elif same_rates:
            # The cap line shifts against the components it tops up or cuts; each tax amount's rounding may then
            # move the total including tax by one unit.
            slack = unit(session.money) * sum(len(line.taxes) for line in before.lines + after.lines)
            assert after.total_incl_tax >= before.total_incl_tax - slack


@SETTINGS
@given(sessions())
def test_lines_add_up_to_the_totals(session: Session) -> None:
    for result in running(session):
        assert result.total_excl_tax == sum(line.excl_tax for line in result.lines)
        assert result.total_tax == sum(amount for line in result.lines for _, amount in line.taxes)
        assert result.total_incl_tax == sum(line.incl_tax for line in result.lines)
        assert result.total_incl_tax == result.total_excl_tax + result.total_tax
        kinds = [line.kind for line in result.lines]
        present = [k.value for k in ComponentKind if session.tariff.component(k) is not None]
        assert kinds[: len(present)] == present
        for line in result.lines:
            assert line.incl_tax == line.excl_tax + sum(amount for _, amount in line.taxes)
            assert line.excl_tax == session.money.round(line.excl_tax)
            if line.kind not in ("min_cost", "max_cost"):
                # Adjustment lines carry the difference to the cap's tax, which may be negative.
                assert line.incl_tax >= line.excl_tax
        assert result.total_incl_tax >= result.total_excl_tax
        if session.tariff.min_cost is not None and (result.energy_Wh > 0 or session.tariff.charge_without_energy):
            # Issue 14: without energy the minimum applies only where the tariff says so.
            assert result.total_excl_tax >= session.money.round(session.tariff.min_cost)
        if session.tariff.max_cost is not None:
            assert result.total_excl_tax <= max(session.tariff.max_cost, session.money.round(session.tariff.max_cost))
            if result.type_of_cost == "MaxCost":
                assert result.total_excl_tax == session.money.round(session.tariff.max_cost)


@SETTINGS
@given(sessions(flat_energy=True), st.data())
def test_flat_energy_cost_does_not_depend_on_sampling(session: Session, data: st.DataObject) -> None:
    samples = session.samples
    keep = data.draw(st.lists(st.booleans(), min_size=len(samples), max_size=len(samples)))
    # A coarser sampling of the same session: the first and last samples stay, meter resets too (their energy
    # is lost either way only if a reset is dropped, so keep those).
    coarse = [
        s for n, s in enumerate(samples)
        if n in (0, len(samples) - 1) or keep[n] or s.energy_Wh < samples[n - 1].energy_Wh
        or (n + 1 < len(samples) and samples[n + 1].energy_Wh < s.energy_Wh)
    ]

    fine_total = running(session)[-1]
    coarse_total = running(Session(session.tz, session.tariff, tuple(coarse), session.money))[-1]

    assert abs(fine_total.total_incl_tax - coarse_total.total_incl_tax) <= unit(session.money)
    assert fine_total.energy_Wh == coarse_total.energy_Wh


@SETTINGS
@given(sessions(), st.data())
def test_restore_anywhere_continues_identically(session: Session, data: st.DataObject) -> None:
    cut = data.draw(st.integers(1, len(session.samples)))
    whole = CostMeter(session.tariff, session.tz, session.money, session.samples[0])
    for sample in session.samples[1:cut]:
        whole.add(sample)
    resumed = CostMeter.restore(session.tariff, session.tz, session.money, json.loads(json.dumps(whole.snapshot())))

    for sample in session.samples[cut:]:
        whole.add(sample)
        resumed.add(sample)

    assert resumed.breakdown() == whole.breakdown()
    assert CostBreakdown.from_json(json.loads(json.dumps(whole.breakdown().to_json()))) == whole.breakdown()
