"""An Iskra WM3M4C signing meter on Modbus TCP, served by pymodbus on loopback.

Written from Iskra's register map (REFERENCE section 5, EVerest's RsIskraMeter) independently of
``hal.drivers.iskra_wm3m4c``, so that a wrong address in either makes the driver's tests fail. It signs as the meter
does: its own secp256r1 key, SHA-256 over the exact payload bytes it builds itself from the gateway's metadata, its
own identity and the begin and end readings of its energy counter.

The meter's state machine, as this simulator models it:
- 'B' (0x4200 at 7051) in the idle state, with metadata (7100.., length at 7056) that is a JSON object without '|',
  takes the begin reading (state 1, active); 'r' (0x7200) takes the end reading and signs begin and end in one
  dataset (state 0). Signing takes ``signing_s``: the status (7052) reads 2 meanwhile, then 15, and only then do the
  signed values (7612.., length 7057) and the signature (8188.., DER, length 7058) appear.
- Refusals change nothing but the status: a command in the wrong state is 131, missing or malformed metadata 252,
  metadata that would not leave room in the 1024-byte payload area for the meter's own fields and both readings
  253 (this simulator's reading of the area's size), any other command 130.
- ``power_failure()`` is a supply cut and its return: an open transaction survives as state 2 (its begin reading is
  in non-volatile memory), the clock (7071 = 0, UTC offset 0) and the metadata are lost; the meter then signs the
  end only once the gateway has written metadata again.
- Offline (``MeterValues.online`` False): silence, as a dead meter on RS-485 behind a gateway.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from simulators.meter_server import MeterValues, ModbusTcpSim

if TYPE_CHECKING:
    # Imported when the server starts: the daemon reaches its safe state before paying for pymodbus.
    from pymodbus.constants import ExcCodes
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import SimDevice

# Input registers (FC04).
REG_MODEL: Final = 0x0001  # 8 registers of ASCII, space padded; the serial number's 4 follow (0x0009)
REG_FREQUENCY: Final = 105  # T5
REG_VOLTAGE: Final = (107, 109, 111)  # T5
REG_CURRENT: Final = (126, 128, 130)  # T6
REG_POWER_TOTAL: Final = 140  # T6
REG_POWER: Final = (142, 144, 146)  # T6
REG_REACTIVE_TOTAL: Final = 148  # T6, L1-3 at 150/152/154 (no reactive load here: 0)
MEASUREMENTS: Final = (105, 156 - 105)  # first register, count
REG_IMPORT_EXPONENT: Final = 414
REG_EXPORT_EXPONENT: Final = 415
REG_IMPORT_COUNTER: Final = 418  # int32, high word first
REG_EXPORT_COUNTER: Final = 420
COUNTERS: Final = (414, 422 - 414)

# Holding registers of the signing state machine.
REG_STATE: Final = 7000
REG_COMMAND: Final = 7051
REG_STATUS: Final = 7052
REG_UTC_OFFSET: Final = 7053
REG_TIME_HIGH, REG_TIME_LOW = 7054, 7055  # Unix time
REG_METADATA_LENGTH: Final = 7056
REG_PAYLOAD_LENGTH: Final = 7057
REG_SIGNATURE_LENGTH: Final = 7058
REG_ALGORITHM: Final = 7060
REG_TIME_STATUS: Final = 7071
REG_METADATA: Final = 7100
REG_PAYLOAD: Final = 7612
REG_PUBLIC_KEY: Final = 8124
REG_SIGNATURE: Final = 8188
AREA_BYTES: Final = 1024  # metadata and payload: 512 registers each
SIGNATURE_AREA_BYTES: Final = 128
MAX_WRITE_REGISTERS: Final = 120  # per FC16 write, as the manual allows

IDLE, ACTIVE, AFTER_POWER_FAILURE = 0, 1, 2
STATUS_IDLE, STATUS_SIGNING, STATUS_OK = 1, 2, 15
INVALID_COMMAND, INVALID_STATE, INVALID_MESSAGE_FORMAT, INVALID_MESSAGE_SIZE = 130, 131, 252, 253
ALGORITHM_ECDSA_SECP256R1_SHA256: Final = 4
TIME_SYNCHRONISED: Final = 2
OBIS_IMPORT: Final = "01-00:01.08.00"
# Room an end reading may need beyond the begin reading's (a counter with more digits), checked at 'B'.
READING_GROWTH_BYTES: Final = 8
# OCMF's order of the payload's keys; the meter's own are PG, MV, MM, MS, MF and RD.
OCMF_ORDER: Final = ("FV", "GI", "GS", "GV", "PG", "MV", "MM", "MS", "MF", "IS", "IL", "IF", "IT", "ID", "TT", "CF",
                     "LC", "CT", "CI")
METER_KEYS: Final = frozenset({"PG", "MV", "MM", "MS", "MF", "RD"})


def _int16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def _t_registers(value: float, *, signed: bool) -> tuple[int, int]:
    """Iskra T5 (unsigned) or T6 (signed) with the finest exponent from -3 up whose mantissa fits 24 bits."""
    exact = Decimal(repr(value))
    low, high = (-(1 << 23), 1 << 23) if signed else (0, 1 << 24)
    for exponent in range(-3, 128):
        mantissa = int(exact.scaleb(-exponent).to_integral_value(rounding=ROUND_HALF_EVEN))
        if low <= mantissa < high:
            raw = mantissa & 0xFFFFFF
            return (exponent & 0xFF) << 8 | raw >> 16, raw & 0xFFFF
    raise ValueError(f"{value} does not fit Iskra's T format")


def _ascii_registers(text: str, count: int) -> list[int]:
    data = text.ljust(2 * count).encode("ascii")
    return [data[i] << 8 | data[i + 1] for i in range(0, 2 * count, 2)]


@dataclass(frozen=True, slots=True)
class _Signing:
    """A command the meter is still signing: what it will publish when ``done_at_s`` comes."""

    done_at_s: float
    payload: bytes
    signature: bytes
    ends: bool  # an 'r': a power cut before it is done leaves the transaction open


class IskraMeterServer(ModbusTcpSim):
    """One WM3M4C on its own TCP port. Measurements are taken from ``measure`` on every request, as with
    ``MeterServer``; the signing state lives here and is copied into the holding registers on every request."""

    def __init__(
        self,
        measure: Callable[[], MeterValues],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        device_id: int = 33,
        serial: str = "60000001",
        firmware_version: str = "2.0.4",
        private_key: ec.EllipticCurvePrivateKey | None = None,
        energy_exponent: int = 0,
        signing_s: float = 0.05,
    ) -> None:
        if len(serial) > 8 or not serial.isascii():
            raise ValueError(f"the serial number is at most 8 ASCII characters, got {serial!r}")
        self._measure = measure
        self.host = host
        self.requested_port = port
        self.port = port
        self.device_id = device_id
        self.serial = serial
        self.model = "WM3M4C"
        self.firmware_version = firmware_version
        self.energy_exponent = energy_exponent  # the import counter counts 10**energy_exponent Wh
        self.signing_s = signing_s
        self._key = private_key or ec.generate_private_key(ec.SECP256R1())
        self._server: ModbusTcpServer | None = None
        self.requests = 0
        # The signing state machine.
        self.state = IDLE
        self.status = STATUS_IDLE
        self.transactions = 0  # PG: T<n> of the last signed dataset
        self._utc_offset_min = 0
        self._clock: tuple[int, float] | None = None  # Unix time set by the gateway, and the monotonic time then
        self.time_status = 0
        self._metadata = bytearray(AREA_BYTES)
        self._metadata_length = 0
        self._begin: str | None = None  # the begin reading, as JSON text
        self._begin_metadata: dict[str, object] | None = None
        self._signing: _Signing | None = None
        self.payload = b""
        self.signature = b""
        self._other: dict[int, int] = {}  # writable registers the simulation gives no meaning (LCD, algorithm)

    @property
    def endpoint(self) -> tuple[str, int, int]:
        return self.host, self.port, self.device_id

    def public_key_der_hex(self) -> str:
        """The meter's public key as DER SubjectPublicKeyInfo, upper-case hex (what a verifier takes)."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex().upper()

    def _public_point(self) -> bytes:
        """X || Y, as the meter holds its key in 32 registers."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)[1:]

    # --- stimulus ------------------------------------------------------------------------------

    def power_failure(self) -> None:
        """The supply is cut and comes back: what the meter keeps in non-volatile memory survives."""
        self._settle()
        signing, self._signing = self._signing, None
        if signing is not None and signing.ends:
            self.transactions -= 1
            self.state = AFTER_POWER_FAILURE
        elif self.state != IDLE:
            self.state = AFTER_POWER_FAILURE
        self.status = STATUS_IDLE
        self._clock = None
        self.time_status = 0
        self._utc_offset_min = 0
        self._metadata = bytearray(AREA_BYTES)
        self._metadata_length = 0
        self._begin_metadata = None

    def export_state(self) -> dict[str, Any]:
        """What the meter holds across a restart of the firmware in place (it does not reboot with the firmware)."""
        if self._signing is not None:
            self._signing = replace(self._signing, done_at_s=0.0)  # finish it rather than lose it
        self._settle()
        key = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        return {
            "key_pem": key.decode("ascii"), "transactions": self.transactions, "state": self.state,
            "status": self.status, "begin": self._begin, "begin_metadata": self._begin_metadata,
            "utc_offset_min": self._utc_offset_min, "time_status": self.time_status,
            "clock_ahead_s": None if self._clock is None else self._time_s() - time.time(),
            "metadata": self._metadata[:self._metadata_length].hex(), "payload": self.payload.hex(),
            "signature": self.signature.hex(),
        }

    def import_state(self, state: dict[str, Any]) -> None:
        key = serialization.load_pem_private_key(state["key_pem"].encode("ascii"), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the saved meter key is not an EC key")
        self._key = key
        self.transactions, self.state, self.status = state["transactions"], state["state"], state["status"]
        self._begin, self._begin_metadata = state["begin"], state["begin_metadata"]
        self._utc_offset_min, self.time_status = state["utc_offset_min"], state["time_status"]
        ahead_s = state["clock_ahead_s"]
        self._clock = None if ahead_s is None else (int(time.time() + ahead_s), time.monotonic())
        metadata = bytes.fromhex(state["metadata"])
        self._metadata = bytearray(metadata.ljust(AREA_BYTES, b"\x00"))
        self._metadata_length = len(metadata)
        self.payload, self.signature = bytes.fromhex(state["payload"]), bytes.fromhex(state["signature"])

    # --- the meter's clock and counter ---------------------------------------------------------

    def _time_s(self) -> float:
        if self._clock is None:
            return time.time()  # its own real-time clock, not synchronised
        set_s, at_s = self._clock
        return set_s + time.monotonic() - at_s

    def _timestamp(self) -> str:
        local = datetime.fromtimestamp(self._time_s(), timezone(timedelta(minutes=self._utc_offset_min)))
        synchronised = "S" if self.time_status == TIME_SYNCHRONISED else "U"
        return f"{local:%Y-%m-%dT%H:%M:%S},{local.microsecond // 1000:03d}{local:%z} {synchronised}"

    def counter(self, energy_Wh: float) -> int:
        """The import counter register for ``energy_Wh``: whole units of 10**energy_exponent Wh, as a meter counts."""
        return int(Decimal(repr(energy_Wh)).scaleb(-self.energy_exponent).to_integral_value(rounding=ROUND_FLOOR))

    def _reading(self, transaction: str, values: MeterValues) -> str:
        kWh = Decimal(self.counter(values.energy_Wh_import)).scaleb(self.energy_exponent - 3)
        decimals = max(3, 3 - self.energy_exponent)
        value = f"{kWh:.{decimals}f}"
        fields = {"TM": self._timestamp(), "TX": transaction, "RV": value, "RI": OBIS_IMPORT, "RU": "kWh",
                  "RT": "AC", "EF": "", "ST": "G"}
        # RV is a JSON number in the meter's resolution: written as text, never through a float.
        return "{" + ",".join(f'"{key}":{text if key == "RV" else json.dumps(text)}'
                              for key, text in fields.items()) + "}"

    def _payload(self, metadata: dict[str, object], readings: list[str], pagination: int) -> bytes:
        fields: dict[str, object] = {k: v for k, v in metadata.items() if k not in METER_KEYS}
        fields.update(PG=f"T{pagination}", MV="Iskra", MM=self.model, MS=self.serial, MF=self.firmware_version)
        keys = [k for k in OCMF_ORDER if k in fields] + [k for k in fields if k not in OCMF_ORDER]
        parts = [f"{json.dumps(k)}:{json.dumps(fields[k], separators=(',', ':'))}" for k in keys]
        parts.append('"RD":[' + ",".join(readings) + "]")
        return ("{" + ",".join(parts) + "}").encode("utf-8")

    # --- the signing state machine -------------------------------------------------------------

    def _settle(self) -> None:
        signing = self._signing
        if signing is not None and time.monotonic() >= signing.done_at_s:
            self._signing = None
            self.payload, self.signature = signing.payload, signing.signature
            self.status = STATUS_OK
            if signing.ends:
                self._begin = None

    def _refuse(self, status: int) -> None:
        if self._signing is None:  # a busy meter keeps showing its signature in progress
            self.status = status

    def _given_metadata(self) -> dict[str, object] | int:
        """The metadata the gateway wrote, or the status refusing it."""
        if self._metadata_length == 0:
            return INVALID_MESSAGE_FORMAT
        if self._metadata_length > AREA_BYTES:
            return INVALID_MESSAGE_SIZE
        try:
            text = self._metadata[:self._metadata_length].decode("utf-8")
            metadata = json.loads(text)
        except ValueError:  # not UTF-8, or not JSON
            return INVALID_MESSAGE_FORMAT
        if not isinstance(metadata, dict) or "|" in text:
            return INVALID_MESSAGE_FORMAT
        return metadata

    def _start_signing(self, payload: bytes, signature: bytes, *, ends: bool) -> None:
        self.payload, self.signature = b"", b""
        self.status = STATUS_SIGNING
        self._signing = _Signing(time.monotonic() + self.signing_s, payload, signature, ends)

    def _sign(self, payload: bytes) -> bytes:
        return self._key.sign(payload, ec.ECDSA(hashes.SHA256()))

    def _command(self, command: int, values: MeterValues) -> None:
        letter = chr(command >> 8)
        if letter not in "Br":
            self._refuse(INVALID_COMMAND)
        elif self._signing is not None or (self.state == IDLE) != (letter == "B"):
            self._refuse(INVALID_STATE)
        elif letter == "B":
            self._begin_command(values)
        else:
            self._end_command(values)

    def _begin_command(self, values: MeterValues) -> None:
        metadata = self._given_metadata()
        if isinstance(metadata, int):
            self._refuse(metadata)
            return
        begin = self._reading("B", values)
        trial = self._payload(metadata, [begin, begin.replace('"TX":"B"', '"TX":"E"')], self.transactions + 1)
        if len(trial) + READING_GROWTH_BYTES > AREA_BYTES:
            self._refuse(INVALID_MESSAGE_SIZE)
            return
        self.state, self._begin, self._begin_metadata = ACTIVE, begin, metadata
        self._start_signing(b"", b"", ends=False)

    def _end_command(self, values: MeterValues) -> None:
        # After a power cut the metadata went with the supply: the gateway must have written it again.
        metadata = self._begin_metadata if self._begin_metadata is not None else self._given_metadata()
        if isinstance(metadata, int):
            self._refuse(metadata)
            return
        assert self._begin is not None  # an open transaction always has its begin reading
        payload = self._payload(metadata, [self._begin, self._reading("E", values)], self.transactions + 1)
        if len(payload) > AREA_BYTES:
            self._refuse(INVALID_MESSAGE_SIZE)
            return
        self.transactions += 1
        self.state, self._begin_metadata = IDLE, None
        self._start_signing(payload, self._sign(payload), ends=True)

    def _write(self, address: int, written: list[int], values: MeterValues) -> None:
        by_register = dict(zip(range(address, address + len(written)), written, strict=True))
        for register, value in by_register.items():
            if register == REG_UTC_OFFSET:
                self._utc_offset_min = _int16(value)
            elif register == REG_METADATA_LENGTH:
                self._metadata_length = value
            elif register == REG_TIME_STATUS:
                self.time_status = value
            elif REG_METADATA <= register < REG_METADATA + AREA_BYTES // 2:
                offset = 2 * (register - REG_METADATA)
                self._metadata[offset:offset + 2] = value.to_bytes(2, "big")
            elif register not in (REG_TIME_HIGH, REG_TIME_LOW):
                self._other[register] = value
        if REG_TIME_HIGH in by_register or REG_TIME_LOW in by_register:
            # A word written alone joins the other word of the running clock (a gateway may write them one by one).
            now_s = int(self._time_s())
            high = by_register.get(REG_TIME_HIGH, now_s >> 16 & 0xFFFF)
            low = by_register.get(REG_TIME_LOW, now_s & 0xFFFF)
            self._clock = (high << 16 | low, time.monotonic())
        if REG_COMMAND in by_register:
            self._command(by_register[REG_COMMAND], values)

    # --- registers -----------------------------------------------------------------------------

    def _holding_registers(self) -> dict[int, int]:
        now_s = int(self._time_s())
        registers = {
            REG_STATE: self.state, REG_STATUS: self.status, REG_UTC_OFFSET: self._utc_offset_min & 0xFFFF,
            REG_TIME_HIGH: now_s >> 16 & 0xFFFF, REG_TIME_LOW: now_s & 0xFFFF,
            REG_METADATA_LENGTH: self._metadata_length, REG_PAYLOAD_LENGTH: len(self.payload),
            REG_SIGNATURE_LENGTH: len(self.signature), REG_ALGORITHM: ALGORITHM_ECDSA_SECP256R1_SHA256,
            REG_TIME_STATUS: self.time_status, **self._other,
        }
        for first, data, size in ((REG_METADATA, bytes(self._metadata), AREA_BYTES),
                                  (REG_PAYLOAD, self.payload, AREA_BYTES),
                                  (REG_PUBLIC_KEY, self._public_point(), 64),
                                  (REG_SIGNATURE, self.signature, SIGNATURE_AREA_BYTES)):
            padded = data.ljust(size, b"\x00")
            for i in range(0, size, 2):
                registers[first + i // 2] = padded[i] << 8 | padded[i + 1]
        return registers

    def _input_registers(self, values: MeterValues) -> dict[int, int]:
        registers: dict[int, int] = {}

        def put(register: int, words: tuple[int, int]) -> None:
            registers[register], registers[register + 1] = words

        power_W = [v * i for v, i in zip(values.voltage_V, values.current_A, strict=True)]
        for phase in range(3):
            put(REG_VOLTAGE[phase], _t_registers(values.voltage_V[phase], signed=False))
            put(REG_CURRENT[phase], _t_registers(values.current_A[phase], signed=True))
            put(REG_POWER[phase], _t_registers(power_W[phase], signed=True))
            put(REG_REACTIVE_TOTAL + 2 + 2 * phase, _t_registers(0.0, signed=True))
        put(REG_POWER_TOTAL, _t_registers(sum(power_W), signed=True))
        put(REG_REACTIVE_TOTAL, _t_registers(0.0, signed=True))
        put(REG_FREQUENCY, _t_registers(50.0 if any(values.voltage_V) else 0.0, signed=False))
        counter = self.counter(values.energy_Wh_import) & 0xFFFFFFFF
        registers[REG_IMPORT_EXPONENT] = self.energy_exponent & 0xFFFF
        registers[REG_EXPORT_EXPONENT] = self.energy_exponent & 0xFFFF
        put(REG_IMPORT_COUNTER, (counter >> 16, counter & 0xFFFF))
        put(REG_EXPORT_COUNTER, (0, 0))
        return registers

    def _device(self) -> SimDevice:
        from pymodbus.simulator import DataType, SimData, SimDevice

        def block(first: int, count: int, *, readonly: bool) -> SimData:
            return SimData(first, count=count, values=0, datatype=DataType.REGISTERS, readonly=readonly)

        model_and_serial = _ascii_registers(self.model, 8) + _ascii_registers(self.serial, 4)
        return SimDevice(
            id=self.device_id,
            simdata=(
                [SimData(0, values=False, datatype=DataType.BITS)],
                [SimData(0, values=False, datatype=DataType.BITS)],
                [
                    block(REG_STATE, REG_COMMAND - REG_STATE, readonly=True),
                    block(REG_COMMAND, 1, readonly=False),
                    block(REG_STATUS, 1, readonly=True),
                    block(REG_UTC_OFFSET, REG_PAYLOAD_LENGTH - REG_UTC_OFFSET, readonly=False),
                    block(REG_PAYLOAD_LENGTH, 2, readonly=True),
                    block(REG_SIGNATURE_LENGTH + 1, 1, readonly=False),  # 7059: algorithm selection
                    block(REG_ALGORITHM, 1, readonly=True),
                    block(REG_ALGORITHM + 1, REG_TIME_STATUS - REG_ALGORITHM, readonly=False),  # LCD, time status
                    block(REG_METADATA, AREA_BYTES // 2, readonly=False),
                    block(REG_PAYLOAD, AREA_BYTES // 2, readonly=True),
                    block(REG_PUBLIC_KEY, 32, readonly=True),
                    block(REG_SIGNATURE, SIGNATURE_AREA_BYTES // 2, readonly=True),
                ],
                [
                    SimData(REG_MODEL, values=model_and_serial, datatype=DataType.REGISTERS, readonly=True),
                    block(MEASUREMENTS[0], MEASUREMENTS[1], readonly=True),
                    block(COUNTERS[0], COUNTERS[1], readonly=True),
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
        values = self._measure()
        if not values.online:
            # pymodbus then sends nothing (ignore_missing_devices): the client times out.
            from pymodbus.exceptions import NoSuchIdException

            raise NoSuchIdException("simulated meter offline")
        self.requests += 1
        self._settle()
        if set_values is not None and len(set_values) > MAX_WRITE_REGISTERS:
            from pymodbus.constants import ExcCodes

            return ExcCodes.ILLEGAL_VALUE
        if function_code == 4:
            current = self._input_registers(values)
        else:
            if set_values is not None:
                self._write(address, [int(v) for v in set_values], values)
            current = self._holding_registers()
        # pymodbus copies a write's values in after this returns, so a written register reads back as written.
        for offset in range(len(registers)):
            register = start_address + offset
            if register in current:
                registers[offset] = current[register]
        return None
