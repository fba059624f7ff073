"""Eastron SDM630 (v2) three-phase MID meter over Modbus TCP (gateway) or Modbus RTU (RS-485).

The register map stays here, as the ``EnergyMeter`` contract asks: callers see only ``MeterReading``.
One FC04 request covers every value we need, so the snapshot is consistent (voltage, current, power
and energy all come from the same meter cycle) and the bus carries one frame per sample.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Sequence
from typing import Final

from chargepoint.core.metering import MeterReading
from hal.drivers.modbus_link import ModbusLink
from hal.errors import MeterError

# Register map (PDU addresses, input registers, float32 big-endian words and bytes, no scaling).
REG_VOLTAGE_L1: Final = 0x0000
REG_VOLTAGE_L2: Final = 0x0002
REG_VOLTAGE_L3: Final = 0x0004
REG_CURRENT_L1: Final = 0x0006
REG_CURRENT_L2: Final = 0x0008
REG_CURRENT_L3: Final = 0x000A
REG_POWER_L1: Final = 0x000C
REG_POWER_L2: Final = 0x000E
REG_POWER_L3: Final = 0x0010
REG_POWER_TOTAL: Final = 0x0034
REG_FREQUENCY: Final = 0x0046
REG_IMPORT_KWH: Final = 0x0048
REG_EXPORT_KWH: Final = 0x004A
REG_TOTAL_KWH: Final = 0x0156

# One request from V L1 up to and including the import counter: 0x4A registers (< 80, the meter's limit).
READ_START: Final = REG_VOLTAGE_L1
READ_COUNT: Final = REG_IMPORT_KWH + 2 - READ_START

def _float_at(registers: Sequence[int], address: int) -> float:
    """The IEEE-754 float32 in two registers, high word first, each big-endian (ABCD)."""
    offset = address - READ_START
    value: float = struct.unpack(">f", struct.pack(">HH", registers[offset], registers[offset + 1]))[0]
    return value


class Sdm630Meter:
    """``EnergyMeter`` for an Eastron SDM630, over the shared Modbus link (``hal.drivers.modbus_link``: lazy client,
    our own deadline, a fresh connection after any failure)."""

    def __init__(self, link: ModbusLink) -> None:
        self._link = link

    @classmethod
    def tcp(cls, host: str, port: int, device_id: int = 1, timeout_s: float = 1.0) -> Sdm630Meter:
        """A meter behind a Modbus TCP gateway (or the simulator)."""
        return cls(ModbusLink.tcp("SDM630", host, port, device_id, timeout_s))

    @classmethod
    def rtu(
        cls,
        serial_port: str,
        baudrate: int = 9600,
        parity: str = "N",
        device_id: int = 1,
        timeout_s: float = 1.0,
    ) -> Sdm630Meter:
        """A meter on an RS-485 line (SDM630 default: 9600 8N1, id 1)."""
        return cls(ModbusLink.rtu("SDM630", serial_port, baudrate, parity, device_id, timeout_s))

    async def read(self) -> MeterReading:
        """One FC04 request, decoded; connection and reply must both fit in ``timeout_s``."""
        link = self._link
        response = await link.request(
            lambda client: client.read_input_registers(READ_START, count=READ_COUNT, device_id=link.device_id))
        registers = list(response.registers)
        if len(registers) != READ_COUNT:
            raise MeterError(f"{link.name}: expected {READ_COUNT} registers, got {len(registers)}")
        return self._decode(registers, measured_at_s=time.monotonic())

    def _decode(self, registers: Sequence[int], *, measured_at_s: float) -> MeterReading:
        energy_kWh = _float_at(registers, REG_IMPORT_KWH)
        if not math.isfinite(energy_kWh) or energy_kWh < 0:
            raise MeterError(f"{self._link.name}: impossible import energy {energy_kWh!r} kWh")
        power_W = _float_at(registers, REG_POWER_TOTAL)
        voltage_V = (
            _float_at(registers, REG_VOLTAGE_L1),
            _float_at(registers, REG_VOLTAGE_L2),
            _float_at(registers, REG_VOLTAGE_L3),
        )
        current_A = (
            _float_at(registers, REG_CURRENT_L1),
            _float_at(registers, REG_CURRENT_L2),
            _float_at(registers, REG_CURRENT_L3),
        )
        phase_power_W = (
            _float_at(registers, REG_POWER_L1),
            _float_at(registers, REG_POWER_L2),
            _float_at(registers, REG_POWER_L3),
        )
        if not all(math.isfinite(value) for value in (power_W, *voltage_V, *current_A, *phase_power_W)):
            raise MeterError(
                f"{self._link.name}: non-finite value "
                f"(P={power_W!r}, V={voltage_V!r}, I={current_A!r}, P per phase={phase_power_W!r})"
            )
        return MeterReading(
            energy_Wh_import=round(energy_kWh * 1000),
            power_W=power_W,
            voltage_V=voltage_V,
            current_A=current_A,
            measured_at_s=measured_at_s,
            phase_power_W=phase_power_W,
        )

    async def aclose(self) -> None:
        self._link.close()
