"""One connector at run time: its devices, its state machine, and what the runtime knows of its session.

``ConnectorRuntime`` is also what adapters see of a connector (``ports.charger.ConnectorView``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from chargepoint.core.commands import ConnectorStatus
from chargepoint.core.events import Event, TimerName
from chargepoint.core.metering import MeterReading
from chargepoint.core.pilot import PilotState
from chargepoint.core.session import Connector
from hal.hardware import ConnectorHardware


@dataclass(slots=True)
class SessionView:
    """What the runtime knows of a running session, for status and the session record."""

    id_tag: str
    started_at: datetime
    meter_start_Wh: int
    session_id: str | None = None
    csms_transaction_id: int | None = None
    payment_method: str = "rfid"  # rfid, card, qr, remote or free
    preauthorized: str | None = None  # card sessions: the amount the terminal reserved (Decimal as text)


@dataclass(slots=True)
class ConnectorRuntime:
    hw: ConnectorHardware
    core: Connector
    pilot_state: PilotState | None = None
    session: SessionView | None = None
    last_reading: MeterReading | None = None
    timers: dict[TimerName, asyncio.TimerHandle] = field(default_factory=dict)
    unlock_waiters: list[asyncio.Future[bool]] = field(default_factory=list)
    reported_error_code: str = "NoError"  # the last one told to the adapters, to tell faults raised and cleared
    testing: bool = False  # a technician's self-test drives the devices: their reports are held back meanwhile
    held: list[Event] = field(default_factory=list)
    # How a session about to begin for an idTag was paid for (a remote start, a QR code, a payment card).
    start_methods: dict[str, str] = field(default_factory=dict)

    @property
    def connector_id(self) -> int:
        return self.hw.connector_id

    @property
    def status(self) -> ConnectorStatus:
        return self.core.status

    @property
    def error_code(self) -> str:
        return self.core.error_code

    @property
    def offered_current_A(self) -> float:
        return self.core.offered_current_A
