"""Checks on a real Raspberry Pi with the charger board: opt-in, never in CI.

Run on the Pi, with NO vehicle and NO load connected, as a user in the gpio/spi/dialout groups:

    CP_RELAY_PIN=17 CP_FEEDBACK_PIN=27 CP_METER_PORT=/dev/ttyUSB0 CP_PWM_CHIP=0 \\
        python -m pytest -m hardware tests/hardware -q

Each check is skipped unless the variables it needs are set: CP_GPIO_CHIP (default 0),
CP_RELAY_PIN and CP_FEEDBACK_PIN (contactor), CP_RCD_PIN (RDC-DD fault output, active low),
CP_METER_PORT, CP_METER_BAUD (9600), CP_METER_ID (1) (SDM630 on RS-485), CP_PWM_CHIP,
CP_PWM_CHANNEL (0), CP_SPI_BUS (0), CP_SPI_DEVICE (0), CP_ADC_CHANNEL (0) (pilot PWM and its MCP3008).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest

from chargepoint.core.pilot import PilotState, classify
from hal.drivers.gpio_devices import GpioContactor, GpioResidualCurrentMonitor
from hal.drivers.gpio_lines import chip_path
from hal.drivers.pwm_pilot import Mcp3008PilotSampler, SysfsPwmPilot
from hal.drivers.sdm630 import Sdm630Meter
from hal.protocols import PilotOutput

pytestmark = [pytest.mark.hardware, pytest.mark.timeout(30)]


def env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            pytest.skip(f"set {name} to run this check")
        return default
    return int(value)


def gpio_chip() -> str:
    return chip_path(env_int("CP_GPIO_CHIP", 0))


async def wait_for(predicate: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``predicate`` held; fails after ``timeout_s``."""
    started_s = time.monotonic()
    while not predicate():
        if time.monotonic() - started_s > timeout_s:
            raise AssertionError(f"not reached within {timeout_s} s")
        await asyncio.sleep(0.002)
    return time.monotonic() - started_s


async def test_contactor_pulse_without_load_is_confirmed_by_the_mirror_contact() -> None:
    contactor = GpioContactor(gpio_chip(), env_int("CP_RELAY_PIN"), env_int("CP_FEEDBACK_PIN"))
    try:
        assert not contactor.feedback_closed(), "mirror contact reads closed while the relay is off: welded?"
        await contactor.close()
        close_s = await wait_for(contactor.feedback_closed, 0.5)
        await contactor.open()
        open_s = await wait_for(lambda: not contactor.feedback_closed(), 0.5)
        print(f"contactor closed in {close_s * 1000:.0f} ms, opened in {open_s * 1000:.0f} ms")
        assert open_s < 0.1  # the IEC 61851 budget from state change to contacts open
    finally:
        await contactor.aclose()


async def test_released_relay_line_leaves_the_contactor_open() -> None:
    """The board's pull-down: a closed contactor opens when the process lets go of the line."""
    relay_pin, feedback_pin = env_int("CP_RELAY_PIN"), env_int("CP_FEEDBACK_PIN")
    contactor = GpioContactor(gpio_chip(), relay_pin, feedback_pin)
    await contactor.close()
    await wait_for(contactor.feedback_closed, 0.5)
    contactor._relay.close()  # what a crash does: the request goes away, nobody drives the line
    try:
        await wait_for(lambda: not contactor.feedback_closed(), 0.5)
    finally:
        await contactor.aclose()


async def test_rcd_module_reports_no_fault_at_rest() -> None:
    rcd = GpioResidualCurrentMonitor(gpio_chip(), env_int("CP_RCD_PIN"), active_low=True)
    try:
        assert not rcd.tripped(), "RDC-DD signals a fault (or its output is not wired)"
    finally:
        await rcd.aclose()


async def test_meter_answers_with_plausible_values() -> None:
    port = os.environ.get("CP_METER_PORT")
    if port is None:
        pytest.skip("set CP_METER_PORT to run this check")
    meter = Sdm630Meter.rtu(
        port, baudrate=env_int("CP_METER_BAUD", 9600), device_id=env_int("CP_METER_ID", 1), timeout_s=1.0
    )
    try:
        first = await meter.read()
        second = await meter.read()
    finally:
        await meter.aclose()
    print(f"meter: {first}")
    assert any(180.0 <= v <= 260.0 for v in first.voltage_V), "no phase within 180..260 V"
    assert first.energy_Wh_import >= 0
    assert second.energy_Wh_import >= first.energy_Wh_import


async def test_pilot_reads_state_a_without_a_vehicle() -> None:
    pwm_chip, pwm_channel = env_int("CP_PWM_CHIP"), env_int("CP_PWM_CHANNEL", 0)
    sampler = Mcp3008PilotSampler(
        spi_bus=env_int("CP_SPI_BUS", 0), spi_device=env_int("CP_SPI_DEVICE", 0), channel=env_int("CP_ADC_CHANNEL", 0)
    )
    pilot = SysfsPwmPilot(sampler, chip=pwm_chip, channel=pwm_channel)
    try:
        readings = pilot.readings()
        async with asyncio.timeout(1.0):
            reading = await anext(readings)
        print(f"pilot at +12 V reads {reading}")
        assert classify(reading, PilotOutput.HIGH) is PilotState.A
        await pilot.set_negative()
        async with asyncio.timeout(1.0):
            async for reading in readings:
                if reading.high_V < -10.0:
                    break
        assert classify(reading, PilotOutput.HIGH) is PilotState.F
    finally:
        await pilot.aclose()
