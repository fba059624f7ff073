"""The recorded history as status segments per connector, in one pass over time-ordered events.

A year of a busy charger is half a million events: they are streamed through here one at a time, never held in a
list, so that reports run in little memory on a small board; and times are plain seconds since the epoch (UTC) on
this path, not datetime objects, which would cost more than all the rest. Reports consume the closed segments as
they come.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

CHARGER_OFF = "Off"  # the pseudo-status of a port while the charger itself does not run


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded event (see chargepoint/store/history.py for the kinds); connector 0 is the charger."""

    at: datetime
    connector_id: int
    kind: str
    value: str
    detail: str = ""

    def mark(self) -> Mark:
        return Mark(self.at.timestamp(), self.connector_id, self.kind, self.value, self.detail)


class Mark(NamedTuple):
    """An event on the fast path: ``at`` in seconds since the epoch."""

    at: float
    connector_id: int
    kind: str
    value: str
    detail: str


class Segment(NamedTuple):
    connector_id: int
    start: float  # seconds since the epoch
    end: float
    status: str  # an OCPP status, or CHARGER_OFF
    cause: str  # Faulted: the error code; Unavailable: mains, inoperative; Off: mains, unknown, stopped (...)


def to_datetime(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


class Timeline:
    """Feed events in time order (``feed``), then ``finish``; each yields the segments it closed.

    Before the first event the charger is taken as not yet installed: the period begins at the first boot, or at
    the period's start when the first event is a status recorded before it (the state the period began in).
    """

    def __init__(self, connector_ids: Iterable[int], start: float, end: float) -> None:
        if not start < end:
            raise ValueError(f"period from {to_datetime(start).isoformat()} to {to_datetime(end).isoformat()}: "
                             "the end must be later")
        self.start, self.end = start, end
        self.in_service: float | None = None
        self.status = {c: CHARGER_OFF for c in connector_ids}
        self._cause = {c: "unknown" for c in self.status}
        self._at = {c: start for c in self.status}
        self._grid_lost = {c: False for c in self.status}

    def _close(self, connector_id: int, until: float) -> Segment | None:
        until = min(max(until, self.start), self.end)
        at = self._at[connector_id]
        segment = None
        if self.in_service is not None and until > at:
            segment = Segment(connector_id, max(at, self.in_service), until, self.status[connector_id],
                              self._cause[connector_id])
        if until > at:
            self._at[connector_id] = until
        return segment

    def _begin_service(self, at: float) -> None:
        self.in_service = max(at, self.start)
        for c in self._at:
            self._at[c] = max(self._at[c], self.in_service)

    def feed(self, e: Mark) -> list[Segment]:
        closed: list[Segment] = []
        kind = e.kind
        if kind == "status":
            c = e.connector_id
            if c in self.status:
                if self.in_service is None:
                    self._begin_service(self.start)
                segment = self._close(c, e.at)
                if segment is not None:
                    closed.append(segment)
                self.status[c], self._cause[c] = e.value, e.detail
        elif kind == "boot":
            if self.in_service is None:
                self._begin_service(e.at)
            for c in self.status:
                segment = self._close(c, e.at)
                if segment is not None:
                    closed.append(segment)
                self.status[c], self._cause[c] = "Available", ""  # until its first status, moments later
        elif kind in ("down", "stop"):
            if self.in_service is None:
                return closed
            for c in self.status:
                segment = self._close(c, e.at)
                if segment is not None:
                    closed.append(segment)
                self.status[c] = CHARGER_OFF
                if kind == "stop":
                    self._cause[c] = f"stopped ({e.value})"
                else:
                    self._cause[c] = "mains" if e.value == "mains" or self._grid_lost[c] else e.value
        elif kind == "mains" and e.connector_id in self.status:
            self._grid_lost[e.connector_id] = e.value == "lost"
        return closed

    def finish(self) -> Iterator[Segment]:
        for c in self.status:
            segment = self._close(c, self.end)
            if segment is not None:
                yield segment
