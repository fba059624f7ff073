"""Whatever goes wrong inside the daemon, it leaves the contactor open and the pilot at +12 V."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chargepoint.composition.daemon import EXIT_FAILED, run_daemon
from chargepoint.composition.devices import create_hardware_for
from hal.protocols import EnergyMeter, MeterReading, PilotOutput
from tests.integration.harness import make_config


class BuggyMeter:
    """A meter driver with a bug: once armed, read() raises something no driver should raise."""

    def __init__(self, inner: EnergyMeter) -> None:
        self.inner = inner
        self.armed = False

    async def read(self) -> MeterReading:
        if self.armed:
            raise RuntimeError("bug in a driver")
        return await self.inner.read()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def wait_until(predicate: object, timeout_s: float = 5.0) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls simulator state
            await asyncio.sleep(0.01)


async def test_an_unexpected_exception_mid_session_leaves_the_hardware_safe(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    hardware = create_hardware_for(config)
    assert hardware.station is not None
    sim = hardware.station.connector(1)
    meter = BuggyMeter(hardware.connectors[0].meter)
    hardware.connectors[0].meter = meter
    daemon = asyncio.create_task(run_daemon(config, hardware))
    await wait_until(lambda: (tmp_path / "control.sock").exists())
    sim.apply("plug")
    sim.apply("charge")
    await wait_until(sim.contactor.commanded_closed)
    assert sim.pilot.output()[0] is PilotOutput.PWM

    meter.armed = True
    assert await asyncio.wait_for(daemon, 10) == EXIT_FAILED
    assert not sim.contactor.commanded_closed()
    assert not sim.contactor.feedback_closed()
    assert sim.pilot.output()[0] is PilotOutput.HIGH
