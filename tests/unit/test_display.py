"""The Display port: the simulated screen keeps state and history, the log display stands in on boards without one."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from chargepoint.composition.devices import create_hardware
from hal.drivers.log_display import LogDisplay, framed
from hal.errors import HalError
from hal.protocols import Display, DisplayKind, DisplayMessage
from simulators.display import SimDisplay
from simulators.station import SimConnector, SimParameters
from tests.unit import test_rpi_registry

# The stand-in gpiod board of the rpi registry tests, to build the rpi backend on CI.
fake_board = test_rpi_registry.fake_board

PRICE = DisplayMessage(DisplayKind.price, ("Energy 0.39 EUR/kWh",))
RUNNING = DisplayMessage(DisplayKind.running, ("12.35 kWh  1:05 h", "Cost 4.57 EUR"))
RECEIPT = DisplayMessage(DisplayKind.receipt, ("Total 4.57 EUR",), qr_code_text="https://pay.example/r/42")


def test_both_backends_implement_the_port() -> None:
    assert isinstance(SimDisplay(1), Display)
    assert isinstance(LogDisplay(1), Display)


async def test_sim_display_starts_blank_and_shows_the_latest_message() -> None:
    display = SimDisplay(1)
    assert display.shown() is None
    before_s = time.monotonic()
    await display.show(PRICE)
    await display.show(RUNNING)
    assert display.shown() == RUNNING
    assert [message for _, message in display.history] == [PRICE, RUNNING]
    stamps = [at_s for at_s, _ in display.history]
    assert before_s <= stamps[0] <= stamps[1] <= time.monotonic()


async def test_sim_display_aclose_blanks_and_refuses_further_content() -> None:
    display = SimDisplay(1)
    await display.show(PRICE)
    await display.aclose()
    await display.aclose()  # idempotent: the station closes it again after the hardware did
    assert display.shown() is None
    assert display.closed
    with pytest.raises(HalError, match="closed"):
        await display.show(RUNNING)
    assert len(display.history) == 1


async def test_a_failing_panel_raises_hal_error_and_keeps_what_it_showed() -> None:
    display = SimDisplay(2)
    await display.show(PRICE)
    display.set_failing(True)
    with pytest.raises(HalError, match="display 2"):
        await display.show(RUNNING)
    assert display.shown() == PRICE
    display.set_failing(False)
    await display.show(RUNNING)
    assert display.shown() == RUNNING


async def test_long_content_is_cut_by_the_panel_never_refused() -> None:
    display = SimDisplay(1, columns=10, rows=2)
    await display.show(DisplayMessage(DisplayKind.info, ("a line far too long for it", "two", "three")))
    shown = display.shown()
    assert shown is not None
    assert shown.lines == ("a line far", "two")
    assert display.history[-1][1] == shown


async def test_wait_for_returns_the_current_message_when_it_matches() -> None:
    display = SimDisplay(1)
    await display.show(PRICE)
    assert await display.wait_for(lambda m: m.kind is DisplayKind.price) == PRICE


async def test_wait_for_sees_a_message_that_was_replaced_before_it_looked() -> None:
    display = SimDisplay(1)

    async def session() -> None:
        await asyncio.sleep(0)
        await display.show(RUNNING)
        await display.show(RECEIPT)  # replaces RUNNING before the waiter runs again

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(session())
        assert await display.wait_for(lambda m: m.kind is DisplayKind.running) == RUNNING
    assert display.shown() == RECEIPT


async def test_wait_for_times_out_naming_what_was_shown() -> None:
    display = SimDisplay(1)
    await display.show(PRICE)
    with pytest.raises(TimeoutError, match="shown so far: price"):
        await display.wait_for(lambda m: m.kind is DisplayKind.receipt, timeout_s=0.01)


async def test_sim_display_logs_a_framed_block(caplog: pytest.LogCaptureFixture) -> None:
    display = SimDisplay(1)
    with caplog.at_level(logging.INFO, logger="simulators.display"):
        await display.show(PRICE)
    records = [r for r in caplog.records if r.name == "simulators.display"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert records[0].getMessage() == (
        "display 1 ┌ price ─────────────\n"
        "display 1 │ Energy 0.39 EUR/kWh\n"
        "display 1 └────────────────────"
    )


def test_frame_grows_with_its_lines_and_shows_language_and_qr_code() -> None:
    message = DisplayMessage(DisplayKind.receipt, ("Gesamt 4,57 EUR", "a\tb\x1b[2J"), "de", "https://x.example/1")
    assert framed(message, "display 3").splitlines() == [
        "display 3 ┌ receipt · de ───────────",
        "display 3 │ Gesamt 4,57 EUR",
        "display 3 │ a b [2J",  # control characters cannot reach the log or the terminal
        "display 3 │ [QR] https://x.example/1",
        "display 3 └" + "─" * 25,  # as wide as the longest line plus its margin
    ]


async def test_log_display_keeps_the_contract_and_writes_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    display = LogDisplay(1)
    assert display.shown() is None
    with caplog.at_level(logging.INFO, logger="hal.drivers.log_display"):
        await display.show(RECEIPT)
        assert display.shown() == RECEIPT
        await display.aclose()
    assert display.shown() is None
    messages = [r.getMessage() for r in caplog.records if r.name == "hal.drivers.log_display"]
    assert messages == [framed(RECEIPT, "display 1"), "display 1 (blank)"]
    with pytest.raises(HalError):
        await display.show(PRICE)


async def test_sim_connector_exposes_its_display_read_only() -> None:
    connector = SimConnector(2, SimParameters())
    assert isinstance(connector.display, SimDisplay)
    assert connector.display.connector_id == 2
    with pytest.raises(AttributeError):
        connector.display = SimDisplay(2)  # type: ignore[misc]
    await connector.display.show(PRICE)
    assert "display" not in connector.snapshot()  # the snapshot's shape is unchanged
    await connector.aclose()
    assert connector.display.shown() is None


async def test_registry_wires_each_sim_connector_to_its_display() -> None:
    hardware = create_hardware("sim", 2, {})
    assert hardware.station is not None
    for hw, sim in zip(hardware.connectors, hardware.station.connectors, strict=True):
        assert isinstance(hw.display, Display)
        assert hw.display is sim.display
    await hardware.connectors[0].display.show(PRICE)
    await hardware.aclose()
    assert all(hw.display.shown() is None for hw in hardware.connectors)


async def test_registry_gives_the_rpi_board_a_log_display(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    board: test_rpi_registry.FakeBoard = request.getfixturevalue("fake_board")
    hardware = create_hardware("rpi", 1, {}, board.table(tmp_path))
    display = hardware.connectors[0].display
    assert isinstance(display, LogDisplay)
    await display.show(PRICE)
    await hardware.aclose()
    assert display.shown() is None
