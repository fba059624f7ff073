"""Pricing rules that surviving mutants (``./dev mutate pricing``) showed no test pinned down.

Session limits and price packages are pure; so are the parsers, whose error messages name the faulty field by its
path (they end up in the log, the CLI and the reply to the CSMS). Expected values are worked out by hand in the
comments. docs/testing.md lists the mutants these were written for and the equivalent ones left alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from chargepoint.pricing.california import CaliforniaPricingError, parse_default_price, parse_running_cost
from chargepoint.pricing.cost import CostBreakdown, CostMeter, Sample, SessionState
from chargepoint.pricing.limits import COST_LIMIT, ENERGY_LIMIT, TIME_LIMIT, SessionLimits
from chargepoint.pricing.packages import Package, choose
from chargepoint.pricing.serialize import tariff_from_json
from chargepoint.pricing.tariff import (
    Component,
    Conditions,
    MoneyFormat,
    PriceElement,
    Rounding,
    Tariff,
    TariffError,
    TaxRate,
)
from chargepoint.pricing.text import price_lines
from chargepoint.pricing.validation import validate_tariff


def _tariff(tariff_id: str, kwh_price: str = "0.30") -> Tariff:
    return Tariff(tariff_id, "EUR", energy=Component((PriceElement(Decimal(kwh_price)),)))


# ------------------------------------------------------------------------------------------ session limits


def test_a_cost_limit_is_reached_when_the_cost_equals_it() -> None:
    limits = SessionLimits(max_cost=Decimal("10.00"))
    assert limits.reached(Decimal("9.99"), 0, 0.0) is None
    assert limits.reached(Decimal("10.00"), 0, 0.0) == COST_LIMIT
    assert limits.reached(Decimal("10.01"), 0, 0.0) == COST_LIMIT
    assert limits.reached(None, 0, 0.0) is None  # an unpriced session has no cost to compare


def test_energy_and_time_limits_are_reached_when_equalled() -> None:
    limits = SessionLimits(max_energy_Wh=20_000, max_duration_s=3600.0)
    assert limits.reached(None, 19_999, 3599.0) is None
    assert limits.reached(None, 20_000, 0.0) == ENERGY_LIMIT
    assert limits.reached(None, 0, 3600.0) == TIME_LIMIT


def test_session_limits_survive_their_json_form() -> None:
    limits = SessionLimits(max_cost=Decimal("12.50"), max_energy_Wh=15_000, max_duration_s=5400.0,
                           sources=("Fleet", "csms"))
    again = SessionLimits.from_json(json.loads(json.dumps(limits.to_json())))
    assert again == limits
    assert again.max_cost == Decimal("12.50") and again.max_energy_Wh == 15_000
    assert SessionLimits.from_json({}) == SessionLimits()


def test_the_tightest_limit_of_each_kind_wins() -> None:
    package = SessionLimits(max_cost=Decimal("20"), max_energy_Wh=30_000, sources=("Fleet",))
    csms = SessionLimits(max_cost=Decimal("15"), max_duration_s=7200.0, sources=("csms",))
    both = package.tighten(csms)
    assert (both.max_cost, both.max_energy_Wh, both.max_duration_s) == (Decimal("15"), 30_000, 7200.0)
    assert both.sources == ("Fleet", "csms")


# ------------------------------------------------------------------------------------------ packages


FLEET = Package("Fleet", _tariff("fleet", "0.20"), groups=frozenset({"ACME"}), id_tag_patterns=("FLEET-*",))
STAFF = Package("Staff", _tariff("staff", "0.10"), id_tag_patterns=("04A1??", "STAFF*"))
DEFAULT = _tariff("default")
CSMS_DEFAULT = _tariff("csms-default", "0.35")


def test_a_card_matching_a_package_pattern_gets_that_package() -> None:
    choice = choose([FLEET, STAFF], "04a1ff", None, CSMS_DEFAULT, DEFAULT)  # patterns ignore case
    assert (choice.tariff, choice.package, choice.source) == (STAFF.tariff, STAFF, "card")
    choice = choose([FLEET, STAFF], "fleet-0007", None, None, DEFAULT)
    assert (choice.tariff, choice.package, choice.source) == (FLEET.tariff, FLEET, "card")


def test_a_card_matching_no_pattern_falls_back_to_the_csms_default_then_the_configured_one() -> None:
    assert not STAFF.matches_card("04A1FFF")  # ? is exactly one character
    choice = choose([FLEET, STAFF], "04A1FFF", None, CSMS_DEFAULT, DEFAULT)
    assert (choice.tariff, choice.package, choice.source) == (CSMS_DEFAULT, None, "csms-default")
    choice = choose([FLEET, STAFF], "04A1FFF", None, None, DEFAULT)
    assert (choice.tariff, choice.package, choice.source) == (DEFAULT, None, "default")
    assert choose([], "X", None, None, None).source == "none"


def test_a_group_package_comes_before_a_card_pattern() -> None:
    choice = choose([STAFF, FLEET], "STAFF1", "acme", None, DEFAULT)
    assert (choice.package, choice.source) == (FLEET, "group")


# ------------------------------------------------------------------------------------------ parsers


def test_a_bad_hour_price_is_named_by_its_path() -> None:
    data = {"transactionId": 1, "cost": 1.5, "chargingPrice": {"kWhPrice": 0.3, "hourPrice": "2 an hour"}}
    with pytest.raises(CaliforniaPricingError) as caught:
        parse_running_cost(json.dumps(data))
    assert str(caught.value).startswith("RunningCost.chargingPrice.hourPrice: expected a number")
    data["chargingPrice"] = {"hourPrice": 2.50}
    price = parse_running_cost(json.dumps(data)).charging_price
    assert price is not None and price.hour_price == Decimal("2.5") and price.kwh_price is None


def test_an_unknown_cp_status_lists_the_ocpp_statuses() -> None:
    data = {"transactionId": 1, "cost": 0, "triggerMeterValue": {"atCPStatus": ["Charging", "Plugged"]}}
    with pytest.raises(CaliforniaPricingError) as caught:
        parse_running_cost(json.dumps(data))
    # OCPP 1.6 ChargePointStatus, alphabetically.
    assert str(caught.value) == (
        "RunningCost.triggerMeterValue.atCPStatus[1]: expected an OCPP 1.6 ChargePointStatus (Available, "
        "Charging, Faulted, Finishing, Preparing, Reserved, SuspendedEV, SuspendedEVSE, Unavailable), "
        'got "Plugged"'
    )


def test_a_stored_breakdown_with_a_bad_energy_is_refused_naming_it() -> None:
    good = {"tariff_id": "t", "currency": "EUR", "lines": [], "total_excl_tax": "0.00", "total_tax": "0.00",
            "total_incl_tax": "0.00", "type_of_cost": "NormalCost", "energy_Wh": 0, "duration_s": 0.0,
            "charging_time_s": 0.0, "idle_time_s": 0.0}
    assert CostBreakdown.from_json(good).energy_Wh == 0
    with pytest.raises(ValueError) as caught:
        CostBreakdown.from_json({**good, "energy_Wh": "12"})
    assert str(caught.value) == "breakdown.energy_Wh: expected int, got str"


@pytest.mark.parametrize("value", ["5000", True, None])
def test_a_power_condition_must_be_a_json_number(value: object) -> None:
    data = {"tariff_id": "t", "currency": "EUR",
            "energy": {"prices": [{"price": "0.30", "conditions": {"min_power_W": value}}, {"price": "0.25"}]}}
    if value is None:  # absent, as JSON null means
        assert tariff_from_json(data).energy is not None
        return
    with pytest.raises(TariffError) as caught:
        tariff_from_json(data)
    assert "energy.prices[0].conditions.min_power_W: expected a number" in str(caught.value)


def test_a_power_condition_given_as_an_integer_is_read_as_watts() -> None:
    data = {"tariff_id": "t", "currency": "EUR",
            "energy": {"prices": [{"price": "0.30", "conditions": {"max_power_W": 11000}}, {"price": "0.25"}]}}
    tariff = tariff_from_json(data)
    assert tariff.energy is not None and tariff.energy.prices[0].conditions.max_power_W == 11000.0


def test_a_time_of_day_window_with_a_time_zone_is_refused() -> None:
    zoned = Conditions(start_time_of_day=time(6, 0, tzinfo=UTC), end_time_of_day=time(22, 0))
    tariff = Tariff("t", "EUR", energy=Component((PriceElement(Decimal("0.30"), zoned),
                                                  PriceElement(Decimal("0.25")))))
    with pytest.raises(TariffError) as caught:
        validate_tariff(tariff)
    assert str(caught.value).startswith(
        "energy.prices[0].conditions: start_time_of_day must be a local time of day without time zone")
    validate_tariff(Tariff("t", "EUR", energy=Component((
        PriceElement(Decimal("0.30"), Conditions(start_time_of_day=time(6), end_time_of_day=time(22))),
        PriceElement(Decimal("0.25"))))))


# ------------------------------------------------------------------------------------------ second sample (seed 2)

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
VAT_10 = (TaxRate("VAT", Decimal("10")),)


def test_a_capped_session_taxes_the_cap_with_the_moneys_rounding() -> None:
    tariff = Tariff("capped", "EUR", energy=Component((PriceElement(Decimal("1.00")),)), max_cost=Decimal("10.25"),
                    tax_rates=VAT_10)
    meter = CostMeter(tariff, ZoneInfo("UTC"), MoneyFormat(2, Rounding.half_up), Sample(T0, 0, SessionState.charging))
    meter.add(Sample(T0 + timedelta(hours=2), 20_000, SessionState.charging))  # 20 kWh: 20.00 EUR, above the cap
    cost = meter.breakdown()
    # The cap taxed as one amount: 10 % of 10.25 is 1.025, rounded half up to 1.03.
    assert (cost.type_of_cost, cost.total_excl_tax, cost.total_tax, cost.total_incl_tax) == (
        "MaxCost", Decimal("10.25"), Decimal("1.03"), Decimal("11.28"))


def test_a_breakdown_after_the_last_sample_counts_the_charging_time_up_to_then() -> None:
    tariff = Tariff("time", "EUR", charging_time=Component((PriceElement(Decimal("2.00")),)))
    meter = CostMeter(tariff, ZoneInfo("UTC"), MoneyFormat(), Sample(T0, 0, SessionState.charging))
    meter.add(Sample(T0 + timedelta(minutes=30), 5_000, SessionState.charging))
    cost = meter.breakdown(at=T0 + timedelta(minutes=45))
    assert (cost.duration_s, cost.charging_time_s, cost.idle_time_s) == (2700.0, 2700.0, 0.0)
    assert cost.total_excl_tax == Decimal("1.50")  # 0.75 h at 2.00 EUR/h


def test_a_meter_register_of_zero_is_a_valid_reading() -> None:
    data = {"transactionId": 1, "cost": 0, "meterValue": 0}
    assert parse_running_cost(json.dumps(data)).meter_value_Wh == 0
    with pytest.raises(CaliforniaPricingError, match=r"^RunningCost\.meterValue: expected an integer >= 0"):
        parse_running_cost(json.dumps({**data, "meterValue": -1}))


@pytest.mark.parametrize(
    ("data", "message_start"),
    [
        ({"transactionId": 1, "cost": 0, "priceTextExtra": [{"format": 8, "language": "en", "content": "x"}]},
         "RunningCost.priceTextExtra[0].format: expected a string"),
        ({"transactionId": 1, "cost": 0, "triggerMeterValue": {"atPowerkW": "7"}},
         "RunningCost.triggerMeterValue.atPowerkW: expected a number >= 0"),
    ],
    ids=["text-format", "trigger-power"],
)
def test_a_running_cost_error_names_the_field(data: dict[str, object], message_start: str) -> None:
    with pytest.raises(CaliforniaPricingError) as caught:
        parse_running_cost(json.dumps(data))
    assert str(caught.value).startswith(message_start)


def test_a_default_price_with_a_bad_offline_text_names_it() -> None:
    with pytest.raises(CaliforniaPricingError) as caught:
        parse_default_price(json.dumps({"priceText": "0.30/kWh", "priceTextOffline": 42}))
    assert str(caught.value).startswith("DefaultPrice.priceTextOffline: expected a string")


_BREAKDOWN = {"tariff_id": "t", "currency": "EUR", "lines": [], "total_excl_tax": "0.00", "total_tax": "0.00",
              "total_incl_tax": "0.00", "type_of_cost": "NormalCost", "energy_Wh": 0, "duration_s": 0.0,
              "charging_time_s": 0.0, "idle_time_s": 0.0}
_LINE = {"kind": "energy", "quantity": "1", "excl_tax": "0.30", "taxes": [], "incl_tax": "0.30"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"total_incl_tax": "lots"}, "breakdown.total_incl_tax: not a decimal number: 'lots'"),
        ({"charging_time_s": "60"}, "breakdown.charging_time_s: expected int or float, got str"),
        ({"lines": [{**_LINE, "taxes": ["VAT"]}]}, "breakdown.lines[0].taxes[0]: expected an object"),
    ],
    ids=["total-incl-tax", "charging-time", "line-tax"],
)
def test_a_stored_breakdown_error_names_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        CostBreakdown.from_json({**_BREAKDOWN, **changes})
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tax_rates": [{"name": "VAT", "percent": "19", "stack": "1"}]}, "tax_rates[0].stack: expected"),
        ({"description": "Cheap"}, "description: expected"),
    ],
    ids=["tax-stack", "description"],
)
def test_a_tariff_error_names_the_field(changes: dict[str, object], message: str) -> None:
    data = {"tariff_id": "t", "currency": "EUR", "energy": {"prices": [{"price": "0.30"}]}, **changes}
    with pytest.raises(TariffError) as caught:
        tariff_from_json(data)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_a_cost_cap_must_be_a_finite_amount(amount: str) -> None:
    energy = Component((PriceElement(Decimal("0.30")),))
    for cap, tariff in (("min_cost", Tariff("t", "EUR", energy=energy, min_cost=Decimal(amount))),
                        ("max_cost", Tariff("t", "EUR", energy=energy, max_cost=Decimal(amount)))):
        with pytest.raises(TariffError, match=f"^{cap}: must be a finite Decimal"):
            validate_tariff(tariff)


def test_a_tax_of_exactly_100_percent_is_allowed_and_more_is_not() -> None:
    def tariff(percent: str) -> Tariff:
        return Tariff("t", "EUR", energy=Component((PriceElement(Decimal("0.30")),)),
                      tax_rates=(TaxRate("Levy", Decimal(percent)),))

    validate_tariff(tariff("100"))
    with pytest.raises(TariffError, match=r"percent 100\.01 is outside 0\.\.100"):
        validate_tariff(tariff("100.01"))


def test_a_free_price_written_as_minus_zero_shows_without_a_sign() -> None:
    tariff = Tariff("t", "EUR", energy=Component((PriceElement(Decimal("-0.00")),)))
    validate_tariff(tariff)  # -0.00 is not negative
    lines = price_lines(tariff, MoneyFormat(), "en")
    assert not any("-0" in line for line in lines)
    assert any("0.00 EUR/kWh" in line for line in lines)


def test_an_idle_grace_of_one_second_is_shown() -> None:
    tariff = Tariff("t", "EUR", energy=Component((PriceElement(Decimal("0.30")),)),
                    idle_time=Component((PriceElement(Decimal("6.00")),)), idle_grace_s=1)
    assert any(line.endswith("after 1 s") for line in price_lines(tariff, MoneyFormat(), "en"))
