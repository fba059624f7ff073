"""What one stretch of history adds up to, before exclusions, sessions and the time zone come in: seconds per status,
outages, faults, start attempts, time plugged in and drawing, occupancy per quarter hour, and the Charging segments.

A ``Tally`` of a period is made in one pass over its events (``tally``). Tallies of adjacent stretches ``merge`` into
the tally of the whole, the same as one pass over all of it would give: the charger keeps one per UTC day (see
``chargepoint/store/rollup.py``), so a report of a year reads 365 tallies instead of half a million events. For the
merge to be exact, a tally holds nothing that depends on what can change after the day: declared exclusions,
imported sessions, a session still running, the configured time zone all come in later
(``availability.availability``, ``usage.usage_from_tally``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from chargepoint.analytics.timeline import Mark, Segment, Timeline

TALLY_VERSION: Final = 1  # raised whenever what a tally holds or means changes: stored ones are then made anew

UP_STATUSES: Final = frozenset({"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing",
                                "Reserved"})
PLUGGED: Final = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})
IDLE_AFTER_CHARGING: Final = frozenset({"SuspendedEV", "Finishing"})
QUARTER_S: Final = 900  # every time zone's offset is a whole number of quarter hours


def _zeros(count: int) -> array[float]:
    return array("d", bytes(8 * count))


@dataclass(slots=True)
class Run:
    """An outage as the tally keeps it: adjacent segments of one status and cause joined."""

    start: float
    end: float
    status: str
    cause: str


@dataclass(slots=True)
class PortTally:
    status_s: dict[str, float] = field(default_factory=dict)
    outages: list[Run] = field(default_factory=list)
    faults: int = 0
    failed_starts: int = 0
    charging: array[float] = field(default_factory=lambda: array("d"))  # start, end of each Charging segment


@dataclass(slots=True)
class Tally:
    start: float  # seconds since the epoch
    end: float
    in_service: float | None  # since when the charger was installed within it (None: not at all)
    ports: dict[int, PortTally]
    quarter0: int  # the quarter hour (since the epoch) that ``occupied`` begins with
    occupied: array[float]  # seconds plugged in per quarter hour, summed over the connectors
    plugged_s: float = 0.0
    drawing_s: float = 0.0
    idle_s: float = 0.0
    turned_away: int = 0


def empty(connector_ids: Iterable[int], start: float, end: float) -> Tally:
    quarter0 = int(start // QUARTER_S)
    quarters = -int(-end // QUARTER_S) - quarter0
    return Tally(start, end, None, {c: PortTally() for c in connector_ids}, quarter0, _zeros(max(quarters, 1)))


def _segment(t: Tally, seg: Segment) -> None:
    status, start, end = seg.status, seg.start, seg.end
    seconds = end - start
    port = t.ports[seg.connector_id]
    spent = port.status_s
    spent[status] = spent.get(status, 0.0) + seconds
    if status in UP_STATUSES:
        if status not in PLUGGED:
            return
        t.plugged_s += seconds
        occupied, quarter0 = t.occupied, t.quarter0
        quarter = int(start // QUARTER_S)
        at = start
        while at < end:
            until = min(end, (quarter + 1) * QUARTER_S)
            occupied[quarter - quarter0] += until - at
            at = until
            quarter += 1
        if status == "Charging":
            t.drawing_s += seconds
            port.charging.append(start)
            port.charging.append(end)
        elif status in IDLE_AFTER_CHARGING:
            t.idle_s += seconds
        return
    outages = port.outages
    if outages and outages[-1].end == start and outages[-1].status == status and outages[-1].cause == seg.cause:
        outages[-1].end = end
    else:
        outages.append(Run(start, end, status, seg.cause))


def tally(events: Iterable[Mark], connector_ids: Iterable[int], start: float, end: float) -> Tally:
    """``events`` in time order, the state the stretch began in first (as the store streams them)."""
    t = empty(connector_ids, start, end)
    timeline = Timeline(t.ports, start, end)
    statuses = timeline.status
    for e in events:
        for seg in timeline.feed(e):
            _segment(t, seg)
        kind = e.kind
        if (kind == "fault" or kind == "attempt") and start <= e.at < end:
            port = t.ports.get(e.connector_id)
            if kind == "fault":
                if port is not None and e.detail == "raised":
                    port.faults += 1
            elif e.value == "refused":
                if port is not None:
                    port.failed_starts += 1
                # Connector 0: a start no connector could take (a remote start while all were busy ...).
                if all(status != "Available" for status in statuses.values()):
                    t.turned_away += 1
    for seg in timeline.finish():
        _segment(t, seg)
    t.in_service = timeline.in_service
    return t


def merge(parts: Iterable[Tally], start: float | None = None, end: float | None = None) -> Tally:
    """The tally of adjacent stretches, in time order, as one pass over all of them would have made it. Taken one
    at a time (a year of days never sits in memory twice) when the whole's ``start`` and ``end`` are given; without
    them ``parts`` must be a sequence."""
    if start is None or end is None:
        if not isinstance(parts, Sequence) or not parts:
            raise ValueError("no tallies to merge, or no start and end for a stream of them")
        start, end = parts[0].start, parts[-1].end
    whole: Tally | None = None
    at = start
    for part in parts:
        if part.start != at:
            raise ValueError(f"tallies are not adjacent: one ends at {at}, the next begins at {part.start}")
        if whole is None:
            whole = empty(part.ports, start, end)
        _absorb(whole, part)
        at = part.end
    if whole is None or at != end:
        raise ValueError(f"the tallies end at {at}, not at {end}")
    return whole


def _absorb(whole: Tally, part: Tally) -> None:
    if part.ports.keys() != whole.ports.keys():
        raise ValueError(f"tallies of different connectors: {sorted(part.ports)} and {sorted(whole.ports)}")
    if whole.in_service is None:
        whole.in_service = part.in_service
    for c, port in part.ports.items():
        into = whole.ports[c]
        for status, seconds in port.status_s.items():
            into.status_s[status] = into.status_s.get(status, 0.0) + seconds
        outages = port.outages
        if outages and into.outages:
            joined, first_run = into.outages[-1], outages[0]
            if joined.end == first_run.start and joined.status == first_run.status and joined.cause == first_run.cause:
                joined.end = first_run.end
                outages = outages[1:]
        into.outages.extend(Run(o.start, o.end, o.status, o.cause) for o in outages)
        into.faults += port.faults
        into.failed_starts += port.failed_starts
        into.charging.extend(port.charging)
    offset = part.quarter0 - whole.quarter0
    occupied = whole.occupied
    for n, seconds in enumerate(part.occupied):
        if seconds:
            occupied[offset + n] += seconds
    whole.plugged_s += part.plugged_s
    whole.drawing_s += part.drawing_s
    whole.idle_s += part.idle_s
    whole.turned_away += part.turned_away
