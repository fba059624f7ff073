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
from hal.errors import HalError, LockError

_log = logging.getLogger(__name__)

LOCK_SENSE_POLL_S: Final = 0.01
TEST_SETTLE_S: Final = 0.05


def _watch_line(
    line: InputLine, muted: Callable[[], bool] = lambda: False
) -> Callable[[Callable[[bool], bool]], Awaitable[None]]:
    """A ``ValueWatch`` producer that publishes the level at start, then the level after each edge (none while
    ``muted()``: a device's own self-test)."""

    async def produce(publish: Callable[[bool], bool]) -> None:
        publish(line.value())  # anything that changed between construction and the first subscriber
        async for active in line.edges():
            if not muted():
                publish(active)

    return produce


class _WatchedInput:
    """One debounced input with its ``ValueWatch``; base of the monitors."""

    def __init__(self, chip_path: str, offset: int, *, active_low: bool, debounce_s: float, bias: Bias) -> None:
        self._line = InputLine(chip_path, offset, active_low=active_low, debounce_s=debounce_s, bias=bias)
        self._watch: ValueWatch[bool] = ValueWatch(
            self._line.value(), _watch_line(self._line, self._muted), name=self._line.name
        )

    def _muted(self) -> bool:
        return False

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

    Wired fail-safe (the default): the module holds the line high while healthy, the Pi's pull-down makes a trip, a
    dead module and a broken wire all read low = tripped (``active_low``). With a ``test_offset`` wired to the
    module's TEST input, ``self_test()`` makes the module trip and reset, hidden from ``trips()`` subscribers.
    """

    def __init__(
        self, chip_path: str, offset: int, *, active_low: bool = True, debounce_s: float = 0.005,
        bias: Bias = "pull-down", test_offset: int | None = None, test_active_low: bool = False,
    ) -> None:
        self._testing = False
        self._test: OutputLine | None = None
        if test_offset is not None:
            self._test = OutputLine(chip_path, test_offset, active_high=not test_active_low, initial=False)
        try:
            super().__init__(chip_path, offset, active_low=active_low, debounce_s=debounce_s, bias=bias)
        except BaseException:
            if self._test is not None:
                self._test.close()
            raise

    @property
    def has_test_input(self) -> bool:
        return self._test is not None

    async def self_test(self, trip_within_s: float = 1.0, reset_within_s: float = 2.0) -> None:
        """Drive TEST until the module trips, release it, and wait for the reset; ``HalError`` if either fails."""
        if self._test is None:
            raise HalError(f"{self._line.name}: the RCD module has no test input wired")
        if self.active():
            raise HalError(f"{self._line.name}: the RCD reads tripped before its test (fault, or a broken wire)")
        self._testing = True
        try:
            self._test.set(True)
            try:
                if not await _becomes(self.active, True, trip_within_s):
                    raise HalError(f"{self._line.name}: the RCD did not trip within {trip_within_s:g} s of its test")
            finally:
                self._test.set(False)
            if not await _becomes(self.active, False, reset_within_s):
                raise HalError(f"{self._line.name}: the RCD did not reset within {reset_within_s:g} s of its test")
        finally:
            await asyncio.sleep(TEST_SETTLE_S)  # the test's edges, still queued, are read while muted
            self._testing = False
            self._watch.publish(self.active())  # what the module says now, test or no test

    def _muted(self) -> bool:
        return self._testing

    def tripped(self) -> bool:
        return self.active() and not self._testing

    def trips(self) -> AsyncIterator[bool]:
        return self.subscribe()

    def release(self) -> None:
        try:
            _WatchedInput.release(self)
        finally:
            if self._test is not None:
                self._test.close()


async def _becomes(read: Callable[[], bool], wanted: bool, within_s: float) -> bool:
    deadline_s = time.monotonic() + within_s
    while read() != wanted:
        if time.monotonic() > deadline_s:
            return False
        await asyncio.sleep(0.005)
    return True


class GpioShuntTrip:
    """``ShuntTrip``: an output that energises the upstream breaker's shunt-trip release (through its driver)."""

    def __init__(self, chip_path: str, offset: int, *, active_low: bool = False) -> None:
        self._line = OutputLine(chip_path, offset, active_high=not active_low, initial=False)
        self._tripped = False

    async def trip(self) -> None:
        self._line.set(True)
        self._tripped = True

    def tripped(self) -> bool:
        return self._tripped

    def release(self) -> None:
        self._line.close()

    async def aclose(self) -> None:
        """Released: the release coil's driver falls off; the breaker, once tripped, stays open by itself."""
        self.release()


class GpioTamperSwitch(_WatchedInput):
    """``TamperSwitch`` on a door or cover contact that is closed while the enclosure is shut (a broken wire, like
    an open door, reads as opened)."""

    def __init__(
        self, chip_path: str, offset: int, *, active_low: bool = False, debounce_s: float = 0.05, bias: Bias = "as-is"
    ) -> None:
        super().__init__(chip_path, offset, active_low=active_low, debounce_s=debounce_s, bias=bias)

    def opened(self) -> bool:
        return not self.active()

    async def changes(self) -> AsyncIterator[bool]:
        async for closed in self.subscribe():
            yield not closed


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
