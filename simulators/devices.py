"""Simulated devices implementing the ``hal.protocols`` ports with the hardware's rules.

Each device keeps real state and refuses impossible ones (a contactor is never open and closed at
once), records a timestamped history for tests, and publishes every change at once to each
subscriber, because the safety path in the runtime reacts to those changes, not to polling.

Devices do not own a clock: whenever something changes they call ``touch`` (given by their
connector) before and after, so the connector integrates energy with the old inputs up to the
instant of the change and then refreshes what depends on the new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from chargepoint.core.pilot import PilotOutput, PilotReading
from hal.errors import HalError, LockError
from simulators.ev import PILOT_HIGH_V, EvState, SimulatedEv

T = TypeVar("T")

Touch = Callable[[], None]


class Fault(enum.StrEnum):
    """Injectable faults; each stays until "clear-fault"."""

    GroundFault = "ground-fault"
    LockFailure = "lock-failure"
    FixedCable = "fixed-cable"
    PowerLoss = "power-loss"
    Weld = "weld"
    MeterOffline = "meter-offline"
    PilotShort = "pilot-short"
    PilotNegative = "pilot-negative"
    DiodeFailure = "diode-failure"
    Overcurrent = "overcurrent"
    ContactorStuckOpen = "contactor-stuck-open"
    LockForced = "lock-forced"
    InstallFailure = "install-failure"
    PilotStall = "pilot-stall"
    PpOpen = "pp-open"
    RcdWireBreak = "rcd-wire-break"
    Tamper = "tamper"  # the enclosure is opened (the charger's tamper switch)


# PP resistor codes of IEC 62196-2 cables: what ``sim plug --cable-A`` may plug in.
CABLE_RATINGS_A = (13, 20, 32, 63)


PILOT_NEGATIVE_V = -12.0
PILOT_SAMPLE_INTERVAL_S = 0.01
PILOT_SHORT_V = 0.0


class _Closed:
    """End-of-stream marker put on subscriber queues by ``aclose()``."""


_CLOSED = _Closed()


class _Broadcast(Generic[T]):
    """A value with any number of async subscribers; each sees the current value first, then changes."""

    def __init__(self, initial: T, key: Callable[[T], object] | None = None) -> None:
        self.value = initial
        self._key: Callable[[T], object] = key if key is not None else (lambda value: value)
        self._queues: set[asyncio.Queue[T | _Closed]] = set()
        self._closed = False

    def publish(self, value: T) -> bool:
        """Store ``value`` and wake subscribers; returns False (and does nothing) if unchanged."""
        if self._key(value) == self._key(self.value):
            return False
        self.value = value
        for queue in self._queues:
            queue.put_nowait(value)
        return True

    async def subscribe(self) -> AsyncGenerator[T, None]:
        queue: asyncio.Queue[T | _Closed] = asyncio.Queue()
        queue.put_nowait(self.value)
        self._queues.add(queue)
        try:
            while not self._closed or not queue.empty():
                item = await queue.get()
                if isinstance(item, _Closed):
                    return
                yield item
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        self._closed = True
        for queue in self._queues:
            queue.put_nowait(_CLOSED)


@dataclass(frozen=True, slots=True)
class PilotCommand:
    """One entry of the pilot output history."""

    at_s: float
    output: PilotOutput
    duty_percent: float


@dataclass(frozen=True, slots=True)
class ContactorCommand:
    """One entry of the contactor command history (True = close requested)."""

    at_s: float
    closed: bool


@dataclass(frozen=True, slots=True)
class LockCommand:
    """One entry of the lock history: what was asked and whether the actuator got there."""

    at_s: float
    locked: bool
    succeeded: bool


class SimPilot:
    """``ControlPilot``: drives HIGH/PWM/NEGATIVE and measures what the EV (and the faults) make of it."""

    def __init__(self, ev: SimulatedEv, faults: set[Fault], touch: Touch) -> None:
        self._ev = ev
        self._faults = faults
        self._touch = touch
        self._output = PilotOutput.HIGH
        self._duty_percent = 0.0
        self.history: list[PilotCommand] = []
        high_V, low_V = self._levels()
        self._reading = _Broadcast(
            PilotReading(high_V=high_V, low_V=low_V, measured_at_s=time.monotonic(), output=self._output),
            key=lambda reading: (reading.high_V, reading.low_V, reading.output),
        )

    def _levels(self) -> tuple[float, float]:
        if Fault.PilotShort in self._faults:
            return PILOT_SHORT_V, PILOT_SHORT_V  # a shorted line reads 0 V whatever we drive
        if Fault.PilotNegative in self._faults:
            return PILOT_NEGATIVE_V, PILOT_NEGATIVE_V  # line stuck at -12 V: reads as state F
        if self._output is PilotOutput.NEGATIVE:
            return PILOT_NEGATIVE_V, PILOT_NEGATIVE_V
        high_V = PILOT_HIGH_V[self._ev.state]
        if self._output is PilotOutput.HIGH:
            return high_V, high_V
        if Fault.DiodeFailure in self._faults and self._ev.state is not EvState.A:
            # Without the diode the negative half is no longer blocked (hal.protocols: close to high).
            return high_V, high_V
        return high_V, PILOT_NEGATIVE_V

    def refresh(self) -> None:
        """Re-measure after any change of output, EV state or fault."""
        high_V, low_V = self._levels()
        self._reading.publish(
            PilotReading(high_V=high_V, low_V=low_V, measured_at_s=time.monotonic(), output=self._output)
        )

    def _drive(self, output: PilotOutput, duty_percent: float) -> None:
        self._touch()
        self._output = output
        self._duty_percent = duty_percent
        self.history.append(PilotCommand(time.monotonic(), output, duty_percent))
        self.refresh()
        self._touch()

    async def set_pwm(self, duty_percent: float) -> None:
        if not 0.0 < duty_percent <= 100.0:
            raise ValueError(f"duty_percent must be within (0, 100], got {duty_percent}")
        self._drive(PilotOutput.PWM, duty_percent)

    async def set_high(self) -> None:
        self._drive(PilotOutput.HIGH, 0.0)

    async def set_negative(self) -> None:
        self._drive(PilotOutput.NEGATIVE, 0.0)

    def output(self) -> tuple[PilotOutput, float]:
        return self._output, self._duty_percent

    async def readings(self) -> AsyncIterator[PilotReading]:
        """A sample on every change at once, and every ``PILOT_SAMPLE_INTERVAL_S`` otherwise, as an ADC sampling
        each PWM period does; none at all while the "pilot-stall" fault holds the sampler."""
        changes = self._reading.subscribe()
        next_change: asyncio.Future[PilotReading] = asyncio.ensure_future(anext(changes))
        try:
            while True:
                done, _ = await asyncio.wait({next_change}, timeout=PILOT_SAMPLE_INTERVAL_S)
                if done:
                    try:
                        reading = next_change.result()
                    except StopAsyncIteration:
                        return
                    next_change = asyncio.ensure_future(anext(changes))
                else:
                    reading = self._reading.value
                if Fault.PilotStall not in self._faults:
                    yield replace(reading, measured_at_s=time.monotonic())
        finally:
            next_change.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await next_change
            await changes.aclose()

    def latest(self) -> PilotReading:
        return self._reading.value

    async def aclose(self) -> None:
        """Back to the safe output (+12 V, no PWM) and end every subscription."""
        if self._output is not PilotOutput.HIGH:
            self._drive(PilotOutput.HIGH, 0.0)
        self._reading.close()


class SimContactor:
    """``Contactor`` whose mirror contact follows the command after ``feedback_delay_s``.

    Welding and a coil that never pulls in are modelled as faults; the port reports them, it never
    hides them (a welded contactor reports closed after ``open()``).
    """

    def __init__(self, feedback_delay_s: float, faults: set[Fault], touch: Touch) -> None:
        if feedback_delay_s < 0:
            raise ValueError(f"contactor_feedback_delay_s must not be negative, got {feedback_delay_s}")
        self.feedback_delay_s = feedback_delay_s
        self._faults = faults
        self._touch = touch
        self._commanded_closed = False
        self._feedback = _Broadcast(False)
        self._timer: asyncio.TimerHandle | None = None
        self.welded = False
        self.history: list[ContactorCommand] = []

    def _command(self, closed: bool) -> None:
        self._commanded_closed = closed
        self.history.append(ContactorCommand(time.monotonic(), closed))
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.feedback_delay_s, self.settle)

    async def close(self) -> None:
        self._command(True)

    async def open(self) -> None:
        self._command(False)

    def settle(self) -> None:
        """Move the mirror contact to where the command and the faults put it."""
        self._timer = None
        if self._commanded_closed and Fault.Weld in self._faults:
            self.welded = True  # welds on closing under load
        if self.welded:
            position = True
        elif self._commanded_closed:
            position = Fault.ContactorStuckOpen not in self._faults
        else:
            position = False
        if position != self._feedback.value:
            self._touch()
            self._feedback.publish(position)
            self._touch()

    def restore_weld(self) -> None:
        """Welded before a restart: the contacts are still closed, whatever the new process commands."""
        self.welded = True
        self.settle()

    def inject_weld(self) -> None:
        """Weld now if the contacts are closed; otherwise the next close welds them."""
        if self._feedback.value:
            self.welded = True

    def clear_faults(self) -> None:
        self.welded = False
        if self._timer is None:
            self.settle()

    def commanded_closed(self) -> bool:
        return self._commanded_closed

    def feedback_closed(self) -> bool:
        return self._feedback.value

    def feedback(self) -> AsyncIterator[bool]:
        return self._feedback.subscribe()

    async def aclose(self) -> None:
        """Open (the shutdown state) at once: no timer may outlive the device."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._commanded_closed:
            self._commanded_closed = False
            self.history.append(ContactorCommand(time.monotonic(), False))
        self.settle()
        self._feedback.close()


