"""The real ZVT driver against the ZVT terminal simulator over RS-232 framing on a pseudo-terminal.

The driver opens the pty's slave through a symlink, as it would open ``/dev/serial/by-id/...``, and sets the line
up with termios; the simulator's end speaks the same frames and plays a noisy or broken line on request.
"""

from __future__ import annotations

import asyncio
import os
import termios
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from chargepoint.composition.devices import create_payment_terminal
from chargepoint.config.schema import Config
from hal.drivers.zvt import ZvtSettings, ZvtTerminal
from hal.drivers.zvt_serial import LineStats, SerialLink
from hal.payment import Approved, Declined, Money, TerminalStatus, TerminalUnavailable
from simulators.zvt_lines import PtyPort, SimulatedLine
from simulators.zvt_terminal import SimulatedPaymentTerminal, ZvtTerminalSimulator

UID = "04A1B2C3D4E5F6"
FRAME_ACK_S = 0.5


def eur(text: str) -> Money:
    return Money(Decimal(text))


def settings(path: str, baudrate: int = 9600) -> ZvtSettings:
    return ZvtSettings("", transport="serial", serial_port=path, baudrate=baudrate, timeout_s=3.0, ack_timeout_s=1.0,
                       connect_timeout_s=1.0, frame_ack_timeout_s=FRAME_ACK_S)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[ZvtTerminalSimulator]:
    simulator = ZvtTerminalSimulator(card_timeout_s=5.0, state_file=tmp_path / "terminal.json")
    await simulator.serve_serial(tmp_path / "ttyZVT", ack_timeout_s=FRAME_ACK_S)
    yield simulator
    await simulator.stop()


@pytest.fixture
def device(tmp_path: Path) -> str:
    return str(tmp_path / "ttyZVT")


@pytest.fixture
async def terminal(sim: ZvtTerminalSimulator, device: str) -> AsyncIterator[ZvtTerminal]:
    driver = ZvtTerminal(settings(device))
    yield driver
    await driver.aclose()


def line_of(sim: ZvtTerminalSimulator) -> SimulatedLine:
    assert sim.serial_line is not None
    return sim.serial_line


def drivers_stats(driver: ZvtTerminal) -> LineStats:
    link = driver._link  # the driver's end of the line, for its counters
    assert isinstance(link, SerialLink) and link.line is not None
    return link.line.stats


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = 3.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline_s:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def approved(terminal: ZvtTerminal, amount: str) -> Approved:
    result = await terminal.pre_authorize(eur(amount))
    assert isinstance(result, Approved), result
    return result


async def test_registration_and_status_go_over_the_frames(sim: ZvtTerminalSimulator, terminal: ZvtTerminal) -> None:
    status = await terminal.status()
    assert isinstance(status, TerminalStatus) and status.ready
    assert sim.registered
    # Registration and Status Enquiry, each answered by 80 00 00 and a completion, each acknowledged: all framed.
    assert line_of(sim).stats.frames_received == 4 and line_of(sim).stats.frames_sent == 4
    stats = drivers_stats(terminal)
    assert (stats.retransmissions, stats.naks_sent, stats.naks_received) == (0, 0, 0)


async def test_a_presented_card_is_pre_authorised_and_captured(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal,
) -> None:
    sim.present_card(UID)
    auth = await approved(terminal, "25.00")
    assert auth.amount == eur("25.00") and auth.card.last4 == "1111" and auth.card.token == UID
    capture = await terminal.capture(auth.reference, eur("12.95"))
    assert isinstance(capture, Approved) and capture.amount == eur("12.95")
    pre = sim.pre_authorisations[auth.reference.receipt_no]
    assert (pre.state, pre.captured_minor, pre.released_minor) == ("captured", 1295, 1205)


async def test_a_declined_card_carries_its_result_code(sim: ZvtTerminalSimulator, terminal: ZvtTerminal) -> None:
    sim.present_card(UID, "decline", decline_code=0x05)
    result = await terminal.pre_authorize(eur("25.00"))
    assert isinstance(result, Declined) and result.result_code == 0x05
    assert sim.open_pre_authorisations() == [] and len(sim.entries("declined")) == 1


