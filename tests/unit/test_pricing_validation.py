"""Tariff validation (every rejection reason, with the place it names) and the JSON form of tariffs."""

from __future__ import annotations

import json
import time as clock
from dataclasses import replace
from datetime import date, time
from decimal import Decimal
from typing import Any

import pytest

from chargepoint.pricing.currencies import ISO_4217, minor_units
from chargepoint.pricing.serialize import tariff_from_json, tariff_to_json
from chargepoint.pricing.tariff import Component, Conditions, PriceElement, Tariff, TariffError, TaxRate
from chargepoint.pricing.validation import validate_tariff

WEEKDAYS = frozenset({1, 2, 3, 4, 5})
WEEKEND = frozenset({6, 7})


def window(start: str, end: str, days: frozenset[int] | None = None) -> Conditions:
    return Conditions(start_time_of_day=time.fromisoformat(start), end_time_of_day=time.fromisoformat(end),
                      days_of_week=days)


def flat(price: str, conditions: Conditions | None = None, *more: PriceElement) -> Component:
    return Component((PriceElement(Decimal(price), conditions or Conditions()), *more))


BASE = Tariff(
    "T1", "EUR",
    energy=Component((
        PriceElement(Decimal("0.20"), window("22:00", "06:00")),
        PriceElement(Decimal("0.30")),
    )),
    charging_time=flat("1.20"),
    idle_time=flat("6.00"),
    fixed_fee=flat("0.50"),
    idle_grace_s=600,
    min_cost=Decimal("1.00"),
    max_cost=Decimal("80.00"),
    tax_rates=(TaxRate("VAT", Decimal("19")),),
)


def with_energy(*elements: PriceElement) -> Tariff:
    return replace(BASE, energy=Component(elements))


def energy_condition(**fields: Any) -> Tariff:
    """BASE with a first energy element of these conditions, before a fallback."""
    return with_energy(PriceElement(Decimal("0.25"), Conditions(**fields)), PriceElement(Decimal("0.30")))


