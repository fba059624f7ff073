"""The connector/session state machine: events in, commands out, no I/O.

Design: each event updates a small set of facts (pilot state, faults, authorization, session ...);
then ``_reconcile`` derives what the outputs must be from the facts alone and emits commands for
the differences. The safety invariant therefore holds by construction: the contactor is commanded
closed only while ``_contactor_may_close()`` is true, and every event re-checks it first. The
connector status (OCPP vocabulary) is a ``transitions`` machine whose table lists the legal moves,
so a derivation bug that asks for an impossible move raises instead of reporting nonsense.

Size: one state machine, kept whole: the facts, the reconciliation that derives every output from them and the
status table are read together whenever the safety invariant is checked; split apart, it would be scattered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from transitions import Machine

from chargepoint.core.commands import (
    AuthorizeTag,
    BeginSession,
    CancelTimer,
    CloseContactor,
    Command,
    ConnectorStatus,
    EndSession,
    Fault,
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
    CableChanged,
    ContactorFeedbackChanged,
    CurrentLimitChanged,
    Event,
    FaultsCleared,
    LatchedFaultsRestored,
    LimitReached,
    LockCompleted,
    LockStateRead,
    MainsChanged,
    MeterFailed,
    MeterSampled,
    PilotChanged,
    PilotFailed,
    RemoteStartRequested,
    ReservationEnded,
    ReservationMade,
    ResidualCurrentChanged,
    SelfTested,
    StopRequested,
    TagPresented,
    TimerExpired,
    TimerName,
    UnlockRequested,
)
from chargepoint.core.pilot import PilotState, current_from_duty, duty_from_current

# transitions warns for every helper it does not bind under model_override; that is the point.
logging.getLogger("transitions.core").setLevel(logging.ERROR)

S = ConnectorStatus

# Legal status moves (OCPP 1.6 section 4.9 table, restricted to what this charger does).
_ALLOWED_SOURCES: dict[ConnectorStatus, list[ConnectorStatus]] = {
    S.Available: [S.Preparing, S.Charging, S.SuspendedEV, S.SuspendedEVSE, S.Finishing, S.Reserved,
                  S.Unavailable, S.Faulted],
    S.Preparing: [S.Available, S.Finishing, S.Reserved, S.Unavailable, S.Faulted],
    # From Finishing: a new session for a plug that is still locked (remote start right after a stop).
    # From Reserved (as from Available): the plug was still locked, so the session skips Preparing.
    S.Charging: [S.Available, S.Preparing, S.SuspendedEV, S.SuspendedEVSE, S.Finishing, S.Reserved, S.Unavailable,
                 S.Faulted],
    S.SuspendedEV: [S.Available, S.Preparing, S.Charging, S.SuspendedEVSE, S.Finishing, S.Reserved, S.Unavailable,
                    S.Faulted],
    S.SuspendedEVSE: [S.Available, S.Preparing, S.Charging, S.SuspendedEV, S.Finishing, S.Reserved, S.Unavailable,
                      S.Faulted],
    S.Finishing: [S.Preparing, S.Charging, S.SuspendedEV, S.SuspendedEVSE, S.Unavailable, S.Faulted],
    # A reservation made while a session ran (the adapter refuses that, the core need not trust it) applies once
    # the session is over and the EV gone.
    S.Reserved: [S.Available, S.Preparing, S.Charging, S.SuspendedEV, S.SuspendedEVSE, S.Finishing,
                 S.Unavailable, S.Faulted],
    S.Unavailable: [S.Available, S.Preparing, S.Charging, S.SuspendedEV, S.SuspendedEVSE, S.Finishing,
                    S.Reserved, S.Faulted],
    S.Faulted: [S.Available, S.Preparing, S.Charging, S.SuspendedEV, S.SuspendedEVSE, S.Finishing,
                S.Reserved, S.Unavailable],
}
_TRIGGER = {status: f"become_{status.value.lower()}" for status in ConnectorStatus}

# Stop reasons (OCPP 1.6 Reason) for a session ended by a fault.
_FAULT_STOP_REASON = {
    Fault.GroundFailure: "EmergencyStop",
    Fault.ContactorWelded: "EmergencyStop",
    Fault.ContactorStuckOpen: "EmergencyStop",
    Fault.OverCurrentFailure: "EmergencyStop",
}
# Faults during which the pilot is driven to -12 V (state F) so the EV sees "EVSE not available".
_NEGATIVE_PILOT_FAULTS = frozenset({Fault.GroundFailure, Fault.ContactorWelded})
_PILOT_FAULTS = {
    PilotState.E: Fault.PilotShort,
    PilotState.F: Fault.PilotNegative,
    PilotState.DIODE_FAILURE: Fault.DiodeFailure,
}


# Below this on every phase an EV has stopped drawing: the contactor opens without breaking load.
NO_LOAD_A = 1.0
# Over-current and RCD trips count towards latching within this window.
TRIP_WINDOW_S = 3600.0
CONTACTOR_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    """Per-connector policy. Currents in amperes, durations in seconds."""

    max_current_A: float = 32.0
    cable_rating_A: float = 32.0  # the tethered cable's rating; a socket outlet reads the cable's from PP
    tethered_cable: bool = True
    ventilation_available: bool = False  # state D (ventilation required) gets energy only where this is true
    connection_timeout_s: float = 60.0
    free_vend_id_tag: str | None = None  # None: a card must be authorized
    pwm_min_update_interval_s: float = 5.0
    contactor_feedback_timeout_s: float = 0.5
    overcurrent_margin_percent: float = 10.0  # tolerated draw above the offer, relative to it
    overcurrent_grace_s: float = 5.0  # IEC 61851-1: the EV has 5 s to follow a lower duty cycle
    overcurrent_trip_s: float = 2.0  # a draw above the limit lasting this long trips; shorter spikes do not
    overcurrent_trips_to_latch: int = 3  # this many trips within TRIP_WINDOW_S latch the fault
    rcd_reclose_max: int = 2  # automatic re-closes after RCD trips within TRIP_WINDOW_S; the next trip latches
    stop_wait_s: float = 3.0  # a stop that is not a fault withdraws the PWM and waits this long for the EV
    contactor_closes_per_min_max: int = 10  # a flickering pilot must not make the contactor chatter
    rcd_test_before_session: bool = False  # the RCD module has a TEST input: it must pass before each session
    stop_on_ev_disconnect: bool = True  # OCPP StopTransactionOnEVSideDisconnect
    unlock_on_ev_disconnect: bool = True  # OCPP UnlockConnectorOnEVSideDisconnect


@dataclass(slots=True)
class ActiveSession:
    id_tag: str
    parent_id_tag: str | None
    meter_start_Wh: int
    started_at_s: float


@dataclass(slots=True)
class _Facts:
    pilot: PilotState = PilotState.A
    pilot_known: bool = False
    feedback_closed: bool = False
    feedback_known: bool = False
    cable_max_A: float | None = None  # from PP; None: no cable
    rcd_tripped: bool = False
    mains_present: bool = True
    operative: bool = True
    faults: set[Fault] = field(default_factory=set)
    latched: set[Fault] = field(default_factory=set)  # the faults above that stay until a technician clears them
    overcurrent_trips_s: list[float] = field(default_factory=list)
    rcd_trips_s: list[float] = field(default_factory=list)
    pending_tag: str | None = None
    authorized_tag: str | None = None
    authorized_parent: str | None = None
    session: ActiveSession | None = None
    finishing: bool = False  # session ended, EV still plugged
    connection_timed_out: bool = False
    limits_A: dict[str, float] = field(default_factory=dict)
    meter_energy_Wh: int | None = None
    max_draw_A: float | None = None  # highest phase of the last meter sample
    max_draw_at_s: float = 0.0
    stopping_reason: str | None = None  # a graceful stop is winding down: the session ends when the contactor opens
    stopped_by: str | None = None  # the idTag that asked for the stop being wound down
    stop_wait_over: bool = False
    unlock_requested: bool = False
    rcd_tested: bool = False  # the RCD passed its test since the session began
    lock_wanted: bool = False
    locked: bool = False
    lock_pending: bool = False
    reservation: ReservationMade | None = None
    locked_for: str | None = None  # cable held locked after the EV side was unplugged (idTag that releases it)


class Connector:
    """One connector's decisions. Call ``handle(event)``; execute the returned commands in order."""

    # Trigger placeholders, replaced by transitions (model_override) and visible to mypy.
    def become_available(self) -> bool: raise NotImplementedError
    def become_preparing(self) -> bool: raise NotImplementedError
    def become_charging(self) -> bool: raise NotImplementedError
    def become_suspendedev(self) -> bool: raise NotImplementedError
    def become_suspendedevse(self) -> bool: raise NotImplementedError
    def become_finishing(self) -> bool: raise NotImplementedError
    def become_reserved(self) -> bool: raise NotImplementedError
    def become_unavailable(self) -> bool: raise NotImplementedError
    def become_faulted(self) -> bool: raise NotImplementedError

    state: ConnectorStatus

    def __init__(self, connector_id: int, settings: ConnectorSettings) -> None:
        self.connector_id = connector_id
        self.settings = settings
        self.facts = _Facts()
        # Outputs as last commanded; the hardware starts in its safe state and so do these.
        self.contactor_commanded = False
        self.pwm_duty_percent: float | None = None  # None: +12 V constant (X1)
        self.pilot_negative = False
        self._last_pwm_change_s: float | None = None
        self._pwm_off_at_s: float | None = None
        # (since_s, offered_A) of every offer still inside the grace window: the EV may draw any of them.
        self._offers: list[tuple[float, float]] = [(0.0, 0.0)]
        self._close_times_s: list[float] = []
        self._timers: set[TimerName] = set()
        self._reported: tuple[ConnectorStatus, str] | None = None
        self._machine = Machine(
            model=self,
            states=list(ConnectorStatus),
            initial=ConnectorStatus.Available,
            transitions=[
                {"trigger": _TRIGGER[dest], "source": sources, "dest": dest}
                for dest, sources in _ALLOWED_SOURCES.items()
            ],
            auto_transitions=False,
            queued=True,
            model_override=True,
        )

    # ----------------------------------------------------------------- queries

    @property
    def status(self) -> ConnectorStatus:
        return self.state

    @property
    def session(self) -> ActiveSession | None:
        return self.facts.session

    @property
    def offered_current_A(self) -> float:
        """What the pilot offers right now (0 without PWM)."""
        return 0.0 if self.pwm_duty_percent is None else current_from_duty(self.pwm_duty_percent)

    @property
    def cable_max_A(self) -> float | None:
        """The rating of the cable in use: the tethered one's, or the plugged one's (None: no cable)."""
        return self.settings.cable_rating_A if self.settings.tethered_cable else self.facts.cable_max_A

    def cable_limit_A(self) -> float:
        """The tethered cable's configured rating, or what the plugged cable's PP resistor codes (0: no cable)."""
        if self.settings.tethered_cable:
            return self.settings.cable_rating_A
        return 0.0 if self.facts.cable_max_A is None else self.facts.cable_max_A

    def allowed_current_A(self) -> float:
        """min(configured maximum, cable rating, every external limit: smart charging, board, load management)."""
        return min([self.settings.max_current_A, self.cable_limit_A(), *self.facts.limits_A.values()])

    @property
    def error_code(self) -> str:
        faults = sorted(self.facts.faults)
        return faults[0].error_code if faults else "NoError"

    @property
    def active_faults(self) -> frozenset[Fault]:
        return frozenset(self.facts.faults)

    @property
    def latched_faults(self) -> frozenset[Fault]:
        return frozenset(self.facts.latched)

    # ----------------------------------------------------------------- events

    def start(self, at_s: float) -> list[Command]:
        """Commands at boot: the outputs are already safe, so this only reports the status."""
        out: list[Command] = []
        self._reconcile(out, at_s)
        return out

    def handle(self, event: Event) -> list[Command]:
        out: list[Command] = []
        f = self.facts
        match event:
            case PilotChanged(state=state):
                f.pilot_known = True
                self._on_pilot(state, event.at_s)
            case PilotFailed():
                self._raise(Fault.PilotLost)
            case TagPresented(id_tag=id_tag):
                self._on_tag(id_tag, out, event.at_s)
            case AuthorizationDecided(id_tag=id_tag, accepted=accepted, parent_id_tag=parent):
                if id_tag == f.pending_tag:
                    f.pending_tag = None
                    if f.session is not None:
                        if parent is not None and parent == f.session.parent_id_tag:
                            self._end_session("Local", out, graceful=True, stopped_by=id_tag)
                    elif accepted and not f.faults and self._reservation_allows(id_tag, parent):
                        f.authorized_tag, f.authorized_parent = id_tag, parent
                        f.finishing = False
                        f.connection_timed_out = False
            case ContactorFeedbackChanged(closed=closed):
                if closed and not f.feedback_closed and not self.contactor_commanded:
                    # A close we did not command (an EVSE board closes its relay by itself) counts too.
                    self._close_times_s.append(event.at_s)
                f.feedback_closed = closed
                f.feedback_known = True
                if closed == self.contactor_commanded:
                    self._cancel_timer(TimerName.CONTACTOR_FEEDBACK, out)
                elif TimerName.CONTACTOR_FEEDBACK not in self._timers:
                    # The contact moved without being told to: the switch cannot be trusted.
                    self._switch_failed(closed, out)
            case ResidualCurrentChanged(tripped=tripped):
                f.rcd_tripped = tripped
                if tripped:
                    f.rcd_trips_s = [t for t in f.rcd_trips_s if event.at_s - t < TRIP_WINDOW_S] + [event.at_s]
                    # The module resets and the connector re-closes a bounded number of times, then it latches.
                    self._raise(Fault.GroundFailure, latch=len(f.rcd_trips_s) > self.settings.rcd_reclose_max)
                else:
                    self._clear_condition(Fault.GroundFailure)
            case MainsChanged(present=present):
                f.mains_present = present
                if not present:
                    self._end_session("PowerLoss", out)
            case MeterSampled():
                self._clear_condition(Fault.PowerMeterFailure)
                f.meter_energy_Wh = event.energy_Wh
                f.max_draw_A, f.max_draw_at_s = max(event.current_A), event.at_s
                self._check_overcurrent(event, out)
                if f.session is not None:
                    out.append(RecordMeter(event.energy_Wh))
            case MeterFailed():
                self._raise(Fault.PowerMeterFailure)
            case LockCompleted(locked=locked, ok=ok):
                f.lock_pending = False
                if ok:
                    f.locked = locked
                else:
                    self._raise(Fault.ConnectorLockFailure)
            case LockStateRead(locked=locked):
                if not f.lock_pending:  # a movement in flight reports through LockCompleted
                    if f.locked and not locked and f.session is not None:
                        # The bolt moved without being told to (forced, broken): the plug may come out under load.
                        self._raise(Fault.ConnectorLockFailure)
                    f.locked = locked
            case CableChanged(max_A=max_A):
                f.cable_max_A = max_A
            case SelfTested(check=check, ok=ok):
                if check == "rcd":
                    f.rcd_tested = ok
                    if not ok:
                        self._raise(Fault.RcdTestFailed)
                elif check == "pilot" and not ok:
                    self._raise(Fault.PilotTestFailed)
            case TimerExpired(name=name):
                if name in self._timers:  # else cancelled after its expiry was queued: stale
                    self._timers.discard(name)
                    self._on_timer(name, event.at_s, out)
            case CurrentLimitChanged(source=source, current_A=current_A):
                if current_A is None:
                    f.limits_A.pop(source, None)
                else:
                    f.limits_A[source] = max(0.0, current_A)
            case AvailabilityChanged(operative=operative):
                f.operative = operative
            case StopRequested(reason=reason) | LimitReached(reason=reason):
                # Not a fault: the PWM goes first and the EV stops drawing before the contactor opens.
                self._end_session(reason, out, graceful=True)
                f.authorized_tag = None
            case RemoteStartRequested(id_tag=id_tag, pre_authorized=pre_authorized):
                if f.session is None and f.pending_tag is None and not f.faults and f.operative:
                    if pre_authorized and self._reservation_allows(id_tag, None):
                        f.authorized_tag, f.authorized_parent = id_tag, None
                        f.finishing = False
                        f.connection_timed_out = False
                    else:
                        f.pending_tag = id_tag
                        out.append(AuthorizeTag(id_tag))
            case UnlockRequested():
                if f.session is not None:
                    self._end_session("UnlockCommand", out, graceful=True)
                    # The driver takes the cable: Finishing until it is out, no new session meanwhile (free vend).
                    f.finishing = f.pilot.plugged
                f.unlock_requested = True
            case ReservationMade():
                f.reservation = event
            case ReservationEnded(reservation_id=reservation_id):
                if f.reservation is not None and f.reservation.reservation_id == reservation_id:
                    f.reservation = None
            case FaultsCleared():
                self._clear_latched_faults()
            case LatchedFaultsRestored(faults=codes):
                for code in codes:
                    try:
                        fault = Fault(code)  # (a name stored by an older firmware reads as today's)
                    except ValueError:
                        continue  # a fault this firmware no longer has
                    self._raise(fault, latch=True)
        self._reconcile(out, event.at_s)
        return out

    def _on_pilot(self, state: PilotState, at_s: float) -> None:
        f = self.facts
        if self.pilot_negative and state is PilotState.F:
            return  # our own -12 V: says nothing about the EV
        f.pilot = state
        self._clear_condition(Fault.PilotLost)
        for pilot_state, fault in _PILOT_FAULTS.items():
            if state is pilot_state:
                self._raise(fault)
            else:
                self._clear_condition(fault)
        if state is PilotState.A:
            f.finishing = False
            f.connection_timed_out = False
            if f.session is not None:
                f.authorized_tag = None  # the stop below needs no new authorization
            self._clear_condition(Fault.ConnectorLockFailure)
            self._clear_condition(Fault.OverCurrentFailure)  # the EV that over-drew has left

    def _on_tag(self, id_tag: str, out: list[Command], at_s: float) -> None:
        f = self.facts
        if f.session is None and f.locked_for is not None:
            if id_tag == f.locked_for:
                f.locked_for = None
                f.lock_wanted = False  # the owner takes the cable: release it
            return
        if f.session is not None:
            same_card = id_tag == f.session.id_tag or (
                f.session.parent_id_tag is not None and id_tag == f.session.parent_id_tag
            )
            if same_card or self.settings.free_vend_id_tag is not None:
                self._end_session("Local", out, graceful=True, stopped_by=id_tag)
            elif f.session.parent_id_tag is not None and f.pending_tag is None:
                # Another card of the same group may stop it: its parentIdTag comes with its authorization.
                f.pending_tag = id_tag
                out.append(AuthorizeTag(id_tag))
            return
        if f.pending_tag is not None or f.faults or not f.operative or not f.mains_present:
            return
        if f.authorized_tag == id_tag:
            f.authorized_tag = None  # second tap before plugging in cancels
            return
        if f.reservation is not None and id_tag != f.reservation.id_tag and f.reservation.parent_id_tag is None:
            return  # held for someone else
        f.pending_tag = id_tag
        out.append(AuthorizeTag(id_tag))

    def _reservation_allows(self, id_tag: str, parent_id_tag: str | None) -> bool:
        r = self.facts.reservation
        return r is None or id_tag == r.id_tag or (r.parent_id_tag is not None and parent_id_tag == r.parent_id_tag)

    def _on_timer(self, name: TimerName, at_s: float, out: list[Command]) -> None:
        f = self.facts
        if name is TimerName.CONNECTION:
            if f.session is None:
                if f.pilot.plugged:
                    f.connection_timed_out = True
                f.authorized_tag = None
        elif name is TimerName.CONTACTOR_FEEDBACK and f.feedback_closed != self.contactor_commanded:
            self._switch_failed(f.feedback_closed, out)
        elif name is TimerName.OVERCURRENT:
            f.overcurrent_trips_s = [t for t in f.overcurrent_trips_s if at_s - t < TRIP_WINDOW_S] + [at_s]
            self._raise(Fault.OverCurrentFailure,
                        latch=len(f.overcurrent_trips_s) >= self.settings.overcurrent_trips_to_latch)
        elif name is TimerName.STOP_WAIT:
            f.stop_wait_over = True  # the EV did not stop drawing in time: open under load

    def _switch_failed(self, closed: bool, out: list[Command]) -> None:
        if closed:
            self._raise(Fault.ContactorWelded)
            # The contactor cannot cut the supply: the upstream breaker's shunt trip is the second means.
            out.append(TripShunt())
        else:
            self._raise(Fault.ContactorStuckOpen)

    def _raise(self, fault: Fault, latch: bool = False) -> None:
        self.facts.faults.add(fault)
        if latch or fault.always_latched:
            self.facts.latched.add(fault)

    def _clear_condition(self, fault: Fault) -> None:
        """The cause of ``fault`` is gone: it clears unless it latched."""
        if fault not in self.facts.latched:
            self.facts.faults.discard(fault)

    def overcurrent_limit_A(self, at_s: float) -> float:
        """The highest draw per phase tolerated now: the offer (or, while the EV follows a lower offer, the one
        before it) plus the relative margin."""
        return self._offered_within_grace_A(at_s) * (1.0 + self.settings.overcurrent_margin_percent / 100.0)

    def _offered_within_grace_A(self, at_s: float) -> float:
        """The highest offer in force at any time in the last ``overcurrent_grace_s``."""
        window_start_s = at_s - self.settings.overcurrent_grace_s
        offers = self._offers
        return max(
            offered_A for i, (_, offered_A) in enumerate(offers)
            if i == len(offers) - 1 or offers[i + 1][0] > window_start_s
        )

    def _check_overcurrent(self, sample: MeterSampled, out: list[Command]) -> None:
        # The highest phase decides: one overloaded phase is an overload whatever the others draw.
        over = self.contactor_commanded and max(sample.current_A) > self.overcurrent_limit_A(sample.at_s)
        if over:
            self._start_timer(TimerName.OVERCURRENT, self.settings.overcurrent_trip_s, out)
        else:
            self._cancel_timer(TimerName.OVERCURRENT, out)

    def _clear_latched_faults(self) -> None:
        """A technician's clearance: each latched fault whose condition is gone clears; the others stay."""
        f = self.facts
        still_present = {
            Fault.ContactorWelded: f.feedback_closed and not self.contactor_commanded,
            Fault.ContactorStuckOpen: f.feedback_closed != self.contactor_commanded,
            Fault.DiodeFailure: f.pilot is PilotState.DIODE_FAILURE,
            Fault.GroundFailure: f.rcd_tripped,
        }
        for fault in list(f.latched):
            if still_present.get(fault, False):
                continue
            f.latched.discard(fault)
            f.faults.discard(fault)
            if fault is Fault.OverCurrentFailure:
                f.overcurrent_trips_s.clear()
            if fault is Fault.GroundFailure:
                f.rcd_trips_s.clear()

    def _end_session(self, reason: str, out: list[Command], graceful: bool = False,
                     stopped_by: str | None = None) -> None:
        f = self.facts
        if f.session is None:
            return
        if graceful and self.contactor_commanded:
            if f.stopping_reason is None:
                f.stopping_reason, f.stopped_by = reason, stopped_by
                f.stop_wait_over = False
            return  # _reconcile withdraws the PWM, opens once the EV has stopped drawing, then ends the session
        if f.stopping_reason is not None:
            # The stop was asked for first; what ended the wind-down is secondary.
            reason, stopped_by = f.stopping_reason, f.stopped_by
        self._open_contactor(out)
        self._finish_session(reason, out, stopped_by)

    def _finish_session(self, reason: str, out: list[Command], stopped_by: str | None = None) -> None:
        f = self.facts
        assert f.session is not None
        stopped_by = stopped_by if f.stopping_reason is None else f.stopped_by
        f.stopping_reason = None
        f.stopped_by = None
        meter_stop_Wh = f.meter_energy_Wh if f.meter_energy_Wh is not None else f.session.meter_start_Wh
        out.append(EndSession(reason=reason, meter_stop_Wh=meter_stop_Wh, stopped_by=stopped_by))
        if reason == "EVDisconnected" and not self.settings.unlock_on_ev_disconnect and f.locked:
            # UnlockConnectorOnEVSideDisconnect=false: the cable stays locked to the socket until its owner
            # presents the card again (the EV side was unplugged, the charger side was not).
            f.locked_for = f.session.id_tag
        else:
            f.lock_wanted = False
        f.session = None
        f.authorized_tag = None
        f.authorized_parent = None
        f.finishing = f.pilot.plugged

    # ----------------------------------------------------------------- derivation

    def _pilot_may_charge(self) -> bool:
        """The EV asks for energy, and state D only where the site has ventilation (IEC 61851-1)."""
        f = self.facts
        return f.pilot_known and f.pilot.requests_energy and (
            f.pilot is not PilotState.D or self.settings.ventilation_available
        )

    def _safe_to_close(self) -> bool:
        """Safety: while this is false the contactor opens at once, under load if need be."""
        f = self.facts
        return (
            f.session is not None
            and not f.faults
            and not f.rcd_tripped
            and f.mains_present
            and self._pilot_may_charge()
            and self._lock_confirmed()
            and (f.rcd_tested or not self.settings.rcd_test_before_session)
        )

    def _energy_wanted(self) -> bool:
        """Policy: safe, not stopping and offering current. When only this is false the contactor opens gently."""
        return (
            self._safe_to_close()
            and self.facts.stopping_reason is None
            and self.pwm_duty_percent is not None
            and self._desired_duty() is not None
        )

    def _lock_confirmed(self) -> bool:
        """Locked, and no unlock still in flight (a session can begin before the last one's unlock lands)."""
        f = self.facts
        return f.locked and not f.lock_pending

    def _desired_duty(self) -> float | None:
        """The PWM to offer, or None. An offer is a promise to close on C (an EVSE board closes its relay by itself
        then), so it is withheld while a close would be held back: RCD not tested yet, closes rate-limited, state D
        without ventilation."""
        f = self.facts
        if (
            f.session is None
            or f.stopping_reason is not None
            or f.faults
            or not f.mains_present
            or not self._lock_confirmed()
            or (self.settings.rcd_test_before_session and not f.rcd_tested)
            or (TimerName.CONTACTOR_COOLDOWN in self._timers and not self.contactor_commanded)
            or (f.pilot is PilotState.D and not self.settings.ventilation_available)
        ):
            return None
        return duty_from_current(self.allowed_current_A())

    def _ev_stopped_drawing(self) -> bool:
        """A meter sample taken after the PWM went off shows no load on any phase."""
        f = self.facts
        return (
            f.max_draw_A is not None
            and self._pwm_off_at_s is not None
            and f.max_draw_at_s > self._pwm_off_at_s
            and f.max_draw_A < NO_LOAD_A
        )

    def _open_contactor(self, out: list[Command], first: bool = True) -> None:
        if self.contactor_commanded:
            self.contactor_commanded = False
            self.facts.stop_wait_over = False
            self._cancel_timer(TimerName.STOP_WAIT, out)
            self._cancel_timer(TimerName.OVERCURRENT, out)
            if first:
                out.insert(0, OpenContactor())
            else:
                out.append(OpenContactor())
            self._start_timer(TimerName.CONTACTOR_FEEDBACK, self.settings.contactor_feedback_timeout_s, out)

    def _may_operate_contactor(self, at_s: float, out: list[Command]) -> bool:
        """At most ``contactor_closes_per_min_max`` closes a minute: a flickering pilot must not chatter it."""
        self._close_times_s = [t for t in self._close_times_s if at_s - t < CONTACTOR_WINDOW_S]
        if len(self._close_times_s) < self.settings.contactor_closes_per_min_max:
            return True
        # At least a millisecond: float rounding can make "just inside the window" come out as zero.
        self._start_timer(TimerName.CONTACTOR_COOLDOWN,
                          max(0.001, self._close_times_s[0] + CONTACTOR_WINDOW_S - at_s), out)
        return False

    def _reconcile(self, out: list[Command], at_s: float) -> None:
        f = self.facts
        # 1. Safety first: anything that forbids energy opens the contactor before any other command.
        if not self._safe_to_close():
            self._open_contactor(out)
        # 2. A fault or power loss ends the session (the contactor is already open).
        if f.session is not None:
            if f.faults:
                fault = sorted(f.faults)[0]
                self._end_session(_FAULT_STOP_REASON.get(fault, "Other"), out)
            elif f.pilot_known and f.pilot is PilotState.A and self.settings.stop_on_ev_disconnect:
                self._end_session("EVDisconnected", out)
            elif f.stopping_reason is not None and not self.contactor_commanded:
                self._finish_session(f.stopping_reason, out)
        # 3. Free vend: plugging in is the authorization.
        if (
            self.settings.free_vend_id_tag is not None
            and f.pilot.plugged
            and f.session is None
            and f.authorized_tag is None
            and not f.finishing
            and f.reservation is None
        ):
            f.authorized_tag = self.settings.free_vend_id_tag
        # 4. Begin a session once authorized, plugged and healthy.
        if (
            f.session is None
            and f.authorized_tag is not None
            and f.pilot_known
            and f.pilot.plugged
            and not f.faults
            and f.operative
            and f.mains_present
            and f.meter_energy_Wh is not None
        ):
            f.session = ActiveSession(f.authorized_tag, f.authorized_parent, f.meter_energy_Wh, at_s)
            f.finishing = False
            f.lock_wanted = True
            f.unlock_requested = False
            reservation_id = None if f.reservation is None else f.reservation.reservation_id
            f.reservation = None  # used up by this session
            out.append(BeginSession(id_tag=f.authorized_tag, meter_start_Wh=f.meter_energy_Wh,
                                    reservation_id=reservation_id))
            if self.settings.rcd_test_before_session:
                f.rcd_tested = False
                out.append(RunRcdTest())
        # 5. Lock follows the session (a tethered cable's lock port succeeds at once); never release a plug whose
        #    contacts may be live (closed, welded, or not known yet after a restart).
        self._reconcile_lock(out)
        # 6. Pilot output (none while the closes of the last minute are used up and the contactor is open: an EVSE
        #    board would close by itself the moment the EV asks).
        if not self.contactor_commanded:
            self._may_operate_contactor(at_s, out)
        self._reconcile_pilot(out, at_s)
        # 7. Not a safety matter (a stop, a limit below 6 A): the PWM is off; open once the EV has stopped drawing,
        #    or when it has had stop_wait_s to do so.
        if self.contactor_commanded and not self._energy_wanted():
            if self._ev_stopped_drawing() or f.stop_wait_over:
                self._open_contactor(out, first=False)
                if f.session is not None and f.stopping_reason is not None:
                    self._finish_session(f.stopping_reason, out)
                    self._reconcile_lock(out)
            else:
                self._start_timer(TimerName.STOP_WAIT, self.settings.stop_wait_s, out)
        # 8. Close only now that the pilot offers current.
        if self._energy_wanted() and not self.contactor_commanded:
            if self._may_operate_contactor(at_s, out):
                self.contactor_commanded = True
                self._close_times_s.append(at_s)
                out.append(CloseContactor())
                self._start_timer(TimerName.CONTACTOR_FEEDBACK, self.settings.contactor_feedback_timeout_s, out)
            else:
                self._reconcile_pilot(out, at_s)  # held back: withdraw the offer until the cooldown is over
        # 9. Connection timeout while one half of (plugged, authorized) is missing.
        waiting = f.session is None and (
            (f.pilot.plugged and not f.finishing and not f.connection_timed_out)
            or (f.authorized_tag is not None and not f.pilot.plugged)
        )
        if waiting and self.settings.free_vend_id_tag is None:
            self._start_timer(TimerName.CONNECTION, self.settings.connection_timeout_s, out)
        elif not waiting:
            self._cancel_timer(TimerName.CONNECTION, out)
        # 10. Status.
        self._update_status(out)

    def _reconcile_lock(self, out: list[Command]) -> None:
        f = self.facts
        live = self.contactor_commanded or f.feedback_closed or not f.feedback_known
        if f.unlock_requested and not f.lock_pending:
            if Fault.ContactorWelded in f.faults:
                f.unlock_requested = False
                out.append(UnlockRefused("the contactor is welded: the plug may be live"))
            elif not live:
                f.unlock_requested = False
                f.lock_wanted = False
                f.locked_for = None
                f.lock_pending = True
                out.append(UnlockConnector())
            return  # live but not welded: a stop is winding down, the unlock follows the contactor
        if f.lock_pending or Fault.ConnectorLockFailure in f.faults:
            return
        if f.lock_wanted and not f.locked:
            f.lock_pending = True
            out.append(LockConnector())
        elif not f.lock_wanted and f.locked and not live and f.locked_for is None:
            f.lock_pending = True
            out.append(UnlockConnector())

    def _reconcile_pilot(self, out: list[Command], at_s: float) -> None:
        f = self.facts
        negative = bool(f.faults & _NEGATIVE_PILOT_FAULTS)
        duty = None if negative else self._desired_duty()
        if negative:
            if not self.pilot_negative:
                self._note_offer_change(at_s, 0.0)
                self.pilot_negative = True
                self.pwm_duty_percent = None
                out.append(SetPilotNegative())
            return
        if self.pilot_negative or (duty is None and self.pwm_duty_percent is not None):
            self._note_offer_change(at_s, 0.0)
            self._pwm_off_at_s = at_s
            self.pilot_negative = False
            self.pwm_duty_percent = None
            out.append(SetPilotHigh())
        if duty is None or duty == self.pwm_duty_percent:
            self._cancel_timer(TimerName.PWM_UPDATE, out)
            return
        over_hard_limit = self.offered_current_A > min(self.settings.max_current_A, self.cable_limit_A())
        if self.pwm_duty_percent is not None and self._last_pwm_change_s is not None and not over_hard_limit:
            wait_s = self._last_pwm_change_s + self.settings.pwm_min_update_interval_s - at_s
            if wait_s > 0:
                # The EV needs time to follow each change; bunch changes into one every interval.
                self._start_timer(TimerName.PWM_UPDATE, wait_s, out)
                return
        self._note_offer_change(at_s, current_from_duty(duty))
        self._pwm_off_at_s = None
        self.pwm_duty_percent = duty
        out.append(SetPwm(duty))

    def _note_offer_change(self, at_s: float, offered_A: float) -> None:
        """Remember the new offer; the ones that left the grace window are forgotten."""
        window_start_s = at_s - self.settings.overcurrent_grace_s
        offers = [*self._offers, (at_s, offered_A)]
        while len(offers) > 1 and offers[1][0] <= window_start_s:
            offers.pop(0)
        self._offers = offers
        self._last_pwm_change_s = at_s

    def _derive_status(self) -> ConnectorStatus:
        f = self.facts
        if f.faults:
            return S.Faulted
        if not f.mains_present or (not f.operative and f.session is None):
            return S.Unavailable
        if f.session is not None:
            if not self._lock_confirmed():
                # Not locked yet: still preparing. Lock lost mid-session: the EVSE is what suspends.
                return S.SuspendedEVSE if self.state in _SESSION_STATES else S.Preparing
            if self.pwm_duty_percent is None:
                return S.SuspendedEVSE
            if f.pilot.requests_energy:
                if not self._pilot_may_charge():
                    return S.SuspendedEVSE  # state D where no ventilation is available
                if self.contactor_commanded and f.feedback_closed:
                    return S.Charging
                if self.contactor_commanded:
                    return self.state if self.state in _SESSION_STATES else S.SuspendedEV
                return S.SuspendedEVSE
            return S.SuspendedEV
        if f.finishing:
            return S.Finishing
        if f.authorized_tag is not None:
            return S.Preparing
        if f.reservation is not None:
            return S.Reserved
        if f.pilot.plugged and not f.connection_timed_out:
            return S.Preparing
        return S.Available

    def _update_status(self, out: list[Command]) -> None:
        status = self._derive_status()
        if status != self.state:
            getattr(self, _TRIGGER[status])()
        reported = (self.state, self.error_code)
        if reported != self._reported:
            self._reported = reported
            out.append(ReportStatus(status=self.state, error_code=self.error_code))

    # ----------------------------------------------------------------- timers

    def _start_timer(self, name: TimerName, duration_s: float, out: list[Command]) -> None:
        if name in self._timers and name is not TimerName.CONTACTOR_FEEDBACK:
            return
        self._timers.add(name)
        out.append(StartTimer(name, duration_s))

    def _cancel_timer(self, name: TimerName, out: list[Command]) -> None:
        if name in self._timers:
            self._timers.discard(name)
            out.append(CancelTimer(name))


_SESSION_STATES = frozenset({S.Charging, S.SuspendedEV, S.SuspendedEVSE})
