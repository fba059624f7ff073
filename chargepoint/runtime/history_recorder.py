"""Records the charger's history for availability and usage reports: every connector status (with why a connector is
unavailable), every fault raised and cleared, boots, clean stops and the outages between, CSMS link and mains
changes, and start attempts.

Times: wall clock (UTC) for reports, and the monotonic clock of the boot to order what happened within one run
even if the wall clock was set meanwhile. Events are buffered and written once a second (an SD card should not see
a write per status change), and at a clean stop.

An outage the firmware could not record itself (power cut, crash, a Pi that hung) is recorded at the next boot: a
``down`` event at the last moment the firmware was known alive (refreshed every minute), classed ``mains`` when
mains had been reported lost before, ``unknown`` otherwise. A clean stop is recorded as ``stop`` and leaves no
outage to guess. A different firmware version than at the last boot is in the boot event's detail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from chargepoint import __version__
from chargepoint.core.commands import ConnectorStatus
from chargepoint.errors import StoreError
from chargepoint.ports.events import ChargerEvent, FaultCleared, FaultRaised, StatusChanged, TransactionStarted
from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.store import HistoryEvent, Store

log = logging.getLogger(__name__)

FLUSH_S = 1.0
ALIVE_S = 60.0  # how stale the "last known alive" of an outage may be
LINK_POLL_S = 5.0
PRUNE_S = 24 * 3600.0
ROLL_UP_S = 600.0  # how often to look for whole days without their tally (a new day, or one whose events changed)
ROLL_UP_BATCH = 7  # days tallied per store call: a year to catch up never holds the store's thread for long

KV_BOOT = "history.boot"
KV_ALIVE = "history.alive_at"
KV_CLEAN = "history.clean_stop"
KV_VERSION = "history.version"
KV_MAINS_LOST = "history.mains_lost"


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class HistoryRecorder:
    def __init__(self, store: Store, connectors: Mapping[int, ConnectorRuntime], keep_days: int, max_rows: int,
                 link_up: Callable[[], bool] | None = None) -> None:
        self.store = store
        self.connectors = connectors
        self.keep_days = keep_days
        self.max_rows = max_rows
        self.link_up = link_up  # None: no CSMS configured, so no link to record
        self.boot = 0
        self._pending: list[HistoryEvent] = []
        self._mains_present = {cid: True for cid in connectors}
        self._link: bool | None = None
        self._mains_changed = False

    def _add(self, connector_id: int, kind: str, value: str, detail: str = "", at: str | None = None) -> None:
        self._pending.append(HistoryEvent(at or _now_text(), time.monotonic(), self.boot, connector_id, kind, value,
                                          detail))

    async def start(self) -> None:
        """At boot, before any status is reported: number the boot, and record the outage the last run left."""
        self.boot = int(await self.store.get_kv(KV_BOOT) or "0") + 1
        await self.store.set_kv(KV_BOOT, str(self.boot))
        alive = await self.store.get_kv(KV_ALIVE)
        if alive is not None and await self.store.get_kv(KV_CLEAN) != "1":
            cause = "mains" if await self.store.get_kv(KV_MAINS_LOST) == "1" else "unknown"
            # Alive is refreshed once a minute; events of the last minute before the outage came after it.
            last = await self.store.history_last_at()
            down_at = alive if last is None else max(alive, last)
            self._pending.append(HistoryEvent(down_at, 0.0, self.boot - 1, 0, "down", cause))
        before = await self.store.get_kv(KV_VERSION)
        self._add(0, "boot", __version__, "" if before in (None, __version__) else f"updated from {before}")
        await self.store.set_kv(KV_VERSION, __version__)
        await self.store.set_kv(KV_CLEAN, "0")
        await self.flush()
        await self.store.set_kv(KV_ALIVE, _now_text())

    async def run(self) -> None:
        last_alive = last_link = last_prune = last_roll_up = time.monotonic()
        await self._prune()
        await self.roll_up()
        while True:
            await asyncio.sleep(FLUSH_S)
            now = time.monotonic()
            if self.link_up is not None and now - last_link >= LINK_POLL_S:
                last_link = now
                self._check_link()
            await self.flush()
            if now - last_alive >= ALIVE_S:
                last_alive = now
                await self.store.set_kv(KV_ALIVE, _now_text())
            if now - last_prune >= PRUNE_S:
                last_prune = now
                await self._prune()
            if now - last_roll_up >= ROLL_UP_S:
                last_roll_up = now
                await self.roll_up()

    async def stop(self, reason: str) -> None:
        """A clean stop: no outage is guessed at the next boot."""
        self._add(0, "stop", reason)
        await self.flush()
        await self.store.set_kv(KV_ALIVE, _now_text())
        await self.store.set_kv(KV_CLEAN, "1")

    async def flush(self) -> None:
        events, self._pending = self._pending, []
        await self.store.history_append(events)
        if self._mains_changed:
            self._mains_changed = False
            # Kept where the next boot finds it: a power cut that follows a reported mains loss is the grid's.
            lost = not all(self._mains_present.values())
            await self.store.set_kv(KV_MAINS_LOST, "1" if lost else "0")

    async def _prune(self) -> None:
        older = datetime.now(UTC) - timedelta(days=self.keep_days)
        dropped = await self.store.history_prune(older, self.max_rows)
        if dropped:
            log.info("history: %d events older than %d days or over %d rows dropped", dropped, self.keep_days,
                     self.max_rows)

    async def roll_up(self) -> int:
        """Keep the tally of every whole UTC day of the kept history that lacks one (reports read them instead of
        the events: store/rollup.py); how many were made. A failure costs reports speed, never the history."""
        today = datetime.now(UTC).date()
        made = 0
        try:
            while True:
                done = await self.store.history_roll_up(len(self.connectors), today - timedelta(days=self.keep_days),
                                                        today - timedelta(days=1), ROLL_UP_BATCH)
                made += len(done)
                if len(done) < ROLL_UP_BATCH:
                    break
                await asyncio.sleep(0)
        except (StoreError, ValueError) as exc:
            log.warning("history: could not tally the days for reports (%s); they read the events instead", exc)
        if made:
            log.info("history: %d whole days tallied for reports", made)
        return made

    def _check_link(self) -> None:
        assert self.link_up is not None
        up = self.link_up()
        if up != self._link:
            self._link = up
            self._add(0, "link", "up" if up else "down")

    def attempt_refused(self, connector_id: int, why: str) -> None:
        """A driver asked to start and could not (every connector busy or faulted, card refused ...)."""
        self._add(connector_id, "attempt", "refused", why)

    def charger_event(self, event: ChargerEvent) -> None:
        match event:
            case StatusChanged(connector_id=cid, status=status, error_code=code):
                self._status(cid, status, code)
            case FaultRaised(connector_id=cid, error_code=code):
                self._add(cid, "fault", code, "raised")
            case FaultCleared(connector_id=cid, error_code=code):
                self._add(cid, "fault", code, "cleared")
            case TransactionStarted(connector_id=cid, id_tag=id_tag):
                self._add(cid, "attempt", "started", id_tag)
            case _:
                pass

    def _status(self, connector_id: int, status: ConnectorStatus, error_code: str) -> None:
        c = self.connectors.get(connector_id)
        mains = True if c is None else c.core.facts.mains_present
        if mains != self._mains_present.get(connector_id, True):
            self._mains_present[connector_id] = mains
            self._add(connector_id, "mains", "back" if mains else "lost")
            self._mains_changed = True
        detail = error_code if error_code != "NoError" else ""
        if status is ConnectorStatus.Unavailable and c is not None:
            detail = "mains" if not mains else ("inoperative" if not c.core.facts.operative else detail)
        self._add(connector_id, "status", str(status), detail)
