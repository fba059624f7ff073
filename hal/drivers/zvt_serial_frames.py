"""ZVT over a serial line (RS-232): the transport frame and the receiver's state machine, pure, without I/O.

On a serial line every APDU travels in a frame::

    DLE STX | APDU, each DLE (10) doubled | DLE ETX | CRC low byte, CRC high byte

The CRC is CRC-16/KERMIT: the CCITT polynomial 1021 in its reflected form 8408, initial value 0000, no final XOR,
over the APDU *before* DLE doubling plus the ETX byte (check value 2189 over "123456789"). The receiver answers
each frame with one byte, ACK (06) or NAK (15, bad CRC or framing). ACK and NAK are bare bytes, never framed; the
ZVT application acknowledgement ``80 00 00`` is an ordinary APDU and travels framed like any other.
``zvt_serial`` sends and receives these frames on the line.

What we relied on (read, not copied):

- ZVT "Transport-Protocol / Application-Protocol" PA00P016 rev. 04 (Verband der Terminalhersteller, 2016; a copy
  is attached to OCA/pos on GitHub): its contents name the serial block structure, positive/negative
  acknowledgement, CRC calculation, T1 (between two bytes) and T2 (between a block and its ACK/NAK).
- ecrterm (Python; wirelane/ecrterm ``ecrterm/transmission/transport_serial.py``, ``crc.py``): frame layout, CRC
  table of polynomial 8408 from 0 over APDU + ETX sent low byte first, bare 06/15 answers, and byte-exact frames in
  its ``tests/data_encoding.py`` (e.g. ``10 02 80 00 00 10 03 F5 1F``, an amount ``... 01 10 10 00 ...`` with its
  DLE doubled). Its issue #2 shows an Ingenico i5310 exchanging framed ``80 00 00`` with byte ACKs.
- Europa-Park/zvtlib (C#; ``Protocols/ZVT/TransportLayer/RS232Transport.cs``, ``RS232Tpdu.cs``,
  ``CRCChecksum.cs``): the same frame and CRC, a receiver that skips bytes until DLE STX and rejects DLE followed
  by anything but DLE or ETX.
- Portalum/Portalum.Zvt (C#; ``Helpers/ChecksumHelper.cs``) computes the same CRC; its issue #56 logs a frame a
  PAYONE P400 Plus acknowledged (``10 02 06 01 07 04 00 00 00 00 01 90 10 03 76 57``).
- Oexyz/zvt2sumup frames with an XOR checksum and answers ``10 06``: it disagrees with all of the above and the
  spec's "CRC-Calculation", and we do not follow it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

DLE: Final = 0x10
STX: Final = 0x02
ETX: Final = 0x03
ACK: Final = 0x06
NAK: Final = 0x15

MAX_APDU_BYTES: Final = 3 + 2 + 0xFFFF  # control, extended length, data


# --- the frame ---------------------------------------------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/KERMIT (reflected 0x1021, initial 0, no final XOR) of ``data``."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def frame_crc(apdu: bytes) -> bytes:
    """The two CRC bytes that end the frame of ``apdu``, low byte first."""
    return crc16(apdu + bytes([ETX])).to_bytes(2, "little")


def encode_frame(apdu: bytes) -> bytes:
    if not apdu:
        raise ValueError("an empty APDU has no frame")
    return bytes([DLE, STX]) + apdu.replace(b"\x10", b"\x10\x10") + bytes([DLE, ETX]) + frame_crc(apdu)


@dataclass(frozen=True, slots=True)
class FrameReceived:
    apdu: bytes


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame that arrived broken (bad CRC, stray DLE, too long, bytes too far apart): it is answered with NAK."""

    reason: str


@dataclass(frozen=True, slots=True)
class AckReceived:
    pass


@dataclass(frozen=True, slots=True)
class NakReceived:
    pass


LineEvent = FrameReceived | FrameRejected | AckReceived | NakReceived


class _State(enum.Enum):
    Idle = enum.auto()
    AfterDle = enum.auto()  # a DLE between frames: STX starts one
    Data = enum.auto()
    DataDle = enum.auto()  # a DLE inside a frame: DLE (data), ETX (end) or STX (the frame restarts)
    CrcLow = enum.auto()
    CrcHigh = enum.auto()


class FrameDecoder:
    """The receiver's state machine, byte by byte, without I/O or clock.

    Between frames it reports ACK and NAK bytes and skips anything else, so it finds the next DLE STX after line
    noise, a half frame or a restart of the other side. ``expire()`` is called when the inter-byte time ran out."""

    def __init__(self) -> None:
        self._state = _State.Idle
        self._data = bytearray()
        self._crc_low = 0
        self.skipped = 0  # bytes outside any frame that were neither ACK nor NAK

    @property
    def in_frame(self) -> bool:
        return self._state not in (_State.Idle, _State.AfterDle)

    def feed(self, chunk: bytes) -> list[LineEvent]:
        events: list[LineEvent] = []
        for byte in chunk:
            event = self._step(byte)
            if event is not None:
                events.append(event)
        return events

    def expire(self) -> list[LineEvent]:
        if not self.in_frame:
            self._state = _State.Idle
            return []
        self._state = _State.Idle
        return [FrameRejected("incomplete frame: the line fell silent inside it")]

    def _step(self, byte: int) -> LineEvent | None:
        state = self._state
        if state is _State.Idle:
            return self._between_frames(byte)
        if state is _State.AfterDle:
            if byte == STX:
                self._start()
                return None
            self.skipped += 1  # the DLE before was noise; this byte may be an ACK or a new DLE
            self._state = _State.Idle
            return self._between_frames(byte)
        if state is _State.Data:
            if byte == DLE:
                self._state = _State.DataDle
            else:
                return self._append(byte)
            return None
        if state is _State.DataDle:
            if byte == DLE:
                self._state = _State.Data
                return self._append(DLE)
            if byte == ETX:
                self._state = _State.CrcLow
                return None
            if byte == STX:  # the sender started over: this frame is lost, the new one may be good
                self._start()
                return FrameRejected("frame restarted (DLE STX inside a frame)")
            self._state = _State.Idle
            return FrameRejected(f"DLE followed by {byte:02X} inside a frame")
        if state is _State.CrcLow:
            self._crc_low = byte
            self._state = _State.CrcHigh
            return None
        self._state = _State.Idle
        apdu = bytes(self._data)
        if bytes([self._crc_low, byte]) != frame_crc(apdu):
            return FrameRejected(f"bad CRC on a frame of {len(apdu)} bytes")
        if not apdu:
            return FrameRejected("empty frame")
        return FrameReceived(apdu)

    def _between_frames(self, byte: int) -> LineEvent | None:
        if byte == DLE:
            self._state = _State.AfterDle
        elif byte == ACK:
            return AckReceived()
        elif byte == NAK:
            return NakReceived()
        else:
            self.skipped += 1
        return None

    def _start(self) -> None:
        self._data.clear()
        self._state = _State.Data

    def _append(self, byte: int) -> LineEvent | None:
        if len(self._data) >= MAX_APDU_BYTES:
            self._state = _State.Idle
            return FrameRejected(f"frame longer than the longest APDU ({MAX_APDU_BYTES} bytes)")
        self._data.append(byte)
        return None
