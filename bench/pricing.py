"""Pricing: ``CostMeter.add()`` + ``breakdown()`` per meter sample, the work the runtime does on every sample.

The tariff has 50 price elements: energy prices by time of day, day of week and energy delivered, charging-time
prices by time of day and time charging, idle-time prices with a grace period, a fixed fee, two stacked taxes,
minimum and maximum cost. The session lasts 24 hours across the spring-forward night in Europe/Berlin, charges
at about 7.4 kW with idle spells, and is sampled evenly (``samples`` samples, every second by default).

Run it alone: ``python -m bench --pricing [--pricing-samples N]`` or ``python -m bench.pricing [N]``.
"""

from __future__ import annotations

import gc
import sys
import time as clock
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from chargepoint.pricing.cost import CostMeter, Sample, SessionState
from chargepoint.pricing.tariff import Component, Conditions, MoneyFormat, PriceElement, Tariff, TaxRate
from chargepoint.pricing.validation import validate_tariff

TIME_ZONE = "Europe/Berlin"
SESSION_S = 86_400
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
WEEKEND = frozenset({6, 7})


def _hours(start: int, end: int, **more: Any) -> Conditions:
    """Local hours ``start`` to ``end`` (24 = midnight), with more conditions."""
    return replace(Conditions(start_time_of_day=time(start), end_time_of_day=time(end % 24)), **more)


def tariff() -> Tariff:
    """The 50-element tariff of the benchmark (valid: ``validate_tariff`` passes)."""
    energy = [
        # A big customer's bulk price once 40 kWh are in, at night only.
        PriceElement(Decimal("0.19"), _hours(22, 6, min_energy_Wh=40_000)),
        PriceElement(Decimal("0.21"), Conditions(min_energy_Wh=60_000)),
        PriceElement(Decimal("0.55"), Conditions(min_power_W=50_000.0)),  # DC-fast surcharge: never here
        PriceElement(Decimal("0.10"), Conditions(valid_from_date=date(2026, 1, 1), valid_to_date=date(2026, 1, 8))),
        PriceElement(Decimal("0.45"), _hours(17, 20, days_of_week=WEEKDAYS, max_energy_Wh=10_000)),
        PriceElement(Decimal("0.42"), _hours(17, 20, days_of_week=WEEKDAYS)),
        PriceElement(Decimal("0.39"), _hours(7, 9, days_of_week=WEEKDAYS)),
        PriceElement(Decimal("0.25"), _hours(10, 15, days_of_week=WEEKEND)),
    ]
    # Hourly prices of the rest of the day (the last one is the fallback for every time of the week).
    for hour in range(0, 24, 2):
        energy.append(PriceElement(Decimal("0.30") + Decimal(hour) / 100, _hours(hour, hour + 1,
                                                                              days_of_week=WEEKDAYS)))
    energy += [
        PriceElement(Decimal("0.28"), _hours(6, 22, days_of_week=WEEKEND)),
        PriceElement(Decimal("0.22"), _hours(22, 6)),
        PriceElement(Decimal("0.33"), Conditions(days_of_week=frozenset({5}))),
        PriceElement(Decimal("0.35")),
    ]
    charging = [
        PriceElement(Decimal("0.00"), Conditions(max_charging_time_s=1_800)),  # first half hour free
        PriceElement(Decimal("1.20"), _hours(17, 20, days_of_week=WEEKDAYS, min_charging_time_s=4 * 3600)),
        PriceElement(Decimal("0.90"), _hours(17, 20, days_of_week=WEEKDAYS)),
        PriceElement(Decimal("0.60"), Conditions(min_charging_time_s=6 * 3600)),
        PriceElement(Decimal("0.50"), _hours(7, 9, days_of_week=WEEKDAYS)),
        PriceElement(Decimal("0.40"), _hours(9, 12)),
        PriceElement(Decimal("0.45"), _hours(12, 14)),
        PriceElement(Decimal("0.42"), _hours(14, 17)),
        PriceElement(Decimal("0.20"), _hours(2, 3)),  # does not exist on spring-forward night
        PriceElement(Decimal("0.15"), _hours(23, 5)),
        PriceElement(Decimal("0.30"), Conditions(days_of_week=WEEKEND)),
        PriceElement(Decimal("0.35"), Conditions(min_duration_s=12 * 3600)),
        PriceElement(Decimal("0.36"), _hours(20, 23)),
        PriceElement(Decimal("0.38")),
    ]
    idle = [
        PriceElement(Decimal("0.00"), _hours(22, 7)),
        PriceElement(Decimal("12.00"), Conditions(min_idle_time_s=2 * 3600)),
        PriceElement(Decimal("9.00"), _hours(17, 20, days_of_week=WEEKDAYS)),
        PriceElement(Decimal("6.00"), Conditions(min_idle_time_s=3600)),
        PriceElement(Decimal("4.80"), _hours(7, 10)),
        PriceElement(Decimal("5.40"), _hours(10, 14)),
        PriceElement(Decimal("5.10"), _hours(14, 17)),
        PriceElement(Decimal("3.00"), Conditions(days_of_week=WEEKEND)),
        PriceElement(Decimal("4.00"), _hours(20, 22)),
        PriceElement(Decimal("4.50")),
    ]
    fixed = [
        PriceElement(Decimal("0.50"), Conditions(days_of_week=WEEKEND)),
        PriceElement(Decimal("0.35")),
    ]
    result = Tariff(
        tariff_id="bench-50",
        currency="EUR",
        energy=Component(tuple(energy)),
        charging_time=Component(tuple(charging)),
        idle_time=Component(tuple(idle), tax_rates=(TaxRate("VAT", Decimal("19")),)),
        fixed_fee=Component(tuple(fixed)),
        idle_grace_s=15 * 60,
        min_cost=Decimal("2.00"),
        max_cost=Decimal("250.00"),
        tax_rates=(TaxRate("VAT", Decimal("19")), TaxRate("Levy", Decimal("5"), stack=1)),
    )
    count = sum(len(c.prices) for c in (result.energy, result.charging_time, result.idle_time, result.fixed_fee)
                if c is not None)
    assert count == 50, count
    return result


