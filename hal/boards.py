"""EVSE controller boards: a microcontroller that drives the pilot, the relay and the RCD, with our firmware as its
brain over a serial link (OpenEVSE over RAPI, EVSE-DIN / SimpleEVSE over Modbus RTU).

A board reports a vehicle state, not voltages, and switches its relay itself when the EV asks (state C) while it
offers current. ``BoardPorts`` maps that onto the ports the runtime knows, the same for every board:

- ``ControlPilot``: ``set_pwm(duty)`` offers ``current_from_duty(duty)`` and enables the board; ``set_high()``
  withdraws the offer (+12 V); ``set_negative()`` disables it (state F, where the board can drive -12 V).
  ``readings()`` yields a synthetic nominal reading of the board's vehicle state every ``SAMPLE_INTERVAL_S`` and
  raises ``HalError`` once the board has not answered for ``link_timeout_s``.
- ``Contactor``: ``close()`` permits what the board does anyway in state C; ``open()`` opens the relay at once
  (the board's "stop now") whenever it is or may soon be closed. The feedback is the relay as the board reports
  it. Because the board moves its relay on its own the moment the EV changes state, a difference between the
  reported relay and our command is published only after ``FEEDBACK_GRACE_S`` (the runtime hears the pilot change
  first and commands accordingly; ``WITHDRAWN_GRACE_S`` for a relay that opened because we withdrew the offer); a
  difference that lasts is the truth and is published. A stuck relay the board detected is published at once.
- ``ResidualCurrentMonitor``, ``ProximityPilot`` and ``MainsMonitor`` read the same board state.

Drivers (``hal.drivers.openevse_rapi``, ``hal.drivers.evse_din``) implement ``BoardDriver`` and report what the
board says through ``BoardPorts.update``. ``board_settings`` reads ``[hardware.board]`` (raw TOML or validated)
without pydantic, so that the early safe path can tell the board to stop before the config is validated.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, NamedTuple, Protocol, TypeVar

from chargepoint.core.pilot import PilotOutput, PilotReading, PilotState, current_from_duty
from hal.errors import HalError
from hal.hardware import ConnectorHardware, Hardware, TetheredCable
from hal.protocols import ConnectorLock, Display, EnergyMeter, ProximityPilot, RfidReader
from hal.registry import load_backend

BOARD_KINDS: Final = ("openevse", "evse-din")
SAMPLE_INTERVAL_S: Final = 0.01  # the runtime treats a pilot silent for 100 ms as a fault
FEEDBACK_GRACE_S: Final = 0.3
WITHDRAWN_GRACE_S: Final = 12.0
# A duty is rounded to 0.1 %, i.e. 0.06 A: without this margin 32 A would come back as 31.98 A and be cut to 31.
_DUTY_ROUNDING_A: Final = 0.06


class BoardSettings(NamedTuple):
    """``[hardware.board]``. The defaults repeat the schema's (raw TOML is read before validation; a test checks that
    they agree); None means "the default of the board's kind" (see the drivers)."""

    kind: str = "openevse"
    link: str = "/dev/serial0"
    baudrate: int | None = None
    device_id: int = 1
    supervision_s: int | None = None
    fallback_current_A: float = 6.0
    poll_interval_s: float | None = None
    timeout_s: float = 0.5
    link_timeout_s: float = 2.0
    max_current_A: float | None = None


_INT_FIELDS: Final = frozenset({"baudrate", "device_id", "supervision_s"})
_STR_FIELDS: Final = frozenset({"kind", "link"})


def board_settings(table: Mapping[str, Any]) -> BoardSettings:
    """Settings from a ``[hardware.board]`` table (raw TOML or ``model_dump()``), defaults filled in.

    Raises ``TypeError``/``ValueError`` on a value of the wrong type or an unknown kind (the schema's validation
    then explains it); ranges and unknown keys are left to the validation.
    """
    values: dict[str, Any] = {}
    defaults: dict[str, Any] = BoardSettings._field_defaults
    for name, default in defaults.items():
        value = table.get(name, default)
        if value is None:
            ok = default is None
        elif name in _STR_FIELDS:
            ok = isinstance(value, str)
        elif name in _INT_FIELDS:
            ok = type(value) is int
        else:  # float: an integer is a float too, as in TOML validation
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        if not ok:
            raise TypeError(f"hardware.board.{name} = {value!r}: wrong type")
        values[name] = value
    if values["kind"] not in BOARD_KINDS:
        raise ValueError(f"hardware.board.kind = {values['kind']!r}: expected one of {', '.join(BOARD_KINDS)}")
    return BoardSettings(**values)


@dataclass(frozen=True, slots=True)
class BoardState:
    """What a board reported at one instant, in the ports' terms."""

    vehicle: PilotState  # A-D as the board reads the EV; E for a board fault; DIODE_FAILURE
    pilot: PilotOutput  # what the board drives now
    offered_A: float  # the current it advertises now (0 unless PWM)
    relay_closed: bool
    welded: bool = False  # the board detected a stuck relay
    rcd_tripped: bool = False
    cable_max_A: float | None = None  # the plugged cable's PP rating; None: no cable, or no PP input
    fault: str | None = None  # the board's own words for a fault state, for the journal


