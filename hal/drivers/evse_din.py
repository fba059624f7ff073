"""EVSE-DIN / EVSE-WB ("SimpleEVSE") controller boards over Modbus RTU, driven the way openWB and evcc drive them.

Holding registers (the board's manual; the same map in openWB, evcc, SimpleEVSE-WiFi and esphome-evse-wallbox):

======  ==  ============================================================================================
1000    RW  configured current, A (RAM; 0 = no PWM, the pilot stays at +12 V)
1001    R   current the PWM advertises now, A
1002    R   vehicle state: 1 ready (A), 2 EV present (B), 3 charging (C), 4 with ventilation (D), 5 failure
1003    R   current limit of the plugged cable's PP resistor, A (0: none detected)
1004    RW  command bits: bit 0 turn off charging now, bit 1 run the RCD test, bit 2 clear an RCD error
1005    R   firmware version
1006    R   EVSE state: 1 steady +12 V, 2 PWM, 3 off (standby)
1007    R   status bits (firmware 17+): 0 relay on, 1 diode check failed, 2 ventilation failed,
            3 waiting for pilot release, 4 RCD test running, 5 RCD error
2000    RW  current after boot, A (EEPROM: what 1000 holds after a reset)
2001..2017  configuration (Modbus address, minimum current, AN input, config bits, PP detection, ...)
======  ==  ============================================================================================

Every known master reads with function 03 and writes with 16, one register at a time; so does this driver.

Link loss: the register map has **no** supervision or timeout register. The board keeps the current of register
1000 and its relay as they are for as long as it is powered, whatever its master does; it stops only when the EV
stops or is unplugged. So this driver does the safest thing that exists: it makes register 2000 zero (a board that
resets offers nothing until told), withdraws every offer it does not need, and opens the relay with "turn off
charging now". What protects a charge whose controller died is outside the board: see docs/hardware.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pymodbus import ModbusException
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.pdu import ExceptionResponse

from chargepoint.core.pilot import PilotOutput, PilotState
from hal.boards import BoardPorts, BoardSettings, BoardState
from hal.drivers.outage import OutageLog
from hal.errors import HalError, HalTimeout

_log = logging.getLogger(__name__)

DEFAULT_BAUDRATE: Final = 9600
# The board answers slowly and masters leave a pause between frames (evcc 200 ms, openWB 100 ms).
DEFAULT_POLL_INTERVAL_S: Final = 0.2

REG_CONFIGURED_A: Final = 1000
REG_OUTPUT_A: Final = 1001
REG_VEHICLE: Final = 1002
REG_PP_LIMIT_A: Final = 1003
REG_COMMAND: Final = 1004
REG_FIRMWARE: Final = 1005
REG_EVSE_STATE: Final = 1006
REG_STATUS: Final = 1007
REG_BOOT_CURRENT_A: Final = 2000

COMMAND_TURN_OFF: Final = 0x0001
COMMAND_CLEAR_RCD: Final = 0x0004
STATUS_RELAY_ON: Final = 0x0001
STATUS_DIODE_FAILED: Final = 0x0002
STATUS_VENT_FAILED: Final = 0x0004
STATUS_RCD_ERROR: Final = 0x0020

VEHICLE_READY: Final = 1
VEHICLE_PRESENT: Final = 2
VEHICLE_CHARGING: Final = 3
VEHICLE_VENTILATION: Final = 4
VEHICLE_FAILURE: Final = 5
EVSE_STEADY_12V: Final = 1
EVSE_PWM: Final = 2
EVSE_OFF: Final = 3

_VEHICLE: Final = {VEHICLE_READY: PilotState.A, VEHICLE_PRESENT: PilotState.B, VEHICLE_CHARGING: PilotState.C,
                   VEHICLE_VENTILATION: PilotState.D}


@dataclass(frozen=True, slots=True)
class DinStatus:
    """Registers 1000..1007 (``status_bits`` None on firmware before 17, which has no register 1007)."""

    configured_A: int
    output_A: int
    vehicle: int
    pp_limit_A: int
    command: int
    firmware: int
    evse_state: int
    status_bits: int | None


def status_from_registers(registers: Sequence[int]) -> DinStatus:
    if len(registers) not in (7, 8):
        raise ValueError(f"expected 7 or 8 registers from 1000, got {len(registers)}")
    bits = registers[7] if len(registers) == 8 else None
    configured, output, vehicle, pp_limit, command, firmware, evse_state = registers[:7]
    return DinStatus(configured, output, vehicle, pp_limit, command, firmware, evse_state, bits)


def board_state(status: DinStatus) -> BoardState:
    """The ports' view of one EVSE-DIN status."""
    bits = status.status_bits
    pilot = PilotOutput.PWM if status.evse_state == EVSE_PWM else PilotOutput.HIGH
    offered_A = float(status.output_A) if pilot is PilotOutput.PWM else 0.0
    vehicle = _VEHICLE.get(status.vehicle)
    if bits is not None:
        relay = bool(bits & STATUS_RELAY_ON)
    else:  # before firmware 17 the relay is not reported: it is on while charging under PWM
        relay = pilot is PilotOutput.PWM and vehicle in (PilotState.C, PilotState.D)
    cable_A = float(status.pp_limit_A) if status.pp_limit_A > 0 else None
    if vehicle is not None:
        return BoardState(vehicle, pilot, offered_A, relay, cable_max_A=cable_A)
    if bits is not None and bits & STATUS_RCD_ERROR:
        # The EV is still plugged (an RCD trip is no reason to unplug); the board reports no vehicle state now.
        return BoardState(PilotState.B, pilot, offered_A, relay, rcd_tripped=True, cable_max_A=cable_A,
                          fault="RCD error")
    if bits is not None and bits & STATUS_DIODE_FAILED:
        return BoardState(PilotState.DIODE_FAILURE, pilot, offered_A, relay, cable_max_A=cable_A,
                          fault="diode check failed")
    fault = "ventilation failed" if bits is not None and bits & STATUS_VENT_FAILED else "failure"
    return BoardState(PilotState.E, pilot, offered_A, relay, cable_max_A=cable_A,
                      fault=f"{fault} (vehicle state {status.vehicle})")