class SimRfidReader:
    """``RfidReader`` fed by the "tap" stimulus."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | _Closed] = asyncio.Queue()
        self.history: list[tuple[float, str]] = []

    def present(self, uid: str) -> str:
        uid = uid.strip().upper()
        self.history.append((time.monotonic(), uid))
        self._queue.put_nowait(uid)
        return uid

    async def tags(self) -> AsyncIterator[str]:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Closed):
                return
            yield item

    async def aclose(self) -> None:
        self._queue.put_nowait(_CLOSED)


class SimLock:
    """``ConnectorLock`` with an actuator that takes ``lock_delay_s`` and can stick."""

    def __init__(self, lock_delay_s: float, faults: set[Fault]) -> None:
        if lock_delay_s < 0:
            raise ValueError(f"lock_delay_s must not be negative, got {lock_delay_s}")
        self.lock_delay_s = lock_delay_s
        self._faults = faults
        self._locked = False
        self.history: list[LockCommand] = []

    @property
    def tethered(self) -> bool:
        return Fault.FixedCable in self._faults

    async def _move(self, locked: bool) -> None:
        if self.tethered:
            return
        await asyncio.sleep(self.lock_delay_s)
        if Fault.LockFailure in self._faults:
            self.history.append(LockCommand(time.monotonic(), locked, succeeded=False))
            verb = "lock" if locked else "unlock"
            raise LockError(f"lock actuator did not {verb} within {self.lock_delay_s:g} s (stuck)")
        self._locked = locked
        self.history.append(LockCommand(time.monotonic(), locked, succeeded=True))

    async def lock(self) -> None:
        await self._move(True)

    async def unlock(self) -> None:
        await self._move(False)

    def is_locked(self) -> bool:
        return self._locked and Fault.LockForced not in self._faults

    def restore(self, locked: bool) -> None:
        """Where the bolt was before a restart: the actuator does not move by itself."""
        self._locked = locked

    async def aclose(self) -> None:
        """Shutdown state is "unchanged": a crash must not release a plug under load."""


class SimRcd:
    """``ResidualCurrentMonitor`` tripped by the "ground-fault" fault, with a TEST input (``SelfTestingRcd``)."""

    TEST_TRIP_S = 0.02  # a module trips on its test current within tens of milliseconds

    def __init__(self) -> None:
        self._tripped = _Broadcast(False)
        self.history: list[tuple[float, bool]] = []
        self.tests: list[tuple[float, bool]] = []  # (when, passed)
        self.test_works = True  # False: a module that no longer trips on its test current

    @property
    def has_test_input(self) -> bool:
        return True

    async def self_test(self) -> None:
        """Trips and resets the module; fails while it already reads tripped (a fault or a broken wire)."""
        if self._tripped.value:
            self.tests.append((time.monotonic(), False))
            raise HalError("RCD reads tripped before its test (fault, or a broken wire)")
        await asyncio.sleep(self.TEST_TRIP_S)
        self.tests.append((time.monotonic(), self.test_works))
        if not self.test_works:
            raise HalError(f"RCD did not trip within {self.TEST_TRIP_S:g} s of its test")

    def set_tripped(self, tripped: bool) -> None:
        if self._tripped.publish(tripped):
            self.history.append((time.monotonic(), tripped))

    def tripped(self) -> bool:
        return self._tripped.value

    def trips(self) -> AsyncIterator[bool]:
        return self._tripped.subscribe()

    async def aclose(self) -> None:
        self._tripped.close()


class SimProximity:
    """``ProximityPilot`` of the socket: the plugged cable's rating, None while no cable is in (or PP is open)."""

    def __init__(self) -> None:
        self._cable_A = _Broadcast[float | None](None)

    def set_cable(self, cable_A: float | None) -> None:
        self._cable_A.publish(cable_A)

    def cable_max_A(self) -> float | None:
        return self._cable_A.value

    def changes(self) -> AsyncIterator[float | None]:
        return self._cable_A.subscribe()

    async def aclose(self) -> None:
        self._cable_A.close()