# Nominal plateaus of IEC 61851-1 annex A, so that ``classify`` gives back the board's state.
_NOMINAL_V: Final = {
    PilotState.A: (12.0, -12.0),
    PilotState.B: (9.0, -12.0),
    PilotState.C: (6.0, -12.0),
    PilotState.D: (3.0, -12.0),
    PilotState.E: (0.0, 0.0),
    PilotState.F: (-12.0, -12.0),
    PilotState.DIODE_FAILURE: (9.0, 9.0),  # the negative half does not reach -12 V
}


def nominal_reading(state: PilotState, at_s: float) -> PilotReading:
    high_V, low_V = _NOMINAL_V[state]
    return PilotReading(high_V=high_V, low_V=low_V, measured_at_s=at_s)


def offer_A(duty_percent: float) -> int:
    """Whole amperes to tell a board for ``duty_percent``: never more than the duty advertises."""
    return math.floor(current_from_duty(duty_percent) + _DUTY_ROUNDING_A)


class BoardDriver(Protocol):
    """One board on its link. Every command returns once the board acknowledged it and raises ``HalError``
    (``HalTimeout`` when the board is silent) otherwise. Commands open the link on first use, so that the early safe
    path can use them before ``start``."""

    name: str
    can_drive_negative: bool  # False: the board has no state F output; disable() stops like stop_now()
    board_max_current_A: float | None  # the board's own configured maximum, known after start()

    async def start(self, ports: BoardPorts) -> None:
        """Open the link, configure supervision, start reporting states through ``ports.update``."""
        ...

    async def offer(self, current_A: int) -> None:
        """Advertise ``current_A`` by PWM and allow charging: the board closes its relay when the EV asks."""
        ...

    async def pause(self) -> None:
        """Withdraw the offer: pilot +12 V, relay opens (the board may first wait for the EV to stop)."""
        ...

    async def stop_now(self) -> None:
        """Open the relay at once whatever the EV does; the pilot ends at +12 V (no PWM)."""
        ...

    async def disable(self) -> None:
        """State F (pilot -12 V) where the board can, relay open at once."""
        ...

    async def aclose(self) -> None: ...


_T = TypeVar("_T")


class _Watch(Generic[_T]):
    """A value with async subscribers: each sees the value first, then every change, until ``close()``."""

    def __init__(self, value: _T) -> None:
        self.value = value
        self._queues: set[asyncio.Queue[tuple[_T] | None]] = set()
        self._closed = False

    def publish(self, value: _T) -> None:
        if value != self.value:
            self.value = value
            for queue in self._queues:
                queue.put_nowait((value,))

    async def subscribe(self) -> AsyncIterator[_T]:
        queue: asyncio.Queue[tuple[_T] | None] = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield self.value
            while not self._closed:
                item = await queue.get()
                if item is None:
                    return
                yield item[0]
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        self._closed = True
        for queue in self._queues:
            queue.put_nowait(None)


