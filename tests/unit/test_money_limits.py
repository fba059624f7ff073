"""Point 12 of issue 14: the boundaries mutation testing found uncovered. Combining limits keeps the tightest of
each kind whatever their order and source; a limit is reached at the sample whose total equals it; price
thresholds on energy are inclusive minimums and exclusive maximums; and, as properties, energy thresholds price
every Wh at the price of its own side."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargepoint.pricing.cost import Sample, SessionState, evaluate
from chargepoint.pricing.limits import COST_LIMIT, ENERGY_LIMIT, TIME_LIMIT, SessionLimits
from chargepoint.pricing.tariff import Component, Conditions, MoneyFormat, PriceElement, Tariff

T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")
MONEY = MoneyFormat()
D = Decimal

# --------------------------------------------------------------------------- combining limits

SOURCES = {
    "package": SessionLimits(D("50.00"), 60_000, 28_800.0, ("package",)),
    "prepaid": SessionLimits(max_cost=D("5.00"), sources=("prepaid",)),
    "card": SessionLimits(max_cost=D("20.00"), sources=("card",)),
    "csms": SessionLimits(D("30.00"), 10_000, 3_600.0, ("csms",)),
    "none": SessionLimits(),
}


@pytest.mark.parametrize("names", [
    combo for n in range(1, len(SOURCES) + 1) for combo in itertools.permutations(SOURCES, n)
])
def test_every_combination_of_limits_keeps_the_tightest_of_each_kind(names: tuple[str, ...]) -> None:
    combined = SessionLimits()
    for name in names:
        combined = combined.tighten(SOURCES[name])
    costs = [c for n in names if (c := SOURCES[n].max_cost) is not None]
    energies = [e for n in names if (e := SOURCES[n].max_energy_Wh) is not None]
    durations = [d for n in names if (d := SOURCES[n].max_duration_s) is not None]
    assert combined.max_cost == (min(costs) if costs else None)
    assert combined.max_energy_Wh == (min(energies) if energies else None)
    assert combined.max_duration_s == (min(durations) if durations else None)
    assert set(combined.sources) == {s for n in names for s in SOURCES[n].sources}


def test_a_package_cap_of_50_with_a_prepaid_balance_of_5_stops_at_5() -> None:
    for first, second in (("package", "prepaid"), ("prepaid", "package")):
        limits = SOURCES[first].tighten(SOURCES[second])
        assert limits.max_cost == D("5.00")
        assert limits.reached(D("5.00"), 0, 0.0) == COST_LIMIT
        assert limits.reached(D("4.99"), 0, 0.0) is None


@given(st.lists(st.one_of(st.none(), st.decimals(min_value=0, max_value=1000, places=2)), min_size=1,
                max_size=5))
@settings(max_examples=200, deadline=None)
def test_tightening_is_the_minimum_in_any_order(caps: list[Decimal | None]) -> None:
    results = set()
    for order in itertools.islice(itertools.permutations(caps), 24):
        combined = SessionLimits()
        for cap in order:
            combined = combined.tighten(SessionLimits(max_cost=cap))
        results.add(combined.max_cost)
    given_caps = [cap for cap in caps if cap is not None]
    assert results == {min(given_caps) if given_caps else None}


# --------------------------------------------------------------------------- reaching a limit


@pytest.mark.parametrize(("cost", "energy_Wh", "duration_s", "expected"), [
    (D("10.00"), 0, 0.0, COST_LIMIT),  # equal: stop at this sample, not one later
    (D("9.99"), 0, 0.0, None),
    (D("10.01"), 0, 0.0, COST_LIMIT),
    (None, 0, 0.0, None),  # unpriced: a cost limit cannot apply
    (D("0"), 5_000, 0.0, ENERGY_LIMIT),  # equal
    (D("0"), 4_999, 0.0, None),
    (D("0"), 0, 600.0, TIME_LIMIT),  # equal
    (D("0"), 0, 599.999, None),
])
def test_a_limit_is_reached_at_the_sample_whose_total_equals_it(
    cost: Decimal | None, energy_Wh: int, duration_s: float, expected: str | None,
) -> None:
    limits = SessionLimits(D("10.00"), 5_000, 600.0)
    assert limits.reached(cost, energy_Wh, duration_s) == expected


def test_a_zero_limit_is_reached_at_once() -> None:
    # A prepaid balance of 0.00 allows nothing: the very first sample stops the session.
    assert SessionLimits(max_cost=D("0.00")).reached(D("0.00"), 0, 0.0) == COST_LIMIT


# --------------------------------------------------------------------------- energy price thresholds

# 0.90/kWh below 5 kWh, 1.00/kWh from 5 kWh on (a minimum is inclusive).
FROM_5 = Tariff("from5", "EUR", energy=Component((
    PriceElement(D("1.00"), Conditions(min_energy_Wh=5_000)),
    PriceElement(D("0.90")),
)))
# 0.90/kWh below 5 kWh (a maximum is exclusive), 1.00/kWh after.
BELOW_5 = Tariff("below5", "EUR", energy=Component((
    PriceElement(D("0.90"), Conditions(max_energy_Wh=5_000)),
    PriceElement(D("1.00")),
)))


def _charge(tariff: Tariff, *registers_Wh: int) -> Decimal:
    samples = [Sample(T0 + timedelta(minutes=10 * n), wh, SessionState.charging) for n, wh in enumerate(registers_Wh)]
    return evaluate(tariff, samples, UTC_ZONE, MONEY).total_incl_tax


@pytest.mark.parametrize("tariff", [FROM_5, BELOW_5], ids=["min", "max"])
def test_the_energy_threshold_is_priced_on_its_own_side(tariff: Tariff) -> None:
    # Exactly 5 kWh: all at 0.90 = 4.50.
    assert _charge(tariff, 0, 5_000) == D("4.50")
    # 6 kWh in one interval: 5 x 0.90 + 1 x 1.00 = 5.50 (not 5.40: the 6th kWh is past the threshold).
    assert _charge(tariff, 0, 6_000) == D("5.50")
    # The same with a sample exactly at the threshold: 4.50 + 1.00 = 5.50.
    assert _charge(tariff, 0, 5_000, 6_000) == D("5.50")
    # A sample at the threshold and nothing after it: still 4.50 (the threshold Wh itself is not priced twice).
    assert _charge(tariff, 0, 5_000, 5_000) == D("4.50")


@given(
    threshold_Wh=st.integers(min_value=1, max_value=20_000),
    steps_Wh=st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=12),
    low=st.decimals(min_value=0, max_value=1, places=2),
    high=st.decimals(min_value=0, max_value=1, places=2),
)
@settings(max_examples=300, deadline=None)
def test_an_energy_threshold_prices_each_wh_on_its_own_side(
    threshold_Wh: int, steps_Wh: list[int], low: Decimal, high: Decimal,
) -> None:
    tariff = Tariff("t", "EUR", energy=Component((
        PriceElement(high, Conditions(min_energy_Wh=threshold_Wh)),
        PriceElement(low),
    )))
    registers = list(itertools.accumulate([0, *steps_Wh]))
    total_Wh = registers[-1]
    expected = (low * min(total_Wh, threshold_Wh) + high * max(0, total_Wh - threshold_Wh)) / 1000
    result = _charge(tariff, *registers)
    # The interval that crosses the threshold is cut at the interpolated microsecond, so the Wh on each side can be
    # off by a fraction: within one cent of the exact price, and exact when no interval crosses it.
    assert abs(result - expected) <= D("0.01"), (result, expected)
    if threshold_Wh in registers or total_Wh <= threshold_Wh:
        assert result == MONEY.round(expected)