async def test_a_corrupted_frame_is_naked_and_resent_and_the_payment_completes_once(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal,
) -> None:
    await terminal.status()  # registered: what follows is the payment's own exchange
    sim.present_card(UID)
    line_of(sim).corrupt_next_frame(2)  # the terminal's 80 00 00 arrives broken twice; the third copy is good
    auth = await approved(terminal, "25.00")
    assert drivers_stats(terminal).naks_sent == 2
    assert (line_of(sim).stats.naks_received, line_of(sim).stats.retransmissions) == (2, 2)
    assert [e.receipt_no for e in sim.entries("pre-authorisation")] == [auth.reference.receipt_no]


async def test_a_command_the_terminal_naks_is_repeated_and_acted_on_once(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal,
) -> None:
    await terminal.status()
    sim.present_card(UID)
    line_of(sim).reject_next_frame()  # the Pre-Authorisation command "arrives with a bad CRC"
    auth = await approved(terminal, "25.00")
    stats = drivers_stats(terminal)
    assert (stats.naks_received, stats.retransmissions) == (1, 1)
    assert len(sim.entries("pre-authorisation")) == 1 and sim.open_pre_authorisations()[0].receipt_no == (
        auth.reference.receipt_no)


async def test_a_frame_that_gets_no_ack_is_sent_again_after_the_ack_timeout(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal,
) -> None:
    await terminal.status()
    sim.present_card(UID)
    line_of(sim).lose_next_frame()  # the command never arrives: no ACK, nothing happens
    await approved(terminal, "25.00")
    stats = drivers_stats(terminal)
    assert (stats.ack_timeouts, stats.retransmissions) == (1, 1)
    assert len(sim.entries("pre-authorisation")) == 1


async def test_a_lost_ack_after_which_the_terminal_answers_is_not_repeated(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal,
) -> None:
    await terminal.status()
    sim.present_card(UID)
    line_of(sim).withhold_next_ack()  # the command arrives, its ACK does not; the terminal goes on with 80 00 00
    await approved(terminal, "25.00")
    stats = drivers_stats(terminal)
    assert (stats.ack_timeouts, stats.retransmissions) == (1, 0)  # a repeat would be a second pre-authorisation
    assert len(sim.entries("pre-authorisation")) == 1 and line_of(sim).stats.duplicates_dropped == 0


async def test_a_terminal_that_acknowledges_nothing_is_unavailable_after_three_attempts(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal, device: str,
) -> None:
    line_of(sim).lose_next_frame(3)
    result = await terminal.status()
    assert isinstance(result, TerminalUnavailable)
    assert device in result.detail and "did not acknowledge a frame in 3 attempts" in result.detail
    assert not sim.registered
    assert isinstance(await terminal.status(), TerminalStatus)  # the line is fine again: the next request works


async def test_a_line_that_goes_away_is_unavailable_and_the_next_request_reconnects(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal, device: str,
) -> None:
    paying = asyncio.create_task(terminal.pre_authorize(eur("25.00")))
    await until(lambda: line_of(sim).stats.frames_received >= 4, "registration and the intermediate status")
    sim.drop_serial_line()
    result = await paying
    assert isinstance(result, TerminalUnavailable) and result.in_doubt and "went away" in result.detail

    unplugged = await terminal.status()
    assert isinstance(unplugged, TerminalUnavailable)
    assert unplugged.detail == f"cannot reach the terminal at {device}: No such file or directory"

    await sim.serve_serial()  # plugged in again, at the same path
    assert isinstance(await terminal.status(), TerminalStatus) and sim.registered
    assert sim.entries("pre-authorisation") == []


