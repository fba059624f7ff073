"""Pricing rules that surviving mutants (``./dev mutate pricing``) showed no test pinned down.

Session limits and price packages are pure; so are the parsers, whose error messages name the faulty field by its
path (they end up in the log, the CLI and the reply to the CSMS). Expected values are worked out by hand in the
comments. docs/testing.md lists the mutants these were written for and the equivalent ones left alone.
"""

from __future__ import annotations

import json
from datetime import UTC, time
from decimal import Decimal

import pytest

from chargepoint.pricing.california import CaliforniaPricingError, parse_running_cost
from chargepoint.pricing.cost import CostBreakdown
from chargepoint.pricing.limits import COST_LIMIT, ENERGY_LIMIT, TIME_LIMIT, SessionLimits
from chargepoint.pricing.packages import Package, choose
from chargepoint.pricing.serialize import tariff_from_json
from chargepoint.pricing.tariff import Component, Conditions, PriceElement, Tariff, TariffError
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
