"""ZVT (ECR interface of German-market payment terminals) APDUs: pure encoding and decoding, no I/O.

An APDU is a control field (class, instruction), a length and data. The length is one byte, or ``FF`` and two
bytes little-endian when the data is 255 bytes or more. The terminal's answers carry their data as BMPs: a
one-byte field number and a value whose length the number fixes (``04`` amount: 6 bytes BCD), or an LL-var /
LLL-var length (``F0 F8`` = 8: two or three bytes ``Fx``, one decimal digit each), or, for ``06``, a BER-TLV
container. The tables below follow the ZVT ECR-Interface specification (revision 13.x, Verband der
Terminalhersteller in Deutschland); we read them alongside two open implementations: Qwello/zvt (Rust,
captures from Feig cVEND terminals in EV chargers) and Portalum.Zvt (C#).

Card numbers: BMP ``22`` carries the PAN with masked digits as ``E`` nibbles. We keep only the last four
digits (``MaskedCard.last4``), whatever the terminal sent, and never keep or log the rest.

Size: the wire format of one protocol - APDU and length rules, BCD, LL/LLL-var, the BMP table, TLV, result
codes and the command builders - is one unit that the driver and the simulator share; split, each part would
need all the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from hal.payment import MaskedCard, PaymentProtocolError, mask_pan

# Control fields (class, instruction).
REGISTRATION: Final = b"\x06\x00"
LOG_OFF: Final = b"\x06\x02"
COMPLETION: Final = b"\x06\x0f"
ABORT_FROM_PT: Final = b"\x06\x1e"
REPEAT_RECEIPT: Final = b"\x06\x20"
PRE_AUTHORISATION: Final = b"\x06\x22"
PARTIAL_REVERSAL: Final = b"\x06\x23"
BOOK_TOTAL: Final = b"\x06\x24"
PRE_AUTH_REVERSAL: Final = b"\x06\x25"
REVERSAL: Final = b"\x06\x30"
END_OF_DAY: Final = b"\x06\x50"
ABORT_FROM_ECR: Final = b"\x06\xb0"
PRINT_LINE: Final = b"\x06\xd1"
PRINT_TEXT_BLOCK: Final = b"\x06\xd3"
STATUS_ENQUIRY: Final = b"\x05\x01"
STATUS_INFORMATION: Final = b"\x04\x0f"
INTERMEDIATE_STATUS: Final = b"\x04\xff"
ACK: Final = b"\x80\x00"  # positive completion "80 00 00"
NACK_CLASS: Final = 0x84  # negative completion "84 cc 00"

ACK_APDU: Final = b"\x80\x00\x00"

# Receipt number FFFF in a Partial-Reversal asks the terminal for its open pre-authorisations (spec 2.10.1).
OPEN_PRE_AUTHS_QUERY: Final = 0xFFFF

# Registration config byte: the ECR prints the receipts of payment (02) and administration (04) functions (the
# terminal sends them as print lines), wants intermediate status (08), controls payment (10) and administration
# (20) functions. Bit 80 (print text blocks) is off: print lines are what every terminal supports.
CONFIG_BYTE: Final = 0x3E

# Payment type (BMP 19) 0x40: the terminal decides (PIN or signature, online or offline).
PAYMENT_TYPE_PT_DECIDES: Final = 0x40


class ZvtFrameError(PaymentProtocolError, ValueError):
    """Bytes that are not a valid ZVT APDU, BMP, BCD or TLV."""


# --- BCD and lengths ---------------------------------------------------------------------------------------------


def bcd_encode(value: int, length: int) -> bytes:
    """``value`` as ``length`` bytes of packed BCD, zero-padded on the left."""
    if value < 0:
        raise ValueError(f"BCD cannot carry a negative value ({value})")
    digits = str(value).rjust(2 * length, "0")
    if len(digits) > 2 * length:
        raise ValueError(f"{value} does not fit {length} BCD bytes")
    return bytes.fromhex(digits)


def bcd_decode(data: bytes) -> int:
    digits = data.hex()
    if not digits.isdigit():
        raise ZvtFrameError(f"not BCD: {digits}")
    return int(digits) if digits else 0


def encode_amount(minor_units: int) -> bytes:
    """BMP 04's value: the amount in minor units, 6 bytes BCD (at most 999 999 999 999)."""
    return bcd_encode(minor_units, 6)


