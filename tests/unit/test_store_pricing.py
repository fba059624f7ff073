"""Pricing rows in the store, on real SQLite files: a session's cost and its prepaid debit commit together."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from chargepoint.store import PricingStart, PricingUpdate, Store

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "chargepoint.db")
    yield opened
    await opened.close()


def _start(prepaid: str | None = None) -> PricingStart:
    return PricingStart("adhoc", json.dumps({"tariff_id": "adhoc"}), "fleet", "EUR",
                        json.dumps({"max_cost": "5.00"}), prepaid)


def _update(cost: str) -> PricingUpdate:
    return PricingUpdate(json.dumps({"state": cost}), json.dumps({"total_incl_tax": cost}), Decimal(cost))


async def test_tariff_is_stored_with_the_session_and_cost_follows_the_meter(store: Store) -> None:
    record = await store.begin_session(1, "CARD", 1000, T0, pricing=_start())
    await store.record_meter(record.session_id, 2000, T0 + timedelta(minutes=5), pricing=_update("0.39"))

    row = await store.session_pricing(record.session_id)
    assert row is not None
    assert (row.tariff_id, row.package, row.currency, row.cost, row.final) == ("adhoc", "fleet", "EUR",
                                                                                 Decimal("0.39"), False)
    assert row.limits == {"max_cost": "5.00"}

    await store.end_session(record.session_id, 3000, T0 + timedelta(minutes=10), "Local", pricing=_update("0.78"))
    row = await store.session_pricing(record.session_id)
    assert row is not None and row.final and row.cost == Decimal("0.78")
    # A late meter sample cannot change a final cost.
    await store.record_meter(record.session_id, 9000, T0 + timedelta(minutes=11), pricing=_update("9.99"))
    row = await store.session_pricing(record.session_id)
    assert row is not None and row.cost == Decimal("0.78")


async def test_prepaid_balance_is_debited_once_when_the_session_ends(store: Store) -> None:
    await store.prepaid_set("PREPAID1", Decimal("10.00"), "EUR")
    record = await store.begin_session(1, "PREPAID1", 0, T0, pricing=_start("PREPAID1"))
    await store.end_session(record.session_id, 5000, T0 + timedelta(hours=1), "Local", pricing=_update("3.25"))
    # A retried end (crash before the answer) must not debit twice.
    await store.end_session(record.session_id, 5000, T0 + timedelta(hours=1), "Local", pricing=_update("3.25"))

    account = await store.prepaid_account("PREPAID1")
    assert account is not None and account.balance == Decimal("6.75")


async def test_recovery_after_a_crash_makes_the_persisted_cost_final_and_debits_it(tmp_path: Path) -> None:
    path = tmp_path / "chargepoint.db"
    store = await Store.open(path)
    await store.prepaid_set("PREPAID1", Decimal("10.00"), "EUR")
    record = await store.begin_session(1, "PREPAID1", 0, T0, pricing=_start("PREPAID1"))
    await store.record_meter(record.session_id, 4000, T0 + timedelta(minutes=30), pricing=_update("1.50"))
    await store.close()  # the process dies here: the session was never ended

    store = await Store.open(path)
    try:
        recovered = await store.recover_open_sessions("PowerLoss")
        assert [r.session_id for r in recovered] == [record.session_id]
        row = await store.session_pricing(record.session_id)
        assert row is not None and row.final and row.cost == Decimal("1.50")
        account = await store.prepaid_account("PREPAID1")
        assert account is not None and account.balance == Decimal("8.50")
    finally:
        await store.close()


async def test_csms_final_cost_is_not_replaced_by_a_late_running_cost(store: Store) -> None:
    record = await store.begin_session(1, "CARD", 0, T0, pricing=_start())
    await store.set_csms_cost(record.session_id, Decimal("1.10"), False, "running")
    await store.set_csms_cost(record.session_id, Decimal("2.00"), True, "final")
    await store.set_csms_cost(record.session_id, Decimal("1.20"), False, "late running")

    row = await store.session_pricing(record.session_id)
    assert row is not None
    assert (row.csms_cost, row.csms_final, row.csms_text) == (Decimal("2.00"), True, "final")
    assert row.shown_cost == Decimal("2.00")


async def test_sessions_with_pricing_pairs_each_session_with_its_row(store: Store) -> None:
    priced = await store.begin_session(1, "A", 0, T0, pricing=_start())
    unpriced = await store.begin_session(2, "B", 0, T0 + timedelta(seconds=1))

    rows = await store.sessions_with_pricing(10)

    assert [(r.session_id, p is not None) for r, p in rows] == [(unpriced.session_id, False),
                                                                (priced.session_id, True)]


async def test_prepaid_top_ups_are_kept_in_the_ledger(store: Store, tmp_path: Path) -> None:
    await store.prepaid_set("CARD", Decimal("5"), "EUR", "set")
    await store.prepaid_set("CARD", Decimal("12.50"), "EUR", "top-up")

    accounts = await store.prepaid_accounts()
    assert [(a.id_tag, a.balance) for a in accounts] == [("CARD", Decimal("12.50"))]
    await store.close()
    import sqlite3

    conn = sqlite3.connect(tmp_path / "chargepoint.db")
    ledger = conn.execute("SELECT amount, balance_after, note FROM prepaid_ledger ORDER BY seq").fetchall()
    conn.close()
    assert ledger == [("5", "5", "set"), ("7.50", "12.50", "top-up")]


async def test_user_prices_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "chargepoint.db"
    store = await Store.open(path)
    await store.user_price_put("CARD", '{"idToken": "CARD", "priceText": "0.30/kWh"}')
    await store.close()
    store = await Store.open(path)
    try:
        assert await store.user_prices() == {"CARD": '{"idToken": "CARD", "priceText": "0.30/kWh"}'}
    finally:
        await store.close()
