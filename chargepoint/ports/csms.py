"""What the charger asks of the adapter that connects it to its CSMS (OCPP 1.6 today, OCPP 2.0.1 later).

A charger has one such adapter, or none (standalone). Besides the requests below, the adapter hears every
``ChargerEvent`` and keeps the transaction journal: the charger writes the messages it builds in the same
SQLite transaction as the session change that causes them, so a power cut can lose neither.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from chargepoint.ports.events import ChargerListener
from chargepoint.ports.pricing import CsmsPrices
from chargepoint.store import OutboxMessage, SessionRecord


class Authorization(NamedTuple):
    accepted: bool
    parent_id_tag: str | None  # the card's group, if the backend (or its cached answer) names one


class TransactionJournal(Protocol):
    """Messages built for the store, to be written with the session change that causes them."""

    def start_messages(self, connector_id: int, id_tag: str, meter_start_Wh: int, at: datetime,
                       reservation_id: int | None = None) -> Callable[[str], Sequence[OutboxMessage]]:
        """The messages of a session start; called with the session's id once the store has made it."""
        ...

    def stop_messages(self, record: SessionRecord) -> Sequence[OutboxMessage]:
        """The messages of a session end (also of one closed after a crash, at the next start)."""
        ...

    def journal_changed(self) -> None:
        """The store has written messages: time to deliver them."""
        ...


class CsmsAdapter(TransactionJournal, ChargerListener, Protocol):
    @property
    def connected(self) -> bool:
        """The link is up and the CSMS accepted the charger."""
        ...

    @property
    def prices(self) -> CsmsPrices: ...

    def link_state(self) -> dict[str, Any]:
        """For ``chargepoint status``: {"connected", "since" (ISO 8601: when it last went up or down),
        "last_error" (why the link last failed, or None), "last_error_at"}."""
        ...

    async def load(self) -> None:
        """Restore what the adapter persisted (before the charger recovers sessions or starts its loops)."""
        ...

    async def run(self) -> None:
        """Connect, and keep connected, until cancelled."""
        ...

    async def authorize(self, id_tag: str) -> Authorization:
        """Whether ``id_tag`` may charge: the backend's answer, or its offline rules when it cannot be asked."""
        ...

    async def deliver_queued(self, timeout_s: float) -> bool:
        """Before the charger stops or resets: deliver what the journal holds (the StopTransactions just written)
        while the link is up, so the CSMS hears them before the next BootNotification. True if all went within
        ``timeout_s``; at once False when not connected (they wait in the journal, as always)."""
        ...

    def request_meter_values(self, connector_id: int) -> None:
        """Send the connector's meter values now (the CSMS asked for them at a threshold it set)."""
        ...
