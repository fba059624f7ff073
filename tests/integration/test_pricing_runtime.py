"""Pricing in the running charger (standalone, simulators, real SQLite): price before the session, running cost,
final cost and receipt, prepaid budgets and package limits enforced with a bounded overshoot."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from chargepoint.core.commands import Command, OpenContactor, RecordMeter, SetPilotHigh, SetPwm
from chargepoint.pricing.cost import CostBreakdown
from chargepoint.pricing.serialize import tariff_from_json
from chargepoint.pricing.tariff import MoneyFormat
from chargepoint.pricing.text import price_lines
from hal.protocols import DisplayKind
from tests.integration.harness import Charger, make_config, running_charger

CENT = Decimal("0.01")  # the default money format: 2 decimals, rounded half up

TARIFFS: dict[str, Any] = {
    "adhoc": {
        "tax_rates": [{"name": "VAT", "percent": "19"}],
        "energy": [{"price_per_kWh": "0.40"}],
        "fixed_fee": [{"price": "0.50"}],
    },
    # 1 EUR/kWh, no tax: a budget in EUR is the same number of kWh, easy to check by hand.
    "prepaid": {"energy": [{"price_per_kWh": "1.00"}]},
    "fleet": {"energy": [{"price_per_kWh": "0.25"}]},
}


def _pricing(**extra: Any) -> dict[str, Any]:
    return {"currency": "EUR", "default_tariff": "adhoc", "display_interval_s": 1, "receipt_display_s": 0.5,
            "tariffs": TARIFFS, **extra}


class Recorder:
    """Every command the runtime executed, and the meter readings it recorded, in order."""

    def __init__(self, charger: Charger) -> None:
        self.commands: list[Command] = []
        self.readings_Wh: list[int] = []
        self.readings_at: list[tuple[int, int]] = []
        charger.app.on_command = self.on_command

    def on_command(self, connector_id: int, command: Command) -> None:
        self.commands.append(command)
        if isinstance(command, RecordMeter):
            self.readings_Wh.append(command.energy_Wh)
            self.readings_at.append((len(self.commands) - 1, command.energy_Wh))

    def energy_between(self, first: int, last: int) -> int:
        """Energy recorded from the last reading before command position ``first`` to the last one at ``last``."""
        before = [energy_Wh for at, energy_Wh in self.readings_at if at <= first]
        upto = [energy_Wh for at, energy_Wh in self.readings_at if at <= last]
        return upto[-1] - before[-1] if before and upto else 0

    def largest_step_Wh(self) -> int:
        return max(b - a for a, b in zip(self.readings_Wh, self.readings_Wh[1:], strict=False))


async def _finished_session(charger: Charger) -> dict[str, Any]:
    await charger.app.flush_store()
    rows = await charger.app.recent_sessions(1)
    assert rows and rows[0]["stopped_at"] is not None
    return rows[0]


async def test_price_before_session_running_cost_and_receipt(tmp_path: Path) -> None:
    config = make_config(tmp_path, pricing=_pricing())
    async with running_charger(config) as charger:
        display = charger.sim().display
        # Before anyone plugs in: the ad hoc price, per component, including tax (0.40 * 1.19 = 0.476).
        await charger.wait_for(lambda: display.shown() is not None, what="idle price on the display")
        shown = display.shown()
        assert shown is not None and shown.kind is DisplayKind.price
        expected = price_lines(config.pricing.tariff("adhoc"), MoneyFormat(), "en")
        assert shown.lines == expected
        assert any("0.476" in line for line in shown.lines), shown.lines

        await charger.charge()
        # Issue 14: 0.00 until the first energy (no fee without energy), then fee and energy.
        await charger.wait_for(lambda: (charger.status()["session"] or {}).get("cost") not in (None, "0.00", "0.60"),
                               what="running cost above the session fee")
        session = charger.status()["session"]
        assert session["currency"] == "EUR" and session["tariff_id"] == "adhoc"
        assert Decimal(session["cost"]) > Decimal("0.60")  # fee 0.50 + 19 % VAT, plus energy
        await charger.wait_for(lambda: display.shown() is not None and display.shown().kind is DisplayKind.running,
                               what="running cost on the display")

        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        record = await _finished_session(charger)
        row = await charger.store.session_pricing(record["session_id"])
        await charger.wait_for(lambda: any(m.kind is DisplayKind.receipt for _, m in display.history),
                               what="receipt on the display")
        # The receipt stays a moment, then the idle price comes back.
        await charger.wait_for(lambda: display.shown() is not None and display.shown().kind is DisplayKind.price,
                               what="idle price after the receipt")

    breakdown = CostBreakdown.from_json(record["breakdown"])
    energy_kWh = Decimal(record["energy_Wh"]) / 1000
    # Hand check: energy line = kWh * 0.40 (rounded to cents), fee 0.50, 19 % VAT on each line.
    energy_line = next(line for line in breakdown.lines if line.kind == "energy")
    assert energy_line.excl_tax == (energy_kWh * Decimal("0.40")).quantize(CENT, ROUND_HALF_UP)
    assert record["cost"] == str(breakdown.total_incl_tax)
    assert breakdown.total_incl_tax == sum((line.incl_tax for line in breakdown.lines), Decimal(0))
    assert record["tariff_id"] == "adhoc" and record["cost_final"] is True
    # The tariff snapshot stored with the session is the one that priced it.
    assert row is not None and row.tariff_json is not None
    assert tariff_from_json(json.loads(row.tariff_json)) == config.pricing.tariff("adhoc")


async def test_prepaid_card_stops_at_its_budget_and_is_then_refused(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, charger={"free_vend": False},
        pricing=_pricing(packages=[{"name": "prepaid", "tariff": "prepaid", "id_tags": ["PRE*"]}]),
    )
    async with running_charger(config) as charger:
        await charger.app.prepaid("PREPAID1", balance="0.30")
        recorder = Recorder(charger)
        await charger.charge(card="PREPAID1")
        await charger.wait_status("Finishing", timeout_s=20)
        record = await _finished_session(charger)

        assert record["stop_reason"] == "CostLimitReached"
        # Not a fault: PWM off first; the contactor opens once the EV has stopped drawing, not under load.
        stop_at = recorder.commands.index(OpenContactor())
        pwm_off_at = max(i for i, c in enumerate(recorder.commands[:stop_at]) if c == SetPilotHigh())
        assert not any(isinstance(c, SetPwm) for c in recorder.commands[pwm_off_at:stop_at])
        assert charger.sim().contactor.history[-1].closed is False
        # Bound: the overshoot is one meter sample's energy plus what the EV drew while it stopped, all of it priced
        # (1 EUR/kWh, so 1 Wh = 0.001 EUR): nothing delivered goes unbilled.
        wind_down_Wh = recorder.energy_between(pwm_off_at, stop_at)
        overshoot = Decimal(record["cost"]) - Decimal("0.30")
        assert Decimal(0) <= overshoot <= Decimal(recorder.largest_step_Wh() + wind_down_Wh) / 1000 + Decimal("0.01"), (
            overshoot, recorder.largest_step_Wh(), wind_down_Wh)
        accounts = await charger.app.prepaid("PREPAID1")
        # Never below zero: the overshoot is written down as a shortfall, not owed by the balance.
        assert Decimal(accounts[0]["balance"]) == max(Decimal(0), Decimal("0.30") - Decimal(record["cost"]))

        # Nothing left: the same card may not start again.
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        charger.sim().apply("tap", "PREPAID1")
        display = charger.sim().display
        await charger.wait_for(lambda: display.shown() is not None and display.shown().lines == (
            "Prepaid balance used up",), what="refusal on the display")
        assert charger.status()["session"] is None
        receipts = [m for _, m in display.history if m.kind is DisplayKind.receipt]
        assert receipts[-1].lines[0] == "Budget reached, charging stopped"


async def test_package_energy_limit_stops_within_one_meter_sample_and_the_wind_down(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, charger={"free_vend": False, "allowed_id_tags": ["FLEET-01"]},
        pricing=_pricing(packages=[{"name": "fleet", "tariff": "fleet", "id_tags": ["FLEET-*"],
                                    "max_energy_kWh": "0.5"}]),
    )
    async with running_charger(config) as charger:
        recorder = Recorder(charger)
        await charger.charge(card="FLEET-01")
        assert charger.status()["session"]["package"] == "fleet"
        await charger.wait_status("Finishing", timeout_s=20)
        record = await _finished_session(charger)

    assert record["stop_reason"] == "EnergyLimitReached" and record["tariff_id"] == "fleet"
    # One meter sample past the limit, plus what the EV drew while it stopped after the PWM went off.
    stop_at = recorder.commands.index(OpenContactor())
    pwm_off_at = max(i for i, c in enumerate(recorder.commands[:stop_at]) if c == SetPilotHigh())
    overshoot_Wh = record["energy_Wh"] - 500
    bound_Wh = recorder.largest_step_Wh() + recorder.energy_between(pwm_off_at, stop_at)
    assert 0 <= overshoot_Wh <= bound_Wh, (overshoot_Wh, bound_Wh)
