"""The loops that turn what the devices report into events for the core, one set per connector.

Each loop only reads its device and posts; the core decides. A pilot whose readings stop is a fault; a meter
that misses ``METER_FAILURES_BEFORE_FAULT`` reads in a row is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from chargepoint.cancellation import raise_if_cancelling
from chargepoint.core.events import (
    CableChanged,
    ContactorFeedbackChanged,
    Event,
    LockStateRead,
    MainsChanged,
    MeterFailed,
    MeterSampled,
    PilotChanged,
    PilotFailed,
    ResidualCurrentChanged,
    TagPresented,
)
from chargepoint.core.pilot import PilotReading, PilotState, classify
from chargepoint.logfields import log_fields
from chargepoint.ports.events import ChargerEvent, MeterRead
from chargepoint.runtime.connector import ConnectorRuntime
from hal.errors import HalError

log = logging.getLogger(__name__)

# A real RS-485 bus drops the odd frame; three misses in a row is a dead meter.
METER_FAILURES_BEFORE_FAULT = 3

Post = Callable[[int, Event], None]
_T = TypeVar("_T")


async def pilot_loop(c: ConnectorRuntime, post: Post, stopping: Callable[[], bool], timeout_s: float = 0.1,
                     debounce_samples: int = 1, tick: Callable[[int], None] | None = None) -> None:
    """Classify every pilot sample; post each new state.

    Freshness: no sample within ``timeout_s`` is a fault (``PilotFailed``) that opens the contactor; the next sample
    is reported afresh. Debounce: a state that asks for energy (C, D) must be seen in ``debounce_samples``
    consecutive samples before it is posted (and so must a diode fault, which latches), while any other state is
    posted at once: a flickering B/C can delay a close, never an open. ``tick`` hears of every sample processed:
    the watchdogs are fed from there (the safety loop), and from nowhere else.
    """
    readings = aiter(c.hw.pilot.readings())
    # anext() runs as a task of its own: a timeout must not cancel it, that would close the sampler's generator.
    next_sample: asyncio.Future[PilotReading] = asyncio.ensure_future(anext(readings))
    candidate: PilotState | None = None
    seen = 0
    lost = False
    try:
        while True:
            done, _ = await asyncio.wait({next_sample}, timeout=timeout_s)
            if not done:
                if not lost:
                    lost = True
                    c.pilot_state = None
                    reason = f"no pilot sample for {timeout_s * 1000:.0f} ms"
                    log.error("connector %d: %s", c.connector_id, reason, extra=log_fields(connector=c.connector_id))
                    post(c.connector_id, PilotFailed(reason, time.monotonic()))
                continue
            try:
                reading = next_sample.result()
            except StopAsyncIteration:
                break
            next_sample = asyncio.ensure_future(anext(readings))
            lost = False
            if tick is not None:
                tick(c.connector_id)
            output = reading.output if reading.output is not None else c.hw.pilot.output()[0]
            state = classify(reading, output, c.pilot_state)
            if state == c.pilot_state:
                candidate = None
                continue
            if (state.requests_energy or state is PilotState.DIODE_FAILURE) and debounce_samples > 1:
                # Energy waits for a steady C/D; a diode fault latches, so one odd sample must not raise it.
                seen = seen + 1 if state == candidate else 1
                candidate = state
                if seen < debounce_samples:
                    continue
            candidate = None
            c.pilot_state = state
            post(c.connector_id, PilotChanged(state, time.monotonic()))
    except HalError as exc:
        post(c.connector_id, PilotFailed(str(exc), time.monotonic()))
        raise
    finally:
        next_sample.cancel()
    if not stopping():
        post(c.connector_id, PilotFailed("pilot readings ended", time.monotonic()))


LOCK_POLL_S = 0.2


async def lock_monitor(c: ConnectorRuntime, post: Post) -> None:
    """The lock's position sensor, watched: a bolt that is not where the core put it (forced, broken) is reported."""
    if c.hw.lock.tethered:
        return
    while True:
        await asyncio.sleep(LOCK_POLL_S)
        try:
            locked = c.hw.lock.is_locked()
        except HalError:
            locked = True  # a sensor that cannot say: assume the plug held (unknown = locked)
        facts = c.core.facts
        if locked != facts.locked and not facts.lock_pending:
            post(c.connector_id, LockStateRead(locked, time.monotonic()))


async def forward(c: ConnectorRuntime, values: AsyncIterator[_T], event: Callable[[_T, float], Event],
                  post: Post) -> None:
    """Each value a device yields becomes an event for the core (contactor mirror contact, RCD, mains, cards)."""
    async for value in values:
        post(c.connector_id, event(value, time.monotonic()))


def device_loops(c: ConnectorRuntime, post: Post) -> list[Coroutine[Any, Any, None]]:
    return [
        forward(c, c.hw.contactor.feedback(), ContactorFeedbackChanged, post),
        forward(c, c.hw.rcd.trips(), ResidualCurrentChanged, post),
        forward(c, c.hw.mains.changes(), MainsChanged, post),
        forward(c, c.hw.rfid.tags(), TagPresented, post),
        forward(c, c.hw.pp.changes(), CableChanged, post),
    ]


async def meter_loop(c: ConnectorRuntime, post: Post, publish: Callable[[ChargerEvent], None],
                     interval_s: float) -> None:
    failures = 0
    while True:
        raise_if_cancelling()
        try:
            reading = await c.hw.meter.read()
        except HalError as exc:
            failures += 1
            if failures == METER_FAILURES_BEFORE_FAULT:
                log.error("connector %d: energy meter lost: %s", c.connector_id, exc,
                          extra=log_fields(connector=c.connector_id))
                post(c.connector_id, MeterFailed(str(exc), time.monotonic()))
        else:
            if failures >= METER_FAILURES_BEFORE_FAULT:
                log.info("connector %d: energy meter back", c.connector_id, extra=log_fields(connector=c.connector_id))
            failures = 0
            c.last_reading = reading
            post(
                c.connector_id,
                MeterSampled(reading.energy_Wh_import, reading.power_W, reading.current_A, time.monotonic()),
            )
            publish(MeterRead(c.connector_id, reading, datetime.now(UTC)))
        await asyncio.sleep(interval_s)
