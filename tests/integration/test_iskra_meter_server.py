"""The simulated Iskra WM3M4C seen through a plain pymodbus client: its state machine refuses what the real meter
refuses, signs on its own time, and keeps its read-only registers read-only (so the driver's tests mean something)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from simulators.iskra_meter import IskraMeterServer
from simulators.meter_server import MeterValues

pytestmark = pytest.mark.timeout(20)

BEGIN, END = 0x4200, 0x7200
METADATA = json.dumps({"FV": "1.0", "IS": False, "IT": "NONE", "CT": "EVSEID", "CI": "DE*CPX*E1"},
                      separators=(",", ":")).encode()
VALUES = MeterValues((230.0, 230.0, 230.0), (0.0, 0.0, 0.0), 4_321.0, (0.0, 0.0, 0.0), online=True)


@dataclass
class Wire:
    server: IskraMeterServer
    client: AsyncModbusTcpClient

    async def holding(self, address: int, count: int = 1) -> list[int]:
        response = await self.client.read_holding_registers(address, count=count, device_id=33)
        assert not response.isError(), response
        return list(response.registers)

    async def write(self, address: int, *values: int) -> bool:
        """True if the meter took the write (no exception response)."""
        response = await self.client.write_registers(address, list(values), device_id=33)
        return not response.isError()

    async def write_metadata(self, metadata: bytes) -> None:
        padded = metadata + b"\x00" * (len(metadata) % 2)
        assert await self.write(7100, *[padded[i] << 8 | padded[i + 1] for i in range(0, len(padded), 2)])
        assert await self.write(7056, len(metadata))

    async def settled_status(self) -> int:
        for _ in range(100):
            status = (await self.holding(7052))[0]
            if status != 2:
                return status
            await asyncio.sleep(0.01)
        raise AssertionError("still signing")


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    server = IskraMeterServer(lambda: VALUES, signing_s=0.05)
    await server.start()
    client = AsyncModbusTcpClient(server.host, port=server.port, timeout=1, retries=0)
    await client.connect()
    try:
        yield Wire(server, client)
    finally:
        client.close()
        await server.stop()


async def test_an_end_in_the_idle_state_is_invalid_state_and_changes_nothing(wire: Wire) -> None:
    assert await wire.write(7051, END)
    assert await wire.holding(7052) == [131]
    assert await wire.holding(7000) == [0]
    assert wire.server.transactions == 0


async def test_a_begin_without_metadata_is_invalid_message_format(wire: Wire) -> None:
    assert await wire.write(7051, BEGIN)
    assert await wire.holding(7052) == [252]
    assert await wire.holding(7000) == [0]


@pytest.mark.parametrize("metadata", [b"not json", b'["a list"]', b'{"ID":"a|b"}'])
async def test_metadata_that_is_no_json_object_or_holds_a_pipe_is_invalid_message_format(
    wire: Wire, metadata: bytes
) -> None:
    await wire.write_metadata(metadata)
    assert await wire.write(7051, BEGIN)
    assert await wire.holding(7052) == [252]
    assert await wire.holding(7000) == [0]


async def test_an_unknown_command_is_invalid_command(wire: Wire) -> None:
    assert await wire.write(7051, 0x5800)  # 'X'
    assert await wire.holding(7052) == [130]


async def test_signing_shows_status_2_then_15_and_the_dataset_only_once_signed(wire: Wire) -> None:
    await wire.write_metadata(METADATA)
    assert await wire.write(7051, BEGIN)
    assert await wire.holding(7052) == [2]
    assert await wire.settled_status() == 15
    assert await wire.holding(7000) == [1]
    assert await wire.write(7051, BEGIN)  # a second begin while active
    assert await wire.holding(7052) == [131]
    assert await wire.write(7051, END)
    assert await wire.holding(7052) == [2]
    assert await wire.holding(7057, 2) == [0, 0]  # nothing to read before the signature is done
    assert await wire.settled_status() == 15
    payload_bytes, signature_bytes = await wire.holding(7057, 2)
    assert payload_bytes == len(wire.server.payload) and 68 <= signature_bytes <= 72
    payload = json.loads(wire.server.payload)
    assert payload["PG"] == "T1" and payload["MM"] == "WM3M4C" and payload["CI"] == "DE*CPX*E1"
    assert [reading["RV"] for reading in payload["RD"]] == [4.321, 4.321]
    assert [reading["TM"][-1] for reading in payload["RD"]] == ["U", "U"]  # nobody set the clock


async def test_a_power_failure_keeps_the_transaction_and_loses_clock_and_metadata(wire: Wire) -> None:
    await wire.write_metadata(METADATA)
    assert await wire.write(7071, 2)
    assert await wire.write(7051, BEGIN)
    assert await wire.settled_status() == 15
    wire.server.power_failure()
    assert await wire.holding(7000) == [2]
    assert await wire.holding(7071) == [0]
    assert await wire.holding(7056) == [0]
    assert await wire.write(7051, END)  # no metadata yet: refused, the transaction stays open
    assert await wire.holding(7052) == [252]
    assert await wire.holding(7000) == [2]
    await wire.write_metadata(METADATA)
    assert await wire.write(7051, END)
    assert await wire.settled_status() == 15
    assert await wire.holding(7000) == [0]


async def test_read_only_registers_and_writes_over_120_registers_are_refused(wire: Wire) -> None:
    for read_only in (7000, 7052, 7057, 7612, 8124, 8188):
        assert not await wire.write(read_only, 1), read_only
    assert not await wire.write(7100, *([0x2020] * 121))
    assert await wire.write(7100, *([0x2020] * 120))


async def test_the_clock_runs_from_the_time_written_in_two_single_writes(wire: Wire) -> None:
    unix_s = 1_700_000_000
    await wire.client.write_register(7054, unix_s >> 16, device_id=33)
    await wire.client.write_register(7055, unix_s & 0xFFFF, device_id=33)
    high, low = await wire.holding(7054, 2)
    assert 0 <= (high << 16 | low) - unix_s <= 1


async def test_an_offline_meter_is_silent() -> None:
    server = IskraMeterServer(lambda: MeterValues((0.0,) * 3, (0.0,) * 3, 0.0, (0.0,) * 3, online=False))
    await server.start()
    client = AsyncModbusTcpClient(server.host, port=server.port, timeout=0.3, retries=0)
    try:
        await client.connect()
        with pytest.raises(ModbusIOException, match="No response"):
            await asyncio.wait_for(client.read_holding_registers(7000, device_id=33), 1.0)
        assert server.requests == 0
    finally:
        client.close()
        await server.stop()
