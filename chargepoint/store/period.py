"""The figures of a period (availability and use) read from the database: the one query path behind ``chargepoint
report``, the dashboard and anything else that reports, fed to ``analytics.period_report``. Works on any
connection to the file (the reports open it read-only, beside the running daemon). The history comes as the stored
tallies of its whole days and the events of the rest (``chargepoint/store/rollup.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

from chargepoint.analytics.availability import Exclusion
from chargepoint.analytics.period_report import tally_report
from chargepoint.analytics.timeline import Mark
from chargepoint.analytics.usage import Session
from chargepoint.store import history as _history
from chargepoint.store.rollup import period_tally


def _text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def marks(conn: sqlite3.Connection, since: str, until: str) -> Iterator[Mark]:
    """The period's events in time order, streamed (see ``history.stream_rows``)."""
    return _history.stream_rows(conn, since, until, lambda _cursor, row: Mark(*row))


def sessions(conn: sqlite3.Connection, since: str, until: str, currency: str) -> list[Session]:
    """``iter_sessions`` as a list."""
    return list(iter_sessions(conn, since, until, currency))


def iter_sessions(conn: sqlite3.Connection, since: str, until: str, currency: str) -> Iterator[Session]:
    """The sessions started in the period, the charger's own and imported ones (whose costs are in ``currency``,
    the charger's), one row at a time."""
    own = conn.cursor()
    own.row_factory = None
    for a, b, c, e, tag, cost, money in own.execute(
            "SELECT s.started_at, COALESCE(s.stopped_at, s.last_meter_at), s.connector_id, "
            "COALESCE(s.meter_stop_Wh, s.last_meter_Wh) - s.meter_start_Wh, s.id_tag, "
            "COALESCE(p.csms_cost, p.cost), p.currency FROM sessions s "
            "LEFT JOIN session_pricing p ON p.session_id = s.session_id "
            "WHERE s.started_at >= ? AND s.started_at < ?", (since, until)):
        yield Session(datetime.fromisoformat(a), datetime.fromisoformat(b), c, e, tag,
                      None if cost is None else Decimal(cost), money)
    for i in _history.imported_sessions(conn, since, until):
        yield Session(datetime.fromisoformat(i.start), datetime.fromisoformat(i.stop), i.connector_id, i.energy_Wh,
                      i.id_tag, i.cost, currency)


def period_figures(conn: sqlite3.Connection, connectors: int, start: datetime, end: datetime,
                   zone: tzinfo = UTC, currency: str = "EUR") -> dict[str, Any]:
    """Availability and use of ``[start, end)``, as ``chargepoint report --json`` prints them."""
    since, until = _text(start), _text(end)
    exclusions = [Exclusion(datetime.fromisoformat(x.start), datetime.fromisoformat(x.end), x.connector_id, x.reason)
                  for x in _history.exclusions(conn, since, until)]
    t = period_tally(conn, connectors, start.timestamp(), end.timestamp())
    return tally_report(t, iter_sessions(conn, since, until, currency), exclusions, connectors, zone)
