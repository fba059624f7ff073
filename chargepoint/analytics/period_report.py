"""The figures of one period as plain data: what ``chargepoint report --json`` prints, and what the daily KPI
DataTransfer (``chargepoint/ocpp/v16/kpi.py``) sends for a day.

Fed by the caller, who reads the store: the events in time order (the state the period began in first, as the store
streams them), the sessions started in the period, the declared exclusions. Times in the result are ISO 8601 UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

from chargepoint.analytics.availability import ConnectorAvailability, Exclusion, charger_availability
from chargepoint.analytics.period import analyse_tally
from chargepoint.analytics.tally import Tally, tally
from chargepoint.analytics.timeline import Mark, to_datetime
from chargepoint.analytics.usage import Session, Usage


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")


def availability_figures(a: ConnectorAvailability, sessions: tuple[int, int]) -> dict[str, Any]:
    """One connector's (or the charger's) figures; ``sessions``: (sessions, energy_Wh) started in the period."""
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


def period_report(events: Iterable[Mark], sessions: Iterable[Session], exclusions: Sequence[Exclusion],
                  connectors: int, start: datetime, end: datetime, zone: tzinfo = UTC) -> dict[str, Any]:
    """Per connector and for the charger: uptime, outages, time per status, faults, sessions and energy; and the
    period's use. ``events`` in time order, the state the period began in first; ``sessions`` in any order, those
    started in ``[start, end)`` counted (others are left out)."""
    t = tally(events, range(1, connectors + 1), start.timestamp(), end.timestamp())
    return tally_report(t, sessions, exclusions, connectors, zone)


def tally_report(t: Tally, sessions: Iterable[Session], exclusions: Sequence[Exclusion], connectors: int,
                 zone: tzinfo = UTC) -> dict[str, Any]:
    """``period_report`` from the tally of the period; ``sessions`` are taken in one pass."""
    ports, used = analyse_tally(t, sessions, exclusions, connectors, zone)
    total = charger_availability(ports)
    return {
        "from": iso(to_datetime(t.start)), "to": iso(to_datetime(t.end)),
        "connectors": [{"id": a.connector_id, **availability_figures(a, used.per_connector.get(a.connector_id, (0, 0)))}
                       for a in ports],
        "charger": availability_figures(total, (used.sessions, used.energy_Wh)),
        "usage": usage_figures(used),
    }
