"""Availability and usage of one period in a single pass over its time-ordered events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo

from chargepoint.analytics.availability import AvailabilityCounter, ConnectorAvailability, Exclusion
from chargepoint.analytics.timeline import Mark, Timeline
from chargepoint.analytics.usage import Session, Usage, UsageCounter


def analyse(events: Iterable[Mark], sessions: Sequence[Session], exclusions: Sequence[Exclusion], connectors: int,
            start: datetime, end: datetime, zone: tzinfo) -> tuple[list[ConnectorAvailability], Usage]:
    """``events`` in time order (as the store streams them); everything else in any order."""
    t0, t1 = start.timestamp(), end.timestamp()
    ports = range(1, connectors + 1)
    timeline = Timeline(ports, t0, t1)
    available = AvailabilityCounter(ports, exclusions, t0, t1)
    used = UsageCounter(sessions, connectors, t0, t1, zone)
    for e in events:
        for segment in timeline.feed(e):
            available.segment(segment)
            used.segment(segment)
        available.event(e)
        used.event(e, timeline.status)
    for segment in timeline.finish():
        available.segment(segment)
        used.segment(segment)
    return available.result(timeline.in_service), used.result()
