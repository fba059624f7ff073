"""Availability per connector, as the US NEVI rule counts it (23 CFR 680.116(b)), from the recorded history.

    uptime % = (T - T_outage + T_excluded) / T x 100

T is the period's minutes (from the first boot ever recorded, if that came later: a charger is not down before it
was installed), T_outage the minutes the port could not charge, T_excluded the outage minutes that do not count
against the operator: grid loss, scheduled maintenance, vandalism and other operator-declared exclusions.

A port is down while the charger runs and reports it ``Faulted`` or ``Unavailable``, and while the charger does
not run at all: from a ``down`` event (its last sign of life before a power cut or crash) or a clean ``stop`` to the
next ``boot``. A port whose CSMS link is down but which still charges (offline authorization) is up, as NEVI has
it. Unavailable because mains is lost, and an outage that began after mains was reported lost, are grid losses.

Besides uptime: seconds in each OCPP status, outages with their start, end and cause, failures (faults raised and
outages of unknown cause), MTBF (up time per failure) and MTTR (counted outage time per outage), failed start
attempts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

UP_STATUSES = frozenset({"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing",
                         "Reserved"})
CHARGER_OFF = "Off"  # the pseudo-status of a port while the charger itself does not run


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded event (see chargepoint/store/history.py for the kinds); connector 0 is the charger."""

    at: datetime
    connector_id: int
    kind: str
    value: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Exclusion:
    start: datetime
    end: datetime
    connector_id: int  # 0: every connector
    reason: str  # grid, maintenance, vandalism, operator


@dataclass(frozen=True, slots=True)
class Outage:
    start: datetime
    end: datetime
    cause: str  # Faulted:<code>, Unavailable:<cause>, Off:<down cause or stop reason>
    excluded_s: float  # the part of it that does not count (grid loss, declared exclusions)

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(slots=True)
class ConnectorAvailability:
    connector_id: int
    period_s: float = 0.0
    outage_s: float = 0.0
    excluded_s: float = 0.0
    status_s: dict[str, float] = field(default_factory=dict)
    outages: list[Outage] = field(default_factory=list)
    faults: int = 0
    failed_starts: int = 0

    @property
    def uptime_percent(self) -> float | None:
        """None for a period the charger was not installed in at all."""
        if self.period_s <= 0:
            return None
        return round(100.0 * (self.period_s - self.outage_s + self.excluded_s) / self.period_s, 3)

    @property
    def failures(self) -> int:
        return self.faults + sum(1 for o in self.outages if o.cause == f"{CHARGER_OFF}:unknown")

    @property
    def mtbf_s(self) -> float | None:
        up_s = self.period_s - self.outage_s
        return None if self.failures == 0 else up_s / self.failures

    @property
    def mttr_s(self) -> float | None:
        counted = [o for o in self.outages if o.duration_s > o.excluded_s]
        return None if not counted else sum(o.duration_s - o.excluded_s for o in counted) / len(counted)


def _overlap_s(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> float:
    return max(0.0, (min(a_end, b_end) - max(a_start, b_start)).total_seconds())


def _segments(events: Sequence[Event], connector_id: int, start: datetime, end: datetime
              ) -> tuple[datetime | None, list[tuple[datetime, datetime, str, str]]]:
    """(in service since, [(from, to, status, cause)]) for one connector over [start, end)."""
    in_service: datetime | None = None
    status, cause = CHARGER_OFF, "unknown"
    grid_lost = False
    at = start
    segments: list[tuple[datetime, datetime, str, str]] = []

    def close(until: datetime) -> None:
        nonlocal at
        until = min(max(until, start), end)
        if in_service is not None and until > at:
            segments.append((max(at, in_service), until, status, cause))
        at = max(at, until)

    for e in sorted(events, key=lambda e: e.at):
        if e.connector_id not in (0, connector_id):
            continue
        if e.kind == "boot":
            if in_service is None:
                in_service = max(e.at, start)
                at = max(at, in_service)
            close(e.at)
            status, cause = "Available", ""  # until its first status arrives, moments later
        elif e.kind in ("down", "stop"):
            if in_service is None:
                continue
            close(e.at)
            status = CHARGER_OFF
            cause = "mains" if (e.kind == "down" and (e.value == "mains" or grid_lost)) else (
                e.value if e.kind == "down" else f"stopped ({e.value})")
        elif e.kind == "status" and e.connector_id == connector_id:
            if in_service is None:  # the state a period began in, recorded before it
                in_service = start
            close(e.at)
            status, cause = e.value, e.detail
        elif e.kind == "mains" and e.connector_id == connector_id:
            grid_lost = e.value == "lost"
    close(end)
    return in_service, segments


def connector_availability(events: Sequence[Event], exclusions: Iterable[Exclusion], connector_id: int,
                           start: datetime, end: datetime) -> ConnectorAvailability:
    if not start < end:
        raise ValueError(f"report period from {start.isoformat()} to {end.isoformat()}: the end must be later")
    # In UTC from here: Python subtracts two times of the same zone on the wall clock, an hour off across DST.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    events = [replace(e, at=e.at.astimezone(UTC)) for e in events]
    exclusions = [replace(x, start=x.start.astimezone(UTC), end=x.end.astimezone(UTC)) for x in exclusions]
    result = ConnectorAvailability(connector_id)
    in_service, segments = _segments(events, connector_id, start, end)
    if in_service is None:
        return result
    result.period_s = (end - in_service).total_seconds()
    declared = [x for x in exclusions if x.connector_id in (0, connector_id)]
    for seg_start, seg_end, status, cause in segments:
        seconds = (seg_end - seg_start).total_seconds()
        result.status_s[status] = result.status_s.get(status, 0.0) + seconds
        if status in UP_STATUSES:
            continue
        if cause == "mains":  # the grid's: excluded whole
            excluded = seconds
        else:
            excluded = min(seconds, sum(_overlap_s(seg_start, seg_end, x.start, x.end) for x in declared))
        result.outage_s += seconds
        result.excluded_s += excluded
        label = f"{status}:{cause}" if cause else status
        previous = result.outages[-1] if result.outages else None
        if previous is not None and previous.end == seg_start and previous.cause == label:
            result.outages[-1] = Outage(previous.start, seg_end, label, previous.excluded_s + excluded)
        else:
            result.outages.append(Outage(seg_start, seg_end, label, excluded))
    for e in events:
        if start <= e.at < end and e.connector_id == connector_id:
            if e.kind == "fault" and e.detail == "raised":
                result.faults += 1
            elif e.kind == "attempt" and e.value == "refused":
                result.failed_starts += 1
    return result


def charger_availability(per_connector: Sequence[ConnectorAvailability]) -> ConnectorAvailability:
    """The charger as a whole: the sums over its ports (so its uptime is the port-weighted mean)."""
    total = ConnectorAvailability(0)
    for c in per_connector:
        total.period_s += c.period_s
        total.outage_s += c.outage_s
        total.excluded_s += c.excluded_s
        total.faults += c.faults
        total.failed_starts += c.failed_starts
        total.outages.extend(c.outages)
        for status, seconds in c.status_s.items():
            total.status_s[status] = total.status_s.get(status, 0.0) + seconds
    return total
