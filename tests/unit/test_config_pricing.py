"""The [pricing] section: operators' tariffs and packages are checked when the file is read."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from chargepoint.config.loader import load_config
from chargepoint.errors import ConfigError

GOOD = """
[pricing]
currency = "EUR"
time_zone = "Europe/Berlin"
default_tariff = "standard"

[pricing.tariffs.standard]
description = { en = "Standard", de = "Standard" }
tax_rates = [{ name = "VAT", percent = "19" }]
energy = [
  { price_per_kWh = "0.29", start_time = "22:00", end_time = "06:00" },
  { price_per_kWh = "0.39" },
]
charging_time = [{ price_per_minute = "0.01" }]
idle_time = [{ price_per_hour = "6.00" }]
idle_grace_min = 30
fixed_fee = [{ price = "0.50" }]
min_cost = "1.00"
max_cost = "60.00"

[pricing.tariffs.fleet]
energy = [{ price_per_kWh = "0.25" }]

[[pricing.packages]]
name = "acme"
tariff = "fleet"
groups = ["ACME"]
id_tags = ["04A1*"]
max_cost = "30.00"
max_energy_kWh = "40"
max_duration_min = 240
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_a_valid_pricing_section_builds_the_tariffs(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    config = load_config(path)

    tariff = config.pricing.tariff("standard")
    assert tariff.currency == "EUR"
    assert tariff.energy is not None
    night = tariff.energy.prices[0]
    assert (night.price, night.conditions.start_time_of_day, night.conditions.end_time_of_day) == (
        Decimal("0.29"), time(22, 0), time(6, 0))
    # Time prices are held per hour: 0.01 per minute is exactly 0.60 per hour.
    assert tariff.charging_time is not None and tariff.charging_time.prices[0].price == Decimal("0.60")
    assert tariff.idle_time is not None and tariff.idle_time.prices[0].price == Decimal("6.00")
    assert tariff.idle_grace_s == 1800
    assert [(t.name, t.percent) for t in tariff.tax_rates] == [("VAT", Decimal("19"))]
    package = config.pricing.packages[0]
    assert (package.tariff, package.max_cost, package.max_energy_kWh) == ("fleet", Decimal("30.00"), Decimal("40"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('currency = "EUR"', 'currency = "EURO"'), "unknown currency 'EURO'"),
        (('time_zone = "Europe/Berlin"', 'time_zone = "Mars/Olympus"'), "unknown time zone"),
        (('{ price_per_kWh = "0.39" }', '{ price_per_kWh = "-0.39" }'), "negative"),
        # Without the fallback price, 06:00-22:00 has no energy price.
        (('  { price_per_kWh = "0.39" },\n', ''), "uncovered"),
        (('default_tariff = "standard"', 'default_tariff = "missing"'), "default_tariff 'missing'"),
        (('tariff = "fleet"', 'tariff = "nope"'), "package 'acme': tariff 'nope'"),
        (('min_cost = "1.00"', 'min_cost = "90.00"'), "min"),
        (('idle_time = [{ price_per_hour = "6.00" }]',
          'idle_time = [{ price_per_hour = "6", price_per_minute = "1" }]'), "exactly one of price_per_minute"),
        (('groups = ["ACME"]', 'groups = ["ACME"]\nprepaid = true'), "unknown key"),
        (('percent = "19"', 'percent = "190"'), "less than or equal to 100"),
    ],
)
def test_an_inconsistent_tariff_is_a_config_error_naming_file_key_and_reason(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    problems = _problems(tmp_path, GOOD.replace(old, new, 1))
    assert problems, "expected a problem"
    assert any(str(tmp_path / "config.toml") in p and "pricing" in p and expected in p for p in problems), problems


def test_no_pricing_section_means_unpriced_sessions_in_eur(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("")
    config = load_config(path)
    assert (config.pricing.currency, config.pricing.default_tariff, config.pricing.tariffs) == ("EUR", None, {})


def test_the_readme_pricing_example_is_a_valid_config(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(part.split("```", 1)[0] for part in readme.split("```toml\n")[1:] if part.startswith("[pricing]"))
    path = tmp_path / "config.toml"
    path.write_text(block)
    config = load_config(path)
    assert config.pricing.default_tariff == "standard" and config.pricing.packages[0].tariff == "fleet"


def test_the_simulator_config_is_priced() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "config" / "sim.toml")
    assert config.pricing.default_tariff == "adhoc"


def test_the_service_load_sets_a_bad_pricing_section_aside_but_nothing_else(tmp_path: Path) -> None:
    from chargepoint.config.loader import load_config_for_service

    path = tmp_path / "config.toml"
    path.write_text(GOOD.replace('{ price_per_kWh = "0.39" }', '{ price_per_kWh = "-0.39" }'))
    config, problems = load_config_for_service(path)
    assert config.pricing.tariffs == {} and len(problems) == 1 and "negative price -0.39" in problems[0]

    # A problem outside [pricing] (here with a bad price too) still stops the load.
    path.write_text(GOOD.replace('{ price_per_kWh = "0.39" }', '{ price_per_kWh = "-0.39" }')
                    + '\n[charger]\nmax_current_A = 500\n')
    with pytest.raises(ConfigError):
        load_config_for_service(path)
