"""Reservations held by the charger: persisted, restored at start, expired on time, ended by a session."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from chargepoint.core.commands import ConnectorStatus
from chargepoint.core.events import Event, ReservationEnded, ReservationMade
from chargepoint.core.reservation import Reservation
from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.store import Store

log = logging.getLogger(__name__)


class Reservations:
    def __init__(self, store: Store, connectors: Mapping[int, ConnectorRuntime], post: Callable[[int, Event], None],
                 spawn: Callable[[Awaitable[Any]], None]) -> None:
        self.store = store
        self.connectors = connectors
        self._post = post
        self._spawn = spawn
        self._held: dict[int, tuple[Reservation, asyncio.TimerHandle]] = {}

    async def restore(self) -> None:
        for record in await self.store.reservations():
            if record.expiry_date <= datetime.now(UTC) or record.connector_id not in self.connectors:
                await self.store.reservation_delete(record.reservation_id)
                continue
            self._hold(record)

    def _hold(self, record: Reservation) -> None:
        self.forget(record.reservation_id)
        self._post(record.connector_id, ReservationMade(record.reservation_id, record.id_tag, record.parent_id_tag,
                                                        time.monotonic()))
        delay_s = max(0.0, (record.expiry_date - datetime.now(UTC)).total_seconds())
        handle = asyncio.get_running_loop().call_later(delay_s, self._expire, record)
        self._held[record.reservation_id] = (record, handle)

    def _expire(self, record: Reservation) -> None:
        log.info("reservation %d for %s expired", record.reservation_id, record.id_tag)
        self.forget(record.reservation_id)
        self._post(record.connector_id, ReservationEnded(record.reservation_id, time.monotonic()))
        self._spawn(self.store.reservation_delete(record.reservation_id))

    def forget(self, reservation_id: int) -> Reservation | None:
        """Stop holding a reservation (its session began, or it is replaced); the caller tells the core."""
        held = self._held.pop(reservation_id, None)
        if held is None:
            return None
        held[1].cancel()
        return held[0]

    async def reserve(self, record: Reservation) -> str:
        """ReserveNow: Accepted, Faulted, Occupied, Unavailable or Rejected."""
        if record.connector_id == 0:
            # The whole charge point: hold the first connector that is free (this charger's choice).
            free = [cid for cid, c in self.connectors.items() if c.core.status is ConnectorStatus.Available]
            if not free:
                statuses = {c.core.status for c in self.connectors.values()}
                if statuses == {ConnectorStatus.Faulted}:
                    return "Faulted"
                if statuses == {ConnectorStatus.Unavailable}:
                    return "Unavailable"
                return "Occupied"
            record = replace(record, connector_id=free[0])
        c = self.connectors.get(record.connector_id)
        if c is None:
            return "Rejected"
        status = c.core.status
        held = self._held.get(record.reservation_id)
        if status is ConnectorStatus.Faulted:
            return "Faulted"
        if status is ConnectorStatus.Unavailable:
            return "Unavailable"
        replacing = held is not None and held[0].connector_id == record.connector_id
        if status is not ConnectorStatus.Available and not (status is ConnectorStatus.Reserved and replacing):
            return "Occupied"
        old = self.forget(record.reservation_id)
        if old is not None and old.connector_id != record.connector_id:
            self._post(old.connector_id, ReservationEnded(old.reservation_id, time.monotonic()))
        await self.store.reservation_put(record)
        self._hold(record)
        return "Accepted"

    def on(self, connector_id: int) -> Reservation | None:
        return next((record for record, _ in self._held.values() if record.connector_id == connector_id), None)

    async def cancel(self, reservation_id: int) -> bool:
        record = self.forget(reservation_id)
        if record is None:
            return False
        await self.store.reservation_delete(reservation_id)
        self._post(record.connector_id, ReservationEnded(reservation_id, time.monotonic()))
        return True
