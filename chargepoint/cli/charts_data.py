"""What the report's and the forecast's charts show, computed once for both renderings: the terminal's
(``charts_text.py``) and the HTML file's SVG (``charts_svg.py``).

Inputs are the plain data that ``report --json`` and ``forecast --json`` print, so a chart never disagrees with the
figures next to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

UP = "up"
OUTAGE = "outage"
EXCLUDED = "excluded"
NO_DATA = "none"  # before the charger was installed (its first recorded boot)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Bucket lengths a timeline may use, shortest first, with how they are named.
_STEPS: tuple[tuple[float, str], ...] = tuple(
    (hours * 3600.0, name) for hours, name in (
        (1, "1 h"), (2, "2 h"), (3, "3 h"), (4, "4 h"), (6, "6 h"), (12, "12 h"), (24, "1 day"), (48, "2 days"),
        (168, "1 week"), (336, "2 weeks"), (720, "30 days"), (2160, "90 days"), (8760, "365 days")))

MIN_SECONDS = 1.0  # less than this of an outage in a bucket does not colour it (rounding of the report's seconds)


@dataclass(frozen=True, slots=True)
class Span:
    """An outage: seconds since the epoch, and how much of it does not count (grid loss, declared exclusions)."""

    start_s: float
    end_s: float
    excluded_s: float


@dataclass(frozen=True, slots=True)
class TimelineRow:
    name: str
    states: list[str]  # one of UP, OUTAGE, EXCLUDED, NO_DATA per bucket


@dataclass(frozen=True, slots=True)
class Timeline:
    start: datetime
    end: datetime
    step_s: float
    step_name: str
    rows: list[TimelineRow]


def choose_step(period_s: float, columns: int) -> tuple[float, str]:
    """The shortest bucket from the list that fits the period in ``columns`` characters (or SVG cells)."""
    for step_s, name in _STEPS:
        if math.ceil(period_s / step_s) <= max(1, columns):
            return step_s, name
    return _STEPS[-1]


def timeline_states(start_s: float, end_s: float, step_s: float, in_service_s: float | None,
                    outages: Sequence[Span]) -> list[str]:
    """One state per bucket of ``step_s`` from ``start_s`` (the last one may be shorter): OUTAGE if any counted
    outage falls in it, else EXCLUDED if an outage that does not count does, else UP; NO_DATA before
    ``in_service_s`` (None: never in service in the period). An outage's excluded part is taken as spread evenly
    over it."""
    states: list[str] = []
    if not end_s > start_s or step_s <= 0:
        return states
    at = start_s
    while at < end_s:
        until = min(end_s, at + step_s)
        if in_service_s is None or until <= in_service_s:
            states.append(NO_DATA)
            at = until
            continue
        counted = excluded = 0.0
        for o in outages:
            overlap = min(until, o.end_s) - max(at, o.start_s)
            if overlap <= 0:
                continue
            duration = o.end_s - o.start_s
            share = 0.0 if duration <= 0 else min(1.0, max(0.0, o.excluded_s / duration))
            counted += overlap * (1.0 - share)
            excluded += overlap * share
        states.append(OUTAGE if counted >= MIN_SECONDS else EXCLUDED if excluded >= MIN_SECONDS else UP)
        at = until
    return states


def report_timeline(report: Mapping[str, Any], columns: int) -> Timeline:
    """The availability timeline of a report (``build_report``'s dict), one row per connector, in at most
    ``columns`` buckets."""
    start, end = datetime.fromisoformat(report["from"]), datetime.fromisoformat(report["to"])
    t0, t1 = start.timestamp(), end.timestamp()
    step_s, step_name = choose_step(t1 - t0, columns)
    rows = []
    for c in report["connectors"]:
        in_service = None if c["period_s"] <= 0 else t1 - c["period_s"]
        spans = [Span(datetime.fromisoformat(o["start"]).timestamp(), datetime.fromisoformat(o["end"]).timestamp(),
                      o["excluded_s"]) for o in c["outages"]]
        rows.append(TimelineRow(f"connector {c['id']}", timeline_states(t0, t1, step_s, in_service, spans)))
    return Timeline(start, end, step_s, step_name, rows)


def week_grid(hour_of_week: Sequence[float]) -> list[list[float]]:
    """168 values (Monday 00-01 first) as 7 rows of 24; missing values are 0."""
    values = list(hour_of_week)[:168]
    values += [0.0] * (168 - len(values))
    return [values[day * 24:(day + 1) * 24] for day in range(7)]


def band(values: Sequence[float], error_percent: float | None) -> tuple[list[float], list[float]] | None:
    """The forecast's +- band from its back-tested error (mean absolute percentage error); None without one."""
    if error_percent is None:
        return None
    share = error_percent / 100.0
    return [max(0.0, v * (1.0 - share)) for v in values], [v * (1.0 + share) for v in values]
