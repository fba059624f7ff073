"""The charger at run time: hardware loops feed events into the core; the commands it returns are executed here.

One queue and one consumer serialise every event, so the core never sees two at once. Commands run in the
order the core returned them: the contactor opens before anything is logged, stored or sent. Store writes go
through their own queue to a single writer so disk latency never sits in the safety path.

``ChargerApp`` is the charger that adapters see (``ports.charger.ChargerPort``); it tells them what happens
(``ports.events``) and asks its CSMS adapter, if the composition root attached one, what only a CSMS knows.

Size: the event loop, the command executor and the whole ChargerPort in one class, because the port's methods are
thin and each is read next to the events it posts; the work behind them lives in the modules beside this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from chargepoint import __version__
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
    RunRcdTest,
    SetPilotHigh,
    SetPilotNegative,
    SetPwm,
    StartTimer,
    TripShunt,
    UnlockConnector,
    UnlockRefused,
)
from chargepoint.core.events import (
    AuthorizationDecided,
    AvailabilityChanged,
    CurrentLimitChanged,
    Event,
    LatchedFaultsRestored,
    LockStateRead,
    RemoteStartRequested,
    StopRequested,
    TagPresented,
    TimerExpired,
    TimerName,
    UnlockRequested,
)
from chargepoint.core.pilot import PilotState
from chargepoint.core.reservation import Reservation
from chargepoint.core.session import Connector, ConnectorSettings
from chargepoint.logfields import log_fields
from chargepoint.ports.charger import SessionPolicy
from chargepoint.ports.csms import CsmsAdapter
from chargepoint.ports.events import (
    ChargerEvent,
    ChargerListener,
    FaultCleared,
    FaultRaised,
    SecurityEvent,
    StatusChanged,
    TransactionEnded,
    TransactionStarted,
)
from chargepoint.runtime import actuators, hardware_loops, selftest, views
from chargepoint.runtime.card_payment import CardPayments, CardSettings
from chargepoint.runtime.connector import ConnectorRuntime, SessionView
from chargepoint.runtime.faults import FaultBook
from chargepoint.runtime.fraud import FraudSettings, FraudWatch
from chargepoint.runtime.history_recorder import HistoryRecorder
from chargepoint.runtime.mobile_payment import MobilePayment
from chargepoint.runtime.pricing import PricingService
from chargepoint.runtime.qr_codes import is_qr_id_tag
from chargepoint.runtime.reservations import Reservations
from chargepoint.runtime.security_log import StandaloneSecurityLog
from chargepoint.runtime.session_writer import SessionWriter
from chargepoint.runtime.signed_metering import ChargerIdentity, SignedMetering
from chargepoint.runtime.storage import StorageMonitor
from chargepoint.store import Store
from hal.hardware import Hardware
from hal.protocols import SelfTestingRcd

log = logging.getLogger(__name__)

DELIVER_ON_STOP_S = 3.0
# A reading older than this many polls (plus the meter's own answer time) is shown as stale, not as the present.
METER_STALE_POLLS = 3
METER_STALE_GRACE_S = 2.0
UNLOCK_TIMEOUT_S = 5.0  # the actuator's own time, on top of a gentle stop's stop_wait_s


def _fraud_settings(config: Config) -> FraudSettings:
    f = config.fraud
    return FraudSettings(f.unknown_card_taps_max, f.unknown_card_window_s, f.unknown_card_lockout_s,
                         f.refuse_card_in_use, f.idle_energy_threshold_Wh, f.clock_jump_threshold_s)


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
            tethered_cable=config.charger.tethered_cable,
            ventilation_available=config.charger.ventilation_available,
            overcurrent_margin_percent=config.charger.overcurrent_margin_percent,
            overcurrent_grace_s=config.charger.overcurrent_grace_s,
            overcurrent_trip_s=config.charger.overcurrent_trip_s,
            overcurrent_trips_to_latch=config.charger.overcurrent_trips_to_latch,
            rcd_reclose_max=config.charger.rcd_reclose_max,
            stop_wait_s=config.charger.stop_wait_s,
            contactor_closes_per_min_max=config.charger.contactor_closes_per_min_max,
        )
        self.connectors = {
            hw.connector_id: ConnectorRuntime(hw=hw, core=Connector(hw.connector_id, replace(
                settings, rcd_test_before_session=isinstance(hw.rcd, SelfTestingRcd) and hw.rcd.has_test_input,
            )))
            for hw in hardware.connectors
        }
        self._events: asyncio.Queue[tuple[int, Event, asyncio.Future[None] | None]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = False
        self.started_at = datetime.now(UTC)
        # Called with the connector id for every pilot sample processed: the daemon feeds its watchdogs there.
        self.on_safety_tick: Callable[[int], None] | None = None
        # Hook for benchmarks/tests: called right after each command is executed.
        self.on_command: Callable[[int, Command], None] | None = None
        self._stop: asyncio.Event | None = None
        self.reexec_requested = False
        self._reset_reason = "Reboot"
        self.csms: CsmsAdapter | None = None
        self._listeners: list[ChargerListener] = []
        ident = config.identity
        self.signed = SignedMetering(self.connectors, ChargerIdentity(
            "" if config.ocpp is None else config.ocpp.charge_point_id, ident.evse_id, ident.serial_number,
            ident.firmware_version or __version__), store, self._publish)
        self.writer = SessionWriter(store, self.connectors, self.signed if self.signed.meters else None)
        self.reservations = Reservations(store, self.connectors, self.post, self.spawn)
        self.pricing = PricingService(config, store, self, rejected=pricing_problems)
        self.fraud = FraudWatch(_fraud_settings(config), self.connectors, self._publish)
        self._listeners.append(self.fraud)
        self.mobile = MobilePayment(config, self.connectors, lambda: self.csms, self.pricing.show_idle,
                                    self.pricing.screen.show, self._publish)
        self.cards: CardPayments | None = None
        card = config.card_payment
        if hardware.payment is not None and card.enabled and not config.free_vend:
            self.cards = CardPayments(
                CardSettings(card.preauthorize_amount, config.pricing.currency, card.card_wait_s, card.end_of_day_at,
                             config.pricing.time_zone),
                hardware.payment, store, self.connectors, self._start_card_session, self.pricing.set_card_budget,
                self.pricing.screen.show, self.flush_store, self.spawn, self._publish)
        self.faults = FaultBook(store, self.spawn)
        self.history = HistoryRecorder(store, self.connectors, config.history.keep_days, config.history.max_events)
        self._listeners.append(self.history)
        self.storage = StorageMonitor(store, self.connectors, self.faults, self.post, self._publish, self.spawn)
        self.tests = selftest.SelfTests(self.connectors, self.post, hardware)
        self._handled = asyncio.Event()

    async def reconfigure(self, running: Config, live: Iterable[str]) -> None:
        """Take the keys of a reloaded file that apply without a restart (``chargepoint.config.keys.LIVE_KEYS``);
        ``running``: the configuration in force from now on. No session ends."""
        live = set(live)
        self.config = running
        if "charger.allowed_id_tags" in live:
            self.allow_list = LocalAllowList(running.charger.allowed_id_tags)
        if any(key.startswith("history.") for key in live):
            self.history.keep_days, self.history.max_rows = running.history.keep_days, running.history.max_events
        if any(key.startswith("fraud.") for key in live):
            self.fraud.settings = _fraud_settings(running)
        if any(key.startswith("pricing.") for key in live):
            await self.pricing.reconfigure(running)

    def attach_csms(self, adapter: CsmsAdapter) -> None:
        """The adapter that connects the charger to its CSMS (before ``run``); it hears every event too."""
        self.csms = adapter
        self.writer.journal = adapter
        self.history.link_up = lambda: adapter.connected
        self.add_listener(adapter)

    def add_listener(self, listener: ChargerListener) -> None:
        self._listeners.append(listener)

    def _publish(self, event: ChargerEvent) -> None:
        for listener in self._listeners:
            listener.charger_event(event)

    # ----------------------------------------------------------------- lifecycle

    async def run(self, stop: asyncio.Event, ready: Callable[[], Awaitable[None]] | None = None) -> None:
        self._stop = stop
        if self.csms is not None:
            await self.csms.load()
        await self.pricing.load()
        await self.history.start()
        standalone_log = None
        if self.csms is None:  # the CSMS adapter logs security events itself, with their notifications
            standalone_log = StandaloneSecurityLog(self.store)
            self.add_listener(standalone_log)
        signed = await self.signed.recover() if self.signed.meters else None
        recovered = await self.store.recover_open_sessions(
            "PowerLoss", messages=None if self.csms is None else self.csms.stop_messages, signed=signed,
        )
        for record in recovered:
            log.warning(
                "connector %d: session %s of %s was left open by a crash or power loss; closed with "
                "reason PowerLoss at %d Wh",
                record.connector_id, record.session_id, record.id_tag, record.meter_stop_Wh or 0,
            )
        self._publish(SecurityEvent("StartupOfTheDevice", "the firmware started", datetime.now(UTC)))
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            writer_task = tg.create_task(self.writer.run())
            self.spawn(self._process_events())
            interval_s = self.config.charger.meter_poll_interval_s
            latched = await self.faults.restore(self.connectors.values())
            charger = self.config.charger
            for c in self.connectors.values():
                self.spawn(hardware_loops.pilot_loop(c, self.post, lambda: self._stopping, charger.pilot_timeout_s,
                                                     charger.pilot_debounce_samples, self._safety_tick))
                for loop in hardware_loops.device_loops(c, self.post):
                    self.spawn(loop)
                self.spawn(hardware_loops.lock_monitor(c, self.post))
                self.spawn(hardware_loops.meter_loop(c, self.post, self._publish, interval_s))
                await self._execute(c, c.core.start(time.monotonic()))
                self.faults.note(c, None)
                now = time.monotonic()
                if c.connector_id in latched:
                    self.post(c.connector_id, LatchedFaultsRestored(latched[c.connector_id], now))
                self.post(c.connector_id, LockStateRead(actuators.lock_position(c), now))
                if c.hw.max_current_A is not None:
                    self.post(c.connector_id, CurrentLimitChanged("hardware", c.hw.max_current_A, now))
                self.spawn(self.tests.at_start(c))
                if await self.store.get_kv(f"availability.{c.connector_id}") == "Inoperative":
                    self.post(c.connector_id, AvailabilityChanged(False, time.monotonic()))
            await self.reservations.restore()
            self.storage.start()
            self.spawn(self.storage.run())
            if self.csms is not None:
                self.spawn(self.csms.run())
            if self.mobile.enabled:
                self.spawn(self.mobile.run())
            self.spawn(self.fraud.run())
            self.spawn(self.history.run())
            if standalone_log is not None:
                self.spawn(standalone_log.run())
            if self.hardware.tamper is not None:
                self.spawn(self.fraud.watch_tamper(self.hardware.tamper))
            if self.cards is not None:
                self.spawn(self.cards.run())
            if ready is not None:
                await ready()
            await stop.wait()
            await self._shutdown()
            for task in self._tasks:
                task.cancel()
            self.writer.close()
            await writer_task
            await self.signed.aclose()
            await self.history.stop(self._reset_reason)
            if standalone_log is not None:
                await standalone_log.flush()

    def _safety_tick(self, connector_id: int) -> None:
        if self.on_safety_tick is not None:
            self.on_safety_tick(connector_id)

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the application's task group; if it fails, the hardware is made safe first."""
        assert self._tg is not None
        guarded = self._guarded(coro)
        try:
            self._tasks.append(self._tg.create_task(guarded))
        except RuntimeError:  # the task group is shutting down: the work is moot, close it unstarted
            guarded.close()
            if inspect.iscoroutine(coro):
                coro.close()

    async def _guarded(self, coro: Awaitable[Any]) -> None:
        try:
            await coro
        except Exception:
            # The very first thing on an unhandled exception: contactors open, pilots at +12 V. The task group then
            # cancels the others and the supervisor logs, flushes and tears down - all of it after this.
            await self.hardware.force_safe()
            raise

    async def _shutdown(self) -> None:
        """End running sessions gently (PWM off, then the contactor once the EV has stopped drawing, at most
        stop_wait_s), then leave the hardware safe before the tasks stop."""
        self._stopping = True
        for c in self.connectors.values():
            await self.handled(c.connector_id, StopRequested(self._reset_reason, time.monotonic()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.charger.stop_wait_s + 0.5):
                # Each event handled (a meter sample, the stop_wait timer) may be the one that opens the contactor.
                while any(c.core.contactor_commanded for c in self.connectors.values()):
                    self._handled.clear()
                    await self._handled.wait()
        for c in self.connectors.values():
            for handle in c.timers.values():
                handle.cancel()
        await self.hardware.force_safe()
        if self.cards is not None:
            await self.cards.aclose()
        if self.csms is not None:
            # A reset (or a stop) ends its transactions before the restart: their StopTransactions go out now, not
            # after the next BootNotification (OCPP 1.6 Reset: stop gracefully, then restart).
            await self.writer.flush()
            await self.csms.deliver_queued(DELIVER_ON_STOP_S)

    def post(self, connector_id: int, event: Event) -> None:
        self._events.put_nowait((connector_id, event, None))

    async def handled(self, connector_id: int, event: Event) -> None:
        """Post ``event`` and wait until the core has handled it and its commands have run."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._events.put_nowait((connector_id, event, done))
        await done

    # ----------------------------------------------------------------- event processing

    async def _process_events(self) -> None:
        while True:
            connector_id, event, done = await self._events.get()
            c = self.connectors[connector_id]
            if c.testing and not isinstance(event, TimerExpired):
                c.held.append(event)  # what the devices say while a self-test drives them is not the EV's doing
                continue
            if isinstance(event, TagPresented) and self.fraud.taps_locked(connector_id):
                log.warning("connector %d: tap of %s ignored: too many unknown cards lately", connector_id,
                            event.id_tag)
                continue
            if isinstance(event, TagPresented):
                self._note_attempt(c, event.id_tag)
            await self._execute(c, c.core.handle(event))
            self.faults.note(c, event)
            self._handled.set()
            if done is not None and not done.done():
                done.set_result(None)

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
                    self.spawn(actuators.move_lock(c, True, self.post))
                case UnlockConnector():
                    self.spawn(actuators.move_lock(c, False, self.post))
                case UnlockRefused(reason=reason):
                    log.error("connector %d: unlock refused: %s", c.connector_id, reason)
                    actuators.resolve_unlock(c, False)
                case TripShunt():
                    await actuators.trip_shunt(c)
                case RunRcdTest():
                    self.spawn(self.tests.rcd(c))
                case StartTimer(name=name, duration_s=duration_s):
                    self._start_timer(c, name, duration_s)
                case CancelTimer(name=name):
                    handle = c.timers.pop(name, None)
                    if handle is not None:
                        handle.cancel()
                case AuthorizeTag(id_tag=id_tag):
                    if self.csms is not None:
                        self.spawn(self._authorize_with_csms(c, id_tag))
                    else:
                        self._authorize_locally(c, id_tag)
                case BeginSession(id_tag=id_tag, meter_start_Wh=meter_start_Wh, reservation_id=reservation_id):
                    self._begin_session(c, id_tag, meter_start_Wh, reservation_id)
                case RecordMeter(energy_Wh=energy_Wh):
                    at = datetime.now(UTC)
                    self.writer.put(c.connector_id, "meter", energy_Wh=energy_Wh, at=at,
                                    pricing=self.pricing.meter(c, energy_Wh, at))
                case EndSession(reason=reason, meter_stop_Wh=meter_stop_Wh, stopped_by=stopped_by):
                    self._end_session(c, reason, meter_stop_Wh, stopped_by)
                case ReportStatus(status=status, error_code=error_code):
                    self._report_status(c, status, error_code)
            if self.on_command is not None:
                self.on_command(c.connector_id, command)

    def _begin_session(self, c: ConnectorRuntime, id_tag: str, meter_start_Wh: int,
                       reservation_id: int | None) -> None:
        started_at = datetime.now(UTC)
        free = self.config.free_vend and id_tag == self.config.charger.free_vend_id_tag
        method = c.start_methods.pop(id_tag.upper(), "free" if free else "rfid")
        c.start_methods.clear()
        c.session = SessionView(id_tag, started_at, meter_start_Wh, payment_method=method)
        if self.cards is not None and self.cards.session_began(c, id_tag, started_at):
            c.session.payment_method = method = "card"
            c.session.preauthorized = self.cards.preauthorized_of(c.connector_id)
        log.info("connector %d: session started for %s at %d Wh", c.connector_id, id_tag, meter_start_Wh,
                 extra=log_fields(connector=c.connector_id))
        if reservation_id is not None:
            self.reservations.forget(reservation_id)
        active = c.core.facts.session
        parent = None if active is None else active.parent_id_tag
        pricing = self.pricing.begin(c, id_tag, parent, started_at, meter_start_Wh)
        self._publish(TransactionStarted(c.connector_id, id_tag, meter_start_Wh, reservation_id, started_at))
        self.writer.put(c.connector_id, "begin", id_tag=id_tag, meter_start_Wh=meter_start_Wh, started_at=started_at,
                        reservation_id=reservation_id, pricing=pricing, payment_method=method)
        self.signed.begin(c.connector_id, id_tag, method)

    def _end_session(self, c: ConnectorRuntime, reason: str, meter_stop_Wh: int, stopped_by: str | None) -> None:
        stopped_at = datetime.now(UTC)
        session = c.session
        c.session = None
        if session is not None and session.payment_method == "card" and self.cards is not None:
            self.cards.session_ended(c)
        if session is not None:
            log.info("connector %d: session of %s ended (%s), %d Wh", c.connector_id,
                     session.id_tag, reason, meter_stop_Wh - session.meter_start_Wh,
                     extra=log_fields(connector=c.connector_id, session=session.session_id,
                                      transaction=session.csms_transaction_id))
            self._publish(TransactionEnded(c.connector_id, session.session_id, session.id_tag, reason, meter_stop_Wh,
                                           ev_unplugged=c.pilot_state is PilotState.A, at=stopped_at))
        self.writer.put(c.connector_id, "end", meter_stop_Wh=meter_stop_Wh, stopped_at=stopped_at, reason=reason,
                        stop_id_tag=stopped_by, pricing=self.pricing.end(c, meter_stop_Wh, stopped_at))

    def _causes(self, c: ConnectorRuntime, status: ConnectorStatus) -> tuple[str, ...]:
        """Why a connector is Faulted (its faults) or Unavailable (mains lost, disk full, set inoperative)."""
        if status is ConnectorStatus.Faulted:
            return tuple(str(f) for f in sorted(c.core.active_faults))  # sorted as the core picks error_code
        if status is ConnectorStatus.Unavailable:
            facts = c.core.facts
            return (("MainsLost",) if not facts.mains_present else ("StorageFull",) if self.storage.refusing
                    else ("Inoperative",) if not facts.operative else ())
        return ()

    def _report_status(self, c: ConnectorRuntime, status: ConnectorStatus, error_code: str) -> None:
        level = logging.WARNING if status is ConnectorStatus.Faulted else logging.INFO
        session = c.session
        log.log(level, "connector %d: %s (%s)", c.connector_id, status, error_code,
                extra=log_fields(connector=c.connector_id, session=None if session is None else session.session_id))
        now = datetime.now(UTC)
        self._publish(StatusChanged(c.connector_id, status, error_code, now, self._causes(c, status)))
        if error_code != c.reported_error_code:
            if c.reported_error_code != "NoError":
                self._publish(FaultCleared(c.connector_id, c.reported_error_code, now))
            if error_code != "NoError":
                self._publish(FaultRaised(c.connector_id, error_code, now))
            c.reported_error_code = error_code
        self.pricing.status_changed(c, status)
        if self.cards is not None:
            self.cards.status_changed(c, status)

    def _start_timer(self, c: ConnectorRuntime, name: TimerName, duration_s: float) -> None:
        old = c.timers.pop(name, None)
        if old is not None:
            old.cancel()

        def expire() -> None:
            c.timers.pop(name, None)
            self.post(c.connector_id, TimerExpired(name, time.monotonic()))

        c.timers[name] = asyncio.get_running_loop().call_later(duration_s, expire)

    def _authorize_locally(self, c: ConnectorRuntime, id_tag: str) -> None:
        """Standalone: the configured allow list and the prepaid balances on the charger decide."""
        if self.fraud.card_in_use_elsewhere(c.connector_id, id_tag):
            self._refuse_card(c, id_tag)
            return
        accepted = self.allow_list.accepts(id_tag) or self.pricing.prepaid_accepts(id_tag)
        blocked = self.pricing.prepaid_blocks(id_tag)
        log.info("connector %d: card %s %s", c.connector_id, id_tag,
                 "rejected (prepaid balance used up)" if blocked else
                 "accepted" if accepted else "rejected (not in allowed_id_tags)",
                 extra=log_fields(connector=c.connector_id))
        accepted = accepted and not blocked
        if accepted:
            self._authorized_otherwise(c)
            self.pricing.show_authorized(c, id_tag, None)
        else:
            self.pricing.show_rejected(c, id_tag)
            if not blocked:
                self.fraud.card_rejected(c.connector_id, id_tag)
        self.post(c.connector_id, AuthorizationDecided(id_tag, accepted, time.monotonic()))

    def _authorized_otherwise(self, c: ConnectorRuntime) -> None:
        if self.cards is not None:
            self.cards.authorized_otherwise(c.connector_id)

    def _note_attempt(self, c: ConnectorRuntime, id_tag: str) -> None:
        """A driver who taps at a connector that cannot take them is a start attempt refused (usage reports count
        those made while no connector was free: drivers turned away)."""
        status = c.core.status
        if status in (ConnectorStatus.Faulted, ConnectorStatus.Unavailable):
            self.history.attempt_refused(c.connector_id, f"connector {status}")
        elif c.session is not None and c.session.id_tag.upper() != id_tag.upper():
            self.history.attempt_refused(c.connector_id, "connector in use")

    def _refuse_card(self, c: ConnectorRuntime, id_tag: str) -> None:
        log.info("connector %d: card %s refused: it charges on another connector", c.connector_id, id_tag)
        self.pricing.show_rejected(c, id_tag)
        self.post(c.connector_id, AuthorizationDecided(id_tag, False, time.monotonic()))

    async def _authorize_with_csms(self, c: ConnectorRuntime, id_tag: str) -> None:
        assert self.csms is not None
        if self.fraud.card_in_use_elsewhere(c.connector_id, id_tag):
            self._refuse_card(c, id_tag)
            return
        accepted, parent = await self.csms.authorize(id_tag)
        rejected_by_csms = not accepted
        if accepted and self.pricing.prepaid_blocks(id_tag):
            log.info("connector %d: card %s accepted by the CSMS but its prepaid balance is used up", c.connector_id,
                     id_tag)
            accepted = False
        log.info("connector %d: card %s %s", c.connector_id, id_tag, "accepted" if accepted else "rejected",
                 extra=log_fields(connector=c.connector_id))
        if accepted:
            self._authorized_otherwise(c)
            self.pricing.show_authorized(c, id_tag, parent)
        else:
            self.pricing.show_rejected(c, id_tag)
            if rejected_by_csms:
                self.fraud.card_rejected(c.connector_id, id_tag)
        self.post(c.connector_id, AuthorizationDecided(id_tag, accepted, time.monotonic(), parent))

    # ----------------------------------------------------------------- ChargerPort: what adapters may ask

    def claim_remote_start(self, connector_id: int, id_tag: str) -> bool:
        """May a RemoteStartTransaction for ``id_tag`` begin on ``connector_id``? (A paid QR code must be valid.)"""
        c = self.connectors.get(connector_id)
        if c is None or not self.mobile.claim(connector_id, id_tag):
            return False
        c.start_methods[id_tag.upper()] = "qr" if self.mobile.enabled and is_qr_id_tag(id_tag.upper()) else "remote"
        return True

    def _start_card_session(self, connector_id: int, id_tag: str) -> None:
        """The terminal pre-authorised a card: the session starts as a pre-authorised remote start would."""
        c = self.connectors[connector_id]
        c.start_methods[id_tag.upper()] = "card"
        self.post(connector_id, RemoteStartRequested(id_tag, True, time.monotonic()))

    def qr_text(self, c: ConnectorRuntime) -> str | None:
        return self.mobile.text_for(c)

    def start_refused(self, connector_id: int, why: str) -> None:
        self.history.attempt_refused(connector_id, why)

    def start_remotely(self, connector_id: int, id_tag: str, pre_authorized: bool) -> None:
        c = self.connectors.get(connector_id)
        if c is not None:
            c.start_methods.setdefault(id_tag.upper(), "remote")
            self._authorized_otherwise(c)
        self.post(connector_id, RemoteStartRequested(id_tag, pre_authorized, time.monotonic()))

    def stop_transaction(self, connector_id: int, reason: str) -> None:
        self.post(connector_id, StopRequested(reason, time.monotonic()))

    def transaction_confirmed(self, connector_id: int, session_id: str, transaction_id: int) -> None:
        c = self.connectors.get(connector_id)
        if c is not None and c.session is not None and c.session.session_id == session_id:
            c.session.csms_transaction_id = transaction_id

    def deauthorize(self, connector_id: int, stop: bool) -> None:
        """The CSMS rejected the idTag of a running transaction (started offline, TC_037_2/3)."""
        if stop:
            self.post(connector_id, StopRequested("DeAuthorized", time.monotonic()))
        else:
            # StopTransactionOnInvalidId=false: keep the transaction, deliver no more energy.
            self.post(connector_id, CurrentLimitChanged("invalid_id", 0.0, time.monotonic()))

    def set_current_limit(self, connector_id: int, source: str, limit_A: float | None) -> None:
        self.post(connector_id, CurrentLimitChanged(source, limit_A, time.monotonic()))

    def apply_policy(self, policy: SessionPolicy) -> None:
        """Rules the CSMS may change at run time (ConnectionTimeOut, StopTransactionOnEVSideDisconnect ...)."""
        for c in self.connectors.values():
            c.core.settings = replace(
                c.core.settings,
                connection_timeout_s=policy.connection_timeout_s,
                stop_on_ev_disconnect=policy.stop_on_ev_disconnect,
                unlock_on_ev_disconnect=policy.unlock_on_ev_disconnect,
            )

    async def set_operative(self, connector_ids: Sequence[int], operative: bool) -> None:
        """ChangeAvailability: persisted, so the charger comes back in the same availability after a restart."""
        for connector_id in connector_ids:
            await self.store.set_kv(f"availability.{connector_id}", "Operative" if operative else "Inoperative")
            # A full disk keeps refusing new sessions whatever was chosen; the choice applies once space is back.
            self.post(connector_id, AvailabilityChanged(operative and not self.storage.refusing, time.monotonic()))

    async def unlock(self, connector_id: int) -> str:
        """UnlockConnector: 'Unlocked', 'UnlockFailed' or 'NotSupported' (tethered cable).

        Always through the core: it ends a running session gently first, and it refuses while the contacts may be
        live (closed, welded, or not known yet)."""
        c = self.connectors[connector_id]
        if c.hw.lock.tethered:
            return "NotSupported"
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        c.unlock_waiters.append(waiter)
        self.post(connector_id, UnlockRequested(time.monotonic()))
        try:
            async with asyncio.timeout(UNLOCK_TIMEOUT_S + self.config.charger.stop_wait_s):
                return "Unlocked" if await waiter else "UnlockFailed"
        except TimeoutError:
            return "UnlockFailed"

    async def reserve(self, reservation: Reservation) -> str:
        return await self.reservations.reserve(reservation)

    async def cancel_reservation(self, reservation_id: int) -> bool:
        return await self.reservations.cancel(reservation_id)

    def reservation_on(self, connector_id: int) -> Reservation | None:
        return self.reservations.on(connector_id)

    async def reset(self, hard: bool) -> None:
        """Reset: end every session with the matching reason, then restart the firmware in place."""
        log.warning("%s reset requested by the CSMS", "hard" if hard else "soft")
        self._publish(SecurityEvent("ResetOrReboot", f"{'hard' if hard else 'soft'} reset", datetime.now(UTC)))
        self.reexec_requested = True
        self._reset_reason = "HardReset" if hard else "SoftReset"
        if self._stop is not None:
            self._stop.set()

    async def selftest(self) -> list[dict[str, Any]]:
        """``chargepoint selftest``: every check of every connector; the charger must be idle."""
        return await self.tests.run_idle()

    async def clear_faults(self, connector_id: int | None, source: str) -> dict[str, Any]:
        """``chargepoint fault clear``: latched faults whose condition is gone clear; the others stay, said why."""
        return await self.faults.clear(self.connectors.values(), connector_id, source, self.handled)

    async def fault_listing(self, limit: int) -> dict[str, Any]:
        await asyncio.sleep(0)  # let the log writes already posted reach the store first
        return await self.faults.listing(self.connectors.values(), limit)

    # ----------------------------------------------------------------- views (control socket, diagnostics)

    def status(self) -> dict[str, Any]:
        stale_after_s = METER_STALE_POLLS * self.config.charger.meter_poll_interval_s + METER_STALE_GRACE_S
        return {
            "csms_connected": self.csms is not None and self.csms.connected,
            "mode": "free-vend" if self.config.free_vend else "allow-list",
            "hardware": self.config.hardware.backend,
            "started_at": self.started_at.isoformat(),
            "config_errors": [],
            "enclosure_open": None if self.hardware.tamper is None else self.hardware.tamper.opened(),
            "csms": None if self.csms is None else self.csms.link_state(),
            "connectors": [views.connector_status(c, self.pricing.status(c), self._causes(c, c.core.status),
                                                  stale_after_s=stale_after_s) for c in self.connectors.values()],
            "storage": self.storage.status(),
        }

    async def recent_sessions(self, limit: int) -> list[dict[str, Any]]:
        rows = await self.store.sessions_with_pricing(limit)
        ledger = await self.store.ledger_of_sessions([r.session_id for r, _ in rows])
        return [views.session_row(r, p, ledger.get(r.session_id)) for r, p in rows]

    async def prepaid(self, id_tag: str | None = None, balance: str | None = None, add: str | None = None
                      ) -> list[dict[str, Any]]:
        """Show, set (``balance``) or top up (``add``) prepaid balances held on the charger (CLI)."""
        return await self.pricing.prepaid_command(id_tag, balance, add)

    async def flush_store(self) -> None:
        """Wait until every queued store write is done (used before answering session queries)."""
        await self.writer.flush()

