"""Charger devices on GPIO lines: contactor, plug lock, residual-current monitor, mains monitor.

Each constructor takes plain parameters (chip path, line offsets, timings) and requests its lines at
once, in the device's safe state: the contactor relay off, the lock motor off. Board assumptions
(pull-downs on the relay and motor outputs so that a released line means off) are in
``hal.drivers.gpio_lines``. Inputs are watched by edge events, not polling: the runtime's safety
path reacts to ``feedback()``/``trips()``/``changes()`` as soon as the kernel reports the edge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from hal.drivers.gpio_lines import Bias, InputLine, OutputLine, ValueWatch
from hal.errors import LockError

_log = logging.getLogger(__name__)

LOCK_SENSE_POLL_S: Final = 0.01


def _watch_line(line: InputLine) -> Callable[[Callable[[bool], bool]], Awaitable[None]]:
    """A ``ValueWatch`` producer that publishes the level at start, then the level after each edge."""

    async def produce(publish: Callable[[bool], bool]) -> None:
        publish(line.value())  # anything that changed between construction and the first subscriber
        async for active in line.edges():
            publish(active)

    return produce


class _WatchedInput:
    """One debounced input with its ``ValueWatch``; base of the monitors."""

    def __init__(self, chip_path: str, offset: int, *, active_low: bool, debounce_s: float, bias: Bias) -> None:
        self._line = InputLine(chip_path, offset, active_low=active_low, debounce_s=debounce_s, bias=bias)
        self._watch: ValueWatch[bool] = ValueWatch(self._line.value(), _watch_line(self._line), name=self._line.name)

    def active(self) -> bool:
        return self._line.value()

    def subscribe(self) -> AsyncIterator[bool]:
        return self._watch.subscribe()

    def release(self) -> None:
        """Release the line at once (construction-time cleanup; no watch may be running)."""
        self._line.close()

    async def aclose(self) -> None:
        await self._watch.aclose()
        self.release()


class GpioContactor:
    """``Contactor``: a relay output driving the coil, and the mirror (auxiliary) contact as an input.

    Open at construction and after ``aclose()``; the relay output needs a pull-down so that a crash
    (line released by the kernel) opens it too. ``close()``/``open()`` drive the relay and return at
    once; the mirror contact confirms within the contactor's own time.
    """

    def __init__(
        self,
        chip_path: str,
        relay_offset: int,
        feedback_offset: int,
        *,
        feedback_active_low: bool = False,
        debounce_s: float = 0.01,
    ) -> None:
        self._relay = OutputLine(chip_path, relay_offset, active_high=True, initial=False)
        try:
            self._feedback = _WatchedInput(
                chip_path, feedback_offset, active_low=feedback_active_low, debounce_s=debounce_s, bias="as-is"
            )
        except BaseException:
            self._relay.close()  # released == open (pull-down)
            raise
        self._commanded_closed = False

    async def close(self) -> None:
        self._relay.set(True)
        self._commanded_closed = True

    async def open(self) -> None:
        self._commanded_closed = False
        self._relay.set(False)

    def commanded_closed(self) -> bool:
        return self._commanded_closed

    def feedback_closed(self) -> bool:
        return self._feedback.active()

    def feedback(self) -> AsyncIterator[bool]:
        return self._feedback.subscribe()

    def release(self) -> None:
        """Open and release both lines at once (construction-time cleanup; no watch may be running)."""
        self._commanded_closed = False
        try:
            if not self._relay.released:
                self._relay.set(False)
        finally:
            self._feedback.release()
            self._relay.close()

    async def aclose(self) -> None:
        """Open first, then stop watching and release both lines (released == open)."""
        self._commanded_closed = False
        try:
            if not self._relay.released:
                self._relay.set(False)
        finally:
            await self._feedback.aclose()
            self.release()


class GpioLock:
    """``ConnectorLock`` for a socket outlet: a DC motor driven one way or the other through two outputs
    (an H-bridge), pulsed for ``pulse_s``, and a position sensor input (active = locked).

    ``lock()``/``unlock()`` return once the sensor confirms the position, within ``timeout_s`` of the
    start, and raise ``LockError`` otherwise. Both motor outputs are never driven at once. Shutdown state
    is "unchanged": ``aclose()`` only releases the lines (the motor outputs need pull-downs).

    ``GpioLock(tethered=True)`` (or ``GpioLock.tethered_cable()``) is the variant for a fixed cable, which
    has no lock: no line is requested and both calls succeed at once.
    """

    def __init__(
        self,
        chip_path: str | None = None,
        lock_offset: int | None = None,
        unlock_offset: int | None = None,
        sense_offset: int | None = None,
        *,
        pulse_s: float = 0.3,
        timeout_s: float = 1.0,
        sense_active_low: bool = False,
        tethered: bool = False,
    ) -> None:
        self._tethered = tethered
        self._pulse_s = pulse_s
        self._timeout_s = timeout_s
        self._moving = asyncio.Lock()
        self._lines: tuple[OutputLine, OutputLine, InputLine] | None = None
        if tethered:
            if any(value is not None for value in (chip_path, lock_offset, unlock_offset, sense_offset)):
                raise ValueError("a tethered cable has no lock: give no chip or lines")
            return
        if chip_path is None or lock_offset is None or unlock_offset is None or sense_offset is None:
            raise ValueError("a plug lock needs chip_path, lock_offset, unlock_offset and sense_offset")
        if len({lock_offset, unlock_offset, sense_offset}) != 3:
            raise ValueError("the lock, unlock and sense lines must be different lines")
        if not 0 < pulse_s <= timeout_s:
            raise ValueError(f"need 0 < pulse_s <= timeout_s, got pulse_s={pulse_s}, timeout_s={timeout_s}")
        lock_line = OutputLine(chip_path, lock_offset, initial=False)
        try:
            unlock_line = OutputLine(chip_path, unlock_offset, initial=False)
            try:
                sense = InputLine(chip_path, sense_offset, active_low=sense_active_low, debounce_s=0.005)
            except BaseException:
                unlock_line.close()
                raise
        except BaseException:
            lock_line.close()
            raise
        self._lines = (lock_line, unlock_line, sense)

    @classmethod
    def tethered_cable(cls) -> GpioLock:
        return cls(tethered=True)

    @property
    def tethered(self) -> bool:
        return self._tethered

    async def _move(self, locked: bool) -> None:
        if self._lines is None:
            return
        lock_line, unlock_line, sense = self._lines
        drive, other = (lock_line, unlock_line) if locked else (unlock_line, lock_line)
        verb = "lock" if locked else "unlock"
        async with self._moving:
            if sense.value() == locked:
                return  # already there: do not run the motor against its end stop
            started_s = time.monotonic()
            other.set(False)
            try:
                drive.set(True)
                await asyncio.sleep(self._pulse_s)
            finally:
                drive.set(False)  # also when cancelled: never leave the motor running
            deadline_s = started_s + self._timeout_s
            while sense.value() != locked:
                if time.monotonic() >= deadline_s:
                    raise LockError(
                        f"plug lock did not {verb} within {self._timeout_s:g} s "
                        f"(position sensor {sense.name} still reads {'locked' if not locked else 'unlocked'})"
                    )
                await asyncio.sleep(LOCK_SENSE_POLL_S)
            _log.debug("plug lock %sed in %.3f s", verb, time.monotonic() - started_s)

    async def lock(self) -> None:
        await self._move(True)

    async def unlock(self) -> None:
        await self._move(False)

    def is_locked(self) -> bool:
        """The position sensor's reading; False for a tethered cable (nothing is locked)."""
        if self._lines is None:
            return False
        return self._lines[2].value()

    async def aclose(self) -> None:
        """Motor off and lines released; the lock stays where it is."""
        self.release()

    def release(self) -> None:
        """Motor off and lines released, at once."""
        lines, self._lines = self._lines, None
        if lines is None:
            return
        lock_line, unlock_line, sense = lines
        try:
            for output in (lock_line, unlock_line):
                if not output.released:
                    output.set(False)
        finally:
            for line in (lock_line, unlock_line, sense):
                line.close()


