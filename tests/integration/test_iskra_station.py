"""A simulated station with an Iskra WM3M4C (``SimParameters(meter_model="iskra_wm3m4c")``): the hardware the
runtime gets holds a signing meter, read and signed through the real driver, following the simulated EV."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from pyocmf import OCMF

from hal.drivers.iskra_wm3m4c import IskraWm3m4cMeter
from hal.protocols import EnergyMeter, OcmfIdentification, SigningMeter
from simulators.hardware import SimulatedHardware, simulated_hardware
from simulators.iskra_meter import IskraMeterServer
from simulators.meter_server import MeterServer
from simulators.station import SimConnector, SimParameters, SimulatedStation

pytestmark = pytest.mark.timeout(20)

TIME_SCALE = 100.0
PARAMS = SimParameters(ev_follow_s=0.05, contactor_feedback_delay_s=0.01, time_scale=TIME_SCALE,
                       meter_model="iskra_wm3m4c")
IDENTIFICATION = OcmfIdentification(
    identified=True, identification_type="ISO14443", identification_data="04A1B2C3",
    identification_flags=("RFID_PLAIN",), charge_point_type="CBIDC", charge_point_id="CP-SIM",
    gateway_id="chargepoint", gateway_serial="CP-SIM", gateway_version="0.9.0",
)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 1.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline_s:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def start_charging(connector: SimConnector) -> None:
    connector.apply("plug")
    connector.apply("charge")
    await connector.pilot.set_pwm(26.7)  # 16.02 A
    await connector.contactor.close()
    await eventually(connector.contactor.feedback_closed)
    await eventually(lambda: connector.ev.drawn_A == pytest.approx(16.02))


@pytest.fixture
async def hardware() -> AsyncIterator[SimulatedHardware]:
    hardware = simulated_hardware(PARAMS, connector_count=1)
    await hardware.start()
    try:
        yield hardware
    finally:
        await hardware.aclose()


def signing(meter: EnergyMeter) -> SigningMeter:
    assert isinstance(meter, SigningMeter)
    return meter


def test_an_unknown_meter_model_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"meter_model.*'abb_b23'"):
        SimParameters(meter_model="abb_b23")


async def test_the_default_station_keeps_its_sdm630_that_does_not_sign() -> None:
    hardware = simulated_hardware(SimParameters(), connector_count=1)
    assert isinstance(hardware.station.connector(1).meter, MeterServer)
    assert not isinstance(hardware.connectors[0].meter, SigningMeter)
    assert hardware.station.connector(1).meter.device_id == 1


async def test_the_iskra_stations_meter_signs_and_follows_the_simulated_ev(hardware: SimulatedHardware) -> None:
    connector = hardware.station.connector(1)
    server = connector.meter
    assert isinstance(server, IskraMeterServer)
    assert connector.meter_endpoint[2] == 33
    meter = signing(hardware.connectors[0].meter)
    await start_charging(connector)
    first = await meter.read()
    assert first.current_A == pytest.approx((16.02, 16.02, 16.02))
    assert first.power_W == pytest.approx(3 * 230.0 * 16.02)
    await meter.begin_transaction(IDENTIFICATION)
    await asyncio.sleep(0.3)
    at_end = await meter.read()
    data = await meter.end_transaction()
    assert at_end.energy_Wh_import - first.energy_Wh_import > 50  # 0.3 s x 100 at 11 kW: about 90 Wh
    ocmf = OCMF.from_string(data.ocmf, strict=True)
    assert ocmf.verify_signature(server.public_key_der_hex()) is True
    begin, end = ocmf.payload.RD
    assert begin.RV is not None and end.RV is not None
    assert first.energy_Wh_import <= begin.RV * 1000 <= end.RV * 1000
    # The meter's counter is the simulation's energy, between the last read and now.
    assert at_end.energy_Wh_import <= end.RV * 1000 <= Decimal(connector.energy_Wh)


async def test_a_power_loss_is_a_power_failure_of_the_iskra(hardware: SimulatedHardware) -> None:
    connector = hardware.station.connector(1)
    meter = signing(hardware.connectors[0].meter)
    await meter.begin_transaction(IDENTIFICATION)
    connector.apply("fault", "power-loss")
    assert isinstance(connector.meter, IskraMeterServer) and connector.meter.state == 2
    assert (await meter.read()).voltage_V == (0.0, 0.0, 0.0)
    assert await meter.transaction_open()
    data = await meter.end_transaction()
    assert OCMF.from_string(data.ocmf).verify_signature(data.public_key_hex) is True


async def test_a_restart_in_place_keeps_the_meters_key_and_its_open_transaction(tmp_path: Path) -> None:
    saved = tmp_path / "sim-state.json"
    before = SimulatedStation(PARAMS)
    await before.start()
    try:
        first = before.connector(1).meter
        assert isinstance(first, IskraMeterServer)
        host, port, device_id = first.endpoint
        meter = IskraWm3m4cMeter.tcp(host, port, device_id=device_id, timeout_s=0.5)
        await meter.begin_transaction(IDENTIFICATION)
        await meter.aclose()
        before.save(saved)
    finally:
        await before.stop()
    after = simulated_hardware(PARAMS, connector_count=1)
    assert after.station.restore(saved)
    await after.start()
    try:
        meter_after = signing(after.connectors[0].meter)
        assert await meter_after.public_key_hex() == first.public_key_der_hex()
        assert await meter_after.transaction_open()
        data = await meter_after.end_transaction()
        ocmf = OCMF.from_string(data.ocmf, strict=True)
        assert ocmf.verify_signature(first.public_key_der_hex()) is True
        assert ocmf.payload.ID == "04A1B2C3"
    finally:
        await after.aclose()
