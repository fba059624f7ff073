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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chargepoint.analytics.timeline import CHARGER_OFF, Event, Mark, Segment, Timeline, to_datetime

__all__ = ["CHARGER_OFF", "UP_STATUSES", "AvailabilityCounter", "ConnectorAvailability", "Event", "Exclusion",
           "Outage", "charger_availability", "connector_availability"]

UP_STATUSES = frozenset({"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing",
                         "Reserved"})


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


class AvailabilityCounter:
    """Takes the timeline's segments and the events as they stream past; ``result`` once the stream has ended."""

    def __init__(self, connector_ids: Iterable[int], exclusions: Iterable[Exclusion], start: float,
                 end: float) -> None:
        self.start, self.end = start, end
        self.ports = {c: ConnectorAvailability(c) for c in connector_ids}
        self._status_s: dict[int, dict[str, float]] = {c: {} for c in self.ports}
        declared = [(x.start.timestamp(), x.end.timestamp(), x.connector_id) for x in exclusions]
        self._declared = {c: [(a, b) for a, b, n in declared if n in (0, c)] for c in self.ports}
        self._outages: dict[int, list[list[Any]]] = {c: [] for c in self.ports}  # [start, end, cause, excluded]

    def segment(self, seg: Segment) -> None:
        seconds = seg.end - seg.start
        spent = self._status_s[seg.connector_id]
        spent[seg.status] = spent.get(seg.status, 0.0) + seconds
        if seg.status in UP_STATUSES:
            return
        if seg.cause == "mains":  # the grid's: excluded whole
            excluded = seconds
        else:
            overlap = sum(max(0.0, min(seg.end, b) - max(seg.start, a)) for a, b in self._declared[seg.connector_id])
            excluded = min(seconds, overlap)
        a = self.ports[seg.connector_id]
        a.outage_s += seconds
        a.excluded_s += excluded
        label = f"{seg.status}:{seg.cause}" if seg.cause else seg.status
        outages = self._outages[seg.connector_id]
        if outages and outages[-1][1] == seg.start and outages[-1][2] == label:
            outages[-1][1] = seg.end
            outages[-1][3] += excluded
        else:
            outages.append([seg.start, seg.end, label, excluded])

    def event(self, e: Mark) -> None:
        a = self.ports.get(e.connector_id)
        if a is None or not self.start <= e.at < self.end:
            return
        if e.kind == "fault" and e.detail == "raised":
            a.faults += 1
        elif e.kind == "attempt" and e.value == "refused":
            a.failed_starts += 1

    def result(self, in_service: float | None) -> list[ConnectorAvailability]:
        for c, a in self.ports.items():
            a.period_s = 0.0 if in_service is None else self.end - in_service
            a.status_s = self._status_s[c]
            a.outages = [Outage(to_datetime(o[0]), to_datetime(o[1]), o[2], o[3]) for o in self._outages[c]]
        return list(self.ports.values())


def connector_availability(events: Sequence[Event], exclusions: Iterable[Exclusion], connector_id: int,
                           start: datetime, end: datetime) -> ConnectorAvailability:
    """One connector's figures from events in any order (for callers that hold them; reports stream instead)."""
    t0, t1 = start.timestamp(), end.timestamp()
    timeline = Timeline([connector_id], t0, t1)
    counter = AvailabilityCounter([connector_id], exclusions, t0, t1)
    for mark in sorted((e.mark() for e in events), key=lambda m: m.at):
        for seg in timeline.feed(mark):
            counter.segment(seg)
        counter.event(mark)
    for seg in timeline.finish():
        counter.segment(seg)
    return counter.result(timeline.in_service)[0]


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
