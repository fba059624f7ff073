"""OpenEVSE controller boards over RAPI (the firmware's serial protocol, 115200 8N1).

Frames (firmware ``rapi_proc.h``): a command is ``$CC arg arg :SS^XK\\r`` - two letters, space-separated arguments,
an optional sequence id ``:SS`` (hex, never 00) that the board echoes in its reply, and ``^XK``, the XOR of every
character before the ``^`` in two hex digits. Replies are ``$OK args :SS^XK\\r`` or ``$NK ...``; a frame whose
checksum does not add up is answered ``$NK`` without a sequence id. The board also speaks first: ``$AT evse pilot
amps vflags`` on every state change and ``$AB postcode version`` after it booted. The board's input buffer holds 32
characters, so a command line is at most 31.

Board behaviour this driver relies on (firmware ``J1772EvseController.cpp``):
- ``$FE`` enables, ``$FS`` sleeps (pilot +12 V; the relay opens once the EV left state C, after 3 s at the latest),
  ``$FD`` disables (pilot -12 V and the relay open at once: the firmware's "panic stop"). So ``stop_now`` is ``$FD``
  followed by ``$FS``: open at once, then +12 V again so that the EV's presence stays visible.
- ``$SC amps V`` sets the advertised current without writing the EEPROM (``V``: volatile), clamped to 6 A..maximum.
- ``$SY interval fallback`` arms the heartbeat supervision; ``$SY`` alone is one heartbeat. When no heartbeat came
  for ``interval`` seconds, the firmware lowers the current to ``fallback`` - but never below its 6 A minimum - and
  keeps charging; heartbeats are answered ``$NK`` until ``$SY 165`` acknowledges the miss (which restores the
  maximum current). The board never opens its relay because its master fell silent: see docs/hardware.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import operator
import os
import termios
import time
import tty
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from chargepoint.core.pilot import PilotOutput, PilotState
from hal.boards import BoardPorts, BoardSettings, BoardState
from hal.drivers.outage import OutageLog
from hal.errors import HalError, HalTimeout

_log = logging.getLogger(__name__)

DEFAULT_BAUDRATE: Final = 115200
DEFAULT_POLL_INTERVAL_S: Final = 0.1
DEFAULT_SUPERVISION_S: Final = 10
MAX_LINE_CHARS: Final = 31  # ESRAPI_BUFLEN 32, one of which ends the string
HS_ACK_COOKIE: Final = 165  # 0xA5: acknowledges a missed heartbeat
MIN_CURRENT_A: Final = 6  # MIN_CURRENT_CAPACITY_J1772

# EVSE states (J1772EvseController.h)
EVSE_STATE_UNKNOWN: Final = 0x00
EVSE_STATE_A: Final = 0x01
EVSE_STATE_B: Final = 0x02
EVSE_STATE_C: Final = 0x03
EVSE_STATE_D: Final = 0x04
EVSE_STATE_DIODE_CHK_FAILED: Final = 0x05
EVSE_STATE_GFCI_FAULT: Final = 0x06
EVSE_STATE_NO_GROUND: Final = 0x07
EVSE_STATE_STUCK_RELAY: Final = 0x08
EVSE_STATE_GFI_TEST_FAILED: Final = 0x09
EVSE_STATE_OVER_TEMPERATURE: Final = 0x0A
EVSE_STATE_OVER_CURRENT: Final = 0x0B
EVSE_STATE_RELAY_CLOSURE_FAULT: Final = 0x0E
EVSE_STATE_SLEEPING: Final = 0xFE
EVSE_STATE_DISABLED: Final = 0xFF
# vflags
ECVF_CHARGING_ON: Final = 0x0040  # the charging relay is closed
ECVF_GFI_TRIPPED: Final = 0x0080
ECVF_EV_CONNECTED: Final = 0x0100  # valid only while the pilot is not at -12 V

_FAULT_TEXT: Final = {
    EVSE_STATE_DIODE_CHK_FAILED: "diode check failed",
    EVSE_STATE_GFCI_FAULT: "GFCI fault",
    EVSE_STATE_NO_GROUND: "no ground",
    EVSE_STATE_STUCK_RELAY: "stuck relay",
    EVSE_STATE_GFI_TEST_FAILED: "GFI self-test failed",
    EVSE_STATE_OVER_TEMPERATURE: "over temperature",
    EVSE_STATE_OVER_CURRENT: "over current",
    EVSE_STATE_RELAY_CLOSURE_FAULT: "relay closure fault",
}
_VEHICLE: Final = {EVSE_STATE_A: PilotState.A, EVSE_STATE_B: PilotState.B, EVSE_STATE_C: PilotState.C,
                   EVSE_STATE_D: PilotState.D}


class RapiProtocolError(HalError):
    """A frame that is not RAPI: bad checksum, no checksum, nothing after ``$``."""


class RapiRejected(HalError):
    """The board answered ``$NK``; ``reply`` holds the arguments it sent with it."""

    def __init__(self, message: str, reply: tuple[str, ...]) -> None:
        super().__init__(message)
        self.reply = reply


# ---------------------------------------------------------------------- framing (pure)


def xor_checksum(text: str) -> int:
    """The ``^XK`` checksum: XOR of the characters' codes."""
    return functools.reduce(operator.xor, text.encode("ascii"), 0)


