"""The payment journal (issue 14 point 4): steps in order, never a capture above the pre-authorisation, every step
in the ledger, open payments found after a restart."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from chargepoint.store import PaymentRefused, Store


async def test_a_payment_goes_through_its_steps_and_each_is_in_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    async with await Store.open(path) as store:
        p = await store.payment_begin(1, Decimal("50.00"), "EUR")
        assert p.state == "preauth_requested"
        await store.payment_step(p.payment_id, "preauthorized", preauthorized=Decimal("50.00"), receipt_no=17,
                                 card_last4="4242", card_scheme="Visa")
        assert [x.payment_id for x in await store.payments(open_only=True)] == [p.payment_id]
        await store.payment_step(p.payment_id, "capture_requested", captured=Decimal("12.34"))
    async with await Store.open(path) as store:  # a restart finds what is still open, and where it stood
        [open_payment] = await store.payments(open_only=True)
        assert open_payment.state == "capture_requested" and open_payment.receipt_no == 17
        done = await store.payment_step(p.payment_id, "captured", released=Decimal("37.66"))
        assert (done.captured, done.released) == (Decimal("12.34"), Decimal("37.66"))
        assert await store.payments(open_only=True) == []
        kinds = [(r.kind, r.body["state"]) for r in await store.ledger()]
    assert kinds == [("payment", "preauth_requested"), ("payment", "preauthorized"),
                     ("payment", "capture_requested"), ("payment", "captured")]


async def test_a_capture_above_the_pre_authorisation_or_a_skipped_step_is_refused(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "c.db") as store:
        p = await store.payment_begin(1, Decimal("20.00"), "EUR")
        with pytest.raises(PaymentRefused, match="not a step"):
            await store.payment_step(p.payment_id, "captured", captured=Decimal("1.00"))
        await store.payment_step(p.payment_id, "preauthorized", preauthorized=Decimal("15.00"))  # partial approval
        with pytest.raises(PaymentRefused, match="above its pre-authorisation"):
            await store.payment_step(p.payment_id, "capture_requested", captured=Decimal("15.01"))
        ok = await store.payment_step(p.payment_id, "capture_requested", captured=Decimal("15.00"))
        assert ok.captured == Decimal("15.00")
        with pytest.raises(PaymentRefused):
            await store.payment_step(p.payment_id, "preauth_requested")