class BoardPorts:
    """The ports of one connector on one board (see the module docstring for the mapping)."""

    def __init__(self, driver: BoardDriver, *, link_timeout_s: float) -> None:
        self.driver = driver
        self._link_timeout_s = link_timeout_s
        self.state: BoardState | None = None
        self._last_report_s: float | None = None  # monotonic time of the last answer; None before start
        self._changed = asyncio.Event()
        self._output: tuple[PilotOutput, float] = (PilotOutput.HIGH, 0.0)
        self._commanded_closed = False
        self._suspended = False  # open() stopped the board while the pilot command was still PWM
        self._feedback: _Watch[bool] = _Watch(False)
        self._grace: asyncio.TimerHandle | None = None
        self._rcd: _Watch[bool] = _Watch(False)
        self._cable: _Watch[float | None] = _Watch(None)
        self._closed = False

    # ------------------------------------------------------------------ from the driver

    async def start(self) -> None:
        await self.driver.start(self)

    def update(self, state: BoardState) -> None:
        """A fresh answer from the board (called for every one, changed or not: it also proves the link)."""
        self._last_report_s = time.monotonic()
        if state == self.state:
            return
        self.state = state
        # The pilot first: subscribers to readings() wake before the feedback below is published.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self._rcd.publish(state.rcd_tripped)
        self._cable.publish(state.cable_max_A)
        self._reconcile_feedback()

    def check_link(self) -> None:
        if self._last_report_s is not None:
            silent_s = time.monotonic() - self._last_report_s
            if silent_s > self._link_timeout_s:
                raise HalError(f"{self.driver.name}: no answer for {silent_s:.1f} s (link lost)")

    # ------------------------------------------------------------------ contactor feedback

    def _relay_closed(self) -> bool:
        return self.state is not None and (self.state.relay_closed or self.state.welded)

    def _reconcile_feedback(self) -> None:
        relay = self._relay_closed()
        welded = self.state is not None and self.state.welded
        if relay == self._commanded_closed or welded:
            self._cancel_grace()
            self._feedback.publish(relay)
        elif self._grace is None and relay != self._feedback.value:
            # A relay the board opened after we withdrew the offer did what we asked: the runtime opens the contactor
            # once the EV stopped drawing (stop_wait_s, at most 10 s), so that case waits longer.
            withdrawn = not relay and self.output()[0] is not PilotOutput.PWM
            grace_s = WITHDRAWN_GRACE_S if withdrawn else FEEDBACK_GRACE_S
            self._grace = asyncio.get_running_loop().call_later(grace_s, self._grace_over)

    def _grace_over(self) -> None:
        self._grace = None
        self._feedback.publish(self._relay_closed())

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    # ------------------------------------------------------------------ pilot

    async def set_pwm(self, duty_percent: float) -> None:
        if not 0.0 < duty_percent <= 100.0:
            raise ValueError(f"duty_percent must be within (0, 100], got {duty_percent}")
        self._output = (PilotOutput.PWM, duty_percent)
        self._suspended = False
        await self.driver.offer(max(6, offer_A(duty_percent)))

    async def set_high(self) -> None:
        self._output = (PilotOutput.HIGH, 0.0)
        self._suspended = False
        await self.driver.pause()

    async def set_negative(self) -> None:
        # A board without a -12 V output stops instead: the line then carries +12 V, and output() says so.
        self._output = (PilotOutput.NEGATIVE if self.driver.can_drive_negative else PilotOutput.HIGH, 0.0)
        self._suspended = False
        await self.driver.disable()

    def output(self) -> tuple[PilotOutput, float]:
        if self._suspended:
            return PilotOutput.HIGH, 0.0
        return self._output

    def latest(self) -> PilotReading:
        now_s = time.monotonic()
        if self.state is None:
            return PilotReading(high_V=math.nan, low_V=math.nan, measured_at_s=now_s)
        return nominal_reading(self.state.vehicle, now_s)

    async def readings(self) -> AsyncIterator[PilotReading]:
        while not self._closed:
            self.check_link()
            if self.state is not None:
                yield self.latest()
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SAMPLE_INTERVAL_S):
                    await changed.wait()

    # ------------------------------------------------------------------ contactor

    async def close(self) -> None:
        self._commanded_closed = True
        self._reconcile_feedback()
        if self._suspended and self._output[0] is PilotOutput.PWM:
            # open() stopped the board under a PWM offer: bring the offer back for the relay to close.
            self._suspended = False
            await self.driver.offer(max(6, offer_A(self._output[1])))

    async def open(self) -> None:
        self._commanded_closed = False
        self._reconcile_feedback()
        state = self.state
        if state is None or state.relay_closed or state.welded or state.vehicle.requests_energy:
            # Closed, or about to be closed by the board itself: stop it now, whatever the pilot does.
            self._suspended = self._output[0] is PilotOutput.PWM
            await self.driver.stop_now()

    def commanded_closed(self) -> bool:
        return self._commanded_closed

    def feedback_closed(self) -> bool:
        return self._feedback.value

    def feedback(self) -> AsyncIterator[bool]:
        return self._feedback.subscribe()

    # ------------------------------------------------------------------ RCD, PP

    def rcd_tripped(self) -> bool:
        return self._rcd.value

    def rcd_trips(self) -> AsyncIterator[bool]:
        return self._rcd.subscribe()

    def cable_max_A(self) -> float | None:
        return self._cable.value

    def cable_changes(self) -> AsyncIterator[float | None]:
        return self._cable.subscribe()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancel_grace()
        self._changed.set()
        for watch in (self._feedback, self._rcd, self._cable):
            watch.close()
        await self.driver.aclose()


