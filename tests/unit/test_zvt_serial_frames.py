"""ZVT's RS-232 transport frame: byte-exact frames from other implementations and a real terminal's log, the CRC
against an independent computation, DLE doubling, and a receiver that resynchronises and NAKs what is broken.

Sources of the vectors:
- ecrterm ``ecrterm/tests/data_encoding.py`` (wirelane/ecrterm; taken from its logs of real terminals): whole
  frames for Registration, Authorisation of 110.00 EUR (whose amount holds a DLE) and ``80 00 00``.
- Portalum/Portalum.Zvt issue #56: a frame a PAYONE P400 Plus acknowledged, from its communication log.
- The CRC catalogue's check value of CRC-16/KERMIT over "123456789": 0x2189.
"""

from __future__ import annotations

import asyncio
import binascii
import os
import socket
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal.drivers.zvt_serial import FramedLine
from hal.drivers.zvt_serial_frames import (
    ACK,
    DLE,
    ETX,
    MAX_APDU_BYTES,
    NAK,
    STX,
    AckReceived,
    FrameDecoder,
    FrameReceived,
    FrameRejected,
    NakReceived,
    crc16,
    encode_frame,
    frame_crc,
)

# (APDU, its whole frame on the wire)
DOCUMENTED_FRAMES = [
    ("80 00 00", "10 02 80 00 00 10 03 F5 1F"),  # ecrterm: PacketReceived
    ("84 9C 00", "10 02 84 9C 00 10 03 C3 41"),  # ecrterm: PacketReceivedError
    ("06 00 06 12 34 56 BA 09 78", "10 02 06 00 06 12 34 56 BA 09 78 10 03 24 C3"),  # ecrterm: Registration
    ("06 01 0A 04 00 00 00 01 10 00 49 09 78",  # ecrterm: Authorisation of 110.00 EUR; its DLE goes doubled
     "10 02 06 01 0A 04 00 00 00 01 10 10 00 49 09 78 10 03 F2 FF"),
    ("05 01 03 12 34 56", "10 02 05 01 03 12 34 56 10 03 E0 43"),  # ecrterm: StatusEnquiry
    ("06 01 07 04 00 00 00 00 01 90", "10 02 06 01 07 04 00 00 00 00 01 90 10 03 76 57"),  # P400 Plus, 1.90 EUR
]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def reflect(value: int, bits: int) -> int:
    return int(f"{value:0{bits}b}"[::-1], 2)


def kermit_via_crc_hqx(data: bytes) -> int:
    """CRC-16/KERMIT from the standard library's CRC-16/XMODEM: the same polynomial, but reflected - so reflect
    every input byte and the result."""
    return reflect(binascii.crc_hqx(bytes(reflect(b, 8) for b in data), 0), 16)


@pytest.mark.parametrize(("apdu", "frame"), DOCUMENTED_FRAMES)
def test_frames_match_the_documented_bytes(apdu: str, frame: str) -> None:
    assert encode_frame(h(apdu)) == h(frame)
    assert FrameDecoder().feed(h(frame)) == [FrameReceived(h(apdu))]


def test_the_crc_is_kermit_low_byte_first_over_the_unstuffed_apdu_and_etx() -> None:
    assert crc16(b"123456789") == 0x2189  # CRC-16/KERMIT's catalogue check value
    apdu = h("06 01 0A 04 00 00 00 01 10 00 49 09 78")
    assert frame_crc(apdu) == h("F2 FF")
    assert crc16(apdu + bytes([ETX])) == 0xFFF2  # sent F2 then FF
    assert frame_crc(apdu) != crc16(apdu.replace(b"\x10", b"\x10\x10") + bytes([ETX])).to_bytes(2, "little")
    # binascii.crc_hqx alone is the unreflected variant (XMODEM) and would be wrong on the wire:
    assert binascii.crc_hqx(h("80 00 00 03"), 0).to_bytes(2, "little") != h("F5 1F")


@given(st.binary(max_size=300))
def test_the_crc_agrees_with_the_standard_librarys_computation(data: bytes) -> None:
    assert crc16(data) == kermit_via_crc_hqx(data)


@given(st.binary(min_size=1, max_size=300), st.integers(min_value=1, max_value=7))
def test_any_apdu_survives_the_frame_in_any_chunking(apdu: bytes, chunk: int) -> None:
    frame = encode_frame(apdu)
    assert frame.count(b"\x10") == 2 + 2 * apdu.count(b"\x10") + frame[-2:].count(b"\x10")
    decoder = FrameDecoder()
    events = [e for i in range(0, len(frame), chunk) for e in decoder.feed(frame[i:i + chunk])]
    assert events == [FrameReceived(apdu)]
    assert not decoder.in_frame


def test_every_dle_in_the_apdu_is_doubled_and_the_crc_is_not_stuffed() -> None:
    assert encode_frame(b"\x10\x10") == bytes([DLE, STX, DLE, DLE, DLE, DLE, DLE, ETX]) + frame_crc(b"\x10\x10")
    # CRC bytes 10 06 go out raw: neither a DLE escape nor an ACK to the receiver.
    apdu = h("06 D1 02 84 E4")
    assert frame_crc(apdu) == h("10 06")
    assert encode_frame(apdu).endswith(h("10 03 10 06"))
    assert FrameDecoder().feed(encode_frame(apdu)) == [FrameReceived(apdu)]
    assert FrameDecoder().feed(encode_frame(h("06 D1 02 00 85"))) == [FrameReceived(h("06 D1 02 00 85"))]  # 10 15


