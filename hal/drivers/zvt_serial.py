"""ZVT over a serial line (RS-232): ACK/NAK with retransmission, and the ECR's end of the line.

Each APDU goes out in a frame (``zvt_serial_frames``) that the other side answers with ACK or NAK; a frame that is
NAKed or not answered is sent again, three attempts in all. Every intact frame that arrives is answered with ACK
and passed on, a broken one with NAK. Line: 9600 baud, 8 data bits, no parity, 2 stop bits, no flow control.

What we relied on (read, not copied), besides the sources named in ``zvt_serial_frames``:

- ecrterm (wirelane/ecrterm ``ecrterm/transmission/transport_serial.py``, ``signals.py``): 9600 8N2, no flow
  control, RTS and DTR raised; an inter-byte timeout of 0.2 s; it waits about 1 s for the ACK byte. Its sender
  does not retransmit (that code is commented out).
- Europa-Park/zvtlib (``RS232Transport.cs``): at most three transmissions of a frame (``MAX_BLOCKREPEATS = 2``
  repeats) on NAK or silence, waiting for the ACK as long as its T3 (5 s by default); NAK on a bad CRC.
- The spec's contents (PA00P016) name T1 (between two bytes) and T2 (between a block and its ACK/NAK) for the
  serial transport, and T3 (command to ``80 00``) and T4 for the application; we did not find T1/T2's values in a
  public text.

Choices where those sources are silent or disagree: an ACK is awaited ``ack_timeout_s`` (2 s by default; ecrterm
about 1 s, zvtlib 5 s) plus the time the frame takes on the wire; bytes of one frame may be at most
``byte_timeout_s`` (0.5 s; ecrterm 0.2 s, zvtlib 1 s) apart, or the frame is dropped and NAKed. Two stop bits as
ecrterm and the spec's default (zvtlib's sample configuration uses one; a receiver set to one stop bit reads two).
A frame is not repeated when its ACK is missing but the other side has since sent a frame of its own: it got ours,
only its ACK was lost, and a repeat would make it act twice (ZVT frames carry no sequence number). For the same
reason a receiver drops a frame identical to the one before it when it has sent nothing in between: in ZVT's
lock-step dialogue a genuine second copy always follows an answer of ours.

The line is opened with the standard library's ``termios`` (as pyserial does on Linux; pyserial has no type stubs,
which would need a mypy override) and read with ``loop.add_reader`` on the non-blocking descriptor, which works
alike on a USB adapter (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``) and on the pseudo-terminal the simulator
serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import struct
import termios
from dataclasses import dataclass
from typing import Final

from hal.drivers import zvt_frames as zf
from hal.drivers.zvt_link import LinkDown
from hal.drivers.zvt_serial_frames import (
    ACK,
    NAK,
    AckReceived,
    FrameDecoder,
    FrameRejected,
    LineEvent,
    NakReceived,
    encode_frame,
)

_log = logging.getLogger(__name__)

ATTEMPTS: Final = 3
ACK_TIMEOUT_S: Final = 2.0
BYTE_TIMEOUT_S: Final = 0.5
BITS_PER_CHARACTER: Final = 11  # start, 8 data, 2 stop

BAUD_RATES: Final[dict[int, int]] = {
    9600: termios.B9600, 19200: termios.B19200, 38400: termios.B38400, 57600: termios.B57600,
    115200: termios.B115200,
}


# --- one end of a line -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class LineStats:
    frames_sent: int = 0  # first transmissions
    retransmissions: int = 0
    naks_received: int = 0
    ack_timeouts: int = 0
    frames_received: int = 0  # intact, acknowledged and passed on
    naks_sent: int = 0
    duplicates_dropped: int = 0


class FramedLine:
    """One end of a ZVT serial line on a non-blocking file descriptor: sends APDUs framed and waits for their ACK
    (repeating a NAKed or unanswered frame), acknowledges and queues the frames that arrive.

    The descriptor stays its owner's to close; ``close()`` only stops using it. The simulator's end of the line
    overrides ``_frame_bytes`` and ``_answer`` to play a noisy line."""

    def __init__(
        self, fd: int, name: str, *, baudrate: int = 9600, ack_timeout_s: float = ACK_TIMEOUT_S,
        byte_timeout_s: float = BYTE_TIMEOUT_S, attempts: int = ATTEMPTS,
    ) -> None:
        self.name = name
        self.stats = LineStats()
        self._fd = fd
        self._baudrate = baudrate
        self._ack_timeout_s = ack_timeout_s
        self._byte_timeout_s = byte_timeout_s
        self._attempts = attempts
        self._decoder = FrameDecoder()
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._out = bytearray()
        self._drained = asyncio.Event()
        self._drained.set()
        self._answer_to: asyncio.Future[bool] | None = None  # True: ACK, False: NAK
        self._send_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._silence: asyncio.TimerHandle | None = None
        self._closed: str | None = None
        self._heard = False  # a frame arrived since our current frame first went out
        self._last_received: bytes | None = None
        self._sent_since_received = True

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        os.set_blocking(self._fd, False)
        self._loop.add_reader(self._fd, self._on_readable)

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def send(self, apdu: bytes) -> None:
        """Send one APDU and return once the other side acknowledged it; ``LinkDown`` if it did not, or the line
        went away (``maybe_delivered``: a frame went out unanswered, so the other side may have it)."""
        async with self._send_lock:
            self._sent_since_received = True
            self._heard = False
            self.stats.frames_sent += 1
            unanswered = False
            for attempt in range(1, self._attempts + 1):
                if self._closed is not None:
                    raise LinkDown(self._closed, maybe_delivered=unanswered)
                if attempt > 1:
                    self.stats.retransmissions += 1
                    _log.debug("ZVT serial %s: repeating a frame (attempt %d)", self.name, attempt)
                answer = await self._transmit(self._frame_bytes(apdu))
                if answer:
                    return
                if answer is None:
                    self.stats.ack_timeouts += 1
                    if self._heard:  # it answered with a frame of its own: ours arrived, its ACK did not
                        _log.debug("ZVT serial %s: no ACK, but an answer: not repeating", self.name)
                        return
                    unanswered = True
                else:
                    self.stats.naks_received += 1
            raise LinkDown(f"{self.name}: the terminal did not acknowledge a frame in {self._attempts} attempts",
                           maybe_delivered=unanswered)

    async def receive(self) -> bytes:
        """The next APDU that arrived intact; ``LinkDown`` once the line is gone and nothing is left."""
        apdu = await self._inbox.get()
        if apdu is None:
            self._inbox.put_nowait(None)  # for whoever asks next
            raise LinkDown(self._closed or f"{self.name} closed")
        return apdu

    def close(self, reason: str | None = None) -> None:
        self._lose(reason or f"{self.name} closed")

    # --- overridden by the simulator -----------------------------------------------------------------------------

    def _frame_bytes(self, apdu: bytes) -> bytes:
        """The bytes of one transmission of ``apdu``."""
        return encode_frame(apdu)

    def _answer(self, apdu: bytes) -> tuple[int | None, bool]:
        """For a frame that arrived intact: the byte to answer (ACK, NAK, None for silence) and whether to pass
        the APDU on."""
        return ACK, True

    # --- internals -----------------------------------------------------------------------------------------------

    async def _transmit(self, frame: bytes) -> bool | None:
        """One transmission: True on ACK, False on NAK, None if no answer came in time."""
        assert self._loop is not None, "start() the line first"
        answer: asyncio.Future[bool] = self._loop.create_future()
        self._answer_to = answer
        try:
            self._write(frame)
            # The ACK cannot come before the frame has left the UART: at 9600 baud a long APDU takes a while.
            on_wire_s = len(frame) * BITS_PER_CHARACTER / self._baudrate
            async with asyncio.timeout(self._ack_timeout_s + on_wire_s):
                await self._drained.wait()
                return await answer
        except TimeoutError:
            return None
        finally:
            self._answer_to = None
            if not answer.done():
                answer.cancel()

    def _write(self, data: bytes) -> None:
        if self._closed is not None:
            return
        self._out += data
        self._drained.clear()
        self._flush()

    def _flush(self) -> None:
        while self._out:
            try:
                n = os.write(self._fd, self._out)
            except BlockingIOError:
                assert self._loop is not None
                self._loop.add_writer(self._fd, self._flush)
                return
            except OSError as exc:
                self._lose(f"{self.name}: {exc.strerror or exc}")
                return
            del self._out[:n]
        if self._loop is not None:
            self._loop.remove_writer(self._fd)
        self._drained.set()

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the USB adapter was unplugged, or the pseudo-terminal's other side closed
            self._lose(f"{self.name} went away ({exc.strerror or exc})")
            return
        if not chunk:
            self._lose(f"{self.name} went away (end of file)")
            return
        self._handle(self._decoder.feed(chunk))
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None
        if self._decoder.in_frame and self._loop is not None and self._closed is None:
            self._silence = self._loop.call_later(self._byte_timeout_s, self._on_silence)

    def _on_silence(self) -> None:
        self._silence = None
        self._handle(self._decoder.expire())

    def _handle(self, events: list[LineEvent]) -> None:
        for event in events:
            if isinstance(event, AckReceived | NakReceived):
                waiting = self._answer_to
                if waiting is not None and not waiting.done():
                    waiting.set_result(isinstance(event, AckReceived))
                else:
                    _log.debug("ZVT serial %s: %s with no frame waiting for it", self.name, type(event).__name__)
            elif isinstance(event, FrameRejected):
                _log.warning("ZVT serial %s: %s: NAK", self.name, event.reason)
                self.stats.naks_sent += 1
                self._write(bytes([NAK]))
            else:
                self._on_frame(event.apdu)

    def _on_frame(self, apdu: bytes) -> None:
        answer, deliver = self._answer(apdu)
        if answer is not None:
            self._write(bytes([answer]))
            if answer == NAK:
                self.stats.naks_sent += 1
        if not deliver:
            return
        self._heard = True
        if apdu == self._last_received and not self._sent_since_received:
            self.stats.duplicates_dropped += 1
            _log.debug("ZVT serial %s: the same frame again (our ACK was lost): dropped", self.name)
            return
        self._last_received = apdu
        self._sent_since_received = False
        self.stats.frames_received += 1
        self._inbox.put_nowait(apdu)

    def _lose(self, reason: str) -> None:
        if self._closed is not None:
            return
        self._closed = reason
        if self._silence is not None:
            self._silence.cancel()
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):  # the descriptor may be closed already
                self._loop.remove_reader(self._fd)
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_writer(self._fd)
        waiting = self._answer_to
        if waiting is not None and not waiting.done():
            waiting.set_exception(LinkDown(reason, maybe_delivered=True))
        self._drained.set()
        self._inbox.put_nowait(None)


# --- the ECR's end: a serial device ------------------------------------------------------------------------------


def configure_line(fd: int, baudrate: int) -> None:
    """Raw 8N2 at ``baudrate``, no flow control, receiver on, modem lines ignored; DTR and RTS raised."""
    speed = BAUD_RATES.get(baudrate)
    if speed is None:
        raise ValueError(f"ZVT over RS-232 runs at {', '.join(map(str, BAUD_RATES))} baud, not {baudrate}")
    attrs = termios.tcgetattr(fd)
    cc: list[bytes | int] = list(attrs[6])
    cc[termios.VMIN], cc[termios.VTIME] = 1, 0
    cflag = termios.CS8 | termios.CSTOPB | termios.CREAD | termios.CLOCAL  # no PARENB, no CRTSCTS
    raw: list[int | list[bytes | int]] = [0, 0, cflag, 0, speed, speed, cc]
    termios.tcsetattr(fd, termios.TCSANOW, raw)
    termios.tcflush(fd, termios.TCIOFLUSH)  # bytes from before we opened belong to no request of ours
    try:  # terminals that watch DTR see an ECR; ecrterm raises both, as most ECRs do
        fcntl.ioctl(fd, termios.TIOCMBIS, struct.pack("I", termios.TIOCM_DTR | termios.TIOCM_RTS))
    except OSError as exc:
        if exc.errno not in (errno.ENOTTY, errno.EINVAL):  # a pseudo-terminal has no modem lines
            raise


class SerialLink:
    """``ZvtLink`` over a serial device: the ECR's end of the line."""

    def __init__(self, port: str, baudrate: int = 9600, *, ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        self.name = port
        self.baudrate = baudrate
        self.ack_timeout_s = ack_timeout_s
        self.line: FramedLine | None = None
        self._fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self.line is not None and not self.line.closed

    async def open(self, timeout_s: float) -> None:
        """Open and configure the device (it does not block: ``timeout_s`` is for links that connect)."""
        await self.close()
        try:
            fd = os.open(self.name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            hint = " (is the user in the dialout group?)" if exc.errno == errno.EACCES else ""
            raise LinkDown(f"{exc.strerror or exc}{hint}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # two processes on one line garble each other's frames
            configure_line(fd, self.baudrate)
        except BlockingIOError as exc:
            os.close(fd)
            raise LinkDown("in use by another process") from exc
        except (OSError, termios.error) as exc:
            os.close(fd)
            raise LinkDown(f"cannot set the line up: {exc}") from exc
        self._fd = fd
        self.line = FramedLine(fd, self.name, baudrate=self.baudrate, ack_timeout_s=self.ack_timeout_s)
        self.line.start()

    async def send(self, apdu: bytes) -> None:
        if self.line is None:
            raise LinkDown(f"{self.name} is not open")
        await self.line.send(apdu)

    async def receive(self) -> zf.Apdu:
        if self.line is None:
            raise LinkDown(f"{self.name} is not open")
        return zf.decode_apdu(await self.line.receive())

    async def close(self) -> None:
        line, fd, self.line, self._fd = self.line, self._fd, None, None
        if line is not None:
            line.close()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