def additive_checksum(text: str) -> int:
    """The legacy ``*CK`` checksum: sum of the characters' codes, modulo 256."""
    return sum(text.encode("ascii")) & 0xFF


def encode_command(command: str, *args: str | int, seq_id: int | None = None) -> bytes:
    """``$command args :SS^XK\\r`` with the XOR checksum the firmware recommends."""
    if len(command) != 2 or not command.isascii() or not command.isalnum() or not command.isupper():
        raise ValueError(f"a RAPI command is two upper-case characters, got {command!r}")
    texts = [str(arg) for arg in args]
    for text in texts:
        if not text or not text.isascii() or any(c in text for c in " $^*:\r\n"):
            raise ValueError(f"RAPI argument {text!r} is empty or holds a separator")
    body = "$" + " ".join([command, *texts])
    if seq_id is not None:
        if not 1 <= seq_id <= 0xFF:
            raise ValueError(f"a RAPI sequence id is 1..255, got {seq_id}")
        body += f" :{seq_id:02X}"
    line = f"{body}^{xor_checksum(body):02X}"
    if len(line) > MAX_LINE_CHARS:
        raise ValueError(f"RAPI line {line!r} is longer than the board's {MAX_LINE_CHARS} characters")
    return (line + "\r").encode("ascii")


@dataclass(frozen=True, slots=True)
class RapiFrame:
    kind: str  # "OK", "NK", "AT", "AB" ...: the first token
    args: tuple[str, ...]
    seq_id: int | None = None


def decode_frame(line: str) -> RapiFrame:
    """One frame without its ``\\r``; its checksum (``^`` XOR or ``*`` additive) must be present and right."""
    line = line.strip("\r\n")
    if not line.startswith("$") or len(line) < 3:
        raise RapiProtocolError(f"not a RAPI frame: {line!r}")
    mark = max(line.rfind("^"), line.rfind("*"))
    if mark < 0:
        raise RapiProtocolError(f"RAPI frame without a checksum: {line!r}")
    body, check = line[:mark], line[mark + 1 :]
    try:
        received = int(check, 16)
        expected = xor_checksum(body) if line[mark] == "^" else additive_checksum(body)
    except (ValueError, UnicodeEncodeError):
        raise RapiProtocolError(f"RAPI frame with an unreadable checksum: {line!r}") from None
    if len(check) != 2 or received != expected:
        raise RapiProtocolError(f"RAPI checksum mismatch in {line!r} (expected {expected:02X})")
    tokens = body[1:].split()
    if not tokens:
        raise RapiProtocolError(f"empty RAPI frame: {line!r}")
    seq_id = None
    if len(tokens) > 1 and tokens[-1].startswith(":"):
        try:
            seq_id = int(tokens.pop()[1:], 16)
        except ValueError:
            raise RapiProtocolError(f"RAPI frame with a bad sequence id: {line!r}") from None
    return RapiFrame(kind=tokens[0], args=tuple(tokens[1:]), seq_id=seq_id)


