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
    FaultsCleared,
    LimitReached,
    LockCompleted,
    MainsChanged,
    MeterFailed,
    MeterSampled,
    PilotChanged,
    PilotFailed,
    RemoteStartRequested,
    ReservationEnded,
    ReservationMade,
    ResidualCurrentChanged,
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
    S.Charging: [S.Available, S.Preparing, S.SuspendedEV, S.SuspendedEVSE, S.Finishing, S.Unavailable, S.Faulted],
    S.SuspendedEV: [S.Available, S.Preparing, S.Charging, S.SuspendedEVSE, S.Finishing, S.Unavailable, S.Faulted],
    S.SuspendedEVSE: [S.Available, S.Preparing, S.Charging, S.SuspendedEV, S.Finishing, S.Unavailable, S.Faulted],
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
    Fault.PowerSwitchFailure: "EmergencyStop",
    Fault.OverCurrentFailure: "EmergencyStop",
}
# Faults during which the pilot is driven to -12 V (state F) so the EV sees "EVSE not available".
_NEGATIVE_PILOT_FAULTS = frozenset({Fault.GroundFailure, Fault.ContactorWelded})
_PILOT_FAULTS = {
    PilotState.E: Fault.PilotShort,
    PilotState.F: Fault.PilotNegative,
    PilotState.DIODE_FAILURE: Fault.DiodeFailure,
}


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    """Per-connector policy. Currents in amperes, durations in seconds."""

    max_current_A: float = 32.0
    cable_rating_A: float = 32.0
    connection_timeout_s: float = 60.0
    free_vend_id_tag: str | None = None  # None: a card must be authorized
    pwm_min_update_interval_s: float = 5.0
    contactor_feedback_timeout_s: float = 0.5
    overcurrent_margin_A: float = 2.0
    overcurrent_grace_s: float = 5.0  # IEC 61851-1: the EV has 5 s to follow a lower duty cycle
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
    rcd_tripped: bool = False
    mains_present: bool = True
    operative: bool = True
    faults: set[Fault] = field(default_factory=set)
    pending_tag: str | None = None
    authorized_tag: str | None = None
    authorized_parent: str | None = None
    session: ActiveSession | None = None
    finishing: bool = False  # session ended, EV still plugged
    connection_timed_out: bool = False
    limits_A: dict[str, float] = field(default_factory=dict)
    meter_energy_Wh: int | None = None
    overcurrent_since_s: float | None = None
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

    def allowed_current_A(self) -> float:
        """min(configured maximum, cable rating, every external limit)."""
        return min([self.settings.max_current_A, self.settings.cable_rating_A, *self.facts.limits_A.values()])

    @property
    def error_code(self) -> str:
        faults = sorted(self.facts.faults)
        return faults[0].error_code if faults else "NoError"

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
                f.faults.add(Fault.PilotLost)
            case TagPresented(id_tag=id_tag):
                self._on_tag(id_tag, out, event.at_s)
            case AuthorizationDecided(id_tag=id_tag, accepted=accepted, parent_id_tag=parent):
                if id_tag == f.pending_tag:
                    f.pending_tag = None
                    if f.session is not None:
                        if parent is not None and parent == f.session.parent_id_tag:
                            self._end_session("Local", out)
                    elif accepted and not f.faults and self._reservation_allows(id_tag, parent):
                        f.authorized_tag, f.authorized_parent = id_tag, parent
                        f.finishing = False
                        f.connection_timed_out = False
            case ContactorFeedbackChanged(closed=closed):
                f.feedback_closed = closed
                if closed == self.contactor_commanded:
                    self._cancel_timer(TimerName.CONTACTOR_FEEDBACK, out)
                elif TimerName.CONTACTOR_FEEDBACK not in self._timers:
                    # The contact moved without being told to: the switch cannot be trusted.
                    f.faults.add(Fault.ContactorWelded if closed else Fault.PowerSwitchFailure)
            case ResidualCurrentChanged(tripped=tripped):
                f.rcd_tripped = tripped
                if tripped:
                    f.faults.add(Fault.GroundFailure)
                else:
                    f.faults.discard(Fault.GroundFailure)
            case MainsChanged(present=present):
                f.mains_present = present
                if not present:
                    self._end_session("PowerLoss", out)
            case MeterSampled():
                f.faults.discard(Fault.PowerMeterFailure)
                f.meter_energy_Wh = event.energy_Wh
                self._check_overcurrent(event)
                if f.session is not None:
                    out.append(RecordMeter(event.energy_Wh))
            case MeterFailed():
                f.faults.add(Fault.PowerMeterFailure)
            case LockCompleted(locked=locked, ok=ok):
                f.lock_pending = False
                if ok:
                    f.locked = locked
                else:
                    f.faults.add(Fault.ConnectorLockFailure)
            case TimerExpired(name=name):
                self._timers.discard(name)
                self._on_timer(name, event.at_s)
            case CurrentLimitChanged(source=source, current_A=current_A):
                if current_A is None:
                    f.limits_A.pop(source, None)
                else:
                    f.limits_A[source] = max(0.0, current_A)
            case AvailabilityChanged(operative=operative):
                f.operative = operative
            case StopRequested(reason=reason):
                self._end_session(reason, out)
                f.authorized_tag = None
            case LimitReached(reason=reason):
                if f.session is not None:
                    # Not a fault: withdraw the PWM first so the EV sees the end of the offer, then open. The
                    # contactor still opens in this same batch, so the overshoot stays within one meter sample.
                    if self.pwm_duty_percent is not None or self.pilot_negative:
                        self.pwm_duty_percent = None
                        self.pilot_negative = False
                        self._last_pwm_change_s = event.at_s
                        out.append(SetPilotHigh())
                    self._end_session(reason, out, open_first=False)
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
                    self._end_session("UnlockCommand", out)
                    # The driver takes the cable: Finishing until it is out, no new session meanwhile (free vend).
                    f.finishing = f.pilot.plugged
                if f.locked and not f.lock_pending and not f.feedback_closed:
                    f.lock_pending = True
                    out.append(UnlockConnector())
            case ReservationMade():
                f.reservation = event
            case ReservationEnded(reservation_id=reservation_id):
                if f.reservation is not None and f.reservation.reservation_id == reservation_id:
                    f.reservation = None
            case FaultsCleared():
                self._clear_latched_faults()
        self._reconcile(out, event.at_s)
        return out

    def _on_pilot(self, state: PilotState, at_s: float) -> None:
        f = self.facts
        if self.pilot_negative and state is PilotState.F:
            return  # our own -12 V: says nothing about the EV
        f.pilot = state
        f.faults.discard(Fault.PilotLost)
        for pilot_state, fault in _PILOT_FAULTS.items():
            if state is pilot_state:
                f.faults.add(fault)
            else:
                f.faults.discard(fault)
        if state is PilotState.A:
            f.finishing = False
            f.connection_timed_out = False
            if f.session is not None:
                f.authorized_tag = None  # the stop below needs no new authorization
            f.faults.discard(Fault.ConnectorLockFailure)

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
                self._end_session("Local", out)
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

    def _on_timer(self, name: TimerName, at_s: float) -> None:
        f = self.facts
        if name is TimerName.CONNECTION:
            if f.session is None:
                if f.pilot.plugged:
                    f.connection_timed_out = True
                f.authorized_tag = None
        elif name is TimerName.CONTACTOR_FEEDBACK and f.feedback_closed != self.contactor_commanded:
            f.faults.add(Fault.ContactorWelded if f.feedback_closed else Fault.PowerSwitchFailure)

    def _check_overcurrent(self, sample: MeterSampled) -> None:
        f = self.facts
        offered_A = self.offered_current_A
        settled = (
            self._last_pwm_change_s is None
            or sample.at_s - self._last_pwm_change_s >= self.settings.overcurrent_grace_s
        )
        limit_A = offered_A + self.settings.overcurrent_margin_A
        over = self.contactor_commanded and max(sample.current_A) > limit_A
        if not (over and settled):
            f.overcurrent_since_s = None
            return
        if f.overcurrent_since_s is None:
            f.overcurrent_since_s = sample.at_s
        elif sample.at_s - f.overcurrent_since_s >= self.settings.overcurrent_grace_s:
            f.faults.add(Fault.OverCurrentFailure)

    def _clear_latched_faults(self) -> None:
        f = self.facts
        for fault in list(f.faults):
            if not fault.latched:
                continue
            if fault is Fault.ContactorWelded and f.feedback_closed and not self.contactor_commanded:
                continue  # still welded: clearing it would be a lie
            f.faults.discard(fault)
        f.overcurrent_since_s = None

    def _end_session(self, reason: str, out: list[Command], open_first: bool = True) -> None:
        f = self.facts
        if f.session is None:
            return
        self._open_contactor(out, first=open_first)
        meter_stop_Wh = f.meter_energy_Wh if f.meter_energy_Wh is not None else f.session.meter_start_Wh
        out.append(EndSession(reason=reason, meter_stop_Wh=meter_stop_Wh))
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

    def _contactor_may_close(self) -> bool:
        f = self.facts
        return (
            f.session is not None
            and not f.faults
            and not f.rcd_tripped
            and f.mains_present
            and f.pilot_known
            and f.pilot.requests_energy
            and self._lock_confirmed()
            and self._desired_duty() is not None
        )

    def _lock_confirmed(self) -> bool:
        """Locked, and no unlock still in flight (a session can begin before the last one's unlock lands)."""
        f = self.facts
        return f.locked and not f.lock_pending

    def _desired_duty(self) -> float | None:
        f = self.facts
        if f.session is None or f.faults or not f.mains_present or not self._lock_confirmed():
            return None
        return duty_from_current(self.allowed_current_A())

    def _open_contactor(self, out: list[Command], first: bool = True) -> None:
        if self.contactor_commanded:
            self.contactor_commanded = False
            if first:
                out.insert(0, OpenContactor())
            else:
                out.append(OpenContactor())
            self._start_timer(TimerName.CONTACTOR_FEEDBACK, self.settings.contactor_feedback_timeout_s, out)

    def _reconcile(self, out: list[Command], at_s: float) -> None:
        f = self.facts
        # 1. Safety first: anything that forbids energy opens the contactor before any other command.
        if not self._contactor_may_close():
            self._open_contactor(out)
        # 2. A fault or power loss ends the session.
        if f.session is not None:
            if f.faults:
                fault = sorted(f.faults)[0]
                self._end_session(_FAULT_STOP_REASON.get(fault, "Other"), out)
            elif f.pilot_known and f.pilot is PilotState.A and self.settings.stop_on_ev_disconnect:
                self._end_session("EVDisconnected", out)
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
            reservation_id = None if f.reservation is None else f.reservation.reservation_id
            f.reservation = None  # used up by this session
            out.append(BeginSession(id_tag=f.authorized_tag, meter_start_Wh=f.meter_energy_Wh,
                                    reservation_id=reservation_id))
        # 5. Lock follows the session (a tethered cable's lock port succeeds at once).
        if not f.lock_pending and Fault.ConnectorLockFailure not in f.faults:
            if f.lock_wanted and not f.locked:
                f.lock_pending = True
                out.append(LockConnector())
            elif not f.lock_wanted and f.locked and not self.contactor_commanded and not f.feedback_closed:
                # Never release a plug whose contacts may still be live (welded contactor).
                f.lock_pending = True
                out.append(UnlockConnector())
        # 6. Pilot output.
        self._reconcile_pilot(out, at_s)
        # 7. Close only now that the pilot offers current.
        if self._contactor_may_close() and not self.contactor_commanded and self.pwm_duty_percent is not None:
            self.contactor_commanded = True
            out.append(CloseContactor())
            self._start_timer(TimerName.CONTACTOR_FEEDBACK, self.settings.contactor_feedback_timeout_s, out)
        # 8. Connection timeout while one half of (plugged, authorized) is missing.
        waiting = f.session is None and (
            (f.pilot.plugged and not f.finishing and not f.connection_timed_out)
            or (f.authorized_tag is not None and not f.pilot.plugged)
        )
        if waiting and self.settings.free_vend_id_tag is None:
            self._start_timer(TimerName.CONNECTION, self.settings.connection_timeout_s, out)
        elif not waiting:
            self._cancel_timer(TimerName.CONNECTION, out)
        # 9. Status.
        self._update_status(out)

    def _reconcile_pilot(self, out: list[Command], at_s: float) -> None:
        f = self.facts
        negative = bool(f.faults & _NEGATIVE_PILOT_FAULTS)
        duty = None if negative else self._desired_duty()
        if negative:
            if not self.pilot_negative:
                self.pilot_negative = True
                self.pwm_duty_percent = None
                out.append(SetPilotNegative())
            return
        if self.pilot_negative or (duty is None and self.pwm_duty_percent is not None):
            self.pilot_negative = False
            self.pwm_duty_percent = None
            self._last_pwm_change_s = at_s
            out.append(SetPilotHigh())
        if duty is None or duty == self.pwm_duty_percent:
            self._cancel_timer(TimerName.PWM_UPDATE, out)
            return
        if self.pwm_duty_percent is not None and self._last_pwm_change_s is not None:
            wait_s = self._last_pwm_change_s + self.settings.pwm_min_update_interval_s - at_s
            if wait_s > 0:
                # The EV needs time to follow each change; bunch changes into one every interval.
                self._start_timer(TimerName.PWM_UPDATE, wait_s, out)
                return
        self.pwm_duty_percent = duty
        self._last_pwm_change_s = at_s
        out.append(SetPwm(duty))

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
