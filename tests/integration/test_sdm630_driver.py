"""The real SDM630 driver against the simulated meter over Modbus TCP on loopback."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from hal.drivers.sdm630 import Sdm630Meter
from hal.errors import HalTimeout, MeterError
from hal.protocols import EnergyMeter, MeterReading
from simulators.station import SimConnector, SimParameters, SimulatedStation

TIME_SCALE = 100.0  # one real second charges like 100 s
TIMEOUT_S = 0.3
PARAMS = SimParameters(ev_follow_s=0.05, contactor_feedback_delay_s=0.01, time_scale=TIME_SCALE)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 1.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline_s:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


@pytest.fixture
async def station() -> AsyncIterator[SimulatedStation]:
    station = SimulatedStation(PARAMS)
    await station.start()
    try:
        yield station
    finally:
        await station.stop()


@pytest.fixture
async def meter(station: SimulatedStation) -> AsyncIterator[Sdm630Meter]:
    host, port, device_id = station.connector(1).meter_endpoint
    meter = Sdm630Meter.tcp(host, port, device_id=device_id, timeout_s=TIMEOUT_S)
    try:
        yield meter
    finally:
        await meter.aclose()


async def start_charging(connector: SimConnector, duty_percent: float) -> None:
    connector.apply("plug")
    connector.apply("charge")
    await connector.pilot.set_pwm(duty_percent)
    await connector.contactor.close()
    await eventually(connector.contactor.feedback_closed)
    await eventually(lambda: connector.ev.drawn_A == pytest.approx(min(connector.offered_A(), 32.0)))


async def test_driver_implements_the_energy_meter_port(meter: Sdm630Meter) -> None:
    assert isinstance(meter, EnergyMeter)


async def test_idle_meter_reads_mains_voltage_and_no_current(meter: Sdm630Meter) -> None:
    reading = await meter.read()
    assert reading.voltage_V == (230.0, 230.0, 230.0)
    assert reading.current_A == (0.0, 0.0, 0.0)
    assert reading.power_W == 0.0
    assert reading.energy_Wh_import == 0


async def test_energy_grows_with_power_times_time_while_the_ev_draws(
    station: SimulatedStation, meter: Sdm630Meter
) -> None:
    connector = station.connector(1)
    await start_charging(connector, 26.7)  # 16.02 A offered

    first = await meter.read()
    assert first.current_A == pytest.approx((16.02, 16.02, 16.02), abs=0.01)
    assert first.power_W == pytest.approx(3 * 230.0 * 16.02, rel=1e-4)
    await asyncio.sleep(0.5)
    second = await meter.read()

    elapsed_s = second.measured_at_s - first.measured_at_s
    expected_Wh = first.power_W * elapsed_s * TIME_SCALE / 3600.0
    assert expected_Wh > 100.0  # enough to make the comparison meaningful
    assert second.energy_Wh_import - first.energy_Wh_import == pytest.approx(expected_Wh, rel=0.1)
    # The meter agrees with the simulation's own integral (one rounding to whole Wh).
    assert abs(second.energy_Wh_import - connector.energy_Wh) < 0.02 * connector.energy_Wh + 1


async def test_energy_stops_growing_when_the_contactor_opens(
    station: SimulatedStation, meter: Sdm630Meter
) -> None:
    connector = station.connector(1)
    await start_charging(connector, 26.7)
    await asyncio.sleep(0.1)
    await connector.contactor.open()
    await eventually(lambda: not connector.contactor.feedback_closed())
    first = await meter.read()
    await asyncio.sleep(0.2)
    second = await meter.read()
    assert first.energy_Wh_import > 0
    assert second.energy_Wh_import == first.energy_Wh_import
    assert second.current_A == (0.0, 0.0, 0.0)


async def test_power_loss_reads_zero_voltage(station: SimulatedStation, meter: Sdm630Meter) -> None:
    connector = station.connector(1)
    await start_charging(connector, 26.7)
    connector.apply("fault", "power-loss")
    reading = await meter.read()
    assert reading.voltage_V == (0.0, 0.0, 0.0)
    assert reading.current_A == (0.0, 0.0, 0.0)
    assert reading.power_W == 0.0


async def test_offline_meter_times_out_within_the_timeout_and_recovers(
    station: SimulatedStation, meter: Sdm630Meter
) -> None:
    connector = station.connector(1)
    before = await meter.read()
    connector.apply("fault", "meter-offline")
    started_s = time.monotonic()
    with pytest.raises((HalTimeout, MeterError)):
        await meter.read()
    assert time.monotonic() - started_s < TIMEOUT_S + 0.2
    connector.apply("clear-fault")
    after = await meter.read()
    assert isinstance(after, MeterReading)
    assert after.energy_Wh_import >= before.energy_Wh_import


async def test_timeout_is_a_builtin_timeout_error_too(station: SimulatedStation, meter: Sdm630Meter) -> None:
    station.connector(1).apply("fault", "meter-offline")
    with pytest.raises(TimeoutError):
        await meter.read()


async def test_stopped_server_raises_meter_error_and_reconnects_when_back(
    station: SimulatedStation, meter: Sdm630Meter
) -> None:
    await meter.read()
    server = station.connector(1).meter
    await server.stop()
    started_s = time.monotonic()
    # Depending on whether the FIN arrives before the request: a lost connection or silence.
    with pytest.raises((MeterError, HalTimeout)):
        await meter.read()
    assert time.monotonic() - started_s < TIMEOUT_S + 0.2
    started_s = time.monotonic()
    with pytest.raises(MeterError, match="cannot connect"):  # now refused, at once
        await meter.read()
    assert time.monotonic() - started_s < TIMEOUT_S
    server.requested_port = server.port  # come back on the same address
    await server.start()
    reading = await meter.read()
    assert reading.voltage_V[0] == 230.0


async def test_wrong_device_id_is_a_meter_error(station: SimulatedStation) -> None:
    host, port, _ = station.connector(1).meter_endpoint
    meter = Sdm630Meter.tcp(host, port, device_id=7, timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(MeterError):
            await meter.read()
    finally:
        await meter.aclose()


async def test_single_phase_ev_reads_on_l1_only() -> None:
    station = SimulatedStation(
        SimParameters(ev_phases=1, ev_follow_s=0.05, contactor_feedback_delay_s=0.01), connector_count=2
    )
    await station.start()
    try:
        connector = station.connector(2)
        await start_charging(connector, 26.7)
        host, port, device_id = connector.meter_endpoint
        assert port != station.connector(1).meter_endpoint[1]
        meter = Sdm630Meter.tcp(host, port, device_id=device_id, timeout_s=TIMEOUT_S)
        try:
            reading = await meter.read()
        finally:
            await meter.aclose()
        assert reading.current_A == pytest.approx((16.02, 0.0, 0.0), abs=0.01)
        assert reading.power_W == pytest.approx(230.0 * 16.02, rel=1e-4)
    finally:
        await station.stop()


async def test_closed_driver_refuses_to_read(meter: Sdm630Meter) -> None:
    await meter.aclose()
    with pytest.raises(MeterError, match="closed"):
        await meter.read()


def test_driver_can_be_built_before_the_event_loop_runs() -> None:
    # The runtime builds backends from config first; pymodbus clients need a running loop.
    Sdm630Meter.tcp("127.0.0.1", 502)
    Sdm630Meter.rtu("/dev/ttyUSB0", baudrate=9600, parity="E")
    with pytest.raises(ValueError, match="parity"):
        Sdm630Meter.rtu("/dev/ttyUSB0", parity="X")


async def test_missing_serial_port_is_a_meter_error(tmp_path: pathlib.Path) -> None:
    meter = Sdm630Meter.rtu(str(tmp_path / "ttyUSB9"), timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(MeterError, match="cannot connect"):
            await meter.read()
    finally:
        await meter.aclose()