@pytest.mark.parametrize(("baudrate", "speed"), [(9600, termios.B9600), (115200, termios.B115200)])
async def test_the_driver_sets_the_line_to_8n2_raw_without_flow_control(
    sim: ZvtTerminalSimulator, device: str, baudrate: int, speed: int,
) -> None:
    driver = ZvtTerminal(settings(device, baudrate=baudrate))
    try:
        assert isinstance(await driver.status(), TerminalStatus)
        fd = os.open(device, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            iflag, oflag, cflag, lflag, ispeed, ospeed, _ = termios.tcgetattr(fd)
        finally:
            os.close(fd)
    finally:
        await driver.aclose()
    assert (ispeed, ospeed) == (speed, speed)
    assert cflag & termios.CSIZE == termios.CS8
    assert cflag & termios.CSTOPB  # two stop bits
    assert not cflag & (termios.PARENB | termios.CRTSCTS)  # no parity, no hardware flow control
    assert cflag & termios.CLOCAL and cflag & termios.CREAD
    assert not iflag & (termios.IXON | termios.IXOFF | termios.ICRNL | termios.ISTRIP)  # bytes pass untouched
    assert not lflag & (termios.ICANON | termios.ECHO | termios.ISIG) and not oflag & termios.OPOST


async def test_a_second_driver_cannot_share_an_open_line(
    sim: ZvtTerminalSimulator, terminal: ZvtTerminal, device: str,
) -> None:
    assert isinstance(await terminal.status(), TerminalStatus)
    other = ZvtTerminal(settings(device))
    try:
        result = await other.status()
    finally:
        await other.aclose()
    assert isinstance(result, TerminalUnavailable) and "in use by another process" in result.detail


async def test_a_repeated_frame_whose_ack_was_lost_is_passed_on_once(tmp_path: Path) -> None:
    port = PtyPort(tmp_path / "ttyLine", ack_timeout_s=FRAME_ACK_S)
    terminal_end = port.open()
    ecr = SerialLink(port.path, ack_timeout_s=FRAME_ACK_S)
    await ecr.open(1.0)
    try:
        terminal_end.withhold_next_ack()
        await ecr.send(b"\x80\x00\x00")  # no ACK and no answer: the ECR repeats it, and this time gets its ACK
        async with asyncio.timeout(1):
            assert await terminal_end.receive() == b"\x80\x00\x00"
        assert ecr.line is not None and ecr.line.stats.retransmissions == 1
        assert terminal_end.stats.duplicates_dropped == 1 and terminal_end.stats.frames_received == 1
    finally:
        await ecr.close()
        port.close()


async def test_the_configured_serial_terminal_is_built_with_its_port_and_speed(
    sim: ZvtTerminalSimulator, device: str,
) -> None:
    config = Config.model_validate({"hardware": {"payment": {
        "backend": "zvt", "transport": "serial", "serial_port": device, "baudrate": 19200, "timeout_s": 5,
        "host": "unused",  # schema.py still asks for a host with backend "zvt", whatever the transport
    }}})
    terminal = create_payment_terminal(config)
    assert isinstance(terminal, ZvtTerminal)
    try:
        assert isinstance(await terminal.status(), TerminalStatus) and sim.registered
        fd = os.open(device, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            assert termios.tcgetattr(fd)[5] == termios.B19200
        finally:
            os.close(fd)
    finally:
        await terminal.aclose()


async def test_the_sim_backend_can_run_its_terminal_on_a_serial_line() -> None:
    config = Config.model_validate({"hardware": {"payment": {"backend": "sim", "transport": "serial",
                                                             "timeout_s": 5}}})
    payment = create_payment_terminal(config)
    assert isinstance(payment, SimulatedPaymentTerminal)
    try:
        payment.simulator.present_card(UID)
        result = await payment.pre_authorize(eur("10.00"))
        assert isinstance(result, Approved)
        line = payment.simulator.serial_line
        assert line is not None and line.stats.frames_received >= 4  # it went over the frames, not TCP
        assert payment.simulator.port == 0  # no TCP server was started: start() binds a port
    finally:
        await payment.aclose()
