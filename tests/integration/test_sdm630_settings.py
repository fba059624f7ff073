"""The SDM630 driver's settings and what its errors say: the Modbus id range, the RTU defaults (9600 8N1, id 1,
1 s), the exception code a meter answers with, impossible or short answers, the serial line's settings as the kernel
holds them, and its logging (issue 13 point 11: mutants of these survived)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import pathlib
import termios
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from hal.drivers.sdm630 import Sdm630Meter
from hal.errors import HalTimeout, MeterError
from hal.protocols import MeterReading
from simulators.meter_server import MeterServer, MeterValues
from simulators.station import SimParameters, SimulatedStation

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
async def station() -> AsyncIterator[SimulatedStation]:
    station = SimulatedStation(SimParameters(ev_follow_s=0.05, contactor_feedback_delay_s=0.01))
    await station.start()
    try:
        yield station
    finally:
        await station.stop()


@pytest.mark.parametrize("device_id", [0, 248, -1])
def test_a_device_id_outside_modbus_1_to_247_is_refused(device_id: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.247"):
        Sdm630Meter.tcp("127.0.0.1", 502, device_id=device_id)
    with pytest.raises(ValueError, match=r"1\.\.247"):
        Sdm630Meter.rtu("/dev/ttyUSB0", device_id=device_id)


@pytest.mark.parametrize("device_id", [1, 247])
def test_the_first_and_last_modbus_ids_are_accepted(device_id: int) -> None:
    Sdm630Meter.tcp("127.0.0.1", 502, device_id=device_id)
    Sdm630Meter.rtu("/dev/ttyUSB0", device_id=device_id)


@pytest.mark.parametrize("timeout_s", [0.0, -1.0])
def test_a_timeout_that_is_not_positive_is_refused(timeout_s: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Sdm630Meter.tcp("127.0.0.1", 502, timeout_s=timeout_s)


async def test_an_rtu_meter_defaults_to_the_sdm630_factory_settings_9600_8n1_id_1(tmp_path: pathlib.Path) -> None:
    port = str(tmp_path / "ttyUSB9")
    meter = Sdm630Meter.rtu(port)
    try:
        with pytest.raises(MeterError) as raised:
            await meter.read()
    finally:
        await meter.aclose()
    assert f"rtu://{port}@9600N/1" in str(raised.value)  # errors name the line and the meter


async def test_an_rtu_meter_that_never_answers_times_out_after_the_default_second() -> None:
    master, slave = os.openpty()  # a line nobody answers on
    try:
        meter = Sdm630Meter.rtu(os.ttyname(slave))
        started = time.monotonic()
        try:
            with pytest.raises(HalTimeout, match="within 1 s"):
                await meter.read()
        finally:
            await meter.aclose()
        assert 0.9 <= time.monotonic() - started < 1.9
    finally:
        os.close(master)
        os.close(slave)


async def test_an_exception_response_names_the_meters_exception_code(station: SimulatedStation) -> None:
    host, port, device_id = station.connector(1).meter_endpoint
    meter = Sdm630Meter.tcp(host, port, device_id=device_id + 7, timeout_s=0.5)
    try:
        with pytest.raises(MeterError, match=r"exception response \(code \d+\)"):
            await meter.read()
    finally:
        await meter.aclose()


# --------------------------------------------------------------------------- what the meter answers (mutants, run 2)


def _values(energy_Wh: float = 1500.0, voltage_V: tuple[float, float, float] = (230.0, 231.0, 229.0),
            current_A: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> MeterValues:
    return MeterValues(voltage_V=voltage_V, current_A=current_A, energy_Wh_import=energy_Wh,
                       energy_Wh_import_per_phase=(energy_Wh / 3,) * 3, online=True)


@contextlib.asynccontextmanager
async def serving(values: MeterValues, host: str = "127.0.0.1") -> AsyncIterator[MeterServer]:
    """A simulated SDM630 (device id 1) that measures ``values``."""
    server = MeterServer(lambda: values, host=host)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def raw_gateway(answer: Callable[[bytes], bytes | None]) -> AsyncIterator[int]:
    """A Modbus TCP gateway on 127.0.0.1 that answers each request with ``answer(request PDU)`` (None: silence)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(7)  # MBAP: transaction, protocol, length, unit id
                pdu = await reader.readexactly(int.from_bytes(header[4:6], "big") - 1)
                reply = answer(pdu)
                if reply is not None:
                    writer.write(header[:4] + (len(reply) + 1).to_bytes(2, "big") + header[6:7] + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _read(meter: Sdm630Meter) -> MeterReading:
    try:
        return await meter.read()
    finally:
        await meter.aclose()


async def test_a_negative_import_register_is_refused_naming_the_meter_and_the_value() -> None:
    async with serving(_values(energy_Wh=-1500.0)) as server:
        with pytest.raises(MeterError) as raised:
            await _read(Sdm630Meter.tcp(server.host, server.port))  # default id: 1, as the meter's
    assert str(raised.value) == f"SDM630 tcp://127.0.0.1:{server.port}/1: impossible import energy -1.5 kWh"


async def test_a_meter_at_the_factory_id_is_read_with_the_default_id() -> None:
    async with serving(_values(energy_Wh=1500.0)) as server:
        reading = await _read(Sdm630Meter.tcp(server.host, server.port))
    assert reading.energy_Wh_import == 1500
    assert reading.voltage_V == pytest.approx((230.0, 231.0, 229.0))


async def test_a_non_finite_measurement_is_refused_naming_it() -> None:
    async with serving(_values(voltage_V=(230.0, math.nan, 229.0))) as server:
        with pytest.raises(MeterError) as raised:
            await _read(Sdm630Meter.tcp(server.host, server.port))
    message = str(raised.value)
    assert message.startswith(f"SDM630 tcp://127.0.0.1:{server.port}/1: non-finite value")
    assert "nan" in message


async def test_a_gateway_answering_too_few_registers_is_refused() -> None:
    # FC04 answered with one float (2 registers) instead of V L1 (0x0000) up to import kWh (0x0048, 2 registers).
    async with raw_gateway(lambda pdu: bytes([4, 4, 0x43, 0x66, 0, 0])) as port:
        with pytest.raises(MeterError) as raised:
            await _read(Sdm630Meter.tcp("127.0.0.1", port, timeout_s=0.5))
    assert str(raised.value) == f"SDM630 tcp://127.0.0.1:{port}/1: expected {0x0048 + 2} registers, got 2"


async def test_a_tcp_meter_that_never_answers_times_out_after_the_default_second() -> None:
    async with raw_gateway(lambda pdu: None) as port:
        meter = Sdm630Meter.tcp("127.0.0.1", port)
        started = time.monotonic()
        with pytest.raises(HalTimeout, match="within 1 s"):
            await _read(meter)
        assert 0.9 <= time.monotonic() - started < 1.9


async def test_connecting_is_logged_at_debug_naming_the_meter(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hal.drivers.modbus_link")
    async with serving(_values()) as server:
        await _read(Sdm630Meter.tcp(server.host, server.port))
    messages = [r.getMessage() for r in caplog.records if r.name == "hal.drivers.modbus_link"]
    assert f"connecting to SDM630 tcp://127.0.0.1:{server.port}/1" in messages


async def test_a_meter_on_another_loopback_address_is_read_there() -> None:
    try:
        context = serving(_values(energy_Wh=2500.0), host="127.0.0.2")
        server = await context.__aenter__()
    except OSError as exc:
        pytest.skip(f"127.0.0.2 is not usable here: {exc}")
    try:
        reading = await _read(Sdm630Meter.tcp("127.0.0.2", server.port))
    finally:
        await context.__aexit__(None, None, None)
    assert reading.energy_Wh_import == 2500


@pytest.fixture
def pymodbus_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("pymodbus")
    level = logger.level
    try:
        yield logger
    finally:
        logger.setLevel(level)


def test_pymodbus_chatter_is_kept_out_of_the_journal(pymodbus_logger: logging.Logger) -> None:
    pymodbus_logger.setLevel(logging.NOTSET)
    Sdm630Meter.tcp("127.0.0.1", 502)
    assert pymodbus_logger.level == logging.ERROR


def test_a_pymodbus_log_level_set_by_a_technician_is_kept(pymodbus_logger: logging.Logger) -> None:
    pymodbus_logger.setLevel(logging.DEBUG)
    Sdm630Meter.rtu("/dev/ttyUSB0")
    assert pymodbus_logger.level == logging.DEBUG


@pytest.mark.parametrize("parity", ["N", "E", "O"])
async def test_every_modbus_parity_is_accepted_and_named(parity: str, tmp_path: pathlib.Path) -> None:
    port = str(tmp_path / "ttyUSB9")  # no such line: the error names the settings
    with pytest.raises(MeterError) as raised:
        await _read(Sdm630Meter.rtu(port, baudrate=19200, parity=parity))
    assert f"rtu://{port}@19200{parity}/1" in str(raised.value)


@pytest.mark.parametrize("parity", ["X", "n", "o", ""])
def test_an_unknown_parity_is_refused(parity: str) -> None:
    with pytest.raises(ValueError, match="parity must be 'N', 'E' or 'O'"):
        Sdm630Meter.rtu("/dev/ttyUSB0", parity=parity)


async def test_the_serial_line_is_set_to_9600_8n1_by_default() -> None:
    master, slave = os.openpty()  # the driver opens the pty's slave end; the kernel keeps its line settings
    try:
        with pytest.raises(HalTimeout):
            await _read(Sdm630Meter.rtu(os.ttyname(slave), timeout_s=0.2))
        cflag, speed = termios.tcgetattr(slave)[2], termios.tcgetattr(slave)[5]
    finally:
        os.close(master)
        os.close(slave)
    assert speed == termios.B9600
    assert cflag & termios.CSIZE == termios.CS8
    assert not cflag & termios.PARENB  # no parity
    assert not cflag & termios.CSTOPB  # one stop bit


async def test_a_line_that_refuses_its_settings_is_a_meter_error() -> None:
    """A pty refuses parity, as a USB adapter may refuse a setting: a MeterError naming the line, not termios.error."""
    master, slave = os.openpty()
    try:
        line = os.ttyname(slave)
        with pytest.raises(MeterError) as raised:
            await _read(Sdm630Meter.rtu(line, parity="E", timeout_s=0.2))
    finally:
        os.close(master)
        os.close(slave)
    assert str(raised.value).startswith(f"SDM630 rtu://{line}@9600E/1: ")
    assert "Invalid argument" in str(raised.value)  # the kernel's reason, for the technician


async def test_a_gateway_that_hangs_up_is_redialled_by_the_next_read_not_behind_the_drivers_back() -> None:
    """pymodbus's own reconnect is off: it would leave a task running that nobody owns. The driver dials again when it
    next reads."""
    connections = 0

    async def answer_once_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            header = await reader.readexactly(7)
            await reader.readexactly(int.from_bytes(header[4:6], "big") - 1)
            reply = bytes([4, 2 * (0x0048 + 2)]) + bytes(2 * (0x0048 + 2))  # every register 0.0
            writer.write(header[:4] + (len(reply) + 1).to_bytes(2, "big") + header[6:7] + reply)
            await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer_once_then_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    meter = Sdm630Meter.tcp("127.0.0.1", port)
    try:
        assert (await meter.read()).energy_Wh_import == 0
        await asyncio.sleep(1.3)  # the gateway hung up; nobody asked for a reading
        assert connections == 1
        assert (await meter.read()).energy_Wh_import == 0
        assert connections == 2
    finally:
        await meter.aclose()
        server.close()
        await server.wait_closed()


# A long meter timeout (a slow gateway, a long RS-485 line) must be ours, not pymodbus's default of 3 s, which would
# fire first and turn a silent meter into some other error after the wrong time.
LONG_TIMEOUT_S = 4.0


@pytest.mark.timeout(15)
async def test_a_silent_tcp_meter_times_out_after_a_timeout_longer_than_pymodbus_default() -> None:
    async with raw_gateway(lambda pdu: None) as port:
        meter = Sdm630Meter.tcp("127.0.0.1", port, timeout_s=LONG_TIMEOUT_S)
        started = time.monotonic()
        with pytest.raises(HalTimeout, match="within 4 s"):
            await _read(meter)
        assert LONG_TIMEOUT_S - 0.1 <= time.monotonic() - started < LONG_TIMEOUT_S + 0.9


@pytest.mark.timeout(15)
async def test_a_silent_rtu_meter_times_out_after_a_timeout_longer_than_pymodbus_default() -> None:
    master, slave = os.openpty()  # nothing answers on the master end
    try:
        meter = Sdm630Meter.rtu(os.ttyname(slave), timeout_s=LONG_TIMEOUT_S)
        started = time.monotonic()
        with pytest.raises(HalTimeout, match="within 4 s"):
            await _read(meter)
        assert LONG_TIMEOUT_S - 0.1 <= time.monotonic() - started < LONG_TIMEOUT_S + 0.9
    finally:
        os.close(master)
        os.close(slave)
