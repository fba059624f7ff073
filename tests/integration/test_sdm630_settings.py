"""The SDM630 driver's settings and what its errors say: the Modbus id range, the RTU defaults (9600 8N1, id 1,
1 s), and the exception code a meter answers with (issue 13 point 11: mutants of these survived)."""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import AsyncIterator

import pytest

from hal.drivers.sdm630 import Sdm630Meter
from hal.errors import HalTimeout, MeterError
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