class GpioResidualCurrentMonitor(_WatchedInput):
    """``ResidualCurrentMonitor`` on the fault output of an RDC-DD module (IEC 62955, 6 mA DC).

    Such outputs are usually open-collector and pull low on a fault (``active_low=True``), so a broken
    wire with the pull-up enabled reads "no fault": wire the module's test output to check it at start.
    """

    def __init__(
        self, chip_path: str, offset: int, *, active_low: bool = True, debounce_s: float = 0.005, bias: Bias = "as-is"
    ) -> None:
        super().__init__(chip_path, offset, active_low=active_low, debounce_s=debounce_s, bias=bias)

    def tripped(self) -> bool:
        return self.active()

    def trips(self) -> AsyncIterator[bool]:
        return self.subscribe()


class GpioMainsMonitor(_WatchedInput):
    """``MainsMonitor`` on a mains-present input (an optocoupler on the supply side)."""

    def __init__(
        self, chip_path: str, offset: int, *, active_low: bool = False, debounce_s: float = 0.02, bias: Bias = "as-is"
    ) -> None:
        super().__init__(chip_path, offset, active_low=active_low, debounce_s=debounce_s, bias=bias)

    def present(self) -> bool:
        return self.active()

    def changes(self) -> AsyncIterator[bool]:
        return self.subscribe()
