"""Availability and usage of one period: from its events in a single pass, or from its tally."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo

from chargepoint.analytics.availability import ConnectorAvailability, Exclusion, availability
from chargepoint.analytics.tally import Tally, tally
from chargepoint.analytics.timeline import Mark
from chargepoint.analytics.usage import Session, Usage, usage_from_tally


def analyse_tally(t: Tally, sessions: Iterable[Session], exclusions: Sequence[Exclusion], connectors: int,
                  zone: tzinfo) -> tuple[list[ConnectorAvailability], Usage]:
    return availability(t, exclusions), usage_from_tally(t, sessions, connectors, zone)


def analyse(events: Iterable[Mark], sessions: Iterable[Session], exclusions: Sequence[Exclusion], connectors: int,
            start: datetime, end: datetime, zone: tzinfo) -> tuple[list[ConnectorAvailability], Usage]:
    """``events`` in time order (as the store streams them); everything else in any order."""
    t = tally(events, range(1, connectors + 1), start.timestamp(), end.timestamp())
    return analyse_tally(t, sessions, exclusions, connectors, zone)