REJECTED = [
    ("empty tariff id", replace(BASE, tariff_id=" "), r"^tariff_id: must not be empty$"),
    ("tariff id too long", replace(BASE, tariff_id="x" * 61), r"^tariff_id: 61 characters, at most 60"),
    ("unknown currency", replace(BASE, currency="EURO"), r"^currency: 'EURO' is not an ISO 4217"),
    ("no-currency code", replace(BASE, currency="XXX"), r"^currency: 'XXX'"),
    ("negative price",
     with_energy(PriceElement(Decimal("0.30"), window("22:00", "06:00")), PriceElement(Decimal("-0.10"))),
     r"^energy\.prices\[1\]: negative price -0\.10$"),
    ("price not a number", with_energy(PriceElement(Decimal("NaN"))), r"^energy\.prices\[0\]: price must be a finite"),
    ("negative min cost", replace(BASE, min_cost=Decimal("-1")), r"^min_cost: negative amount -1$"),
    ("negative max cost", replace(BASE, min_cost=None, max_cost=Decimal("-0.01")), r"^max_cost: negative amount"),
    ("min above max", replace(BASE, min_cost=Decimal("5"), max_cost=Decimal("4")),
     r"^min_cost: 5 is above max_cost 4$"),
    ("tax over 100 %", replace(BASE, tax_rates=(TaxRate("VAT", Decimal("101")),)),
     r"^tax_rates\[0\]: percent 101 is outside 0\.\.100$"),
    ("negative tax", replace(BASE, idle_time=Component(flat("6.00").prices, (TaxRate("VAT", Decimal("-1")),))),
     r"^idle_time\.tax_rates\[0\]: percent -1 is outside"),
    ("negative stack", replace(BASE, tax_rates=(TaxRate("VAT", Decimal("19"), stack=-1),)),
     r"^tax_rates\[0\]: stack must be a whole number >= 0"),
    ("nameless tax", replace(BASE, tax_rates=(TaxRate("", Decimal("19")),)), r"^tax_rates\[0\]: tax name"),
    ("no component", Tariff("T1", "EUR"), r"^tariff has no component"),
    ("component without prices", replace(BASE, charging_time=Component(())),
     r"^charging_time: needs at least one price element$"),
    ("energy min not below max", energy_condition(min_energy_Wh=10_000, max_energy_Wh=10_000),
     r"^energy\.prices\[0\]\.conditions: min_energy_Wh 10000 is not below max_energy_Wh 10000$"),
    ("power min above max", energy_condition(min_power_W=11_000.0, max_power_W=7_400.0),
     r"min_power_W 11000\.0 is not below max_power_W 7400\.0"),
    ("duration min above max", energy_condition(min_duration_s=600, max_duration_s=60),
     r"min_duration_s 600 is not below max_duration_s 60"),
    ("charging time min above max", energy_condition(min_charging_time_s=7200, max_charging_time_s=3600),
     r"min_charging_time_s 7200 is not below"),
    ("idle time min above max", energy_condition(min_idle_time_s=5, max_idle_time_s=5), r"min_idle_time_s 5 is not"),
    ("negative threshold", energy_condition(max_energy_Wh=-1), r"conditions: max_energy_Wh is negative \(-1\)$"),
    ("power not a number", energy_condition(min_power_W=float("nan")), r"min_power_W must be a finite number"),
    ("day 0", energy_condition(days_of_week=frozenset({0, 1})),
     r"^energy\.prices\[0\]\.conditions: days_of_week \[0\] outside 1\.\.7"),
    ("day 8", energy_condition(days_of_week=frozenset({8})), r"days_of_week \[8\] outside 1\.\.7"),
    ("no days", energy_condition(days_of_week=frozenset()), r"days_of_week is empty"),
    ("dates reversed", energy_condition(valid_from_date=date(2026, 5, 8), valid_to_date=date(2026, 5, 1)),
     r"valid_from_date 2026-05-08 is not before valid_to_date 2026-05-01$"),
    ("dates equal", energy_condition(valid_from_date=date(2026, 5, 1), valid_to_date=date(2026, 5, 1)),
     r"valid_from_date 2026-05-01 is not before"),
    ("start time without end", energy_condition(start_time_of_day=time(8)),
     r"start_time_of_day and end_time_of_day must be given together$"),
    ("end time without start", energy_condition(end_time_of_day=time(8)), r"must be given together"),
    ("start equals end", energy_condition(start_time_of_day=time(8), end_time_of_day=time(8)),
     r"start_time_of_day equals end_time_of_day \(08:00\)"),
    ("fixed fee by energy", replace(BASE, fixed_fee=flat("1.00", Conditions(min_energy_Wh=1), PriceElement(
        Decimal("0.50")))),
     r"^fixed_fee\.prices\[0\]\.conditions: fixed_fee min_energy_Wh condition not supported"),
    ("fixed fee by power", replace(BASE, fixed_fee=flat("1.00", Conditions(max_power_W=1.0))),
     r"fixed_fee max_power_W condition not supported"),
    ("negative idle grace", replace(BASE, idle_grace_s=-1), r"^idle_grace_s: must be a whole number"),
    ("a gap on Tuesday morning",
     with_energy(
         PriceElement(Decimal("0.20"), window("22:00", "06:00")),
         PriceElement(Decimal("0.40"), window("08:00", "22:00")),
         PriceElement(Decimal("0.30"), window("06:00", "08:00", frozenset({1, 3, 4, 5, 6, 7}))),
     ),
     r"^energy: no price on Tuesday 06:00-07:59 \(conditions leave that time uncovered"),
    ("weekdays only", replace(BASE, charging_time=flat("1.20", Conditions(days_of_week=WEEKDAYS))),
     r"^charging_time: no price on Saturday 00:00-Sunday 23:59 "),
    ("a threshold element is no fallback", replace(BASE, idle_time=flat("6.00", Conditions(min_idle_time_s=60))),
     r"^idle_time: no price on Monday 00:00-Sunday 23:59 "),
    ("a date element is no fallback",
     replace(BASE, fixed_fee=flat("1.00", Conditions(valid_from_date=date(2026, 1, 1)))),
     r"^fixed_fee: no price on Monday 00:00-Sunday 23:59 "),
    ("a gap of seconds", with_energy(PriceElement(Decimal("0.2"), window("00:00", "12:00:30")),
                                     PriceElement(Decimal("0.3"), window("12:01", "00:00"))),
     r"^energy: no price on Monday 12:00:30-12:00:59 "),
]