def encode_llvar(data: bytes, digits: int = 2) -> bytes:
    """An LL-var (``digits`` = 2) or LLL-var (3) value: each length digit as ``Fx``, then the data."""
    if len(data) >= 10**digits:
        raise ValueError(f"{len(data)} bytes do not fit an {'L' * digits}-var")
    return bytes(0xF0 | int(d) for d in str(len(data)).rjust(digits, "0")) + data


def decode_varlen(data: bytes, digits: int) -> int:
    """The length of an LL-var/LLL-var from its ``digits`` leading ``Fx`` bytes."""
    if len(data) < digits:
        raise ZvtFrameError("truncated LL/LLL-var length")
    value = 0
    for byte in data[:digits]:
        if byte & 0xF0 != 0xF0 or byte & 0x0F > 9:
            raise ZvtFrameError(f"bad LL/LLL-var length byte {byte:02X}")
        value = value * 10 + (byte & 0x0F)
    return value


# --- APDUs -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Apdu:
    control: bytes  # two bytes: class, instruction
    data: bytes = b""

    def encode(self) -> bytes:
        if len(self.control) != 2:
            raise ValueError("a control field is two bytes")
        n = len(self.data)
        if n > 0xFFFF:
            raise ValueError(f"{n} bytes do not fit one APDU")
        length = bytes([n]) if n < 0xFF else b"\xff" + n.to_bytes(2, "little")
        return self.control + length + self.data

    @property
    def is_ack(self) -> bool:
        return self.control == ACK

    @property
    def is_nack(self) -> bool:
        return self.control[0] == NACK_CLASS

    def __repr__(self) -> str:  # the data may hold card fields: show the command and the size only
        return f"Apdu({self.control.hex(' ')}, {len(self.data)} bytes)"


def header_length(header: bytes) -> tuple[int, int]:
    """From the first 3 bytes of an APDU: (extra length bytes still to read, data length if known else -1)."""
    if len(header) != 3:
        raise ZvtFrameError("an APDU header is 3 bytes")
    return (2, -1) if header[2] == 0xFF else (0, header[2])


def decode_apdu(frame: bytes) -> Apdu:
    """One whole APDU; its length must match the bytes exactly."""
    if len(frame) < 3:
        raise ZvtFrameError(f"an APDU has at least 3 bytes, not {len(frame)}")
    if frame[2] == 0xFF:
        if len(frame) < 5:
            raise ZvtFrameError("truncated extended length")
        n, start = int.from_bytes(frame[3:5], "little"), 5
    else:
        n, start = frame[2], 3
    if len(frame) - start != n:
        raise ZvtFrameError(f"APDU {frame[:2].hex(' ')} says {n} data bytes but carries {len(frame) - start}")
    return Apdu(frame[:2], frame[start:])


# --- BMPs --------------------------------------------------------------------------------------------------------

_LL: Final = -2
_LLL: Final = -3
_TLV: Final = -1

# BMP number -> fixed length, or _LL / _LLL / _TLV (spec chapter "BMP list").
BMP_LENGTHS: Final[dict[int, int]] = {
    0x01: 1, 0x02: 1, 0x03: 1, 0x04: 6, 0x05: 1, 0x06: _TLV, 0x0B: 3, 0x0C: 3, 0x0D: 2, 0x0E: 2, 0x17: 2,
    0x19: 1, 0x22: _LL, 0x23: _LL, 0x24: _LLL, 0x27: 1, 0x29: 4, 0x2A: 15, 0x2D: _LL, 0x2E: _LLL, 0x37: 3,
    0x3A: 2, 0x3B: 8, 0x3C: _LLL, 0x3D: 3, 0x49: 2, 0x60: _LLL, 0x70: 4, 0x71: 4, 0x72: 1, 0x73: 1, 0x74: 1,
    0x75: 1, 0x87: 2, 0x88: 3, 0x8A: 1, 0x8B: _LL, 0x8C: 1, 0x92: _LLL, 0x9A: _LLL, 0xA0: 1, 0xA7: _LL,
    0xAA: 3, 0xAF: _LLL, 0xBA: 5, 0xD0: 1, 0xD1: _LL, 0xD2: 1, 0xD3: 1, 0xE0: 1, 0xE9: 1, 0xEA: 1, 0xEB: 8,
    0xF0: 1, 0xF9: 1, 0xFA: 1, 0xFB: 1, 0xFC: 1, 0xFD: 1,
    **{n: _LL for n in range(0xE1, 0xE9)}, **{n: _LL for n in range(0xF1, 0xF9)},
}


