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
    ContactorFeedbackChanged,
    Event,
    MainsChanged,
    MeterFailed,
    MeterSampled,
    PilotChanged,
    PilotFailed,
    ResidualCurrentChanged,
    TagPresented,
)
from chargepoint.core.pilot import classify
from chargepoint.ports.events import ChargerEvent, MeterRead
from chargepoint.runtime.connector import ConnectorRuntime
from hal.errors import HalError

log = logging.getLogger(__name__)

# A real RS-485 bus drops the odd frame; three misses in a row is a dead meter.
METER_FAILURES_BEFORE_FAULT = 3

Post = Callable[[int, Event], None]
_T = TypeVar("_T")


async def pilot_loop(c: ConnectorRuntime, post: Post, stopping: Callable[[], bool]) -> None:
    try:
        async for reading in c.hw.pilot.readings():
            output, _ = c.hw.pilot.output()
            state = classify(reading, output, c.pilot_state)
            if state != c.pilot_state:
                c.pilot_state = state
                post(c.connector_id, PilotChanged(state, time.monotonic()))
    except HalError as exc:
        post(c.connector_id, PilotFailed(str(exc), time.monotonic()))
        raise
    if not stopping():
        post(c.connector_id, PilotFailed("pilot readings ended", time.monotonic()))


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
                log.error("connector %d: energy meter lost: %s", c.connector_id, exc)
                post(c.connector_id, MeterFailed(str(exc), time.monotonic()))
        else:
            if failures >= METER_FAILURES_BEFORE_FAULT:
                log.info("connector %d: energy meter back", c.connector_id)
            failures = 0
            c.last_reading = reading
            post(
                c.connector_id,
                MeterSampled(reading.energy_Wh_import, reading.power_W, reading.current_A, time.monotonic()),
            )
            publish(MeterRead(c.connector_id, reading, datetime.now(UTC)))
        await asyncio.sleep(interval_s)