@pytest.mark.parametrize(("tariff", "message"), [(t, m) for _, t, m in REJECTED], ids=[n for n, _, _ in REJECTED])
def test_rejects_with_the_place_and_the_reason(tariff: Tariff, message: str) -> None:
    with pytest.raises(TariffError, match=message):
        validate_tariff(tariff)


def fifty_elements() -> Tariff:
    """50 price elements: time of day, day of week, thresholds, dates, power, taxes per component."""
    energy = [
        PriceElement(Decimal("0.19"), Conditions(start_time_of_day=time(22), end_time_of_day=time(6),
                                                 min_energy_Wh=40_000)),
        PriceElement(Decimal("0.55"), Conditions(min_power_W=50_000.0)),
        PriceElement(Decimal("0.10"), Conditions(valid_from_date=date(2026, 1, 1), valid_to_date=date(2026, 1, 8))),
        *(PriceElement(Decimal("0.30") + Decimal(h) / 100, window(f"{h:02d}:00", f"{h + 1:02d}:00", WEEKDAYS))
          for h in range(0, 21)),
        PriceElement(Decimal("0.28"), Conditions(days_of_week=WEEKEND)),
        PriceElement(Decimal("0.35")),
    ]
    charging = [
        PriceElement(Decimal("0.00"), Conditions(max_charging_time_s=1_800)),
        *(PriceElement(Decimal("0.40") + Decimal(h) / 100, window(f"{h:02d}:00", f"{h + 2:02d}:00"))
          for h in range(0, 22, 2)),
        PriceElement(Decimal("0.38")),
    ]
    idle = [
        PriceElement(Decimal("12.00"), Conditions(min_idle_time_s=7_200)),
        PriceElement(Decimal("0.00"), window("22:00", "07:00")),
        PriceElement(Decimal("9.00"), window("17:00", "20:00", WEEKDAYS)),
        PriceElement(Decimal("4.80"), window("07:00", "10:00")),
        PriceElement(Decimal("5.40"), window("10:00", "14:00")),
        PriceElement(Decimal("5.10"), window("14:00", "17:00")),
        PriceElement(Decimal("3.00"), Conditions(days_of_week=WEEKEND)),
        PriceElement(Decimal("4.00"), window("20:00", "22:00")),
        PriceElement(Decimal("4.50")),
    ]
    fixed = [PriceElement(Decimal("0.50"), Conditions(days_of_week=WEEKEND)), PriceElement(Decimal("0.35"))]
    tariff = Tariff(
        "fifty", "EUR",
        energy=Component(tuple(energy)),
        charging_time=Component(tuple(charging)),
        idle_time=Component(tuple(idle), tax_rates=(TaxRate("VAT", Decimal("7")),)),
        fixed_fee=Component(tuple(fixed)),
        idle_grace_s=900,
        min_cost=Decimal("2.00"),
        max_cost=Decimal("250.00"),
        tax_rates=(TaxRate("VAT", Decimal("19")), TaxRate("Levy", Decimal("5"), stack=1)),
        description=(("en", "Day and night"), ("de", "Tag und Nacht")),
    )
    assert sum(len(c.prices) for c in (tariff.energy, tariff.charging_time, tariff.idle_time, tariff.fixed_fee)
               if c is not None) == 50
    return tariff


def test_a_fifty_element_tariff_passes_quickly() -> None:
    tariff = fifty_elements()
    fastest_s = float("inf")

    for _ in range(5):
        begin = clock.perf_counter()
        validate_tariff(tariff)
        fastest_s = min(fastest_s, clock.perf_counter() - begin)

    assert fastest_s < 0.020


@pytest.mark.parametrize("tariff", [
    BASE,
    Tariff("flat", "JPY", energy=flat("35")),
    Tariff("wrap", "EUR", energy=Component((PriceElement(Decimal("0.2"), window("22:00", "06:00")),
                                            PriceElement(Decimal("0.4"), window("06:00", "22:00"))))),
    Tariff("days", "EUR", charging_time=Component((PriceElement(Decimal("1"), Conditions(days_of_week=WEEKDAYS)),
                                                   PriceElement(Decimal("2"), Conditions(days_of_week=WEEKEND))))),
], ids=["base", "single price", "two windows", "weekdays and weekend"])
def test_accepts_tariffs_that_price_every_minute(tariff: Tariff) -> None:
    validate_tariff(tariff)


