"""Session costs against amounts worked out by hand (the arithmetic is in the comment of each case).

Times are local wall times in Europe/Berlin (CET +01:00 in winter, CEST +02:00 in summer); 2026-03-29 springs
forward at 02:00 (02:00-03:00 does not exist) and 2026-10-25 falls back at 03:00 (02:00-03:00 happens twice).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from chargepoint.pricing.cost import CostBreakdown, CostLine, CostMeter, Sample, SessionState, evaluate
from chargepoint.pricing.tariff import (
    Component,
    Conditions,
    MoneyFormat,
    PriceElement,
    Rounding,
    Tariff,
    TaxRate,
)

BERLIN = ZoneInfo("Europe/Berlin")
MONEY = MoneyFormat(2, Rounding.half_up)
WEEKEND = frozenset({6, 7})


def local(day: str, hh_mm: str, fold: int = 0) -> datetime:
    """A Berlin wall time as the UTC instant a meter sample carries."""
    wall = datetime.combine(date.fromisoformat(day), time.fromisoformat(hh_mm), tzinfo=BERLIN).replace(fold=fold)
    return wall.astimezone(UTC)


def charging(at: datetime, register_Wh: int) -> Sample:
    return Sample(at, register_Wh, SessionState.charging)


def idle(at: datetime, register_Wh: int) -> Sample:
    return Sample(at, register_Wh, SessionState.idle)


def prices(*elements: tuple[str, Conditions] | str) -> Component:
    """A component from ``"0.30"`` (always) or ``("0.20", Conditions(...))`` items, in order."""
    return Component(tuple(
        PriceElement(Decimal(e)) if isinstance(e, str) else PriceElement(Decimal(e[0]), e[1]) for e in elements
    ))


def window(start: str, end: str) -> Conditions:
    return Conditions(start_time_of_day=time.fromisoformat(start), end_time_of_day=time.fromisoformat(end))


def energy_tariff(
    *elements: tuple[str, Conditions] | str,
    min_cost: Decimal | None = None,
    max_cost: Decimal | None = None,
    tax_rates: tuple[TaxRate, ...] = (),
) -> Tariff:
    return Tariff("T1", "EUR", energy=prices(*elements), min_cost=min_cost, max_cost=max_cost, tax_rates=tax_rates)


def hourly_tariff(*elements: tuple[str, Conditions] | str) -> Tariff:
    return Tariff("T1", "EUR", charging_time=prices(*elements))


@dataclass(frozen=True)
class Case:
    name: str
    tariff: Tariff
    samples: tuple[Sample, ...]
    lines: dict[str, Decimal]  # kind -> excl_tax
    total_excl_tax: Decimal
    type_of_cost: str = "NormalCost"


CASES = [
    Case(
        "flat energy",
        energy_tariff("0.30"),
        (charging(local("2026-01-14", "10:00"), 5_000), charging(local("2026-01-14", "11:00"), 16_000),
         charging(local("2026-01-14", "12:00"), 27_000)),
        # 22 kWh x 0.30 = 6.60
        {"energy": Decimal("6.60")}, Decimal("6.60"),
    ),
    Case(
        "night price from 22:00, across midnight, one interval",
        energy_tariff(("0.20", window("22:00", "06:00")), "0.40"),
        (charging(local("2026-01-14", "21:30"), 1_000), charging(local("2026-01-15", "01:30"), 41_000)),
        # 10 kW for 4 h: 21:30-22:00 5 kWh x 0.40 = 2.00; 22:00-01:30 35 kWh x 0.20 = 7.00; 2.00 + 7.00 = 9.00
        {"energy": Decimal("9.00")}, Decimal("9.00"),
    ),
    Case(
        "spring forward: 01:00-04:00 local is 2 hours",
        hourly_tariff("2.00"),
        (charging(local("2026-03-29", "01:00"), 0), charging(local("2026-03-29", "04:00"), 0)),
        # 00:00Z-02:00Z = 2 h x 2.00 = 4.00
        {"charging_time": Decimal("4.00")}, Decimal("4.00"),
    ),
    Case(
        "fall back: 01:00-04:00 local is 4 hours",
        hourly_tariff("2.00"),
        (charging(local("2026-10-25", "01:00"), 0), charging(local("2026-10-25", "04:00"), 0)),
        # 23:00Z-03:00Z = 4 h x 2.00 = 8.00
        {"charging_time": Decimal("8.00")}, Decimal("8.00"),
    ),
    Case(
        "spring forward: a 02:00-03:00 window does not exist",
        hourly_tariff(("6.00", window("02:00", "03:00")), "1.00"),
        (charging(local("2026-03-29", "01:00"), 0), charging(local("2026-03-29", "04:00"), 0)),
        # 01:00-02:00 CET 1 h x 1.00 + 03:00-04:00 CEST 1 h x 1.00 = 2.00
        {"charging_time": Decimal("2.00")}, Decimal("2.00"),
    ),
    Case(
        "fall back: a 02:00-03:00 window happens twice",
        hourly_tariff(("6.00", window("02:00", "03:00")), "1.00"),
        (charging(local("2026-10-25", "01:00"), 0), charging(local("2026-10-25", "04:00"), 0)),
        # 01-02 CEST 1 h x 1 + 02-03 CEST 1 h x 6 + 02-03 CET 1 h x 6 + 03-04 CET 1 h x 1 = 1 + 6 + 6 + 1 = 14.00
        {"charging_time": Decimal("14.00")}, Decimal("14.00"),
    ),
    Case(
        "spring forward: a 01:30-03:30 window spanning the change",
        hourly_tariff(("6.00", window("01:30", "03:30")), "1.00"),
        (charging(local("2026-03-29", "01:00"), 0), charging(local("2026-03-29", "04:00"), 0)),
        # 01:00-01:30 0.5 h x 1 + 01:30-02:00=03:00 0.5 h x 6 + 03:00-03:30 0.5 h x 6 + 03:30-04:00 0.5 h x 1
        # = 0.5 + 3 + 3 + 0.5 = 7.00
        {"charging_time": Decimal("7.00")}, Decimal("7.00"),
    ),
    Case(
        "fall back: a 01:30-03:30 window spanning the change",
        hourly_tariff(("6.00", window("01:30", "03:30")), "1.00"),
        (charging(local("2026-10-25", "01:00"), 0), charging(local("2026-10-25", "04:00"), 0)),
        # 01:00-01:30 CEST 0.5 h x 1; 01:30-03:00 CEST (=02:00 CET) 1.5 h x 6; 02:00-03:30 CET 1.5 h x 6;
        # 03:30-04:00 CET 0.5 h x 1: 0.5 + 9 + 9 + 0.5 = 19.00
        {"charging_time": Decimal("19.00")}, Decimal("19.00"),
    ),
    Case(
        "idle grace consumed by idle time before and after charging",
        Tariff("T1", "EUR", energy=prices("0.30"), idle_time=prices("6.00"), idle_grace_s=30 * 60),
        (idle(local("2026-01-14", "10:00"), 0), charging(local("2026-01-14", "10:20"), 0),
         idle(local("2026-01-14", "11:20"), 11_000), idle(local("2026-01-14", "12:00"), 11_000)),
        # energy 11 kWh x 0.30 = 3.30; idle 20 min before + 40 min after = 60 min, first 30 free:
        # 0.5 h x 6.00 = 3.00; 3.30 + 3.00 = 6.30
        {"energy": Decimal("3.30"), "idle_time": Decimal("3.00")}, Decimal("6.30"),
    ),
    Case(
        "minimum cost",
        energy_tariff("0.30", min_cost=Decimal("5.00")),
        (charging(local("2026-01-14", "10:00"), 0), charging(local("2026-01-14", "11:00"), 10_000)),
        # 10 kWh x 0.30 = 3.00 < 5.00: adjustment 5.00 - 3.00 = 2.00
        {"energy": Decimal("3.00"), "min_cost": Decimal("2.00")}, Decimal("5.00"), "MinCost",
    ),
    Case(
        "maximum cost",
        energy_tariff("0.30", max_cost=Decimal("5.00")),
        (charging(local("2026-01-14", "10:00"), 0), charging(local("2026-01-14", "11:00"), 20_000)),
        # 20 kWh x 0.30 = 6.00 > 5.00: adjustment 5.00 - 6.00 = -1.00
        {"energy": Decimal("6.00"), "max_cost": Decimal("-1.00")}, Decimal("5.00"), "MaxCost",
    ),
    Case(
        "energy threshold crossed inside one interval",
        energy_tariff(("0.30", Conditions(max_energy_Wh=10_000)), "0.40"),
        (charging(local("2026-01-14", "10:00"), 0), charging(local("2026-01-14", "12:30"), 25_000)),
        # first 10 kWh x 0.30 = 3.00, then 15 kWh x 0.40 = 6.00: 9.00
        {"energy": Decimal("9.00")}, Decimal("9.00"),
    ),
    Case(
        "energy threshold crossed in the middle interval",
        energy_tariff(("0.30", Conditions(max_energy_Wh=10_000)), "0.40"),
        (charging(local("2026-01-14", "10:00"), 0), charging(local("2026-01-14", "10:48"), 8_000),
         charging(local("2026-01-14", "11:36"), 16_000), charging(local("2026-01-14", "12:30"), 25_000)),
        # same energy, same split: 10 x 0.30 + 15 x 0.40 = 9.00
        {"energy": Decimal("9.00")}, Decimal("9.00"),
    ),
    Case(
        "weekend price from Saturday 00:00",
        energy_tariff(("0.20", Conditions(days_of_week=WEEKEND)), "0.40"),
        (charging(local("2026-01-16", "23:00"), 0), charging(local("2026-01-17", "01:00"), 20_000)),
        # Friday 23:00-24:00 10 kWh x 0.40 = 4.00; Saturday 00:00-01:00 10 kWh x 0.20 = 2.00: 6.00
        {"energy": Decimal("6.00")}, Decimal("6.00"),
    ),
    Case(
        "date-range promotion, then the fallback",
        energy_tariff(("0.10", Conditions(valid_from_date=date(2026, 5, 1), valid_to_date=date(2026, 5, 8))), "0.40"),
        (charging(local("2026-05-07", "23:00"), 0), charging(local("2026-05-08", "01:00"), 20_000)),
        # 7 May 23:00-24:00 10 kWh x 0.10 = 1.00; 8 May (to-date exclusive) 10 kWh x 0.40 = 4.00: 5.00
        {"energy": Decimal("5.00")}, Decimal("5.00"),
    ),
    Case(
        "power: fast then slow",
        energy_tariff(("0.50", Conditions(min_power_W=11_000.0)), "0.30"),
        (charging(local("2026-01-14", "10:00"), 0), charging(local("2026-01-14", "11:00"), 22_000),
         charging(local("2026-01-14", "12:00"), 25_700)),
        # 22 kW: 22 kWh x 0.50 = 11.00; 3.7 kW: 3.7 kWh x 0.30 = 1.11: 12.11
        {"energy": Decimal("12.11")}, Decimal("12.11"),
    ),
    Case(
        "charging-time threshold, idle time in between does not count",
        hourly_tariff(("1.00", Conditions(max_charging_time_s=7_200)), "3.00"),
        (charging(local("2026-01-14", "10:00"), 0), idle(local("2026-01-14", "11:00"), 0),
         charging(local("2026-01-14", "12:00"), 0), charging(local("2026-01-14", "14:00"), 0)),
        # 3 h charging: 2 h x 1.00 + 1 h x 3.00 = 5.00
        {"charging_time": Decimal("5.00")}, Decimal("5.00"),
    ),
    Case(
        "duration threshold: a higher price after the first hour",
        energy_tariff(("0.30", Conditions(max_duration_s=3_600)), "0.50"),
        (charging(local("2026-01-14", "10:00"), 0), charging(local("2026-01-14", "12:00"), 20_000)),
        # 10 kW: first hour 10 kWh x 0.30 = 3.00, second 10 kWh x 0.50 = 5.00: 8.00
        {"energy": Decimal("8.00")}, Decimal("8.00"),
    ),
    Case(
        "fixed fee of the session start (Saturday)",
        Tariff("T1", "EUR", energy=prices("0.30"),
               fixed_fee=prices(("1.00", Conditions(days_of_week=WEEKEND)), "0.50")),
        (charging(local("2026-01-17", "09:00"), 0), charging(local("2026-01-17", "10:00"), 10_000)),
        # 10 kWh x 0.30 = 3.00; fee 1.00 (weekend): 4.00
        {"energy": Decimal("3.00"), "fixed_fee": Decimal("1.00")}, Decimal("4.00"),
    ),
    Case(
        "energy register going backwards counts as nothing",
        energy_tariff("0.30"),
        (charging(local("2026-01-14", "10:00"), 50_000), charging(local("2026-01-14", "11:00"), 60_000),
         charging(local("2026-01-14", "11:30"), 1_000), charging(local("2026-01-14", "12:00"), 6_000)),
        # 10 kWh, then the meter restarts at 1 kWh (0), then 5 kWh: 15 kWh x 0.30 = 4.50
        {"energy": Decimal("4.50")}, Decimal("4.50"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cost_matches_hand_computed(case: Case) -> None:
    result = evaluate(case.tariff, case.samples, BERLIN, MONEY)

    assert {line.kind: line.excl_tax for line in result.lines} == case.lines
    assert result.total_excl_tax == case.total_excl_tax
    assert result.total_incl_tax == case.total_excl_tax  # no taxes in these tariffs
    assert result.type_of_cost == case.type_of_cost


def test_quantities_and_totals_of_the_idle_grace_case() -> None:
    case = next(c for c in CASES if c.name.startswith("idle grace"))

    result = evaluate(case.tariff, case.samples, BERLIN, MONEY)

    energy, idle_line = result.lines
    assert energy.quantity == Decimal("11")  # kWh
    assert idle_line.quantity == Decimal("0.5")  # billed hours, after the 30 min grace
    assert result.energy_Wh == 11_000
    assert (result.duration_s, result.charging_time_s, result.idle_time_s) == (7_200.0, 3_600.0, 3_600.0)


def test_stacked_taxes() -> None:
    tariff = energy_tariff(
        "0.30", tax_rates=(TaxRate("VAT", Decimal("19")), TaxRate("Levy", Decimal("5"), stack=1)),
    )
    samples = (charging(local("2026-01-14", "10:00"), 0), charging(local("2026-01-14", "11:00"), 10_000))

    result = evaluate(tariff, samples, BERLIN, MONEY)

    # 10 kWh x 0.30 = 3.00; VAT 3.00 x 19 % = 0.57; Levy (3.00 + 0.57) x 5 % = 0.1785 -> 0.18;
    # incl 3.00 + 0.57 + 0.18 = 3.75
    assert result.lines == (
        CostLine("energy", Decimal("10"), Decimal("3.00"), (("VAT", Decimal("0.57")), ("Levy", Decimal("0.18"))),
                 Decimal("3.75")),
    )
    assert (result.total_excl_tax, result.total_tax, result.total_incl_tax) == (
        Decimal("3.00"), Decimal("0.75"), Decimal("3.75"))


def test_component_taxes_override_tariff_taxes_and_caps_use_tariff_taxes() -> None:
    tariff = Tariff(
        "T1", "EUR",
        energy=prices("0.30"),
        idle_time=Component((PriceElement(Decimal("6.00")),), tax_rates=()),  # idle fee untaxed
        min_cost=Decimal("10.00"),
        tax_rates=(TaxRate("VAT", Decimal("20")),),
    )
    samples = (charging(local("2026-01-14", "10:00"), 0), idle(local("2026-01-14", "11:00"), 10_000),
               idle(local("2026-01-14", "11:30"), 10_000))

    result = evaluate(tariff, samples, BERLIN, MONEY)

    # energy 10 x 0.30 = 3.00, VAT 0.60; idle 0.5 h x 6.00 = 3.00, no tax. Under the minimum the session costs
    # the minimum taxed as one amount at the tariff's rate: 10.00 + 20 % = 12.00. The adjustment line carries
    # the difference: 10.00 - 6.00 = 4.00 excl., VAT 2.00 - 0.60 = 1.40.
    assert [(line.kind, line.excl_tax, line.taxes) for line in result.lines] == [
        ("energy", Decimal("3.00"), (("VAT", Decimal("0.60")),)),
        ("idle_time", Decimal("3.00"), ()),
        ("min_cost", Decimal("4.00"), (("VAT", Decimal("1.40")),)),
    ]
    # 3.60 + 3.00 + 5.40 = 12.00
    assert result.total_incl_tax == Decimal("12.00")
    assert result.type_of_cost == "MinCost"


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [
        # 1 kWh x 0.125 = 0.125 exactly
        (Rounding.half_up, Decimal("0.13")),
        (Rounding.half_even, Decimal("0.12")),
        (Rounding.down, Decimal("0.12")),
        (Rounding.up, Decimal("0.13")),
    ],
)
def test_rounding_modes_on_a_half_cent(rounding: Rounding, expected: Decimal) -> None:
    samples = (charging(local("2026-01-14", "10:00"), 0), charging(local("2026-01-14", "11:00"), 1_000))

    result = evaluate(energy_tariff("0.125"), samples, BERLIN, MoneyFormat(2, rounding))

    assert result.total_excl_tax == expected


def test_tax_amounts_are_rounded_with_the_money_format() -> None:
    tariff = energy_tariff("0.25", tax_rates=(TaxRate("VAT", Decimal("10")),))
    samples = (charging(local("2026-01-14", "10:00"), 0), charging(local("2026-01-14", "11:00"), 1_000))

    # 0.25 x 10 % = 0.025: half_up 0.03, half_even 0.02
    assert evaluate(tariff, samples, BERLIN, MoneyFormat(2, Rounding.half_up)).total_tax == Decimal("0.03")
    assert evaluate(tariff, samples, BERLIN, MoneyFormat(2, Rounding.half_even)).total_tax == Decimal("0.02")


def test_energy_jump_at_one_instant_is_split_at_thresholds() -> None:
    tariff = energy_tariff(("0.30", Conditions(max_energy_Wh=10_000)), "0.40")
    at = local("2026-01-14", "10:00")
    samples = (charging(at, 0), charging(at, 12_000))

    # 10 kWh x 0.30 + 2 kWh x 0.40 = 3.00 + 0.80 = 3.80
    assert evaluate(tariff, samples, BERLIN, MONEY).total_excl_tax == Decimal("3.80")


def test_breakdown_at_a_later_moment_extends_time_but_not_energy() -> None:
    tariff = Tariff("T1", "EUR", energy=prices("0.30"), charging_time=prices("2.00"))
    meter = CostMeter(tariff, BERLIN, MONEY, charging(local("2026-01-14", "10:00"), 0))
    meter.add(charging(local("2026-01-14", "11:00"), 10_000))

    later = meter.breakdown(local("2026-01-14", "11:30"))
    now = meter.breakdown()

    # energy 10 x 0.30 = 3.00 either way; charging 1.5 h x 2.00 = 3.00 later, 1 h x 2.00 = 2.00 now
    assert [line.excl_tax for line in later.lines] == [Decimal("3.00"), Decimal("3.00")]
    assert later.duration_s == 5_400.0
    assert [line.excl_tax for line in now.lines] == [Decimal("3.00"), Decimal("2.00")]
    with pytest.raises(ValueError, match="before the last sample"):
        meter.breakdown(local("2026-01-14", "10:30"))


def test_breakdown_at_uses_the_power_of_the_last_interval() -> None:
    tariff = Tariff("T1", "EUR", charging_time=prices(("4.00", Conditions(min_power_W=11_000.0)), "1.00"))
    meter = CostMeter(tariff, BERLIN, MONEY, charging(local("2026-01-14", "10:00"), 0))
    meter.add(charging(local("2026-01-14", "11:00"), 22_000))  # 22 kW

    # 1 h x 4.00 + 1 h more at 22 kW x 4.00 = 8.00
    assert meter.breakdown(local("2026-01-14", "12:00")).total_excl_tax == Decimal("8.00")


def test_sample_earlier_than_the_last_is_refused_and_changes_nothing() -> None:
    meter = CostMeter(energy_tariff("0.30"), BERLIN, MONEY, charging(local("2026-01-14", "10:00"), 0))
    meter.add(charging(local("2026-01-14", "11:00"), 10_000))
    before = meter.snapshot()

    with pytest.raises(ValueError, match="before the previous one"):
        meter.add(charging(local("2026-01-14", "10:59"), 11_000))

    assert meter.snapshot() == before


def test_naive_sample_time_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        CostMeter(energy_tariff("0.30"), BERLIN, MONEY, charging(datetime(2026, 1, 14, 10), 0))


def test_evaluate_needs_a_sample() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        evaluate(energy_tariff("0.30"), (), BERLIN, MONEY)


def test_restore_from_snapshot_continues_identically() -> None:
    tariff = Tariff(
        "T1", "EUR",
        energy=prices(("0.20", window("22:00", "06:00")), ("0.30", Conditions(max_energy_Wh=10_000)), "0.40"),
        charging_time=prices(("0.00", Conditions(max_charging_time_s=1_800)), "1.20"),
        idle_time=prices("6.00"),
        fixed_fee=prices("0.50"),
        idle_grace_s=600,
        tax_rates=(TaxRate("VAT", Decimal("19")),),
    )
    start = local("2026-03-28", "20:00")
    samples = [charging(start, 1_000)]
    for n in range(1, 60):
        state = SessionState.idle if 30 <= n < 40 else SessionState.charging
        register = samples[-1].energy_Wh + (0 if samples[-1].state is SessionState.idle else 1_234)
        samples.append(Sample(start + timedelta(minutes=7 * n), register, state))
    whole = CostMeter(tariff, BERLIN, MONEY, samples[0])
    for sample in samples[1:25]:
        whole.add(sample)
    stored = json.loads(json.dumps(whole.snapshot()))

    resumed = CostMeter.restore(tariff, BERLIN, MONEY, stored)
    for sample in samples[25:]:
        whole.add(sample)
        resumed.add(sample)

    assert resumed.breakdown() == whole.breakdown()
    assert resumed.snapshot() == whole.snapshot()
    assert whole.breakdown().total_incl_tax > 0


def test_restore_refuses_a_snapshot_of_another_tariff() -> None:
    meter = CostMeter(energy_tariff("0.30"), BERLIN, MONEY, charging(local("2026-01-14", "10:00"), 0))
    other = Tariff("T2", "EUR", energy=prices("0.30"))

    with pytest.raises(ValueError, match="tariff_id"):
        CostMeter.restore(other, BERLIN, MONEY, meter.snapshot())


def test_breakdown_json_round_trip() -> None:
    case = next(c for c in CASES if c.name == "minimum cost")
    result = evaluate(case.tariff, case.samples, BERLIN, MONEY)

    data = json.loads(json.dumps(result.to_json()))

    assert CostBreakdown.from_json(data) == result
    assert data["total_incl_tax"] == "5.00"


def test_breakdown_from_malformed_json_names_the_field() -> None:
    case = next(c for c in CASES if c.name == "flat energy")
    data = evaluate(case.tariff, case.samples, BERLIN, MONEY).to_json()
    data["lines"][0]["excl_tax"] = "six"

    with pytest.raises(ValueError, match=r"breakdown\.lines\[0\]\.excl_tax"):
        CostBreakdown.from_json(data)