def test_bare_ack_and_nak_between_frames_are_answers() -> None:
    good = encode_frame(h("80 00 00"))
    assert FrameDecoder().feed(bytes([ACK]) + good + bytes([NAK])) == [
        AckReceived(), FrameReceived(h("80 00 00")), NakReceived()]


def test_the_receiver_resynchronises_after_garbage_and_a_half_frame() -> None:
    decoder = FrameDecoder()
    garbage = h("FF 00 10 41 10 10 03 7E")  # noise, including lone DLEs that start nothing
    half = encode_frame(h("04 0F 02 27 00"))[:5]  # a frame cut off: the sender starts over
    events = decoder.feed(garbage + half + encode_frame(h("80 00 00")))
    assert events == [FrameRejected("frame restarted (DLE STX inside a frame)"), FrameReceived(h("80 00 00"))]
    assert decoder.skipped == len(garbage)  # every noise byte skipped, none taken for a frame or an answer


def test_a_bad_crc_is_rejected_and_the_next_frame_still_arrives() -> None:
    frame = bytearray(encode_frame(h("06 0F 00")))
    frame[-1] ^= 0x01
    events = FrameDecoder().feed(bytes(frame) + encode_frame(h("06 0F 00")))
    assert events == [FrameRejected("bad CRC on a frame of 3 bytes"), FrameReceived(h("06 0F 00"))]


def test_a_dle_followed_by_anything_else_breaks_the_frame() -> None:
    broken = bytes([DLE, STX, 0x06, DLE, 0x41, 0x00])
    events = FrameDecoder().feed(broken + encode_frame(h("06 1E 01 6C")))
    assert events == [FrameRejected("DLE followed by 41 inside a frame"), FrameReceived(h("06 1E 01 6C"))]


def test_silence_inside_a_frame_rejects_it_and_silence_between_frames_does_nothing() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(h("80 00 00"))[:-1]) == []  # waiting for the CRC's high byte
    assert decoder.in_frame
    assert decoder.expire() == [FrameRejected("incomplete frame: the line fell silent inside it")]
    assert decoder.expire() == []
    assert decoder.feed(encode_frame(h("80 00 00"))) == [FrameReceived(h("80 00 00"))]


def test_a_frame_longer_than_any_apdu_is_rejected() -> None:
    decoder = FrameDecoder()
    events = decoder.feed(bytes([DLE, STX]) + b"\x00" * (MAX_APDU_BYTES + 1))
    assert events == [FrameRejected(f"frame longer than the longest APDU ({MAX_APDU_BYTES} bytes)")]
    assert not decoder.in_frame


# --- a line end answers on real descriptors (a socket pair: bytes in, bytes out) ----------------------------------


@pytest.fixture
async def line_and_peer() -> AsyncIterator[tuple[FramedLine, socket.socket]]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    line = FramedLine(ours.fileno(), "test line", ack_timeout_s=0.2, byte_timeout_s=0.1)
    line.start()
    yield line, peer
    line.close()
    ours.close()
    peer.close()


async def read_exactly(peer: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(2):
        while len(data) < n:
            data += await loop.sock_recv(peer, n - len(data))
    return data


async def test_an_intact_frame_is_acked_and_passed_on_a_bad_crc_naked_and_dropped(
    line_and_peer: tuple[FramedLine, socket.socket],
) -> None:
    line, peer = line_and_peer
    bad = bytearray(encode_frame(h("04 FF 01 0A")))
    bad[-2] ^= 0xFF
    peer.send(bytes(bad))
    assert await read_exactly(peer, 1) == bytes([NAK])
    peer.send(encode_frame(h("04 FF 01 0A")))
    assert await read_exactly(peer, 1) == bytes([ACK])
    async with asyncio.timeout(1):
        assert await line.receive() == h("04 FF 01 0A")
    assert (line.stats.naks_sent, line.stats.frames_received) == (1, 1)


async def test_a_half_frame_followed_by_silence_is_naked(line_and_peer: tuple[FramedLine, socket.socket]) -> None:
    line, peer = line_and_peer
    peer.send(encode_frame(h("04 FF 01 0A"))[:4])
    assert await read_exactly(peer, 1) == bytes([NAK])  # after byte_timeout_s, not at once
    assert line.stats.naks_sent == 1


async def test_a_naked_frame_is_sent_again_and_an_unanswered_one_three_times_in_all(
    line_and_peer: tuple[FramedLine, socket.socket],
) -> None:
    line, peer = line_and_peer
    frame = encode_frame(h("06 B0 00"))
    sending = asyncio.create_task(line.send(h("06 B0 00")))
    assert await read_exactly(peer, len(frame)) == frame
    peer.send(bytes([NAK]))
    assert await read_exactly(peer, len(frame)) == frame
    peer.send(bytes([ACK]))
    async with asyncio.timeout(1):
        await sending
    assert (line.stats.naks_received, line.stats.retransmissions) == (1, 1)

    unanswered = asyncio.create_task(line.send(h("06 B0 00")))
    assert await read_exactly(peer, 3 * len(frame)) == frame * 3
    with pytest.raises(OSError, match="did not acknowledge a frame in 3 attempts") as failure:
        async with asyncio.timeout(2):
            await unanswered
    assert getattr(failure.value, "maybe_delivered", None) is True  # silence: it may have arrived all the same


async def test_a_line_that_goes_away_fails_the_waiting_receiver() -> None:
    ours, peer = socket.socketpair()
    line = FramedLine(ours.fileno(), "test line")
    line.start()
    receiving = asyncio.create_task(line.receive())
    await asyncio.sleep(0)
    peer.close()
    with pytest.raises(OSError, match="went away"):
        async with asyncio.timeout(2):
            await receiving
    assert line.closed
    line.close()
    os.close(ours.detach())