class BoardPilot:
    """``ControlPilot`` of a board (see ``BoardPorts``)."""

    def __init__(self, ports: BoardPorts) -> None:
        self._ports = ports

    async def set_pwm(self, duty_percent: float) -> None:
        await self._ports.set_pwm(duty_percent)

    async def set_high(self) -> None:
        await self._ports.set_high()

    async def set_negative(self) -> None:
        await self._ports.set_negative()

    def output(self) -> tuple[PilotOutput, float]:
        return self._ports.output()

    def readings(self) -> AsyncIterator[PilotReading]:
        return self._ports.readings()

    def latest(self) -> PilotReading:
        return self._ports.latest()

    async def aclose(self) -> None:
        pass  # nothing of its own: BoardHardware made the board safe and closes the link


class BoardContactor:
    """``Contactor`` of a board: the relay the board switches (see ``BoardPorts``)."""

    def __init__(self, ports: BoardPorts) -> None:
        self._ports = ports

    async def close(self) -> None:
        await self._ports.close()

    async def open(self) -> None:
        await self._ports.open()

    def commanded_closed(self) -> bool:
        return self._ports.commanded_closed()

    def feedback_closed(self) -> bool:
        return self._ports.feedback_closed()

    def feedback(self) -> AsyncIterator[bool]:
        return self._ports.feedback()

    async def aclose(self) -> None:
        pass  # as BoardPilot.aclose


class BoardRcd:
    """``ResidualCurrentMonitor``: the board's GFCI/RCD fault state (ends with the board's link)."""

    def __init__(self, ports: BoardPorts) -> None:
        self.tripped, self.trips = ports.rcd_tripped, ports.rcd_trips

    async def aclose(self) -> None:
        pass


class BoardProximity:
    """``ProximityPilot``: the cable rating the board reads on PP, EVSE-DIN register 1003 (ends with the link)."""

    def __init__(self, ports: BoardPorts) -> None:
        self.cable_max_A, self.changes = ports.cable_max_A, ports.cable_changes

    async def aclose(self) -> None:
        pass


class BoardMains:
    """``MainsMonitor`` of a board that runs from the same supply: it never reports a loss, because a board without
    mains falls silent, and the link supervision reports that (the pilot readings raise)."""

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    def present(self) -> bool:
        return True

    async def changes(self) -> AsyncIterator[bool]:
        yield True
        await self._closed.wait()

    async def aclose(self) -> None:
        self._closed.set()


@dataclass(slots=True)
class BoardHardware(Hardware):
    """One connector on an EVSE board, with the settings it was built from."""

    settings: BoardSettings
    board: BoardPorts
    built_from: tuple[object, ...] = ()  # what else it was built from (meter, lock, reader, cable), to compare

    async def start(self) -> None:
        await self.board.start()
        board_max_A = self.board.driver.board_max_current_A
        if board_max_A is not None:
            for hw in self.connectors:
                hw.max_current_A = board_max_A if hw.max_current_A is None else min(hw.max_current_A, board_max_A)

    async def aclose(self) -> None:
        try:
            await Hardware.aclose(self)
        finally:
            await self.board.aclose()


def create_board_hardware(
    settings: BoardSettings,
    meter: EnergyMeter,
    rfid: RfidReader,
    lock: ConnectorLock,
    display: Display,
    tethered_cable_A: float | None = None,
    built_from: tuple[object, ...] = (),
) -> BoardHardware:
    """One connector on the board ``settings`` names; nothing is opened until a command or ``start()``.

    ``tethered_cable_A``: the rating of a fixed cable; None for a socket outlet, whose cable rating the board reads
    on PP (an OpenEVSE has no PP input: it needs a fixed cable).
    """
    driver: BoardDriver = load_backend("board", settings.kind)(settings)
    ports = BoardPorts(driver, link_timeout_s=settings.link_timeout_s)
    pp: ProximityPilot = BoardProximity(ports) if tethered_cable_A is None else TetheredCable(tethered_cable_A)
    connector = ConnectorHardware(
        connector_id=1, pilot=BoardPilot(ports), contactor=BoardContactor(ports), meter=meter, rfid=rfid, lock=lock,
        rcd=BoardRcd(ports), mains=BoardMains(), display=display, pp=pp, max_current_A=settings.max_current_A,
        board_controlled=True,
    )
    return BoardHardware(connectors=[connector], settings=settings, board=ports, built_from=built_from)
