"""Ad hoc card payment end to end on simulated hardware (issue 14 point 4): the real ZVT driver against the ZVT
terminal simulator, through the charger's card flow - pre-authorisation, a session within it, capture and release,
and every scripted failure."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from chargepoint.config.schema import Config
from chargepoint.store import PaymentRecord
from simulators.zvt_terminal import Outcome, ZvtTerminalSimulator
from tests.integration.harness import Charger, make_config, running_charger

TARIFF: dict[str, Any] = {
    "currency": "EUR", "time_zone": "Europe/Berlin", "default_tariff": "adhoc",
    "tariffs": {"adhoc": {"energy": [{"price_per_kWh": "0.50"}], "fixed_fee": [{"price": "1.00"}]}},
}
CARD = "CARD-TOKEN-0001"


def card_config(tmp_path: Path, **card_payment: Any) -> Config:
    return make_config(tmp_path, charger={"free_vend": False, "allowed_id_tags": ["RFID-1"],
                                          "connection_timeout_s": 60}, pricing=TARIFF,
                       card_payment={"preauthorize_amount": "25.00", "card_wait_s": 10, **card_payment})


def terminal(charger: Charger) -> ZvtTerminalSimulator:
    from chargepoint.composition.devices import payment_simulator_of

    simulator = payment_simulator_of(charger.hardware)
    assert simulator is not None
    return simulator


async def payments(charger: Charger) -> list[PaymentRecord]:
    return await charger.store.payments()


async def settled(charger: Charger, state: str, timeout_s: float = 10) -> PaymentRecord:
    return await settled_any(charger, (state,), timeout_s)


async def settled_any(charger: Charger, states: tuple[str, ...], timeout_s: float = 10) -> PaymentRecord:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = [p for p in await payments(charger) if p.state in states]
        if found:
            return found[0]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no payment {states}: {[(p.state, p.detail) for p in await payments(charger)]}")
        await asyncio.sleep(0.05)


async def test_a_card_pays_for_its_session_and_the_rest_is_released(tmp_path: Path) -> None:
    async with running_charger(card_config(tmp_path)) as charger:
        charger.sim().apply("plug")
        terminal(charger).present_card(CARD)
        await charger.wait_for(lambda: charger.status()["session"] is not None, timeout_s=10, what="the session")
        session = charger.status()["session"]
        assert session["payment_method"] == "card" and session["preauthorized"] == "25.00 EUR"
        assert session["id_tag"].startswith("CARD") and CARD not in session["id_tag"]  # a pseudonym of the card
        charger.sim().apply("charge")
        await charger.wait_for(lambda: (charger.status()["session"] or {}).get("energy_Wh", 0) > 200, timeout_s=10,
                               what="energy")
        charger.sim().apply("unplug")
        done = await settled(charger, "captured")
        await charger.app.flush_store()
        [record] = await charger.store.recent_sessions(1)
        priced = await charger.store.session_pricing(record.session_id)
        assert priced is not None and priced.cost is not None and priced.cost > Decimal("1.00")
    assert done.session_id == record.session_id and record.payment_method == "card"
    assert done.captured == priced.cost and done.released == Decimal("25.00") - priced.cost
    assert done.card_last4 is not None and len(done.card_last4) == 4
    sim = terminal(charger)
    assert sim.open_pre_authorisations() == []  # nothing left reserved on the card
    assert [e.amount_minor for e in sim.entries("capture")] == [int(priced.cost * 100)]


async def test_a_declined_card_starts_nothing_and_the_next_card_is_asked_for(tmp_path: Path) -> None:
    async with running_charger(card_config(tmp_path)) as charger:
        charger.sim().apply("plug")
        terminal(charger).present_card(CARD, Outcome.Decline)
        await settled(charger, "declined")
        assert charger.status()["session"] is None
        terminal(charger).present_card("CARD-TOKEN-0002")
        await charger.wait_for(lambda: charger.status()["session"] is not None, timeout_s=10, what="the session")


async def test_a_partial_approval_caps_the_session_at_what_was_approved(tmp_path: Path) -> None:
    async with running_charger(card_config(tmp_path)) as charger:
        charger.sim().apply("plug")
        terminal(charger).present_card(CARD, Outcome.Partial, partial_amount=Decimal("1.20"))
        await charger.wait_for(lambda: charger.status()["session"] is not None, timeout_s=10, what="the session")
        assert charger.status()["session"]["preauthorized"] == "1.20 EUR"
        assert charger.status()["session"]["limits"]["max_cost"] == "1.20"
        charger.sim().apply("charge")
        # The fixed fee is 1.00, the energy 0.50 per kWh: the cost limit stops the session soon.
        await charger.wait_for(lambda: charger.status()["session"] is None, timeout_s=30, what="the cost limit")
        done = await settled(charger, "captured")
    assert done.captured is not None and done.captured <= Decimal("1.20")


async def test_an_rfid_card_instead_releases_the_terminal_and_a_session_without_energy_releases_all(
    tmp_path: Path,
) -> None:
    async with running_charger(card_config(tmp_path)) as charger:
        charger.sim().apply("plug")
        await asyncio.sleep(0.3)  # the terminal waits for a card ...
        charger.sim().apply("tap", "RFID-1")  # ... but the driver uses the RFID card
        await charger.wait_for(lambda: charger.status()["session"] is not None, what="the RFID session")
        assert charger.status()["session"]["payment_method"] == "rfid"
        charger.sim().apply("unplug")
        await charger.wait_for(lambda: charger.status()["status"] == "Available", what="free")
        charger.sim().apply("plug")
        terminal(charger).present_card(CARD)
        await charger.wait_for(lambda: charger.status()["session"] is not None, timeout_s=10, what="the card session")
        charger.sim().apply("unplug")  # no energy drawn: what it costs (a fee, or nothing) is what is captured
        done = await settled_any(charger, ("captured", "cancelled"))
        await charger.app.flush_store()
        record = next(s for s in await charger.store.recent_sessions(5) if s.payment_method == "card")
        priced = await charger.store.session_pricing(record.session_id)
    assert priced is not None and priced.cost is not None
    assert (done.captured or Decimal(0)) == priced.cost and done.released == Decimal("25.00") - priced.cost
    assert terminal(charger).open_pre_authorisations() == []


async def test_a_capture_above_the_pre_authorisation_is_refused_and_a_security_event(tmp_path: Path) -> None:
    from chargepoint.ports.events import ChargerEvent, SecurityEvent

    seen: list[ChargerEvent] = []

    class Listener:
        def charger_event(self, event: ChargerEvent) -> None:
            seen.append(event)

    async with running_charger(card_config(tmp_path), Listener()) as charger:
        cards = charger.app.cards
        assert cards is not None
        payment = await charger.store.payment_begin(1, Decimal("25.00"), "EUR")
        await charger.store.payment_step(payment.payment_id, "preauthorized", preauthorized=Decimal("10.00"))
        await cards._logged(charger.store.payment_step(payment.payment_id, "capture_requested",
                                                       captured=Decimal("10.01")))
        assert (await charger.store.payment(payment.payment_id)).state == "preauthorized"  # nothing captured
    refused = [e for e in seen if isinstance(e, SecurityEvent) and e.kind == "PaymentStepRefused"]
    assert len(refused) == 1 and "above its pre-authorisation" in refused[0].detail


async def test_a_terminal_that_is_offline_starts_nothing_and_a_card_works_once_it_is_back(tmp_path: Path) -> None:
    async with running_charger(card_config(tmp_path)) as charger:
        sim = terminal(charger)
        await sim.start()
        await sim.go_offline()
        charger.sim().apply("plug")
        await settled(charger, "failed")  # the terminal could not be reached: journaled, nothing reserved
        assert charger.status()["session"] is None
        await sim.go_online()
        charger.sim().apply("unplug")
        await charger.wait_for(lambda: charger.status()["status"] == "Available", what="free")
        charger.sim().apply("plug")
        sim.present_card(CARD)
        await charger.wait_for(lambda: charger.status()["session"] is not None, timeout_s=10, what="the session")
        assert charger.status()["session"]["payment_method"] == "card"


async def test_a_card_the_terminal_times_out_on_reserves_nothing_and_is_asked_for_again(tmp_path: Path) -> None:
    async with running_charger(card_config(tmp_path)) as charger:
        charger.sim().apply("plug")
        terminal(charger).present_card(CARD, Outcome.Timeout)  # the terminal never answers this one ...
        await asyncio.sleep(0.5)
        terminal(charger).present_card("CARD-TOKEN-0003")  # ... the next card goes through once it gives up
        await charger.wait_for(lambda: charger.status()["session"] is not None, timeout_s=30, what="the session")
        states = [p.state for p in await payments(charger)]
    assert states.count("preauthorized") == 1 and terminal(charger).open_pre_authorisations() != []


async def test_end_of_day_settles_at_the_terminal_and_is_recorded_in_the_ledger(tmp_path: Path) -> None:
    async with running_charger(card_config(tmp_path)) as charger:
        charger.sim().apply("plug")
        terminal(charger).present_card(CARD)
        await charger.wait_for(lambda: charger.status()["session"] is not None, timeout_s=10, what="the session")
        charger.sim().apply("unplug")
        done = await settled_any(charger, ("captured", "cancelled"))
        cards = charger.app.cards
        assert cards is not None
        await cards.end_of_day()
        [record] = [r for r in await charger.store.ledger() if r.kind == "end_of_day"]
    assert record.body["result"] == "EndOfDay" and Decimal(record.body["total"]) == (done.captured or Decimal(0))
    assert len(terminal(charger).entries("end-of-day")) == 1


def test_the_end_of_day_is_due_at_its_local_time() -> None:
    from datetime import UTC, datetime, time

    from chargepoint.runtime.card_payment import CardPayments, CardSettings

    settings = CardSettings(Decimal("50"), "EUR", end_of_day_at=time(3, 0), time_zone="Europe/Berlin")
    cards = CardPayments.__new__(CardPayments)
    cards.settings = settings
    # 01:30 UTC on a winter day is 02:30 in Berlin: due in 30 minutes; at 02:30 UTC (03:30 local) in 23.5 hours.
    assert cards._next_end_of_day_s(datetime(2026, 12, 5, 1, 30, tzinfo=UTC)) == 30 * 60
    assert cards._next_end_of_day_s(datetime(2026, 12, 5, 2, 30, tzinfo=UTC)) == 23.5 * 3600
