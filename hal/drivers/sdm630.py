"""Eastron SDM630 (v2) three-phase MID meter over Modbus TCP (gateway) or Modbus RTU (RS-485).

The register map stays here, as the ``EnergyMeter`` contract asks: callers see only ``MeterReading``.
One FC04 request covers every value we need, so the snapshot is consistent (voltage, current, power
and energy all come from the same meter cycle) and the bus carries one frame per sample.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import termios
import time
from collections.abc import Callable, Sequence
from typing import Final

from pymodbus import ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from chargepoint.core.metering import MeterReading
from hal.errors import HalTimeout, MeterError

_log = logging.getLogger(__name__)

_Client = AsyncModbusTcpClient | AsyncModbusSerialClient

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

_PYMODBUS_LOGGER: Final = "pymodbus"


def _quiet_pymodbus() -> None:
    """Keep pymodbus's per-frame chatter (connect warnings every retry) out of the journal.

    Only when nobody configured its logger: a technician debugging the bus can still turn it up.
    """
    logger = logging.getLogger(_PYMODBUS_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)


def _float_at(registers: Sequence[int], address: int) -> float:
    """The IEEE-754 float32 in two registers, high word first, each big-endian (ABCD)."""
    offset = address - READ_START
    value: float = struct.unpack(">f", struct.pack(">HH", registers[offset], registers[offset + 1]))[0]
    return value


class Sdm630Meter:
    """``EnergyMeter`` for an Eastron SDM630.

    Connects lazily on the first ``read()`` and again after any failure, so a meter that was
    unplugged or a gateway that rebooted comes back without restarting the daemon. The pymodbus
    client itself is built on the first read too, because it binds to the running event loop and
    the runtime may build its backends before the loop starts. pymodbus's own background reconnect
    is disabled: it would leave a task running that nobody owns.
    """

    def __init__(
        self,
        make_client: Callable[[], _Client],
        *,
        device_id: int,
        timeout_s: float,
        description: str,
    ) -> None:
        if not 1 <= device_id <= 247:
            raise ValueError(f"Modbus device id must be 1..247, got {device_id}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        _quiet_pymodbus()
        self._make_client = make_client
        self._client: _Client | None = None
        self._device_id = device_id
        self._timeout_s = timeout_s
        self._description = description
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    def tcp(cls, host: str, port: int, device_id: int = 1, timeout_s: float = 1.0) -> Sdm630Meter:
        """A meter behind a Modbus TCP gateway (or the simulator)."""

        def make_client() -> AsyncModbusTcpClient:
            return AsyncModbusTcpClient(
                host,
                port=port,
                # Our own deadline (in read) always fires first; pymodbus's would log and retry.
                timeout=timeout_s * 2 + 1,
                retries=0,
                reconnect_delay=0,
            )

        return cls(make_client, device_id=device_id, timeout_s=timeout_s, description=f"tcp://{host}:{port}/{device_id}")

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
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be 'N', 'E' or 'O', got {parity!r}")

        def make_client() -> AsyncModbusSerialClient:
            return AsyncModbusSerialClient(
                serial_port,
                baudrate=baudrate,
                parity=parity,
                bytesize=8,
                stopbits=1,
                timeout=timeout_s * 2 + 1,
                retries=0,
                reconnect_delay=0,
            )

        return cls(
            make_client,
            device_id=device_id,
            timeout_s=timeout_s,
            description=f"rtu://{serial_port}@{baudrate}{parity}/{device_id}",
        )

    async def read(self) -> MeterReading:
        """One FC04 request, decoded; connection and reply must both fit in ``timeout_s``."""
        if self._closed:
            raise MeterError(f"SDM630 {self._description}: meter is closed")
        async with self._lock:
            if self._client is None:
                self._client = self._make_client()
            client = self._client
            try:
                async with asyncio.timeout(self._timeout_s):
                    registers = await self._read_registers(client)
            except TimeoutError as exc:
                # A half-answered request leaves the transaction state unknown: start afresh.
                client.close()
                raise HalTimeout(
                    f"SDM630 {self._description}: no answer within {self._timeout_s:g} s"
                ) from exc
            except MeterError:
                client.close()
                raise
            except (ModbusException, OSError, termios.error) as exc:
                # termios.error: a serial line that refuses its settings (an adapter without that parity or speed).
                client.close()
                raise MeterError(f"SDM630 {self._description}: {exc}") from exc
            return self._decode(registers, measured_at_s=time.monotonic())

    async def _read_registers(self, client: _Client) -> list[int]:
        if not client.connected:
            _log.debug("connecting to SDM630 %s", self._description)
            if not await client.connect():
                raise MeterError(f"SDM630 {self._description}: cannot connect")
        response = await client.read_input_registers(
            READ_START, count=READ_COUNT, device_id=self._device_id
        )
        if response.isError():  # an exception response: the meter refused the request
            raise MeterError(f"SDM630 {self._description}: exception response (code {response.exception_code})")
        registers = list(response.registers)
        if len(registers) != READ_COUNT:
            raise MeterError(
                f"SDM630 {self._description}: expected {READ_COUNT} registers, got {len(registers)}"
            )
        return registers


    def _decode(self, registers: Sequence[int], *, measured_at_s: float) -> MeterReading:
        energy_kWh = _float_at(registers, REG_IMPORT_KWH)
        if not math.isfinite(energy_kWh) or energy_kWh < 0:
            raise MeterError(f"SDM630 {self._description}: impossible import energy {energy_kWh!r} kWh")
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
        if not all(math.isfinite(value) for value in (power_W, *voltage_V, *current_A)):
            raise MeterError(
                f"SDM630 {self._description}: non-finite value "
                f"(P={power_W!r}, V={voltage_V!r}, I={current_A!r})"
            )
        return MeterReading(
            energy_Wh_import=round(energy_kWh * 1000),
            power_W=power_W,
            voltage_V=voltage_V,
            current_A=current_A,
            measured_at_s=measured_at_s,
        )

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            self._client.close()
