"""A simulated EVSE-DIN / EVSE-WB ("SimpleEVSE") board: Modbus RTU holding registers over a serial line.

A small RTU responder of our own, not pymodbus's server: pymodbus serves a device path, and the simulator holds the
pty's master end, which has none. It is faithful where a master can tell: CRC-16 (polynomial 0xA001, low byte
first), silence on a bad CRC or another unit id, function codes 03 and 04 (the same table; every known master uses
03), 06 and 16, exception 01 for any other function, 02 for an address outside the map or a write to a read-only
register, 03 for a bad count or value.

The board's rules as its register map describes them: PWM only with an EV present and register 1000 at 6 A or
more, limited by the cable's PP rating (1003); the relay closes in state C under PWM; bit 0 of 1004 turns charging
off at once (state 3, +12 V) until it is written back to 0; 1000 takes register 2000's value at boot. There is no
supervision: when the master falls silent the board keeps doing what it was last told - the simulator too.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from chargepoint.core.pilot import duty_from_current
from simulators.boards import SimEv

FIRMWARE: Final = 18
MIN_PWM_A: Final = 6
MAX_A: Final = 80
SILENCE_S: Final = 0.05  # a partial frame older than this is noise (RTU: 3.5 characters)

STATUS_REGS: Final = range(1000, 1010)
CONFIG_REGS: Final = range(2000, 2018)
WRITABLE: Final = frozenset({1000, 1004, *CONFIG_REGS}) - {2009}
CMD_TURN_OFF, CMD_RCD_TEST, CMD_CLEAR_RCD = 0x0001, 0x0002, 0x0004
BIT_RELAY, BIT_DIODE, BIT_RCD = 0x0001, 0x0002, 0x0020
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3
_VEHICLE: Final = {"A": 1, "B": 2, "C": 3, "D": 4}


def crc16(data: bytes) -> int:
    """Modbus CRC-16 (reflected polynomial 0xA001, initial 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(pdu: bytes) -> bytes:
    return pdu + struct.pack("<H", crc16(pdu))


class EvseDinSim:
    """``BoardSim`` of an EVSE-DIN on unit id ``device_id``; ``boot_current_A`` is register 2000 at power-up."""

    def __init__(self, now_s: float, *, device_id: int = 1, boot_current_A: int = 16) -> None:
        self.ev = SimEv()
        self.device_id = device_id
        self.config = {register: 0 for register in CONFIG_REGS}
        self.config.update({2000: boot_current_A, 2001: 1, 2002: 0, 2007: 1, 2009: 3})  # 2001 Modbus on
        self.configured_A = boot_current_A  # 1000: from 2000 at boot
        self.command = 0  # 1004
        self.faults: set[str] = set()
        self.welded = False
        self.relay_on = False
        self.evse_state = 1
        self.pwm = False
        self.offered_A = 0
        self.eeprom_writes = 0
        self.bad_frames = 0
        self._buffer = b""
        self._last_data_s = now_s

    # ------------------------------------------------------------------ board rules

    def _step(self) -> None:
        turned_off = bool(self.command & CMD_TURN_OFF)
        cable_A = self.ev.cable_A if self.ev.plugged else 0
        limit_A = min(self.configured_A, cable_A) if self.config[2007] else self.configured_A
        self.pwm = not self.faults and not turned_off and self.ev.plugged and limit_A >= MIN_PWM_A
        self.offered_A = limit_A if self.pwm else 0
        self.relay_on = self.pwm and self.ev.state(self.pwm) == "C"
        self.evse_state = 3 if turned_off else 2 if self.pwm else 1

    @property
    def contactor_closed(self) -> bool:
        return self.relay_on or self.welded

    def _register(self, address: int) -> int:
        if address in self.config:
            return self.config[address]
        vehicle = 5 if self.faults else _VEHICLE[self.ev.state(self.pwm)]
        # The relay bit is what the board drives: it cannot see welded contacts.
        bits = (BIT_RELAY if self.relay_on else 0) | (BIT_RCD if "rcd" in self.faults else 0)
        bits |= BIT_DIODE if "diode" in self.faults else 0
        values = {
            1000: self.configured_A, 1001: self.offered_A, 1002: vehicle,
            1003: self.ev.cable_A if self.ev.plugged and self.config[2007] else 0, 1004: self.command,
            1005: FIRMWARE, 1006: self.evse_state, 1007: bits, 1008: 0, 1009: 0,
        }
        return values[address]

    def _write(self, address: int, value: int) -> int | None:
        """Store one register; an exception code if the board refuses it."""
        if address not in WRITABLE:
            return ILLEGAL_ADDRESS
        if address == 1000:
            if value > MAX_A:
                return ILLEGAL_VALUE
            self.configured_A = value
        elif address == 1004:
            if value & CMD_CLEAR_RCD:
                self.faults.discard("rcd")
            self.command = value & CMD_TURN_OFF
        else:
            if self.config[address] != value:
                self.eeprom_writes += 1
            self.config[address] = value
        return None

    # ------------------------------------------------------------------ Modbus RTU

    @staticmethod
    def _frame_length(buffer: bytes) -> int | None:
        """Length of the request at the start of ``buffer``, None if more bytes are needed, 0 if unknown."""
        if len(buffer) < 2:
            return None
        function = buffer[1]
        if function in (3, 4, 6):
            return 8
        if function == 16:
            return None if len(buffer) < 7 else 9 + buffer[6]
        return 0

    def _exception(self, function: int, code: int) -> bytes:
        return with_crc(bytes((self.device_id, function | 0x80, code)))

    def _answer(self, frame: bytes) -> bytes:
        function = frame[1]
        address, count_or_value = struct.unpack(">HH", frame[2:6])
        if function in (3, 4):
            if not 1 <= count_or_value <= 125:
                return self._exception(function, ILLEGAL_VALUE)
            registers = range(address, address + count_or_value)
            if not all(r in STATUS_REGS or r in CONFIG_REGS for r in registers):
                return self._exception(function, ILLEGAL_ADDRESS)
            values = [self._register(r) for r in registers]
            header = bytes((self.device_id, function, 2 * len(values)))
            return with_crc(header + struct.pack(f">{len(values)}H", *values))
        if function == 6:
            error = self._write(address, count_or_value)
            return self._exception(function, error) if error else with_crc(frame[:6])
        # 16: address, count, byte count, values
        count, byte_count = count_or_value, frame[6]
        if not 1 <= count <= 123 or byte_count != 2 * count:
            return self._exception(function, ILLEGAL_VALUE)
        written: tuple[int, ...] = struct.unpack(f">{count}H", frame[7 : 7 + byte_count])
        if not all(a in WRITABLE for a in range(address, address + count)):
            return self._exception(function, ILLEGAL_ADDRESS)
        for offset, value in enumerate(written):
            error = self._write(address + offset, value)
            if error:
                return self._exception(function, error)
        return with_crc(frame[:6])

    def receive(self, data: bytes, now_s: float) -> bytes:
        if now_s - self._last_data_s > SILENCE_S:
            self._buffer = b""  # the rest of a frame that never finished
        self._last_data_s = now_s
        self._buffer += data
        out = b""
        while (length := self._frame_length(self._buffer)) is not None:
            if length == 0:  # an unknown function: answer it if the whole buffer is one valid frame
                frame, self._buffer = self._buffer, b""
                if len(frame) >= 4 and crc16(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]:
                    if frame[0] == self.device_id:
                        out += self._exception(frame[1], ILLEGAL_FUNCTION)
                else:
                    self.bad_frames += 1
                break
            if len(self._buffer) < length:
                break
            frame, self._buffer = self._buffer[:length], self._buffer[length:]
            if crc16(frame[:-2]) != struct.unpack("<H", frame[-2:])[0]:
                self.bad_frames += 1  # a slave stays silent on a corrupt frame
                self._buffer = b""
                break
            if frame[0] != self.device_id:
                continue  # another device on the bus
            out += self._answer(frame)
            self._step()
        return out

    def tick(self, now_s: float) -> bytes:
        del now_s  # no timers: this board supervises nothing
        self._step()
        return b""

    def stimulus(self, words: list[str], now_s: float) -> None:
        del now_s
        if not self.ev.apply(words, has_pp=True):
            match words:
                case ["fault", "rcd"] | ["fault", "diode"]:
                    self.faults.add(words[1])
                case ["fault", "weld"]:
                    self.welded = True
                case ["clear"]:
                    self.faults.clear()
                    self.welded = False
                case _:
                    raise ValueError(f"unknown stimulus {' '.join(words)!r}")
        self._step()

    def outputs(self) -> dict[str, Any]:
        return {
            "contactor_closed": self.contactor_closed,
            "duty_percent": (duty_from_current(self.offered_A) or 0.0) if self.pwm else 0.0,
            "current_A": self.offered_A,
            "pilot": "pwm" if self.pwm else "high",
            "state": self.evse_state,
            "vehicle": self.ev.state(self.pwm),
            "turned_off": bool(self.command & CMD_TURN_OFF),
        }