# ---------------------------------------------------------------------- states (pure)


@dataclass(frozen=True, slots=True)
class RapiStatus:
    evse_state: int
    pilot_state: int
    vflags: int


def status_from_gs(args: Sequence[str]) -> RapiStatus:
    """``$GS`` reply: ``evsestate(hex) elapsed(dec) pilotstate(hex) vflags(hex)``."""
    if len(args) < 4:
        raise RapiProtocolError(f"$GS reply too short: {args!r}")
    try:
        return RapiStatus(int(args[0], 16), int(args[2], 16), int(args[3], 16))
    except ValueError:
        raise RapiProtocolError(f"$GS reply unreadable: {args!r}") from None


def status_from_at(args: Sequence[str]) -> tuple[RapiStatus, int]:
    """``$AT`` notification: ``evsestate(hex) pilotstate(hex) currentcapacity(dec) vflags(hex)``."""
    if len(args) < 4:
        raise RapiProtocolError(f"$AT notification too short: {args!r}")
    try:
        return RapiStatus(int(args[0], 16), int(args[1], 16), int(args[3], 16)), int(args[2])
    except ValueError:
        raise RapiProtocolError(f"$AT notification unreadable: {args!r}") from None


def board_state(status: RapiStatus, capacity_A: float) -> BoardState:
    """The ports' view of one OpenEVSE status."""
    state, flags = status.evse_state, status.vflags
    relay = bool(flags & ECVF_CHARGING_ON)
    connected = PilotState.B if flags & ECVF_EV_CONNECTED else PilotState.A
    fault = _FAULT_TEXT.get(state)
    if state in _VEHICLE:
        vehicle = _VEHICLE[state]
        pilot = PilotOutput.HIGH if state == EVSE_STATE_A else PilotOutput.PWM  # PWM only once an EV is there
        return BoardState(vehicle, pilot, capacity_A if pilot is PilotOutput.PWM else 0.0, relay)
    if state == EVSE_STATE_DISABLED:
        return BoardState(PilotState.F, PilotOutput.NEGATIVE, 0.0, relay)
    if state in (EVSE_STATE_SLEEPING, EVSE_STATE_UNKNOWN):
        return BoardState(connected, PilotOutput.HIGH, 0.0, relay)
    if state in (EVSE_STATE_GFCI_FAULT, EVSE_STATE_GFI_TEST_FAILED):
        return BoardState(connected, PilotOutput.NEGATIVE, 0.0, relay, rcd_tripped=True, fault=fault)
    if state == EVSE_STATE_STUCK_RELAY:
        return BoardState(connected, PilotOutput.NEGATIVE, 0.0, True, welded=True, fault=fault)
    if state == EVSE_STATE_DIODE_CHK_FAILED:
        return BoardState(PilotState.DIODE_FAILURE, PilotOutput.NEGATIVE, 0.0, relay, fault=fault)
    # No ground, temperature, over current, relay closure, or a fault this driver does not know: a faulted board.
    return BoardState(PilotState.E, PilotOutput.NEGATIVE, 0.0, relay, fault=fault or f"EVSE state 0x{state:02X}")


# ---------------------------------------------------------------------- serial line


