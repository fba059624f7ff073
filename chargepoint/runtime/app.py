"""Wiring: hardware loops feed events into the core; the commands it returns are executed here.

One queue and one consumer serialise every event, so the core never sees two at once. Commands
run in the order the core returned them: the contactor opens before anything is logged, stored or
sent. Store writes go through their own queue to a single writer so disk latency never sits in the
safety path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chargepoint.cancellation import raise_if_cancelling
from chargepoint.config.schema import Config
from chargepoint.core.authorization import LocalAllowList
from chargepoint.core.commands import (
    AuthorizeTag,
    BeginSession,
    CancelTimer,
    CloseContactor,
    Command,
    ConnectorStatus,
    EndSession,
    LockConnector,
    OpenContactor,
    RecordMeter,
    ReportStatus,
    SetPilotHigh,
    SetPilotNegative,
    SetPwm,
    StartTimer,
    UnlockConnector,
)
from chargepoint.core.events import (
    AuthorizationDecided,
    AvailabilityChanged,
    ContactorFeedbackChanged,
    CurrentLimitChanged,
    Event,
    LockCompleted,
    MainsChanged,
    MeterFailed,
    MeterSampled,
    PilotChanged,
    PilotFailed,
    ReservationEnded,
    ReservationMade,
    ResidualCurrentChanged,
    StopRequested,
    TagPresented,
    TimerExpired,
    TimerName,
    UnlockRequested,
)
from chargepoint.core.metering import MeterReading
from chargepoint.core.pilot import PilotState, classify
from chargepoint.core.reservation import Reservation
from chargepoint.core.session import Connector, ConnectorSettings
from chargepoint.store import Store
from hal.errors import HalError, LockError
from hal.hardware import ConnectorHardware, Hardware

if TYPE_CHECKING:
    from chargepoint.ocpp.v16.client import OcppClient

log = logging.getLogger(__name__)

# A real RS-485 bus drops the odd frame; three misses in a row is a dead meter.
METER_FAILURES_BEFORE_FAULT = 3


@dataclass(slots=True)
class SessionView:
    """What the runtime knows of a running session, for status and the session record."""

    id_tag: str
    started_at: datetime
    meter_start_Wh: int
    session_id: str | None = None
    csms_transaction_id: int | None = None


@dataclass(slots=True)
class ConnectorRuntime:
    hw: ConnectorHardware
    core: Connector
    pilot_state: PilotState | None = None
    session: SessionView | None = None
    last_reading: MeterReading | None = None
    timers: dict[TimerName, asyncio.TimerHandle] = field(default_factory=dict)
    unlock_waiters: list[asyncio.Future[bool]] = field(default_factory=list)
    # CustomIdleFeeAfterStop: the session whose ConnectorUnplugged is due when the EV leaves.
    unplug_pending: str | None = None

    @property
    def connector_id(self) -> int:
        return self.hw.connector_id


@dataclass(frozen=True, slots=True)
class _StoreOp:
    kind: str  # begin | meter | end
    connector_id: int
    args: dict[str, Any]


class ChargerApp:
    def __init__(self, config: Config, hardware: Hardware, store: Store,
                 pricing_problems: list[str] | None = None) -> None:
        self.config = config
        self.hardware = hardware
        self.store = store
        self.allow_list = LocalAllowList(config.charger.allowed_id_tags)
        settings = ConnectorSettings(
            max_current_A=config.charger.max_current_A,
            cable_rating_A=config.charger.cable_rating_A,
            connection_timeout_s=config.charger.connection_timeout_s,
            free_vend_id_tag=config.charger.free_vend_id_tag if config.free_vend else None,
            pwm_min_update_interval_s=config.charger.pwm_min_update_interval_s,
            contactor_feedback_timeout_s=config.charger.contactor_feedback_timeout_s,
            overcurrent_margin_A=config.charger.overcurrent_margin_A,
            overcurrent_grace_s=config.charger.overcurrent_grace_s,
        )
        self.connectors = {
            hw.connector_id: ConnectorRuntime(hw=hw, core=Connector(hw.connector_id, settings))
            for hw in hardware.connectors
        }
        self._events: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self._store_ops: asyncio.Queue[_StoreOp | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = False
        self.started_at = datetime.now(UTC)
        # Hook for benchmarks/tests: called right after each command is executed.
        self.on_command: Callable[[int, Command], None] | None = None
        self._stop: asyncio.Event | None = None
        self.reexec_requested = False
        self._reset_reason = "Reboot"
        self._reservations: dict[int, tuple[Reservation, asyncio.TimerHandle]] = {}
        self.ocpp: OcppClient | None = None
        if config.ocpp is not None:
            from chargepoint.ocpp.v16.client import OcppClient

            self.ocpp = OcppClient(config, store, self)
        from chargepoint.runtime.pricing import PricingService

        self.pricing = PricingService(config, store, self, rejected=pricing_problems)

    # ----------------------------------------------------------------- lifecycle

    async def run(self, stop: asyncio.Event, ready: Callable[[], Awaitable[None]] | None = None) -> None:
        self._stop = stop
        if self.ocpp is not None:
            await self.ocpp.load()
        await self.pricing.load()
        recovered = await self.store.recover_open_sessions(
            "PowerLoss", messages=None if self.ocpp is None else self.ocpp.stop_messages
        )
        for record in recovered:
            log.warning(
                "connector %d: session %s of %s was left open by a crash or power loss; closed with "
                "reason PowerLoss at %d Wh",
                record.connector_id, record.session_id, record.id_tag, record.meter_stop_Wh or 0,
            )
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            store_task = tg.create_task(self._store_writer())
            self._spawn(self._process_events())
            for c in self.connectors.values():
                self._spawn(self._pilot_loop(c))
                self._spawn(self._feedback_loop(c))
                self._spawn(self._rcd_loop(c))
                self._spawn(self._mains_loop(c))
                self._spawn(self._rfid_loop(c))
                self._spawn(self._meter_loop(c))
                await self._execute(c, c.core.start(time.monotonic()))
                if await self.store.get_kv(f"availability.{c.connector_id}") == "Inoperative":
                    self.post(c.connector_id, AvailabilityChanged(False, time.monotonic()))
            await self.restore_reservations()
            if self.ocpp is not None:
                self._spawn(self.ocpp.run())
            if ready is not None:
                await ready()
            await stop.wait()
            await self._shutdown()
            for task in self._tasks:
                task.cancel()
            await self._store_ops.put(None)
            await store_task

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the application's task group (follow-up work of adapters)."""
        self._spawn(coro)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        assert self._tg is not None
        self._tasks.append(self._tg.create_task(coro))  # type: ignore[arg-type]

    async def _shutdown(self) -> None:
        """End running sessions cleanly and leave the hardware safe before the tasks stop."""
        self._stopping = True
        now = time.monotonic()
        for c in self.connectors.values():
            await self._execute(c, c.core.handle(StopRequested(self._reset_reason, now)))
            for handle in c.timers.values():
                handle.cancel()
        await self.hardware.force_safe()

    def post(self, connector_id: int, event: Event) -> None:
        self._events.put_nowait((connector_id, event))

    # ----------------------------------------------------------------- event processing

    async def _process_events(self) -> None:
        while True:
            connector_id, event = await self._events.get()
            c = self.connectors[connector_id]
            await self._execute(c, c.core.handle(event))

    async def _execute(self, c: ConnectorRuntime, commands: list[Command]) -> None:
        hw = c.hw
        for command in commands:
            match command:
                case OpenContactor():
                    await hw.contactor.open()
                case CloseContactor():
                    await hw.contactor.close()
                case SetPwm(duty_percent=duty):
                    await hw.pilot.set_pwm(duty)
                case SetPilotHigh():
                    await hw.pilot.set_high()
                case SetPilotNegative():
                    await hw.pilot.set_negative()
                case LockConnector():
                    self._spawn(self._move_lock(c, lock=True))
                case UnlockConnector():
                    self._spawn(self._move_lock(c, lock=False))
                case StartTimer(name=name, duration_s=duration_s):
                    self._start_timer(c, name, duration_s)
                case CancelTimer(name=name):
                    handle = c.timers.pop(name, None)
                    if handle is not None:
                        handle.cancel()
                case AuthorizeTag(id_tag=id_tag):
                    if self.ocpp is not None:
                        self._spawn(self._authorize_over_ocpp(c, id_tag))
                    else:
                        accepted = self.allow_list.accepts(id_tag) or self.pricing.prepaid_accepts(id_tag)
                        blocked = self.pricing.prepaid_blocks(id_tag)
                        log.info("connector %d: card %s %s", c.connector_id, id_tag,
                                 "rejected (prepaid balance used up)" if blocked else
                                 "accepted" if accepted else "rejected (not in allowed_id_tags)")
                        accepted = accepted and not blocked
                        if accepted:
                            self.pricing.show_authorized(c, id_tag, None)
                        else:
                            self.pricing.show_rejected(c, id_tag)
                        self.post(c.connector_id, AuthorizationDecided(id_tag, accepted, time.monotonic()))
                case BeginSession(id_tag=id_tag, meter_start_Wh=meter_start_Wh, reservation_id=reservation_id):
                    started_at = datetime.now(UTC)
                    c.session = SessionView(id_tag, started_at, meter_start_Wh)
                    log.info("connector %d: session started for %s at %d Wh", c.connector_id, id_tag, meter_start_Wh)
                    if reservation_id is not None:
                        self._forget_reservation(reservation_id)
                    active = c.core.facts.session
                    parent = None if active is None else active.parent_id_tag
                    pricing = self.pricing.begin(c, id_tag, parent, started_at, meter_start_Wh)
                    self._store(c, "begin", id_tag=id_tag, meter_start_Wh=meter_start_Wh, started_at=started_at,
                                reservation_id=reservation_id, pricing=pricing)
                case RecordMeter(energy_Wh=energy_Wh):
                    at = datetime.now(UTC)
                    self._store(c, "meter", energy_Wh=energy_Wh, at=at, pricing=self.pricing.meter(c, energy_Wh, at))
                case EndSession(reason=reason, meter_stop_Wh=meter_stop_Wh):
                    stopped_at = datetime.now(UTC)
                    if c.session is not None:
                        log.info("connector %d: session of %s ended (%s), %d Wh", c.connector_id,
                                 c.session.id_tag, reason, meter_stop_Wh - c.session.meter_start_Wh)
                        self._note_unplug_due(c, c.session, reason)
                    c.session = None
                    self._store(c, "end", meter_stop_Wh=meter_stop_Wh, stopped_at=stopped_at, reason=reason,
                                pricing=self.pricing.end(c, meter_stop_Wh, stopped_at))
                case ReportStatus(status=status, error_code=error_code):
                    level = logging.WARNING if status is ConnectorStatus.Faulted else logging.INFO
                    log.log(level, "connector %d: %s (%s)", c.connector_id, status, error_code)
                    if self.ocpp is not None:
                        self.ocpp.status_changed(c.connector_id, status, error_code)
                    self.pricing.status_changed(c, status)
                    if status is ConnectorStatus.Available and c.unplug_pending is not None:
                        self._send_unplugged(c)
            if self.on_command is not None:
                self.on_command(c.connector_id, command)

    def _start_timer(self, c: ConnectorRuntime, name: TimerName, duration_s: float) -> None:
        old = c.timers.pop(name, None)
        if old is not None:
            old.cancel()

        def expire() -> None:
            c.timers.pop(name, None)
            self.post(c.connector_id, TimerExpired(name, time.monotonic()))

        c.timers[name] = asyncio.get_running_loop().call_later(duration_s, expire)

    async def _move_lock(self, c: ConnectorRuntime, lock: bool) -> None:
        try:
            await (c.hw.lock.lock() if lock else c.hw.lock.unlock())
            ok = True
        except LockError as exc:
            log.error("connector %d: lock actuator failed: %s", c.connector_id, exc)
            ok = False
        self.post(c.connector_id, LockCompleted(locked=lock, ok=ok, at_s=time.monotonic()))
        if not lock:
            waiters, c.unlock_waiters = c.unlock_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(ok)

    async def _authorize_over_ocpp(self, c: ConnectorRuntime, id_tag: str) -> None:
        assert self.ocpp is not None
        accepted, parent = await self.ocpp.authorize(id_tag)
        if accepted and self.pricing.prepaid_blocks(id_tag):
            log.info("connector %d: card %s accepted by the CSMS but its prepaid balance is used up", c.connector_id,
                     id_tag)
            accepted = False
        log.info("connector %d: card %s %s", c.connector_id, id_tag, "accepted" if accepted else "rejected")
        if accepted:
            self.pricing.show_authorized(c, id_tag, parent)
        else:
            self.pricing.show_rejected(c, id_tag)
        self.post(c.connector_id, AuthorizationDecided(id_tag, accepted, time.monotonic(), parent))

    # ----------------------------------------------------------------- California Pricing: idle fee after stop

    def _note_unplug_due(self, c: ConnectorRuntime, session: SessionView, reason: str) -> None:
        """CustomIdleFeeAfterStop: the CSMS bills idle time until we report the unplug (ConnectorUnplugged)."""
        if self.ocpp is None or session.session_id is None:
            return
        if not (self.pricing.cost_and_price_enabled and self.ocpp.keys.get_bool("CustomIdleFeeAfterStop")):
            return
        c.unplug_pending = session.session_id
        if reason == "EVDisconnected" or c.pilot_state is PilotState.A:
            self._send_unplugged(c)

    def _send_unplugged(self, c: ConnectorRuntime) -> None:
        session_id, c.unplug_pending = c.unplug_pending, None
        if self.ocpp is not None and session_id is not None:
            self._spawn(self.ocpp.connector_unplugged(session_id, datetime.now(UTC)))

    # ----------------------------------------------------------------- requests from the protocol adapter

    def deauthorize(self, connector_id: int, stop: bool) -> None:
        """The CSMS rejected the idTag of a running transaction (started offline, TC_037_2/3)."""
        if stop:
            self.post(connector_id, StopRequested("DeAuthorized", time.monotonic()))
        else:
            # StopTransactionOnInvalidId=false: keep the transaction, deliver no more energy.
            self.post(connector_id, CurrentLimitChanged("invalid_id", 0.0, time.monotonic()))

    def set_connection_timeout_s(self, timeout_s: float) -> None:
        self.update_connector_settings(connection_timeout_s=timeout_s)

    def update_connector_settings(self, **changes: Any) -> None:
        """Policy values the CSMS may change at run time (ConnectionTimeOut, StopTransactionOnEVSideDisconnect ...)."""
        for c in self.connectors.values():
            c.core.settings = replace(c.core.settings, **changes)

    async def set_operative(self, connector_ids: list[int], operative: bool) -> None:
        """ChangeAvailability: persisted, so the charger comes back in the same availability after a restart."""
        for connector_id in connector_ids:
            await self.store.set_kv(f"availability.{connector_id}", "Operative" if operative else "Inoperative")
            self.post(connector_id, AvailabilityChanged(operative, time.monotonic()))

    async def unlock(self, connector_id: int) -> str:
        """UnlockConnector: 'Unlocked', 'UnlockFailed' or 'NotSupported' (tethered cable)."""
        c = self.connectors[connector_id]
        if c.hw.lock.tethered:
            return "NotSupported"
        if c.session is None and not c.core.facts.locked:
            try:
                await c.hw.lock.unlock()
            except LockError:
                return "UnlockFailed"
            return "Unlocked"
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        c.unlock_waiters.append(waiter)
        self.post(connector_id, UnlockRequested(time.monotonic()))
        try:
            async with asyncio.timeout(5.0):
                return "Unlocked" if await waiter else "UnlockFailed"
        except TimeoutError:
            return "UnlockFailed"

    # ----------------------------------------------------------------- reservations

    async def restore_reservations(self) -> None:
        for record in await self.store.reservations():
            if record.expiry_date <= datetime.now(UTC) or record.connector_id not in self.connectors:
                await self.store.reservation_delete(record.reservation_id)
                continue
            self._hold(record)

    def _hold(self, record: Reservation) -> None:
        self._forget_reservation(record.reservation_id)
        self.post(record.connector_id, ReservationMade(record.reservation_id, record.id_tag, record.parent_id_tag,
                                                       time.monotonic()))
        delay_s = max(0.0, (record.expiry_date - datetime.now(UTC)).total_seconds())
        handle = asyncio.get_running_loop().call_later(delay_s, self._expire_reservation, record)
        self._reservations[record.reservation_id] = (record, handle)

    def _expire_reservation(self, record: Reservation) -> None:
        log.info("reservation %d for %s expired", record.reservation_id, record.id_tag)
        self._forget_reservation(record.reservation_id)
        self.post(record.connector_id, ReservationEnded(record.reservation_id, time.monotonic()))
        self._spawn(self.store.reservation_delete(record.reservation_id))

    def _forget_reservation(self, reservation_id: int) -> Reservation | None:
        held = self._reservations.pop(reservation_id, None)
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
        held = self._reservations.get(record.reservation_id)
        if status is ConnectorStatus.Faulted:
            return "Faulted"
        if status is ConnectorStatus.Unavailable:
            return "Unavailable"
        replacing = held is not None and held[0].connector_id == record.connector_id
        if status is not ConnectorStatus.Available and not (status is ConnectorStatus.Reserved and replacing):
            return "Occupied"
        old = self._forget_reservation(record.reservation_id)
        if old is not None and old.connector_id != record.connector_id:
            self.post(old.connector_id, ReservationEnded(old.reservation_id, time.monotonic()))
        await self.store.reservation_put(record)
        self._hold(record)
        return "Accepted"

    async def cancel_reservation(self, reservation_id: int) -> bool:
        record = self._forget_reservation(reservation_id)
        if record is None:
            return False
        await self.store.reservation_delete(reservation_id)
        self.post(record.connector_id, ReservationEnded(reservation_id, time.monotonic()))
        return True

    async def reset(self, hard: bool) -> None:
        """Reset: end every session with the matching reason, then restart the firmware in place."""
        log.warning("%s reset requested by the CSMS", "hard" if hard else "soft")
        self.reexec_requested = True
        self._reset_reason = "HardReset" if hard else "SoftReset"
        if self._stop is not None:
            self._stop.set()

    # ----------------------------------------------------------------- store

    def _store(self, c: ConnectorRuntime, kind: str, **args: Any) -> None:
        if self.ocpp is not None and kind in ("begin", "end"):
            self.ocpp.outbox_pending()
        self._store_ops.put_nowait(_StoreOp(kind, c.connector_id, args))

    async def _store_writer(self) -> None:
        """The single writer. Runs until it takes the ``None`` sentinel, so queued writes are never dropped."""
        session_ids: dict[int, str] = {}
        while (op := await self._store_ops.get()) is not None:
            try:
                await self._write(op, session_ids)
            finally:
                self._store_ops.task_done()
        self._store_ops.task_done()

    async def _write(self, op: _StoreOp, session_ids: dict[int, str]) -> None:
        c = self.connectors[op.connector_id]
        if op.kind == "begin":
            messages = None
            reservation_id = op.args.pop("reservation_id", None)
            if self.ocpp is not None:
                messages = self.ocpp.start_messages(
                    op.connector_id, op.args["id_tag"], op.args["meter_start_Wh"], op.args["started_at"],
                    reservation_id,
                )
            record = await self.store.begin_session(op.connector_id, **op.args, messages=messages)
            if reservation_id is not None:
                await self.store.reservation_delete(reservation_id)
            session_ids[op.connector_id] = record.session_id
            if c.session is not None and c.session.started_at == op.args["started_at"]:
                c.session.session_id = record.session_id
        elif op.kind == "meter" and op.connector_id in session_ids:
            await self.store.record_meter(session_ids[op.connector_id], **op.args)
        elif op.kind == "end" and op.connector_id in session_ids:
            await self.store.end_session(
                session_ids.pop(op.connector_id), **op.args,
                messages=None if self.ocpp is None else self.ocpp.stop_messages,
            )
        if self.ocpp is not None:
            self.ocpp.outbox_changed()

    # ----------------------------------------------------------------- hardware loops

    async def _pilot_loop(self, c: ConnectorRuntime) -> None:
        try:
            async for reading in c.hw.pilot.readings():
                output, _ = c.hw.pilot.output()
                state = classify(reading, output, c.pilot_state)
                if state != c.pilot_state:
                    c.pilot_state = state
                    self.post(c.connector_id, PilotChanged(state, time.monotonic()))
        except HalError as exc:
            self.post(c.connector_id, PilotFailed(str(exc), time.monotonic()))
            raise
        if not self._stopping:
            self.post(c.connector_id, PilotFailed("pilot readings ended", time.monotonic()))

    async def _feedback_loop(self, c: ConnectorRuntime) -> None:
        async for closed in c.hw.contactor.feedback():
            self.post(c.connector_id, ContactorFeedbackChanged(closed, time.monotonic()))

    async def _rcd_loop(self, c: ConnectorRuntime) -> None:
        async for tripped in c.hw.rcd.trips():
            self.post(c.connector_id, ResidualCurrentChanged(tripped, time.monotonic()))

    async def _mains_loop(self, c: ConnectorRuntime) -> None:
        async for present in c.hw.mains.changes():
            self.post(c.connector_id, MainsChanged(present, time.monotonic()))

    async def _rfid_loop(self, c: ConnectorRuntime) -> None:
        async for id_tag in c.hw.rfid.tags():
            self.post(c.connector_id, TagPresented(id_tag, time.monotonic()))

    async def _meter_loop(self, c: ConnectorRuntime) -> None:
        interval_s = self.config.charger.meter_poll_interval_s
        failures = 0
        while True:
            raise_if_cancelling()
            try:
                reading = await c.hw.meter.read()
            except HalError as exc:
                failures += 1
                if failures == METER_FAILURES_BEFORE_FAULT:
                    log.error("connector %d: energy meter lost: %s", c.connector_id, exc)
                    self.post(c.connector_id, MeterFailed(str(exc), time.monotonic()))
            else:
                if failures >= METER_FAILURES_BEFORE_FAULT:
                    log.info("connector %d: energy meter back", c.connector_id)
                failures = 0
                c.last_reading = reading
                self.post(
                    c.connector_id,
                    MeterSampled(reading.energy_Wh_import, reading.power_W, reading.current_A, time.monotonic()),
                )
            await asyncio.sleep(interval_s)

    # ----------------------------------------------------------------- views

    def status(self) -> dict[str, Any]:
        connectors = []
        for c in self.connectors.values():
            session = None
            if c.session is not None:
                energy_Wh = 0
                if c.last_reading is not None:
                    energy_Wh = max(0, c.last_reading.energy_Wh_import - c.session.meter_start_Wh)
                session = {
                    "transaction_id": (c.session.csms_transaction_id if c.session.csms_transaction_id is not None
                                       else c.session.session_id),
                    "session_id": c.session.session_id,
                    "id_tag": c.session.id_tag,
                    "energy_Wh": energy_Wh,
                    **self.pricing.status(c),
                    "started_at": c.session.started_at.isoformat(),
                    "meter_start_Wh": c.session.meter_start_Wh,
                }
            reading = c.last_reading
            shown = c.hw.display.shown()
            connectors.append(
                {
                    "id": c.connector_id,
                    "status": str(c.core.status),
                    "error_code": c.core.error_code,
                    "offered_current_A": round(c.core.offered_current_A, 2),
                    "pilot_state": None if c.pilot_state is None else str(c.pilot_state),
                    "contactor_closed": c.hw.contactor.feedback_closed(),
                    "power_W": None if reading is None else round(reading.power_W, 1),
                    "meter_energy_Wh": None if reading is None else reading.energy_Wh_import,
                    "session": session,
                    "display": None if shown is None else {"kind": str(shown.kind), "lines": list(shown.lines),
                                                           "language": shown.language},
                }
            )
        return {
            "csms_connected": self.ocpp is not None and self.ocpp.connected,
            "mode": "free-vend" if self.config.free_vend else "allow-list",
            "hardware": self.config.hardware.backend,
            "started_at": self.started_at.isoformat(),
            "connectors": connectors,
        }

    async def recent_sessions(self, limit: int) -> list[dict[str, Any]]:
        rows = await self.store.sessions_with_pricing(limit)
        return [
            {
                "session_id": r.session_id,
                "connector_id": r.connector_id,
                "id_tag": r.id_tag,
                "started_at": r.started_at.isoformat(),
                "stopped_at": None if r.stopped_at is None else r.stopped_at.isoformat(),
                "meter_start_Wh": r.meter_start_Wh,
                "meter_stop_Wh": r.meter_stop_Wh,
                "energy_Wh": r.energy_Wh,
                "duration_s": None if r.stopped_at is None else round((r.stopped_at - r.started_at).total_seconds()),
                "stop_reason": r.stop_reason,
                "tariff_id": None if p is None else p.tariff_id,
                "package": None if p is None else p.package,
                "cost": None if p is None or p.shown_cost is None else str(p.shown_cost),
                "local_cost": None if p is None or p.cost is None else str(p.cost),
                "csms_cost": None if p is None or p.csms_cost is None else str(p.csms_cost),
                "cost_final": None if p is None else p.final,
                "currency": None if p is None else p.currency,
                "breakdown": None if p is None else p.breakdown,
            }
            for r, p in rows
        ]

    # ----------------------------------------------------------------- prepaid accounts (CLI)

    async def prepaid(self, id_tag: str | None = None, balance: str | None = None, add: str | None = None
                      ) -> list[dict[str, Any]]:
        """Show, set (``balance``) or top up (``add``) prepaid balances held on the charger."""
        from decimal import Decimal, InvalidOperation

        if id_tag is not None and (balance is not None or add is not None):
            try:
                amount = Decimal(balance if balance is not None else add or "0")
            except InvalidOperation:
                raise ValueError(f"not an amount: {balance if balance is not None else add!r}") from None
            if not amount.is_finite():
                raise ValueError(f"not an amount: {amount}")
            if balance is None:
                current = self.pricing.prepaid.get(id_tag.upper())
                amount += Decimal(0) if current is None else current.balance
            await self.pricing.set_prepaid(id_tag, amount, "set" if balance is not None else "top-up")
        accounts = await self.store.prepaid_accounts()
        return [
            {"id_tag": a.id_tag, "balance": str(a.balance), "currency": a.currency, "updated_at": a.updated_at}
            for a in accounts if id_tag is None or a.id_tag == id_tag.upper()
        ]

    async def flush_store(self) -> None:
        """Wait until every queued store write is done (used before answering session queries)."""
        await self._store_ops.join()
