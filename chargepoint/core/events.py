"""Events the core reacts to. Past tense, frozen; each carries the monotonic time it happened at."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from chargepoint.core.pilot import PilotState


@dataclass(frozen=True, slots=True)
class PilotChanged:
    state: PilotState
    at_s: float


@dataclass(frozen=True, slots=True)
class PilotFailed:
    """The pilot sampler stopped delivering readings (ADC or board link lost)."""

    reason: str
    at_s: float


@dataclass(frozen=True, slots=True)
class TagPresented:
    id_tag: str
    at_s: float


@dataclass(frozen=True, slots=True)
class AuthorizationDecided:
    """The answer to an ``AuthorizeTag`` command."""

    id_tag: str
    accepted: bool
    at_s: float
    parent_id_tag: str | None = None


@dataclass(frozen=True, slots=True)
class ContactorFeedbackChanged:
    closed: bool
    at_s: float


@dataclass(frozen=True, slots=True)
class ResidualCurrentChanged:
    tripped: bool
    at_s: float


@dataclass(frozen=True, slots=True)
class MainsChanged:
    present: bool
    at_s: float


@dataclass(frozen=True, slots=True)
class MeterSampled:
    energy_Wh: int
    power_W: float
    current_A: tuple[float, float, float]
    at_s: float


@dataclass(frozen=True, slots=True)
class MeterFailed:
    reason: str
    at_s: float


@dataclass(frozen=True, slots=True)
class LockCompleted:
    """Result of a ``LockConnector`` / ``UnlockConnector`` command."""

    locked: bool
    ok: bool
    at_s: float


@dataclass(frozen=True, slots=True)
class CableChanged:
    """The proximity pilot reads a new cable rating; None: no cable (PP open)."""

    max_A: float | None
    at_s: float


@dataclass(frozen=True, slots=True)
class LockStateRead:
    """The lock position read from its sensor: at start (unknown reads as locked), then on every change."""

    locked: bool
    at_s: float


@dataclass(frozen=True, slots=True)
class SelfTested:
    """The result of a device self-test: ``check`` is "rcd" (the module tripped and reset on its test) or "pilot"
    (the generator shows both halves)."""

    check: str
    ok: bool
    at_s: float


class TimerName(enum.StrEnum):
    CONNECTION = "connection"  # authorized or plugged, waiting for the other half
    CONTACTOR_FEEDBACK = "contactor_feedback"
    PWM_UPDATE = "pwm_update"
    OVERCURRENT = "overcurrent"  # a draw above the limit that lasts this long trips
    STOP_WAIT = "stop_wait"  # PWM withdrawn: the EV has this long to stop drawing before the contactor opens anyway
    CONTACTOR_COOLDOWN = "contactor_cooldown"  # too many closes in the last minute: wait before the next


@dataclass(frozen=True, slots=True)
class TimerExpired:
    name: TimerName
    at_s: float


@dataclass(frozen=True, slots=True)
class CurrentLimitChanged:
    """An external limit (load management, smart charging, operator) changed; None removes it."""

    source: str
    current_A: float | None
    at_s: float


@dataclass(frozen=True, slots=True)
class AvailabilityChanged:
    operative: bool
    at_s: float


@dataclass(frozen=True, slots=True)
class StopRequested:
    """Stop the running session (remote stop, shutdown, reset). ``reason`` uses the OCPP vocabulary."""

    reason: str
    at_s: float


@dataclass(frozen=True, slots=True)
class LimitReached:
    """A session limit (cost, energy, duration) was reached: stop gracefully, PWM off before the contactor opens.

    ``reason`` is recorded as the stop reason (e.g. CostLimitReached)."""

    reason: str
    at_s: float


@dataclass(frozen=True, slots=True)
class RemoteStartRequested:
    """The CSMS asked to start a session for ``id_tag``; ``pre_authorized`` skips the Authorize round trip."""

    id_tag: str
    pre_authorized: bool
    at_s: float


@dataclass(frozen=True, slots=True)
class UnlockRequested:
    """Release the plug (OCPP UnlockConnector): ends a running session with reason UnlockCommand first."""

    at_s: float


@dataclass(frozen=True, slots=True)
class ReservationMade:
    """The connector is held for ``id_tag`` (or any card with the same non-empty ``parent_id_tag``)."""

    reservation_id: int
    id_tag: str
    parent_id_tag: str | None
    at_s: float


@dataclass(frozen=True, slots=True)
class ReservationEnded:
    """Expired or cancelled. Ignored unless ``reservation_id`` is the one in force."""

    reservation_id: int
    at_s: float


@dataclass(frozen=True, slots=True)
class FaultsCleared:
    """A technician cleared latched faults (weld, repeated over-current ...) after inspection."""

    at_s: float
    source: str = "technician"  # who cleared them, for the fault log


@dataclass(frozen=True, slots=True)
class LatchedFaultsRestored:
    """Latched faults stored before a restart: they stay until cleared, whatever the restart."""

    faults: tuple[str, ...]
    at_s: float


Event = (
    PilotChanged
    | PilotFailed
    | TagPresented
    | AuthorizationDecided
    | ContactorFeedbackChanged
    | ResidualCurrentChanged
    | MainsChanged
    | MeterSampled
    | MeterFailed
    | LockCompleted
    | TimerExpired
    | CurrentLimitChanged
    | AvailabilityChanged
    | StopRequested
    | LimitReached
    | RemoteStartRequested
    | UnlockRequested
    | ReservationMade
    | ReservationEnded
    | FaultsCleared
    | LatchedFaultsRestored
    | CableChanged
    | LockStateRead
    | SelfTested
)
