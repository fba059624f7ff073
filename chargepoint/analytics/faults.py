"""Fault periods from the fault log: each fault with its code, start, end and duration (the log has one line per
raise, latch and clearance)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class FaultLine:
    at: datetime
    connector_id: int
    code: str
    action: str  # raised, latched or cleared
    source: str


@dataclass(frozen=True, slots=True)
class FaultPeriod:
    connector_id: int
    code: str
    start: datetime
    end: datetime | None  # None: still active
    latched: bool
    raised_by: str
    cleared_by: str | None

    def duration_s(self, now: datetime) -> float:
        return ((self.end or now) - self.start).total_seconds()


def fault_periods(lines: Iterable[FaultLine]) -> list[FaultPeriod]:
    """Pair each raise with the clearance of the same code on the same connector, oldest first. A clearance with
    no raise before it (the log was pruned) is left out; a fault raised again while active stays one period."""
    open_: dict[tuple[int, str], tuple[datetime, bool, str]] = {}
    periods: list[FaultPeriod] = []
    for line in sorted(lines, key=lambda line: line.at):
        key = (line.connector_id, line.code)
        if line.action == "raised":
            open_.setdefault(key, (line.at, False, line.source))
        elif line.action == "latched" and key in open_:
            start, _, source = open_[key]
            open_[key] = (start, True, source)
        elif line.action == "cleared" and key in open_:
            start, latched, source = open_.pop(key)
            periods.append(FaultPeriod(line.connector_id, line.code, start, line.at, latched, source, line.source))
    for (connector_id, code), (start, latched, source) in open_.items():
        periods.append(FaultPeriod(connector_id, code, start, None, latched, source, None))
    return sorted(periods, key=lambda p: (p.start, p.connector_id))
