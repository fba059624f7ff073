"""Control pilot from a kernel PWM channel, sampled by an ADC (rpi backend).

Board assumptions (document them on the schematic next to the pilot circuit):
- The PWM pin (e.g. GPIO18 = pwmchip0/pwm0 with ``dtoverlay=pwm``) drives a level shifter whose output
  is +12 V while the pin is high and -12 V while it is low, through the 1 kOhm source resistor of IEC
  61851-1 annex A.
- A disabled PWM channel idles low with normal polarity, so ``enable = 0`` puts -12 V on the line:
  that is ``set_negative()`` (state F). Constant +12 V (``set_high()``, state X1) is 100 % duty, not a
  GPIO level. The PWM block keeps its last setting when the process exits: the shutdown state set by
  ``aclose()`` (+12 V, no PWM) survives a clean exit; a crash leaves whatever was running, which is why
  the contactor has its own pull-down and the MCU/board keeps the last line of defence.
- An ADC sees the pilot through a divider/offset network; ``AdcSampler`` turns its samples into the
  high and low plateau of the last PWM period. CPython cannot sample synchronously with the PWM edges
  (REFERENCE B.4), so ``Mcp3008PilotSampler`` takes the max and min of a burst spanning more than one
  period, as SmartEVSE does with its 32 samples.

Sysfs files (``{root}/pwmchipN/``): ``export`` creates ``pwmM/`` with ``period``, ``duty_cycle`` (both
in ns), ``enable`` and ``polarity``. The root is a constructor parameter so that tests point it at a
directory tree that mimics sysfs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from chargepoint.core.pilot import PilotOutput, PilotReading
from hal.drivers.gpio_lines import INSTALL_HINT, ValueWatch
from hal.errors import BackendUnavailable, HalError

_log = logging.getLogger(__name__)

PERIOD_NS: Final = 1_000_000  # 1 kHz
EXPORT_POLL_S: Final = 0.01


@runtime_checkable
class AdcSampler(Protocol):
    """Port of the pilot ADC: the positive and negative plateau of the pilot over the last PWM period.

    ``sample()`` returns ``(high_V, low_V)`` in pilot volts (after the board's scaling), measured over
    at least one PWM period; it raises ``HalError`` if the ADC cannot be read.
    """

    async def sample(self) -> tuple[float, float]: ...

    async def aclose(self) -> None: ...


def _every_sample(old: PilotReading, new: PilotReading) -> bool:
    """Every sample is news: the runtime judges the sampler alive by their arrival (pilot freshness)."""
    return True


class SysfsPwmPilot:
    """``ControlPilot`` on a kernel PWM channel at 1 kHz, with readings from an ``AdcSampler``.

    Construction exports the channel if needed and drives +12 V (100 % duty, enabled) before it
    returns. Readings are polled every ``poll_interval_s`` by a task that starts with the first
    ``readings()`` subscriber and stops in ``aclose()``; every sample is published, tagged with the output
    driven while it was taken (a sample during which the output changed is dropped: it belongs to neither).
    """

    def __init__(
        self,
        sampler: AdcSampler,
        *,
        chip: int = 0,
        channel: int = 0,
        sysfs_root: str | os.PathLike[str] = "/sys/class/pwm",
        poll_interval_s: float = 0.01,
        export_timeout_s: float = 1.0,
    ) -> None:
        if chip < 0 or channel < 0:
            raise ValueError(f"PWM chip and channel must not be negative, got {chip}/{channel}")
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s}")
        self._sampler = sampler
        self._poll_interval_s = poll_interval_s
        self._chip_dir = Path(sysfs_root) / f"pwmchip{chip}"
        self._channel = channel
        self._dir = self._chip_dir / f"pwm{channel}"
        self._output = PilotOutput.HIGH
        self._duty_percent = 0.0
        self._enabled: bool | None = None
        self._closed = False
        self._export(export_timeout_s)
        self._prepare()
        self._drive(PilotOutput.HIGH, 0.0)
        self._readings: ValueWatch[PilotReading] = ValueWatch(
            None, self._poll, name=f"pilot {self._dir}", changed=_every_sample
        )

    # ------------------------------------------------------------------ sysfs

    @property
    def name(self) -> str:
        return f"PWM {self._dir}"

    def _write(self, attribute: str, value: str | int) -> None:
        """One write of one attribute: sysfs applies it before ``write`` returns (microseconds)."""
        path = self._dir / attribute
        try:
            with path.open("w", encoding="ascii") as file:
                file.write(str(value))
        except OSError as exc:
            raise HalError(f"{self.name}: cannot write {attribute}={value}: {exc}") from exc

    def _read(self, attribute: str) -> str | None:
        try:
            return (self._dir / attribute).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise HalError(f"{self.name}: cannot read {attribute}: {exc}") from exc

    def _export(self, timeout_s: float) -> None:
        if not self._chip_dir.is_dir():
            raise HalError(
                f"PWM chip {self._chip_dir} does not exist: enable it (e.g. dtoverlay=pwm in config.txt)"
            )
        if self._dir.is_dir():
            return
        try:
            (self._chip_dir / "export").write_text(str(self._channel), encoding="ascii")
        except OSError as exc:
            raise HalError(f"{self.name}: cannot export channel {self._channel}: {exc}") from exc
        # udev creates the directory, then fixes its permissions: wait until period is writable.
        deadline_s = time.monotonic() + timeout_s
        while not os.access(self._dir / "period", os.W_OK):
            if time.monotonic() >= deadline_s:
                raise HalError(f"{self.name}: channel not usable {timeout_s:g} s after export")
            time.sleep(EXPORT_POLL_S)

    def _prepare(self) -> None:
        """Normal polarity and a 1 kHz period, without ever making duty_cycle > period."""
        polarity = self._read("polarity")
        if polarity is not None and polarity != "normal":
            self._write("enable", 0)  # polarity can only change while disabled
            self._enabled = False
            self._write("polarity", "normal")
        duty = self._read("duty_cycle")
        if duty is not None and duty.isdigit() and int(duty) > PERIOD_NS:
            self._write("duty_cycle", PERIOD_NS)
        self._write("period", PERIOD_NS)

    def _enable(self, enabled: bool) -> None:
        if self._enabled != enabled:
            self._write("enable", int(enabled))
            self._enabled = enabled

    def _drive(self, output: PilotOutput, duty_percent: float) -> None:
        if output is PilotOutput.NEGATIVE:
            self._enable(False)
        else:
            duty_ns = PERIOD_NS if output is PilotOutput.HIGH else round(duty_percent * PERIOD_NS / 100.0)
            self._write("duty_cycle", duty_ns)
            self._enable(True)
        self._output = output
        self._duty_percent = duty_percent

    # ------------------------------------------------------------------ ControlPilot

    async def set_pwm(self, duty_percent: float) -> None:
        if not 0.0 < duty_percent <= 100.0:
            raise ValueError(f"duty_percent must be within (0, 100], got {duty_percent}")
        self._drive(PilotOutput.PWM, duty_percent)

    async def set_high(self) -> None:
        self._drive(PilotOutput.HIGH, 0.0)

    async def set_negative(self) -> None:
        self._drive(PilotOutput.NEGATIVE, 0.0)

    def output(self) -> tuple[PilotOutput, float]:
        return self._output, self._duty_percent

    async def _poll(self, publish: Callable[[PilotReading], bool]) -> None:
        while True:
            output = self._output
            high_V, low_V = await self._sampler.sample()
            if self._output is output:
                publish(PilotReading(high_V=high_V, low_V=low_V, measured_at_s=time.monotonic(), output=output))
            await asyncio.sleep(self._poll_interval_s)

    def readings(self) -> AsyncIterator[PilotReading]:
        return self._readings.subscribe()

    def latest(self) -> PilotReading:
        """The last reading published; NaN levels (classified as E) before the first sample."""
        reading = self._readings.value
        if reading is None:
            return PilotReading(high_V=math.nan, low_V=math.nan, measured_at_s=time.monotonic())
        return reading

    async def aclose(self) -> None:
        """Back to +12 V without PWM (kept by the PWM block after exit), then stop sampling."""
        if self._closed:
            return
        self._closed = True
        try:
            self._drive(PilotOutput.HIGH, 0.0)
        finally:
            await self._readings.aclose()
            await self._sampler.aclose()


class Mcp3008PilotSampler:
    """``AdcSampler`` on an MCP3008 (10 bit, SPI) through ``spidev`` (imported lazily).

    Each ``sample()`` takes a burst of single-ended conversions in a worker thread for at least
    ``window_s`` (more than one 1 ms PWM period) and returns the max and the min, converted to pilot
    volts with ``offset_V + count * volts_per_count``. At 1 MHz SPI one conversion takes ~30-50 us
    from Python, so the 100 us high plateau of a 10 % duty is still caught by a few samples.
    """

    def __init__(
        self,
        *,
        spi_bus: int = 0,
        spi_device: int = 0,
        channel: int = 0,
        volts_per_count: float = 24.0 / 1023.0,
        offset_V: float = -12.0,
        window_s: float = 0.0015,
        max_speed_hz: int = 1_000_000,
    ) -> None:
        if volts_per_count <= 0 or window_s <= 0:
            raise ValueError("volts_per_count and window_s must be positive")
        self._channel = channel
        self._volts_per_count = volts_per_count
        self._offset_V = offset_V
        self._window_s = window_s
        self._name = f"MCP3008 /dev/spidev{spi_bus}.{spi_device} channel {channel}"
        self._spi = open_mcp3008(spi_bus, spi_device, channel, self._name, max_speed_hz)

    def volts(self, count: int) -> float:
        return self._offset_V + count * self._volts_per_count

    def _burst(self) -> tuple[int, int]:
        command = [0x01, (0x08 | self._channel) << 4, 0x00]  # start bit, single-ended, channel
        highest, lowest = -1, 1024
        deadline_s = time.monotonic() + self._window_s
        count = 0
        while count < 8 or time.monotonic() < deadline_s:
            reply = self._spi.xfer2(list(command))
            value = ((reply[1] & 0x03) << 8) | reply[2]
            highest, lowest = max(highest, value), min(lowest, value)
            count += 1
        return highest, lowest

    async def sample(self) -> tuple[float, float]:
        try:
            highest, lowest = await asyncio.to_thread(self._burst)
        except OSError as exc:
            raise HalError(f"{self._name}: cannot read: {exc}") from exc
        return self.volts(highest), self.volts(lowest)

    def close(self) -> None:
        try:
            self._spi.close()
        except OSError as exc:
            raise HalError(f"{self._name}: cannot close: {exc}") from exc

    async def aclose(self) -> None:
        self.close()


def open_mcp3008(spi_bus: int, spi_device: int, channel: int, name: str, max_speed_hz: int = 1_000_000) -> Any:
    """An open ``spidev.SpiDev`` for an MCP3008 (SPI mode 0); ``spidev`` is imported here, on a Pi only."""
    if not 0 <= channel <= 7:
        raise ValueError(f"MCP3008 channel must be 0..7, got {channel}")
    try:
        import spidev
    except ImportError as exc:
        raise BackendUnavailable(f"{name} needs the 'spidev' package: {INSTALL_HINT} ({exc})") from exc
    spi = spidev.SpiDev()
    try:
        spi.open(spi_bus, spi_device)
        spi.max_speed_hz = max_speed_hz
        spi.mode = 0
    except OSError as exc:
        raise HalError(f"{name}: cannot open: {exc}") from exc
    return spi
