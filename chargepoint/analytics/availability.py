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

from chargepoint.analytics.tally import UP_STATUSES, Tally, tally
from chargepoint.analytics.timeline import CHARGER_OFF, Event, to_datetime

__all__ = ["CHARGER_OFF", "UP_STATUSES", "ConnectorAvailability", "Event", "Exclusion", "Outage", "availability",
           "charger_availability", "connector_availability"]


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


def _union(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping exclusions as one: time declared twice is excluded once."""
    joined: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if joined and a <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], b))
        else:
            joined.append((a, b))
    return joined


def availability(t: Tally, exclusions: Iterable[Exclusion]) -> list[ConnectorAvailability]:
    """Each connector's figures from the tally of a period and the exclusions declared in it."""
    declared = [(x.start.timestamp(), x.end.timestamp(), x.connector_id) for x in exclusions]
    ports = []
    for c, port in t.ports.items():
        spans = _union((a, b) for a, b, n in declared if n in (0, c))
        a = ConnectorAvailability(c, period_s=0.0 if t.in_service is None else t.end - t.in_service,
                                  status_s=dict(port.status_s), faults=port.faults,
                                  failed_starts=port.failed_starts)
        for run in port.outages:
            seconds = run.end - run.start
            if run.cause == "mains":  # the grid's: excluded whole
                excluded = seconds
            else:
                excluded = sum(max(0.0, min(run.end, y) - max(run.start, x)) for x, y in spans)
            a.outage_s += seconds
            a.excluded_s += excluded
            a.outages.append(Outage(to_datetime(run.start), to_datetime(run.end),
                                    f"{run.status}:{run.cause}" if run.cause else run.status, excluded))
        ports.append(a)
    return ports


def connector_availability(events: Sequence[Event], exclusions: Iterable[Exclusion], connector_id: int,
                           start: datetime, end: datetime) -> ConnectorAvailability:
    """One connector's figures from events in any order (for callers that hold them; reports stream instead)."""
    marks = sorted((e.mark() for e in events), key=lambda m: m.at)
    return availability(tally(marks, [connector_id], start.timestamp(), end.timestamp()), exclusions)[0]


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
