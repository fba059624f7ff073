"""How the charger is used, from its sessions and recorded statuses: sessions, energy and revenue per day, session
power, occupancy (plugged in, drawing, idle after charging), an hour-of-week profile, unique cards, and an estimate
of drivers turned away.

Power: the charger keeps no per-sample power history, so a session's power is its energy over its time drawing
(its time in ``Charging``, or its whole duration when that is unknown); the peak is the highest such session power.
Cards are counted by a hash, never shown as they are. Drivers turned away: start attempts refused while every
connector was occupied or out of order (a lower bound: a driver who saw it and left is not recorded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal

from chargepoint.analytics.availability import Event

PLUGGED = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})
IDLE_AFTER_CHARGING = frozenset({"SuspendedEV", "Finishing"})
HOURS_PER_WEEK = 168


@dataclass(frozen=True, slots=True)
class Session:
    start: datetime
    stop: datetime
    connector_id: int
    energy_Wh: int
    id_tag: str | None = None
    cost: Decimal | None = None
    currency: str | None = None


@dataclass(slots=True)
class Day:
    day: date
    sessions: int = 0
    energy_Wh: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)


@dataclass(slots=True)
class Usage:
    days: list[Day]
    sessions: int
    energy_Wh: int
    revenue: dict[str, Decimal]
    average_power_W: float | None
    peak_power_W: float | None
    plugged_s: float  # summed over connectors
    drawing_s: float
    idle_after_charging_s: float
    hour_of_week_occupancy: list[float]  # 168 values, Monday 00-01 first: mean share of connectors occupied
    hour_of_week_arrivals: list[float]  # sessions started per week in each hour (mean over the weeks seen)
    unique_cards: int
    turned_away: int


def card_token(id_tag: str) -> str:
    """A card as reports may show it: a stable hash prefix, never the tag."""
    return hashlib.sha256(id_tag.upper().encode()).hexdigest()[:12]


def _status_segments(events: Sequence[Event], connector_id: int, start: datetime, end: datetime
                     ) -> list[tuple[datetime, datetime, str]]:
    segments: list[tuple[datetime, datetime, str]] = []
    status: str | None = None
    at = start
    for e in sorted((e for e in events if e.connector_id == connector_id and e.kind == "status"), key=lambda e: e.at):
        moment = min(max(e.at, start), end)
        if status is not None and moment > at:
            segments.append((at, moment, status))
        at = max(at, moment)
        status = e.value
    if status is not None and end > at:
        segments.append((at, end, status))
    return segments


def _hour_index(at: datetime, zone: tzinfo) -> int:
    local = at.astimezone(zone)
    return local.weekday() * 24 + local.hour


def _spread_by_hour(start: datetime, end: datetime, zone: tzinfo, into: list[float]) -> None:
    """Add the seconds of [start, end) to the hour-of-week bins they fall in (local time)."""
    at = start
    while at < end:
        local = at.astimezone(zone)
        next_hour = (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).astimezone(at.tzinfo)
        until = min(end, next_hour if next_hour > at else at + timedelta(hours=1))
        into[_hour_index(at, zone)] += (until - at).total_seconds()
        at = until


def usage(sessions: Sequence[Session], events: Sequence[Event], connectors: int, start: datetime, end: datetime,
          zone: tzinfo) -> Usage:
    if not start < end:
        raise ValueError(f"usage period from {start.isoformat()} to {end.isoformat()}: the end must be later")
    # In UTC from here: Python subtracts two times of the same zone on the wall clock, an hour off across DST.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    sessions = [replace(s, start=s.start.astimezone(UTC), stop=s.stop.astimezone(UTC)) for s in sessions]
    events = [replace(e, at=e.at.astimezone(UTC)) for e in events]
    chosen = [s for s in sessions if start <= s.start < end]
    days: dict[date, Day] = {}
    day = start.astimezone(zone).date()
    while day <= (end - timedelta(microseconds=1)).astimezone(zone).date():
        days[day] = Day(day)
        day += timedelta(days=1)
    revenue: dict[str, Decimal] = {}
    arrivals = [0.0] * HOURS_PER_WEEK
    for s in chosen:
        d = days[s.start.astimezone(zone).date()]
        d.sessions += 1
        d.energy_Wh += s.energy_Wh
        if s.cost is not None and s.currency is not None:
            d.revenue[s.currency] = d.revenue.get(s.currency, Decimal(0)) + s.cost
            revenue[s.currency] = revenue.get(s.currency, Decimal(0)) + s.cost
        arrivals[_hour_index(s.start, zone)] += 1

    occupied = [0.0] * HOURS_PER_WEEK
    plugged_s = drawing_s = idle_s = 0.0
    drawing_by_session: list[float] = [0.0] * len(chosen)
    for connector_id in range(1, connectors + 1):
        for seg_start, seg_end, status in _status_segments(events, connector_id, start, end):
            seconds = (seg_end - seg_start).total_seconds()
            if status in PLUGGED:
                plugged_s += seconds
                _spread_by_hour(seg_start, seg_end, zone, occupied)
            if status == "Charging":
                drawing_s += seconds
                for n, s in enumerate(chosen):
                    if s.connector_id == connector_id:
                        drawing_by_session[n] += max(0.0, (min(seg_end, s.stop) - max(seg_start, s.start))
                                                     .total_seconds())
            if status in IDLE_AFTER_CHARGING:
                idle_s += seconds

    powers: list[float] = []
    for n, s in enumerate(chosen):
        seconds = drawing_by_session[n] or (s.stop - s.start).total_seconds()
        if seconds > 0 and s.energy_Wh > 0:
            powers.append(s.energy_Wh * 3600.0 / seconds)

    # Every hour-of-week bin is met once per week of the period: turn seconds into a mean share of connectors.
    weeks = (end - start).total_seconds() / (7 * 24 * 3600)
    occupancy = [seconds / (3600.0 * connectors * weeks) if weeks > 0 else 0.0 for seconds in occupied]

    return Usage(
        days=list(days.values()), sessions=len(chosen), energy_Wh=sum(s.energy_Wh for s in chosen), revenue=revenue,
        average_power_W=None if not powers else sum(powers) / len(powers),
        peak_power_W=None if not powers else max(powers),
        plugged_s=plugged_s, drawing_s=drawing_s, idle_after_charging_s=idle_s,
        hour_of_week_occupancy=[min(1.0, value) for value in occupancy],
        hour_of_week_arrivals=[count / weeks if weeks > 0 else 0.0 for count in arrivals],
        unique_cards=len({card_token(s.id_tag) for s in chosen if s.id_tag}),
        turned_away=_turned_away(events, connectors, start, end),
    )


def _turned_away(events: Sequence[Event], connectors: int, start: datetime, end: datetime) -> int:
    """Refused start attempts at moments when no connector was free (Available)."""
    status = {n: "Available" for n in range(1, connectors + 1)}
    count = 0
    for e in sorted(events, key=lambda e: e.at):
        if e.kind == "status" and e.connector_id in status:
            status[e.connector_id] = e.value
        elif (e.kind == "attempt" and e.value == "refused" and start <= e.at < end
              and all(value != "Available" for value in status.values())):
            count += 1
    return count