class SimShuntTrip:
    """``ShuntTrip`` of the simulated upstream breaker: tripping it takes mains away until "clear-fault"."""

    def __init__(self, on_trip: Callable[[], None]) -> None:
        self._on_trip = on_trip
        self._tripped = False
        self.history: list[float] = []

    async def trip(self) -> None:
        self._tripped = True
        self.history.append(time.monotonic())
        self._on_trip()

    def tripped(self) -> bool:
        return self._tripped

    def reset(self) -> None:
        self._tripped = False

    def restore(self) -> None:
        """Tripped before a restart: the breaker is still open."""
        self._tripped = True

    async def aclose(self) -> None:
        """Shutdown state: unchanged (a tripped breaker stays open until reset by hand)."""


class SimTamper:
    """``TamperSwitch`` of the enclosure, opened by the "tamper" fault of any connector."""

    def __init__(self) -> None:
        self._opened = _Broadcast(False)

    def set_opened(self, opened: bool) -> None:
        self._opened.publish(opened)

    def opened(self) -> bool:
        return self._opened.value

    def changes(self) -> AsyncIterator[bool]:
        return self._opened.subscribe()

    async def aclose(self) -> None:
        self._opened.close()


class SimMains:
    """``MainsMonitor`` switched by the "power-loss" fault."""

    def __init__(self) -> None:
        self._present = _Broadcast(True)
        self.history: list[tuple[float, bool]] = []

    def set_present(self, present: bool) -> None:
        if self._present.publish(present):
            self.history.append((time.monotonic(), present))

    def present(self) -> bool:
        return self._present.value

    def changes(self) -> AsyncIterator[bool]:
        return self._present.subscribe()

    async def aclose(self) -> None:
        self._present.close()
