"""The real ``Sdm630Meter.rtu`` driver against the SDM630 emulator served as Modbus RTU over ptys.

Two pseudo-terminal pairs stand in for the RS-485 line: the driver opens one slave, pymodbus's own
``ModbusSerialServer`` (serving the emulator's ``SimDevice``) opens the other, and a forwarder copies
bytes between the two masters in both directions. Everything runs in one event loop; no socat.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from hal.drivers.sdm630 import Sdm630Meter
from hal.errors import HalTimeout, MeterError
from hal.protocols import EnergyMeter
from simulators.meter_server import MeterServer, MeterValues

pytestmark = pytest.mark.timeout(10)

TIMEOUT_S = 0.5


@dataclass
class Line:
    """The simulated meter's inputs, changed by the tests."""

    values: MeterValues = field(
        default_factory=lambda: MeterValues(
            voltage_V=(230.0, 231.0, 229.0),
            current_A=(16.0, 15.5, 0.0),
            energy_Wh_import=12_345.0,
            energy_Wh_import_per_phase=(6000.0, 6345.0, 0.0),
            online=True,
        )
    )

    def measure(self) -> MeterValues:
        return self.values


class PtyLink:
    """Two pty pairs whose masters are joined: a null-modem cable between two device paths."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self.master_a, slave_a = self._openpty()
        self.master_b, slave_b = self._openpty()
        self.path_a = os.ttyname(slave_a)
        self.path_b = os.ttyname(slave_b)
        for fd in (self.master_a, self.master_b):
            os.set_blocking(fd, False)
        self.cut = False  # True: bytes are dropped, as with a broken bus

    def _openpty(self) -> tuple[int, int]:
        master, slave = os.openpty()
        # We keep the slave open too, so that a master never reads EIO while the serial port
        # on that slave is closed and reopened by the driver.
        self._fds += [master, slave]
        return master, slave

    def _forward(self, source: int, target: int) -> None:
        try:
            data = os.read(source, 4096)
        except (BlockingIOError, InterruptedError):
            return
        if data and not self.cut:
            os.write(target, data)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.master_a, self._forward, self.master_a, self.master_b)
        loop.add_reader(self.master_b, self._forward, self.master_b, self.master_a)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in (self.master_a, self.master_b):
            loop.remove_reader(fd)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class Bench:
    line: Line
    link: PtyLink
    emulator: MeterServer


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    from pymodbus.server import ModbusSerialServer

    line = Line()
    link = PtyLink()
    link.start()
    # The emulator's register map and request hook, as served over TCP by the simulated station.
    emulator = MeterServer(line.measure, device_id=1)
    server = ModbusSerialServer(
        emulator._device(),
        port=link.path_b,
        baudrate=9600,
        parity="N",
        bytesize=8,
        stopbits=1,
        ignore_missing_devices=True,
    )
    await server.serve_forever(background=True)
    try:
        yield Bench(line, link, emulator)
    finally:
        if not server.serving.done():
            server.serving.set_result(True)
        server.close()
        link.close()


@pytest.fixture
async def meter(bench: Bench) -> AsyncIterator[Sdm630Meter]:
    meter = Sdm630Meter.rtu(bench.link.path_a, baudrate=9600, parity="N", device_id=1, timeout_s=TIMEOUT_S)
    try:
        yield meter
    finally:
        await meter.aclose()


async def test_rtu_driver_implements_the_energy_meter_port(meter: Sdm630Meter) -> None:
    assert isinstance(meter, EnergyMeter)


async def test_rtu_meter_reads_the_emulated_register_map(bench: Bench, meter: Sdm630Meter) -> None:
    reading = await meter.read()
    assert reading.voltage_V == (230.0, 231.0, 229.0)
    assert reading.current_A == (16.0, 15.5, 0.0)
    assert reading.power_W == pytest.approx(230.0 * 16.0 + 231.0 * 15.5)
    assert reading.energy_Wh_import == 12_345
    assert bench.emulator.requests == 1


async def test_rtu_readings_follow_the_meter(bench: Bench, meter: Sdm630Meter) -> None:
    first = await meter.read()
    bench.line.values = MeterValues(
        voltage_V=(230.0, 230.0, 230.0),
        current_A=(0.0, 0.0, 0.0),
        energy_Wh_import=13_000.0,
        energy_Wh_import_per_phase=(6500.0, 6500.0, 0.0),
        online=True,
    )
    second = await meter.read()
    assert second.energy_Wh_import - first.energy_Wh_import == 655
    assert second.power_W == 0.0


async def test_silent_meter_on_the_bus_times_out_and_the_driver_recovers(bench: Bench, meter: Sdm630Meter) -> None:
    await meter.read()
    offline = bench.line.values
    bench.line.values = MeterValues(
        offline.voltage_V, offline.current_A, offline.energy_Wh_import, offline.energy_Wh_import_per_phase, False
    )
    started_s = time.monotonic()
    with pytest.raises(HalTimeout):
        await meter.read()
    assert time.monotonic() - started_s < TIMEOUT_S + 0.3
    bench.line.values = Line().values
    await asyncio.sleep(0.05)  # let any late bytes of the failed exchange drain
    reading = await meter.read()
    assert reading.energy_Wh_import == 12_345


async def test_wrong_device_id_on_rtu_is_an_error_not_a_reading(bench: Bench) -> None:
    # A real RS-485 meter stays silent for other ids (HalTimeout); pymodbus 3.16's serial server
    # answers with an exception response instead (MeterError). Either way no reading comes back.
    meter = Sdm630Meter.rtu(bench.link.path_a, device_id=7, timeout_s=0.3)
    try:
        with pytest.raises((HalTimeout, MeterError)):
            await meter.read()
    finally:
        await meter.aclose()


async def test_broken_bus_times_out(bench: Bench, meter: Sdm630Meter) -> None:
    bench.link.cut = True
    with pytest.raises(HalTimeout):
        await meter.read()
