"""Prices through the `chargepoint` command against a real daemon process: status cost, sessions with cost and CSV,
prepaid balances, and a kill -9 that loses no cost and no debit."""

from __future__ import annotations

import csv
import io
import json
import signal
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from tests.integration.test_cli import CONFIG, Daemon, cli

CENT = Decimal("0.01")  # the default money format: 2 decimals, rounded half up

CARD = "PREPAID-7"
PRICING = """
[pricing]
currency = "EUR"
default_tariff = "adhoc"

[pricing.tariffs.adhoc]
tax_rates = [{ name = "VAT", percent = "21" }]
energy = [{ price_per_kWh = "0.50" }]
fixed_fee = [{ price = "0.30" }]
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    text = CONFIG.format(dir=tmp_path) + PRICING
    path.write_text(text.replace("[charger]\n", "[charger]\nfree_vend = false\n", 1))
    return path


def _sessions(config_path: Path) -> list[dict[str, object]]:
    rows = json.loads(cli("sessions", "--config", str(config_path), "--json", check=True).stdout)
    assert isinstance(rows, list)
    return rows


def _charge_with_card(daemon: Daemon) -> None:
    daemon.sim("plug")
    daemon.wait_status("Preparing")
    daemon.sim("tap", CARD)
    daemon.wait_status("SuspendedEV")
    daemon.sim("charge")
    daemon.wait_status("Charging")


def test_prepaid_status_cost_sessions_and_csv(daemon: Daemon, config_path: Path) -> None:
    conf = ("--config", str(config_path))
    assert "need an ID_TAG" in cli("prepaid", *conf, "--set", "5").stderr
    bad = cli("prepaid", *conf, CARD, "--set", "five")
    assert bad.returncode == 1 and "not an amount" in bad.stderr
    # Issue 14: stored and shown with the currency's minor unit.
    assert "5.00 EUR" in cli("prepaid", *conf, CARD, "--set", "5", check=True).stdout
    topped = cli("prepaid", *conf, CARD, "--add", "2.50", check=True).stdout
    assert CARD in topped and "7.50 EUR" in topped

    _charge_with_card(daemon)
    deadline = time.monotonic() + 10
    while True:
        session = daemon.connector()["session"]
        assert isinstance(session, dict)
        if Decimal(str(session["cost"])) > Decimal("0.36"):  # more than the fee incl. VAT: energy is priced
            break
        assert time.monotonic() < deadline, session
        time.sleep(0.1)
    assert session["currency"] == "EUR" and session["tariff_id"] == "adhoc"
    assert session["limits"] == {"max_cost": "7.50", "max_energy_Wh": None, "max_duration_s": None,
                                 "sources": ["prepaid"]}
    human = cli("status", *conf, check=True).stdout
    assert "EUR, tariff adhoc" in human

    daemon.sim("unplug")
    daemon.wait_status("Available")
    [record] = _sessions(config_path)
    assert record["tariff_id"] == "adhoc" and record["cost_final"] is True and record["currency"] == "EUR"
    cost = Decimal(str(record["cost"]))
    # Hand check: (0.30 + kWh x 0.50 rounded) x 1.21, each line's VAT rounded.
    energy_excl = (Decimal(str(record["energy_Wh"])) / 1000 * Decimal("0.50")).quantize(CENT, ROUND_HALF_UP)
    vat = (energy_excl * Decimal("0.21")).quantize(CENT, ROUND_HALF_UP) + Decimal("0.06")
    assert cost == energy_excl + Decimal("0.30") + vat
    balance = cli("prepaid", *conf, CARD, check=True).stdout
    assert f"{Decimal('7.50') - cost} EUR" in balance

    table = cli("sessions", *conf, check=True).stdout
    assert "adhoc" in table and f"{cost} EUR" in table
    rows = list(csv.DictReader(io.StringIO(cli("sessions", *conf, "--csv", check=True).stdout)))
    assert rows[0]["id_tag"] == CARD and rows[0]["tariff_id"] == "adhoc" and rows[0]["cost"] == str(cost)
    assert rows[0]["currency"] == "EUR" and int(rows[0]["energy_Wh"]) == record["energy_Wh"]
    assert int(rows[0]["duration_s"]) >= 0


def test_kill_9_keeps_the_last_cost_and_debits_it_once(daemon: Daemon, config_path: Path) -> None:
    conf = ("--config", str(config_path))
    cli("prepaid", *conf, CARD, "--set", "20", check=True)
    _charge_with_card(daemon)
    time.sleep(0.8)  # some priced readings are persisted
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL

    restarted = Daemon(config_path)
    restarted.start()
    try:
        [record] = _sessions(config_path)
        assert record["stop_reason"] == "PowerLoss" and record["cost_final"] is True
        cost = Decimal(str(record["cost"]))
        assert cost > Decimal("0.36")
        assert f"{Decimal('20') - cost} EUR" in cli("prepaid", *conf, CARD, check=True).stdout
    finally:
        restarted.stop()
    # A second restart recovers nothing more and debits nothing more.
    again = Daemon(config_path)
    again.start()
    try:
        assert f"{Decimal('20') - cost} EUR" in cli("prepaid", *conf, CARD, check=True).stdout
    finally:
        again.stop()


def test_a_bad_pricing_section_keeps_the_last_valid_prices_and_the_charger_in_service(
    daemon: Daemon, config_path: Path
) -> None:
    conf = ("--config", str(config_path))
    assert daemon.stop() == 0  # it ran once with valid prices: they are remembered
    broken = config_path.read_text().replace('price_per_kWh = "0.50"', 'price_per_kWh = "-0.50"')
    config_path.write_text(broken.replace("free_vend = false", "free_vend = true"))
    check = cli("config", "validate", *conf)
    assert check.returncode != 0 and "negative price -0.50" in check.stderr

    restarted = Daemon(config_path)
    restarted.start()
    try:
        log = restarted.log()
        assert f"{config_path}: pricing: tariff 'adhoc': energy.prices[0]: negative price -0.50" in log
        assert "the last valid prices stay in force" in log
        restarted.sim("plug")
        restarted.sim("charge")
        restarted.wait_status("Charging")
        time.sleep(0.5)
        restarted.sim("unplug")
        restarted.wait_status("Available")
        [record] = _sessions(config_path)
        energy_excl = (Decimal(str(record["energy_Wh"])) / 1000 * Decimal("0.50")).quantize(CENT, ROUND_HALF_UP)
        assert record["tariff_id"] == "adhoc"
        assert Decimal(str(record["cost"])) == energy_excl + Decimal("0.30") + (
            energy_excl * Decimal("0.21")).quantize(CENT, ROUND_HALF_UP) + Decimal("0.06")
    finally:
        restarted.stop()
