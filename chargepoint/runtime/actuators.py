"""The connector's actuators besides contactor and pilot: the plug lock and the shunt trip of a welded contactor.

A lock movement takes the actuator's time, so it runs as a task and reports back to the core as ``LockCompleted``;
OCPP UnlockConnector requests waiting on it are answered from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from chargepoint.core.events import Event, LockCompleted
from chargepoint.runtime.connector import ConnectorRuntime
from hal.errors import HalError, LockError

log = logging.getLogger(__name__)


async def move_lock(c: ConnectorRuntime, lock: bool, post: Callable[[int, Event], None]) -> None:
    try:
        await (c.hw.lock.lock() if lock else c.hw.lock.unlock())
        ok = True
    except LockError as exc:
        log.error("connector %d: lock actuator failed: %s", c.connector_id, exc)
        ok = False
    post(c.connector_id, LockCompleted(locked=lock, ok=ok, at_s=time.monotonic()))
    if not lock:
        resolve_unlock(c, ok)


def resolve_unlock(c: ConnectorRuntime, ok: bool) -> None:
    """Answer every UnlockConnector request waiting on this connector."""
    waiters, c.unlock_waiters = c.unlock_waiters, []
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(ok)


def lock_position(c: ConnectorRuntime) -> bool:
    """Where the lock is, read from its sensor at start; a sensor that cannot say reads as locked."""
    try:
        return c.hw.lock.is_locked()
    except HalError:
        return True


async def trip_shunt(c: ConnectorRuntime) -> None:
    """The contactor welded: open the upstream breaker through its shunt-trip release, where one is wired."""
    if c.hw.shunt_trip is None:
        log.critical("connector %d: contactor welded and no shunt trip wired: the supply cannot be cut here; "
                     "isolate the charger at its breaker", c.connector_id)
        return
    try:
        await c.hw.shunt_trip.trip()
    except HalError as exc:
        log.critical("connector %d: contactor welded and the shunt trip failed: %s", c.connector_id, exc)
        return
    log.critical("connector %d: contactor welded: shunt trip driven, the upstream breaker is open", c.connector_id)
