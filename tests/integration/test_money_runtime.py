"""Issue 14 end to end: the running charger on simulated hardware with a real store. Prepaid budgets shared by a
card's sessions, never below zero, refused below the session's fixed part; no charge without energy; time the
charger holds power back is not idle; prepaid amounts in the currency's minor unit; messages that end."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chargepoint.pricing.cost import CostBreakdown
from hal.protocols import DisplayKind
from tests.integration.harness import Charger, make_config, running_charger

TARIFFS: dict[str, Any] = {
    # 1 EUR/kWh, no tax: a budget in EUR is the same number of kWh.
    "kwh": {"energy": [{"price_per_kWh": "1.00"}]},
    # The session fee: 0.50 net + 19 % VAT = 0.595 -> 0.60.
    "fee": {"tax_rates": [{"name": "VAT", "percent": "19"}], "energy": [{"price_per_kWh": "1.00"}],
            "fixed_fee": [{"price": "0.50"}]},
    # Fee 0.50 and a minimum of 1.00 net: 1.00 x 1.19 = 1.19 for any session with energy.
    "minimum": {"tax_rates": [{"name": "VAT", "percent": "19"}], "energy": [{"price_per_kWh": "0.40"}],
                "fixed_fee": [{"price": "0.50"}], "min_cost": "1.00"},
}


def _pricing(tariff: str, **extra: Any) -> dict[str, Any]:
    return {"currency": "EUR", "display_interval_s": 1, "receipt_display_s": 0.5, "tariffs": TARIFFS,
            "packages": [{"name": "prepaid", "tariff": tariff, "id_tags": ["PRE*"]}], **extra}


async def _sessions(charger: Charger, n: int) -> list[dict[str, Any]]:
    await charger.app.flush_store()
    rows = await charger.app.recent_sessions(n)
    assert len(rows) == n and all(row["stopped_at"] is not None for row in rows)
    return rows


async def _balance(charger: Charger, card: str) -> Decimal:
    return Decimal((await charger.app.prepaid(card))[0]["balance"])


def _shown(charger: Charger, connector_id: int = 1) -> tuple[str, ...] | None:
    message = charger.sim(connector_id).display.shown()
    return None if message is None else message.lines


# --------------------------------------------------------------------------- prepaid


async def test_one_prepaid_card_on_two_connectors_shares_one_budget(tmp_path: Path) -> None:
    # Simulated time 10x: at 22 kW a 0.1 s meter step is about 6 Wh (0.006 EUR).
    config = make_config(tmp_path, charger={"free_vend": False, "connectors": 2}, pricing=_pricing("kwh"),
                         simulator={"time_scale": 10})
    async with running_charger(config) as charger:
        await charger.app.prepaid("PRE-1", balance="0.10")
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
        for connector_id in (1, 2):  # both sessions start before either draws
            charger.sim(connector_id).apply("plug")
            await charger.wait_status("Preparing", connector_id)
            charger.sim(connector_id).apply("tap", "PRE-1")
            await charger.wait_status("SuspendedEV", connector_id)
        for connector_id in (1, 2):
            charger.sim(connector_id).apply("charge")
        for connector_id in (1, 2):
            await charger.wait_status("Finishing", connector_id, timeout_s=20)
        rows = await _sessions(charger, 2)
        balance = await _balance(charger, "PRE-1")
        in_memory = charger.app.pricing.prepaid["PRE-1"].balance

    assert {row["stop_reason"] for row in rows} == {"CostLimitReached"}
    costs = [Decimal(row["cost"]) for row in rows]
    # One budget of 0.10 (100 Wh at 1 EUR/kWh) for both: together they stop once they reach 0.10, each overshooting
    # by at most a meter step and its wind-down (together well under 0.05). Before issue 14 each had the whole
    # 0.10: at least 0.20 in all.
    assert sum(costs) < Decimal("0.15"), costs
    assert balance == in_memory == Decimal("0.00")


@pytest.mark.parametrize(("balance", "accepted", "message"), [
    ("0.30", False, "Balance too low for the session fee"),  # the issue: 0.30 < 0.60
    ("0.59", False, "Balance too low for the session fee"),
    ("0.60", True, None),  # exactly the fee (0.50 x 1.19 = 0.595 -> 0.60) pays for the start
    ("0.00", False, "Prepaid balance used up"),
])
async def test_a_prepaid_card_is_refused_when_it_cannot_pay_the_session_fee(
    tmp_path: Path, balance: str, accepted: bool, message: str | None,
) -> None:
    config = make_config(tmp_path, charger={"free_vend": False}, pricing=_pricing("fee"))
    async with running_charger(config) as charger:
        await charger.app.prepaid("PRE-2", balance=balance)
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        charger.sim().apply("tap", "PRE-2")
        if accepted:
            await charger.wait_status("SuspendedEV")
            assert charger.status()["session"] is not None
        else:
            await charger.wait_for(lambda: _shown(charger) == (message,), what=f"refusal {message!r}")
            assert charger.status()["session"] is None
            assert await _balance(charger, "PRE-2") == Decimal(balance)


async def test_a_slow_meter_never_takes_a_balance_below_zero_and_the_shortfall_is_reported(tmp_path: Path) -> None:
    # One reading a second at up to 22 kW: a step of several Wh, so the cost overshoots a 0.05 budget.
    config = make_config(tmp_path, charger={"free_vend": False, "meter_poll_interval_s": 1.0},
                         pricing=_pricing("kwh"))
    async with running_charger(config) as charger:
        await charger.app.prepaid("PRE-3", balance="0.05")
        await charger.charge(card="PRE-3")
        status = charger.status()["session"]
        assert status["prepaid"] == {"id_tag": "PRE-3", "balance": "0.05", "available": "0.05",
                                     "shortfall": "0.00"}
        await charger.wait_status("Finishing", timeout_s=20)
        [row] = await _sessions(charger, 1)
        pricing = await charger.store.session_pricing(row["session_id"])
        balance = await _balance(charger, "PRE-3")
        blocked = charger.app.pricing.prepaid_blocks("PRE-3")

    cost = Decimal(row["cost"])
    assert row["stop_reason"] == "CostLimitReached" and cost >= Decimal("0.05")
    assert balance == Decimal("0.00") and blocked
    assert pricing is not None
    # The balance paid what it had; the rest is the charger's shortfall, per session.
    assert pricing.prepaid_paid == Decimal("0.05")
    assert pricing.prepaid_shortfall == cost - Decimal("0.05")
    # ... and `chargepoint sessions --json` shows both.
    assert (row["prepaid_paid"], Decimal(row["prepaid_shortfall"])) == ("0.05", cost - Decimal("0.05"))


@pytest.mark.parametrize(("text", "currency", "error"), [
    ("0.005", "EUR", "at most 2 decimals"),
    ("1E+2", "EUR", "not an amount"),
    ("-100", "EUR", "not an amount"),
    ("100.5", "JPY", "whole amounts"),
])
async def test_prepaid_amounts_are_refused_unless_whole_minor_units(
    tmp_path: Path, text: str, currency: str, error: str,
) -> None:
    config = make_config(tmp_path, pricing={"currency": currency})
    async with running_charger(config) as charger:
        with pytest.raises(ValueError, match=error):
            await charger.app.prepaid("PRE-4", balance=text)
        with pytest.raises(ValueError, match=error):
            await charger.app.prepaid("PRE-4", add=text)
        assert await charger.app.prepaid("PRE-4") == []


async def test_prepaid_amounts_are_stored_with_the_currencys_decimals(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path, pricing={"currency": "JPY"})) as charger:
        assert charger.app.config.pricing.decimals == 0  # the currency's minor unit
        assert (await charger.app.prepaid("PRE-5", balance="100"))[0]["balance"] == "100"
        assert (await charger.app.prepaid("PRE-5", add="250"))[0]["balance"] == "350"
    (tmp_path / "eur").mkdir()
    async with running_charger(make_config(tmp_path / "eur", pricing={"currency": "EUR"})) as charger:
        assert (await charger.app.prepaid("PRE-6", balance="100"))[0]["balance"] == "100.00"
        assert (await charger.app.prepaid("PRE-6", add="0.5"))[0]["balance"] == "100.50"


# --------------------------------------------------------------------------- sessions without energy


async def test_a_session_the_ev_never_used_costs_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path, pricing={"currency": "EUR", "default_tariff": "minimum", "tariffs": TARIFFS})
    async with running_charger(config) as charger:
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
        charger.sim().apply("plug")  # free vend: plugging in starts the session
        await charger.wait_status("SuspendedEV")
        assert charger.status()["session"]["cost"] == "0.00"
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        [row] = await _sessions(charger, 1)
    # Before issue 14: fee 0.50 raised to the minimum 1.00, x 1.19 = 1.19.
    assert row["energy_Wh"] == 0 and row["cost"] == "0.00"


async def test_a_session_the_charger_ended_by_its_own_fault_before_energy_costs_nothing(tmp_path: Path) -> None:
    tariffs = {"minimum": {**TARIFFS["minimum"], "charge_without_energy": True}}
    config = make_config(tmp_path, pricing={"currency": "EUR", "default_tariff": "minimum", "tariffs": tariffs})
    async with running_charger(config) as charger:
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
        charger.sim().apply("fault", "contactor-stuck-open")
        charger.sim().apply("plug")
        await charger.wait_status("SuspendedEV")
        # Even with a fee for sessions without energy: 1.19 (the minimum 1.00 x 1.19) so far.
        assert charger.status()["session"]["cost"] == "1.19"
        charger.sim().apply("charge")  # the contactor does not close: PowerSwitchFailure, EmergencyStop
        await charger.wait_for(lambda: charger.status()["session"] is None, timeout_s=10, what="session ended")
        [row] = await _sessions(charger, 1)
    assert row["stop_reason"] == "EmergencyStop" and row["energy_Wh"] == 0
    assert row["cost"] == "0.00"
    assert CostBreakdown.from_json(row["breakdown"]).total_incl_tax == Decimal("0.00")


# --------------------------------------------------------------------------- idle time


async def test_time_in_suspended_evse_is_not_idle(tmp_path: Path) -> None:
    tariffs = {"idle": {"energy": [{"price_per_kWh": "0"}], "idle_time": [{"price_per_minute": "60"}]}}
    config = make_config(tmp_path, pricing={"currency": "EUR", "default_tariff": "idle", "tariffs": tariffs})
    async with running_charger(config) as charger:
        await charger.charge()
        charger.app.set_current_limit(1, "test", 0.0)  # a smart-charging limit holds power back
        await charger.wait_status("SuspendedEVSE")
        await charger.wait_for(lambda: charger.status()["session"]["breakdown"]["duration_s"] > 1.0,
                               what="a second in SuspendedEVSE")
        held = charger.status()["session"]["breakdown"]
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
    # 60 EUR a minute idle: a second of it would be 1.00 (before issue 14). Held time is neither idle nor billed;
    # what is left is the EV's own reaction to the limit (SuspendedEV for a poll or two).
    assert held["duration_s"] > 1.0 and held["idle_time_s"] < 0.3, held
    assert Decimal(held["total_incl_tax"]) < Decimal("0.30")


# --------------------------------------------------------------------------- the display


async def test_without_a_tariff_a_refusal_ends_with_the_next_card_or_its_timeout(tmp_path: Path) -> None:
    config = make_config(tmp_path, charger={"free_vend": False, "allowed_id_tags": ["GOOD"]},
                         pricing={"message_display_s": 1})
    async with running_charger(config) as charger:
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        charger.sim().apply("tap", "BAD")
        await charger.wait_for(lambda: _shown(charger) == ("Card not accepted",), what="refusal")
        charger.sim().apply("tap", "GOOD")
        await charger.wait_for(lambda: _shown(charger) == ("Card accepted",), what="acceptance")
        await charger.wait_status("SuspendedEV")
        # And that message ends too: nothing priced, so the screen goes blank.
        await charger.wait_for(lambda: _shown(charger) == (), timeout_s=5, what="message timed out")
        display = charger.sim().display
        assert all(m.kind is DisplayKind.info for _, m in display.history)


# --------------------------------------------------------------------------- combined limits (point 12)


async def test_a_package_cap_with_a_smaller_prepaid_balance_and_a_card_budget_keep_the_tightest(
    tmp_path: Path,
) -> None:
    pricing = _pricing("kwh")
    pricing["packages"] = [{"name": "capped", "tariff": "kwh", "id_tags": ["PRE*"], "max_cost": "50.00"}]
    config = make_config(tmp_path, charger={"free_vend": False}, pricing=pricing)
    async with running_charger(config) as charger:
        await charger.app.prepaid("PRE-7", balance="0.05")
        await charger.charge(card="PRE-7")
        limits = charger.status()["session"]["limits"]
        # Package 50.00, prepaid 0.05: the session may cost 0.05, not 50.
        assert limits["max_cost"] == "0.05" and limits["sources"] == ["capped", "prepaid"]
        await charger.wait_status("Finishing", timeout_s=20)
        [row] = await _sessions(charger, 1)
        assert row["stop_reason"] == "CostLimitReached"
        charger.sim().apply("unplug")
        await charger.wait_status("Available")

        # A card payment's budget (set_card_budget) under the package cap and a larger prepaid balance.
        await charger.app.prepaid("PRE-8", balance="10.00")
        charger.app.pricing.set_card_budget(1, Decimal("0.03"))
        await charger.charge(card="PRE-8")
        limits = charger.status()["session"]["limits"]
        assert limits["max_cost"] == "0.03" and set(limits["sources"]) == {"capped", "prepaid", "card"}
