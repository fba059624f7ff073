"""Commands the core returns. Imperative, frozen; the runtime executes them in list order."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from chargepoint.core.events import TimerName


class ConnectorStatus(enum.StrEnum):
    """OCPP 1.6 ChargePointStatus vocabulary."""

    Available = "Available"
    Preparing = "Preparing"
    Charging = "Charging"
    SuspendedEV = "SuspendedEV"
    SuspendedEVSE = "SuspendedEVSE"
    Finishing = "Finishing"
    Reserved = "Reserved"
    Unavailable = "Unavailable"
    Faulted = "Faulted"


class Fault(enum.StrEnum):
    """Active fault conditions of a connector."""

    GroundFailure = "GroundFailure"
    PilotShort = "PilotShort"
    PilotNegative = "PilotNegative"
    DiodeFailure = "DiodeFailure"
    ContactorStuckOpen = "ContactorStuckOpen"  # commanded closed, the mirror contact says open
    ContactorWelded = "ContactorWelded"  # commanded open, the mirror contact says closed
    PowerMeterFailure = "PowerMeterFailure"
    ConnectorLockFailure = "ConnectorLockFailure"
    OverCurrentFailure = "OverCurrentFailure"
    PilotLost = "PilotLost"
    RcdTestFailed = "RcdTestFailed"  # the RCD module did not trip (or reset) on its test
    PilotTestFailed = "PilotTestFailed"  # the pilot generator's self-test failed (no -12 V half, dead PWM)

    @classmethod
    def _missing_(cls, value: object) -> Fault | None:
        # Before the two contactor failures had names of their own, stuck-open was stored as "PowerSwitchFailure".
        return cls.ContactorStuckOpen if value == "PowerSwitchFailure" else None

    @property
    def error_code(self) -> str:
        """The OCPP 1.6 ChargePointErrorCode this fault reports as (both contactor failures: PowerSwitchFailure;
        StatusNotification's vendorErrorCode tells them apart)."""
        return _ERROR_CODES[self]

    @property
    def always_latched(self) -> bool:
        """These latch at once: they stay until a technician clears them. Over-current and RCD trips latch when
        they repeat (``ConnectorSettings``); every other fault clears with its cause."""
        return self in (Fault.ContactorWelded, Fault.ContactorStuckOpen, Fault.DiodeFailure, Fault.RcdTestFailed,
                        Fault.PilotTestFailed)


_ERROR_CODES = {
    Fault.GroundFailure: "GroundFailure",
    Fault.PilotShort: "EVCommunicationError",
    Fault.PilotNegative: "EVCommunicationError",
    Fault.DiodeFailure: "EVCommunicationError",
    Fault.ContactorStuckOpen: "PowerSwitchFailure",
    Fault.ContactorWelded: "PowerSwitchFailure",
    Fault.PowerMeterFailure: "PowerMeterFailure",
    Fault.ConnectorLockFailure: "ConnectorLockFailure",
    Fault.OverCurrentFailure: "OverCurrentFailure",
    Fault.PilotLost: "InternalError",
    Fault.RcdTestFailed: "GroundFailure",
    Fault.PilotTestFailed: "InternalError",
}


@dataclass(frozen=True, slots=True)
class OpenContactor:
    pass


@dataclass(frozen=True, slots=True)
class CloseContactor:
    pass


@dataclass(frozen=True, slots=True)
class SetPwm:
    duty_percent: float


@dataclass(frozen=True, slots=True)
class SetPilotHigh:
    """Constant +12 V (X1): PWM off."""


@dataclass(frozen=True, slots=True)
class SetPilotNegative:
    """Constant -12 V: state F, EVSE not available."""


@dataclass(frozen=True, slots=True)
class LockConnector:
    pass


@dataclass(frozen=True, slots=True)
class UnlockConnector:
    pass


@dataclass(frozen=True, slots=True)
class TripShunt:
    """Drive the second means of disconnection (shunt trip of the upstream breaker): the contactor is welded."""


@dataclass(frozen=True, slots=True)
class RunRcdTest:
    """Run the RCD module's self-test (before a session may close the contactor); the answer is ``SelfTested``."""


@dataclass(frozen=True, slots=True)
class UnlockRefused:
    """An unlock request that must not be carried out (the plug may be live)."""

    reason: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: TimerName
    duration_s: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: TimerName


@dataclass(frozen=True, slots=True)
class AuthorizeTag:
    id_tag: str


@dataclass(frozen=True, slots=True)
class BeginSession:
    id_tag: str
    meter_start_Wh: int
    reservation_id: int | None = None  # the reservation this session uses up


@dataclass(frozen=True, slots=True)
class EndSession:
    reason: str
    meter_stop_Wh: int
    stopped_by: str | None = None  # the idTag that asked for the stop (a card of the group may stop another's)


@dataclass(frozen=True, slots=True)
class RecordMeter:
    """Persist the session's latest meter reading (what a power cut would leave as meter stop)."""

    energy_Wh: int


@dataclass(frozen=True, slots=True)
class ReportStatus:
    status: ConnectorStatus
    error_code: str  # OCPP ChargePointErrorCode, "NoError" unless Faulted
    info: str = ""


Command = (
    OpenContactor
    | CloseContactor
    | SetPwm
    | SetPilotHigh
    | SetPilotNegative
    | LockConnector
    | UnlockConnector
    | TripShunt
    | RunRcdTest
    | UnlockRefused
    | StartTimer
    | CancelTimer
    | AuthorizeTag
    | BeginSession
    | EndSession
    | RecordMeter
    | ReportStatus
)
