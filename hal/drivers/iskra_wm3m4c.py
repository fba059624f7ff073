"""Iskra WM3M4C three-phase MID meter that signs its readings (OCMF, German calibration law), over Modbus TCP or RTU.

Measurements are input registers (FC04) in Iskra's "T5"/"T6" format (a signed decimal exponent in the top byte, a
24-bit mantissa below) and an int32 energy counter with its own exponent register; two requests cover them.

Signing is the meter's state machine in holding registers (FC03 reads, FC06/FC16 writes): the gateway sets the
meter's clock, writes the OCMF metadata (who charges, where), and commands 'B' (begin) or 'r' (end, with the begin
and end readings in one dataset); the meter signs on its own time, and the gateway polls the command status. The
meter builds the payload itself and holds it with its DER signature: this driver only copies both out, byte for
byte, and frames them as ``OCMF|payload|signature`` (the firmware must never build or sign what the meter signs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from pymodbus.pdu import ModbusPDU

from chargepoint.core.metering import MeterReading, SignedMeterData
from hal.drivers.modbus_link import Client, ModbusLink
from hal.errors import HalTimeout, MeterError
from hal.protocols import OcmfIdentification

_log = logging.getLogger(__name__)

METER_NAME: Final = "Iskra WM3M4C"

# Input registers (FC04), PDU addresses.
REG_SERIAL: Final = 0x0009  # 4 registers of ASCII, 2 characters each, space padded
SERIAL_REGISTERS: Final = 4
REG_FREQUENCY: Final = 105  # T5
REG_VOLTAGE_L1: Final = 107  # T5, L2 and L3 follow every 2 registers
REG_CURRENT_L1: Final = 126  # T6
REG_POWER_TOTAL: Final = 140  # T6
REG_POWER_L1: Final = 142  # T6
REG_IMPORT_EXPONENT: Final = 414  # int16 decimal exponent of the import counter
REG_EXPORT_EXPONENT: Final = 415
REG_IMPORT_COUNTER: Final = 418  # int32, high word first, Wh after scaling
REG_EXPORT_COUNTER: Final = 420
MEASURE_START: Final = REG_FREQUENCY
MEASURE_COUNT: Final = REG_POWER_L1 + 3 * 2 - MEASURE_START  # 105..147
COUNTER_START: Final = REG_IMPORT_EXPONENT
COUNTER_COUNT: Final = REG_EXPORT_COUNTER + 2 - COUNTER_START  # 414..421

# Holding registers of the signing state machine (Iskra's numbers 47xxx).
REG_STATE: Final = 7000
REG_COMMAND: Final = 7051
REG_STATUS: Final = 7052
REG_UTC_OFFSET: Final = 7053  # int16 minutes; 7054-7055 (Unix time, high word first) follow it
REG_METADATA_LENGTH: Final = 7056
REG_PAYLOAD_LENGTH: Final = 7057  # the signature's length (7058) follows it
REG_TIME_STATUS: Final = 7071
REG_METADATA: Final = 7100
REG_PAYLOAD: Final = 7612
REG_PUBLIC_KEY: Final = 8124
PUBLIC_KEY_REGISTERS: Final = 32  # X || Y of the secp256r1 point, 32 bytes each
REG_SIGNATURE: Final = 8188

COMMAND_BEGIN: Final = 0x4200  # 'B'
COMMAND_END: Final = 0x7200  # 'r': end, with the begin and end readings in one dataset
STATE_IDLE: Final = 0
STATE_ACTIVE: Final = 1
STATE_AFTER_POWER_FAILURE: Final = 2
STATE_AFTER_RESET: Final = 3
STATUS_SIGNATURE_OK: Final = 15
TIME_SYNCHRONISED: Final = 2

STATUS_NAMES: Final = {
    0: "not initialised", 1: "idle", 2: "signature in progress", 15: "signature OK",
    128: "invalid date/time", 129: "checksum error", 130: "invalid command", 131: "invalid state",
    132: "invalid measurement", 133: "test mode error", 243: "verify state error", 244: "signature state error",
    245: "key pair generation error", 246: "SHA failed", 247: "init failed", 248: "data not locked",
    249: "config not locked", 250: "verify error", 251: "public key error", 252: "invalid message format",
    253: "invalid message size", 254: "signature error", 255: "undefined error",
}
# The meter has not finished the command yet (0 and 1: it has not started on it).
_PENDING_STATUSES: Final = frozenset({0, 1, 2})

MAX_METADATA_BYTES: Final = 1024
MAX_PAYLOAD_BYTES: Final = 1024  # the 512 registers from 7612 up to the public key
MAX_SIGNATURE_BYTES: Final = 72  # the longest DER ECDSA secp256r1 signature
MAX_WRITE_REGISTERS: Final = 120  # the meter's limit per FC16 write
MAX_READ_REGISTERS: Final = 125  # Modbus's limit per FC03/FC04 read
POLL_INTERVAL_S: Final = 0.02

# DER SubjectPublicKeyInfo header of an uncompressed secp256r1 point: with the meter's X || Y appended, the key as the
# transparency software and OCPP's MeterPublicKey take it.
PUBLIC_KEY_DER_PREFIX: Final = "3059301306072A8648CE3D020106082A8648CE3D03010703420004"
SIGNATURE_ALGORITHM: Final = "ECDSA-secp256r1-SHA256"
# After a firmware restart the metadata of the open transaction is lost; the meter still needs some to sign its end.
MINIMAL_METADATA: Final = b'{"FV":"1.0","IS":false,"IT":"NONE"}'

def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, "unknown status")


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _t5(registers: Sequence[int], offset: int) -> float:
    """Iskra T5: int8 decimal exponent in the high byte of the first register, unsigned 24-bit mantissa below."""
    high, low = registers[offset], registers[offset + 1]
    mantissa = (high & 0xFF) << 16 | low
    # Decimal keeps 230.12 exactly 230.12 (mantissa * 10.0 ** -2 would not).
    return float(Decimal(mantissa).scaleb(_signed(high >> 8, 8)))


def _t6(registers: Sequence[int], offset: int) -> float:
    """Iskra T6: as T5 with a signed (two's complement) 24-bit mantissa."""
    high, low = registers[offset], registers[offset + 1]
    mantissa = _signed((high & 0xFF) << 16 | low, 24)
    return float(Decimal(mantissa).scaleb(_signed(high >> 8, 8)))


def _registers_of(data: bytes) -> list[int]:
    """Two bytes per register, big-endian; an odd last byte is padded with NUL."""
    if len(data) % 2:
        data += b"\x00"
    return [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]


def _bytes_of(registers: Sequence[int]) -> bytes:
    return b"".join(register.to_bytes(2, "big") for register in registers)


def _utc_offset_min() -> int:
    offset = datetime.now().astimezone().utcoffset()
    return 0 if offset is None else int(offset.total_seconds()) // 60


class IskraWm3m4cMeter:
    """``SigningMeter`` for an Iskra WM3M4C.

    Like ``Sdm630Meter``: the pymodbus client is built on first use (it binds to the running loop), connects again
    after any failure, and every request has our own deadline. One lock serialises the bus; another keeps a begin, an
    end or a look at the transaction state from interleaving with one another (plain reads go on between their
    requests). The public key and serial number are read once.
    """

    def __init__(self, link: ModbusLink, *, signing_timeout_s: float) -> None:
        if signing_timeout_s <= 0:
            raise ValueError(f"signing_timeout_s must be positive, got {signing_timeout_s}")
        self._link = link
        self._device_id = link.device_id
        self._signing_timeout_s = signing_timeout_s
        self._name = link.name
        self._transaction = asyncio.Lock()
        self._serial: str | None = None
        self._public_key_hex: str | None = None
        self._last_metadata: bytes | None = None  # what the meter was given for the transaction it holds

    @classmethod
    def tcp(
        cls, host: str, port: int, device_id: int = 33, timeout_s: float = 1.0, signing_timeout_s: float = 10.0
    ) -> IskraWm3m4cMeter:
        """A meter behind a Modbus TCP gateway (or the simulator)."""
        return cls(ModbusLink.tcp(METER_NAME, host, port, device_id, timeout_s), signing_timeout_s=signing_timeout_s)

    @classmethod
    def rtu(
        cls,
        serial_port: str,
        baudrate: int = 9600,
        parity: str = "N",
        device_id: int = 33,
        timeout_s: float = 1.0,
        signing_timeout_s: float = 10.0,
    ) -> IskraWm3m4cMeter:
        """A meter on an RS-485 line (Iskra's factory Modbus id: 33)."""
        return cls(ModbusLink.rtu(METER_NAME, serial_port, baudrate, parity, device_id, timeout_s),
                   signing_timeout_s=signing_timeout_s)

    # --- the bus -----------------------------------------------------------------------------------

    async def _request(self, send: Callable[[Client], Awaitable[ModbusPDU]]) -> ModbusPDU:
        return await self._link.request(send)

    async def _read(self, address: int, count: int, *, holding: bool) -> list[int]:
        """``count`` registers from ``address``, in as many requests as Modbus's limit per request needs."""
        registers: list[int] = []
        while len(registers) < count:
            registers += await self._read_chunk(address + len(registers), min(count - len(registers),
                                                                               MAX_READ_REGISTERS), holding=holding)
        return registers

    async def _read_chunk(self, start: int, count: int, *, holding: bool) -> list[int]:
        if holding:
            response = await self._request(
                lambda c: c.read_holding_registers(start, count=count, device_id=self._device_id))
        else:
            response = await self._request(
                lambda c: c.read_input_registers(start, count=count, device_id=self._device_id))
        registers = list(response.registers)
        if len(registers) != count:
            raise MeterError(f"{self._name}: expected {count} registers at {start}, got {len(registers)}")
        return registers

    async def _write(self, address: int, values: Sequence[int]) -> None:
        if len(values) == 1:
            await self._request(lambda c: c.write_register(address, values[0], device_id=self._device_id))
        else:
            await self._request(lambda c: c.write_registers(address, list(values), device_id=self._device_id))

    # --- measurements ------------------------------------------------------------------------------

    async def read(self) -> MeterReading:
        """Two FC04 requests (the measurements, then the counters), decoded."""
        measurements = await self._read(MEASURE_START, MEASURE_COUNT, holding=False)
        counters = await self._read(COUNTER_START, COUNTER_COUNT, holding=False)
        return self._decode(measurements, counters, measured_at_s=time.monotonic())

    def _decode(self, measurements: Sequence[int], counters: Sequence[int], *, measured_at_s: float) -> MeterReading:
        counter_offset = REG_IMPORT_COUNTER - COUNTER_START
        counter = _signed(counters[counter_offset] << 16 | counters[counter_offset + 1], 32)
        energy_Wh = Decimal(counter).scaleb(_signed(counters[REG_IMPORT_EXPONENT - COUNTER_START], 16))
        if not math.isfinite(float(energy_Wh)) or energy_Wh < 0:
            raise MeterError(f"{self._name}: impossible import energy {float(energy_Wh)!r} Wh")

        def phases(decode: Callable[[Sequence[int], int], float], first: int) -> tuple[float, float, float]:
            offset = first - MEASURE_START
            return (decode(measurements, offset), decode(measurements, offset + 2),
                    decode(measurements, offset + 4))

        # T5 and T6 hold at most 2**24 * 10**127: always finite, so only the counter can be impossible.
        return MeterReading(
            energy_Wh_import=int(energy_Wh.to_integral_value(rounding=ROUND_HALF_EVEN)),
            power_W=_t6(measurements, REG_POWER_TOTAL - MEASURE_START),
            voltage_V=phases(_t5, REG_VOLTAGE_L1),
            current_A=phases(_t6, REG_CURRENT_L1),
            measured_at_s=measured_at_s,
            phase_power_W=phases(_t6, REG_POWER_L1),
        )

    # --- identity ----------------------------------------------------------------------------------

    async def serial_number(self) -> str:
        if self._serial is None:
            data = _bytes_of(await self._read(REG_SERIAL, SERIAL_REGISTERS, holding=False))
            serial = data.decode("ascii", errors="replace").strip(" \x00")
            if not serial or not serial.isprintable():
                raise MeterError(f"{self._name}: no readable serial number ({data.hex()})")
            self._serial = serial
        return self._serial

    async def public_key_hex(self) -> str:
        """The meter's key as a DER SubjectPublicKeyInfo, upper-case hex."""
        if self._public_key_hex is None:
            point = _bytes_of(await self._read(REG_PUBLIC_KEY, PUBLIC_KEY_REGISTERS, holding=True))
            self._public_key_hex = PUBLIC_KEY_DER_PREFIX + point.hex().upper()
        return self._public_key_hex

    # --- signing -----------------------------------------------------------------------------------

    def _metadata(self, identification: OcmfIdentification) -> bytes:
        """The OCMF metadata the meter puts in its dataset, compact, in OCMF's order; PG is the meter's own."""
        fields: dict[str, object] = {
            "FV": "1.0",
            "GI": identification.gateway_id,
            "GS": identification.gateway_serial,
            "GV": identification.gateway_version,
            "IS": identification.identified,
            "IF": list(identification.identification_flags),
            "IT": identification.identification_type,
            "ID": identification.identification_data,
        }
        if identification.tariff_text:
            fields["TT"] = identification.tariff_text
        fields["CT"] = identification.charge_point_type
        fields["CI"] = identification.charge_point_id
        # ensure_ascii: one byte per character, so the length the meter is told is the length it reads.
        data = json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        if b"|" in data:
            raise MeterError(f"{self._name}: OCMF metadata must not contain '|' (it separates the sections)")
        if len(data) > MAX_METADATA_BYTES:
            raise MeterError(f"{self._name}: OCMF metadata of {len(data)} bytes, the meter takes at most "
                             f"{MAX_METADATA_BYTES}")
        return data

    async def _state(self) -> int:
        state = (await self._read(REG_STATE, 1, holding=True))[0]
        if state not in (STATE_IDLE, STATE_ACTIVE, STATE_AFTER_POWER_FAILURE, STATE_AFTER_RESET):
            raise MeterError(f"{self._name}: unknown measurement state {state}")
        return state

    async def _set_clock(self) -> None:
        unix_s = int(time.time())
        await self._write(REG_UTC_OFFSET, [_utc_offset_min() & 0xFFFF, unix_s >> 16 & 0xFFFF, unix_s & 0xFFFF])
        await self._write(REG_TIME_STATUS, [TIME_SYNCHRONISED])

    async def _write_metadata(self, metadata: bytes) -> None:
        registers = _registers_of(metadata)
        for start in range(0, len(registers), MAX_WRITE_REGISTERS):
            await self._write(REG_METADATA + start, registers[start:start + MAX_WRITE_REGISTERS])
        await self._write(REG_METADATA_LENGTH, [len(metadata)])
        self._last_metadata = metadata

    async def _command(self, command: int, what: str) -> None:
        """Send ``command`` and wait until the meter has signed; its refusal or silence is an error."""
        await self._write(REG_COMMAND, [command])
        deadline_s = time.monotonic() + self._signing_timeout_s
        while True:
            status = (await self._read(REG_STATUS, 1, holding=True))[0]
            if status == STATUS_SIGNATURE_OK:
                return
            if status not in _PENDING_STATUSES:
                raise MeterError(f"{self._name}: the meter refused to sign the {what}: {status_name(status)} "
                                 f"(status {status})")
            if time.monotonic() >= deadline_s:
                raise HalTimeout(f"{self._name}: the {what} was not signed within {self._signing_timeout_s:g} s "
                                 f"({status_name(status)})")
            await asyncio.sleep(POLL_INTERVAL_S)

    async def transaction_open(self) -> bool:
        async with self._transaction:
            return await self._state() != STATE_IDLE

    async def begin_transaction(self, identification: OcmfIdentification) -> None:
        metadata = self._metadata(identification)  # refused before anything reaches the meter
        async with self._transaction:
            state = await self._state()
            if state != STATE_IDLE:
                _log.warning("%s: the meter held a transaction open (state %d): ending it, its signed data dropped",
                             self._name, state)
                await self._end(state)
            await self._set_clock()
            await self._write_metadata(metadata)
            await self._command(COMMAND_BEGIN, "begin")
            state = await self._state()
            if state != STATE_ACTIVE:
                raise MeterError(f"{self._name}: the meter signed the begin but is not active (state {state})")

    async def end_transaction(self) -> SignedMeterData:
        async with self._transaction:
            state = await self._state()
            if state == STATE_IDLE:
                raise MeterError(f"{self._name}: no transaction open")
            return await self._end(state)

    async def _end(self, state: int) -> SignedMeterData:
        if state == STATE_AFTER_POWER_FAILURE:
            # The manual's power-loss behaviour: the meter lost its clock and the metadata with its supply, and signs
            # the end only once it has both again.
            await self._set_clock()
            await self._write_metadata(self._last_metadata or MINIMAL_METADATA)
        await self._command(COMMAND_END, "end")
        payload_bytes, signature_bytes = await self._read(REG_PAYLOAD_LENGTH, 2, holding=True)
        if not (0 < payload_bytes <= MAX_PAYLOAD_BYTES and 0 < signature_bytes <= MAX_SIGNATURE_BYTES):
            raise MeterError(f"{self._name}: no complete signed dataset (values of {payload_bytes} bytes, "
                             f"signature of {signature_bytes} bytes)")
        payload_data = _bytes_of(await self._read(REG_PAYLOAD, (payload_bytes + 1) // 2, holding=True))
        signature = _bytes_of(await self._read(REG_SIGNATURE, (signature_bytes + 1) // 2, holding=True))
        try:
            payload = payload_data[:payload_bytes].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MeterError(f"{self._name}: signed values are not text: {exc}") from exc
        signature_section = json.dumps(
            {"SA": SIGNATURE_ALGORITHM, "SD": signature[:signature_bytes].hex().upper()}, separators=(",", ":"))
        return SignedMeterData(ocmf=f"OCMF|{payload}|{signature_section}", public_key_hex=await self.public_key_hex())

    async def aclose(self) -> None:
        self._link.close()
