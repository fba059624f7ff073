"""An Eastron SDM630 on Modbus TCP, served by pymodbus on loopback.

It emulates the register map rather than the driver's expectations, so the real ``Sdm630Meter``
is exercised end to end: float32 ABCD input registers (FC04), device id 1, and silence (not an
exception response) when the meter is "offline", as a dead RS-485 meter behind a gateway would be.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    # Imported when the server starts: the daemon reaches its safe state before paying for pymodbus.
    from pymodbus.constants import ExcCodes
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import SimDevice

# The SDM630 register map, written from Eastron's manual independently of hal.drivers.sdm630, so
# a wrong address in the driver makes the driver's tests fail instead of being mirrored here.
REG_VOLTAGE_L1: Final = 0x0000
REG_CURRENT_L1: Final = 0x0006
REG_POWER_L1: Final = 0x000C
REG_POWER_TOTAL: Final = 0x0034
REG_FREQUENCY: Final = 0x0046
REG_IMPORT_KWH: Final = 0x0048
REG_EXPORT_KWH: Final = 0x004A
REG_TOTAL_KWH: Final = 0x0156
INPUT_BLOCK_COUNT: Final = 0x004C  # V L1 .. export kWh, inclusive
TOTAL_BLOCK_COUNT: Final = 0x000A  # total kWh 0x156 .. per-phase import 0x15E (2 regs each)
REG_IMPORT_KWH_L1: Final = 0x015A
FREQUENCY_HZ: Final = 50.0


@dataclass(frozen=True, slots=True)
class MeterValues:
    """What the meter measures at one instant (per-phase tuples are L1, L2, L3)."""

    voltage_V: tuple[float, float, float]
    current_A: tuple[float, float, float]
    energy_Wh_import: float
    energy_Wh_import_per_phase: tuple[float, float, float]
    online: bool


def free_tcp_port(host: str) -> int:
    """Ask the kernel for a free port on ``host``; the server binds it right after (SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _float_registers(value: float) -> tuple[int, int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return high, low


class ModbusTcpSim:
    """A simulated Modbus device alone on a TCP port of its own; subclasses give ``_device()`` and set ``host``,
    ``requested_port`` (0: any free) and ``_server = None``."""

    host: str
    requested_port: int
    port: int
    _server: ModbusTcpServer | None

    def _device(self) -> SimDevice:
        raise NotImplementedError

    async def start(self) -> None:
        if self._server is not None:
            return
        self.port = self.requested_port or free_tcp_port(self.host)
        from pymodbus.server import ModbusTcpServer

        server = ModbusTcpServer(self._device(), address=(self.host, self.port), ignore_missing_devices=True)
        await server.serve_forever(background=True)
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            # What ModbusBaseServer.shutdown() does (it is untyped): end serving, close the listener and every
            # open connection.
            if not server.serving.done():
                server.serving.set_result(True)
            server.close()


class MeterServer(ModbusTcpSim):
    """One SDM630 on its own TCP port; registers are refreshed from ``measure`` on every request.

    Lazy refresh means every answer is exact at the instant it is sent, with no polling task.
    """

    def __init__(
        self,
        measure: Callable[[], MeterValues],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        device_id: int = 1,
    ) -> None:
        self._measure = measure
        self.host = host
        self.requested_port = port
        self.port = port
        self.device_id = device_id
        self._server: ModbusTcpServer | None = None
        self.requests = 0

    @property
    def endpoint(self) -> tuple[str, int, int]:
        return self.host, self.port, self.device_id

    def _device(self) -> SimDevice:
        from pymodbus.simulator import DataType, SimData, SimDevice

        return SimDevice(
            id=self.device_id,
            simdata=(
                [SimData(0, values=False, datatype=DataType.BITS)],
                [SimData(0, values=False, datatype=DataType.BITS)],
                # Setup registers (holding, float32): parity/stop 0x12, Modbus id 0x14, baud 0x1C (2 = 9600).
                [
                    SimData(
                        0x0012, values=[0.0, float(self.device_id)], datatype=DataType.FLOAT32, readonly=True
                    ),
                    SimData(0x001C, values=2.0, datatype=DataType.FLOAT32, readonly=True),
                ],
                [
                    SimData(0x0000, count=INPUT_BLOCK_COUNT, values=0, datatype=DataType.REGISTERS),
                    SimData(REG_TOTAL_KWH, count=TOTAL_BLOCK_COUNT, values=0, datatype=DataType.REGISTERS),
                ],
            ),
            action=self._on_request,
        )

    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code != 4:
            return None
        values = self._measure()
        if not values.online:
            # pymodbus then sends nothing (ignore_missing_devices): the client times out.
            from pymodbus.exceptions import NoSuchIdException

            raise NoSuchIdException("simulated meter offline")
        self.requests += 1

        def put(register: int, value: float) -> None:
            offset = register - start_address
            if offset >= 0 and offset + 1 < len(registers):
                registers[offset], registers[offset + 1] = _float_registers(value)

        power_W = tuple(v * i for v, i in zip(values.voltage_V, values.current_A, strict=True))
        for phase in range(3):
            put(REG_VOLTAGE_L1 + 2 * phase, values.voltage_V[phase])
            put(REG_CURRENT_L1 + 2 * phase, values.current_A[phase])
            put(REG_POWER_L1 + 2 * phase, power_W[phase])
            put(REG_IMPORT_KWH_L1 + 2 * phase, values.energy_Wh_import_per_phase[phase] / 1000.0)
        put(REG_POWER_TOTAL, sum(power_W))
        put(REG_FREQUENCY, FREQUENCY_HZ if any(values.voltage_V) else 0.0)
        put(REG_IMPORT_KWH, values.energy_Wh_import / 1000.0)
        put(REG_EXPORT_KWH, 0.0)
        put(REG_TOTAL_KWH, values.energy_Wh_import / 1000.0)
        return None
