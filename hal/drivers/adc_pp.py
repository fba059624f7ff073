"""Proximity pilot read through an MCP3008 channel (rpi backend).

PP is pulled up to ``supply_V`` through ``pullup_ohm``; the cable's PP resistor to PE makes a divider the ADC reads.
A few conversions are averaged each ``poll_interval_s``; the resistance is turned into the cable's rating by the
core's IEC 61851-1 bands, and each change is published at once (``changes()``). A read that fails is a HalError from
``changes()``: the runtime then has no rating, so it offers nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from chargepoint.core.pilot import cable_rating_from_resistance, pp_resistance_ohm
from hal.drivers.gpio_lines import ValueWatch
from hal.drivers.pwm_pilot import open_mcp3008
from hal.errors import HalError

SAMPLES = 4


class Mcp3008ProximityPilot:
    """``ProximityPilot`` on an MCP3008 input (``spidev`` imported lazily)."""

    def __init__(
        self,
        *,
        spi_bus: int = 0,
        spi_device: int = 0,
        channel: int = 1,
        pullup_ohm: float = 330.0,
        supply_V: float = 3.3,
        volts_per_count: float = 3.3 / 1023.0,
        poll_interval_s: float = 0.1,
    ) -> None:
        self._channel = channel
        self._pullup_ohm = pullup_ohm
        self._supply_V = supply_V
        self._volts_per_count = volts_per_count
        self._poll_interval_s = poll_interval_s
        self.name = f"PP on MCP3008 /dev/spidev{spi_bus}.{spi_device} channel {channel}"
        self._spi: Any = open_mcp3008(spi_bus, spi_device, channel, self.name)
        # Boxed: None ("no cable") is a value here, while the watch uses None for "nothing read yet".
        self._watch: ValueWatch[tuple[float | None]] = ValueWatch((self._read(),), self._poll, name=self.name)

    def _read(self) -> float | None:
        """The cable's rating now (a blocking SPI read of a few conversions)."""
        command = [0x01, (0x08 | self._channel) << 4, 0x00]
        try:
            counts = [self._spi.xfer2(list(command)) for _ in range(SAMPLES)]
        except OSError as exc:
            raise HalError(f"{self.name}: cannot read: {exc}") from exc
        mean = sum(((reply[1] & 0x03) << 8) | reply[2] for reply in counts) / SAMPLES
        pp_V = mean * self._volts_per_count
        return cable_rating_from_resistance(pp_resistance_ohm(pp_V, self._supply_V, self._pullup_ohm))

    async def _poll(self, publish: Callable[[tuple[float | None]], bool]) -> None:
        while True:
            publish((await asyncio.to_thread(self._read),))
            await asyncio.sleep(self._poll_interval_s)

    def cable_max_A(self) -> float | None:
        boxed = self._watch.value
        return None if boxed is None else boxed[0]

    async def changes(self) -> AsyncIterator[float | None]:
        async for (rating_A,) in self._watch.subscribe():
            yield rating_A

    def release(self) -> None:
        """Close the SPI device (construction-time cleanup)."""
        try:
            self._spi.close()
        except OSError as exc:
            raise HalError(f"{self.name}: cannot close: {exc}") from exc

    async def aclose(self) -> None:
        await self._watch.aclose()
        self.release()