def test_currencies() -> None:
    assert {"EUR", "USD", "GBP", "CHF", "JPY", "KWD", "SEK", "NOK", "DKK", "PLN"} <= ISO_4217
    assert len(ISO_4217) > 150
    assert not {"XXX", "XTS", "XAU", "EURO", "eur"} & ISO_4217
    assert all(len(code) == 3 and code.isalpha() and code.isupper() for code in ISO_4217)
    assert (minor_units("EUR"), minor_units("JPY"), minor_units("KRW"), minor_units("KWD"), minor_units("TND")) == (
        2, 0, 0, 3, 3)


# ------------------------------------------------------------------------------------------------ JSON form


@pytest.mark.parametrize("tariff", [BASE, fifty_elements(), Tariff("min", "EUR", fixed_fee=flat("1"))],
                         ids=["base", "fifty elements", "minimal"])
def test_json_round_trip_is_exact(tariff: Tariff) -> None:
    data = json.loads(json.dumps(tariff_to_json(tariff)))

    assert tariff_from_json(data) == tariff
    assert tariff_to_json(tariff_from_json(data)) == data


def test_json_form_is_readable() -> None:
    tariff = replace(BASE, energy=Component((
        PriceElement(Decimal("0.20"), Conditions(start_time_of_day=time(22), end_time_of_day=time(6, 30, 15),
                                                 days_of_week=frozenset({7, 1}), valid_from_date=date(2026, 5, 1),
                                                 min_power_W=11_000.0, max_energy_Wh=10_000)),
        PriceElement(Decimal("0.30")),
    )))

    data = tariff_to_json(tariff)

    assert data["energy"]["prices"] == [
        {"price": "0.20", "conditions": {"start_time_of_day": "22:00", "end_time_of_day": "06:30:15",
                                         "days_of_week": [1, 7], "valid_from_date": "2026-05-01",
                                         "max_energy_Wh": 10_000, "min_power_W": 11_000.0}},
        {"price": "0.30"},
    ]
    assert data["tax_rates"] == [{"name": "VAT", "percent": "19", "stack": 0}]
    assert data["min_cost"] == "1.00"
    assert tariff_from_json(data) == tariff


def _broken(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    data = tariff_to_json(BASE)
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(("data", "message"), [
    ([], r"^tariff: expected an object, got list$"),
    ({"currency": "EUR"}, r"^tariff_id: missing$"),
    (_broken(("tariff_id",), 7), r"^tariff_id: expected a string, got int$"),
    (_broken(("colour",), "red"), r"^tariff: unknown key 'colour'$"),
    (_broken(("energy", "prices", 1, "price"), "abc"), r"^energy\.prices\[1\]\.price: not a decimal number: 'abc'$"),
    (_broken(("energy", "prices", 1, "price"), 0.3), r"^energy\.prices\[1\]\.price: expected a decimal string"),
    (_broken(("energy", "prices", 1), {"cost": "1"}), r"^energy\.prices\[1\]: unknown key 'cost'$"),
    (_broken(("energy", "prices", 0, "conditions", "start_time_of_day"), "25:00"),
     r"^energy\.prices\[0\]\.conditions\.start_time_of_day: not a time of day"),
    (_broken(("energy", "prices", 0, "conditions", "days_of_week"), ["mon"]),
     r"^energy\.prices\[0\]\.conditions\.days_of_week\[0\]: expected an integer, got str$"),
    (_broken(("energy", "prices", 0, "conditions", "valid_to_date"), "2026-13-01"),
     r"valid_to_date: not an ISO date"),
    (_broken(("energy", "prices", 0, "conditions", "min_energy_Wh"), True),
     r"min_energy_Wh: expected an integer, got bool$"),
    (_broken(("energy", "prices"), {}), r"^energy\.prices: expected a list, got dict$"),
    (_broken(("tax_rates", 0, "percent"), None), r"^tax_rates\[0\]\.percent: missing$"),
    (_broken(("min_cost",), "Infinity"), r"^min_cost: not a finite number"),
    (_broken(("idle_grace_s",), "600"), r"^idle_grace_s: expected an integer, got str$"),
    (_broken(("description",), [{"language": "en"}]), r"^description\[0\]\.text: missing$"),
], ids=lambda v: "" if isinstance(v, str) else None)
def test_malformed_json_names_the_field(data: Any, message: str) -> None:
    with pytest.raises(TariffError, match=message):
        tariff_from_json(data)
