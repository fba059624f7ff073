"""Device self-tests: the pilot and RCD checks run at start (and the RCD's before each session), and the whole
technician's ``chargepoint selftest`` of an idle connector.

Each check returns a row: ``check``, ``result`` (pass, fail or skip) and ``detail`` in words a technician can act on.
The checks move real outputs (PWM on for a moment, the contactor closed for 100 ms with no EV, the lock cycled), so
the runtime only runs the full set while the connector is idle and holds back what the devices report meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from chargepoint.core.events import (
    ContactorFeedbackChanged,
    Event,
    LockCompleted,
    PilotChanged,
    ResidualCurrentChanged,
    SelfTested,
)
from chargepoint.core.pilot import DIODE_OK_MAX_LOW_V, PilotOutput, PilotReading, PilotState, classify
from chargepoint.runtime.connector import ConnectorRuntime
from hal.errors import HalError
from hal.hardware import Hardware
from hal.protocols import ControlPilot, SelfTestingRcd

log = logging.getLogger(__name__)

PILOT_TEST_DUTY_PERCENT = 50.0
SAMPLE_TIMEOUT_S = 0.5
CONTACTOR_CLOSE_S = 0.1
CONTACTOR_SETTLE_S = 0.5
MAINS_MIN_V = 180.0
MAINS_MAX_V = 270.0

Row = dict[str, Any]


def _row(c: ConnectorRuntime, check: str, result: str, detail: str) -> Row:
    return {"connector_id": c.connector_id, "check": check, "result": result, "detail": detail}


async def _sample_under(pilot: ControlPilot, output: PilotOutput) -> PilotReading | None:
    """The first sample taken while ``output`` was driven, or None if none comes."""
    readings = aiter(pilot.readings())
    try:
        async with asyncio.timeout(SAMPLE_TIMEOUT_S):
            async for reading in readings:
                if (reading.output or pilot.output()[0]) is output:
                    return reading
    except TimeoutError:
        return None
    finally:
        with contextlib.suppress(Exception):
            await readings.aclose()  # type: ignore[attr-defined]
    return None


async def pilot_test(pilot: ControlPilot) -> tuple[str, str]:
    """CP loop-back: with PWM on, the line must show the +12 V plateau (or the EV's level) and the -12 V half."""
    try:
        await pilot.set_pwm(PILOT_TEST_DUTY_PERCENT)
        try:
            reading = await _sample_under(pilot, PilotOutput.PWM)
        finally:
            await pilot.set_high()
    except HalError as exc:
        return "fail", f"the pilot output cannot be driven: {exc}"
    if reading is None:
        return "fail", f"no pilot sample within {SAMPLE_TIMEOUT_S:g} s (sampler dead?)"
    state = classify(reading, PilotOutput.HIGH)
    if state in (PilotState.E, PilotState.F):
        return "fail", f"the positive half reads {reading.high_V:.1f} V (short to PE, or no +12 V supply)"
    if state is PilotState.A and reading.low_V > DIODE_OK_MAX_LOW_V:
        return "fail", f"the negative half reads {reading.low_V:.1f} V: no -12 V supply, or the PWM does not switch"
    return "pass", f"{reading.high_V:+.1f} V / {reading.low_V:+.1f} V at {PILOT_TEST_DUTY_PERCENT:g} % (state {state})"


def _diode(c: ConnectorRuntime, reading: PilotReading | None) -> Row:
    if c.pilot_state not in (PilotState.B, PilotState.C, PilotState.D, PilotState.DIODE_FAILURE):
        return _row(c, "diode", "skip", "no EV plugged in: the EV's diode can only be checked with an EV")
    if reading is None:
        return _row(c, "diode", "fail", "no pilot sample under PWM")
    if reading.low_V > DIODE_OK_MAX_LOW_V:
        return _row(c, "diode", "fail", f"the negative half reads {reading.low_V:.1f} V with an EV: no diode")
    return _row(c, "diode", "pass", f"the EV's diode blocks the negative half ({reading.low_V:+.1f} V)")


async def rcd_test(c: ConnectorRuntime) -> tuple[str, str]:
    rcd = c.hw.rcd
    if not isinstance(rcd, SelfTestingRcd) or not rcd.has_test_input:
        if rcd.tripped():
            return "fail", "the RCD input reads tripped (a fault, a dead module or a broken wire)"
        return "skip", "no test input wired to the RCD module (input reads healthy)"
    try:
        await rcd.self_test()
    except HalError as exc:
        return "fail", str(exc)
    return "pass", "the module tripped on its test and reset"


async def _contactor(c: ConnectorRuntime) -> Row:
    contactor = c.hw.contactor
    if contactor.feedback_closed():
        return _row(c, "contactor", "fail", "the mirror contact reads closed while the contactor is open (welded?)")
    if c.pilot_state not in (None, PilotState.A):
        return _row(c, "contactor", "pass", "open confirmed; close not tried: an EV is plugged in")
    try:
        await contactor.close()
        closed = await _settles(contactor.feedback_closed, True)
        await asyncio.sleep(CONTACTOR_CLOSE_S)
    finally:
        await contactor.open()
    opened = await _settles(contactor.feedback_closed, False)
    if not closed:
        return _row(c, "contactor", "fail", "commanded closed, the mirror contact stayed open (coil, driver, wiring)")
    if not opened:
        return _row(c, "contactor", "fail", "commanded open, the mirror contact stays closed: welded")
    return _row(c, "contactor", "pass", "open and a short close with no EV confirmed by the mirror contact")


async def _settles(read: Any, wanted: bool) -> bool:
    deadline_s = time.monotonic() + CONTACTOR_SETTLE_S
    while read() != wanted:
        if time.monotonic() > deadline_s:
            return False
        await asyncio.sleep(0.01)
    return True


async def _meter(c: ConnectorRuntime) -> Row:
    try:
        reading = await c.hw.meter.read()
    except HalError as exc:
        return _row(c, "meter", "fail", f"not reachable: {exc}")
    voltages = [v for v in reading.voltage_V if v > 50.0]
    if not voltages or not all(MAINS_MIN_V <= v <= MAINS_MAX_V for v in voltages):
        return _row(c, "meter", "fail", f"implausible voltage {reading.voltage_V} (mains off, or wrong register map)")
    return _row(c, "meter", "pass", f"{reading.energy_Wh_import} Wh, {', '.join(f'{v:.0f} V' for v in voltages)}")


def _board_rows(c: ConnectorRuntime) -> list[Row]:
    """An EVSE board tests its pilot, diode, RCD and relay itself; what it reports is what the Pi can check."""
    state = c.pilot_state
    pilot = ("fail", f"the board reports state {state}") if state in (PilotState.E, PilotState.F) else (
        "pass", f"the board answers, state {state}")
    rcd = ("fail", "the board reports an RCD/GFCI fault") if c.hw.rcd.tripped() else ("pass", "no RCD fault reported")
    relay = ("fail", "the board reports its relay closed while idle (stuck relay?)") if (
        c.hw.contactor.feedback_closed()) else ("pass", "relay open; the board closes it only for an EV in C")
    return [
        _row(c, "pilot", *pilot),
        _row(c, "diode", "skip", "checked by the board itself when an EV asks for energy"),
        _row(c, "rcd", *rcd),
        _row(c, "contactor", *relay),
    ]


def _rfid(c: ConnectorRuntime) -> Row:
    reader = c.hw.rfid
    if type(reader).__name__ == "NoRfidReader":
        return _row(c, "rfid", "skip", "no card reader configured (hardware.rfid.backend = none)")
    return _row(c, "rfid", "pass", f"{type(reader).__name__} open")


async def _lock(c: ConnectorRuntime) -> Row:
    lock = c.hw.lock
    if lock.tethered:
        return _row(c, "lock", "skip", "tethered cable: no lock")
    if c.pilot_state not in (None, PilotState.A) or c.hw.contactor.feedback_closed():
        return _row(c, "lock", "skip", "a plug is in: the lock is not cycled")
    try:
        await lock.lock()
        await lock.unlock()
    except HalError as exc:
        return _row(c, "lock", "fail", str(exc))
    return _row(c, "lock", "pass", "locked and unlocked, confirmed by the position sensor")


async def run_all(c: ConnectorRuntime) -> list[Row]:
    """Every check of an idle connector, safety-relevant outputs back to safe after each."""
    rows: list[Row] = []
    if c.hw.board_controlled:
        return [*_board_rows(c), await _meter(c), _rfid(c), await _lock(c)]
    result, detail = await pilot_test(c.hw.pilot)
    rows.append(_row(c, "pilot", result, detail))
    reading: PilotReading | None = None
    if c.pilot_state in (PilotState.B, PilotState.C, PilotState.D, PilotState.DIODE_FAILURE):
        await c.hw.pilot.set_pwm(PILOT_TEST_DUTY_PERCENT)
        try:
            reading = await _sample_under(c.hw.pilot, PilotOutput.PWM)
        finally:
            await c.hw.pilot.set_high()
    rows.append(_diode(c, reading))
    result, detail = await rcd_test(c)
    rows.append(_row(c, "rcd", result, detail))
    rows.append(await _contactor(c))
    rows.append(await _meter(c))
    rows.append(_rfid(c))
    rows.append(await _lock(c))
    return rows


class SelfTests:
    """The runtime's side: the tests at start and before each session, and the technician's run of them all."""

    def __init__(self, connectors: Mapping[int, ConnectorRuntime], post: Callable[[int, Event], None],
                 hardware: Hardware) -> None:
        self._connectors = connectors
        self._post = post
        self._hardware = hardware

    async def at_start(self, c: ConnectorRuntime) -> None:
        """The pilot generator (only with no EV plugged: an EV must not see an offer; never on a board, which tests
        its own) and the RCD."""
        if not c.hw.board_controlled and classify(c.hw.pilot.latest(), PilotOutput.HIGH) is PilotState.A:
            result, detail = await pilot_test(c.hw.pilot)
            if result == "fail":
                log.error("connector %d: pilot self-test failed: %s", c.connector_id, detail)
            self._post(c.connector_id, SelfTested("pilot", result != "fail", time.monotonic()))
        await self.rcd(c)

    async def rcd(self, c: ConnectorRuntime) -> None:
        if not c.core.settings.rcd_test_before_session:
            return
        result, detail = await rcd_test(c)
        if result == "fail":
            log.error("connector %d: RCD self-test failed: %s", c.connector_id, detail)
        self._post(c.connector_id, SelfTested("rcd", result != "fail", time.monotonic()))

    async def run_idle(self) -> list[Row]:
        busy = [c.connector_id for c in self._connectors.values()
                if c.session is not None or c.core.contactor_commanded]
        if busy:
            raise ValueError(f"connector(s) {busy} in a session: stop it first, the self-test moves the contactor")
        rows: list[Row] = []
        for c in self._connectors.values():
            c.testing = True
            try:
                rows += await run_all(c)
            finally:
                await self._hardware.force_safe()
                c.testing = False
                self._resume(c)
        return rows

    def _resume(self, c: ConnectorRuntime) -> None:
        """Replay what was held back, except the tested devices' own reports: those are read afresh."""
        held, c.held = c.held, []
        for event in held:
            if not isinstance(event, PilotChanged | ContactorFeedbackChanged | ResidualCurrentChanged | LockCompleted):
                self._post(c.connector_id, event)
        now = time.monotonic()
        c.pilot_state = None  # the pilot loop posts its next sample whatever it is
        self._post(c.connector_id, ContactorFeedbackChanged(c.hw.contactor.feedback_closed(), now))
        self._post(c.connector_id, ResidualCurrentChanged(c.hw.rcd.tripped(), now))