def session(samples: int) -> list[Sample]:
    """``samples`` + 1 samples over 24 hours from Saturday 2026-03-28 12:00 local (spring forward that night)."""
    start = datetime(2026, 3, 28, 12, tzinfo=ZoneInfo(TIME_ZONE)).astimezone(UTC)
    step_us = SESSION_S * 1_000_000 // samples
    register_Wh = 12_345_678.0
    out = [Sample(start, int(register_Wh), SessionState.charging)]
    for n in range(1, samples + 1):
        at_s = n * step_us / 1e6
        # Charging, with idle spells: the car pauses 40 min every 5 hours and stops after 20 hours.
        charging = (at_s % 18_000) < 15_600 and at_s < 72_000
        if out[-1].state is SessionState.charging:
            register_Wh += 7_400 * step_us / 3.6e9
        out.append(Sample(start + timedelta(microseconds=n * step_us), int(register_Wh),
                          SessionState.charging if charging else SessionState.idle))
    return out


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def run(samples: int, show_machine: bool = True) -> None:
    """Print p50/p99/max of ``add()`` + ``breakdown()`` per sample over a 24-hour session."""
    if show_machine:
        from bench.__main__ import machine

        print(f"machine: {machine()}")
    t = tariff()
    begin = clock.perf_counter()
    validate_tariff(t)
    validate_ms = (clock.perf_counter() - begin) * 1000
    points = session(samples)
    tz = ZoneInfo(TIME_ZONE)
    meter = CostMeter(t, tz, MoneyFormat(), points[0])
    durations_us: list[float] = []
    perf = clock.perf_counter_ns
    # The objects of everything imported so far (the OCPP stack, pydantic ...) are frozen, so a full collection
    # of them, a pause of the whole process that any allocation may trigger, is not booked to pricing.
    gc.collect()
    gc.freeze()
    collections_before = sum(g["collections"] for g in gc.get_stats())
    total_begin = clock.perf_counter()
    try:
        for sample in points[1:]:
            begin_ns = perf()
            meter.add(sample)
            breakdown = meter.breakdown()
            durations_us.append((perf() - begin_ns) / 1000)
    finally:
        gc.unfreeze()
    total_s = clock.perf_counter() - total_begin
    collections = sum(g["collections"] for g in gc.get_stats()) - collections_before
    durations_us.sort()
    step_s = SESSION_S / samples
    print(f"pricing: 50-element tariff, 24 h session sampled every {step_s:g} s ({samples} samples), "
          f"{TIME_ZONE} across spring forward")
    print(f"pricing: add()+breakdown() per sample: p50 {_percentile(durations_us, 0.5):.1f} us, "
          f"p99 {_percentile(durations_us, 0.99):.1f} us, max {durations_us[-1]:.1f} us "
          f"(total {total_s:.2f} s, {collections} gc runs, older objects frozen)")
    print(f"pricing: validate_tariff {validate_ms:.2f} ms; session total {breakdown.total_incl_tax} "
          f"{breakdown.currency} incl. tax ({breakdown.type_of_cost}, {breakdown.energy_Wh / 1000:.1f} kWh)")


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else SESSION_S)
