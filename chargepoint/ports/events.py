"""What the charger tells its adapters: one frozen value per happening, past tense, with its wall time.

Listeners are called on the event loop, in the order things happened, right after the hardware acted (the
contactor has already opened when ``TransactionEnded`` arrives). A listener must return at once: anything
slow (a message to send, a file to write) it schedules itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chargepoint.core.commands import ConnectorStatus
from chargepoint.core.metering import MeterReading


@dataclass(frozen=True, slots=True)
class StatusChanged:
    connector_id: int
    status: ConnectorStatus
    error_code: str  # OCPP ChargePointErrorCode; "NoError" unless faulted
    at: datetime
    causes: tuple[str, ...] = ()
    """Our own codes behind a Faulted or Unavailable status, the deciding one first: Faulted, the connector's active
    faults (``chargepoint.core.commands.Fault``: ContactorWelded, GroundFailure, RcdTestFailed ...; the first is the
    one ``error_code`` reports); Unavailable, why (MainsLost, StorageFull, Inoperative). Empty otherwise."""


@dataclass(frozen=True, slots=True)
class TransactionStarted:
    """A session began. Its durable record (and its transaction messages) is written right after."""

    connector_id: int
    id_tag: str
    meter_start_Wh: int
    reservation_id: int | None
    at: datetime


@dataclass(frozen=True, slots=True)
class TransactionEnded:
    """A session ended. ``session_id`` is None if it ended before its record was written."""

    connector_id: int
    session_id: str | None
    id_tag: str
    reason: str  # the stop reason as recorded (may be finer than a protocol's: CostLimitReached ...)
    meter_stop_Wh: int
    ev_unplugged: bool  # the EV had already left the connector when the session ended
    at: datetime


@dataclass(frozen=True, slots=True)
class MeterRead:
    connector_id: int
    reading: MeterReading
    at: datetime


@dataclass(frozen=True, slots=True)
class FaultRaised:
    connector_id: int
    error_code: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FaultCleared:
    connector_id: int
    error_code: str  # the fault that cleared
    at: datetime


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """A security-relevant happening, named as OCPP's security event list names it (``StartupOfTheDevice``,
    ``ResetOrReboot`` ...)."""

    kind: str
    detail: str
    at: datetime


ChargerEvent = (
    StatusChanged | TransactionStarted | TransactionEnded | MeterRead | FaultRaised | FaultCleared | SecurityEvent
)


class ChargerListener(Protocol):
    def charger_event(self, event: ChargerEvent) -> None:
        """Take one event; return at once (see the module's docstring)."""
        ...
