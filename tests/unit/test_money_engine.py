"""Issue 14 at the tariff engine's API: sessions without energy, time the charger holds power back, the tax
method, what a prepaid balance must cover, short durations on the receipt. Every amount is worked out by hand in
the comment next to it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from chargepoint.pricing.cost import CostBreakdown, CostMeter, Sample, SessionState, evaluate, waived
from chargepoint.pricing.serialize import tariff_from_json, tariff_to_json
from chargepoint.pricing.tariff import Component, MoneyFormat, PriceElement, Tariff, TaxMethod, TaxRate
from chargepoint.pricing.text import price_lines, receipt_lines, running_lines

UTC_ZONE = ZoneInfo("UTC")
MONEY = MoneyFormat()  # 2 decimals, half up
T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)  # a Monday
VAT = (TaxRate("VAT", Decimal(19)),)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def flat(price: str) -> Component:
    return Component((PriceElement(Decimal(price)),))


# The tariff: 0.40/kWh, a 0.50 session fee and a 1.00 minimum, 19 % VAT.
ADHOC = Tariff("adhoc", "EUR", energy=flat("0.40"), fixed_fee=flat("0.50"), min_cost=Decimal("1.00"),
               tax_rates=VAT)


def run(tariff: Tariff, *samples: tuple[float, int, SessionState]) -> CostBreakdown:
    return evaluate(tariff, [Sample(at(m), wh, state) for m, wh, state in samples], UTC_ZONE, MONEY)


C, IDLING, H = SessionState.charging, SessionState.idle, SessionState.held


# --------------------------------------------------------------------------- sessions without energy


def test_a_session_without_energy_pays_neither_the_fee_nor_the_minimum_by_default() -> None:
    # Started, the EV never drew: 0 Wh. Before issue 14: fee 0.50 raised to the minimum 1.00, x 1.19 = 1.19.
    b = run(ADHOC, (0, 1000, C), (10, 1000, C))
    assert b.total_incl_tax == Decimal("0.00")
    assert b.type_of_cost == "NormalCost"
    assert [line.kind for line in b.lines] == ["energy", "fixed_fee"]  # no min_cost line


def test_the_fee_and_the_minimum_apply_from_the_first_watt_hour() -> None:
    # 1 Wh: energy 0.0004 -> 0.00, fee 0.50, below the minimum 1.00 -> 1.00 net, 0.19 VAT = 1.19.
    b = run(ADHOC, (0, 1000, C), (10, 1001, C))
    assert b.total_excl_tax == Decimal("1.00") and b.total_incl_tax == Decimal("1.19")
    assert b.type_of_cost == "MinCost"


def test_a_tariff_may_charge_sessions_without_energy() -> None:
    tariff = replace(ADHOC, charge_without_energy=True)
    # fee 0.50 -> minimum 1.00 net -> 1.19 gross, as before issue 14.
    assert run(tariff, (0, 1000, C), (10, 1000, C)).total_incl_tax == Decimal("1.19")
    no_minimum = replace(tariff, min_cost=None)
    # fee 0.50 + 19 % = 0.595 -> 0.60 (the 0.60 session fee).
    assert run(no_minimum, (0, 1000, C), (10, 1000, C)).total_incl_tax == Decimal("0.60")


def test_waived_keeps_the_quantities_and_zeroes_every_amount() -> None:
    tariff = replace(ADHOC, charge_without_energy=True, idle_time=flat("6.00"))  # 6.00 per hour idle
    b = run(tariff, (0, 1000, IDLING), (30, 1000, IDLING))  # 0.5 h idle = 3.00 net
    assert b.total_excl_tax == Decimal("3.50")  # 3.00 idle + 0.50 fee (above the 1.00 minimum)
    free = waived(b)
    assert free.total_incl_tax == free.total_excl_tax == free.total_tax == Decimal("0.00")
    assert all(line.incl_tax == 0 and line.excl_tax == 0 for line in free.lines)
    assert free.idle_time_s == b.idle_time_s == 1800.0
    assert CostBreakdown.from_json(free.to_json()) == free


def test_entry_cost_is_what_the_first_energy_costs() -> None:
    meter = CostMeter(ADHOC, UTC_ZONE, MONEY, Sample(T0, 0, C))
    assert meter.entry_cost() == Decimal("1.19")  # minimum 1.00 x 1.19
    no_minimum = CostMeter(replace(ADHOC, min_cost=None), UTC_ZONE, MONEY, Sample(T0, 0, C))
    assert no_minimum.entry_cost() == Decimal("0.60")  # fee 0.50 x 1.19 = 0.595 -> 0.60
    free = CostMeter(Tariff("free", "EUR", energy=flat("0.40")), UTC_ZONE, MONEY, Sample(T0, 0, C))
    assert free.entry_cost() == Decimal("0.00")


# --------------------------------------------------------------------------- idle time


IDLE = Tariff("idle", "EUR", energy=flat("0.30"), charging_time=flat("1.20"), idle_time=flat("6.00"),
              idle_grace_s=600)  # 6.00/h idle after 10 free minutes, 1.20/h charging, no tax


def test_time_the_charger_holds_power_back_is_neither_idle_nor_charging() -> None:
    # 10 min charging (1 kWh), 60 min SuspendedEVSE (held), 10 min charging (1 kWh).
    b = run(IDLE, (0, 0, C), (10, 1000, H), (70, 1000, C), (80, 2000, C))
    # energy 2 kWh x 0.30 = 0.60; charging 20 min x 1.20/h = 0.40; no idle at all.
    assert b.total_excl_tax == Decimal("1.00")
    assert b.idle_time_s == 0.0 and b.charging_time_s == 1200.0 and b.duration_s == 4800.0


def test_the_ev_occupying_the_connector_after_it_finished_is_idle_after_the_grace() -> None:
    # 10 min charging (1 kWh), then 40 min SuspendedEV: 10 free, 30 billed = 0.5 h x 6.00 = 3.00.
    b = run(IDLE, (0, 0, C), (10, 1000, IDLING), (50, 1000, IDLING))
    # energy 0.30 + charging 10 min x 1.20/h = 0.20 + idle 3.00 = 3.50
    assert b.total_excl_tax == Decimal("3.50")
    assert b.idle_time_s == 2400.0


@pytest.mark.parametrize(("counts", "expected"), [(True, "4.30"), (False, "0.30")])
def test_the_wait_before_the_first_energy_counts_as_the_tariff_says(counts: bool, expected: str) -> None:
    tariff = replace(IDLE, charging_time=None, idle_before_energy=counts)
    # 40 min plugged in before the EV draws, 10 min charging (1 kWh = 0.30), 10 min idle after it finished.
    # Counted: 50 min idle, 10 free, 40 min x 6.00/h = 4.00, + 0.30 = 4.30.
    # Not counted: 10 min idle, all within the grace: 0.30.
    b = run(tariff, (0, 0, IDLING), (40, 0, C), (50, 1000, IDLING), (60, 1000, IDLING))
    assert b.total_excl_tax == Decimal(expected)
    assert b.idle_time_s == (3000.0 if counts else 600.0)


def test_the_price_display_says_whether_the_wait_before_charging_is_idle() -> None:
    waits = price_lines(IDLE, MONEY, "en")
    no_wait = price_lines(replace(IDLE, idle_before_energy=False), MONEY, "en")
    assert "Idle fee also while waiting to charge" in waits, waits
    assert "No idle fee before charging starts" in no_wait, no_wait
    assert price_lines(replace(IDLE, idle_before_energy=False), MONEY, "de") != no_wait


# --------------------------------------------------------------------------- tax method


# 10 kWh x 0.445 = 4.45 net energy, 4.45 net fee.
TWO_LINES = Tariff("two", "EUR", energy=flat("0.445"), fixed_fee=flat("4.45"), tax_rates=VAT)


def test_per_line_tax_can_be_a_cent_above_the_tax_on_the_total() -> None:
    b = run(TWO_LINES, (0, 0, C), (60, 10_000, C))
    # each line: 4.45 x 0.19 = 0.8455 -> 0.85; 2 x (4.45 + 0.85) = 10.60
    assert b.total_tax == Decimal("1.70") and b.total_incl_tax == Decimal("10.60")
    assert b.tax_method == "per_line"


def test_tax_on_the_total_is_the_tax_of_the_total_net_and_the_lines_still_add_up() -> None:
    b = run(replace(TWO_LINES, tax_method=TaxMethod.on_total), (0, 0, C), (60, 10_000, C))
    # 8.90 x 0.19 = 1.691 -> 1.69; total 10.59. Shared out in line order: energy round(0.8455) = 0.85, fee
    # round(1.691) - 0.85 = 0.84.
    assert b.total_excl_tax == Decimal("8.90") and b.total_tax == Decimal("1.69")
    assert b.total_incl_tax == Decimal("10.59")
    assert [(line.kind, line.incl_tax) for line in b.lines] == [("energy", Decimal("5.30")),
                                                                ("fixed_fee", Decimal("5.29"))]
    assert b.tax_method == "on_total"
    assert CostBreakdown.from_json(b.to_json()) == b


def test_stacked_taxes_on_the_total() -> None:
    stacked = (TaxRate("A", Decimal(10)), TaxRate("B", Decimal(10), stack=1))
    b = run(replace(TWO_LINES, tax_rates=stacked, tax_method=TaxMethod.on_total), (0, 0, C), (60, 10_000, C))
    # A: 8.90 x 0.10 = 0.89; B: (8.90 + 0.89) x 0.10 = 0.979 -> 0.98; total 8.90 + 1.87 = 10.77
    assert b.total_tax == Decimal("1.87") and b.total_incl_tax == Decimal("10.77")
    assert b.total_incl_tax == sum(line.incl_tax for line in b.lines)


def test_the_receipt_states_the_tax_method() -> None:
    per_line = run(TWO_LINES, (0, 0, C), (60, 10_000, C))
    on_total = run(replace(TWO_LINES, tax_method=TaxMethod.on_total), (0, 0, C), (60, 10_000, C))
    assert "Tax per line" in receipt_lines(per_line, MONEY, "en")
    assert "Tax on the total" in receipt_lines(on_total, MONEY, "en")
    assert receipt_lines(on_total, MONEY, "en")[-1] == "Total 10.59 EUR"  # the amount due stays last


def test_a_stored_breakdown_without_a_tax_method_was_taxed_per_line() -> None:
    data = run(TWO_LINES, (0, 0, C), (60, 10_000, C)).to_json()
    del data["tax_method"]
    assert CostBreakdown.from_json(data).tax_method == "per_line"


def test_the_new_tariff_settings_survive_the_snapshot_and_old_snapshots_get_the_defaults() -> None:
    tariff = replace(IDLE, charge_without_energy=True, idle_before_energy=False, tax_method=TaxMethod.on_total)
    assert tariff_from_json(tariff_to_json(tariff)) == tariff
    old = tariff_to_json(IDLE)
    for key in ("charge_without_energy", "idle_before_energy", "tax_method"):
        del old[key]
    assert tariff_from_json(old) == IDLE


# --------------------------------------------------------------------------- short sessions


def test_a_session_under_a_minute_shows_its_seconds() -> None:
    tariff = Tariff("t", "EUR", charging_time=flat("3.60"))  # 3.60/h = 0.001/s
    b = evaluate(tariff, [Sample(T0, 0, C), Sample(T0 + timedelta(seconds=40), 10, C)], UTC_ZONE, MONEY)
    # 40 s x 0.001 = 0.04
    assert b.total_incl_tax == Decimal("0.04")
    assert "Duration 40 s" in receipt_lines(b, MONEY, "en")
    assert running_lines(b, MONEY, "en")[0] == "0.01 kWh  40 s"
    longer = evaluate(tariff, [Sample(T0, 0, C), Sample(T0 + timedelta(seconds=65), 10, C)], UTC_ZONE, MONEY)
    assert "Duration 0:01 h" in receipt_lines(longer, MONEY, "en")
