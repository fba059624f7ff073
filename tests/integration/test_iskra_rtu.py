"""The real ``IskraWm3m4cMeter.rtu`` driver against the simulated WM3M4C served as Modbus RTU over a pty pair (the
null-modem link of the SDM630's RTU tests): measurements and a whole signed transaction over a serial line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pyocmf import OCMF

from hal.drivers.iskra_wm3m4c import IskraWm3m4cMeter
from hal.protocols import OcmfIdentification
from simulators.iskra_meter import IskraMeterServer
from simulators.meter_server import MeterValues
from tests.integration.test_sdm630_rtu import PtyLink

pytestmark = pytest.mark.timeout(20)

VALUES = MeterValues((230.0, 231.5, 229.0), (10.0, -2.25, 0.0), 7_654.0, (0.0, 0.0, 0.0), online=True)


@dataclass
class Bench:
    emulator: IskraMeterServer
    meter: IskraWm3m4cMeter


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    from pymodbus.server import ModbusSerialServer

    link = PtyLink()
    link.start()
    emulator = IskraMeterServer(lambda: VALUES)
    server = ModbusSerialServer(emulator._device(), port=link.path_b, baudrate=9600, parity="N", bytesize=8,
                                stopbits=1, ignore_missing_devices=True)
    await server.serve_forever(background=True)
    meter = IskraWm3m4cMeter.rtu(link.path_a, baudrate=9600, parity="N", timeout_s=0.5)
    try:
        yield Bench(emulator, meter)
    finally:
        await meter.aclose()
        if not server.serving.done():
            server.serving.set_result(True)
        server.close()
        link.close()


async def test_rtu_meter_reads_the_emulated_register_map(bench: Bench) -> None:
    reading = await bench.meter.read()
    assert reading.voltage_V == (230.0, 231.5, 229.0)
    assert reading.current_A == (10.0, -2.25, 0.0)
    assert reading.energy_Wh_import == 7_654


async def test_rtu_meter_signs_a_transaction_that_verifies(bench: Bench) -> None:
    identification = OcmfIdentification(
        identified=False, identification_type="NONE", identification_data="", identification_flags=(),
        charge_point_type="CBIDC", charge_point_id="CP-RTU", gateway_id="chargepoint", gateway_serial="CP-RTU",
        gateway_version="0.9.0")
    await bench.meter.begin_transaction(identification)
    data = await bench.meter.end_transaction()
    ocmf = OCMF.from_string(data.ocmf, strict=True)
    assert ocmf.verify_signature(bench.emulator.public_key_der_hex()) is True
    assert (ocmf.payload.CT, ocmf.payload.CI, ocmf.payload.IS) == ("CBIDC", "CP-RTU", False)
    assert await bench.meter.serial_number() == "60000001"
