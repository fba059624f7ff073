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
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal

from chargepoint.analytics.tally import QUARTER_S, Tally, tally
from chargepoint.analytics.timeline import Event, to_datetime

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
    per_connector: dict[int, tuple[int, int]] = field(default_factory=dict)  # sessions, energy_Wh


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


def _drawing_s(charging: array[float]) -> tuple[array[float], array[float], array[float]]:
    """Starts, ends and the running sum of durations (one more than segments) of a connector's Charging segments;
    arrays, not lists: a year of a busy charger has some 160,000 segments."""
    starts, ends = charging[0::2], charging[1::2]
    before = array("d", [0.0])
    total = 0.0
    for a, b in zip(starts, ends, strict=True):
        total += b - a
        before.append(total)
    return starts, ends, before


def usage_from_tally(t: Tally, sessions: Iterable[Session], connectors: int, zone: tzinfo) -> Usage:
    """The figures of the tally's period, with the sessions started in it (others are left out), taken in one pass
    in any order: a year of them need not sit in memory."""
    hours = _LocalHours(zone)
    days: dict[date, Day] = {}
    day = to_datetime(t.start).astimezone(zone).date()
    last = to_datetime(t.end - 1e-6).astimezone(zone).date()
    while day <= last:
        days[day] = Day(day)
        day += timedelta(days=1)
    segments = {c: _drawing_s(port.charging) for c, port in t.ports.items()}
    revenue: dict[str, Decimal] = {}
    per_connector: dict[int, tuple[int, int]] = {}
    arrivals = [0.0] * HOURS_PER_WEEK
    powers, power_sum, peak = 0, 0.0, 0.0
    cards: set[str] = set()
    for s in sessions:
        begun, stopped = s.start.timestamp(), s.stop.timestamp()
        if not t.start <= begun < t.end:
            continue
        d = days[s.start.astimezone(zone).date()]
        d.sessions += 1
        d.energy_Wh += s.energy_Wh
        count, energy_Wh = per_connector.get(s.connector_id, (0, 0))
        per_connector[s.connector_id] = (count + 1, energy_Wh + s.energy_Wh)
        if s.cost is not None and s.currency is not None:
            d.revenue[s.currency] = d.revenue.get(s.currency, Decimal(0)) + s.cost
            revenue[s.currency] = revenue.get(s.currency, Decimal(0)) + s.cost
        if s.id_tag:
            cards.add(card_token(s.id_tag))
        arrivals[hours.index(begun)] += 1
        drawing = 0.0
        if s.connector_id in segments:
            starts, ends, before = segments[s.connector_id]
            first, after = bisect.bisect_right(ends, begun), bisect.bisect_left(starts, stopped)
            if first < after:  # the Charging segments that overlap the session, clipped to it
                drawing = (before[after] - before[first] - max(0.0, begun - starts[first])
                           - max(0.0, ends[after - 1] - stopped))
        seconds = drawing or (stopped - begun)
        if seconds > 0 and s.energy_Wh > 0:
            power = s.energy_Wh * 3600.0 / seconds
            powers += 1
            power_sum += power
            peak = max(peak, power)
    occupied = [0.0] * HOURS_PER_WEEK
    for n, seconds in enumerate(t.occupied):
        if seconds:
            occupied[hours.index((t.quarter0 + n) * QUARTER_S)] += seconds
    # Every hour-of-week bin is met once per week of the period: seconds become a mean share of connectors.
    weeks = (t.end - t.start) / (7 * 24 * 3600)
    return Usage(
        days=list(days.values()), sessions=sum(n for n, _ in per_connector.values()),
        energy_Wh=sum(e for _, e in per_connector.values()), revenue=revenue,
        average_power_W=None if not powers else power_sum / powers, peak_power_W=None if not powers else peak,
        plugged_s=t.plugged_s, drawing_s=t.drawing_s, idle_after_charging_s=t.idle_s,
        hour_of_week_occupancy=[min(1.0, x / (3600.0 * connectors * weeks)) for x in occupied],
        hour_of_week_arrivals=[count / weeks for count in arrivals],
        unique_cards=len(cards), turned_away=t.turned_away, per_connector=per_connector,
    )


def usage(sessions: Sequence[Session], events: Sequence[Event], connectors: int, start: datetime, end: datetime,
          zone: tzinfo) -> Usage:
    """The figures from sessions and events in any order (for callers that hold them; reports stream instead)."""
    marks = sorted((e.mark() for e in events), key=lambda m: m.at)
    t = tally(marks, range(1, connectors + 1), start.timestamp(), end.timestamp())
    return usage_from_tally(t, sessions, connectors, zone)
