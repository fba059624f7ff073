"""A period's availability and use as one plain JSON value: the figures ``chargepoint report --json`` prints and the
dashboard shows (``/api/report``), shaped from what :func:`chargepoint.analytics.period.analyse` computed.

Pure: the caller reads the history and the session totals; this only names, rounds and orders the figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chargepoint.analytics.availability import ConnectorAvailability, charger_availability
from chargepoint.analytics.usage import Usage


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")


def availability_figures(a: ConnectorAvailability, sessions: tuple[int, int]) -> dict[str, Any]:
    """One connector's (or the charger's) figures; ``sessions``: (sessions started, their energy in Wh)."""
    return {
        "uptime_percent": a.uptime_percent,
        "sessions": sessions[0],
        "energy_Wh": sessions[1],
        "faults": a.faults,
        "failed_starts": a.failed_starts,
        "period_s": round(a.period_s),
        "outage_s": round(a.outage_s),
        "excluded_s": round(a.excluded_s),
        "mtbf_h": None if a.mtbf_s is None else round(a.mtbf_s / 3600, 2),
        "mttr_min": None if a.mttr_s is None else round(a.mttr_s / 60, 1),
        "status_s": {status: round(seconds) for status, seconds in sorted(a.status_s.items())},
        "outages": [{"start": iso(o.start), "end": iso(o.end), "duration_s": round(o.duration_s),
                     "cause": o.cause, "excluded_s": round(o.excluded_s)} for o in a.outages],
    }


def usage_figures(u: Usage) -> dict[str, Any]:
    def money(amounts: dict[str, Decimal]) -> dict[str, str]:
        return {currency: str(amount) for currency, amount in sorted(amounts.items())}

    return {
        "sessions": u.sessions, "energy_Wh": u.energy_Wh, "revenue": money(u.revenue),
        "average_power_W": None if u.average_power_W is None else round(u.average_power_W),
        "peak_power_W": None if u.peak_power_W is None else round(u.peak_power_W),
        "plugged_s": round(u.plugged_s), "drawing_s": round(u.drawing_s),
        "idle_after_charging_s": round(u.idle_after_charging_s),
        "unique_cards": u.unique_cards, "turned_away": u.turned_away,
        "days": [{"date": d.day.isoformat(), "sessions": d.sessions, "energy_Wh": d.energy_Wh,
                  "revenue": money(d.revenue)} for d in u.days],
        "hour_of_week_occupancy": [round(x, 4) for x in u.hour_of_week_occupancy],
        "hour_of_week_arrivals": [round(x, 3) for x in u.hour_of_week_arrivals],
    }


def period_report(ports: Sequence[ConnectorAvailability], used: Usage, sessions: Mapping[int, tuple[int, int]],
                  start: datetime, end: datetime) -> dict[str, Any]:
    """The report of ``[start, end)``: per connector, for the charger, and its use. ``sessions``: per connector,
    (sessions started in the period, their energy in Wh), the charger's own and imported ones."""
    total = charger_availability(ports)
    all_sessions = (sum(s for s, _ in sessions.values()), sum(e for _, e in sessions.values()))
    return {
        "from": iso(start), "to": iso(end),
        "connectors": [{"id": a.connector_id, **availability_figures(a, sessions.get(a.connector_id, (0, 0)))}
                       for a in ports],
        "charger": availability_figures(total, all_sessions),
        "usage": usage_figures(used),
    }
