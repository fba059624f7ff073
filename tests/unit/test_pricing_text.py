"""What the screen says about prices and costs: exact texts, gross prices with stacked taxes, languages."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from chargepoint.pricing.cost import CostBreakdown, CostLine, Sample, SessionState, evaluate
from chargepoint.pricing.tariff import (
    Component,
    Conditions,
    MoneyFormat,
    PriceElement,
    Rounding,
    Tariff,
    TaxRate,
)
from chargepoint.pricing.text import (
    SUPPORTED_LANGUAGES,
    gross,
    pick_language,
    price_lines,
    receipt_lines,
    running_lines,
    text_lines,
)

D = Decimal
MONEY = MoneyFormat()
VAT_19 = (TaxRate("VAT", D("19")),)


def always(price: str) -> Component:
    return Component((PriceElement(D(price)),))


# Net prices chosen so that the gross ones (19 % VAT) are round: the screen shows what the customer pays.
NIGHT_AND_DAY = Tariff(
    tariff_id="night-and-day",
    currency="EUR",
    energy=Component(
        (
            PriceElement(D("0.2437"), Conditions(start_time_of_day=time(22), end_time_of_day=time(6))),
            PriceElement(D("0.33")),
        )
    ),
    charging_time=always("1.008403"),
    idle_time=always("5.042017"),
    idle_grace_s=1800,
    fixed_fee=Component((PriceElement(D("0.42"), Conditions(days_of_week=frozenset({6, 7}))),)),
    min_cost=D("0.84"),
    max_cost=D("42.02"),
    tax_rates=VAT_19,
    description=(("en", "Cheaper at night"), ("de-DE", "Nachts günstiger\nab 22 Uhr")),
)


def test_price_lines_in_english() -> None:
    assert price_lines(NIGHT_AND_DAY, MONEY, "en") == (
        "Cheaper at night",
        "Energy 0.3927 EUR/kWh",
        "Energy 22:00-06:00 0.29 EUR/kWh",
        "Charging time 1.20 EUR/h",
        "Idle 6.00 EUR/h after 30 min",
        "Idle fee also while waiting to charge",  # issue 14: the idle_before_energy setting is stated
        "Session fee Sat-Sun 0.50 EUR",
        "Minimum 1.00 EUR",
        "Maximum 50.00 EUR",
        "Prices incl. VAT 19 %",
    )


def test_price_lines_in_german() -> None:
    assert price_lines(NIGHT_AND_DAY, MONEY, "de-DE") == (
        "Nachts günstiger",
        "ab 22 Uhr",
        "Energie 0,3927 EUR/kWh",
        "Energie 22:00-06:00 0,29 EUR/kWh",
        "Ladezeit 1,20 EUR/h",
        "Blockiergebühr 6,00 EUR/h nach 30 min",
        "Blockiergebühr auch vor Ladebeginn",
        "Grundgebühr Sa-So 0,50 EUR",
        "Mindestpreis 1,00 EUR",
        "Höchstpreis 50,00 EUR",
        "Preise inkl. VAT 19 %",
    )


def test_price_lines_in_french_and_dutch_without_a_description_in_those_languages() -> None:
    assert price_lines(NIGHT_AND_DAY, MONEY, "fr") == (
        "Énergie 0,3927 EUR/kWh",
        "Énergie 22:00-06:00 0,29 EUR/kWh",
        "Temps de charge 1,20 EUR/h",
        "Frais d'occupation 6,00 EUR/h après 30 min",
        "Frais d'occupation aussi avant la charge",
        "Frais de session sam-dim 0,50 EUR",
        "Prix minimum 1,00 EUR",
        "Prix maximum 50,00 EUR",
        "Prix TTC, dont VAT 19 %",
    )
    assert price_lines(NIGHT_AND_DAY, MONEY, "nl-BE") == (
        "Energie 0,3927 EUR/kWh",
        "Energie 22:00-06:00 0,29 EUR/kWh",
        "Laadtijd 1,20 EUR/h",
        "Stilstand 6,00 EUR/h na 30 min",
        "Stilstandkosten ook vóór het laden",
        "Starttarief za-zo 0,50 EUR",
        "Minimumprijs 1,00 EUR",
        "Maximumprijs 50,00 EUR",
        "Prijzen incl. VAT 19 %",
    )


def test_an_unsupported_language_gets_english() -> None:
    assert price_lines(NIGHT_AND_DAY, MONEY, "sv-SE") == price_lines(NIGHT_AND_DAY, MONEY, "en")


@pytest.mark.parametrize(
    ("taxes", "expected_price", "expected_tax_line"),
    [
        ((TaxRate("VAT", D("20")),), "1.20", "Prices incl. VAT 20 %"),
        # Same stack: both on the net price.
        ((TaxRate("VAT", D("20")), TaxRate("Local", D("10"))), "1.30", "Prices incl. VAT 20 %, Local 10 %"),
        # Stack 1 also taxes the stack-0 tax: 1.00 + 0.20 + 10 % of 1.20.
        ((TaxRate("VAT", D("20")), TaxRate("Local", D("10"), stack=1)), "1.32", "Prices incl. VAT 20 %, Local 10 %"),
        # Three stacks: 1.00 -> +0.10 -> +0.055 -> +10 % of 1.155.
        (
            (TaxRate("A", D("10")), TaxRate("B", D("5"), stack=1), TaxRate("C", D("10"), stack=2)),
            "1.2705",
            "Prices incl. A 10 %, B 5 %, C 10 %",
        ),
        ((TaxRate("TVA", D("5.50")),), "1.055", "Prices incl. TVA 5.5 %"),
        ((), "1.00", "No tax"),
    ],
)
def test_shown_prices_include_stacked_taxes(
    taxes: tuple[TaxRate, ...], expected_price: str, expected_tax_line: str
) -> None:
    tariff = Tariff("t", "EUR", energy=always("1.00"), tax_rates=taxes)
    assert price_lines(tariff, MONEY, "en") == (f"Energy {expected_price} EUR/kWh", expected_tax_line)


def test_gross_stacks_taxes_on_lower_stacks() -> None:
    assert gross(D("1"), (TaxRate("VAT", D("20")), TaxRate("Local", D("10"), stack=1))) == D("1.32")
    assert gross(D("1"), (TaxRate("Local", D("10"), stack=1), TaxRate("VAT", D("20")))) == D("1.32")  # any order


def test_a_component_with_its_own_taxes_lists_them_in_the_tax_line() -> None:
    tariff = Tariff(
        "t",
        "EUR",
        energy=Component((PriceElement(D("0.30")),), tax_rates=()),  # tax-exempt energy
        fixed_fee=Component((PriceElement(D("1.00")),), tax_rates=(TaxRate("Fee tax", D("10")),)),
        min_cost=D("2.00"),
        tax_rates=VAT_19,
    )
    assert price_lines(tariff, MONEY, "en") == (
        "Energy 0.30 EUR/kWh",
        "Session fee 1.10 EUR",
        "Minimum 2.38 EUR",
        "Prices incl. Fee tax 10 %, VAT 19 %",
    )


@pytest.mark.parametrize(
    ("net", "money", "expected"),
    [
        ("0.3945", MONEY, "0.3945"),  # four decimals kept
        ("0.39", MONEY, "0.39"),  # never fewer than the money's decimals
        ("0.3", MONEY, "0.30"),
        ("0.39454", MONEY, "0.3945"),
        ("0.39455", MONEY, "0.3946"),  # rounded with the money's mode (half up)
        ("0.39455", MoneyFormat(2, Rounding.down), "0.3945"),
        ("0.39455", MoneyFormat(2, Rounding.half_even), "0.3946"),
        ("30", MoneyFormat(0), "30"),  # JPY
        ("30.5", MoneyFormat(0), "30.5"),
        ("0.123456", MoneyFormat(3), "0.1235"),  # KWD
        ("0.1", MoneyFormat(3), "0.100"),
    ],
)
def test_unit_prices_keep_up_to_four_decimals(net: str, money: MoneyFormat, expected: str) -> None:
    tariff = Tariff("t", "EUR", energy=always(net))
    assert price_lines(tariff, money, "en")[0] == f"Energy {expected} EUR/kWh"


def test_fixed_amounts_have_the_money_decimals() -> None:
    tariff = Tariff("t", "JPY", fixed_fee=always("99.5"), max_cost=D("1000"))
    assert price_lines(tariff, MoneyFormat(0), "de") == ("Grundgebühr 100 JPY", "Höchstpreis 1000 JPY", "Ohne Steuern")


def test_a_tariff_without_prices_is_free() -> None:
    assert price_lines(Tariff("free", "EUR"), MONEY, "en") == ("Free of charge",)
    assert price_lines(Tariff("free", "EUR", description=(("de", "Aktion"),)), MONEY, "de") == ("Aktion", "Kostenlos")


def energy_at(conditions: Conditions, language: str = "en") -> str:
    tariff = Tariff("t", "EUR", energy=Component((PriceElement(D("0.50"), conditions), PriceElement(D("0.40")))))
    return price_lines(tariff, MONEY, language)[1]


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (Conditions(days_of_week=frozenset({6, 7})), "Energy Sat-Sun 0.50 EUR/kWh"),
        (Conditions(days_of_week=frozenset({1, 2, 3, 4, 5})), "Energy Mon-Fri 0.50 EUR/kWh"),
        (Conditions(days_of_week=frozenset({5, 6, 7, 1})), "Energy Fri-Mon 0.50 EUR/kWh"),
        (Conditions(days_of_week=frozenset({1, 3, 5})), "Energy Mon,Wed,Fri 0.50 EUR/kWh"),
        (Conditions(days_of_week=frozenset({3})), "Energy Wed 0.50 EUR/kWh"),
        (
            Conditions(days_of_week=frozenset({1, 2, 3, 4, 5}), start_time_of_day=time(7), end_time_of_day=time(19)),
            "Energy Mon-Fri 07:00-19:00 0.50 EUR/kWh",
        ),
        (Conditions(start_time_of_day=time(22)), "Energy 22:00-24:00 0.50 EUR/kWh"),
        (Conditions(end_time_of_day=time(6, 30)), "Energy 00:00-06:30 0.50 EUR/kWh"),
        (Conditions(min_energy_Wh=10_000), "Energy from 10 kWh 0.50 EUR/kWh"),
        (Conditions(max_energy_Wh=7_500), "Energy below 7.5 kWh 0.50 EUR/kWh"),
        (Conditions(min_energy_Wh=10_000, max_energy_Wh=20_000), "Energy 10-20 kWh 0.50 EUR/kWh"),
        (Conditions(max_power_W=7400.0), "Energy below 7.4 kW 0.50 EUR/kWh"),
        (Conditions(min_power_W=11000.0), "Energy from 11 kW 0.50 EUR/kWh"),
        (Conditions(min_duration_s=1800), "Energy after 30 min 0.50 EUR/kWh"),
        (Conditions(max_duration_s=7200), "Energy first 2 h 0.50 EUR/kWh"),
        (Conditions(min_duration_s=1800, max_duration_s=5400), "Energy 30-90 min 0.50 EUR/kWh"),
        (Conditions(max_charging_time_s=3600), "Energy first 1 h charging 0.50 EUR/kWh"),
        (Conditions(min_idle_time_s=600), "Energy after 10 min idle 0.50 EUR/kWh"),
        (
            Conditions(valid_from_date=date(2025, 1, 1), valid_to_date=date(2025, 4, 1)),
            "Energy from 2025-01-01 until 2025-03-31 0.50 EUR/kWh",
        ),
    ],
)
def test_conditions_are_shown_compactly(conditions: Conditions, expected: str) -> None:
    assert energy_at(conditions) == expected


def test_conditions_in_german() -> None:
    conditions = Conditions(
        days_of_week=frozenset({6, 7}), min_energy_Wh=10_000, valid_to_date=date(2025, 4, 1), max_idle_time_s=900
    )
    assert energy_at(conditions, "de") == "Energie Sa-So bis 31.03.2025 ab 10 kWh erste 15 min Standzeit 0,50 EUR/kWh"


def test_a_time_condition_on_its_own_dimension_needs_no_suffix() -> None:
    tariff = Tariff("t", "EUR", idle_time=always("12"), idle_grace_s=0)
    assert price_lines(tariff, MONEY, "en")[0] == "Idle 12.00 EUR/h"
    tariff = Tariff(
        "t",
        "EUR",
        idle_time=Component((PriceElement(D("12"), Conditions(min_idle_time_s=3600)), PriceElement(D("6")))),
        idle_grace_s=900,
    )
    assert price_lines(tariff, MONEY, "en")[:2] == (
        "Idle 6.00 EUR/h after 15 min",
        "Idle after 1 h 12.00 EUR/h after 15 min",
    )


def test_only_prices_that_can_apply_are_shown_the_fallback_first() -> None:
    tariff = Tariff(
        "t",
        "EUR",
        energy=Component(
            (
                PriceElement(D("0.25"), Conditions(days_of_week=frozenset({6, 7}))),
                PriceElement(D("0.99"), Conditions(days_of_week=frozenset())),  # no day: never applies
                PriceElement(D("0.30"), Conditions(start_time_of_day=time(22), end_time_of_day=time(6))),
                PriceElement(D("0.40"), Conditions(days_of_week=frozenset(range(1, 8)))),  # every day: always
                PriceElement(D("0.50")),  # after an unconditional price: never applies
            )
        ),
    )
    assert price_lines(tariff, MONEY, "en") == (
        "Energy 0.40 EUR/kWh",
        "Energy Sat-Sun 0.25 EUR/kWh",
        "Energy 22:00-06:00 0.30 EUR/kWh",
        "No tax",
    )


def test_the_description_is_taken_only_in_the_display_language() -> None:
    tariff = Tariff("t", "EUR", energy=always("0.40"), description=(("de-AT", "Ökostrom"), ("fr", "Vert")))
    assert price_lines(tariff, MONEY, "de")[0] == "Ökostrom"
    assert price_lines(tariff, MONEY, "fr")[0] == "Vert"
    assert price_lines(tariff, MONEY, "en")[0] == "Energy 0.40 EUR/kWh"


@pytest.mark.parametrize(
    ("preferred", "default", "expected"),
    [
        ("de-DE", "en", "de"),
        ("de", "en", "de"),
        ("FR-be", "en", "fr"),
        ("nl_NL", "en", "nl"),
        (" en-GB ", "de", "en"),
        ("sv-SE", "de", "de"),
        ("", "fr", "fr"),
        (None, "nl", "nl"),
        (None, "de-CH", "de"),  # the default is reduced the same way
        ("sv", "pl", "en"),  # neither is spoken: English
    ],
)
def test_pick_language(preferred: str | None, default: str, expected: str) -> None:
    assert pick_language(preferred, default) == expected
    assert expected in SUPPORTED_LANGUAGES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$0.25/kWh", ("$0.25/kWh",)),
        ("Energy $0.25/kWh\nIdle $1.00/h", ("Energy $0.25/kWh", "Idle $1.00/h")),
        ("a\r\nb\rc", ("a", "b", "c")),
        ("\n\nfirst  \n\n\tsecond\n\n", ("first", "", " second")),
        ("", ()),
    ],
)
def test_text_lines_split_a_csms_price_text(text: str, expected: tuple[str, ...]) -> None:
    assert text_lines(text) == expected


# ----------------------------------------------------------------------------- running cost and receipt


def line(kind: str, quantity: str, excl: str, vat: str) -> CostLine:
    return CostLine(kind, D(quantity), D(excl), (("VAT", D(vat)),), D(excl) + D(vat))


SESSION = CostBreakdown(
    tariff_id="night-and-day",
    currency="EUR",
    lines=(
        line("energy", "12.345", "3.84", "0.73"),
        line("idle_time", "0.25", "1.26", "0.24"),
        line("fixed_fee", "1", "0.42", "0.08"),
    ),
    total_excl_tax=D("5.52"),
    total_tax=D("1.05"),
    total_incl_tax=D("6.57"),
    type_of_cost="NormalCost",
    energy_Wh=12_345,
    duration_s=3_959.9,  # 1 h 5 min 59.9 s: a started minute is not shown yet
    charging_time_s=3_000.0,
    idle_time_s=959.9,
)


def test_running_lines() -> None:
    assert running_lines(SESSION, MONEY, "en") == ("12.35 kWh  1:05 h", "Cost 6.57 EUR")
    assert running_lines(SESSION, MONEY, "de-DE") == ("12,35 kWh  1:05 h", "Kosten 6,57 EUR")
    assert running_lines(SESSION, MONEY, "fr")[1] == "Coût 6,57 EUR"
    assert running_lines(SESSION, MONEY, "nl")[1] == "Kosten 6,57 EUR"


def test_running_lines_show_the_operators_figure_and_text_when_there_is_one() -> None:
    assert running_lines(SESSION, MONEY, "en", csms_cost=Decimal("7.1"), csms_text="0.42 EUR/kWh\nThank you") == (
        "12.35 kWh  1:05 h", "Cost 7.10 EUR", "0.42 EUR/kWh", "Thank you")


def test_running_lines_at_the_start_of_a_session() -> None:
    start = replace(SESSION, lines=(), energy_Wh=0, duration_s=0.0, total_incl_tax=D("0"), total_tax=D("0"))
    # Issue 14: under a minute the seconds are shown.
    assert running_lines(start, MONEY, "en") == ("0.00 kWh  0 s", "Cost 0.00 EUR")


def test_receipt_in_english() -> None:
    assert receipt_lines(SESSION, MONEY, "en") == (
        "Energy 12.35 kWh",
        "Duration 1:05 h",
        "Energy 4.57 EUR",
        "Idle 1.50 EUR",
        "Session fee 0.50 EUR",
        "incl. VAT 1.05 EUR",
        "Tax per line",  # issue 14: the receipt states the tax method
        "Total 6.57 EUR",
    )


def test_receipt_in_german_with_the_operators_figure_as_the_amount_due() -> None:
    assert receipt_lines(SESSION, MONEY, "de", csms_cost=D("6.6")) == (
        "Energie 12,35 kWh",
        "Dauer 1:05 h",
        "Energie 4,57 EUR",
        "Blockiergebühr 1,50 EUR",
        "Grundgebühr 0,50 EUR",
        "inkl. VAT 1,05 EUR",
        "Steuer je Position",
        "Gesamt 6,57 EUR",
        "Gesamt (Betreiber) 6,60 EUR",
    )


def test_receipt_in_french_and_dutch_end_with_the_amount_due() -> None:
    assert receipt_lines(SESSION, MONEY, "fr", csms_cost=D("6.57"))[-4:] == (
        "dont VAT 1,05 EUR",
        "Taxe par ligne",
        "Total 6,57 EUR",
        "Total (opérateur) 6,57 EUR",
    )
    assert receipt_lines(SESSION, MONEY, "nl")[-3:] == ("incl. VAT 1,05 EUR", "Belasting per regel", "Totaal 6,57 EUR")


def test_receipt_with_a_minimum_and_several_taxes() -> None:
    energy = CostLine("energy", D("1"), D("0.30"), (("VAT", D("0.06")), ("Local", D("0.04"))), D("0.40"))
    minimum = CostLine("min_cost", D("0"), D("0.70"), (("VAT", D("0.14")), ("Local", D("0.08"))), D("0.92"))
    breakdown = replace(
        SESSION,
        lines=(energy, minimum),
        total_excl_tax=D("1.00"),
        total_tax=D("0.32"),
        total_incl_tax=D("1.32"),
        type_of_cost="MinCost",
        energy_Wh=1_000,
        duration_s=600.0,
    )
    assert receipt_lines(breakdown, MONEY, "en") == (
        "Energy 1.00 kWh",
        "Duration 0:10 h",
        "Energy 0.40 EUR",
        "Minimum 0.92 EUR",
        "incl. VAT + Local 0.32 EUR",
        "Tax per line",
        "Total 1.32 EUR",
    )


def test_receipt_without_tax() -> None:
    free = CostLine("energy", D("2"), D("0.60"), (), D("0.60"))
    breakdown = replace(SESSION, lines=(free,), total_excl_tax=D("0.60"), total_tax=D("0"), total_incl_tax=D("0.60"))
    assert receipt_lines(breakdown, MONEY, "de")[-2:] == ("Ohne Steuern", "Gesamt 0,60 EUR")


def test_receipt_of_an_evaluated_session_adds_up() -> None:
    start = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    samples = [
        Sample(start, 100_000, SessionState.charging),
        Sample(start + timedelta(minutes=50), 110_000, SessionState.idle),
        Sample(start + timedelta(minutes=95), 110_000, SessionState.idle),
    ]
    breakdown = evaluate(NIGHT_AND_DAY, samples, ZoneInfo("Europe/Berlin"), MONEY)
    lines = receipt_lines(breakdown, MONEY, "en")
    assert lines[:2] == ("Energy 10.00 kWh", "Duration 1:35 h")
    assert lines[-1] == f"Total {breakdown.total_incl_tax} EUR"
    shown = [D(text.split()[-2]) for text in lines[2 : 2 + len(breakdown.lines)]]
    assert sum(shown) == breakdown.total_incl_tax


def test_messages_in_every_language_and_unknown_keys_shown_as_they_are() -> None:
    from chargepoint.pricing.text import message_text

    assert message_text("prepaid_empty", "de-DE") == "Guthaben aufgebraucht"
    assert message_text("CostLimitReached", "fr") == "Budget atteint, charge arrêtée"
    assert message_text("card_rejected", "xx") == "Card not accepted"
    assert message_text("SomethingElse", "nl") == "SomethingElse"
    for language in SUPPORTED_LANGUAGES:
        assert {message_text(k, language) for k in ("card_rejected", "prepaid_empty", "CostLimitReached",
                                                    "EnergyLimitReached", "TimeLimitReached")}.isdisjoint(
            {"card_rejected", "prepaid_empty", "CostLimitReached", "EnergyLimitReached", "TimeLimitReached"})
