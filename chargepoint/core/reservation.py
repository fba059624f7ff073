"""A reservation of a connector for one idTag (or its group) until an expiry time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Reservation:
    """``connector_id`` 0 is never stored: a reservation of the whole charger holds one connector."""

    reservation_id: int
    connector_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry_date: datetime  # timezone-aware, on the charger's clock
