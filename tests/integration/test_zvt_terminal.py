"""The real ZVT driver against the ZVT terminal simulator over TCP on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from hal.drivers.zvt import ZvtSettings, ZvtTerminal
from hal.payment import (
    Approved,
    Declined,
    EndOfDay,
    Money,
    PaymentTerminal,
    TerminalStatus,
    TerminalUnavailable,
    TimedOut,
    TransactionState,
)
from simulators.zvt_terminal import ZvtTerminalSimulator

PAN = "4111111111111111"
UID = "04A1B2C3D4E5F6"


def eur(text: str) -> Money:
    return Money(Decimal(text))


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[ZvtTerminalSimulator]:
    simulator = ZvtTerminalSimulator("127.0.0.1", 0, card_timeout_s=0.6, state_file=tmp_path / "terminal.json")
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def terminal(sim: ZvtTerminalSimulator) -> AsyncIterator[ZvtTerminal]:
    driver = ZvtTerminal(ZvtSettings("127.0.0.1", sim.port, timeout_s=2.0, ack_timeout_s=0.5, connect_timeout_s=1))
    yield driver
    await driver.aclose()


async def approved(terminal: ZvtTerminal, amount: str) -> Approved:
    result = await terminal.pre_authorize(eur(amount))
    assert isinstance(result, Approved), result
    return result


async def test_the_driver_is_a_payment_terminal(terminal: ZvtTerminal) -> None:
    assert isinstance(terminal, PaymentTerminal)


async def test_pre_authorise_capture_less_releases_the_rest(sim: ZvtTerminalSimulator, terminal: ZvtTerminal) -> None:
    sim.present_card(UID)
    auth = await approved(terminal, "25.00")
    assert auth.amount == eur("25.00") and not auth.partial
    assert auth.card.last4 == "1111" and auth.card.token == UID and auth.card.scheme == "Visa"
    assert sim.registered
    assert [p.receipt_no for p in sim.open_pre_authorisations()] == [auth.reference.receipt_no]
    capture = await terminal.capture(auth.reference, eur("12.95"))
    assert isinstance(capture, Approved) and capture.amount == eur("12.95")
    pre = sim.pre_authorisations[auth.reference.receipt_no]
    assert (pre.state, pre.captured_minor, pre.released_minor) == ("captured", 1295, 1205)
    assert sim.open_pre_authorisations() == []


async def test_decline_carries_the_result_code_and_reserves_nothing(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal
) -> None:
    sim.present_card(UID, "decline", decline_code=0x05)
    result = await terminal.pre_authorize(eur("25.00"))
    assert isinstance(result, Declined)
    assert result.result_code == 0x05 and "issuer" in result.reason and "Abgelehnt" in result.reason
    assert result.card is not None and result.card.last4 == "1111"
    assert sim.open_pre_authorisations() == [] and len(sim.entries("declined")) == 1


async def test_partial_approval_approves_less(sim: ZvtTerminalSimulator, terminal: ZvtTerminal) -> None:
    sim.present_card(UID, "partial", partial_amount=Decimal("10.00"))
    auth = await approved(terminal, "25.00")
    assert auth.partial and auth.amount == eur("10.00") and auth.requested == eur("25.00")
    refused = await terminal.capture(auth.reference, eur("10.01"))
    assert isinstance(refused, Declined) and refused.result_code == 0xB7


async def test_no_card_is_a_timeout_the_terminal_confirms(sim: ZvtTerminalSimulator, terminal: ZvtTerminal) -> None:
    result = await terminal.pre_authorize(eur("25.00"), timeout_s=0.3)  # our deadline before the terminal's
    assert isinstance(result, TimedOut) and result.result_code == 0x6C and not result.in_doubt
    assert sim.pre_authorisations == {}
    status = await terminal.status()  # the link is still good after the abort
    assert isinstance(status, TerminalStatus) and status.ready


async def test_a_terminal_that_never_completes_is_a_timeout_in_doubt(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal
) -> None:
    sim.present_card(UID, "timeout")
    result = await terminal.pre_authorize(eur("25.00"), timeout_s=0.8)
    assert isinstance(result, TimedOut) and result.in_doubt


async def test_an_offline_terminal_is_unavailable_and_comes_back(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal
) -> None:
    assert isinstance(await terminal.status(), TerminalStatus)
    await sim.go_offline()
    result = await terminal.pre_authorize(eur("25.00"))
    assert isinstance(result, TerminalUnavailable) and not result.in_doubt
    assert "127.0.0.1" in result.detail
    await sim.go_online()
    status = await terminal.status()
    assert isinstance(status, TerminalStatus) and status.ready and status.software_version


async def test_restart_mid_transaction_is_reconciled(sim: ZvtTerminalSimulator, terminal: ZvtTerminal) -> None:
    sim.present_card(UID, "restart")
    result = await terminal.pre_authorize(eur("30.00"))
    assert isinstance(result, TerminalUnavailable) and result.in_doubt
    last = await terminal.last_transaction()
    assert last.state is TransactionState.PreAuthorized and last.reference is not None
    assert last.amount == eur("30.00") and last.card is not None and last.card.token == UID
    status = await terminal.transaction_status(last.reference)
    assert status.state is TransactionState.PreAuthorized
    cancelled = await terminal.cancel(last.reference)
    assert isinstance(cancelled, Approved)
    assert sim.pre_authorisations[last.reference.receipt_no].state == "cancelled"
    after = await terminal.transaction_status(last.reference)
    assert after.state is not TransactionState.PreAuthorized
    assert (await terminal.last_transaction()).state is TransactionState.Cancelled


async def test_the_books_survive_a_restart_of_the_simulator(tmp_path: Path) -> None:
    first = ZvtTerminalSimulator(state_file=tmp_path / "books.json")
    await first.start()
    driver = ZvtTerminal(ZvtSettings("127.0.0.1", first.port, timeout_s=2.0, ack_timeout_s=0.5))
    try:
        first.present_card(UID)
        auth = await approved(driver, "20.00")
    finally:
        await driver.aclose()
        await first.stop()
    second = ZvtTerminalSimulator(state_file=tmp_path / "books.json")
    await second.start()
    driver = ZvtTerminal(ZvtSettings("127.0.0.1", second.port, timeout_s=2.0, ack_timeout_s=0.5))
    try:
        status = await driver.transaction_status(auth.reference)
        assert status.state is TransactionState.PreAuthorized
        assert isinstance(await driver.capture(auth.reference, eur("20.00")), Approved)
    finally:
        await driver.aclose()
        await second.stop()


async def test_capture_above_the_pre_authorisation_is_refused(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal
) -> None:
    sim.present_card(UID)
    auth = await approved(terminal, "25.00")
    result = await terminal.capture(auth.reference, eur("25.01"))
    assert isinstance(result, Declined) and result.result_code == 0xB7
    assert sim.pre_authorisations[auth.reference.receipt_no].state == "open"
    assert sim.entries("capture") == []


async def test_a_double_capture_is_refused_and_detectable(sim: ZvtTerminalSimulator, terminal: ZvtTerminal) -> None:
    sim.present_card(UID)
    auth = await approved(terminal, "25.00")
    assert isinstance(await terminal.capture(auth.reference, eur("5.00")), Approved)
    second = await terminal.capture(auth.reference, eur("5.00"))
    assert isinstance(second, Declined) and second.result_code == 0xB8
    assert len(sim.entries("capture")) == 1 and len(sim.entries("capture-refused")) == 1
    assert (await terminal.transaction_status(auth.reference)).state is not TransactionState.PreAuthorized


async def test_capture_with_partial_reversal_as_feig_terminals_book(sim: ZvtTerminalSimulator) -> None:
    driver = ZvtTerminal(ZvtSettings("127.0.0.1", sim.port, timeout_s=2.0, capture_command="partial-reversal"))
    try:
        sim.present_card(UID)
        auth = await approved(driver, "25.00")
        assert isinstance(await driver.capture(auth.reference, eur("7.50")), Approved)
        assert sim.pre_authorisations[auth.reference.receipt_no].captured_minor == 750
    finally:
        await driver.aclose()


async def test_cancel_releases_everything_and_cannot_repeat(sim: ZvtTerminalSimulator, terminal: ZvtTerminal) -> None:
    sim.present_card(UID)
    auth = await approved(terminal, "25.00")
    assert isinstance(await terminal.cancel(auth.reference), Approved)
    assert sim.pre_authorisations[auth.reference.receipt_no].released_minor == 2500
    again = await terminal.cancel(auth.reference)
    assert isinstance(again, Declined) and again.result_code == 0xB8
    late = await terminal.capture(auth.reference, eur("1.00"))
    assert isinstance(late, Declined)


async def test_end_of_day_totals_the_bookings(sim: ZvtTerminalSimulator, terminal: ZvtTerminal) -> None:
    for amount, booked in (("25.00", "12.95"), ("40.00", "30.05")):
        sim.present_card(UID)
        auth = await approved(terminal, amount)
        assert isinstance(await terminal.capture(auth.reference, eur(booked)), Approved)
    sim.present_card(UID)
    await approved(terminal, "10.00")  # open, not booked: not in the totals
    day = await terminal.end_of_day()
    assert isinstance(day, EndOfDay) and day.total == eur("43.00") and day.terminal_id == sim.terminal_id
    assert day.receipt
    nothing = await terminal.end_of_day()
    assert isinstance(nothing, EndOfDay) and nothing.total == eur("0.00")


async def test_wrong_password_is_unavailable(sim: ZvtTerminalSimulator) -> None:
    driver = ZvtTerminal(ZvtSettings("127.0.0.1", sim.port, password="123456", timeout_s=1.0))
    try:
        result = await driver.status()
        assert isinstance(result, TerminalUnavailable) and "registration" in result.detail
    finally:
        await driver.aclose()


async def test_misuse_raises(terminal: ZvtTerminal) -> None:
    with pytest.raises(ValueError):
        await terminal.pre_authorize(eur("0.00"))
    with pytest.raises(ValueError):
        await terminal.pre_authorize(Money(Decimal("5.00"), "CHF"))


async def test_no_full_pan_anywhere(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.present_card(UID, pan=PAN, masked_by_terminal=False)  # a terminal that breaks the rules
    auth = await approved(terminal, "25.00")
    sim.present_card(UID, "decline", pan=PAN, masked_by_terminal=False)
    declined = await terminal.pre_authorize(eur("25.00"))
    last = await terminal.last_transaction()
    capture = await terminal.capture(auth.reference, eur("1.00"))
    everything = " ".join(repr(x) for x in (auth, declined, last, capture)) + caplog.text
    assert auth.card.last4 == PAN[-4:]
    assert PAN not in everything and PAN[:12] not in everything and PAN[:6] not in everything
    assert caplog.text  # the driver did log the transactions


async def test_the_sim_backend_has_a_simulated_terminal_unless_configured_off(tmp_path: Path) -> None:
    from chargepoint.composition.devices import create_hardware_for, matches, payment_simulator_of
    from chargepoint.config.schema import Config

    config = Config.model_validate({"storage": {"dir": str(tmp_path)}})
    hardware = create_hardware_for(config)
    try:
        assert isinstance(hardware.payment, PaymentTerminal) and matches(hardware, config)
        simulator = payment_simulator_of(hardware)
        assert simulator is not None
        simulator.present_card(UID)
        auth = await hardware.payment.pre_authorize(eur("9.99"))
        assert isinstance(auth, Approved) and simulator.open_pre_authorisations()
    finally:
        await hardware.aclose()
    assert not simulator.online  # closing the hardware stopped the terminal's server
    off = Config.model_validate({"hardware": {"payment": {"backend": "none"}}})
    hardware = create_hardware_for(off)
    try:
        assert hardware.payment is None and payment_simulator_of(hardware) is None
    finally:
        await hardware.aclose()
    real = Config.model_validate({"hardware": {"payment": {"backend": "zvt", "host": "127.0.0.1", "port": 1}}})
    hardware = create_hardware_for(real)
    try:
        assert isinstance(hardware.payment, ZvtTerminal) and payment_simulator_of(hardware) is None
        result = await hardware.payment.status()  # nothing listens on port 1
        assert isinstance(result, TerminalUnavailable)
    finally:
        await hardware.aclose()


def test_payment_config_is_checked() -> None:
    from pydantic import ValidationError

    from chargepoint.config.schema import Config

    with pytest.raises(ValidationError, match="six digits"):
        Config.model_validate({"hardware": {"payment": {"password": "12345"}}})
    with pytest.raises(ValidationError, match="host"):
        Config.model_validate({"hardware": {"payment": {"backend": "zvt"}}})
    assert "654321" not in repr(Config.model_validate({"hardware": {"payment": {"password": "654321"}}}))