class EvseDinBoard:
    """``BoardDriver`` for an EVSE-DIN / EVSE-WB board: a status poll of 1000..1007, writes with function 16."""

    can_drive_negative = False  # the board has no -12 V command: disable() turns charging off (+12 V)

    def __init__(self, settings: BoardSettings) -> None:
        if settings.supervision_s:
            raise ValueError("hardware.board.supervision_s: the EVSE-DIN board has no link supervision")
        self.name = f"EVSE-DIN {settings.link}/{settings.device_id}"
        self.board_max_current_A: float | None = None  # not in its register map: [hardware.board] max_current_A
        self._settings = settings
        self._poll_interval_s = settings.poll_interval_s or DEFAULT_POLL_INTERVAL_S
        self._timeout_s = settings.timeout_s
        self._client: AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self._ports: BoardPorts | None = None
        self._task: asyncio.Task[None] | None = None
        self._status_count = 8
        self._turned_off: bool | None = None  # None: unknown, write it

    # ------------------------------------------------------------------ Modbus

    def _make_client(self) -> AsyncModbusSerialClient:
        logger = logging.getLogger("pymodbus")
        if logger.level == logging.NOTSET:  # its per-frame chatter stays out of the journal unless asked for
            logger.setLevel(logging.ERROR)
        return AsyncModbusSerialClient(
            self._settings.link, baudrate=self._settings.baudrate or DEFAULT_BAUDRATE, bytesize=8, parity="N",
            stopbits=1,
            # Our own deadline fires first; pymodbus's own retries and reconnects would leave tasks nobody owns.
            timeout=self._timeout_s * 2 + 1, retries=0, reconnect_delay=0,
        )

    async def _call(self, what: str, request: str, address: int, value: int | None = None,
                    count: int = 1) -> list[int]:
        async with self._lock:
            if self._client is None:
                self._client = self._make_client()
            client = self._client
            try:
                async with asyncio.timeout(self._timeout_s):
                    if not client.connected and not await client.connect():
                        raise HalError(f"{self.name}: cannot open the line")
                    if request == "read":
                        response = await client.read_holding_registers(
                            address, count=count, device_id=self._settings.device_id)
                    else:
                        assert value is not None
                        response = await client.write_registers(
                            address, [value], device_id=self._settings.device_id)
            except TimeoutError:
                client.close()  # a half-answered request leaves the line's state unknown: start afresh
                raise HalTimeout(f"{self.name}: no answer to {what} within {self._timeout_s:g} s") from None
            except (ModbusException, OSError) as exc:
                client.close()
                raise HalError(f"{self.name}: {what}: {exc}") from exc
        if isinstance(response, ExceptionResponse) or response.isError():
            code = getattr(response, "exception_code", None)
            raise ModbusRejected(f"{self.name}: {what} refused (exception {code})", code)
        return list(response.registers) if request == "read" else []

    async def read(self, address: int, count: int) -> list[int]:
        return await self._call(f"read {address}+{count}", "read", address, count=count)

    async def write(self, address: int, value: int) -> None:
        await self._call(f"write {address}={value}", "write", address, value)

    # ------------------------------------------------------------------ states

    async def _refresh(self) -> None:
        try:
            registers = await self.read(REG_CONFIGURED_A, self._status_count)
        except ModbusRejected as exc:
            if exc.code != 2 or self._status_count == 7:
                raise
            _log.info("%s: no register 1007 (firmware before 17): the relay is inferred from the states", self.name)
            self._status_count = 7
            registers = await self.read(REG_CONFIGURED_A, self._status_count)
        status = status_from_registers(registers)
        self._turned_off = bool(status.command & COMMAND_TURN_OFF)
        state = board_state(status)
        if self._ports is not None:
            if state.fault is not None and (self._ports.state is None or self._ports.state.fault != state.fault):
                _log.error("%s: board fault: %s", self.name, state.fault)
            self._ports.update(state)

    async def _run(self) -> None:
        outage = OutageLog(self.name)
        while True:
            try:
                await self._refresh()
                outage.ended()
            except HalError as exc:  # the ports time the silence out
                outage.began(exc)
            await asyncio.sleep(self._poll_interval_s)

    # ------------------------------------------------------------------ BoardDriver

    async def start(self, ports: BoardPorts) -> None:
        self._ports = ports
        firmware, = await self.read(REG_FIRMWARE, 1)
        boot_A, = await self.read(REG_BOOT_CURRENT_A, 1)
        _log.info("%s: firmware %d", self.name, firmware)
        if boot_A != 0:
            # After a reset the board offers register 2000's current by itself, with nobody to stop it: make it 0.
            _log.warning("%s: register 2000 (current after boot) was %d A; setting it to 0", self.name, boot_A)
            await self.write(REG_BOOT_CURRENT_A, 0)
        await self._refresh()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"poll {self.name}")

    async def offer(self, current_A: int) -> None:
        await self.write(REG_CONFIGURED_A, current_A)
        if self._turned_off is not False:
            await self.write(REG_COMMAND, 0)
            self._turned_off = False
        if self._ports is not None:
            await self._refresh()

    async def pause(self) -> None:
        await self.write(REG_CONFIGURED_A, 0)
        if self._ports is not None:
            await self._refresh()

    async def stop_now(self) -> None:
        await self.write(REG_COMMAND, COMMAND_TURN_OFF)
        self._turned_off = True
        await self.write(REG_CONFIGURED_A, 0)
        if self._ports is not None:
            await self._refresh()

    async def disable(self) -> None:
        await self.stop_now()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            self._client.close()
            self._client = None


class ModbusRejected(HalError):
    """The board answered with a Modbus exception; ``code`` is its exception code."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code