def open_serial(path: str, baudrate: int) -> int:
    """A raw 8N1 serial line on ``path``, non-blocking. HUPCL is cleared: closing must not drop DTR, which resets
    boards whose DTR is wired to the MCU's reset (the Arduino auto-reset)."""
    speed = getattr(termios, f"B{baudrate}", None)
    if not isinstance(speed, int):
        raise ValueError(f"unsupported baud rate {baudrate}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise HalError(f"cannot open {path}: {exc}") from exc
    try:
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[2] = (attrs[2] | termios.CLOCAL | termios.CREAD) & ~termios.HUPCL & ~termios.CSTOPB & ~termios.PARENB
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        termios.tcflush(fd, termios.TCIFLUSH)  # whatever the board said before we listened
    except (termios.error, OSError) as exc:
        os.close(fd)
        raise HalError(f"cannot configure {path}: {exc}") from exc
    return fd


class OpenEvseBoard:
    """``BoardDriver`` for an OpenEVSE controller: commands with sequence ids, ``$AT`` notifications, a status poll
    that doubles as link check, and the heartbeat supervision."""

    can_drive_negative = True

    def __init__(self, settings: BoardSettings) -> None:
        self.name = f"OpenEVSE {settings.link}"
        self.board_max_current_A: float | None = None
        self._path = settings.link
        self._baudrate = settings.baudrate or DEFAULT_BAUDRATE
        self._poll_interval_s = settings.poll_interval_s or DEFAULT_POLL_INTERVAL_S
        self._supervision_s = DEFAULT_SUPERVISION_S if settings.supervision_s is None else settings.supervision_s
        self._fallback_A = max(MIN_CURRENT_A, round(settings.fallback_current_A))
        self._timeout_s = settings.timeout_s
        self._fd: int | None = None
        self._buffer = bytearray()
        self._lock = asyncio.Lock()  # one command in flight, as the board processes them
        self._pending: tuple[int, asyncio.Future[RapiFrame]] | None = None
        self._seq_id = 0
        self._ports: BoardPorts | None = None
        self._task: asyncio.Task[None] | None = None
        self._capacity_A = 0
        self._applied: tuple[str, int] = ("pause", 0)  # the last order, given again after the board rebooted
        self._rebooted = False

    # ------------------------------------------------------------------ link

    def _open(self) -> int:
        if self._fd is None:
            self._fd = open_serial(self._path, self._baudrate)
            self._buffer.clear()
            asyncio.get_running_loop().add_reader(self._fd, self._on_readable)
        return self._fd

    def _drop(self, reason: str) -> None:
        """Close the line after an I/O error; the next command opens it again (a USB adapter re-plugged)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
            _log.warning("%s: line closed: %s", self.name, reason)
        if self._pending is not None and not self._pending[1].done():
            self._pending[1].set_exception(HalError(f"{self.name}: {reason}"))

    def _on_readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 512)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the adapter or the other end went away
            self._drop(str(exc))
            return
        if not data:
            self._drop("end of file")
            return
        self._buffer += data
        while (end := self._buffer.find(b"\r")) >= 0:
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            start = raw.rfind(b"$")
            if start >= 0:  # anything before the last '$' is noise or a frame cut short
                self._on_line(raw[start:].decode("ascii", errors="replace"))
        if len(self._buffer) > 256:  # no CR in sight: a line-noise storm, not a frame
            self._buffer.clear()

    def _on_line(self, line: str) -> None:
        try:
            frame = decode_frame(line)
        except RapiProtocolError as exc:
            _log.debug("%s: dropped: %s", self.name, exc)
            return
        if frame.kind in ("OK", "NK"):
            pending = self._pending
            if pending is not None and not pending[1].done() and frame.seq_id in (None, pending[0]):
                pending[1].set_result(frame)
            else:
                _log.debug("%s: reply to no pending command: %s", self.name, line)
        elif frame.kind == "AT":
            try:
                status, self._capacity_A = status_from_at(frame.args)
            except RapiProtocolError as exc:
                _log.debug("%s: %s", self.name, exc)
                return
            self._report(status)
        elif frame.kind == "AB":
            post_code, firmware = (*frame.args, "?", "?")[:2]
            _log.warning("%s: the board restarted (post code %s, firmware %s)", self.name, post_code, firmware)
            self._rebooted = True

    async def _write(self, data: bytes) -> None:
        fd = self._open()
        view = memoryview(data)
        deadline_s = time.monotonic() + self._timeout_s
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                if time.monotonic() > deadline_s:
                    raise HalTimeout(f"{self.name}: the line does not take data") from None
                await asyncio.sleep(0.001)
            except OSError as exc:
                self._drop(str(exc))
                raise HalError(f"{self.name}: cannot write: {exc}") from exc

    async def command(self, command: str, *args: str | int) -> tuple[str, ...]:
        """Send one command and return the arguments of its ``$OK``; ``$NK`` raises ``RapiRejected``."""
        async with self._lock:
            self._seq_id = self._seq_id % 0xFF + 1
            future: asyncio.Future[RapiFrame] = asyncio.get_running_loop().create_future()
            self._pending = (self._seq_id, future)
            try:
                await self._write(encode_command(command, *args, seq_id=self._seq_id))
                async with asyncio.timeout(self._timeout_s):
                    reply = await future
            except TimeoutError:
                raise HalTimeout(f"{self.name}: no answer to ${command} within {self._timeout_s:g} s") from None
            finally:
                self._pending = None
        if reply.kind != "OK":
            raise RapiRejected(f"{self.name}: ${command} {' '.join(map(str, args))} refused", reply.args)
        return reply.args

    # ------------------------------------------------------------------ states

    def _report(self, status: RapiStatus) -> None:
        state = board_state(status, self._capacity_A)
        if state.fault is not None and (self._ports is None or self._ports.state != state):
            _log.error("%s: board fault: %s", self.name, state.fault)
        if self._ports is not None:
            self._ports.update(state)

    async def _refresh(self) -> None:
        self._report(status_from_gs(await self.command("GS")))

    async def _configure(self) -> None:
        version = await self.command("GV")
        _log.info("%s: firmware %s", self.name, " ".join(version))
        if self._supervision_s > 0:
            try:
                await self.command("SY", self._supervision_s, self._fallback_A)
            except RapiRejected:
                _log.error("%s: heartbeat supervision refused (firmware without HEARTBEAT_SUPERVISION?): the board "
                           "keeps its last offer if this controller stops", self.name)
        else:
            _log.warning("%s: heartbeat supervision off", self.name)
        capacity = await self.command("GC")  # minamps hmaxamps pilotamps cmaxamps
        with contextlib.suppress(IndexError, ValueError):
            self.board_max_current_A = float(capacity[3])
            self._capacity_A = int(capacity[2])

    async def _heartbeat(self) -> None:
        try:
            await self.command("SY")
        except RapiRejected:
            # The board recorded a missed heartbeat and lowered the current: acknowledge, which restores its
            # maximum, then give back what we offer.
            _log.warning("%s: the board recorded a missed heartbeat; acknowledging it", self.name)
            await self.command("SY", HS_ACK_COOKIE)
            await self._apply(*self._applied)

    async def _run(self) -> None:
        heartbeat_s = self._supervision_s / 3
        next_heartbeat_s = time.monotonic() + heartbeat_s
        outage = OutageLog(self.name)
        while True:
            try:
                if self._rebooted:
                    self._rebooted = False
                    await self._configure()
                    await self._apply(*self._applied)
                if self._supervision_s > 0 and time.monotonic() >= next_heartbeat_s:
                    await self._heartbeat()
                    next_heartbeat_s = time.monotonic() + heartbeat_s
                await self._refresh()
                outage.ended()
            except HalError as exc:  # the ports time the silence out
                outage.began(exc)
            await asyncio.sleep(self._poll_interval_s)

    # ------------------------------------------------------------------ BoardDriver

    async def start(self, ports: BoardPorts) -> None:
        self._ports = ports
        await self._configure()
        await self._refresh()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"poll {self.name}")

    async def _apply(self, order: str, current_A: int) -> None:
        self._applied = (order, current_A)
        if order == "offer":
            try:
                reply = await self.command("SC", current_A, "V")
            except RapiRejected as exc:  # clamped to the board's range: fine unless it went up
                reply = exc.reply
                if not reply or not reply[0].isdigit() or int(reply[0]) > current_A:
                    raise
            self._capacity_A = int(reply[0]) if reply and reply[0].isdigit() else current_A
            await self.command("FE")
        elif order == "pause":
            await self.command("FS")
        elif order == "stop":
            await self.command("FD")
            await self.command("FS")
        else:
            await self.command("FD")
        if self._ports is not None:
            await self._refresh()

    async def offer(self, current_A: int) -> None:
        await self._apply("offer", current_A)

    async def pause(self) -> None:
        await self._apply("pause", 0)

    async def stop_now(self) -> None:
        await self._apply("stop", 0)

    async def disable(self) -> None:
        await self._apply("disable", 0)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._fd is not None:
            fd, self._fd = self._fd, None
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
