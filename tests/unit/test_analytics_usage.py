"""Usage patterns from sessions and recorded statuses, with figures computed by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from chargepoint.analytics.availability import Event
from chargepoint.analytics.usage import Session, card_token, usage

BERLIN = ZoneInfo("Europe/Berlin")
MON = datetime(2026, 11, 2, tzinfo=BERLIN)  # Monday 00:00 local (23:00 UTC the day before)
H = timedelta(hours=1)
WEEK = timedelta(days=7)


def status(at: datetime, value: str, connector_id: int = 1) -> Event:
    return Event(at, connector_id, "status", value)


def test_days_energy_revenue_cards_and_arrivals() -> None:
    sessions = [
        Session(MON + 8 * H, MON + 10 * H, 1, 20_000, "04A1", Decimal("7.00"), "EUR"),
        Session(MON + 18 * H, MON + 19 * H, 2, 11_000, "04b2", Decimal("3.85"), "EUR"),
        Session(MON + 32 * H, MON + 33 * H, 1, 5_000, "04A1", None, None),  # Tuesday 08:00
        Session(MON - 2 * H, MON - H, 1, 9_000, "OLD", Decimal("1"), "EUR"),  # before the period
    ]
    u = usage(sessions, [], 2, MON, MON + WEEK, BERLIN)
    assert (u.sessions, u.energy_Wh, u.revenue) == (3, 36_000, {"EUR": Decimal("10.85")})
    assert [(d.day.isoformat(), d.sessions, d.energy_Wh) for d in u.days[:3]] == [
        ("2026-11-02", 2, 31_000), ("2026-11-03", 1, 5_000), ("2026-11-04", 0, 0)]
    assert len(u.days) == 7 and u.days[0].revenue == {"EUR": Decimal("10.85")}
    assert u.unique_cards == 2  # 04A1 twice, 04b2 once; OLD outside the period
    assert u.hour_of_week_arrivals[8] == 1 and u.hour_of_week_arrivals[18] == 1 and u.hour_of_week_arrivals[32] == 1
    assert sum(u.hour_of_week_arrivals) == 3


def test_power_comes_from_the_time_drawing_and_occupancy_from_the_statuses() -> None:
    # Connector 1: plugged 08:00-11:00 local, drawing 08:00-10:00 (20 kWh: 10 kW), idle after charging 10-11.
    events = [status(MON, "Available"), status(MON + 8 * H, "Charging"), status(MON + 10 * H, "SuspendedEV"),
              status(MON + 11 * H, "Available")]
    sessions = [Session(MON + 8 * H, MON + 11 * H, 1, 20_000)]
    u = usage(sessions, events, 1, MON, MON + WEEK, BERLIN)
    assert u.peak_power_W == pytest.approx(10_000) and u.average_power_W == pytest.approx(10_000)
    assert (u.plugged_s, u.drawing_s, u.idle_after_charging_s) == (3 * 3600, 2 * 3600, 3600)
    assert u.hour_of_week_occupancy[8:11] == [1.0, 1.0, 1.0]  # Monday 08-11 local, one week seen
    assert u.hour_of_week_occupancy[7] == 0.0 and u.hour_of_week_occupancy[11] == 0.0


def test_occupancy_is_a_share_of_the_connectors_averaged_over_the_weeks() -> None:
    events = [status(MON + 8 * H, "Charging"), status(MON + 9 * H, "Available"),
              status(MON + 8 * H, "Available", 2)]
    u = usage([], events, 2, MON, MON + 2 * WEEK, BERLIN)
    assert u.hour_of_week_occupancy[8] == pytest.approx(0.25)  # one of two connectors, one of two weeks


def test_a_session_without_status_history_uses_its_whole_duration_for_power() -> None:
    u = usage([Session(MON, MON + 2 * H, 1, 7_400)], [], 1, MON, MON + WEEK, BERLIN)
    assert u.average_power_W == pytest.approx(3_700)


def test_turned_away_counts_refusals_only_while_no_connector_was_free() -> None:
    events = [status(MON, "Charging", 1), status(MON, "Faulted", 2),
              Event(MON + H, 1, "attempt", "refused", "connector in use"),
              status(MON + 2 * H, "Available", 2),
              Event(MON + 3 * H, 1, "attempt", "refused", "connector in use")]
    assert usage([], events, 2, MON, MON + WEEK, BERLIN).turned_away == 1


def test_a_card_token_is_stable_case_blind_and_not_the_tag() -> None:
    assert card_token("04a1b2c3") == card_token("04A1B2C3") != card_token("04A1B2C4")
    assert "04A1B2C3" not in card_token("04A1B2C3") and len(card_token("x")) == 12


def test_the_hour_of_week_follows_local_time_across_a_dst_change() -> None:
    # 2026-10-25 is the Sunday Berlin leaves summer time; the week from Monday 2026-10-19.
    monday = datetime(2026, 10, 19, tzinfo=BERLIN)
    sunday_9 = datetime(2026, 10, 25, 9, tzinfo=BERLIN)
    u = usage([Session(sunday_9, sunday_9 + H, 1, 1_000)], [], 1, monday, monday + WEEK, BERLIN)
    assert u.hour_of_week_arrivals[6 * 24 + 9] == pytest.approx(1 / (u_weeks := (7 * 24 + 1) / (7 * 24)))
    assert u_weeks > 1  # that week had 169 hours
