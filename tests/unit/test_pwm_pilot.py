"""The sysfs PWM pilot writes what the kernel expects and classifies what its ADC port measures.

The kernel's PWM sysfs directory is mimicked in ``tmp_path`` (``pwmchip0/export`` and a pre-created
``pwm0/`` with ``period``, ``duty_cycle``, ``enable``, ``polarity``), so the tests read the very
files the driver wrote. The ADC is a port (``AdcSampler``): a scripted implementation feeds levels.
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import types
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from chargepoint.core.pilot import PilotState, classify
from hal.drivers.pwm_pilot import AdcSampler, Mcp3008PilotSampler, SysfsPwmPilot
from hal.errors import BackendUnavailable, HalError
from hal.protocols import ControlPilot, PilotOutput, PilotReading

pytestmark = pytest.mark.timeout(10)


class ScriptedSampler:
    """``AdcSampler`` whose every sample is handed over by the test."""

    def __init__(self) -> None:
        self._levels: asyncio.Queue[tuple[float, float] | Exception] = asyncio.Queue()
        self.samples = 0
        self.closed = False

    def feed(self, high_V: float, low_V: float) -> None:
        self._levels.put_nowait((high_V, low_V))

    def fail(self, error: Exception) -> None:
        self._levels.put_nowait(error)

    async def sample(self) -> tuple[float, float]:
        item = await self._levels.get()
        self.samples += 1
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        self.closed = True


def make_sysfs(root: Path, *, with_channel: bool = True, polarity: str = "normal") -> Path:
    chip = root / "pwmchip0"
    chip.mkdir(parents=True)
    (chip / "export").write_text("")
    (chip / "unexport").write_text("")
    (chip / "npwm").write_text("2\n")
    if with_channel:
        make_channel(chip / "pwm0", polarity=polarity)
    return chip


def make_channel(channel: Path, *, polarity: str = "normal", period: int = 0, duty: int = 0) -> None:
    channel.mkdir()
    (channel / "period").write_text(f"{period}\n")
    (channel / "duty_cycle").write_text(f"{duty}\n")
    (channel / "enable").write_text("0\n")
    (channel / "polarity").write_text(f"{polarity}\n")


def attr(chip: Path, name: str) -> str:
    return (chip / "pwm0" / name).read_text().strip()


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    return make_sysfs(tmp_path)


@pytest.fixture
def sampler() -> ScriptedSampler:
    return ScriptedSampler()


@pytest.fixture
async def pilot(tmp_path: Path, sysfs: Path, sampler: ScriptedSampler) -> AsyncIterator[SysfsPwmPilot]:
    pilot = SysfsPwmPilot(sampler, chip=0, channel=0, sysfs_root=tmp_path, poll_interval_s=0.001)
    try:
        yield pilot
    finally:
        await pilot.aclose()


def subscribe(pilot: SysfsPwmPilot) -> AsyncGenerator[PilotReading, None]:
    readings = pilot.readings()
    assert isinstance(readings, AsyncGenerator)
    return readings


async def next_reading(readings: AsyncIterator[PilotReading]) -> PilotReading:
    async with asyncio.timeout(1.0):
        return await anext(readings)


def test_scripted_sampler_is_an_adc_sampler(sampler: ScriptedSampler) -> None:
    assert isinstance(sampler, AdcSampler)


async def test_driver_implements_the_control_pilot_port(pilot: SysfsPwmPilot) -> None:
    assert isinstance(pilot, ControlPilot)


async def test_construction_drives_plus_12_V_at_1_kHz(pilot: SysfsPwmPilot, sysfs: Path) -> None:
    assert attr(sysfs, "period") == "1000000"
    assert attr(sysfs, "duty_cycle") == "1000000"  # 100 %: constant +12 V
    assert attr(sysfs, "enable") == "1"
    assert attr(sysfs, "polarity") == "normal"
    assert pilot.output() == (PilotOutput.HIGH, 0.0)


async def test_pwm_writes_the_duty_in_nanoseconds_of_a_1_ms_period(pilot: SysfsPwmPilot, sysfs: Path) -> None:
    await pilot.set_pwm(53.3)  # 32 A
    assert attr(sysfs, "period") == "1000000"
    assert attr(sysfs, "duty_cycle") == "533000"
    assert attr(sysfs, "enable") == "1"
    assert pilot.output() == (PilotOutput.PWM, 53.3)
    await pilot.set_pwm(10.0)  # 6 A
    assert attr(sysfs, "duty_cycle") == "100000"


async def test_set_high_is_100_percent_duty(pilot: SysfsPwmPilot, sysfs: Path) -> None:
    await pilot.set_pwm(26.7)
    await pilot.set_high()
    assert attr(sysfs, "duty_cycle") == "1000000"
    assert attr(sysfs, "enable") == "1"
    assert pilot.output() == (PilotOutput.HIGH, 0.0)


async def test_set_negative_disables_the_channel_and_pwm_enables_it_again(pilot: SysfsPwmPilot, sysfs: Path) -> None:
    await pilot.set_negative()
    assert attr(sysfs, "enable") == "0"
    assert pilot.output() == (PilotOutput.NEGATIVE, 0.0)
    await pilot.set_pwm(16.0)
    assert attr(sysfs, "enable") == "1"
    assert attr(sysfs, "duty_cycle") == "160000"


@pytest.mark.parametrize("duty_percent", [0.0, -5.0, 100.5])
async def test_impossible_duty_is_refused_and_changes_nothing(
    pilot: SysfsPwmPilot, sysfs: Path, duty_percent: float
) -> None:
    with pytest.raises(ValueError, match="duty_percent"):
        await pilot.set_pwm(duty_percent)
    assert attr(sysfs, "duty_cycle") == "1000000"
    assert pilot.output() == (PilotOutput.HIGH, 0.0)


async def test_inversed_polarity_is_reset_to_normal(tmp_path: Path, sampler: ScriptedSampler) -> None:
    chip = make_sysfs(tmp_path, polarity="inversed")
    pilot = SysfsPwmPilot(sampler, sysfs_root=tmp_path)
    try:
        assert attr(chip, "polarity") == "normal"
        assert attr(chip, "enable") == "1"
    finally:
        await pilot.aclose()


async def test_a_longer_previous_period_is_replaced(tmp_path: Path, sampler: ScriptedSampler) -> None:
    chip = make_sysfs(tmp_path, with_channel=False)
    make_channel(chip / "pwm0", period=20_000_000, duty=15_000_000)
    pilot = SysfsPwmPilot(sampler, sysfs_root=tmp_path)
    try:
        assert attr(chip, "period") == "1000000"
        assert attr(chip, "duty_cycle") == "1000000"
    finally:
        await pilot.aclose()


def test_missing_pwm_chip_names_the_overlay(tmp_path: Path, sampler: ScriptedSampler) -> None:
    with pytest.raises(HalError, match="dtoverlay"):
        SysfsPwmPilot(sampler, sysfs_root=tmp_path)


def test_channel_is_exported_when_missing(tmp_path: Path, sampler: ScriptedSampler) -> None:
    chip = make_sysfs(tmp_path, with_channel=False)
    # The kernel creates pwm0/ with all its attributes a little after the export write: build
    # it aside and rename it in, so the driver never sees a half-made channel.
    def appear() -> None:
        make_channel(tmp_path / "staging")
        (tmp_path / "staging").rename(chip / "pwm0")

    creator = threading.Timer(0.05, appear)
    creator.start()
    try:
        pilot = SysfsPwmPilot(sampler, sysfs_root=tmp_path, export_timeout_s=2.0)
    finally:
        creator.join()
    assert (chip / "export").read_text() == "0"
    assert attr(chip, "duty_cycle") == "1000000"
    assert pilot.output() == (PilotOutput.HIGH, 0.0)


def test_export_that_never_appears_is_a_hal_error(tmp_path: Path, sampler: ScriptedSampler) -> None:
    make_sysfs(tmp_path, with_channel=False)
    with pytest.raises(HalError, match="after export"):
        SysfsPwmPilot(sampler, sysfs_root=tmp_path, export_timeout_s=0.05)


async def test_sampled_levels_classify_into_the_iec_states(pilot: SysfsPwmPilot, sampler: ScriptedSampler) -> None:
    readings = subscribe(pilot)
    states: list[PilotState] = []

    async def step(high_V: float, low_V: float) -> PilotReading:
        sampler.feed(high_V, low_V)
        reading = await next_reading(readings)
        output, _ = pilot.output()
        states.append(classify(reading, output, states[-1] if states else None))
        return reading

    first = await step(12.0, 12.0)  # +12 V, nothing plugged
    assert (first.high_V, first.low_V) == (12.0, 12.0)
    await step(9.0, 9.0)  # EV plugged, PWM still off
    await pilot.set_pwm(26.7)
    await step(9.0, -12.0)  # PWM on: the diode blocks the negative half
    await step(6.0, -12.0)  # EV closes S2
    await step(6.0, 5.8)  # negative half missing: diode shorted
    await pilot.set_high()
    await step(0.0, 0.0)  # CP shorted to PE
    await pilot.set_negative()
    await step(-12.0, -12.0)
    assert states == [
        PilotState.A,
        PilotState.B,
        PilotState.B,
        PilotState.C,
        PilotState.DIODE_FAILURE,
        PilotState.E,
        PilotState.F,
    ]
    await readings.aclose()


async def test_every_sample_is_published_with_the_output_it_was_taken_under(
    pilot: SysfsPwmPilot, sampler: ScriptedSampler
) -> None:
    readings = subscribe(pilot)
    sampler.feed(12.0, 12.0)
    first = await next_reading(readings)
    sampler.feed(12.0, 12.0)  # unchanged levels still arrive: the runtime judges the sampler alive by them
    second = await next_reading(readings)
    assert (second.high_V, second.output) == (12.0, PilotOutput.HIGH)
    assert second.measured_at_s > first.measured_at_s
    await pilot.set_pwm(50.0)
    sampler.feed(9.0, -12.0)
    assert (await next_reading(readings)).output is PilotOutput.PWM
    await readings.aclose()


async def test_every_subscriber_sees_the_current_reading_first(pilot: SysfsPwmPilot, sampler: ScriptedSampler) -> None:
    first = subscribe(pilot)
    sampler.feed(9.0, 9.0)
    await next_reading(first)
    second = subscribe(pilot)
    assert (await next_reading(second)).high_V == 9.0
    sampler.feed(6.0, 6.0)
    assert (await next_reading(first)).high_V == 6.0
    assert (await next_reading(second)).high_V == 6.0
    for readings in (first, second):
        await readings.aclose()


async def test_latest_before_the_first_sample_classifies_as_a_fault(pilot: SysfsPwmPilot) -> None:
    reading = pilot.latest()
    assert math.isnan(reading.high_V)
    assert classify(reading, PilotOutput.HIGH) is PilotState.E


async def test_adc_failure_ends_readings_with_a_hal_error(pilot: SysfsPwmPilot, sampler: ScriptedSampler) -> None:
    readings = subscribe(pilot)
    sampler.feed(12.0, 12.0)
    await next_reading(readings)
    sampler.fail(HalError("MCP3008: SPI transfer failed"))
    with pytest.raises(HalError, match="SPI transfer failed"):
        await next_reading(readings)


async def test_aclose_leaves_plus_12_V_and_ends_readings(
    tmp_path: Path, sysfs: Path, sampler: ScriptedSampler
) -> None:
    pilot = SysfsPwmPilot(sampler, sysfs_root=tmp_path, poll_interval_s=0.001)
    await pilot.set_pwm(53.3)
    readings = subscribe(pilot)
    sampler.feed(6.0, -12.0)
    await next_reading(readings)
    await pilot.aclose()
    assert attr(sysfs, "duty_cycle") == "1000000"
    assert attr(sysfs, "enable") == "1"
    assert pilot.output() == (PilotOutput.HIGH, 0.0)
    assert sampler.closed
    with pytest.raises(StopAsyncIteration):
        await next_reading(readings)


# --------------------------------------------------------------------- MCP3008 sampler


class FakeSpiDev:
    """Stands in for ``spidev.SpiDev``: answers MCP3008 conversions from a list of counts."""

    counts: ClassVar[list[int]] = []

    def __init__(self) -> None:
        self.opened: tuple[int, int] | None = None
        self.commands: list[list[int]] = []
        self._next = 0

    def open(self, bus: int, device: int) -> None:
        self.opened = (bus, device)

    def xfer2(self, data: list[int]) -> list[int]:
        self.commands.append(list(data))
        count = self.counts[self._next % len(self.counts)]
        self._next += 1
        return [0, (count >> 8) & 0x03, count & 0xFF]

    def close(self) -> None:
        self.opened = None


@pytest.fixture
def fake_spidev(monkeypatch: pytest.MonkeyPatch) -> type[FakeSpiDev]:
    module: Any = types.ModuleType("spidev")
    module.SpiDev = FakeSpiDev
    monkeypatch.setitem(sys.modules, "spidev", module)
    return FakeSpiDev


async def test_mcp3008_burst_max_and_min_become_pilot_volts(fake_spidev: type[FakeSpiDev]) -> None:
    fake_spidev.counts = [895, 896, 0, 1, 2, 0, 896, 894]  # 9 V plateau and -12 V plateau
    sampler = Mcp3008PilotSampler(spi_bus=0, spi_device=1, channel=3, volts_per_count=24.0 / 1023.0, offset_V=-12.0)
    high_V, low_V = await sampler.sample()
    assert high_V == pytest.approx(-12.0 + 896 * 24.0 / 1023.0)
    assert high_V == pytest.approx(9.0, abs=0.05)
    assert low_V == -12.0
    spi: Any = sampler._spi
    assert spi.opened == (0, 1)
    assert spi.commands[0] == [0x01, 0xB0, 0x00]  # start, single-ended channel 3
    assert len(spi.commands) >= 8
    await sampler.aclose()
    assert spi.opened is None
    reading = PilotReading(high_V, low_V, 0.0)
    assert classify(reading, PilotOutput.PWM) is PilotState.B


def test_mcp3008_without_spidev_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spidev", None)
    with pytest.raises(BackendUnavailable, match=r"spidev.*chargepoint\[rpi\]"):
        Mcp3008PilotSampler()


def test_mcp3008_refuses_a_channel_it_does_not_have(fake_spidev: type[FakeSpiDev]) -> None:
    with pytest.raises(ValueError, match="channel"):
        Mcp3008PilotSampler(channel=8)
