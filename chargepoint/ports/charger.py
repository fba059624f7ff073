"""What an adapter may ask of the charger: the state of its connectors, and requests it may make.

Requests are intents, not core events: the runtime turns them into what its state machine understands. Every
method returns quickly; those that wait for the hardware (``unlock``) or the store are coroutines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chargepoint.core.commands import ConnectorStatus
from chargepoint.core.metering import MeterReading
from chargepoint.core.reservation import Reservation
from chargepoint.ports.pricing import ChargerPricing


class SessionView(Protocol):
    """A running session as an adapter sees it."""

    @property
    def id_tag(self) -> str: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def meter_start_Wh(self) -> int: ...

    @property
    def session_id(self) -> str | None:
        """The charger's own id, once the session's record is written."""
        ...

    @property
    def csms_transaction_id(self) -> int | None:
        """The CSMS's id, once it confirmed the start (see ``ChargerPort.transaction_confirmed``)."""
        ...


class ConnectorView(Protocol):
    """One connector, live: every read gives the state now."""

    @property
    def connector_id(self) -> int: ...

    @property
    def status(self) -> ConnectorStatus: ...

    @property
    def error_code(self) -> str: ...

    @property
    def offered_current_A(self) -> float:
        """What the pilot's duty cycle allows the EV to draw now (0 when not offering)."""
        ...

    @property
    def session(self) -> SessionView | None: ...

    @property
    def last_reading(self) -> MeterReading | None: ...


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Rules a backend may change at run time (OCPP 1.6: ConnectionTimeOut, StopTransactionOnEVSideDisconnect,
    UnlockConnectorOnEVSideDisconnect)."""

    connection_timeout_s: float
    stop_on_ev_disconnect: bool
    unlock_on_ev_disconnect: bool


class ChargerPort(Protocol):
    @property
    def connectors(self) -> Mapping[int, ConnectorView]: ...

    @property
    def pricing(self) -> ChargerPricing: ...

    def status(self) -> dict[str, Any]:
        """The status document that ``chargepoint status --json`` prints (also put in diagnostics)."""
        ...

    # ----------------------------------------------------------------- transactions

    def claim_remote_start(self, connector_id: int, id_tag: str) -> bool:
        """Whether a remote start for ``id_tag`` may begin on ``connector_id`` as far as the charger's own rules go
        (a paid QR code's idTag must be valid, unused and for that connector; it is used up here)."""
        ...

    def start_refused(self, connector_id: int, why: str) -> None:
        """A remote start turned down because no connector could take it (busy, faulted, unavailable; connector 0:
        none named or free): the usage reports count such attempts as drivers turned away."""
        ...

    def start_remotely(self, connector_id: int, id_tag: str, pre_authorized: bool) -> None:
        """Start a session for ``id_tag`` when the EV is (or gets) plugged in; authorize it first unless
        ``pre_authorized``."""
        ...

    def stop_transaction(self, connector_id: int, reason: str) -> None:
        """End the connector's session (if any) with ``reason`` (Remote, DeAuthorized ...)."""
        ...

    def transaction_confirmed(self, connector_id: int, session_id: str, transaction_id: int) -> None:
        """The CSMS gave the session ``session_id`` its transaction id."""
        ...

    def deauthorize(self, connector_id: int, stop: bool) -> None:
        """The CSMS called the running session's idTag invalid: stop it, or (``stop`` False) keep it and deliver
        no more energy."""
        ...

    # ----------------------------------------------------------------- limits and rules

    def set_current_limit(self, connector_id: int, source: str, limit_A: float | None) -> None:
        """A limit from ``source`` (smart charging ...) on the current offered; None lifts it. The lowest limit of
        all sources applies."""
        ...

    def apply_policy(self, policy: SessionPolicy) -> None: ...

    # ----------------------------------------------------------------- availability, connector, reservations

    async def set_operative(self, connector_ids: Sequence[int], operative: bool) -> None:
        """Change availability, persisted; a running session finishes first."""
        ...

    async def unlock(self, connector_id: int) -> str:
        """``Unlocked``, ``UnlockFailed`` or ``NotSupported`` (tethered cable)."""
        ...

    async def reserve(self, reservation: Reservation) -> str:
        """``Accepted``, ``Faulted``, ``Occupied``, ``Unavailable`` or ``Rejected``; connector 0: any free one."""
        ...

    async def cancel_reservation(self, reservation_id: int) -> bool: ...

    def reservation_on(self, connector_id: int) -> Reservation | None:
        """The reservation that holds ``connector_id`` now, if any."""
        ...

    # ----------------------------------------------------------------- the whole charger

    async def reset(self, hard: bool) -> None:
        """End every session (reason HardReset or SoftReset), then restart the firmware in place (also after a
        firmware update is installed)."""
        ...
