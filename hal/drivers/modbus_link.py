"""One Modbus device on a TCP gateway or an RS-485 line, as every meter driver talks to it.

- The pymodbus client is built on first use: it binds to the running event loop, and the runtime may build its
  backends before the loop starts.
- Every request has our own deadline, connection included; pymodbus's own timeout is set beyond it, with no retries
  and no background reconnect (a task nobody owns), so that ours is the only one a caller sees.
- After any failure the client is closed, and the next request connects afresh: a meter unplugged or a gateway that
  rebooted comes back without a restart.
- One lock serialises the bus. Errors are ``HalTimeout`` (no answer in time) or ``MeterError``, naming the device.
"""

from __future__ import annotations

import asyncio
import logging
import termios
from collections.abc import Awaitable, Callable
from typing import Final

from pymodbus import ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU

from hal.errors import HalTimeout, MeterError

_log = logging.getLogger(__name__)

Client = AsyncModbusTcpClient | AsyncModbusSerialClient
PARITIES: Final = ("N", "E", "O")
_PYMODBUS_LOGGER: Final = "pymodbus"


def quiet_pymodbus() -> None:
    """Keep pymodbus's per-frame chatter (connect warnings every retry) out of the journal.

    Only when nobody configured its logger: a technician debugging the bus can still turn it up.
    """
    logger = logging.getLogger(_PYMODBUS_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)


class ModbusLink:
    def __init__(self, make_client: Callable[[], Client], *, name: str, device_id: int, timeout_s: float) -> None:
        if not 1 <= device_id <= 247:
            raise ValueError(f"Modbus device id must be 1..247, got {device_id}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        quiet_pymodbus()
        self._make_client = make_client
        self._client: Client | None = None
        self.name = name
        self.device_id = device_id
        self.timeout_s = timeout_s
        self._bus = asyncio.Lock()
        self._closed = False

    @classmethod
    def tcp(cls, model: str, host: str, port: int, device_id: int, timeout_s: float) -> ModbusLink:
        def make_client() -> AsyncModbusTcpClient:
            return AsyncModbusTcpClient(host, port=port, timeout=timeout_s * 2 + 1, retries=0, reconnect_delay=0)

        return cls(make_client, name=f"{model} tcp://{host}:{port}/{device_id}", device_id=device_id,
                   timeout_s=timeout_s)

    @classmethod
    def rtu(cls, model: str, serial_port: str, baudrate: int, parity: str, device_id: int,
            timeout_s: float) -> ModbusLink:
        if parity not in PARITIES:
            raise ValueError(f"parity must be 'N', 'E' or 'O', got {parity!r}")

        def make_client() -> AsyncModbusSerialClient:
            return AsyncModbusSerialClient(serial_port, baudrate=baudrate, parity=parity, bytesize=8, stopbits=1,
                                           timeout=timeout_s * 2 + 1, retries=0, reconnect_delay=0)

        return cls(make_client, name=f"{model} rtu://{serial_port}@{baudrate}{parity}/{device_id}",
                   device_id=device_id, timeout_s=timeout_s)

    async def request(self, send: Callable[[Client], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """One exchange; connection and answer must both fit in ``timeout_s``. An exception response is a
        ``MeterError`` naming its code."""
        if self._closed:
            raise MeterError(f"{self.name}: meter is closed")
        async with self._bus:
            if self._client is None:
                self._client = self._make_client()
            client = self._client
            try:
                async with asyncio.timeout(self.timeout_s):
                    if not client.connected:
                        _log.debug("connecting to %s", self.name)
                        if not await client.connect():
                            raise MeterError(f"{self.name}: cannot connect")
                    response = await send(client)
            except TimeoutError as exc:
                # A half-answered request leaves the transaction state unknown: start afresh.
                client.close()
                raise HalTimeout(f"{self.name}: no answer within {self.timeout_s:g} s") from exc
            except MeterError:
                client.close()
                raise
            except (ModbusException, OSError, termios.error) as exc:
                # termios.error: a serial line that refuses its settings (an adapter without that parity or speed).
                client.close()
                raise MeterError(f"{self.name}: {exc}") from exc
        if response.isError():  # an exception response: the meter refused the request
            raise MeterError(f"{self.name}: exception response (code {response.exception_code})")
        return response

    def close(self) -> None:
        self._closed = True
        if self._client is not None:
            self._client.close()