def iter_bmps(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(BMP number, value) pairs of a BMP-coded data block; the TLV container's value includes no length."""
    pos = 0
    while pos < len(data):
        number = data[pos]
        pos += 1
        kind = BMP_LENGTHS.get(number)
        if kind is None:
            raise ZvtFrameError(f"unknown BMP {number:02X} at offset {pos - 1}")
        if kind == _TLV:
            n, used = tlv_length(data, pos)
            pos += used
        elif kind in (_LL, _LLL):
            digits = -kind
            n = decode_varlen(data[pos:], digits)
            pos += digits
        else:
            n = kind
        if pos + n > len(data):
            raise ZvtFrameError(f"BMP {number:02X} needs {n} bytes, {len(data) - pos} left")
        yield number, data[pos:pos + n]
        pos += n


# --- TLV (BER) ---------------------------------------------------------------------------------------------------


def tlv_length(data: bytes, pos: int) -> tuple[int, int]:
    """(length, bytes used) of a BER length at ``pos``: < 80 one byte, 81 xx, 82 xx xx."""
    if pos >= len(data):
        raise ZvtFrameError("truncated TLV length")
    first = data[pos]
    if first < 0x80:
        return first, 1
    count = first & 0x7F
    if count not in (1, 2) or pos + 1 + count > len(data):
        raise ZvtFrameError(f"bad TLV length byte {first:02X}")
    return int.from_bytes(data[pos + 1:pos + 1 + count], "big"), 1 + count


def encode_tlv_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n <= 0xFF:
        return bytes([0x81, n])
    return bytes([0x82]) + n.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    value: bytes = b""
    children: tuple[Tlv, ...] = ()

    @property
    def constructed(self) -> bool:
        return _first_tag_byte(self.tag) & 0x20 != 0

    def find(self, tag: int) -> Tlv | None:
        return find_tlv(self.children, tag)


def _first_tag_byte(tag: int) -> int:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")[0]


def parse_tlv(data: bytes) -> tuple[Tlv, ...]:
    """Every TLV object of ``data``; constructed ones (tag bit 0x20) are parsed into ``children`` too."""
    items: list[Tlv] = []
    pos = 0
    while pos < len(data):
        start = pos
        first = data[pos]
        pos += 1
        if first & 0x1F == 0x1F:  # multi-byte tag: more bytes while bit 8 is set
            while True:
                if pos >= len(data):
                    raise ZvtFrameError("truncated TLV tag")
                pos += 1
                if data[pos - 1] & 0x80 == 0:
                    break
        tag = int.from_bytes(data[start:pos], "big")
        n, used = tlv_length(data, pos)
        pos += used
        if pos + n > len(data):
            raise ZvtFrameError(f"TLV tag {tag:X} needs {n} bytes, {len(data) - pos} left")
        value = data[pos:pos + n]
        pos += n
        items.append(Tlv(tag, value, parse_tlv(value) if first & 0x20 else ()))
    return tuple(items)


def encode_tlv(items: tuple[Tlv, ...] | list[Tlv]) -> bytes:
    out = bytearray()
    for item in items:
        value = encode_tlv(item.children) if item.children else item.value
        out += item.tag.to_bytes(max(1, (item.tag.bit_length() + 7) // 8), "big")
        out += encode_tlv_length(len(value)) + value
    return bytes(out)


def find_tlv(items: tuple[Tlv, ...], tag: int) -> Tlv | None:
    """The first object with ``tag``, searched depth first."""
    for item in items:
        if item.tag == tag:
            return item
        found = find_tlv(item.children, tag)
        if found is not None:
            return found
    return None


def tlv_bmp(items: list[Tlv]) -> bytes:
    """BMP 06 with its TLV container."""
    body = encode_tlv(items)
    return b"\x06" + encode_tlv_length(len(body)) + body


# --- Result codes ------------------------------------------------------------------------------------------------

# The spec's result codes (BMP 27, Abort 06 1E), the common ones. 0x01-0x63 come from the host / card issuer.
RESULT_CODES: Final[dict[int, str]] = {
    0x00: "no error",
    0x05: "declined by the card issuer",
    0x64: "card not readable",
    0x65: "card data not present",
    0x66: "processing error",
    0x67: "function not permitted for ec and Maestro cards",
    0x68: "function not permitted for credit and tank cards",
    0x6A: "turnover file full",
    0x6B: "function deactivated (terminal not registered)",
    0x6C: "abort via timeout or abort key",
    0x6E: "card in blocked list",
    0x6F: "wrong currency",
    0x71: "credit not sufficient",
    0x72: "chip error",
    0x73: "card data incorrect",
    0x77: "end-of-day batch not possible",
    0x78: "card expired",
    0x79: "card not yet valid",
    0x7A: "card unknown",
    0x7D: "communication error",
    0x83: "function not possible",
    0x85: "key missing",
    0x89: "PIN pad defective",
    0x9A: "ZVT protocol error",
    0x9B: "error from dial-up / communication fault",
    0x9C: "please wait (repeat later)",
    0xA0: "receiver not ready",
    0xA1: "remote station does not respond",
    0xA3: "no connection",
    0xB1: "memory full",
    0xB2: "merchant journal full",
    0xB4: "already reversed",
    0xB5: "reversal not possible",
    0xB7: "pre-authorisation incorrect (amount too high) or amount wrong",
    0xB8: "error pre-authorisation",
    0xC3: "maximum amount exceeded",
    0xC5: "payment method not supported",
    0xC6: "currency not applicable",
    0xC8: "amount too small",
    0xCC: "printer not ready",
    0xE2: "card reader does not answer / defective",
    0xF0: "open end-of-day batch present",
    0xFC: "necessary device not present or defective",
    0xFF: "system error",
}

# The terminal cannot work now (no host, busy, broken): retry later, not the card's fault.
UNAVAILABLE_CODES: Final = frozenset({0x6B, 0x7D, 0x9B, 0x9C, 0xA0, 0xA1, 0xA3, 0xB1, 0xE2, 0xFC, 0xFF})
# The terminal gave up waiting (no card presented) or the customer pressed abort.
TIMEOUT_CODES: Final = frozenset({0x6C})


def result_text(code: int) -> str:
    if code in RESULT_CODES:
        return RESULT_CODES[code]
    if 0x01 <= code <= 0x63:
        return f"declined by the host or card issuer (code {code})"
    return f"result code {code:#04x}"


def result_kind(code: int) -> str:
    """``approved``, ``timeout``, ``unavailable`` or ``declined``: how a result code maps onto our results."""
    if code == 0x00:
        return "approved"
    if code in TIMEOUT_CODES:
        return "timeout"
    if code in UNAVAILABLE_CODES:
        return "unavailable"
    return "declined"


# --- Status information (04 0F) ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusInformation:
    """What 04 0F said about a transaction; card fields already reduced to ``MaskedCard``."""

    result_code: int | None = None
    amount_minor: int | None = None
    currency_code: int | None = None
    trace_no: int | None = None
    original_trace_no: int | None = None
    receipt_no: int | None = None
    terminal_id: str | None = None
    aid: str | None = None
    card: MaskedCard = field(default_factory=MaskedCard)
    additional_text: str | None = None
    card_type: int | None = None
    tlv: tuple[Tlv, ...] = field(default=(), repr=False)


# TLV tags we read from status information: 4C card UID (contactless; Feig sends it), 1F16/1F17 the extended
# error code and text.
TAG_CARD_UID: Final = 0x4C
TAG_EXT_ERROR_TEXT: Final = 0x1F17


def decode_text(data: bytes) -> str:
    """ZVT text fields use the terminal's code page (CP437 by default); NULs pad them."""
    return data.decode("cp437", errors="replace").rstrip("\x00").rstrip()


def masked_card_from_bmp22(value: bytes) -> str | None:
    """The last four digits of BMP 22 (PAN, ``E`` = masked digit, ``F`` = odd-length padding)."""
    digits = value.hex().upper().rstrip("F").replace("E", "*")
    return mask_pan(digits)


def parse_status_information(data: bytes) -> StatusInformation:
    """04 0F's BMPs. Track data (23, 24, 2D) and any PAN are dropped here; only their last four digits stay."""
    fields: dict[str, Any] = {}
    last4: str | None = None
    scheme: str | None = None
    tlv: tuple[Tlv, ...] = ()
    for number, value in iter_bmps(data):
        if number == 0x27:
            fields["result_code"] = value[0]
        elif number == 0x04:
            fields["amount_minor"] = bcd_decode(value)
        elif number == 0x49:
            fields["currency_code"] = bcd_decode(value)
        elif number == 0x0B:
            fields["trace_no"] = bcd_decode(value)
        elif number == 0x37:
            fields["original_trace_no"] = bcd_decode(value)
        elif number == 0x87:
            fields["receipt_no"] = bcd_decode(value)
        elif number == 0x29:
            fields["terminal_id"] = value.hex()
        elif number == 0x3B:
            fields["aid"] = decode_text(value)
        elif number == 0x22:
            last4 = masked_card_from_bmp22(value)
        elif number == 0x8B:
            scheme = decode_text(value)
        elif number == 0x8A:
            fields["card_type"] = value[0]
        elif number == 0x3C:
            fields["additional_text"] = decode_text(value)
        elif number == 0x06:
            tlv = parse_tlv(value)
    uid = find_tlv(tlv, TAG_CARD_UID)
    token = uid.value.hex().upper() if uid is not None and uid.value else None
    return StatusInformation(card=MaskedCard(last4=last4, scheme=scheme, token=token), tlv=tlv, **fields)


def encode_status_information(
    *, result_code: int, amount_minor: int | None = None, currency_code: int | None = None,
    trace_no: int | None = None, receipt_no: int | None = None, terminal_id: str | None = None,
    aid: str | None = None, pan_bmp22: bytes | None = None, card_name: str | None = None,
    additional_text: str | None = None, card_uid: bytes | None = None, original_trace_no: int | None = None,
) -> bytes:
    """04 0F's data block (for the simulator and the tests)."""
    out = bytearray(b"\x27" + bytes([result_code]))
    if amount_minor is not None:
        out += b"\x04" + encode_amount(amount_minor)
    if trace_no is not None:
        out += b"\x0b" + bcd_encode(trace_no, 3)
    if pan_bmp22 is not None:
        out += b"\x22" + encode_llvar(pan_bmp22)
    if terminal_id is not None:
        out += b"\x29" + bytes.fromhex(terminal_id)
    if original_trace_no is not None:
        out += b"\x37" + bcd_encode(original_trace_no, 3)
    if aid is not None:
        out += b"\x3b" + aid.encode("cp437")[:8].ljust(8, b"\x00")
    if additional_text is not None:
        out += b"\x3c" + encode_llvar(additional_text.encode("cp437"), 3)
    if currency_code is not None:
        out += b"\x49" + bcd_encode(currency_code, 2)
    if receipt_no is not None:
        out += b"\x87" + bcd_encode(receipt_no, 2)
    if card_name is not None:
        out += b"\x8b" + encode_llvar(card_name.encode("cp437"))
    if card_uid is not None:
        out += tlv_bmp([Tlv(TAG_CARD_UID, card_uid)])
    return bytes(out)


def pan_to_bmp22(pan: str, *, masked: bool = True) -> bytes:
    """A PAN as BMP 22 carries it: BCD, ``F``-padded to whole bytes; masked: all but the first six and the last
    four digits as ``E`` (what terminals send). ``masked=False`` exists only to test that we mask it ourselves."""
    digits = pan if not masked else pan[:6] + "E" * (len(pan) - 10) + pan[-4:]
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex(digits)


# --- Other answers -----------------------------------------------------------------------------------------------


def parse_abort(data: bytes) -> tuple[int, int | None, str | None]:
    """06 1E: (result code, receipt number if the terminal named one (2.10.1: FFFF = none open), error text)."""
    if not data:
        return 0xFF, None, None  # an abort without a code: "other/unknown error"
    code = data[0]
    rest = data[1:]
    if code == 0x6F and len(rest) >= 2 and rest[0] != 0x06:  # wrong currency: the terminal's currency, untagged
        rest = rest[2:]
    receipt: int | None = None
    text: str | None = None
    try:
        for number, value in iter_bmps(rest):
            if number == 0x87:
                receipt = OPEN_PRE_AUTHS_QUERY if value == b"\xff\xff" else bcd_decode(value)
            elif number == 0x06:
                found = find_tlv(parse_tlv(value), TAG_EXT_ERROR_TEXT)
                text = decode_text(found.value) if found is not None else None
    except ZvtFrameError:
        pass  # the code is what matters; a terminal's extra fields we cannot read do not change it
    return code, receipt, text


def parse_intermediate_status(data: bytes) -> int | None:
    return data[0] if data else None


def parse_print_line(data: bytes) -> str:
    """06 D1: an attribute byte, then the line's text (no CR LF; empty for an empty line)."""
    return decode_text(data[1:]) if data else ""


TAG_TEXT_LINES: Final = 0x25
TAG_TEXT_LINE: Final = 0x07


def parse_print_text_block(data: bytes) -> list[str]:
    """06 D3: BMP 06 whose container 25 holds the lines, one tag 07 each."""
    lines: list[str] = []
    for number, value in iter_bmps(data):
        if number == 0x06:
            block = find_tlv(parse_tlv(value), TAG_TEXT_LINES)
            if block is not None:
                lines += [decode_text(t.value) for t in block.children if t.tag == TAG_TEXT_LINE]
    return lines


@dataclass(frozen=True, slots=True)
class Completion:
    result_code: int | None = None
    status_byte: int | None = None
    terminal_id: str | None = None
    currency_code: int | None = None


def parse_completion(data: bytes) -> Completion:
    """06 0F after a payment command: BMPs 27, 19, 29, 49 (all optional)."""
    fields: dict[str, Any] = {}
    for number, value in iter_bmps(data):
        if number == 0x27:
            fields["result_code"] = value[0]
        elif number == 0x19:
            fields["status_byte"] = value[0]
        elif number == 0x29:
            fields["terminal_id"] = value.hex()
        elif number == 0x49:
            fields["currency_code"] = bcd_decode(value)
    return Completion(**fields)


@dataclass(frozen=True, slots=True)
class EnquiryCompletion:
    software_version: str
    terminal_status: int
    terminal_id: str | None = None


def parse_status_enquiry_completion(data: bytes) -> EnquiryCompletion:
    """06 0F after Status Enquiry: LLL-var software version, the terminal-status byte (00 = ready), TLV."""
    n = decode_varlen(data, 3)
    if len(data) < 3 + n + 1:
        raise ZvtFrameError("truncated status-enquiry completion")
    version = decode_text(data[3:3 + n])
    status = data[3 + n]
    terminal_id: str | None = None
    rest = data[3 + n + 1:]
    if rest[:1] == b"\x06":
        for number, value in iter_bmps(rest):
            if number == 0x06:
                tid = find_tlv(parse_tlv(value), 0x1F44)  # terminal id in the TLV container (BCD)
                terminal_id = tid.value.hex() if tid is not None else None
    return EnquiryCompletion(version, status, terminal_id)


# --- Commands (ECR -> PT) ----------------------------------------------------------------------------------------


def registration(password: str, currency_code: int, config_byte: int = CONFIG_BYTE) -> Apdu:
    """06 00: password (3 bytes BCD), config byte, currency code (2 bytes BCD, untagged)."""
    return Apdu(REGISTRATION, encode_password(password) + bytes([config_byte]) + bcd_encode(currency_code, 2))


def encode_password(password: str) -> bytes:
    if len(password) != 6 or not password.isdigit():
        raise ValueError("a ZVT password is six digits")
    return bytes.fromhex(password)


def pre_authorisation(amount_minor: int, currency_code: int) -> Apdu:
    """06 22: payment type "terminal decides" (19), currency (49), amount (04) - the order a Feig cVEND was captured
    receiving (Qwello/zvt ``zvt/data/1680728162.033575000_ecr_pt.blob``)."""
    return Apdu(PRE_AUTHORISATION, b"\x19" + bytes([PAYMENT_TYPE_PT_DECIDES]) + b"\x49" + bcd_encode(currency_code, 2)
                + b"\x04" + encode_amount(amount_minor))


def book_total(receipt_no: int, amount_minor: int, currency_code: int, trace_no: int | None = None,
               aid: str | None = None) -> Apdu:
    """06 24: receipt number (87) of the pre-authorisation, the amount to book (04), currency (49), and its trace
    number (0B) and authorisation attribute (3B), which terminals want for booking a reservation."""
    data = b"\x87" + bcd_encode(receipt_no, 2) + b"\x04" + encode_amount(amount_minor) + b"\x49" + bcd_encode(
        currency_code, 2)
    if trace_no is not None:
        data += b"\x0b" + bcd_encode(trace_no, 3)
    if aid is not None:
        data += b"\x3b" + aid.encode("cp437")[:8].ljust(8, b"\x00")
    return Apdu(BOOK_TOTAL, data)


def partial_reversal(receipt_no: int, amount_minor: int, currency_code: int) -> Apdu:
    """06 23: books ``amount`` of the pre-authorisation ``receipt_no`` and releases the rest (Feig cVEND's way).
    ``receipt_no`` FFFF (with amount 0) asks for the open pre-authorisations instead (2.10.1)."""
    receipt = b"\xff\xff" if receipt_no == OPEN_PRE_AUTHS_QUERY else bcd_encode(receipt_no, 2)
    return Apdu(PARTIAL_REVERSAL, b"\x19" + bytes([PAYMENT_TYPE_PT_DECIDES]) + b"\x87" + receipt + b"\x49"
                + bcd_encode(currency_code, 2) + b"\x04" + encode_amount(amount_minor))


def pre_auth_reversal(receipt_no: int, currency_code: int) -> Apdu:
    """06 25: payment type (19), currency (49), receipt number (87) - as a Feig cVEND was captured sending it."""
    return Apdu(PRE_AUTH_REVERSAL, b"\x19" + bytes([PAYMENT_TYPE_PT_DECIDES]) + b"\x87" + bcd_encode(receipt_no, 2)
                + b"\x49" + bcd_encode(currency_code, 2))


def reversal(password: str, receipt_no: int) -> Apdu:
    """06 30: password, receipt number (87) of the payment to reverse."""
    return Apdu(REVERSAL, encode_password(password) + b"\x87" + bcd_encode(receipt_no, 2))


def end_of_day(password: str) -> Apdu:
    return Apdu(END_OF_DAY, encode_password(password))


def repeat_receipt(password: str) -> Apdu:
    return Apdu(REPEAT_RECEIPT, encode_password(password))


def status_enquiry() -> Apdu:
    return Apdu(STATUS_ENQUIRY)


def log_off() -> Apdu:
    return Apdu(LOG_OFF)


def abort() -> Apdu:
    return Apdu(ABORT_FROM_ECR)


def parse_command_bmps(data: bytes) -> dict[int, bytes]:
    """BMPs of a command's data (for the simulator): number -> value."""
    return dict(iter_bmps(data))
