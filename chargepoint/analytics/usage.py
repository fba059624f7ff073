"""How the charger is used, from its sessions and recorded statuses: sessions, energy and revenue per day, session
power, occupancy (plugged in, drawing, idle after charging), an hour-of-week profile, unique cards, and an estimate
of drivers turned away.

Power: the charger keeps no per-sample power history, so a session's power is its energy over its time drawing
(its time in ``Charging``, or its whole duration when that is unknown); the peak is the highest such session power.
Cards are counted by a hash, never shown as they are. Drivers turned away: start attempts refused while every
connector was occupied or out of order (a lower bound: a driver who saw it and left is not recorded).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal

from chargepoint.analytics.timeline import Event, Mark, Segment, Timeline, to_datetime

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


class _LocalHours:
    """Hour-of-week (Monday 00-01 local = 0) of epoch seconds, with the zone's offset cached per UTC hour: on the
    fast path a datetime per segment would cost more than the rest."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._offsets: dict[int, float] = {}

    def offset_s(self, at: float) -> float:
        hour = int(at // 3600)
        offset = self._offsets.get(hour)
        if offset is None:
            delta = datetime.fromtimestamp(hour * 3600, UTC).astimezone(self.zone).utcoffset()
            offset = self._offsets[hour] = 0.0 if delta is None else delta.total_seconds()
        return offset

    def index(self, at: float) -> int:
        # The epoch began on a Thursday: hour 72 of a week that starts on Monday.
        return (int((at + self.offset_s(at)) // 3600) + 72) % HOURS_PER_WEEK

    def spread(self, start: float, end: float, into: list[float]) -> None:
        """Add the seconds of [start, end) to the hour-of-week bins they fall in."""
        at = start
        while at < end:
            local = at + self.offset_s(at)
            until = min(end, at + (3600.0 - local % 3600.0))
            into[(int(local // 3600) + 72) % HOURS_PER_WEEK] += until - at
            at = until


class UsageCounter:
    """Takes the timeline's segments and the events as they stream past, with the period's sessions;
    ``result`` once the stream has ended."""

    def __init__(self, sessions: Iterable[Session], connectors: int, start: float, end: float, zone: tzinfo) -> None:
        self.start, self.end, self.zone, self.connectors = start, end, zone, connectors
        self.hours = _LocalHours(zone)
        self.sessions = sorted((s for s in sessions if start <= s.start.timestamp() < end), key=lambda s: s.start)
        self._spans: dict[int, list[tuple[float, float, int]]] = {}  # per connector: (start, stop, session number)
        for n, s in enumerate(self.sessions):
            self._spans.setdefault(s.connector_id, []).append((s.start.timestamp(), s.stop.timestamp(), n))
        # Sessions of one connector never overlap, so their stops are in order as their starts are.
        self._stops = {c: [stop for _, stop, _ in spans] for c, spans in self._spans.items()}
        self._drawing = [0.0] * len(self.sessions)
        self.occupied = [0.0] * HOURS_PER_WEEK
        self.plugged_s = self.drawing_s = self.idle_s = 0.0
        self.turned_away = 0

    def segment(self, seg: Segment) -> None:
        status = seg.status
        if status not in PLUGGED:
            return
        seconds = seg.end - seg.start
        self.plugged_s += seconds
        self.hours.spread(seg.start, seg.end, self.occupied)
        if status in IDLE_AFTER_CHARGING:
            self.idle_s += seconds
        elif status == "Charging":
            self.drawing_s += seconds
            spans = self._spans.get(seg.connector_id)
            if spans:
                n = bisect.bisect_right(self._stops[seg.connector_id], seg.start)
                while n < len(spans) and spans[n][0] < seg.end:
                    begun, stopped, number = spans[n]
                    self._drawing[number] += max(0.0, min(seg.end, stopped) - max(seg.start, begun))
                    n += 1

    def event(self, e: Mark, statuses: dict[int, str]) -> None:
        """``statuses``: every connector's status once ``e`` is taken into account."""
        if (e.kind == "attempt" and e.value == "refused" and self.start <= e.at < self.end
                and all(value != "Available" for value in statuses.values())):
            self.turned_away += 1

    def result(self) -> Usage:
        zone = self.zone
        days: dict[date, Day] = {}
        day = to_datetime(self.start).astimezone(zone).date()
        last = to_datetime(self.end - 1e-6).astimezone(zone).date()
        while day <= last:
            days[day] = Day(day)
            day += timedelta(days=1)
        revenue: dict[str, Decimal] = {}
        arrivals = [0.0] * HOURS_PER_WEEK
        powers: list[float] = []
        for n, s in enumerate(self.sessions):
            d = days[s.start.astimezone(zone).date()]
            d.sessions += 1
            d.energy_Wh += s.energy_Wh
            if s.cost is not None and s.currency is not None:
                d.revenue[s.currency] = d.revenue.get(s.currency, Decimal(0)) + s.cost
                revenue[s.currency] = revenue.get(s.currency, Decimal(0)) + s.cost
            arrivals[self.hours.index(s.start.timestamp())] += 1
            seconds = self._drawing[n] or (s.stop - s.start).total_seconds()
            if seconds > 0 and s.energy_Wh > 0:
                powers.append(s.energy_Wh * 3600.0 / seconds)
        # Every hour-of-week bin is met once per week of the period: seconds become a mean share of connectors.
        weeks = (self.end - self.start) / (7 * 24 * 3600)
        return Usage(
            days=list(days.values()), sessions=len(self.sessions),
            energy_Wh=sum(s.energy_Wh for s in self.sessions), revenue=revenue,
            average_power_W=None if not powers else sum(powers) / len(powers),
            peak_power_W=None if not powers else max(powers),
            plugged_s=self.plugged_s, drawing_s=self.drawing_s, idle_after_charging_s=self.idle_s,
            hour_of_week_occupancy=[min(1.0, x / (3600.0 * self.connectors * weeks)) for x in self.occupied],
            hour_of_week_arrivals=[count / weeks for count in arrivals],
            unique_cards=len({card_token(s.id_tag) for s in self.sessions if s.id_tag}),
            turned_away=self.turned_away,
        )


def usage(sessions: Sequence[Session], events: Sequence[Event], connectors: int, start: datetime, end: datetime,
          zone: tzinfo) -> Usage:
    """The figures from sessions and events in any order (for callers that hold them; reports stream instead)."""
    t0, t1 = start.timestamp(), end.timestamp()
    timeline = Timeline(range(1, connectors + 1), t0, t1)
    counter = UsageCounter(sessions, connectors, t0, t1, zone)
    for mark in sorted((e.mark() for e in events), key=lambda m: m.at):
        for seg in timeline.feed(mark):
            counter.segment(seg)
        counter.event(mark, timeline.status)
    for seg in timeline.finish():
        counter.segment(seg)
    return counter.result()
