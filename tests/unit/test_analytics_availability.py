"""Availability as NEVI counts it (23 CFR 680.116(b)), on hand-built histories with figures computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chargepoint.analytics.availability import (
    Event,
    Exclusion,
    charger_availability,
    connector_availability,
)

DAY0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
WEEK = timedelta(days=7)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def boot(at: datetime) -> Event:
    return Event(at, 0, "boot", "0.1.0")


def status(at: datetime, value: str, detail: str = "", connector_id: int = 1) -> Event:
    return Event(at, connector_id, "status", value, detail)


def test_a_week_with_one_hour_faulted_is_99_405_percent_up() -> None:
    events = [boot(DAY0), status(DAY0, "Available"), status(DAY0 + 24 * H, "Faulted", "GroundFailure"),
              Event(DAY0 + 24 * H, 1, "fault", "GroundFailure", "raised"), status(DAY0 + 25 * H, "Available")]
    a = connector_availability(events, [], 1, DAY0, DAY0 + WEEK)
    # 10080 minutes, 60 of them down: (10080 - 60) / 10080.
    assert a.uptime_percent == pytest.approx(100 * 10020 / 10080, abs=0.001)
    assert a.outage_s == 3600 and a.excluded_s == 0
    assert [(o.start, o.end, o.cause) for o in a.outages] == [(DAY0 + 24 * H, DAY0 + 25 * H, "Faulted:GroundFailure")]
    assert a.faults == 1 and a.failures == 1
    assert a.mttr_s == 3600
    assert a.mtbf_s == (7 * 24 - 1) * 3600  # up time per failure
    assert a.status_s == {"Available": (7 * 24 - 1) * 3600, "Faulted": 3600}


def test_grid_loss_is_an_outage_that_does_not_count() -> None:
    events = [boot(DAY0), status(DAY0, "Available"), Event(DAY0 + 2 * H, 1, "mains", "lost"),
              status(DAY0 + 2 * H, "Unavailable", "mains"), status(DAY0 + 5 * H, "Available")]
    a = connector_availability(events, [], 1, DAY0, DAY0 + 24 * H)
    assert a.outage_s == a.excluded_s == 3 * 3600
    assert a.uptime_percent == 100.0
    assert a.mttr_s is None and a.failures == 0  # nothing that counts against the operator


def test_a_power_cut_after_a_reported_mains_loss_is_the_grids_and_a_crash_is_not() -> None:
    grid = [boot(DAY0), status(DAY0, "Available"), Event(DAY0 + H, 1, "mains", "lost"),
            status(DAY0 + H, "Unavailable", "mains"), Event(DAY0 + H + M, 0, "down", "mains"),
            boot(DAY0 + 3 * H), status(DAY0 + 3 * H, "Available")]
    a = connector_availability(grid, [], 1, DAY0, DAY0 + 24 * H)
    assert a.outage_s == a.excluded_s == 2 * 3600
    crash = [boot(DAY0), status(DAY0, "Charging"), Event(DAY0 + H, 0, "down", "unknown"),
             boot(DAY0 + 3 * H), status(DAY0 + 3 * H, "Available")]
    b = connector_availability(crash, [], 1, DAY0, DAY0 + 24 * H)
    assert (b.outage_s, b.excluded_s) == (2 * 3600, 0)
    assert [o.cause for o in b.outages] == ["Off:unknown"]
    assert b.failures == 1  # an outage of unknown cause is a failure
    assert b.uptime_percent == pytest.approx(100 * 22 / 24, abs=0.001)


def test_declared_maintenance_excludes_only_the_outage_it_overlaps() -> None:
    events = [boot(DAY0), status(DAY0, "Available"), status(DAY0 + 10 * H, "Unavailable", "inoperative"),
              status(DAY0 + 14 * H, "Available")]
    maintenance = [Exclusion(DAY0 + 9 * H, DAY0 + 12 * H, 0, "maintenance")]
    a = connector_availability(events, maintenance, 1, DAY0, DAY0 + 24 * H)
    assert a.outage_s == 4 * 3600 and a.excluded_s == 2 * 3600  # 10-12 h excluded, 12-14 h counts
    assert a.uptime_percent == pytest.approx(100 * 22 / 24, abs=0.001)
    other_port = [Exclusion(DAY0 + 9 * H, DAY0 + 12 * H, 2, "maintenance")]
    assert connector_availability(events, other_port, 1, DAY0, DAY0 + 24 * H).excluded_s == 0


def test_a_clean_stop_that_nobody_restarted_is_an_outage() -> None:
    events = [boot(DAY0), status(DAY0, "Available"), Event(DAY0 + 20 * H, 0, "stop", "Reboot")]
    a = connector_availability(events, [], 1, DAY0, DAY0 + 24 * H)
    assert a.outage_s == 4 * 3600 and [o.cause for o in a.outages] == ["Off:stopped (Reboot)"]


def test_time_before_the_charger_was_installed_is_not_in_the_period() -> None:
    events = [boot(DAY0 + 12 * H), status(DAY0 + 12 * H, "Available")]
    a = connector_availability(events, [], 1, DAY0, DAY0 + 24 * H)
    assert a.period_s == 12 * 3600 and a.uptime_percent == 100.0
    assert connector_availability([], [], 1, DAY0, DAY0 + 24 * H).uptime_percent is None


def test_a_period_starting_mid_fault_takes_the_state_recorded_before_it() -> None:
    # history_events gives the last status before the period first: a fault that began the day before.
    events = [status(DAY0 - H, "Faulted", "ConnectorLockFailure"), status(DAY0 + 2 * H, "Available")]
    a = connector_availability(events, [], 1, DAY0, DAY0 + 24 * H)
    assert a.outage_s == 2 * 3600 and a.period_s == 24 * 3600
    assert a.faults == 0  # raised before the period


def test_offline_but_charging_is_up_and_refused_starts_are_counted() -> None:
    events = [boot(DAY0), status(DAY0, "Available"), Event(DAY0 + H, 0, "link", "down"),
              status(DAY0 + 2 * H, "Charging"), Event(DAY0 + 3 * H, 1, "attempt", "refused", "connector busy"),
              Event(DAY0 + 3 * H, 2, "attempt", "refused", "other port")]
    a = connector_availability(events, [], 1, DAY0, DAY0 + 24 * H)
    assert a.uptime_percent == 100.0 and a.failed_starts == 1


def test_the_charger_figure_weights_its_ports_equally() -> None:
    events = [boot(DAY0), status(DAY0, "Available"), status(DAY0, "Available", connector_id=2),
              status(DAY0 + 12 * H, "Faulted", "OverCurrentFailure", connector_id=2)]
    ports = [connector_availability(events, [], n, DAY0, DAY0 + 24 * H) for n in (1, 2)]
    assert [p.uptime_percent for p in ports] == [100.0, 50.0]
    assert charger_availability(ports).uptime_percent == 75.0


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="the end must be later"):
        connector_availability([], [], 1, DAY0, DAY0)
